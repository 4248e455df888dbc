"""`band_matmul` and `band_outer`: products with a banded matrix (SPEC section 3),
and `band_matmul_tanh`, the band cells' fused step.

The two ops and the transposed product are each other's gradients, so every
derivative, of any order, stays inside the op family and keeps linear cost.
"""

import tensorflow as tf

from keras_bandrnn import band
from keras_bandrnn.ops import band_fallback
from keras_bandrnn.ops import dispatch

SUPPORTED_DTYPES = (tf.float32, tf.float64, tf.bfloat16, tf.float16)


def convert(value, name, dtype=None):
    """Converts to a float tensor of a supported dtype, naming `name` on error."""
    if isinstance(value, tf.Tensor) and dtype is None:
        t = value  # the common case; convert_to_tensor costs microseconds per call
    else:
        try:
            t = tf.convert_to_tensor(value, dtype=dtype)
        except (TypeError, ValueError) as e:
            raise ValueError(f"`{name}` must be a float tensor: {e}") from None
    if t.dtype not in SUPPORTED_DTYPES:
        raise ValueError(
            f"`{name}` has dtype {t.dtype.name}; supported dtypes are "
            f"{', '.join(d.name for d in SUPPORTED_DTYPES)}."
        )
    return t


def _check_same_dtype(a, a_name, b, b_name):
    if a.dtype != b.dtype:
        raise ValueError(
            f"`{b_name}` has dtype {b.dtype.name} but `{a_name}` has "
            f"{a.dtype.name}; they must match."
        )


def _last_dim(t, name):
    """n of a `(..., n)` argument (None if unknown); a ValueError for a scalar."""
    shape = t.shape
    if shape.rank is None:
        return None
    if shape.rank < 1:
        raise ValueError(f"`{name}` must have rank >= 1 (shape (..., n)), got a scalar.")
    return shape[-1]


def _check_diags(diags, n, k):
    shape = diags.shape
    if shape.rank is not None and shape.rank != 2:
        raise ValueError(f"`diags` must have shape (n, k), got {shape}.")
    if shape.rank == 2:
        dn, dk = shape
        if dn is not None and n is not None and dn != n:
            raise ValueError(f"`diags` has {dn} rows but `x` has n={n} columns.")
        if dk is not None and dk != k:
            raise ValueError(
                f"`diags` has {dk} columns but lower + upper + 1 = {k}."
            )


def _band_operands(x, diags, lower, upper, cyclic):
    """`(x, diags, n, k)` of a product with the band, checked (n may be None)."""
    x = convert(x, "x")
    diags = convert(diags, "diags")
    _check_same_dtype(x, "x", diags, "diags")
    n = _last_dim(x, "x")
    k = band.check_band_args(n, lower, upper, cyclic)
    _check_diags(diags, n, k)
    return x, diags, n, k


def _checked(t, check):
    """`t`, computed only after the run-time `check` passed (graph mode)."""
    with tf.control_dependencies([check]):
        return tf.identity(t)


def _flatten(t, n):
    """`(..., n)` -> `(B, n)` and the function that restores the leading dims."""
    shape = tf.shape(t)
    flat = tf.reshape(t, [-1, n if n is not None else shape[-1]])
    return flat, lambda y: tf.reshape(y, shape)


def band_matmul(x, diags, lower, upper, cyclic=False, transpose=False, name=None):
    """Multiplies row vectors by a band matrix stored as diagonals.

    `y[..., i] = sum_j diags[i, j] * x[..., c(i, j)]` with
    `c(i, j) = i + j - lower` (mod n when `cyclic`), i.e. `y = x @ A.T`;
    `transpose=True` gives `y = x @ A`. See `keras_bandrnn.band` for the
    storage layout.

    Args:
        x: `(..., n)` tensor of float32, float64, bfloat16 or float16.
        diags: `(n, lower + upper + 1)` tensor of the same dtype.
        lower: number of sub-diagonals, `>= 0`.
        upper: number of super-diagonals, `>= 0`.
        cyclic: closed band: columns wrap modulo `n` (needs `k <= n`).
        transpose: multiply by `A` instead of `A.T`.
        name: optional op name.

    Returns:
        A tensor with the shape and dtype of `x`.

    Example:

    >>> x = tf.ones([2, 4])
    >>> diags = tf.ones([4, 3])        # tridiagonal, all ones
    >>> band_matmul(x, diags, lower=1, upper=1).numpy()[0]
    array([2., 3., 3., 2.], dtype=float32)
    """
    with dispatch.name_scope(name or "band_matmul"):
        x, diags, n, k = _band_operands(x, diags, lower, upper, cyclic)
        lib = dispatch.library()
        if lib is not None:
            return lib.band_matmul(
                x, diags, lower=lower, upper=upper, cyclic=bool(cyclic),
                transpose=bool(transpose),
            )
        if n is None:
            raise ValueError("`x` needs a statically known last dimension n.")
        if not diags.shape.is_fully_defined():  # graph with unknown diags dims
            diags = _checked(
                diags, tf.debugging.assert_equal(
                    tf.shape(diags), tf.constant([n, k]),
                    message=f"`diags` must have shape (n, k) = ({n}, {k})",
                ),
            )
        flat, restore = _flatten(x, n)
        return restore(
            band_fallback.band_matmul(flat, diags, lower, upper, bool(cyclic), bool(transpose))
        )


def band_matmul_tanh(x, diags, addend, lower, upper, cyclic=False, name=None):
    """`tanh(addend + band_matmul(x, diags, lower, upper, cyclic))` in one op.

    The step of the band cells with their default `tanh` activation: the
    kernel applies the activation while it writes the product out, which
    saves the separate add and `tanh` ops (and their passes over `(B, n)`)
    on every time step. The gradient is the composition's:
    `dz = dy * (1 - y**2)`, then `band_matmul(dz, transpose=True)` for `x`,
    `band_outer(dz, x)` for `diags` and `dz` for `addend`.

    Args:
        x: `(..., n)` tensor of float32, float64, bfloat16 or float16.
        diags: `(n, lower + upper + 1)` tensor of the same dtype.
        addend: tensor of the shape and dtype of `x` (for a cell,
            `x_t W + b`).
        lower, upper, cyclic: the band, as in `band_matmul`.
        name: optional op name.

    Returns:
        A tensor with the shape and dtype of `x`.

    Example:

    >>> x = tf.ones([2, 4])
    >>> diags = tf.ones([4, 3])        # tridiagonal, all ones
    >>> z = tf.fill([2, 4], -2.0)
    >>> band_matmul_tanh(x, diags, z, lower=1, upper=1).numpy()[0].round(4)
    array([0.    , 0.7616, 0.7616, 0.    ], dtype=float32)
    """
    with dispatch.name_scope(name or "band_matmul_tanh"):
        x, diags, _, _ = _band_operands(x, diags, lower, upper, cyclic)
        addend = convert(addend, "addend")
        _check_same_dtype(x, "x", addend, "addend")
        if not addend.shape.is_compatible_with(x.shape):
            raise ValueError(
                f"`addend` must have the shape of `x`, {x.shape}, got {addend.shape}."
            )
        lib = dispatch.library()
        if lib is not None:
            return lib.band_matmul_tanh(x, diags, addend, lower=lower, upper=upper,
                                        cyclic=bool(cyclic))
        if not (x.shape.is_fully_defined() and addend.shape.is_fully_defined()):
            addend = _checked(addend, tf.debugging.assert_equal(
                tf.shape(addend), tf.shape(x), message="`addend` must have the shape of `x`"))
        return tf.tanh(addend + band_matmul(x, diags, lower, upper, cyclic))


def band_outer(a, b, lower, upper, cyclic=False, name=None):
    """Band-restricted outer product summed over leading dims (seed: SG2BMM).

    `g[i, j] = sum over leading dims of a[..., i] * b[..., c(i, j)]`; padding
    entries of an open band are 0. This is the gradient of `band_matmul` with
    respect to `diags`.

    Args:
        a: `(..., n)` float tensor.
        b: tensor of the same shape and dtype as `a`.
        lower, upper, cyclic: the band, as in `band_matmul`.
        name: optional op name.

    Returns:
        `(n, lower + upper + 1)` tensor of the dtype of `a`.

    Example:

    >>> a = tf.ones([3, 4])
    >>> band_outer(a, a, lower=1, upper=0).numpy()[:, 0]   # row 0 is padding
    array([0., 3., 3., 3.], dtype=float32)
    """
    with dispatch.name_scope(name or "band_outer"):
        a = convert(a, "a")
        b = convert(b, "b")
        _check_same_dtype(a, "a", b, "b")
        n = _last_dim(a, "a")
        _last_dim(b, "b")
        if not a.shape.is_compatible_with(b.shape):
            raise ValueError(f"`a` and `b` must have the same shape, got {a.shape} and {b.shape}.")
        band.check_band_args(n, lower, upper, cyclic, name="g")
        lib = dispatch.library()
        if lib is not None:
            return lib.band_outer(a, b, lower=lower, upper=upper, cyclic=bool(cyclic))
        if n is None:
            raise ValueError("`a` needs a statically known last dimension n.")
        if not (a.shape.is_fully_defined() and b.shape.is_fully_defined()):
            check = tf.debugging.assert_equal(
                tf.shape(a), tf.shape(b), message="`a` and `b` must have the same shape"
            )
            a, b = _checked(a, check), _checked(b, check)
        return band_fallback.band_outer(
            tf.reshape(a, [-1, n]), tf.reshape(b, [-1, n]), lower, upper, bool(cyclic)
        )


def _attrs(op, *names):
    return {name: op.get_attr(name) for name in names}


@tf.RegisterGradient("BandMatmul")
def _band_matmul_grad(op, dy):
    x, diags = op.inputs
    a = _attrs(op, "lower", "upper", "cyclic")
    transpose = op.get_attr("transpose")
    dx = band_matmul(dy, diags, transpose=not transpose, **a)
    if transpose:  # y = x A: dD[i, j] = sum x[i] dy[c(i, j)]
        ddiags = band_outer(x, dy, **a)
    else:  # y = x A^T: dD[i, j] = sum dy[i] x[c(i, j)]
        ddiags = band_outer(dy, x, **a)
    return dx, ddiags


@tf.RegisterGradient("BandMatmulTanh")
def _band_matmul_tanh_grad(op, dy):
    x, diags, _ = op.inputs
    a = _attrs(op, "lower", "upper", "cyclic")
    dz = tf.raw_ops.TanhGrad(y=op.outputs[0], dy=dy)
    return band_matmul(dz, diags, transpose=True, **a), band_outer(dz, x, **a), dz


@tf.RegisterGradient("BandOuter")
def _band_outer_grad(op, dg):
    a, b = op.inputs
    attrs = _attrs(op, "lower", "upper", "cyclic")
    da = band_matmul(b, dg, transpose=False, **attrs)
    db = band_matmul(a, dg, transpose=True, **attrs)
    return da, db
