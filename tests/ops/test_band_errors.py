"""Bad arguments of the band ops (SPEC section 3) raise errors naming them.

Python-level checks run against both implementations; the checks that only a
kernel can make (shapes unknown until run time) are `compiled_only`.
"""

import re

import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest
import tensorflow as tf

from keras_bandrnn import ops
from tests import references as ref
from tests.ops.helpers import numpy64
from tests.ops.helpers import rng

ERRORS = (ValueError, tf.errors.InvalidArgumentError)


def names(message, *args):
    """True when `message` names every one of `args`.

    Long names must appear as words; one-letter names ("x", "a", "b") must be
    quoted or used as a name (`a.shape`, `a has`, `input a`, ...), so that the
    article "a" does not count.
    """
    for arg in args:
        a = re.escape(arg)
        if len(arg) > 1:
            pattern = rf"\b{a}\b"
        else:
            pattern = (
                rf"[`'\"]{a}[`'\"]|\b{a}(\.shape|\.dtype|\[|\s*=|\s*\(|:|\s+(has|must|is|and|vs)\b)"
                rf"|\b(input|inputs|argument|and|of|with)\s+[`'\"]?{a}\b"
            )
        if not re.search(pattern, message):
            return False
    return True


def raises_naming(fn, *args, error=ERRORS):
    with pytest.raises(error) as info:
        fn()
    message = str(info.value)
    assert names(message, *args), f"error does not name {args}: {message}"
    return message


def test_names_helper():
    assert names("`a` and `b` must have the same shape", "a", "b")
    assert names("diags has 4 rows", "diags")
    assert not names("must be a float tensor", "a")
    assert not names("cannot multiply", "x")


def f64(shape, key=0):
    return tf.constant(rng("err", shape, key).standard_normal(shape))


# --------------------------------------------------------------------------
# band_matmul


@pytest.mark.parametrize(
    "x_shape, d_shape, lower, upper, cyclic, named",
    [
        ((2, 5), (4, 3), 1, 1, False, ["diags"]),          # diags rows != n
        ((2, 5), (6, 3), 1, 1, True, ["diags"]),
        ((2, 5), (5, 4), 1, 1, False, ["diags"]),          # diags cols != k
        ((2, 5), (5, 2), 0, 2, True, ["diags"]),
        ((2, 5), (5,), 1, 1, False, ["diags"]),            # diags rank 1
        ((2, 5), (1, 5, 3), 1, 1, False, ["diags"]),       # diags rank 3
        ((), (1, 1), 0, 0, False, ["x"]),                  # x scalar
        ((2, 4), (4, 5), 2, 2, True, ["lower", "upper"]),  # k > n, cyclic
        ((2, 4), (4, 5), 4, 0, True, ["lower", "upper"]),
        ((1, 1), (1, 2), 0, 1, True, ["lower", "upper"]),
    ],
)
def test_band_matmul_bad_shapes(impl, x_shape, d_shape, lower, upper, cyclic, named):
    x, d = f64(x_shape), f64(d_shape, 1)
    for transpose in (False, True):
        raises_naming(
            lambda: ops.band_matmul(x, d, lower, upper, cyclic=cyclic, transpose=transpose), *named
        )


@pytest.mark.parametrize(
    "lower, upper, named",
    [
        (-1, 1, "lower"), (1, -1, "upper"), (-3, -3, "lower"),
        (1.5, 1, "lower"), (1.0, 1, "lower"), ("1", 1, "lower"), (None, 1, "lower"),
        (1, 2.0, "upper"), (1, None, "upper"), (1, np.float32(1), "upper"), (True, 1, "lower"),
    ],
)
def test_bad_widths(impl, lower, upper, named):
    x, d = f64((2, 5)), f64((5, 3), 1)
    raises_naming(lambda: ops.band_matmul(x, d, lower, upper), named)
    raises_naming(lambda: ops.band_outer(x, x, lower, upper), named)
    raises_naming(lambda: ops.band_to_dense(d, lower, upper), named)
    raises_naming(lambda: ops.dense_to_band(f64((5, 5)), lower, upper), named)


def test_numpy_integer_widths_are_accepted(impl):
    x, d = f64((2, 5)), f64((5, 3), 1)
    y = ops.band_matmul(x, d, np.int64(1), np.int32(1))
    np.testing.assert_allclose(numpy64(y), ref.band_matmul(numpy64(x), numpy64(d), 1, 1), atol=1e-12)


@pytest.mark.parametrize(
    "x_dtype, d_dtype, named",
    [
        (tf.int32, tf.int32, ["x"]),
        (tf.float32, tf.int32, ["diags"]),
        (tf.int64, tf.float32, ["x"]),
        (tf.complex64, tf.complex64, ["x"]),
        (tf.float32, tf.complex128, ["diags"]),
        (tf.float32, tf.float64, ["x", "diags"]),   # mismatched dtypes
        (tf.bfloat16, tf.float16, ["x", "diags"]),
        (tf.string, tf.float32, ["x"]),
        (tf.bool, tf.bool, ["x"]),
    ],
)
def test_band_matmul_bad_dtypes(impl, x_dtype, d_dtype, named):
    def make(shape, dtype):
        if dtype == tf.string:
            return tf.fill(shape, "s")
        if dtype == tf.bool:
            return tf.zeros(shape, tf.bool)
        return tf.cast(tf.ones(shape), dtype)

    x, d = make((2, 5), x_dtype), make((5, 3), d_dtype)
    raises_naming(lambda: ops.band_matmul(x, d, 1, 1), *named)


# --------------------------------------------------------------------------
# band_outer


@pytest.mark.parametrize(
    "a_shape, b_shape, lower, upper, cyclic, named",
    [
        ((2, 5), (3, 5), 1, 1, False, ["a", "b"]),         # batch mismatch
        ((2, 5), (2, 4), 1, 1, False, ["a", "b"]),         # n mismatch
        ((2, 3, 5), (6, 5), 1, 1, False, ["a", "b"]),      # rank mismatch, same size
        ((5,), (1, 5), 0, 0, True, ["a", "b"]),
        ((), (), 0, 0, False, ["a"]),                      # scalars
        ((2, 4), (2, 4), 2, 2, True, ["lower", "upper"]),  # k > n, cyclic
    ],
)
def test_band_outer_bad_shapes(impl, a_shape, b_shape, lower, upper, cyclic, named):
    a, b = f64(a_shape), f64(b_shape, 1)
    raises_naming(lambda: ops.band_outer(a, b, lower, upper, cyclic=cyclic), *named)


@pytest.mark.parametrize(
    "a_dtype, b_dtype, named",
    [
        (tf.int32, tf.int32, ["a"]),
        (tf.float32, tf.int32, ["b"]),
        (tf.complex64, tf.complex64, ["a"]),
        (tf.float64, tf.float32, ["a", "b"]),
        (tf.float16, tf.bfloat16, ["a", "b"]),
    ],
)
def test_band_outer_bad_dtypes(impl, a_dtype, b_dtype, named):
    a, b = tf.cast(tf.ones((2, 5)), a_dtype), tf.cast(tf.ones((2, 5)), b_dtype)
    raises_naming(lambda: ops.band_outer(a, b, 1, 1), *named)


# --------------------------------------------------------------------------
# band_to_dense / dense_to_band


def test_dense_conversion_errors():
    raises_naming(lambda: ops.band_to_dense(f64((5, 4)), 1, 1), "diags")   # k mismatch
    raises_naming(lambda: ops.band_to_dense(f64((5,)), 0, 0), "diags")     # rank 1
    raises_naming(lambda: ops.band_to_dense(f64((4, 5)), 2, 2, cyclic=True), "lower", "upper")
    raises_naming(lambda: ops.band_to_dense(tf.ones((5, 3), tf.int32), 1, 1), "diags")
    raises_naming(lambda: ops.dense_to_band(f64((3, 4)), 1, 1), "dense")   # not square
    raises_naming(lambda: ops.dense_to_band(f64((2, 3, 3)), 1, 1), "dense")
    raises_naming(lambda: ops.dense_to_band(tf.ones((3, 3), tf.complex64), 1, 1), "dense")
    raises_naming(lambda: ops.dense_to_band(f64((3, 3)), 2, 1, cyclic=True), "lower", "upper")
    raises_naming(lambda: ops.dense_to_band(f64((3, 3)), -1, 1), "lower")


# --------------------------------------------------------------------------
# Shapes unknown while tracing: the checks happen at run time


def _fn(op, *specs, **attrs):
    return tf.function(lambda *args: op(*args, **attrs), input_signature=list(specs))


S = tf.TensorSpec


def test_run_time_checks_with_known_n(impl):
    """n is static, the rest is not: both implementations check at run time."""
    fn = _fn(ops.band_matmul, S([None, 5], tf.float64), S([None, None], tf.float64), lower=1, upper=1)
    raises_naming(lambda: fn(f64((2, 5)), f64((4, 3))), "diags")
    raises_naming(lambda: fn(f64((2, 5)), f64((6, 3))), "diags")
    raises_naming(lambda: fn(f64((2, 5)), f64((5, 4))), "diags")
    raises_naming(lambda: fn(f64((2, 5)), f64((5, 2))), "diags")
    fn = _fn(ops.band_outer, S([None, 5], tf.float64), S([None, 5], tf.float64), lower=1, upper=1)
    raises_naming(lambda: fn(f64((2, 5)), f64((3, 5))), "a", "b")
    fn = _fn(ops.band_outer, S([None, None, 5], tf.float64), S([None, None, 5], tf.float64), lower=0, upper=2)
    raises_naming(lambda: fn(f64((2, 3, 5)), f64((3, 2, 5))), "a", "b")


def test_kernel_checks_with_unknown_shapes(compiled_only):
    """Nothing is static: the compiled kernels raise InvalidArgumentError."""
    error = tf.errors.InvalidArgumentError
    dyn = S([None, None], tf.float64)
    for transpose in (False, True):
        fn = _fn(ops.band_matmul, dyn, dyn, lower=1, upper=1, transpose=transpose)
        raises_naming(lambda: fn(f64((2, 5)), f64((4, 3))), "diags", error=error)
        raises_naming(lambda: fn(f64((2, 5)), f64((5, 4))), "diags", error=error)
        fn = _fn(ops.band_matmul, dyn, dyn, lower=2, upper=2, cyclic=True, transpose=transpose)
        raises_naming(lambda: fn(f64((2, 4)), f64((4, 5))), "lower", "upper", error=error)
        fn = _fn(ops.band_matmul, S(None, tf.float64), S(None, tf.float64), lower=1, upper=1,
                 transpose=transpose)
        raises_naming(lambda: fn(f64((2, 5)), f64((1, 5, 3))), "diags", error=error)
        raises_naming(lambda: fn(f64(()), f64((1, 3))), "x", error=error)
    fn = _fn(ops.band_outer, dyn, dyn, lower=1, upper=1)
    raises_naming(lambda: fn(f64((2, 5)), f64((3, 5))), "a", "b", error=error)
    raises_naming(lambda: fn(f64((2, 5)), f64((2, 4))), "a", "b", error=error)
    fn = _fn(ops.band_outer, dyn, dyn, lower=3, upper=1, cyclic=True)
    raises_naming(lambda: fn(f64((2, 4)), f64((2, 4))), "lower", "upper", error=error)
    fn = _fn(ops.band_outer, S(None, tf.float64), S(None, tf.float64), lower=0, upper=0)
    raises_naming(lambda: fn(f64(()), f64(())), "a", error=error)
    raises_naming(lambda: fn(f64((2, 3, 5)), f64((6, 5))), "a", "b", error=error)


# --------------------------------------------------------------------------
# Property: the right answer or a clean error, never anything else


@st.composite
def band_cases(draw):
    n = draw(st.integers(0, 24))
    lower = draw(st.one_of(st.integers(0, n + 2), st.just(-1)))
    upper = draw(st.one_of(st.integers(0, n + 2), st.just(-1)))
    cyclic = draw(st.booleans())
    batch = tuple(draw(st.lists(st.sampled_from([0, 1, 2, 3, 17]), max_size=3)))
    # Off-by-one diags shape or a mismatched b, now and then.
    rows_off = draw(st.sampled_from([0, 0, 0, 0, 0, -1, 1]))
    cols_off = draw(st.sampled_from([0, 0, 0, 0, 0, -1, 1]))
    b_off = draw(st.sampled_from([0, 0, 0, 0, 0, 1]))
    return dict(
        n=n, lower=lower, upper=upper, cyclic=cyclic, batch=batch,
        transpose=draw(st.booleans()), rows_off=rows_off, cols_off=cols_off, b_off=b_off,
        in_function=draw(st.booleans()),
    )


@hypothesis.settings(
    max_examples=50, deadline=None, derandomize=True, database=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)
@hypothesis.given(case=band_cases())
def test_property_answer_or_clean_error(impl, case):
    n, lower, upper, cyclic = case["n"], case["lower"], case["upper"], case["cyclic"]
    k = max(lower, 0) + max(upper, 0) + 1
    widths_ok = lower >= 0 and upper >= 0 and not (cyclic and k > n)
    d_shape = (max(n + case["rows_off"], 0), max(k + case["cols_off"], 0))
    gen = rng("property", sorted(case.items()))
    x64 = gen.standard_normal(case["batch"] + (n,))
    d64 = gen.standard_normal(d_shape)
    if not case["b_off"]:
        b_shape = case["batch"] + (n,)
    elif case["batch"]:
        b_shape = (case["batch"][0] + 1,) + case["batch"][1:] + (n,)
    else:
        b_shape = (1, n)
    b64 = gen.standard_normal(b_shape)

    def matmul(x, d):
        return ops.band_matmul(x, d, lower, upper, cyclic=cyclic, transpose=case["transpose"])

    def outer(a, b):
        return ops.band_outer(a, b, lower, upper, cyclic=cyclic)

    def matmul_tanh(x, d, z):
        return ops.band_matmul_tanh(x, d, z, lower, upper, cyclic=cyclic)

    if case["in_function"]:  # leading dims unknown while tracing, n static
        lead = [None] * len(case["batch"])
        b_spec = S([None] * (len(b_shape) - 1) + [n], tf.float64)
        matmul = tf.function(matmul, input_signature=[S(lead + [n], tf.float64), S(d_shape, tf.float64)])
        outer = tf.function(outer, input_signature=[S(lead + [n], tf.float64), b_spec])
        matmul_tanh = tf.function(matmul_tanh, input_signature=[
            S(lead + [n], tf.float64), S(d_shape, tf.float64), b_spec,
        ])

    matmul_ok = widths_ok and d_shape == (n, k)
    try:
        y = matmul(tf.constant(x64), tf.constant(d64))
    except ERRORS as e:
        assert not matmul_ok, f"valid band_matmul arguments were refused: {e}"
    else:
        assert matmul_ok, "band_matmul accepted invalid arguments"
        ref.assert_close(
            numpy64(y), ref.band_matmul(x64, d64, lower, upper, cyclic, case["transpose"]),
            ref.magnitude_matmul(x64, d64, lower, upper, cyclic, case["transpose"]), "float64",
        )

    # b as the addend of band_matmul_tanh (b_off: not x's shape).
    tanh_ok = matmul_ok and not case["b_off"]
    try:
        y = matmul_tanh(tf.constant(x64), tf.constant(d64), tf.constant(b64))
    except ERRORS as e:
        assert not tanh_ok, f"valid band_matmul_tanh arguments were refused: {e}"
    else:
        assert tanh_ok, "band_matmul_tanh accepted invalid arguments"
        ref.assert_close(
            numpy64(y), np.tanh(b64 + ref.band_matmul(x64, d64, lower, upper, cyclic)),
            np.abs(b64) + ref.magnitude_matmul(x64, d64, lower, upper, cyclic), "float64",
        )

    outer_ok = widths_ok and not case["b_off"]
    try:
        g = outer(tf.constant(x64), tf.constant(b64))
    except ERRORS as e:
        assert not outer_ok, f"valid band_outer arguments were refused: {e}"
    else:
        assert outer_ok, "band_outer accepted invalid arguments"
        ref.assert_close(
            numpy64(g), ref.band_outer(x64, b64, lower, upper, cyclic),
            ref.magnitude_outer(x64, b64, lower, upper, cyclic), "float64",
        )
