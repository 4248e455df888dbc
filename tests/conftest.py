"""Shared fixtures: every op test runs against both implementations."""

import contextlib
import os

# The NumPy references multiply small dense matrices; a multi-threaded BLAS
# only spins against the ops under test (10x slower on a loaded machine).
# Set before NumPy is first imported; an explicit setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pytest

from keras_bandrnn import _lib
from keras_bandrnn.ops import pure_tf

IMPLEMENTATIONS = ("compiled", "pure_tf")


def force_fallback():
    """True when KERAS_BANDRNN_FORCE_FALLBACK asks for the pure-TF path only."""
    return os.environ.get("KERAS_BANDRNN_FORCE_FALLBACK", "") not in ("", "0")


class Implementation:
    """Which implementation a test exercises.

    The fixture `impl` already runs the whole test inside the chosen
    implementation; `impl.name` tells which, and `impl.context()` gives a fresh
    context for code that runs elsewhere (another thread, a deferred call).
    """

    def __init__(self, name):
        self.name = name

    @property
    def compiled(self):
        return self.name == "compiled"

    def context(self):
        return contextlib.nullcontext() if self.compiled else pure_tf()

    def __repr__(self):
        return self.name


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request):
    """Runs the test with the compiled kernels or inside `pure_tf()`.

    "compiled" fails (it is not skipped) when the op library did not load, so
    a broken build cannot pass unnoticed; only KERAS_BANDRNN_FORCE_FALLBACK=1
    turns it into a skip.
    """
    which = Implementation(request.param)
    if which.compiled and _lib.op_library() is None:
        if force_fallback():
            pytest.skip("KERAS_BANDRNN_FORCE_FALLBACK is set: compiled kernels not tested")
        pytest.fail(
            f"the compiled op library is not loaded ({_lib.fallback_reason()}); "
            "build it with `python custom_ops/build_config.py`, or set "
            "KERAS_BANDRNN_FORCE_FALLBACK=1 to test the pure-TF path only",
            pytrace=False,
        )
    with which.context():
        yield which


@pytest.fixture
def compiled_only(impl):
    """For tests of checks that only the compiled kernel can make."""
    if not impl.compiled:
        pytest.skip("checks made inside the compiled kernel")
    return impl


# The CUDA kernel tests run on a GPU machine through scripts/gpu_suite.sh
# (which sets KBR_CUDA_LIB); elsewhere they are not collected rather than
# reported as hundreds of skips.
if not os.environ.get("KBR_CUDA_LIB"):
    collect_ignore = ["gpu/test_cuda_kernels.py"]
