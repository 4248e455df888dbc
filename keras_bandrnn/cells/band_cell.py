"""`BandCell`: an RNN cell whose recurrent matrix is a band."""

import keras

from keras_bandrnn.cells import _docs
from keras_bandrnn.cells.base import BandCellBase


@keras.saving.register_keras_serializable(package="keras_bandrnn")
class BandCell(BandCellBase):
    __doc__ = f"""Cell class for an RNN whose recurrent matrix is a band.

    Computes `h_t = activation(x_t W + h_{{t-1}} A^T + b)` where `A` is an
    `units x units` band matrix with `lower` sub- and `upper` super-diagonals:
    unit `i` reads units `i - lower .. i + upper` of the previous state. The
    band is stored row-aligned as `recurrent_kernel` of shape
    `(units, lower + upper + 1)` (see `keras_bandrnn.band`; the entries that
    would fall outside the matrix are padding, kept at zero and unused) and
    applied with `keras_bandrnn.ops.band_matmul` (with the default `tanh`,
    `keras_bandrnn.ops.band_matmul_tanh`: product, sum and activation in one
    op), so a step costs `O(batch * units * k)` instead of
    `O(batch * units**2)`.

    Args:
        units: Positive integer, dimensionality of the output space.
{_docs.BAND_ARGS}
{_docs.COMMON_ARGS}

    The default `recurrent_initializer` draws the band with variance `1 / k`
    (`VarianceScaling(mode="fan_out")` on the `(units, k)` storage), giving a
    spectral radius near 1; with `shift` it is `Shift` (or zeros with
    `fixed_shift`).

{_docs.CALL_ARGS}

    Example:

    ```python
    inputs = np.random.random([32, 10, 8]).astype(np.float32)
    rnn = keras.layers.RNN(keras_bandrnn.BandCell(64, half_width=4))
    output = rnn(inputs)  # The output has shape `(32, 64)`.
    rnn = keras.layers.RNN(
        keras_bandrnn.BandCell(64, half_width=16, shift=8),
        return_sequences=True,
        return_state=True,
    )
    # whole_sequence_output has shape `(32, 10, 64)`.
    # final_state has shape `(32, 64)`.
    whole_sequence_output, final_state = rnn(inputs)
    ```
    """

    cyclic = False
