"""Compiled TensorFlow ops for banded and block-sparse matrix products.

Each op dispatches to the compiled kernels when the op library loads and to a
pure-TensorFlow composition otherwise (or inside `pure_tf()`), with the same
results.
"""

from keras_bandrnn.ops.band_ops import band_matmul
from keras_bandrnn.ops.band_ops import band_matmul_tanh
from keras_bandrnn.ops.band_ops import band_outer
from keras_bandrnn.ops.block_gru_update_ops import block_gru_update
from keras_bandrnn.ops.block_sparse_ops import block_sparse_matmul
from keras_bandrnn.ops.dense import band_to_dense
from keras_bandrnn.ops.dense import dense_to_band
from keras_bandrnn.ops.dispatch import pure_tf

__all__ = [
    "band_matmul",
    "band_matmul_tanh",
    "band_outer",
    "block_sparse_matmul",
    "block_gru_update",
    "band_to_dense",
    "dense_to_band",
    "pure_tf",
]
