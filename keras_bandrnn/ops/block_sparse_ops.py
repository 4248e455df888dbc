"""`block_sparse_matmul`: a matmul computed only on active column blocks.

SPEC section 3. The product `y = x @ w` has its columns cut into blocks of
`block_size`; `mask[b, blk]` says whether block `blk` of row `b` is computed
(otherwise it is 0). The compiled kernels do work proportional to the number
of active `(b, blk)` pairs. The forward op and its two gradient ops
(`BlockSparseMatmulGradX`, `BlockSparseMatmulGradW`) are each other's
gradients, so derivatives of every order stay sparse.
"""

import numpy as np
import tensorflow as tf

from keras_bandrnn.ops import block_sparse_fallback
from keras_bandrnn.ops import dispatch
from keras_bandrnn.ops.band_ops import _check_same_dtype
from keras_bandrnn.ops.band_ops import convert


def _check_block_size(block_size):
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)):
        raise ValueError(f"`block_size` must be an integer, got {block_size!r}.")
    if block_size < 1:
        raise ValueError(f"`block_size` must be >= 1, got {block_size}.")
    if block_size > 2**31 - 1:
        raise ValueError(f"`block_size` must fit in int32, got {block_size}.")
    return int(block_size)


def _convert_mask(mask):
    """bool, or numbers where nonzero means active -> a bool tensor."""
    if not isinstance(mask, tf.Tensor):
        try:
            mask = tf.convert_to_tensor(mask)
        except (TypeError, ValueError) as e:
            raise ValueError(f"`mask` must be a bool or 0/1 tensor: {e}") from None
    if mask.dtype == tf.bool:
        return mask
    if mask.dtype.is_integer or mask.dtype.is_floating:
        return tf.not_equal(mask, tf.zeros([], mask.dtype))
    raise ValueError(f"`mask` must be bool or numeric 0/1, got dtype {mask.dtype.name}.")


def _matrix_dims(t, name, shape_doc):
    """`t`'s two dimensions (None where unknown), or a ValueError."""
    shape = t.shape
    if shape.rank is None:
        return None, None
    if shape.rank != 2:
        raise ValueError(f"`{name}` must have shape {shape_doc}, got {shape}.")
    return tuple(shape)


def _check_shapes(x, w, mask, block_size):
    batch, kx = _matrix_dims(x, "x", "(B, K)")
    kw, n = _matrix_dims(w, "w", "(K, N)")
    mb, mblocks = _matrix_dims(mask, "mask", "(B, N // block_size)")
    if kx is not None and kw is not None and kx != kw:
        raise ValueError(f"`w` has {kw} rows but `x` has K = {kx} columns.")
    if n is not None and n % block_size:
        raise ValueError(
            f"The number of columns N = {n} of `w` is not divisible by "
            f"`block_size` = {block_size}."
        )
    if mb is not None and batch is not None and mb != batch:
        raise ValueError(f"`mask` has {mb} rows but the batch size B is {batch}.")
    if mblocks is not None and n is not None and mblocks != n // block_size:
        raise ValueError(
            f"`mask` has {mblocks} columns but N // block_size = "
            f"{n} // {block_size} = {n // block_size}."
        )


def block_sparse_matmul(x, w, mask, block_size, name=None):
    """Multiplies `x @ w`, computing only the active column blocks of each row.

    `y[b, blk] = x[b] @ w[:, blk]` where `mask[b, blk]`, else 0, with column
    block `blk` = columns `[blk * block_size, (blk + 1) * block_size)`. The
    compiled kernels do work proportional to the number of active
    `(b, blk)` pairs. Gradients flow to `x` and `w` (only through active
    pairs); `mask` gets none.

    Args:
        x: `(B, K)` tensor of float32, float64, bfloat16 or float16 (half
            types accumulate in float32).
        w: `(K, N)` tensor of the same dtype; `N` divisible by `block_size`.
        mask: `(B, N // block_size)` tensor, bool or numeric (nonzero means
            active).
        block_size: number of columns per block, an integer `>= 1`.
        name: optional op name.

    Returns:
        `(B, N)` tensor of the dtype of `x`.

    Example:

    >>> x = tf.ones([2, 3])
    >>> w = tf.ones([3, 4])
    >>> block_sparse_matmul(x, w, [[True, False], [False, True]], 2).numpy()
    array([[3., 3., 0., 0.],
           [0., 0., 3., 3.]], dtype=float32)
    """
    with dispatch.name_scope(name or "block_sparse_matmul"):
        block_size = _check_block_size(block_size)
        x = convert(x, "x")
        w = convert(w, "w")
        _check_same_dtype(x, "x", w, "w")
        mask = _convert_mask(mask)
        _check_shapes(x, w, mask, block_size)
        return _forward(x, w, mask, block_size)


def _forward(x, w, mask, block_size):
    lib = dispatch.library()
    if lib is not None:
        return lib.block_sparse_matmul(x, w, mask, block_size=block_size)
    return block_sparse_fallback.block_sparse_matmul(x, w, mask, block_size)


def _grad_x(dy, w, mask, block_size):
    lib = dispatch.library()
    if lib is not None:
        return lib.block_sparse_matmul_grad_x(dy, w, mask, block_size=block_size)
    return block_sparse_fallback.block_sparse_matmul_grad_x(dy, w, mask, block_size)


def _grad_w(x, dy, mask, block_size):
    lib = dispatch.library()
    if lib is not None:
        return lib.block_sparse_matmul_grad_w(x, dy, mask, block_size=block_size)
    return block_sparse_fallback.block_sparse_matmul_grad_w(x, dy, mask, block_size)


@tf.RegisterGradient("BlockSparseMatmul")
def _block_sparse_matmul_grad(op, dy):
    x, w, mask = op.inputs
    bs = op.get_attr("block_size")
    return _grad_x(dy, w, mask, bs), _grad_w(x, dy, mask, bs), None


@tf.RegisterGradient("BlockSparseMatmulGradX")
def _block_sparse_matmul_grad_x_grad(op, ddx):
    # dx[b, k] = sum over active (b, j) of dy[b, j] w[k, j].
    dy, w, mask = op.inputs
    bs = op.get_attr("block_size")
    return _forward(ddx, w, mask, bs), _grad_w(ddx, dy, mask, bs), None


@tf.RegisterGradient("BlockSparseMatmulGradW")
def _block_sparse_matmul_grad_w_grad(op, ddw):
    # dw[k, j] = sum over active (b, j) of x[b, k] dy[b, j].
    x, dy, mask = op.inputs
    bs = op.get_attr("block_size")
    return _grad_x(dy, ddw, mask, bs), _forward(x, ddw, mask, bs), None
