"""The CUDA kernels on a GPU against dense NumPy float64 references.

No TensorFlow: the launchers are built into a plain shared library with nvcc
and called through ctypes on PyTorch tensors. Run the whole GPU suite with
`scripts/gpu_suite.sh` (it builds the library and sets KBR_CUDA_LIB); skipped
where KBR_CUDA_LIB is not set.
"""

import os

import numpy as np
import pytest

import kbr_harness as H

LIB = os.environ.get("KBR_CUDA_LIB")
pytestmark = pytest.mark.skipif(
    not LIB, reason="set KBR_CUDA_LIB to the nvcc-built launcher library (scripts/gpu_suite.sh)")


@pytest.fixture(scope="module")
def be():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return H.TorchBackend(LIB)


@pytest.mark.parametrize("dtype", H.DTYPES)
@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("case", H.band_cases(big=True))
def test_band_matmul(be, case, transpose, dtype):
    H.check_band_matmul(be, np.random.default_rng(10), dtype, *case, transpose)


@pytest.mark.parametrize("dtype", H.DTYPES)
@pytest.mark.parametrize("case", H.band_tanh_cases(big=True))
def test_band_matmul_tanh(be, case, dtype):
    H.check_band_matmul_tanh(be, np.random.default_rng(16), dtype, *case)


@pytest.mark.parametrize("dtype", H.DTYPES)
@pytest.mark.parametrize("case", H.band_cases(big=True))
def test_band_outer(be, case, dtype):
    H.check_band_outer(be, np.random.default_rng(11), dtype, *case)


@pytest.mark.parametrize("dtype", H.DTYPES)
@pytest.mark.parametrize("case", H.block_sparse_cases(big=True))
def test_block_sparse(be, case, dtype):
    H.check_block_sparse(be, np.random.default_rng(12), dtype, *case)


@pytest.mark.parametrize("dtype", H.DTYPES)
@pytest.mark.parametrize("case", H.block_gru_cases(big=True))
def test_block_gru_update(be, case, dtype):
    H.check_block_gru_update(be, np.random.default_rng(15), dtype, *case)


@pytest.mark.parametrize("dtype", H.DTYPES)
@pytest.mark.parametrize("check", H.REJECT_CHECKS, ids=lambda c: c.__name__)
def test_launcher_rejects_bad_sizes(be, check, dtype):
    check(be, dtype)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("cyclic", [False, True])
def test_band_large(be, dtype, cyclic):
    """One benchmark-sized shape (n = 8192) in each direction."""
    rng = np.random.default_rng(13)
    H.check_band_matmul(be, rng, dtype, 64, 8192, 100, 156, cyclic, False)
    H.check_band_matmul(be, rng, dtype, 64, 8192, 100, 156, cyclic, True)
    H.check_band_outer(be, rng, dtype, 64, 8192, 100, 156, cyclic)
    H.check_band_matmul_tanh(be, rng, dtype, 64, 8192, 100, 156, cyclic)


@pytest.mark.parametrize("dtype", H.DTYPES)
def test_deterministic(be, dtype):
    """Two runs give bitwise equal results (no atomics in any reduction)."""
    rng = np.random.default_rng(14)
    batch, k, n, bs = 300, 200, 256, 32
    x = be.to_device(rng.standard_normal((batch, k)), dtype)
    w = be.to_device(rng.standard_normal((k, n)), dtype)
    dy = be.to_device(rng.standard_normal((batch, n)), dtype)
    m = be.mask(H.random_mask(rng, batch, n // bs, "random"))
    for op, p, q in ((H.BS_FORWARD, x, w), (H.BS_GRAD_X, dy, w), (H.BS_GRAD_W, x, dy)):
        first = H.block_sparse(be, op, p, q, m, batch, k, n, bs, dtype)
        second = H.block_sparse(be, op, p, q, m, batch, k, n, bs, dtype)
        np.testing.assert_array_equal(first, second)
    a = be.to_device(rng.standard_normal((batch, n)), dtype)
    first = H.band_outer(be, a, a, n, 20, 30, True, dtype)
    np.testing.assert_array_equal(first, H.band_outer(be, a, a, n, 20, 30, True, dtype))


def test_invalid_arguments_are_rejected(be):
    x = be.to_device(np.zeros((2, 4)), "float32")
    d = be.to_device(np.zeros((4, 5)), "float32")
    lib, p, s = be.lib, be.ptr, be.stream
    assert lib.kbr_band_matmul(0, 2, 4, 2, 2, 1, 0, p(x), p(d), p(x), s) != 0
    assert lib.kbr_band_outer(9, 2, 4, 1, 1, 0, p(x), p(x), p(d), s) != 0
    assert lib.kbr_block_sparse_matmul(0, 2, 4, 6, 4, p(x), p(d), p(x), p(x), None, 0, s) != 0
