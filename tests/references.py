"""Independent dense float64 NumPy references for the band op family.

Written from SPEC section 2 alone: this module must not import
`keras_bandrnn.band` (or anything else from the package), so that a mistake in
the package's geometry cannot hide in the reference too.

Storage: ``diags[i, j] == A[i, c(i, j)]`` with ``c(i, j) = i + j - lower``;
an open band drops entries whose column is outside ``[0, n)`` (padding), a
cyclic band takes the column modulo ``n``.
"""

import numpy as np


def band_index(n, lower, upper, cyclic=False):
    """Rows, slots and columns of every non-padding stored entry.

    Returns three int arrays ``(rows, slots, cols)`` of equal length:
    ``diags[rows[t], slots[t]]`` is ``A[rows[t], cols[t]]``.
    """
    k = lower + upper + 1
    rows = np.repeat(np.arange(n), k)
    slots = np.tile(np.arange(k), n)
    cols = rows + slots - lower
    if cyclic:
        assert k <= n, "a cyclic band needs k <= n"
        cols = np.mod(cols, n)
        keep = np.ones_like(cols, dtype=bool)
    else:
        keep = (cols >= 0) & (cols < n)
    return rows[keep], slots[keep], cols[keep]


def padding_mask(n, lower, upper, cyclic=False):
    """Boolean ``(n, k)``: True where ``diags`` holds padding (open band only)."""
    k = lower + upper + 1
    mask = np.ones((n, k), dtype=bool)
    rows, slots, _ = band_index(n, lower, upper, cyclic)
    mask[rows, slots] = False
    return mask


def dense(diags, lower, upper, cyclic=False):
    """The dense float64 ``(n, n)`` matrix ``A`` held by ``diags`` (padding dropped)."""
    diags = np.asarray(diags, dtype=np.float64)
    n, k = diags.shape
    assert k == lower + upper + 1
    a = np.zeros((n, n))
    rows, slots, cols = band_index(n, lower, upper, cyclic)
    # add.at, so that an entry stored twice (which the op forbids) would show.
    np.add.at(a, (rows, cols), diags[rows, slots])
    return a


def to_diags(a, lower, upper, cyclic=False):
    """The float64 ``(n, k)`` storage of the band of dense ``a`` (padding 0)."""
    a = np.asarray(a, dtype=np.float64)
    n = a.shape[0]
    out = np.zeros((n, lower + upper + 1))
    rows, slots, cols = band_index(n, lower, upper, cyclic)
    out[rows, slots] = a[rows, cols]
    return out


def band_matmul(x, diags, lower, upper, cyclic=False, transpose=False):
    """``x @ A.T`` (or ``x @ A``) in float64, for ``x`` of shape ``(..., n)``."""
    a = dense(diags, lower, upper, cyclic)
    x = np.asarray(x, dtype=np.float64)
    return x @ (a if transpose else a.T)


def band_outer(a, b, lower, upper, cyclic=False):
    """``g[i, j] = sum over leading dims of a[..., i] * b[..., c(i, j)]``, float64."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    n = a.shape[-1]
    rows = int(np.prod(a.shape[:-1]))
    assert b.shape[-1] == n and int(np.prod(b.shape[:-1])) == rows
    full = a.reshape(rows, n).T @ b.reshape(rows, n)  # full[i, c] = sum a[., i] b[., c]
    return to_diags(full, lower, upper, cyclic)


def band_matmul_loops(x, diags, lower, upper, cyclic=False):
    """SPEC's formula taken literally with Python loops (small sizes only).

    ``y[..., i] = sum_j diags[i, j] * x[..., c(i, j)]``; used to check the
    dense reconstruction above.
    """
    x = np.asarray(x, dtype=np.float64)
    n, k = np.shape(diags)
    y = np.zeros_like(x)
    for i in range(n):
        for j in range(k):
            c = i + j - lower
            if cyclic:
                c %= n
            elif not 0 <= c < n:
                continue
            y[..., i] += diags[i][j] * x[..., c]
    return y


def magnitude_matmul(x, diags, lower, upper, cyclic=False, transpose=False):
    """``|x| @ |A|.T`` (or ``|A|``): the scale of the rounding error of a product."""
    return band_matmul(np.abs(x), np.abs(np.nan_to_num(diags)), lower, upper, cyclic, transpose)


def magnitude_outer(a, b, lower, upper, cyclic=False):
    return band_outer(np.abs(a), np.abs(b), lower, upper, cyclic)


# Relative rounding of one result (`out`), of the accumulation (`acc`) and the
# spacing of subnormal results (`tiny`) per dtype. Half types are computed in
# float32 and rounded once at the end.
TOLERANCES = {
    "float64": {"out": 1e-13, "acc": 1e-13, "tiny": 0.0},
    "float32": {"out": 2e-6, "acc": 2e-6, "tiny": 0.0},
    "bfloat16": {"out": 2.0**-8, "acc": 2e-6, "tiny": 0.0},
    "float16": {"out": 2.0**-10, "acc": 2e-6, "tiny": 2.0**-24},
}


def assert_close(got, want, magnitude, dtype, factor=1.0, what="result"):
    """Asserts ``|got - want| <= out * |want| + acc * magnitude + tiny`` elementwise.

    `magnitude` is the same product computed on absolute values (the scale of
    the accumulated rounding error). `factor` loosens both terms, e.g. for a
    gradient computed through several rounded steps.
    """
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    tol = TOLERANCES[dtype if isinstance(dtype, str) else dtype.name]
    bound = factor * (tol["out"] * np.abs(want) + tol["acc"] * (np.asarray(magnitude) + 1e-30) + tol["tiny"])
    err = np.abs(got - want)
    bad = ~(err <= bound)  # also catches NaN
    if bad.any():
        idx = tuple(np.argwhere(bad)[0])
        raise AssertionError(
            f"{what} ({dtype}): {bad.sum()} of {bad.size} entries off; first at "
            f"{idx}: got {got[idx]!r}, want {want[idx]!r}, bound {bound[idx]:.3g}; "
            f"max err {np.nanmax(np.where(np.isnan(err), np.inf, err)):.3g}"
        )
