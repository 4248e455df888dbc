"""Band geometry: the one place that defines how a band matrix is stored.

An ``n x n`` band matrix ``A`` with ``lower`` sub-diagonals and ``upper``
super-diagonals has bandwidth ``k = lower + upper + 1`` and is stored
row-aligned as ``diags`` of shape ``(n, k)``::

    diags[i, j] == A[i, c(i, j)]      with      c(i, j) = i + j - lower

Open band: entries whose column ``c(i, j)`` falls outside ``[0, n)`` are
padding; they never contribute to a product and their gradient is zero.
Closed (cyclic) band: ``c(i, j)`` is taken modulo ``n``; this needs ``k <= n``
so that no entry of ``A`` is stored twice.
"""

import numpy as np


def bandwidth(lower, upper):
    """Number of stored diagonals, ``lower + upper + 1``."""
    return int(lower) + int(upper) + 1


def check_band_args(n, lower, upper, cyclic, name="diags"):
    """Validates band attributes; raises `ValueError` naming the argument.

    `n` may be `None` (unknown until run time); the checks that need it are
    then left to the kernel.
    """
    for arg, value in (("lower", lower), ("upper", upper)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"`{arg}` must be an integer, got {value!r}.")
        if value < 0:
            raise ValueError(f"`{arg}` must be >= 0, got {value}.")
    k = bandwidth(lower, upper)
    if k > 2**31 - 1:
        raise ValueError(f"`lower + upper + 1` must fit in int32, got {k}.")
    if cyclic and n is not None and k > n:
        raise ValueError(
            f"A cyclic band needs `lower + upper + 1 <= n` so that no entry "
            f"of `{name}` is stored twice; got lower={lower}, upper={upper} "
            f"(k={k}) with n={n}."
        )
    return k


def columns(n, lower, upper, cyclic=False):
    """Column index ``c(i, j)`` of every stored entry, shape ``(n, k)``.

    Open band: padding entries get their out-of-range column unchanged, use
    `valid_mask` to tell them apart. Cyclic band: columns are reduced mod ``n``.
    """
    k = bandwidth(lower, upper)
    c = np.arange(n)[:, None] + np.arange(k)[None, :] - lower
    return c % n if cyclic and n > 0 else c


def valid_mask(n, lower, upper, cyclic=False):
    """Boolean ``(n, k)`` mask: True for stored entries that are not padding."""
    c = columns(n, lower, upper, cyclic)
    return np.ones_like(c, dtype=bool) if cyclic else (c >= 0) & (c < n)


def num_entries(n, lower, upper, cyclic=False):
    """Number of non-padding entries, i.e. the band's free parameters."""
    k = bandwidth(lower, upper)
    if cyclic:
        return n * k
    rows = np.arange(n)
    first = np.maximum(rows - lower, 0)          # first valid column
    last = np.minimum(rows + upper, n - 1)       # last valid column
    return int(np.maximum(last - first + 1, 0).sum())
