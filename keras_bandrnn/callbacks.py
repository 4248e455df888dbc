"""Keras callbacks for band RNNs."""

import keras


def schedulable_cells(model):
    """The band cells in `model` built with `active_half_width` (any depth)."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if getattr(layer, "schedulable", False)
    ]


class BandWidthScheduler(keras.callbacks.Callback):
    """Widens the active half-width of band cells epoch by epoch.

    The seed found that long delays need a fixed shift unless the band grows
    during training; this callback grows it. At the beginning of every epoch
    it sets the active half-width of every band cell in the model that was
    created with `active_half_width=...` (`BandCell`, `ClosedBandCell`,
    `GridBandCell`, also inside `Bidirectional` or stacked cells) to
    `schedule(epoch, current)`, clipped to `[0, allocated]` where the
    allocated half-width is the cell's `max(lower, upper)`. Diagonals outside
    the active half-width are masked out of the forward pass and get no
    gradient; the allocated weights stay in place, so widening resumes
    training of the outer diagonals from their stored values.

    Args:
        schedule: Optional function `(epoch, current_half_width) -> int`
            (epochs count from 0). Default: `start + epoch * step`.
        start: Active half-width in the first epoch when `schedule` is not
            given. Default: 1.
        step: Growth per epoch when `schedule` is not given. Default: 1.
        verbose: Integer. 0: quiet, 1: print the half-width at each epoch.

    The half-width in use is logged as `band_half_width` (the widest over the
    scheduled cells).

    Example:

    ```python
    cell = keras_bandrnn.ClosedBandCell(64, half_width=8, active_half_width=1)
    model = keras.Sequential([
        keras.Input((20, 4)),
        keras.layers.RNN(cell, return_sequences=True),
        keras.layers.Dense(4),
    ])
    model.compile(loss="mse")
    x = np.random.random((16, 20, 4)).astype("float32")
    model.fit(x, x, epochs=3, verbose=0,
              callbacks=[keras_bandrnn.callbacks.BandWidthScheduler(step=2)])
    # the cell used half-widths 1, 3, 5.
    ```
    """

    def __init__(self, schedule=None, start=1, step=1, verbose=0):
        super().__init__()
        if schedule is not None and not callable(schedule):
            raise ValueError(f"`schedule` must be callable, got {schedule!r}.")
        for name, value in (("start", start), ("step", step)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"`{name}` must be a non-negative integer, got {value!r}.")
        self.schedule = schedule
        self.start = start
        self.step = step
        self.verbose = verbose
        self._current = None

    def _cells(self):
        cells = schedulable_cells(self.model)
        if not cells:
            raise ValueError(
                "BandWidthScheduler found no band cell to schedule in the model: "
                "create the cells with `active_half_width=` (the initial "
                "half-width) so that their outer diagonals can be masked."
            )
        return cells

    def on_epoch_begin(self, epoch, logs=None):
        cells = self._cells()
        current = self._current
        if current is None:
            current = max(int(keras.ops.convert_to_numpy(c.band_half_width)) for c in cells)
        if self.schedule is None:
            target = self.start + epoch * self.step
        else:
            target = self.schedule(epoch, current)
        if isinstance(target, bool) or not isinstance(target, int):
            try:
                target = int(target)
            except (TypeError, ValueError):
                raise ValueError(
                    f"The schedule must return an integer half-width, got {target!r}."
                ) from None
        self._current = max(cell.set_active_half_width(target) for cell in cells)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: BandWidthScheduler sets the band half-width to {self._current}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self._current is not None:
            logs["band_half_width"] = self._current
