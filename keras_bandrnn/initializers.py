"""Initializers for band recurrent matrices stored as `(units, k)` diagonals."""

import keras
import numpy as np

from keras_bandrnn import band


def shift_diags(n, lower, upper, shift, closed=False):
    """NumPy `(n, k)` diagonals of the shift matrix `A[i, i - shift] = 1`.

    Open band: rows `i < shift` have no source unit (their entry would be
    padding) and stay 0. Closed band: `A[i, (i - shift) mod n] = 1` for all rows.
    """
    k = band.check_band_args(n, lower, upper, closed)
    if isinstance(shift, bool) or not isinstance(shift, (int, np.integer)):
        raise ValueError(f"`shift` must be an integer, got {shift!r}.")
    if shift < 1:
        raise ValueError(f"`shift` must be >= 1, got {shift}.")
    if shift > lower:
        raise ValueError(
            f"`shift` ({shift}) must be <= `lower` ({lower}): the shift "
            f"diagonal A[i, i - shift] has to lie inside the band."
        )
    diags = np.zeros((n, k))
    diags[:, lower - shift] = 1.0
    return diags * band.valid_mask(n, lower, upper, closed)


@keras.saving.register_keras_serializable(package="keras_bandrnn")
class Shift(keras.initializers.Initializer):
    """Initializes a band matrix as a shift: a delay line over the units.

    The band matrix `A` (stored row-aligned as `(units, k)` diagonals, see
    `keras_bandrnn.band`) gets `A[i, i - shift] = 1` and 0 elsewhere, so that
    `h_t = A h_{t-1}` moves the state `shift` units along per step. With
    `closed=True` the band is cyclic and `A[i, (i - shift) mod units] = 1`:
    the state circulates around a ring instead of falling off its end.

    Args:
        shift: Positive integer, the number of units the state moves per step.
        closed: Boolean, whether the band is cyclic (for `ClosedBandCell`).
        lower: Number of sub-diagonals of the band the diagonals belong to.
            `None` (default) assumes a symmetric band, `lower = (k - 1) // 2`
            for `k` stored diagonals (`k` must then be odd).

    Example:

    >>> init = keras_bandrnn.initializers.Shift(shift=1)
    >>> init(shape=(4, 3)).numpy()    # lower = upper = 1
    array([[0., 0., 0.],
           [1., 0., 0.],
           [1., 0., 0.],
           [1., 0., 0.]], dtype=float32)
    """

    def __init__(self, shift=1, closed=False, lower=None):
        if isinstance(shift, bool) or not isinstance(shift, (int, np.integer)) or shift < 1:
            raise ValueError(f"`shift` must be a positive integer, got {shift!r}.")
        if lower is not None and (
            isinstance(lower, bool) or not isinstance(lower, (int, np.integer)) or lower < 0
        ):
            raise ValueError(f"`lower` must be a non-negative integer or None, got {lower!r}.")
        self.shift = int(shift)
        self.closed = bool(closed)
        self.lower = None if lower is None else int(lower)

    def __call__(self, shape, dtype=None):
        if len(shape) != 2:
            raise ValueError(
                f"`Shift` initializes `(units, k)` band diagonals; got shape {shape}."
            )
        n, k = int(shape[0]), int(shape[1])
        lower = self.lower
        if lower is None:
            if k % 2 == 0:
                raise ValueError(
                    f"`Shift` needs `lower` for a band with an even number of "
                    f"diagonals (k={k})."
                )
            lower = (k - 1) // 2
        if lower >= k:
            raise ValueError(f"`lower` ({lower}) must be < k ({k}).")
        values = shift_diags(n, lower, k - 1 - lower, self.shift, self.closed)
        return keras.ops.convert_to_tensor(values, dtype=dtype or keras.backend.floatx())

    def get_config(self):
        return {"shift": self.shift, "closed": self.closed, "lower": self.lower}
