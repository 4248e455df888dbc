"""Finds and loads the compiled op library, or says why the fallback is used.

The library is tied to the TensorFlow minor version it was compiled against
(TensorFlow's C++ ABI changes between releases). `setup.py` writes
`_build_info.json` next to the library; we compare it with the running
TensorFlow *before* loading, so a mismatch gives a clear message instead of an
undefined-symbol error.
"""

import glob
import json
import os
import threading
import warnings

import tensorflow as tf

_HERE = os.path.dirname(os.path.abspath(__file__))
_SOURCE_ROOT = os.path.dirname(_HERE)
LIBRARY_GLOB = "_bandrnn_ops*.so"
BUILD_INFO = "_build_info.json"

_lock = threading.Lock()
_state = {"loaded": False, "library": None, "reason": None}


def rebuild_command():
    """The exact command that rebuilds the library for the running TF."""
    if os.path.exists(os.path.join(_SOURCE_ROOT, "setup.py")):
        return f"pip install --no-build-isolation -e {_SOURCE_ROOT}"
    return "pip install --no-build-isolation --force-reinstall --no-deps keras-bandrnn"


def _minor(version):
    return ".".join(version.split(".")[:2])


def _find_library():
    override = os.environ.get("KERAS_BANDRNN_LIBRARY")
    if override:
        return override, os.path.join(os.path.dirname(override), BUILD_INFO)
    found = sorted(glob.glob(os.path.join(_HERE, LIBRARY_GLOB)))
    return (found[0] if found else None), os.path.join(_HERE, BUILD_INFO)


def _load():
    if os.environ.get("KERAS_BANDRNN_FORCE_FALLBACK", "") not in ("", "0"):
        return None, "KERAS_BANDRNN_FORCE_FALLBACK is set"
    path, info_path = _find_library()
    if path is None or not os.path.exists(path):
        return None, "the compiled op library is not built"
    try:
        with open(info_path) as f:
            built_for = json.load(f)["tensorflow"]
    except (OSError, ValueError, KeyError):
        return None, f"{info_path} is missing or unreadable, so the library's TensorFlow version is unknown"
    if _minor(built_for) != _minor(tf.__version__):
        return None, (
            f"the op library was built for TensorFlow {built_for} but "
            f"TensorFlow {tf.__version__} is running"
        )
    try:
        return tf.load_op_library(path), None
    except (tf.errors.NotFoundError, OSError) as e:
        return None, f"loading {path} failed: {e}"


def op_library():
    """The loaded op library module, or None (after one warning) if unusable."""
    with _lock:
        if not _state["loaded"]:
            lib, reason = _load()
            _state.update(loaded=True, library=lib, reason=reason)
            if lib is None and "FORCE_FALLBACK" not in (reason or ""):
                warnings.warn(
                    f"keras_bandrnn: {reason}; using the pure-TensorFlow "
                    f"implementation (same results, slower). Rebuild with: "
                    f"{rebuild_command()}",
                    RuntimeWarning,
                    stacklevel=3,
                )
        return _state["library"]


def fallback_reason():
    """Why the compiled library is not used, or None when it is."""
    op_library()
    return _state["reason"]
