"""The fused band-RNN step `band_rnn_step` against dense float64 NumPy.

`activation(z + band_matmul(h, diags))`, its gradients and second
derivatives, through both implementations (the `impl` fixture): the fused
`BandRnnStep` / `BandRnnStepGrad` kernels and the pure-TF composition.
"""

import numpy as np
import pytest
import tensorflow as tf

from keras_bandrnn import _lib
from keras_bandrnn.ops import band_ops
from tests import references as ref
from tests.ops.helpers import BANDS
from tests.ops.helpers import band_id
from tests.ops.helpers import numpy64
from tests.ops.helpers import random
from tests.ops.helpers import rng

ACTIVATIONS = ["tanh", "sigmoid", "relu", "linear"]

# NumPy activations and their derivatives written with the output.
NP_ACT = {
    "tanh": (np.tanh, lambda y: 1 - y * y),
    "sigmoid": (lambda v: 1 / (1 + np.exp(-v)), lambda y: y * (1 - y)),
    "relu": (lambda v: np.maximum(v, 0), lambda y: (y > 0).astype(np.float64)),
    "linear": (lambda v: v, lambda y: np.ones_like(y)),
}

# Bands up to n = 300 (the larger ones only add run time here) plus n = 896
# with the cells' half-width 32, batch 64: the benchmark's shape.
STEP_BANDS = [b for b in BANDS if b[0] <= 300] + [(896, 32, 32, False)]


def _batch(n):
    return 64 if n == 896 else 3


def _inputs(key, n, lower, upper, batch, dtype):
    gen = rng("step", *key)
    z, z64 = random(gen, (batch, n), dtype)
    h, h64 = random(gen, (batch, n), dtype)
    d, d64 = random(gen, (n, lower + upper + 1), dtype, scale=0.5)
    w, w64 = random(gen, (batch, n), dtype)
    return (z, z64), (h, h64), (d, d64), (w, w64)


def uses_fused_op(fn, *args):
    """Whether the traced graph of `fn(*args)` contains the BandRnnStep op."""
    graph = tf.function(fn).get_concrete_function(*args).graph
    return any(op.type == "BandRnnStep" for op in graph.get_operations())


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("band", STEP_BANDS, ids=band_id)
def test_values_and_gradients(impl, band, activation):
    n, lower, upper, cyclic = band
    batch = _batch(n)
    (z, z64), (h, h64), (d, d64), (w, w64) = _inputs(band, n, lower, upper, batch, "float64")
    with tf.GradientTape() as tape:
        tape.watch([z, h, d])
        out = band_ops.band_rnn_step(z, h, d, lower, upper, cyclic, activation)
        loss = tf.reduce_sum(w * out)
    dz, dh, dd = tape.gradient(loss, [z, h, d])

    act, deriv = NP_ACT[activation]
    a = ref.dense(d64, lower, upper, cyclic)
    pre = z64 + h64 @ a.T
    want = act(pre)
    mag = np.abs(z64) + np.abs(h64) @ np.abs(a).T
    ref.assert_close(numpy64(out), want, mag, "float64", what="out")
    dz_want = w64 * deriv(want)
    # dz inherits the output's rounding (scale `mag`) through act'(out).
    dz_mag = np.abs(w64) * (1 + mag)
    ref.assert_close(numpy64(dz), dz_want, dz_mag, "float64", factor=10, what="dz")
    ref.assert_close(numpy64(dh), dz_want @ a, dz_mag @ np.abs(a), "float64",
                     factor=10, what="dh")
    ref.assert_close(
        numpy64(dd),
        ref.to_diags(dz_want.T @ h64, lower, upper, cyclic),
        ref.to_diags(dz_mag.T @ np.abs(h64), lower, upper, cyclic),
        "float64", factor=10, what="ddiags",
    )
    if not cyclic:  # padding entries get exactly zero gradient
        assert np.all(numpy64(dd)[ref.padding_mask(n, lower, upper)] == 0)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
@pytest.mark.parametrize("band", [(17, 3, 5, False), (100, 7, 2, True), (896, 32, 32, False)],
                         ids=band_id)
def test_low_precision(impl, band, activation, dtype):
    n, lower, upper, cyclic = band
    batch = _batch(n)
    (z, z64), (h, h64), (d, d64), (w, w64) = _inputs(band, n, lower, upper, batch, dtype)
    with tf.GradientTape() as tape:
        tape.watch([h, d])
        out = band_ops.band_rnn_step(z, h, d, lower, upper, cyclic, activation)
        loss = tf.reduce_sum(tf.cast(w, out.dtype) * out)
    dh, dd = tape.gradient(loss, [h, d])
    assert out.dtype == z.dtype and dh.dtype == z.dtype and dd.dtype == z.dtype
    act, deriv = NP_ACT[activation]
    a = ref.dense(d64, lower, upper, cyclic)
    want = act(z64 + h64 @ a.T)
    # The product is rounded to `dtype` before z is added (as in the unfused
    # ops), so the bound scales with |z| + |h| |A|^T, not with the result; the
    # activation's slope is at most 1.
    eps = {"float32": 2.0**-23, "bfloat16": 2.0**-8, "float16": 2.0**-10}[dtype]
    mag = np.abs(z64) + np.abs(h64) @ np.abs(a).T
    err = np.abs(numpy64(out) - want)
    assert np.all(err <= 4 * eps * (mag + np.abs(want)) + 1e-6), err.max()
    dz = w64 * deriv(numpy64(out))
    err = np.abs(numpy64(dh) - dz @ a)
    assert np.all(err <= 4 * eps * (np.abs(w64) @ np.abs(a)) + 1e-6), err.max()


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("band", [(7, 3, 1, False), (7, 1, 3, True), (5, 2, 2, True)],
                         ids=band_id)
def test_second_derivatives_match_numerical(impl, band, activation):
    """The gradient of the gradient (BandRnnStepGrad's own gradient)."""
    n, lower, upper, cyclic = band
    (z, _), (h, _), (d, _), (w, _) = _inputs(band, n, lower, upper, 2, "float64")
    if activation == "relu":  # keep pre-activations away from the kink
        z = z + tf.sign(z) * 2.0

    def first_grads(z, h, d):
        with tf.GradientTape() as tape:
            tape.watch([z, h, d])
            loss = tf.reduce_sum(w * band_ops.band_rnn_step(z, h, d, lower, upper, cyclic, activation))
        gz, gh, gd = tape.gradient(loss, [z, h, d])
        # A scalar that depends on all three first derivatives nonlinearly.
        return tf.reduce_sum(gz * gz) + tf.reduce_sum(tf.sin(gh)) + tf.reduce_sum(gd * gd * gd)

    theoretical, numerical = tf.test.compute_gradient(first_grads, [z, h, d], delta=1e-6)
    for t, nm, what in zip(theoretical, numerical, ["z", "h", "diags"]):
        np.testing.assert_allclose(t, nm, rtol=1e-5, atol=1e-6, err_msg=what)


def test_fused_op_is_used_when_compiled(impl):
    z = tf.zeros([2, 8])
    d = tf.zeros([8, 3])
    fused = uses_fused_op(lambda z, h: band_ops.band_rnn_step(z, h, d, 1, 1), z, z)
    expect = impl.compiled and not tf.config.list_logical_devices("GPU")
    assert fused == expect


def test_empty_batch(impl):
    z = tf.zeros([0, 9])
    d = tf.ones([9, 5])
    with tf.GradientTape() as tape:
        tape.watch([z, d])
        out = band_ops.band_rnn_step(z, z, d, 2, 2)
        loss = tf.reduce_sum(out)
    dz, dd = tape.gradient(loss, [z, d])
    assert out.shape == (0, 9) and dz.shape == (0, 9)
    np.testing.assert_array_equal(dd.numpy(), np.zeros((9, 5), np.float32))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(z=tf.zeros([2, 8]), h=tf.zeros([2, 7]), diags=tf.zeros([7, 3])), "`z` and `h`"),
        (dict(z=tf.zeros([2, 8]), h=tf.zeros([2, 8]), diags=tf.zeros([8, 4])), "diags"),
        (dict(z=tf.zeros([2, 8]), h=tf.zeros([2, 8], tf.float64), diags=tf.zeros([8, 3])), "dtype"),
        (dict(z=tf.zeros([2, 8]), h=tf.zeros([2, 8]), diags=tf.zeros([8, 3]), activation="elu"),
         "`activation`"),
    ],
)
def test_bad_arguments_raise_value_error(impl, kwargs, match):
    kwargs = {"lower": 1, "upper": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        band_ops.band_rnn_step(**kwargs)


def test_kernel_checks_its_inputs():
    """The kernels' own checks (shapes unknown until run time)."""
    lib = _lib.op_library()
    if lib is None:
        pytest.skip("the compiled op library is not loaded")
    x = tf.zeros([2, 8])
    cases = [
        (lambda: lib.band_rnn_step(x, tf.zeros([2, 7]), tf.zeros([7, 3]), lower=1, upper=1), "`z`"),
        (lambda: lib.band_rnn_step(x, x, tf.zeros([8, 4]), lower=1, upper=1), "diags"),
        (lambda: lib.band_rnn_step(x, x, tf.zeros([8, 9]), lower=4, upper=4, cyclic=True), "cyclic"),
        (lambda: lib.band_rnn_step_grad(x, tf.zeros([3, 8]), x, tf.zeros([8, 3]), lower=1, upper=1),
         "`out`"),
        (lambda: lib.band_rnn_step_grad(tf.zeros([2, 9]), x, x, tf.zeros([8, 3]), lower=1, upper=1),
         "`dout`"),
    ]
    for make, match in cases:
        with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=match):
            make()
    # And inside a graph whose shapes are unknown until run time.
    fn = tf.function(
        lambda a, b, d: lib.band_rnn_step(a, b, d, lower=1, upper=1),
        input_signature=[tf.TensorSpec(None, tf.float32)] * 3,
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="`z` must have the shape of `h`"):
        fn(x, tf.zeros([3, 8]), tf.zeros([8, 3]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="diags"):
        fn(x, x, tf.zeros([8, 2]))
