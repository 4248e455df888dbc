"""Loading the compiled op library (keras_bandrnn/_lib.py), in fresh processes.

Each scenario runs a small script in a subprocess against temporary copies of
the library and its build info (the real build files of the checkout are only
read). The scenarios share one process, resetting `_lib`'s state between
them; the only one that loads a real library comes last (a library's ops
register once per process), and the installed-package case, which needs
another import path, has a process of its own.
"""

import json
import glob
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests import references as ref
from tests.conftest import force_fallback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "keras_bandrnn")
# The library as the package finds it: `_bandrnn_ops.so` from
# custom_ops/build_config.py, `_bandrnn_ops.<abi tag>.so` from pip.
LIBRARY = (sorted(glob.glob(os.path.join(PACKAGE, "_bandrnn_ops*.so")))
           or [os.path.join(PACKAGE, "_bandrnn_ops.so")])[0]
BUILD_INFO = os.path.join(PACKAGE, "_build_info.json")
# What _lib must tell a user of a source checkout (this one) to run.
REBUILD_CHECKOUT = f"pip install --no-build-isolation -e {ROOT}"
REBUILD_INSTALLED = "pip install --no-build-isolation --force-reinstall --no-deps keras-bandrnn"

# Runs each scenario of a JSON list (argv[1]) in turn: sets its environment,
# forgets what `_lib` loaded before (as a fresh process would), then calls the
# ops; prints one JSON result per scenario.
SCRIPT = r"""
import json, os, sys, warnings
import numpy as np

for scenario in json.loads(sys.argv[1]):
    for key in [k for k in os.environ if k.startswith("KERAS_BANDRNN_")]:
        del os.environ[key]
    os.environ.update(scenario["env"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import tensorflow as tf
        import keras_bandrnn
        from keras_bandrnn import _lib, ops

        _lib._state.update(loaded=False, library=None, reason=None)
        gen = np.random.default_rng(0)
        x = gen.standard_normal((3, 9))
        d = gen.standard_normal((9, 4))
        lower, upper = 1, 2
        ys = [ops.band_matmul(x, d, lower, upper, cyclic=c).numpy().tolist() for c in (False, True)]
        ys.append(ops.band_matmul(x, d, lower, upper, transpose=True).numpy().tolist())
        f = tf.function(lambda x, d: ops.band_matmul(x, d, lower, upper))
        ys.append(f(tf.constant(x), tf.constant(d)).numpy().tolist())
        g = ops.band_outer(x, x, lower, upper).numpy().tolist()
        graph = f.get_concrete_function(tf.constant(x), tf.constant(d)).graph
        op_types = sorted({op.type for op in graph.get_operations()})

    print("RESULT" + json.dumps({
        "name": scenario["name"],
        "warnings": [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)
                     and "keras_bandrnn" in str(w.message)],
        "loaded": _lib.op_library() is not None,
        "reason": _lib.fallback_reason(),
        "library_path": _lib._find_library()[0],
        "tf_version": tf.__version__,
        "package": keras_bandrnn.__file__,
        "x": x.tolist(), "d": d.tolist(), "ys": ys, "g": g, "op_types": op_types,
    }), flush=True)
"""


def run_scripts(groups):
    """Runs SCRIPT once per group, all processes at once.

    `groups` is a list of `(cwd, pythonpath, scenarios)`, a scenario being
    `{"name": ..., "env": {...}}`; returns name -> result (or the error to
    raise in the test that reads it).
    """
    base = {k: v for k, v in os.environ.items() if not k.startswith("KERAS_BANDRNN_")}
    procs = []
    for cwd, pythonpath, scenarios in groups:
        env = dict(base, PYTHONPATH=pythonpath, TF_CPP_MIN_LOG_LEVEL="3")
        proc = subprocess.Popen(
            [sys.executable, "-c", SCRIPT, json.dumps(scenarios)], cwd=cwd, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        procs.append((proc, pythonpath, scenarios))
    results = {}
    for proc, pythonpath, scenarios in procs:
        stdout, stderr = proc.communicate(timeout=600)
        for line in stdout.splitlines():
            if line.startswith("RESULT"):
                result = json.loads(line[len("RESULT"):])
                results[result["name"]] = result
                if not result["package"].startswith(pythonpath):
                    results[result["name"]] = AssertionError(f"imported {result['package']}")
        for scenario in scenarios:
            results.setdefault(scenario["name"], AssertionError(
                f"no result (exit status {proc.returncode}):\n{stderr[-4000:]}"
            ))
    return results


def check_results(result):
    """The four products and the outer product equal the dense reference."""
    x, d = np.array(result["x"]), np.array(result["d"])
    lower, upper = 1, 2
    want = [
        ref.band_matmul(x, d, lower, upper),
        ref.band_matmul(x, d, lower, upper, cyclic=True),
        ref.band_matmul(x, d, lower, upper, transpose=True),
        ref.band_matmul(x, d, lower, upper),
    ]
    for got, expected in zip(result["ys"], want):
        np.testing.assert_allclose(np.array(got), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.array(result["g"]), ref.band_outer(x, x, lower, upper), rtol=1e-12, atol=1e-12)


def check_fallback(result, rebuild, *reason_words):
    """Pure-TF results, and exactly one warning with the rebuild command."""
    assert not result["loaded"]
    assert not {"BandMatmul", "BandOuter"} & set(result["op_types"])
    check_results(result)
    assert len(result["warnings"]) == 1, result["warnings"]
    message = result["warnings"][0]
    assert f"Rebuild with: {rebuild}" in message, message
    assert message.rstrip().endswith(rebuild), message  # the command, nothing glued to it
    for word in reason_words:
        assert word in message and word in result["reason"], (word, message)


def fake_library(directory, tf_version, real=True):
    """A library and build info in `directory`, claiming `tf_version`."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "_bandrnn_ops.so")
    if real and os.path.exists(LIBRARY):
        shutil.copyfile(LIBRARY, path)
    else:
        with open(path, "wb") as f:
            f.write(b"not a shared library")
    if tf_version is not None:
        with open(os.path.join(directory, "_build_info.json"), "w") as f:
            json.dump({"tensorflow": tf_version, "cuda": None, "cuda_archs": [], "march": "native"}, f)
    return path


def _snapshot():
    """Contents and times of the checkout's build files (None where absent)."""
    out = {}
    for path in (LIBRARY, BUILD_INFO):
        if os.path.exists(path):
            with open(path, "rb") as f:
                out[path] = (f.read(), os.stat(path).st_mtime_ns)
        else:
            out[path] = None
    return out


def running_tf():
    import tensorflow as tf

    return tf.__version__


def other_minor():
    major, minor = running_tf().split(".")[:2]
    return f"{major}.{int(minor) - 1}.0"


def same_minor_other_patch():
    major, minor = running_tf().split(".")[:2]
    return f"{major}.{minor}.99"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Sets up every scenario in a temp directory and runs them."""
    tmp = tmp_path_factory.mktemp("lib")
    before = _snapshot()
    paths = {
        "other_version": fake_library(tmp / "other_version", other_minor()),
        "missing_override": str(tmp / "nowhere" / "_bandrnn_ops.so"),
        "missing_build_info": fake_library(tmp / "no_info", None),
        # The right version on paper, but not a shared library.
        "unloadable": fake_library(tmp / "unloadable", running_tf(), real=False),
    }
    fallback = [{"name": name, "env": {"KERAS_BANDRNN_LIBRARY": str(path)}} for name, path in paths.items()]
    fallback.append({"name": "force_fallback", "env": {"KERAS_BANDRNN_FORCE_FALLBACK": "1"}})
    site = tmp / "site"
    shutil.copytree(  # a copy of the package without the library, no setup.py beside it
        PACKAGE, site / "keras_bandrnn",
        ignore=shutil.ignore_patterns("*.so", "_build_info.json", "__pycache__"),
    )
    if os.path.exists(LIBRARY) and os.path.exists(BUILD_INFO):
        # Last in its process (nothing real was loaded before it): a copy whose
        # build info names another patch release of the running TF minor,
        # which must load (only the minor binds the ABI).
        (tmp / "copy").mkdir()
        paths["override_copy"] = str(tmp / "copy" / "_bandrnn_ops.so")
        shutil.copyfile(LIBRARY, paths["override_copy"])
        with open(BUILD_INFO) as f:
            info = json.load(f)
        with open(tmp / "copy" / "_build_info.json", "w") as f:
            json.dump(dict(info, tensorflow=same_minor_other_patch()), f)
        fallback.append({"name": "override_copy", "env": {"KERAS_BANDRNN_LIBRARY": paths["override_copy"]}})
    groups = [
        (tmp, ROOT, fallback),
        (tmp, str(site), [{"name": "missing_installed", "env": {}}]),
    ]
    out = run_scripts(groups)
    out["snapshots"] = (before, _snapshot())
    for name, path in paths.items():
        if name in out and not isinstance(out[name], Exception):
            out[name]["expected_path"] = str(path)
    return out


def get(results, name):
    result = results[name]
    if isinstance(result, Exception):
        raise result
    return result


def require_real_library():
    if not os.path.exists(LIBRARY) and force_fallback():
        pytest.skip("the compiled library is not built (KERAS_BANDRNN_FORCE_FALLBACK is set)")
    assert os.path.exists(LIBRARY) and os.path.exists(BUILD_INFO), (
        "the compiled library is not built: run `python custom_ops/build_config.py`"
    )


def test_other_tensorflow_version(results):
    """A library built for another TF minor is not even loaded."""
    result = get(results, "other_version")
    assert result["library_path"] == result["expected_path"]
    check_fallback(result, REBUILD_CHECKOUT, f"built for TensorFlow {other_minor()}", result["tf_version"])


def test_missing_library_via_override(results):
    check_fallback(get(results, "missing_override"), REBUILD_CHECKOUT, "not built")


def test_missing_library_in_installed_package(results):
    result = get(results, "missing_installed")
    assert result["library_path"] is None
    check_fallback(result, REBUILD_INSTALLED, "not built")


def test_missing_build_info(results):
    check_fallback(get(results, "missing_build_info"), REBUILD_CHECKOUT, "_build_info.json")


def test_unloadable_library(results):
    check_fallback(get(results, "unloadable"), REBUILD_CHECKOUT, "loading")


def test_force_fallback_is_silent(results):
    result = get(results, "force_fallback")
    assert not result["loaded"]
    assert result["warnings"] == []
    assert "KERAS_BANDRNN_FORCE_FALLBACK" in result["reason"]
    check_results(result)


def test_library_override_loads_a_copy(results):
    """KERAS_BANDRNN_LIBRARY pointing at a copy: the copy is loaded and used.

    Its build info names another patch release of the running TF minor
    version, which must not matter.
    """
    require_real_library()
    result = get(results, "override_copy")
    assert result["library_path"] == result["expected_path"]
    assert result["loaded"], result["reason"]
    assert result["reason"] is None
    assert result["warnings"] == []
    assert "BandMatmul" in result["op_types"]
    check_results(result)


def test_real_build_files_untouched(results):
    """The scenarios worked on copies: the checkout's build files are as they were."""
    before, after = results["snapshots"]
    assert before == after
