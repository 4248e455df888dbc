"""Band products composed of stock TensorFlow ops (no custom kernels).

Used when the compiled library is unavailable, inside `dispatch.pure_tf()`
(SavedModel export), and as the fastest pure-TF baseline in the benchmarks.

Everything works on the *extended* row ``xe`` of length ``n + k - 1``:
``xe[c'] = x[c' - lower]`` (zero outside ``[0, n)`` for an open band, taken
modulo ``n`` for a cyclic one), so that ``y[i] = sum_j diags[i, j] * xe[i + j]``.
Rows are cut into blocks of ``bs >= k - 1`` rows; block ``m`` of the output
only reads extended blocks ``m`` and ``m + 1``, which makes the band one dense
``(bs, 2 bs)`` tile per block and every product a batched matmul (the seed's
GBMM idea: dense tiles over the band, accepting the wasted corners).

Narrow bands (`k <= _DIAGONAL_SUM_MAX_K`) skip the tiles: `band_matmul` is
then `k` shifted, scaled copies of the row summed by one `AddN`
(`y = sum_j diags[:, j] * xe[j : j + n]`), which moves `O(B n k)` bytes through
a handful of element-wise ops instead of building `(bs, 2 bs)` tiles whose
work is at least twice the band's. This is the path that SavedModel exports of
narrow-band cells run in every time step (see benchmarks/export.py).

Inputs are `(B, n)` and `(n, k)` tensors; half precision is computed in
float32, as the kernels do.
"""

import numpy as np
import tensorflow as tf

from keras_bandrnn import band

_MIN_BLOCK = 16
# Up to this bandwidth the diagonal sum beats the block tiles on CPU for
# batches up to 64 (benchmarks/export.py measures both).
_DIAGONAL_SUM_MAX_K = 16


def _block_size(n, k):
    return max(k - 1, min(_MIN_BLOCK, max(n, 1)))


def _extend(x, n, lower, upper, cyclic):
    """`(B, n)` -> `(B, n + k - 1)` extended rows."""
    if cyclic:
        return tf.concat([x[:, n - lower:], x, x[:, :upper]], axis=1)
    return tf.pad(x, [[0, 0], [lower, upper]])


def _zero_padding(diags, n, lower, upper, cyclic):
    if cyclic:
        return diags
    mask = band.valid_mask(n, lower, upper)
    if mask.all():
        return diags
    return tf.where(tf.constant(mask), diags, tf.zeros_like(diags))


def _tiles(diags, n, k, bs, nb):
    """Dense tiles `t[m, r, s] = diags[m bs + r, s - r]`, shape `(nb, bs, 2 bs)`."""
    d = tf.pad(diags, [[0, nb * bs - n], [0, 1]])  # column k is a zero column
    d = tf.reshape(d, [nb, bs, k + 1])
    r = np.arange(bs)[:, None]
    s = np.arange(2 * bs)[None, :]
    j = np.where((s - r >= 0) & (s - r < k), s - r, k).astype(np.int32)
    idx = tf.tile(tf.constant(j)[None], [nb, 1, 1])
    return tf.gather(d, idx, axis=2, batch_dims=2)


def _windows(xe, nb, bs):
    """`(B, >= (nb + 1) bs)` -> `(B, nb, 2 bs)`: block m and m + 1 side by side."""
    width = (nb + 1) * bs
    xe = tf.pad(xe, [[0, 0], [0, width - tf.shape(xe)[1]]])
    blocks = tf.reshape(xe, [-1, nb + 1, bs])
    return tf.concat([blocks[:, :-1], blocks[:, 1:]], axis=2)


def _in_float32(fn):
    def wrapper(*args, **kwargs):
        dtype = args[0].dtype
        if dtype in (tf.float16, tf.bfloat16):
            cast = [tf.cast(a, tf.float32) for a in args[:2]]
            return tf.cast(fn(*cast, *args[2:], **kwargs), dtype)
        return fn(*args, **kwargs)

    return wrapper


def _fold_cyclic(y, ye, n, lower, upper):
    """Adds the wrapped ends of an extended `(B, n + k - 1)` output onto the ring."""
    zeros = tf.zeros_like(y)
    y += tf.concat([zeros[:, : n - lower], ye[:, :lower]], axis=1)
    y += tf.concat([ye[:, n + lower : n + lower + upper], zeros[:, upper:]], axis=1)
    return y


def _diagonal_sum(x, diags, n, k, lower, upper, cyclic, transpose):
    """`band_matmul` as `k` shifted element-wise products and one AddN."""
    diags = _zero_padding(diags, n, lower, upper, cyclic)
    if not transpose:  # y[i] = sum_j diags[i, j] xe[i + j]
        xe = _extend(x, n, lower, upper, cyclic)
        return tf.add_n([diags[:, j] * xe[:, j : j + n] for j in range(k)])
    # y = x A: row i sends x[i] diags[i, j] to extended column i + j.
    ye = tf.add_n([tf.pad(x * diags[:, j], [[0, 0], [j, k - 1 - j]]) for j in range(k)])
    y = ye[:, lower : lower + n]
    return _fold_cyclic(y, ye, n, lower, upper) if cyclic else y


@_in_float32
def band_matmul(x, diags, lower, upper, cyclic=False, transpose=False):
    """`y = x @ A.T` (or `x @ A` with `transpose`) for `x` of shape `(B, n)`."""
    n = x.shape[-1]
    k = band.bandwidth(lower, upper)
    if n == 0:
        return x
    if k <= _DIAGONAL_SUM_MAX_K:
        return _diagonal_sum(x, diags, n, k, lower, upper, cyclic, transpose)
    bs = _block_size(n, k)
    nb = -(-n // bs)
    tiles = _tiles(_zero_padding(diags, n, lower, upper, cyclic), n, k, bs, nb)
    if not transpose:
        xe = _extend(x, n, lower, upper, cyclic)
        y = tf.einsum("bms,mrs->bmr", _windows(xe, nb, bs), tiles)
        return tf.reshape(y, [-1, nb * bs])[:, :n]
    xb = tf.reshape(tf.pad(x, [[0, 0], [0, nb * bs - n]]), [-1, nb, bs])
    win = tf.einsum("bmr,mrs->bms", xb, tiles)  # extended output, overlapping
    ye = tf.pad(win[:, :, :bs], [[0, 0], [0, 1], [0, 0]]) + tf.pad(
        win[:, :, bs:], [[0, 0], [1, 0], [0, 0]]
    )
    ye = tf.reshape(ye, [-1, (nb + 1) * bs])
    y = ye[:, lower : lower + n]
    return _fold_cyclic(y, ye, n, lower, upper) if cyclic else y


@_in_float32
def band_outer(a, b, lower, upper, cyclic=False):
    """`g[i, j] = sum_b a[b, i] * b[b, c(i, j)]`, shape `(n, k)`."""
    n = a.shape[-1]
    k = band.bandwidth(lower, upper)
    if n == 0:
        return tf.zeros([0, k], a.dtype)
    bs = _block_size(n, k)
    nb = -(-n // bs)
    ab = tf.reshape(tf.pad(a, [[0, 0], [0, nb * bs - n]]), [-1, nb, bs])
    win = _windows(_extend(b, n, lower, upper, cyclic), nb, bs)
    g = tf.einsum("bmr,bms->mrs", ab, win)  # (nb, bs, 2 bs)
    idx = (np.arange(bs)[:, None] + np.arange(k)[None, :]).astype(np.int32)
    g = tf.gather(g, tf.tile(tf.constant(idx)[None], [nb, 1, 1]), axis=2, batch_dims=2)
    return _zero_padding(tf.reshape(g, [nb * bs, k])[:n], n, lower, upper, cyclic)
