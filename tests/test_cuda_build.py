"""The op library's CUDA build, checked on a machine without a GPU.

When `_build_info.json` says the library was built with CUDA, every op and
dtype must have a DEVICE_GPU kernel registered, and the library must still
load and run on the CPU (the CPU kernels are picked without a GPU).
"""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import kernels

from keras_bandrnn import _lib

DTYPES = {"DT_FLOAT", "DT_DOUBLE", "DT_BFLOAT16", "DT_HALF"}
GPU_OPS = ("BandMatmul", "BandOuter", "BlockSparseMatmul", "BlockSparseMatmulGradX",
           "BlockSparseMatmulGradW", "BlockGruUpdate", "BandMatmulTanh")


def _build_info():
    path, info_path = _lib._find_library()
    if path is None or not os.path.exists(info_path):
        return None
    with open(info_path) as f:
        return json.load(f)


def _registered_ops():
    from tensorflow.python.framework import op_def_registry

    return {name for name in GPU_OPS if op_def_registry.get(name) is not None}


@pytest.fixture(scope="module")
def lib():
    if _lib.op_library() is None:
        pytest.skip(f"op library not loaded: {_lib.fallback_reason()}")
    return _lib.op_library()


def test_cuda_is_built_where_nvcc_is(lib):
    info = _build_info()
    if shutil.which("nvcc") is None or os.environ.get("KERAS_BANDRNN_CUDA") == "0":
        pytest.skip("no nvcc here, or CUDA disabled")
    assert info["cuda"], "nvcc is present but the library was built CPU-only (see the build log)"
    assert "90" in info["cuda_archs"]


def test_gpu_kernels_registered_for_every_dtype(lib):
    info = _build_info()
    if not info or not info.get("cuda"):
        pytest.skip("library built without CUDA")
    for op in sorted(_registered_ops()):
        found = set()
        for k in kernels.get_registered_kernels_for_op(op).kernel:
            if k.device_type == "GPU":
                found |= {t for c in k.constraint for t in
                          [tf.dtypes.as_dtype(v).as_datatype_enum for v in c.allowed_values.list.type]}
        names = {tf.dtypes.as_dtype(t).name for t in found}
        assert names >= {"float32", "float64", "bfloat16", "float16"}, (op, names)


def test_cuda_build_runs_on_cpu(lib):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 6)).astype(np.float32)
    d = rng.standard_normal((6, 3)).astype(np.float32)
    with tf.device("/CPU:0"):
        y = lib.band_matmul(x, d, lower=1, upper=1, cyclic=True).numpy()
    a = np.zeros((6, 6))
    for i in range(6):
        for j in range(3):
            a[i, (i + j - 1) % 6] = d[i, j]
    np.testing.assert_allclose(y, x @ a.T, rtol=1e-5, atol=1e-5)
