"""The cells as Keras citizens: RNN options, training, saving, dropout, dtypes."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_bandrnn as kb
from tests.cells.conftest import reference_forward_backward

RAND = dict(
    recurrent_initializer=keras.initializers.RandomNormal(stddev=0.4, seed=1),
    bias_initializer=keras.initializers.RandomNormal(stddev=0.3, seed=2),
)

MAKERS = {
    "band": lambda **kw: kb.BandCell(8, half_width=2, **{**RAND, **kw}),
    "closed": lambda **kw: kb.ClosedBandCell(8, lower=2, upper=1, **{**RAND, **kw}),
    "grid": lambda **kw: kb.GridBandCell(
        8, half_width=1, grid_stride=3,
        hub_initializer=keras.initializers.RandomNormal(stddev=0.3, seed=4), **{**RAND, **kw}),
    "factorized": lambda **kw: kb.FactorizedCell(8, rank=2, **{**RAND, **kw}),
}
ALL = sorted(MAKERS)


def data(batch=4, steps=5, dim=3, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, steps, dim)).astype(np.float32)


def reference(cell, x, h0=None):
    g = np.zeros(x.shape[:2] + (cell.units,))
    return reference_forward_backward(cell, x, g, h0)[0]


@pytest.mark.parametrize("name", ALL)
def test_return_sequences_and_return_state(name):
    cell = MAKERS[name]()
    x = data()
    seq, state = keras.layers.RNN(cell, return_sequences=True, return_state=True)(x)
    ref = reference(cell, x)
    np.testing.assert_allclose(seq.numpy(), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(state.numpy(), seq.numpy()[:, -1])
    last = keras.layers.RNN(cell)(x)
    np.testing.assert_allclose(last.numpy(), ref[:, -1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_initial_state_is_used(name):
    cell = MAKERS[name]()
    x = data()
    h0 = np.random.default_rng(5).normal(size=(4, 8)).astype(np.float32)
    out = keras.layers.RNN(cell, return_sequences=True)(x, initial_state=[h0])
    np.testing.assert_allclose(out.numpy(), reference(cell, x, h0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_stateful_carries_state_across_calls(name):
    cell = MAKERS[name]()
    x = data(steps=6)
    full = keras.layers.RNN(cell, return_sequences=True)(x).numpy()
    rnn = keras.layers.RNN(cell, return_sequences=True, stateful=True)
    first = rnn(x[:, :3]).numpy()
    second = rnn(x[:, 3:]).numpy()
    np.testing.assert_allclose(np.concatenate([first, second], 1), full, rtol=1e-5, atol=1e-6)
    rnn.reset_states()
    np.testing.assert_allclose(rnn(x[:, :3]).numpy(), full[:, :3], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_masked_steps_carry_the_state(name):
    cell = MAKERS[name]()
    x = data(steps=6)
    mask = np.array([[1, 1, 0, 1, 0, 1], [1, 0, 0, 0, 1, 1], [1, 1, 1, 1, 1, 1], [0, 1, 1, 0, 1, 0]], bool)
    out = keras.layers.RNN(cell, return_sequences=True)(x, mask=mask).numpy()
    for b in range(4):
        kept = x[b : b + 1, mask[b]]
        ref = reference(cell, kept)[0]
        # at a masked step the output repeats the carried state
        carried = np.zeros(8, np.float32)
        pos = 0
        for t in range(6):
            if mask[b, t]:
                carried = ref[pos]
                pos += 1
            np.testing.assert_allclose(out[b, t], carried, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_masking_layer_in_a_model(name):
    x = data(steps=6)
    x[:, 4:] = 0.0  # trailing padding
    model = keras.Sequential([keras.Input((6, 3)), keras.layers.Masking(0.0), keras.layers.RNN(MAKERS[name]())])
    np.testing.assert_allclose(model(x).numpy(), model(x[:, :4]).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_go_backwards_reads_the_reversed_sequence(name):
    cell = MAKERS[name]()
    x = data()
    out = keras.layers.RNN(cell, go_backwards=True)(x).numpy()
    np.testing.assert_allclose(out, reference(cell, x[:, ::-1])[:, -1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_bidirectional_concatenates_both_directions(name):
    x = data()
    bi = keras.layers.Bidirectional(keras.layers.RNN(MAKERS[name](), return_sequences=True))
    out = bi(x).numpy()
    fwd = reference(bi.forward_layer.cell, x)
    bwd = reference(bi.backward_layer.cell, x[:, ::-1])[:, ::-1]
    np.testing.assert_allclose(out, np.concatenate([fwd, bwd], -1), rtol=1e-5, atol=1e-6)
    assert bi.forward_layer.cell is not bi.backward_layer.cell


def _regression(cell, steps=6, dim=3):
    model = keras.Sequential([
        keras.Input((steps, dim)),
        keras.layers.RNN(cell, return_sequences=True),
        keras.layers.Dense(2),
    ])
    x = data(batch=32, steps=steps, dim=dim, seed=7)
    y = np.stack([x[..., 0], np.cumsum(x[..., 1], axis=1) / 3], -1).astype(np.float32)
    return model, x, y


@pytest.mark.parametrize("name", ALL)
def test_fit_with_default_compile_settings(name):
    model, x, y = _regression(MAKERS[name]())
    model.compile(loss="mse")  # default optimizer (rmsprop), jit_compile="auto"
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(x, y, batch_size=8, epochs=4, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert all(np.any(b != w.numpy()) for b, w in zip(before, model.trainable_weights))


@pytest.mark.parametrize("name", ALL)
def test_mixed_bfloat16_trains(name):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        cell = MAKERS[name]()
        model, x, y = _regression(cell)
        model.compile(optimizer="adam", loss="mse")
        assert model.layers[0].output.dtype == "bfloat16"
        assert all(w.dtype == "float32" for w in cell.weights if w.trainable)
        history = model.fit(x, y, batch_size=8, epochs=4, verbose=0)
        losses = history.history["loss"]
        assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    finally:
        keras.mixed_precision.set_global_policy("float32")


SAVE_CELLS = {
    "band": lambda: kb.BandCell(8, lower=2, upper=1, kernel_regularizer="l2", dropout=0.1, seed=3),
    "band_shift": lambda: kb.BandCell(8, half_width=3, shift=3, activation="relu"),
    "closed_fixed": lambda: kb.ClosedBandCell(8, half_width=3, shift=3, fixed_shift=True,
                                              recurrent_constraint="non_neg", active_half_width=2),
    "grid": lambda: kb.GridBandCell(8, half_width=1, grid_stride=3, hub_initializer="glorot_uniform",
                                    use_bias=False, recurrent_dropout=0.2),
    "factorized": lambda: kb.FactorizedCell(8, rank=2, activation="sigmoid"),
}


@pytest.mark.parametrize("name", sorted(SAVE_CELLS))
def test_model_save_round_trips(name, tmp_path):
    cell = SAVE_CELLS[name]()
    model = keras.Sequential([keras.Input((5, 3)), keras.layers.RNN(cell), keras.layers.Dense(2)])
    x = data()
    # perturb so the weights differ from any fresh initialization
    for w in model.weights:
        if w.trainable:
            w.assign(w.numpy() + np.random.default_rng(1).normal(scale=0.1, size=w.shape))
    if name == "closed_fixed":
        cell.set_active_half_width(1)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    new_cell = loaded.layers[0].cell
    assert type(new_cell) is type(cell)
    assert new_cell.get_config() == cell.get_config()
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("name", sorted(SAVE_CELLS))
def test_get_config_from_config(name):
    cell = SAVE_CELLS[name]()
    clone = type(cell).from_config(cell.get_config())
    assert clone.get_config() == cell.get_config()


def test_dropout_uses_one_input_mask_per_sequence():
    units = 6
    cell = kb.BandCell(units, half_width=0, activation=None, use_bias=False, dropout=0.5, seed=1,
                       kernel_initializer="identity", recurrent_initializer="zeros")
    rnn = keras.layers.RNN(cell, return_sequences=True)
    x = np.ones((64, 5, units), np.float32)
    out = rnn(x, training=True).numpy()
    np.testing.assert_array_equal(out, np.broadcast_to(out[:, :1], out.shape))  # same mask every step
    assert set(np.unique(out)) == {0.0, 2.0}  # inverted dropout at rate 0.5
    assert 0.35 < np.mean(out == 0) < 0.65
    assert len({tuple(r) for r in out[:, 0]}) > 10  # masks differ between sequences
    np.testing.assert_array_equal(rnn(x, training=False).numpy(), x)
    again = rnn(x, training=True).numpy()
    assert np.any(again != out)  # a new mask per batch


def test_recurrent_dropout_uses_one_recurrent_mask_per_sequence():
    units = 6
    cell = kb.BandCell(units, half_width=0, activation=None, recurrent_dropout=0.5, seed=2,
                       kernel_initializer="zeros", recurrent_initializer="ones", bias_initializer="ones")
    rnn = keras.layers.RNN(cell, return_sequences=True)
    out = rnn(np.zeros((64, 4, 1), np.float32), training=True).numpy()
    m = out[:, 1] - 1.0  # h_2 = m * h_1 + 1 with h_1 = 1
    assert set(np.unique(m)) == {0.0, 2.0}
    np.testing.assert_allclose(out[:, 2], out[:, 1] * m + 1)
    np.testing.assert_allclose(out[:, 3], out[:, 2] * m + 1)
    np.testing.assert_array_equal(rnn(np.zeros((2, 4, 1), np.float32)).numpy()[:, -1], 4.0)


@pytest.mark.parametrize("name", ALL)
def test_regularizers_add_losses(name):
    cell = MAKERS[name](kernel_regularizer=keras.regularizers.L2(0.5),
                        recurrent_regularizer=keras.regularizers.L1(0.25),
                        bias_regularizer=keras.regularizers.L2(2.0))
    rnn = keras.layers.RNN(cell)
    rnn(data())
    recurrent = [w for w in cell.trainable_weights if w.name not in ("kernel", "bias")]
    expected = (0.5 * np.sum(cell.kernel.numpy() ** 2) + 2.0 * np.sum(cell.bias.numpy() ** 2)
                + sum(0.25 * np.sum(np.abs(w.numpy())) for w in recurrent))
    np.testing.assert_allclose(float(sum(rnn.losses)), expected, rtol=1e-5)


@pytest.mark.parametrize("name", ALL)
def test_constraints_are_applied_after_updates(name):
    cell = MAKERS[name](kernel_constraint="non_neg", recurrent_constraint="non_neg", bias_constraint="non_neg")
    model, x, y = _regression(cell)
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert all(np.all(w.numpy() >= 0) for w in cell.trainable_weights)


def test_supports_jit_is_false_for_cells_calling_custom_ops():
    for name in ("band", "closed", "grid"):
        assert MAKERS[name]().supports_jit is False
    assert MAKERS["factorized"]().supports_jit is True  # stock ops only


def test_padding_entries_are_stored_as_zero():
    cell = kb.BandCell(6, lower=2, upper=3, recurrent_initializer="ones")
    cell.build((None, 2))
    d = cell.recurrent_kernel.numpy()
    cols = np.arange(6)[:, None] + np.arange(6)[None, :] - 2
    np.testing.assert_array_equal(d, ((cols >= 0) & (cols < 6)).astype(np.float32))


def test_grid_duplicate_hub_slots_are_stored_as_zero():
    cell = kb.GridBandCell(7, half_width=1, grid_stride=3, hub_initializer="ones")
    cell.build((None, 2))
    rows, cols = cell.hub_rows.numpy(), cell.hub_columns.numpy()
    assert rows[0, :2].tolist() == [0, 0] and rows[0, 2:].tolist() == [1] * 5
    assert cols[0].tolist() == [0, 0, 0]  # unit 0 is a hub: owned by hub rows
    assert cols[1].tolist() == [0, 1, 1] and cols[2].tolist() == [1, 0, 1]


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: kb.BandCell(0, half_width=1), "units"),
        (lambda: kb.BandCell(4), "half_width"),
        (lambda: kb.BandCell(4, half_width=-1), "half_width"),
        (lambda: kb.BandCell(4, half_width=1, lower=2), "half_width"),
        (lambda: kb.BandCell(4, lower=1, upper=1.5), "upper"),
        (lambda: kb.BandCell(8, half_width=1, shift=2), "shift"),
        (lambda: kb.BandCell(8, half_width=2, fixed_shift=True), "shift"),
        (lambda: kb.BandCell(8, half_width=2, active_half_width=-1), "active_half_width"),
        (lambda: kb.ClosedBandCell(4, half_width=2), "lower \\+ upper \\+ 1 <= n"),
        (lambda: kb.GridBandCell(8, half_width=1), "grid_stride"),
        (lambda: kb.GridBandCell(8, half_width=1, grid_stride=0), "grid_stride"),
        (lambda: kb.FactorizedCell(8), "rank"),
        (lambda: kb.FactorizedCell(8, rank=0), "rank"),
        (lambda: kb.BandCell(8, half_width=1, dropout=1.5), "dropout"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_shift_must_cover_the_input_dimension():
    with pytest.raises(ValueError, match="shift"):
        keras.layers.RNN(kb.BandCell(8, half_width=2, shift=2))(data(dim=3))


def test_unscheduled_cell_refuses_set_active_half_width():
    cell = kb.BandCell(8, half_width=2)
    with pytest.raises(ValueError, match="active_half_width"):
        cell.set_active_half_width(1)


def _examples(doc):
    return re.findall(r"```python\n(.*?)```", doc, re.S)


@pytest.mark.parametrize("obj", [kb.BandCell, kb.ClosedBandCell, kb.GridBandCell, kb.FactorizedCell,
                                 kb.callbacks.BandWidthScheduler])
def test_docstring_examples_run(obj):
    examples = _examples(obj.__doc__)
    assert examples
    for code in examples:
        import textwrap
        exec(textwrap.dedent(code), {"np": np, "keras": keras, "keras_bandrnn": kb, "tf": tf})
