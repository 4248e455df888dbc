"""block_gru_update against a float64 NumPy reference, both implementations."""

import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest
import tensorflow as tf

from keras_bandrnn import _lib
from keras_bandrnn.ops import block_gru_update

TOL = {
    tf.float64: dict(rtol=1e-12, atol=1e-12),
    tf.float32: dict(rtol=1e-5, atol=1e-5),
    tf.float16: dict(rtol=1e-2, atol=1e-2),
    tf.bfloat16: dict(rtol=2e-2, atol=2e-2),
}


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def reference(h, xp, hp, gate, bias):
    """The op's formula, unit by unit, in float64."""
    B, n = h.shape
    g = gate.shape[1]
    L = n // g
    out = h.copy()
    for b in range(B):
        for u in range(n):
            i, j = divmod(u, L)
            if not gate[b, i] > 0:
                continue
            z = np.tanh(gate[b, i])
            cr, ch = 2 * i * L + j, 2 * i * L + L + j
            r = sigmoid(xp[b, cr] + bias[cr] + hp[b, cr])
            hc = np.tanh(xp[b, ch] + bias[ch] + r * hp[b, ch])
            out[b, u] = (1 - z) * h[b, u] + z * hc
    return out


def make_inputs(rng, batch, n, g, dtype, closed=0.5):
    """Random inputs, rounded through `dtype`; about `closed` of the gates <= 0."""
    h = np.tanh(rng.standard_normal((batch, n)))
    xp, hp = rng.standard_normal((2, batch, 2 * n))
    bias = rng.standard_normal(2 * n) * 0.5
    gate = rng.random((batch, g)) * 2.0
    gate[rng.random((batch, g)) < closed] = 0.0
    if gate.size > 2:
        gate.flat[1] = -0.25  # negative: closed too
    arrays = [h, xp, hp, gate, bias]
    return [tf.cast(a, dtype).numpy().astype(np.float64) for a in arrays]


@pytest.mark.parametrize("dtype", [tf.float64, tf.float32, tf.float16, tf.bfloat16])
@pytest.mark.parametrize(
    "batch, n, g",
    # L = 3, 12, 1, 16, 16, 20 (a whole 16-float chunk and a partial one), 16.
    [(3, 12, 4), (5, 12, 1), (4, 12, 12), (2, 64, 4), (7, 48, 3), (3, 40, 2), (64, 256, 16)],
)
def test_matches_reference(impl, dtype, batch, n, g):
    rng = np.random.default_rng(batch * 1000 + n + g)
    args = make_inputs(rng, batch, n, g, dtype)
    out = block_gru_update(*(tf.constant(a, dtype) for a in args))
    assert out.dtype == dtype and out.shape == (batch, n)
    want = reference(*args)
    np.testing.assert_allclose(tf.cast(out, tf.float64).numpy(), want, **TOL[dtype])


@pytest.mark.parametrize("dtype", [tf.float32, tf.float16])
def test_closed_blocks_keep_h_bit_exactly(impl, dtype):
    rng = np.random.default_rng(7)
    h, xp, hp, gate, bias = make_inputs(rng, 6, 32, 8, dtype)
    gate[0, 2] = np.nan  # NaN is not > 0: closed
    xp[:, :] = np.where(rng.random(xp.shape) < 0.1, np.inf, xp)  # closed blocks ignore these
    out = block_gru_update(*(tf.constant(a, dtype) for a in (h, xp, hp, gate, bias))).numpy()
    closed = np.repeat(~(gate > 0), 4, axis=1)
    assert closed.any() and (~closed).any()
    np.testing.assert_array_equal(out[closed], tf.cast(h, dtype).numpy()[closed])


def test_all_open_and_all_closed(impl):
    rng = np.random.default_rng(3)
    h, xp, hp, gate, bias = make_inputs(rng, 4, 20, 5, tf.float64, closed=0.0)
    gate = np.abs(gate) + 0.1
    out = block_gru_update(h, xp, hp, gate, bias).numpy()
    np.testing.assert_allclose(out, reference(h, xp, hp, gate, bias), rtol=1e-12, atol=1e-12)
    out = block_gru_update(h, xp, hp, np.zeros_like(gate), bias).numpy()
    np.testing.assert_array_equal(out, h)


@pytest.mark.parametrize("batch, n, g", [(0, 8, 2), (3, 0, 1), (0, 0, 4)])
def test_empty(impl, batch, n, g):
    args = [np.zeros(s, np.float32) for s in ((batch, n), (batch, 2 * n), (batch, 2 * n), (batch, g), (2 * n,))]
    out = block_gru_update(*args)
    assert out.shape == (batch, n)


def test_inside_tf_function_with_unknown_shapes(impl):
    rng = np.random.default_rng(11)
    args = make_inputs(rng, 5, 24, 6, tf.float32)
    spec2 = tf.TensorSpec([None, None], tf.float32)
    fn = tf.function(block_gru_update, input_signature=[spec2] * 4 + [tf.TensorSpec([None], tf.float32)])
    out = fn(*(tf.constant(a, tf.float32) for a in args))
    np.testing.assert_allclose(out.numpy(), reference(*args), **TOL[tf.float32])


def test_gradients_match_finite_differences(impl):
    rng = np.random.default_rng(5)
    h, xp, hp, gate, bias = make_inputs(rng, 3, 12, 3, tf.float64, closed=0.3)
    # No gate near 0, where a finite difference would open or close a block.
    gate = np.where(gate > 0, gate + 0.05, -0.5)
    theoretical, numerical = tf.test.compute_gradient(
        block_gru_update, [tf.constant(a) for a in (h, xp, hp, gate, bias)]
    )
    for t, nmr in zip(theoretical, numerical):
        np.testing.assert_allclose(t, nmr, rtol=1e-6, atol=1e-6)


def test_gradients_are_the_compositions(impl):
    """Compiled op and pure-TF composition give the same gradients."""
    from keras_bandrnn.ops import block_gru_update_fallback

    rng = np.random.default_rng(9)
    args = [tf.constant(a) for a in make_inputs(rng, 4, 16, 4, tf.float64)]
    dout = tf.constant(rng.standard_normal((4, 16)))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(args)
        a = block_gru_update(*args)
        b = block_gru_update_fallback.block_gru_update(*args)
    ga = tape.gradient(a, args, dout)
    gb = tape.gradient(b, args, dout)
    for x, y in zip(ga, gb):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-12, atol=1e-12)


BAD = [
    # (shapes of h, xp, hp, gate, bias; name in the message)
    ([(2, 4), (2, 7), (2, 8), (2, 2), (8,)], "`xp`"),
    ([(2, 4), (2, 8), (3, 8), (2, 2), (8,)], "`hp`"),
    ([(2, 4), (2, 8), (2, 8), (2, 3), (8,)], "`gate`"),
    ([(2, 4), (2, 8), (2, 8), (1, 2), (8,)], "`gate`"),
    ([(2, 4), (2, 8), (2, 8), (2, 0), (8,)], "`gate`"),
    ([(2, 4), (2, 8), (2, 8), (2, 2), (4,)], "`bias`"),
    ([(2, 4, 1), (2, 8), (2, 8), (2, 2), (8,)], "`h`"),
]


@pytest.mark.parametrize("shapes, name", BAD)
def test_bad_shapes_raise_value_error_naming_the_argument(impl, shapes, name):
    args = [np.zeros(s, np.float32) for s in shapes]
    with pytest.raises(ValueError, match=name):
        block_gru_update(*args)


def test_mismatched_dtype_is_named(impl):
    args = [np.zeros(s, np.float32) for s in ((2, 4), (2, 8), (2, 8), (2, 2), (8,))]
    args[3] = args[3].astype(np.float64)
    with pytest.raises(ValueError, match="`gate`"):
        block_gru_update(*args)


@pytest.mark.parametrize("shapes, name", BAD)
def test_kernel_validates_its_inputs(shapes, name):
    """Shapes known only at run time reach the kernel's OP_REQUIRES checks."""
    lib = _lib.op_library()
    if lib is None:
        pytest.fail(f"op library not loaded: {_lib.fallback_reason()}", pytrace=False)
    fn = tf.function(lib.block_gru_update, input_signature=[tf.TensorSpec(None, tf.float32)] * 5)
    with pytest.raises(tf.errors.InvalidArgumentError, match=name):
        fn(*(tf.zeros(s) for s in shapes))


def test_kernel_updates_in_place_without_changing_the_callers_h():
    """The kernel may reuse h's buffer only when nothing else holds h."""
    rng = np.random.default_rng(2)
    h, xp, hp, gate, bias = (tf.constant(a, tf.float32) for a in make_inputs(rng, 4, 16, 4, tf.float32))
    before = h.numpy().copy()

    @tf.function
    def step(h):
        h2 = h * 1.0  # a temporary the op may overwrite
        return block_gru_update(h2, xp, hp, gate, bias), h

    out, h_again = step(h)
    np.testing.assert_array_equal(h_again.numpy(), before)
    np.testing.assert_allclose(out.numpy(), reference(before.astype(np.float64), *(
        a.numpy().astype(np.float64) for a in (xp, hp, gate, bias))), rtol=1e-5, atol=1e-5)


# -- Property: the right answer or a clean error, never anything else ---------


@st.composite
def update_cases(draw):
    batch = draw(st.sampled_from([0, 1, 2, 5]))
    g = draw(st.integers(0, 6))
    L = draw(st.sampled_from([1, 2, 3, 16, 17]))
    n = g * L + draw(st.sampled_from([0, 0, 0, 1]))  # now and then not a multiple
    offsets = [draw(st.sampled_from([0, 0, 0, 0, 0, 1])) for _ in range(4)]  # xp, hp, gate rows, bias
    return dict(batch=batch, g=g, n=n, offsets=offsets, in_function=draw(st.booleans()))


@hypothesis.settings(
    max_examples=60, deadline=None, derandomize=True, database=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)
@hypothesis.given(case=update_cases())
def test_property_answer_or_clean_error(impl, case):
    batch, g, n = case["batch"], case["g"], case["n"]
    dx, dh, dg, db = case["offsets"]
    shapes = [(batch, n), (batch, 2 * n + dx), (batch + dh, 2 * n), (batch + dg, g), (2 * n + db,)]
    rng = np.random.default_rng(batch * 100 + g * 10 + n)
    args = [rng.standard_normal(s) for s in shapes]
    fn = block_gru_update
    if case["in_function"]:  # every size unknown while tracing: the kernel checks
        fn = tf.function(fn, input_signature=[tf.TensorSpec([None] * len(s), tf.float64) for s in shapes])
    valid = g >= 1 and n % g == 0 and not any(case["offsets"])
    try:
        out = fn(*(tf.constant(a) for a in args))
    except (ValueError, tf.errors.InvalidArgumentError) as e:
        assert not valid, f"valid arguments were refused: {e}"
    else:
        assert valid, "invalid arguments were accepted"
        np.testing.assert_allclose(out.numpy(), reference(*args), rtol=1e-12, atol=1e-12)
