"""`band_matmul_tanh` against float64 NumPy: `tanh(addend + x A^T)`.

Every test runs twice through the `impl` fixture (tests/conftest.py): with the
compiled kernel and inside `keras_bandrnn.ops.pure_tf()`.
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


def _inputs(key, n, lower, upper, batch, dtype="float64"):
    gen = rng("tanh", *key)
    x, x64 = random(gen, batch + (n,), dtype)
    d, d64 = random(gen, (n, lower + upper + 1), dtype, scale=0.5)
    z, z64 = random(gen, batch + (n,), dtype)
    w, w64 = random(gen, batch + (n,), dtype)
    return (x, x64), (d, d64), (z, z64), (w, w64)


def _reference(x64, d64, z64, lower, upper, cyclic, dtype="float64"):
    """(tanh(z + x A^T), the scale of its rounding error before the tanh).

    Half types may round the product, and the sum, to their dtype before the
    tanh (the compiled kernel rounds the product; the stock composition both):
    one rounding each, relative to the product and to the sum, which the
    scale includes as `out / acc` times their sizes (tanh is 1-Lipschitz).
    """
    p = ref.band_matmul(x64, d64, lower, upper, cyclic)
    magnitude = np.abs(z64) + ref.magnitude_matmul(x64, d64, lower, upper, cyclic)
    tol = ref.TOLERANCES[tf.as_dtype(dtype).name]
    if tf.as_dtype(dtype).size == 2:
        magnitude = magnitude + tol["out"] / tol["acc"] * (np.abs(p) + np.abs(z64 + p))
    return np.tanh(z64 + p), magnitude


def _check_values(x, x64, d, d64, z, z64, lower, upper, cyclic, dtype):
    y = ops.band_matmul_tanh(x, d, z, lower, upper, cyclic=cyclic)
    assert y.shape == x.shape and y.dtype == dtype
    want, magnitude = _reference(x64, d64, z64, lower, upper, cyclic, dtype)
    # tanh is 1-Lipschitz: the product's error bound carries over, and the
    # tanh itself rounds relative to its value.
    ref.assert_close(numpy64(y), want, magnitude, dtype)
    return y


@pytest.mark.parametrize("band", BANDS, ids=band_id)
def test_values(impl, band):
    n, lower, upper, cyclic = band
    batch = (3,) if n <= 300 else (2,)
    (x, x64), (d, d64), (z, z64), _ = _inputs(("values", band), n, lower, upper, batch)
    _check_values(x, x64, d, d64, z, z64, lower, upper, cyclic, tf.float64)


@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16", "float16"])
@pytest.mark.parametrize(
    "band, batch",
    [
        ((1, 0, 0, False), (1,)),
        ((12, 4, 7, True), (5,)),       # small-batch kernel
        ((40, 39, 0, False), (9,)),     # blocked kernel, one-sided, partial tiles
        ((97, 40, 56, False), (2, 11)),  # k == n, every tile padded
        ((450, 7, 8, True), (70,)),     # two batch blocks of the blocked kernel
        ((1000, 32, 32, False), (64,)),  # the cells' band, split over threads
        ((6500, 32, 32, True), (3,)),   # small batch split over threads
    ],
    ids=lambda v: band_id(v) if len(v) == 4 else "b" + "x".join(map(str, v)),
)
def test_dtypes_and_kernel_paths(impl, band, batch, dtype):
    n, lower, upper, cyclic = band
    (x, x64), (d, d64), (z, z64), _ = _inputs(("paths", band, batch, dtype), n, lower, upper, batch, dtype)
    _check_values(x, x64, d, d64, z, z64, lower, upper, cyclic, dtype)


@pytest.mark.parametrize("batch", [(), (0,), (2, 0, 3), (2, 3, 4)], ids=["rank0", "empty", "empty3", "rank3"])
def test_leading_dims(impl, batch):
    n, lower, upper, cyclic = 9, 2, 3, True
    (x, x64), (d, d64), (z, z64), _ = _inputs(("dims", batch), n, lower, upper, batch)
    _check_values(x, x64, d, d64, z, z64, lower, upper, cyclic, tf.float64)


def test_saturates_without_nan(impl):
    """Large pre-activations give +-1, not NaN (tanh computed, not exp ratios)."""
    x = tf.constant([[1e4, -1e4, 0.0, 3e38]], tf.float32)
    d = tf.ones([4, 1], tf.float32)
    z = tf.constant([[0.0, 0.0, -50.0, 0.0]], tf.float32)
    y = ops.band_matmul_tanh(x, d, z, 0, 0).numpy()
    np.testing.assert_array_equal(y, [[1.0, -1.0, -1.0, 1.0]])


@pytest.mark.parametrize(
    "band, batch, dtype",
    [((7, 3, 1, False), (4,), "float64"), ((33, 0, 17, True), (2, 3), "float64"),
     ((200, 5, 2, True), (16,), "float32"), ((1000, 32, 32, False), (64,), "float32")],
    ids=["open", "cyc-rank2", "blocked", "threads"],
)
def test_gradients(impl, band, batch, dtype):
    """d/dx, d/ddiags and d/daddend of sum(w * y) against the float64 chain
    rule: dz = w (1 - y^2), dx = dz A, dA = dz^T x, daddend = dz."""
    n, lower, upper, cyclic = band
    (x, x64), (d, d64), (z, z64), (w, w64) = _inputs(("grad", band, dtype), n, lower, upper, batch, dtype)
    with tf.GradientTape() as tape:
        tape.watch([x, d, z])
        loss = tf.reduce_sum(w * ops.band_matmul_tanh(x, d, z, lower, upper, cyclic=cyclic))
    dx, dd, dz = tape.gradient(loss, [x, d, z])
    y64, _ = _reference(x64, d64, z64, lower, upper, cyclic)
    dz64 = w64 * (1.0 - y64**2)
    a = ref.dense(d64, lower, upper, cyclic)
    rows = int(np.prod(batch))
    dz2, x2 = dz64.reshape(rows, n), x64.reshape(rows, n)
    mag_dz = np.abs(w64)
    ref.assert_close(numpy64(dz), dz64, mag_dz, dtype, factor=4, what="d/daddend")
    ref.assert_close(numpy64(dx), dz64 @ a, np.abs(dz64) @ np.abs(a) + mag_dz @ np.abs(a), dtype,
                     factor=4, what="d/dx")
    ref.assert_close(
        numpy64(dd), ref.to_diags(dz2.T @ x2, lower, upper, cyclic),
        ref.to_diags(np.abs(w64.reshape(rows, n)).T @ np.abs(x2), lower, upper, cyclic), dtype,
        factor=4, what="d/ddiags",
    )


def test_numerical_gradient_and_second_order(impl):
    """tf.test.compute_gradient in float64, and a second derivative equal to
    the stock composition's."""
    n, lower, upper, cyclic = 6, 1, 2, True
    (x, _), (d, _), (z, _), (w, _) = _inputs(("numeric",), n, lower, upper, (2,))

    def f(x, d, z):
        return ops.band_matmul_tanh(x, d, z, lower, upper, cyclic=cyclic)

    theoretical, numerical = tf.test.compute_gradient(f, [x, d, z])
    for t, m in zip(theoretical, numerical):
        # Central differences of step 2**-10 on a tanh: O(step**2) apart.
        np.testing.assert_allclose(t, m, rtol=1e-5, atol=1e-5)

    def second(fn):
        with tf.GradientTape() as outer:
            outer.watch(d)
            with tf.GradientTape() as inner:
                inner.watch(x)
                loss = tf.reduce_sum(w * fn(x, d, z))
            gx = inner.gradient(loss, x)
            s = tf.reduce_sum(gx * gx)
        return outer.gradient(s, d)

    def composed(x, d, z):
        return tf.tanh(z + ops.band_matmul(x, d, lower, upper, cyclic=cyclic))

    np.testing.assert_allclose(second(f).numpy(), second(composed).numpy(), rtol=1e-10, atol=1e-12)


def test_in_tf_function_with_unknown_shapes(impl):
    n, lower, upper = 20, 3, 2
    (x, x64), (d, d64), (z, z64), _ = _inputs(("fn",), n, lower, upper, (5,), "float32")
    f = tf.function(
        lambda x, d, z: ops.band_matmul_tanh(x, d, z, lower, upper),
        input_signature=[tf.TensorSpec([None, n], tf.float32), tf.TensorSpec([n, None], tf.float32),
                         tf.TensorSpec([None, None], tf.float32)],
    )
    want, magnitude = _reference(x64, d64, z64, lower, upper, False)
    ref.assert_close(numpy64(f(x, d, z)), want, magnitude, "float32")
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="addend"):
        f(x, d, z[:4])


def test_bad_arguments_name_the_argument(impl):
    x = tf.zeros([3, 8])
    d = tf.zeros([8, 3])
    with pytest.raises(ValueError, match="`addend` must have the shape of `x`"):
        ops.band_matmul_tanh(x, d, tf.zeros([3, 7]), 1, 1)
    with pytest.raises(ValueError, match="`addend` must have the shape of `x`"):
        ops.band_matmul_tanh(x, d, tf.zeros([8]), 1, 1)  # no broadcasting
    with pytest.raises(ValueError, match="`addend` has dtype float64"):
        ops.band_matmul_tanh(x, d, tf.zeros([3, 8], tf.float64), 1, 1)
    with pytest.raises(ValueError, match="`diags` has 2 columns"):
        ops.band_matmul_tanh(x, tf.zeros([8, 2]), tf.zeros([3, 8]), 1, 1)
    with pytest.raises(ValueError, match="`addend` has dtype int32"):
        ops.band_matmul_tanh(x, d, tf.zeros([3, 8], tf.int32), 1, 1)
    with pytest.raises(ValueError, match="lower"):
        ops.band_matmul_tanh(x, d, tf.zeros([3, 8]), -1, 3)


def test_docstring_examples(impl):
    """The examples in the band ops' docstrings run and print what they show."""
    import doctest

    from keras_bandrnn.ops import band_ops

    failures, tried = doctest.testmod(band_ops, extraglobs={"tf": tf})
    assert tried >= 9 and failures == 0
