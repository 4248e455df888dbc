"""Each cell against the dense NumPy recurrence: outputs, gradients, connectivity."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_bandrnn as kb
from tests.cells.conftest import in_band
from tests.cells.conftest import reference_forward_backward

RAND = dict(
    recurrent_initializer=keras.initializers.RandomNormal(stddev=0.4, seed=1),
    bias_initializer=keras.initializers.RandomNormal(stddev=0.3, seed=2),
    kernel_initializer=keras.initializers.RandomNormal(stddev=0.5, seed=3),
)
HUBS = dict(hub_initializer=keras.initializers.RandomNormal(stddev=0.3, seed=4))

CELLS = {
    "band": lambda **kw: kb.BandCell(11, half_width=2, **RAND, **kw),
    "band_asym": lambda **kw: kb.BandCell(11, lower=3, upper=1, **RAND, **kw),
    "band_upper_only": lambda **kw: kb.BandCell(11, lower=0, upper=2, **RAND, **kw),
    "band_wider_than_n": lambda **kw: kb.BandCell(5, half_width=4, **RAND, **kw),
    "band_fixed_shift": lambda **kw: kb.BandCell(11, half_width=3, shift=2, fixed_shift=True, **RAND, **kw),
    "band_linear_nobias": lambda **kw: kb.BandCell(11, half_width=1, activation=None, use_bias=False, **RAND, **kw),
    # Other activations, each with its derivative in conftest.activation_fns.
    "band_sigmoid": lambda **kw: kb.BandCell(11, half_width=2, activation="sigmoid", **RAND, **kw),
    "band_softsign": lambda **kw: kb.BandCell(11, half_width=2, activation="softsign", **RAND, **kw),
    "closed_relu": lambda **kw: kb.ClosedBandCell(11, half_width=2, activation="relu", **RAND, **kw),
    "grid_sigmoid": lambda **kw: kb.GridBandCell(11, half_width=1, grid_stride=4, activation="sigmoid",
                                                 **RAND, **HUBS, **kw),
    "band_scheduled": lambda **kw: kb.BandCell(11, half_width=3, active_half_width=1, **RAND, **kw),
    "closed": lambda **kw: kb.ClosedBandCell(11, half_width=2, **RAND, **kw),
    "closed_asym": lambda **kw: kb.ClosedBandCell(11, lower=1, upper=3, **RAND, **kw),
    "closed_k_eq_n": lambda **kw: kb.ClosedBandCell(7, half_width=3, **RAND, **kw),
    "closed_fixed_shift": lambda **kw: kb.ClosedBandCell(11, half_width=3, shift=2, fixed_shift=True, **RAND, **kw),
    "closed_scheduled": lambda **kw: kb.ClosedBandCell(11, lower=3, upper=2, active_half_width=2, **RAND, **kw),
    "grid": lambda **kw: kb.GridBandCell(11, half_width=1, grid_stride=4, **RAND, **HUBS, **kw),
    "grid_asym": lambda **kw: kb.GridBandCell(12, lower=2, upper=0, grid_stride=3, **RAND, **HUBS, **kw),
    "grid_stride1": lambda **kw: kb.GridBandCell(6, half_width=1, grid_stride=1, **RAND, **HUBS, **kw),
    "factorized": lambda **kw: kb.FactorizedCell(11, rank=3, **RAND, **kw),
}


def run_tf(cell, x, g):
    rnn = keras.layers.RNN(cell, return_sequences=True, dtype="float64")
    rnn.build(x.shape)
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = rnn(x)
        loss = tf.reduce_sum(out * g)
    weights = rnn.trainable_weights
    grads = tape.gradient(loss, weights + [x])
    return out.numpy(), {w.name: gr for w, gr in zip(weights, grads[:-1])}, grads[-1].numpy()


@pytest.mark.parametrize("name", sorted(CELLS))
def test_sequence_outputs_and_gradients_match_numpy(name, impl):
    rng = np.random.default_rng(0)
    cell = CELLS[name](dtype="float64")
    x = rng.normal(size=(3, 6, 2))
    g = rng.normal(size=(3, 6, cell.units))
    out, grads, dx = run_tf(cell, x, g)
    ref_out, ref_grads, ref_dx = reference_forward_backward(cell, x, g)
    np.testing.assert_allclose(out, ref_out, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-9, atol=1e-10)
    assert set(grads) == set(ref_grads)
    for key, ref in ref_grads.items():
        got = grads[key].numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-10, err_msg=key)
    # padding / masked-out slots get exactly zero gradient where the reference has 0
    if hasattr(cell, "recurrent_kernel"):
        zero = ref_grads["recurrent_kernel"] == 0
        assert np.all(grads["recurrent_kernel"].numpy()[zero] == 0)


def expected_pattern(cell):
    n = cell.units
    pattern = np.zeros((n, n), bool)
    for r in range(n):
        for c in range(n):
            if isinstance(cell, kb.ClosedBandCell):
                pattern[r, c] = in_band(r, c, cell.lower, cell.upper, n)
            else:
                pattern[r, c] = in_band(r, c, cell.lower, cell.upper)
            if isinstance(cell, kb.GridBandCell):
                s = cell.grid_stride
                pattern[r, c] |= r % s == 0 or c % s == 0
    return pattern


@pytest.mark.parametrize(
    "name",
    ["band", "band_asym", "band_upper_only", "band_wider_than_n", "closed", "closed_asym",
     "closed_k_eq_n", "closed_fixed_shift", "grid", "grid_asym"],
)
def test_one_step_jacobian_has_exactly_the_specified_connectivity(name, impl):
    cell = CELLS[name]()
    n = cell.units
    cell.build((None, 2))
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=(1, 2)), tf.float32)
    h = tf.constant(rng.normal(size=(1, n)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(h)
        out, _ = cell(x, [h])
    jac = tape.jacobian(out, h).numpy().reshape(n, n)  # jac[r, c] = d h_t[r] / d h_{t-1}[c]
    np.testing.assert_array_equal(jac != 0, expected_pattern(cell))


def test_factorized_jacobian_is_rank_limited_dense(impl):
    cell = CELLS["factorized"]()
    cell.build((None, 2))
    h = tf.constant(np.random.default_rng(2).normal(size=(1, 11)), tf.float32)
    x = tf.zeros((1, 2))
    with tf.GradientTape() as tape:
        tape.watch(h)
        out, _ = cell(x, [h])
    jac = tape.jacobian(out, h).numpy().reshape(11, 11)
    assert np.all(jac != 0)
    assert np.linalg.matrix_rank(jac, tol=1e-5) == 3


@pytest.mark.parametrize("units,shift,steps", [(12, 3, 3), (12, 3, 11), (10, 2, 4)])
def test_closed_fixed_shift_linear_zero_band_is_an_exact_ring_buffer(units, shift, steps, impl):
    cell = kb.ClosedBandCell(units, half_width=shift, shift=shift, fixed_shift=True, activation=None)
    rnn = keras.layers.RNN(cell, return_sequences=True)
    x = np.random.default_rng(3).normal(size=(2, steps, shift)).astype(np.float32)
    out = rnn(x).numpy()
    assert not np.any(cell.recurrent_kernel.numpy())  # the trainable band starts at zero
    h = np.zeros((2, units), np.float32)
    for t in range(steps):
        h = np.roll(h, shift, axis=1)  # unit i takes unit i - shift, wrapping
        h[:, :shift] += x[:, t]
        np.testing.assert_array_equal(out[:, t], h)
    # Until it wraps, block b of the ring holds the input of b steps ago.
    for b in range(steps if steps <= units // shift else 0):
        np.testing.assert_array_equal(out[:, -1, b * shift : (b + 1) * shift], x[:, steps - 1 - b])


@pytest.mark.parametrize("cls", [kb.BandCell, kb.ClosedBandCell])
def test_trainable_shift_initialization_is_a_delay_line(cls, impl):
    units, shift, steps = 12, 2, 5
    cell = cls(units, half_width=3, shift=shift, activation=None)
    out = keras.layers.RNN(cell)(np.arange(1.0, 1 + 2 * steps * shift, dtype=np.float32).reshape(2, steps, shift)).numpy()
    x = np.arange(1.0, 1 + 2 * steps * shift, dtype=np.float32).reshape(2, steps, shift)
    expected = np.zeros((2, units), np.float32)
    for b in range(steps):
        expected[:, b * shift : (b + 1) * shift] = x[:, steps - 1 - b]
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(cell.kernel.numpy(), np.eye(shift, units))


def test_shift_initializer_values():
    s = kb.initializers.Shift(shift=2)(shape=(5, 5)).numpy()  # lower = upper = 2
    np.testing.assert_array_equal(s, [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0],
                                      [1, 0, 0, 0, 0], [1, 0, 0, 0, 0]])
    closed = kb.initializers.Shift(shift=1, closed=True, lower=2)(shape=(4, 4)).numpy()
    np.testing.assert_array_equal(closed[:, 1], np.ones(4))
    assert closed.sum() == 4
    with pytest.raises(ValueError, match="lower"):
        kb.initializers.Shift(shift=1)(shape=(4, 4))
    with pytest.raises(ValueError, match="shift"):
        kb.initializers.Shift(shift=3, lower=2)(shape=(4, 4))
