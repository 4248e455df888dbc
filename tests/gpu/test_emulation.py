"""CPU emulation of the CUDA launchers against dense NumPy float64 references.

Runs without a GPU (needs nvcc): the launchers of custom_ops/cuda/ are built
with -DKBR_EMULATE, so each tile is produced by the kernels' own index code
(band tiling, clipping and wrapping, row lists, skip flags, per-element masks)
and multiplied on the host. The tensor-core and SIMT engines are checked on a
GPU by tests/gpu/test_cuda_kernels.py (scripts/gpu_suite.sh).
"""

import os
import shutil

import numpy as np
import pytest

import kbr_harness as H

pytestmark = pytest.mark.skipif(
    shutil.which(os.environ.get("NVCC", "nvcc")) is None, reason="needs nvcc")


@pytest.fixture(scope="module")
def be():
    return H.EmuBackend(H.build_emulator(os.path.join(H.ROOT, "build", "emulate")))


@pytest.mark.parametrize("dtype", H.DTYPES)
@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("case", H.band_cases(big=False))
def test_band_matmul(be, case, transpose, dtype):
    H.check_band_matmul(be, np.random.default_rng(0), dtype, *case, transpose)


@pytest.mark.parametrize("dtype", H.DTYPES)
@pytest.mark.parametrize("case", H.band_tanh_cases(big=False))
def test_band_matmul_tanh(be, case, dtype):
    H.check_band_matmul_tanh(be, np.random.default_rng(4), dtype, *case)


@pytest.mark.parametrize("dtype", H.DTYPES)
@pytest.mark.parametrize("case", H.band_cases(big=False))
def test_band_outer(be, case, dtype):
    H.check_band_outer(be, np.random.default_rng(1), dtype, *case)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("case", H.block_sparse_cases(big=False))
def test_block_sparse(be, case, dtype):
    H.check_block_sparse(be, np.random.default_rng(2), dtype, *case)


def test_invalid_arguments_are_rejected(be):
    x = np.zeros((2, 4), np.float32)
    d = np.zeros((4, 5), np.float32)
    y = np.zeros((2, 4), np.float32)
    lib = be.lib
    p = be.ptr
    assert lib.kbr_band_matmul(0, 2, 4, 2, 2, 1, 0, p(x), p(d), p(y), None) != 0  # k > n cyclic
    assert lib.kbr_band_matmul(0, 2, 4, -1, 2, 0, 0, p(x), p(d), p(y), None) != 0
    assert lib.kbr_band_matmul(7, 2, 4, 1, 1, 0, 0, p(x), p(d), p(y), None) != 0  # dtype
    assert lib.kbr_band_outer(0, -1, 4, 1, 1, 0, p(x), p(x), p(d), None) != 0
    w = np.zeros((4, 6), np.float32)
    m = np.ones((2, 1), np.uint8)
    assert lib.kbr_block_sparse_workspace_bytes(0, 2, 4, 6, 4) == 0  # 6 % 4 != 0
    assert lib.kbr_block_sparse_matmul(0, 2, 4, 6, 4, p(x), p(w), p(m), p(y), None, 0, None) != 0
    need = lib.kbr_block_sparse_workspace_bytes(0, 2, 4, 6, 6)
    assert need > 0
    assert lib.kbr_block_sparse_matmul(0, 2, 4, 6, 6, p(x), p(w), p(m), p(y), None, 0, None) != 0


@pytest.mark.parametrize("dtype", H.DTYPES)
@pytest.mark.parametrize("case", H.block_gru_cases(big=False))
def test_block_gru_update(be, case, dtype):
    H.check_block_gru_update(be, np.random.default_rng(3), dtype, *case)


@pytest.mark.parametrize("dtype", H.DTYPES)
@pytest.mark.parametrize("check", H.REJECT_CHECKS, ids=lambda c: c.__name__)
def test_launcher_rejects_bad_sizes(be, check, dtype):
    check(be, dtype)
