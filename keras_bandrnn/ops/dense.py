"""Conversions between the `(n, k)` diagonal storage and dense `(n, n)` matrices."""

import numpy as np
import tensorflow as tf

from keras_bandrnn import band
from keras_bandrnn.ops.band_ops import convert


def _indices(n, lower, upper, cyclic):
    mask = band.valid_mask(n, lower, upper, cyclic)
    rows, slots = np.nonzero(mask)
    cols = band.columns(n, lower, upper, cyclic)[rows, slots]
    return mask, rows, slots, cols


def _static_square(t, name):
    if t.shape.rank != 2 or t.shape[0] is None:
        raise ValueError(f"`{name}` needs a static 2-D shape, got {t.shape}.")


def band_to_dense(diags, lower, upper, cyclic=False):
    """The dense `(n, n)` matrix `A` whose band `diags` holds (padding dropped).

    Example:

    >>> band_to_dense(tf.constant([[0., 1.], [2., 3.]]), lower=1, upper=0).numpy()
    array([[1., 0.],
           [2., 3.]], dtype=float32)
    """
    diags = convert(diags, "diags")
    _static_square(diags, "diags")
    n, k = diags.shape
    band.check_band_args(n, lower, upper, cyclic)
    if k != band.bandwidth(lower, upper):
        raise ValueError(f"`diags` has {k} columns but lower + upper + 1 = {band.bandwidth(lower, upper)}.")
    _, rows, slots, cols = _indices(n, lower, upper, cyclic)
    values = tf.gather_nd(diags, np.stack([rows, slots], axis=1))
    return tf.scatter_nd(np.stack([rows, cols], axis=1), values, [n, n])


def dense_to_band(dense, lower, upper, cyclic=False):
    """The `(n, k)` diagonal storage of the band of `dense` (padding is 0).

    Entries of `dense` outside the band are dropped.

    Example:

    >>> dense_to_band(tf.constant([[1., 4.], [2., 3.]]), lower=1, upper=0).numpy()
    array([[0., 1.],
           [2., 3.]], dtype=float32)
    """
    dense = convert(dense, "dense")
    _static_square(dense, "dense")
    n, m = dense.shape
    if m != n:
        raise ValueError(f"`dense` must be square, got shape {dense.shape}.")
    k = band.check_band_args(n, lower, upper, cyclic, name="dense")
    _, rows, slots, cols = _indices(n, lower, upper, cyclic)
    values = tf.gather_nd(dense, np.stack([rows, cols], axis=1))
    return tf.scatter_nd(np.stack([rows, slots], axis=1), values, [n, k])
