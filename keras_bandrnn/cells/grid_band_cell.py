"""`GridBandCell`: a band recurrence plus a grid of densely connected hubs."""

import keras
import numpy as np
import tensorflow as tf
from keras import initializers

from keras_bandrnn.cells import _docs
from keras_bandrnn.cells.base import BandCellBase
from keras_bandrnn.cells.base import _check_int


def grid_masks(units, lower, upper, grid_stride):
    """Which hub entries are parameters of their own, as float32 0/1 masks.

    Hubs are the units `j * grid_stride`, `j < m = ceil(units / grid_stride)`.
    `hub_rows[j, c]` stands for `A[j * grid_stride, c]` and `hub_columns[i, j]`
    for `A[i, j * grid_stride]`. An entry of `A` is owned by the band if it
    lies in the band, else by the hub rows if its row is a hub, else by the hub
    columns; the returned masks are 1 exactly where the grid weights own it.

    Returns:
        `(rows_mask (m, units), columns_mask (units, m))`.
    """
    hubs = np.arange(0, units, grid_stride)
    cols = np.arange(units)
    # offset column - row of A; in the band when -lower <= offset <= upper
    row_off = cols[None, :] - hubs[:, None]
    rows_mask = ~((row_off >= -lower) & (row_off <= upper))
    col_off = hubs[None, :] - cols[:, None]
    is_hub = (cols % grid_stride == 0)[:, None]
    columns_mask = ~(((col_off >= -lower) & (col_off <= upper)) | is_hub)
    return rows_mask.astype(np.float32), columns_mask.astype(np.float32)


@keras.saving.register_keras_serializable(package="keras_bandrnn")
class GridBandCell(BandCellBase):
    __doc__ = f"""Cell class for an RNN with a band plus a grid of hub units.

    The recurrent matrix `A` is the open band of `BandCell` plus a grid of
    "hub" units, the units `i` with `i % grid_stride == 0`: every hub reads
    all units (hub rows of `A` are dense) and every unit reads all hubs (hub
    columns are dense). Any two units are then connected by a path of at most
    two steps, which the seed adds for long-range interaction.

    An entry of `A` in both the band and the grid is one parameter: it lives
    in the band (`recurrent_kernel`, `(units, k)`), and the duplicate slots
    of `hub_rows` (`(m, units)`, row `j` is `A[j * grid_stride, :]`) and
    `hub_columns` (`(units, m)`, column `j` is `A[:, j * grid_stride]`) are
    masked out: they are never used, get no gradient and are not counted by
    `keras_bandrnn.sizing`. A step costs one `band_matmul` plus two
    `(batch, units) x (units, m)` products; no `units x units` matrix is
    formed.

    Args:
        units: Positive integer, dimensionality of the output space.
        half_width: Non-negative integer, diagonals on each side of the band.
        grid_stride: Positive integer, the distance between hubs.
        hub_initializer: Initializer for `hub_rows` and `hub_columns`.
            Default: `"zeros"` (the recurrence starts as the pure band; the
            hubs' weights still get gradients). The recurrent regularizer
            and constraint apply to them as well.
        lower, upper, shift, fixed_shift, active_half_width: as in
            `BandCell` (they concern the band only; the scheduler and the
            shift leave the hubs alone).
{_docs.COMMON_ARGS}

{_docs.CALL_ARGS}

    Example:

    ```python
    inputs = np.random.random([32, 10, 8]).astype(np.float32)
    cell = keras_bandrnn.GridBandCell(64, half_width=4, grid_stride=16)
    output = keras.layers.RNN(cell)(inputs)  # The output has shape `(32, 64)`.
    ```
    """

    cyclic = False

    def __init__(
        self,
        units,
        half_width=None,
        grid_stride=None,
        lower=None,
        upper=None,
        hub_initializer="zeros",
        **kwargs,
    ):
        if grid_stride is None:
            raise ValueError("`GridBandCell` needs `grid_stride` (the distance between hubs).")
        grid_stride = _check_int(grid_stride, "grid_stride", 1)
        super().__init__(units, half_width=half_width, lower=lower, upper=upper, **kwargs)
        self.grid_stride = grid_stride
        self.num_hubs = -(-self.units // grid_stride)
        self.hub_initializer = initializers.get(hub_initializer)

    def _build_recurrent(self, input_dim):
        super()._build_recurrent(input_dim)
        m = self.num_hubs
        self.hub_rows = self.add_weight(
            shape=(m, self.units),
            name="hub_rows",
            initializer=self.hub_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        self.hub_columns = self.add_weight(
            shape=(self.units, m),
            name="hub_columns",
            initializer=self.hub_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        self._rows_mask, self._columns_mask = grid_masks(
            self.units, self.lower, self.upper, self.grid_stride
        )
        # Unused duplicate slots hold 0, so regularizers see only parameters.
        self.hub_rows.assign(self.hub_rows.value * self._rows_mask)
        self.hub_columns.assign(self.hub_columns.value * self._columns_mask)

    def _beside_band(self, h):
        dtype = h.dtype
        s, m, n = self.grid_stride, self.num_hubs, self.units
        rows = self._weight(self.hub_rows) * tf.constant(self._rows_mask, dtype)
        columns = self._weight(self.hub_columns) * tf.constant(self._columns_mask, dtype)
        # Hub rows: y[:, j s] += h @ rows[j]; scattered into every s-th unit.
        hub_out = tf.matmul(h, rows, transpose_b=True)  # (B, m)
        hub_out = tf.pad(hub_out[:, :, None], [[0, 0], [0, 0], [0, s - 1]])
        y = tf.reshape(hub_out, [-1, m * s])[:, :n]
        # Hub columns: every unit reads the hubs h[:, ::s].
        y = y + tf.matmul(h[:, ::s], columns, transpose_b=True)
        beside = super()._beside_band(h)
        return y if beside is None else y + beside

    def _recurrent_config(self):
        return {
            **super()._recurrent_config(),
            "grid_stride": self.grid_stride,
            "hub_initializer": initializers.serialize(self.hub_initializer),
        }
