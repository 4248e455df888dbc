"""`ClosedBandCell`: an RNN cell whose recurrent matrix is a cyclic band."""

import keras

from keras_bandrnn.cells import _docs
from keras_bandrnn.cells.base import BandCellBase


@keras.saving.register_keras_serializable(package="keras_bandrnn")
class ClosedBandCell(BandCellBase):
    __doc__ = f"""Cell class for an RNN whose recurrent matrix is a closed (cyclic) band.

    Like `BandCell`, `h_t = activation(x_t W + h_{{t-1}} A^T + b)`, but the
    band wraps around: unit `i` reads units `(i - lower) mod units ..
    (i + upper) mod units`, so the units form a ring and a shifted state
    circulates instead of falling off the end. `recurrent_kernel` has shape
    `(units, k)` with `k = lower + upper + 1 <= units`; every entry is a
    parameter.

    Args:
        units: Positive integer, dimensionality of the output space.
{_docs.BAND_ARGS}
{_docs.COMMON_ARGS}

    With `shift=s, fixed_shift=True`, a linear activation and a zero
    trainable band, the state is an exact ring buffer: `h_t` is `h_{{t-1}}`
    rotated by `s` units plus the new input.

{_docs.CALL_ARGS}

    Example:

    ```python
    inputs = np.random.random([32, 10, 8]).astype(np.float32)
    # The seed's "Closed Fixed" model: a fixed delay ring plus a trainable band.
    cell = keras_bandrnn.ClosedBandCell(
        64, half_width=8, shift=8, fixed_shift=True
    )
    output = keras.layers.RNN(cell)(inputs)  # The output has shape `(32, 64)`.
    ```
    """

    cyclic = True
