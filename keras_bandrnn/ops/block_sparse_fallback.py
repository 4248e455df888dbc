"""Block-sparse products composed of stock TensorFlow ops (no custom kernels).

Used when the compiled library is unavailable, inside `dispatch.pure_tf()`
(SavedModel export), and as the dense baseline in the benchmarks. The product
is computed densely and the inactive blocks are selected away with `tf.where`
(not multiplied by 0, so that an `inf` in an inactive block cannot leak a
`nan`): the same values as the kernels, without their savings. Half
precision is computed in float32, as the kernels do.
"""

import tensorflow as tf

from keras_bandrnn.ops.band_fallback import _in_float32


def expand_mask(mask, block_size):
    """`(B, N // block_size)` block mask -> `(B, N)` column mask."""
    return tf.repeat(mask, block_size, axis=1)


def _select(mask, block_size, value):
    return tf.where(expand_mask(mask, block_size), value, tf.zeros_like(value))


@_in_float32
def block_sparse_matmul(x, w, mask, block_size):
    """`y = x @ w` restricted to the active `(row, block)` pairs, else 0."""
    return _select(mask, block_size, tf.matmul(x, w))


@_in_float32
def block_sparse_matmul_grad_x(dy, w, mask, block_size):
    """`dx = (dy restricted to the active pairs) @ w.T`."""
    return tf.matmul(_select(mask, block_size, dy), w, transpose_b=True)


@_in_float32
def block_sparse_matmul_grad_w(x, dy, mask, block_size):
    """`dw = x.T @ (dy restricted to the active pairs)`."""
    return tf.matmul(x, _select(mask, block_size, dy), transpose_a=True)
