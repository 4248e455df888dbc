"""BandWidthScheduler: masked outer diagonals neither act nor receive gradient."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_bandrnn as kb
from keras_bandrnn.callbacks import BandWidthScheduler

RAND = dict(recurrent_initializer=keras.initializers.RandomNormal(stddev=0.4, seed=1))


def offsets(cell):
    return np.arange(cell.bandwidth) - cell.lower


@pytest.mark.parametrize("cls", [kb.BandCell, kb.ClosedBandCell])
def test_masked_diagonals_neither_act_nor_get_gradient(cls, impl):
    cell = cls(10, lower=4, upper=3, active_half_width=2, activation=None, use_bias=False, **RAND)
    rnn = keras.layers.RNN(cell, return_sequences=True)
    x = tf.constant(np.random.default_rng(0).normal(size=(3, 5, 2)), tf.float32)
    rnn.build(x.shape)
    outer = np.abs(offsets(cell)) > 2
    with tf.GradientTape() as tape:
        out = rnn(x)
        loss = tf.reduce_sum(out * out)
    grad = tape.gradient(loss, cell.recurrent_kernel).numpy()
    assert np.all(grad[:, outer] == 0)
    cols = np.arange(10)[:, None] + offsets(cell)[None, :]
    stored = np.ones_like(cols, bool) if cls is kb.ClosedBandCell else (cols >= 0) & (cols < 10)
    assert np.all(grad[stored & ~outer] != 0)  # every active parameter learns

    # Acting: changing the masked diagonals changes nothing.
    before = out.numpy()
    d = cell.recurrent_kernel.numpy()
    d[:, outer] = 100.0
    cell.recurrent_kernel.assign(d)
    np.testing.assert_array_equal(rnn(x).numpy(), before)
    # Once active they act.
    cell.set_active_half_width(4)
    assert np.any(rnn(x).numpy() != before)


def test_set_active_half_width_clips_to_the_allocated_band():
    cell = kb.BandCell(10, lower=3, upper=1, active_half_width=0)
    keras.layers.RNN(cell)(np.zeros((1, 2, 1), np.float32))
    assert cell.set_active_half_width(7) == 3
    assert cell.set_active_half_width(-2) == 0


def _model(cells):
    inputs = keras.Input((8, 3))
    h = inputs
    for cell in cells:
        h = keras.layers.RNN(cell, return_sequences=True)(h)
    model = keras.Model(inputs, keras.layers.Dense(3)(h))
    model.compile(optimizer="adam", loss="mse")
    return model


def test_scheduler_widens_epoch_by_epoch_and_only_active_diagonals_train():
    cell = kb.ClosedBandCell(12, half_width=4, active_half_width=0, **RAND)
    model = _model([cell])
    x = np.random.default_rng(1).normal(size=(16, 8, 3)).astype(np.float32)
    seen = []

    class Probe(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((int(cell.band_half_width.numpy()), cell.recurrent_kernel.numpy().copy()))

    start = cell.recurrent_kernel.numpy().copy()
    history = model.fit(x, x, epochs=6, batch_size=8, verbose=0,
                        callbacks=[BandWidthScheduler(start=1, step=1), Probe()])
    assert history.history["band_half_width"] == [1, 2, 3, 4, 4, 4]
    assert [w for w, _ in seen] == [1, 2, 3, 4, 4, 4]
    prev = start
    off = np.abs(offsets(cell))
    for width, d in seen:
        np.testing.assert_array_equal(d[:, off > width], prev[:, off > width])  # frozen
        assert np.all(d[:, off <= width] != prev[:, off <= width])  # trained
        prev = d


def test_scheduler_custom_schedule_reaches_cells_in_bidirectional_and_stacks():
    a = kb.BandCell(12, half_width=3, active_half_width=1)
    b = kb.GridBandCell(12, half_width=5, grid_stride=4, active_half_width=0)
    inputs = keras.Input((8, 3))
    h = keras.layers.Bidirectional(keras.layers.RNN(a, return_sequences=True))(inputs)
    h = keras.layers.RNN(keras.layers.StackedRNNCells([b, kb.BandCell(12, half_width=1)]),
                         return_sequences=True)(h)
    model = keras.Model(inputs, keras.layers.Dense(3)(h))
    model.compile(loss="mse")
    x = np.zeros((4, 8, 3), np.float32)
    history = model.fit(x, x, epochs=3, verbose=0,
                        callbacks=[BandWidthScheduler(schedule=lambda epoch, cur: 2 * epoch + 2)])
    assert history.history["band_half_width"] == [2, 4, 5]  # widest cell: min(2 e + 2, 5)
    bi = model.layers[1]
    widths = [int(c.band_half_width.numpy()) for c in (bi.forward_layer.cell, bi.backward_layer.cell, b)]
    assert widths == [3, 3, 5]


def test_scheduler_without_schedulable_cells_says_what_to_do():
    model = _model([kb.BandCell(6, half_width=2)])
    x = np.zeros((2, 8, 3), np.float32)
    with pytest.raises(ValueError, match="active_half_width"):
        model.fit(x, x, epochs=1, verbose=0, callbacks=[BandWidthScheduler()])


def test_scheduler_validates_arguments():
    with pytest.raises(ValueError, match="schedule"):
        BandWidthScheduler(schedule=3)
    with pytest.raises(ValueError, match="step"):
        BandWidthScheduler(step=-1)
