"""`FactorizedCell`: an RNN cell with a low-rank recurrent matrix."""

import keras
from keras import ops

from keras_bandrnn.cells import _docs
from keras_bandrnn.cells.base import RecurrentCellBase
from keras_bandrnn.cells.base import _check_int


@keras.saving.register_keras_serializable(package="keras_bandrnn")
class FactorizedCell(RecurrentCellBase):
    __doc__ = f"""Cell class for an RNN whose recurrent matrix has low rank.

    Computes `h_t = activation(x_t W + h_{{t-1}} A^T + b)` with `A = U V`,
    `U` of shape `(units, rank)` (`recurrent_u`) and `V` of shape
    `(rank, units)` (`recurrent_v`): `2 * units * rank` recurrent parameters,
    the seed's low-rank comparison model for the band cells.

    Args:
        units: Positive integer, dimensionality of the output space.
        rank: Positive integer, the rank of the factorization.
{_docs.COMMON_ARGS}

    The default `kernel_initializer` is `"glorot_uniform"`; the default
    `recurrent_initializer` is `"orthogonal"`, applied to each factor, so `A`
    starts with `rank` singular values equal to 1.

{_docs.CALL_ARGS}

    Example:

    ```python
    inputs = np.random.random([32, 10, 8]).astype(np.float32)
    rnn = keras.layers.RNN(keras_bandrnn.FactorizedCell(64, rank=8))
    output = rnn(inputs)  # The output has shape `(32, 64)`.
    ```
    """

    def __init__(
        self,
        units,
        rank=None,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        **kwargs,
    ):
        if rank is None:
            raise ValueError("`FactorizedCell` needs `rank`.")
        self.rank = _check_int(rank, "rank", 1)
        super().__init__(
            units,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            **kwargs,
        )

    def _build_recurrent(self, input_dim):
        self.recurrent_u = self.add_weight(
            shape=(self.units, self.rank),
            name="recurrent_u",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        self.recurrent_v = self.add_weight(
            shape=(self.rank, self.units),
            name="recurrent_v",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )

    def _recurrent(self, h):
        # h A^T = (h V^T) U^T
        low = ops.matmul(h, ops.transpose(self.recurrent_v))
        return ops.matmul(low, ops.transpose(self.recurrent_u))

    def _recurrent_config(self):
        return {"rank": self.rank}
