"""`band_to_dense` and `dense_to_band` against the NumPy reference.

These two are built from stock gather/scatter ops whichever implementation is
active, so they are not parametrized by `impl`; their consistency with the
band products is checked under both implementations.
"""

import numpy as np
import pytest
import tensorflow as tf

from keras_bandrnn import ops
from tests import references as ref
from tests.ops.helpers import BANDS
from tests.ops.helpers import band_id
from tests.ops.helpers import numpy64
from tests.ops.helpers import random
from tests.ops.helpers import rng

SMALL = [b for b in BANDS if b[0] <= 300]


@pytest.mark.parametrize("band", SMALL, ids=band_id)
def test_band_to_dense_values_and_gradient(band):
    n, lower, upper, cyclic = band
    gen = rng("to_dense", band)
    d, d64 = random(gen, (n, lower + upper + 1))
    w, w64 = random(gen, (n, n))
    with tf.GradientTape() as tape:
        tape.watch(d)
        a = ops.band_to_dense(d, lower, upper, cyclic=cyclic)
        loss = tf.reduce_sum(w * a)
    assert a.shape == (n, n) and a.dtype == tf.float64
    np.testing.assert_array_equal(numpy64(a), ref.dense(d64, lower, upper, cyclic))
    dd = numpy64(tape.gradient(loss, d))
    np.testing.assert_array_equal(dd, ref.to_diags(w64, lower, upper, cyclic))
    assert (dd[ref.padding_mask(n, lower, upper, cyclic)] == 0).all()


@pytest.mark.parametrize("band", SMALL, ids=band_id)
def test_dense_to_band_values_and_gradient(band):
    n, lower, upper, cyclic = band
    gen = rng("to_band", band)
    a, a64 = random(gen, (n, n))
    u, u64 = random(gen, (n, lower + upper + 1))
    with tf.GradientTape() as tape:
        tape.watch(a)
        d = ops.dense_to_band(a, lower, upper, cyclic=cyclic)
        loss = tf.reduce_sum(u * d)
    assert d.shape == (n, lower + upper + 1) and d.dtype == tf.float64
    d = numpy64(d)
    np.testing.assert_array_equal(d, ref.to_diags(a64, lower, upper, cyclic))
    assert (d[ref.padding_mask(n, lower, upper, cyclic)] == 0).all()
    np.testing.assert_array_equal(numpy64(tape.gradient(loss, a)), ref.dense(u64, lower, upper, cyclic))


@pytest.mark.parametrize("band", [(6, 2, 1, False), (5, 1, 3, True), (9, 8, 8, False)], ids=band_id)
def test_round_trips(band):
    n, lower, upper, cyclic = band
    gen = rng("round", band)
    d64 = np.where(ref.padding_mask(n, lower, upper, cyclic), 0.0, gen.standard_normal((n, lower + upper + 1)))
    a = ops.band_to_dense(d64, lower, upper, cyclic=cyclic)
    np.testing.assert_array_equal(numpy64(ops.dense_to_band(a, lower, upper, cyclic=cyclic)), d64)
    full = gen.standard_normal((n, n))
    banded = ops.band_to_dense(ops.dense_to_band(full, lower, upper, cyclic=cyclic), lower, upper, cyclic=cyclic)
    np.testing.assert_array_equal(numpy64(banded), ref.dense(ref.to_diags(full, lower, upper, cyclic), lower, upper, cyclic))


@pytest.mark.parametrize("fill", [np.nan, np.inf, 1e300], ids=["nan", "inf", "huge"])
def test_band_to_dense_drops_padding(fill):
    n, lower, upper = 5, 3, 4
    pad = ref.padding_mask(n, lower, upper)
    d64 = np.where(pad, fill, rng("drop").standard_normal((n, lower + upper + 1)))
    d = tf.constant(d64)
    with tf.GradientTape() as tape:
        tape.watch(d)
        a = ops.band_to_dense(d, lower, upper)
    np.testing.assert_array_equal(numpy64(a), ref.dense(np.where(pad, 0.0, d64), lower, upper))
    assert (numpy64(tape.gradient(a, d))[pad] == 0).all()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_dense_dtypes(dtype):
    n, lower, upper, cyclic = 7, 2, 3, True
    gen = rng("dense-dtype", dtype)
    d, d64 = random(gen, (n, 6), dtype)
    a = ops.band_to_dense(d, lower, upper, cyclic=cyclic)
    assert a.dtype == dtype
    np.testing.assert_array_equal(numpy64(a), ref.dense(d64, lower, upper, cyclic))
    back = ops.dense_to_band(a, lower, upper, cyclic=cyclic)
    assert back.dtype == dtype
    np.testing.assert_array_equal(numpy64(back), d64)


@pytest.mark.parametrize("band", [(6, 2, 1, False), (5, 1, 3, True), (40, 5, 30, False)], ids=band_id)
def test_consistent_with_band_matmul(impl, band):
    """band_matmul(x, diags) == x @ band_to_dense(diags).T under both implementations."""
    n, lower, upper, cyclic = band
    gen = rng("consistent", band)
    x, _ = random(gen, (3, n))
    d, _ = random(gen, (n, lower + upper + 1))
    a = ops.band_to_dense(d, lower, upper, cyclic=cyclic)
    np.testing.assert_allclose(
        numpy64(ops.band_matmul(x, d, lower, upper, cyclic=cyclic)), numpy64(x @ tf.transpose(a)), atol=1e-12
    )
    np.testing.assert_allclose(
        numpy64(ops.band_matmul(x, d, lower, upper, cyclic=cyclic, transpose=True)), numpy64(x @ a), atol=1e-12
    )
    np.testing.assert_allclose(
        numpy64(ops.band_outer(x, x, lower, upper, cyclic=cyclic)),
        numpy64(ops.dense_to_band(tf.transpose(x) @ x, lower, upper, cyclic=cyclic)), atol=1e-12,
    )


def test_in_tf_function():
    n, lower, upper = 6, 1, 2
    to_dense = tf.function(lambda d: ops.band_to_dense(d, lower, upper))
    to_band = tf.function(lambda a: ops.dense_to_band(a, lower, upper))
    d64 = np.where(ref.padding_mask(n, lower, upper), 0.0, rng("tff-dense").standard_normal((n, 4)))
    a = to_dense(tf.constant(d64))
    np.testing.assert_array_equal(numpy64(a), ref.dense(d64, lower, upper))
    np.testing.assert_array_equal(numpy64(to_band(a)), d64)
