"""ConditionalGRUCell against a NumPy implementation of SPEC section 4."""

import contextlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_bandrnn import ConditionalGRUCell
from keras_bandrnn import _lib
from keras_bandrnn.ops import pure_tf

UNITS, GATE_DIM, INPUT_DIM, BATCH, STEPS = 16, 4, 5, 6, 4
EPS = 1e-3


@pytest.fixture(params=["compiled", "pure_tf"])
def impl(request):
    if request.param == "compiled" and _lib.op_library() is None:
        pytest.fail(f"op library not loaded: {_lib.fallback_reason()}", pytrace=False)
    with contextlib.nullcontext() if request.param == "compiled" else pure_tf():
        yield request.param


# -- NumPy reference (float64) ------------------------------------------------


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def split_rh(m, layout):
    """Interleaved [r | h] columns (see the class doc) -> (M_r, M_h)."""
    rows = m.shape[0] if m.ndim == 2 else None
    m = m.reshape((-1,) + m.shape[-1:]) if m.ndim == 2 else m.reshape(1, -1)
    m = m.reshape(m.shape[0], -1, 2, layout)
    r, h = m[:, :, 0].reshape(m.shape[0], -1), m[:, :, 1].reshape(m.shape[0], -1)
    return (r, h) if rows is not None else (r[0], h[0])


def weights(cell):
    w = {v.path.split("/")[-1]: np.asarray(v.numpy(), np.float64) for v in cell.weights}
    L = cell.layout_block
    w["W_r"], w["W_h"] = split_rh(w["kernel"], L)
    u = w["recurrent_kernel"] if cell.gating == "block" else w["recurrent_kernel"].T
    w["U_r"], w["U_h"] = split_rh(u, L)
    if "bias" in w:
        w["b_r"], w["b_h"] = split_rh(w["bias"], L)
    return w


def reference_step(w, x, h, gating, s, training):
    """SPEC section 4, one step; returns (h_t, gate values, batch stats)."""
    b = lambda name, n: w.get(name, np.zeros(n))  # noqa: E731
    units = h.shape[1]
    r = sigmoid(x @ w["W_r"] + h @ w["U_r"] + b("b_r", units))
    h_cand = np.tanh(x @ w["W_h"] + r * (h @ w["U_h"]) + b("b_h", units))
    z_lr = np.maximum(x @ w["gate_kernel"] + h @ w["recurrent_gate_kernel"] + b("gate_bias", w["gate_kernel"].shape[1]), 0)
    v = z_lr if gating == "block" else z_lr @ w["gate_output_kernel"] + b("gate_output_bias", units)
    if training:
        mean, var = v.mean(0), v.var(0)
    else:
        mean, var = w["moving_mean"], w["moving_variance"]
    gate = np.tanh(np.maximum((v - mean) / np.sqrt(var + EPS) + s, 0))
    z = np.repeat(gate, units // gate.shape[1], axis=1)
    return (1 - z) * h + z * h_cand, gate, (mean, var)


def reference_sequence(w, xs, gating, s):
    h = np.zeros((xs.shape[0], w["U_r"].shape[0]))
    out, gates = [], []
    for t in range(xs.shape[1]):
        h, gate, _ = reference_step(w, xs[:, t], h, gating, s, training=False)
        out.append(h)
        gates.append(gate)
    return np.stack(out, 1), np.stack(gates, 1)


def randomize(cell, rng, scale=0.6):
    """Random weights and moving statistics, so gates are mixed open/closed."""
    for v in cell.weights:
        if v.path.endswith("moving_variance"):
            v.assign(rng.uniform(0.05, 0.3, v.shape).astype("float32"))
        elif v.path.endswith("moving_mean"):
            v.assign(rng.uniform(0.0, 0.5, v.shape).astype("float32"))
        else:
            v.assign((rng.standard_normal(v.shape) * scale).astype("float32"))


def make_cell(gating="block", s=-0.3, **kwargs):
    gate_dim = kwargs.pop("gate_dim", GATE_DIM)
    cell = ConditionalGRUCell(UNITS, gate_dim, gating=gating, sparsity_bias=s, **kwargs)
    cell.build((None, INPUT_DIM))
    return cell


def inputs(rng, batch=BATCH, steps=STEPS):
    return rng.standard_normal((batch, steps, INPUT_DIM)).astype("float32")


# -- equations ----------------------------------------------------------------


@pytest.mark.parametrize("gating, gate_dim", [("block", 4), ("block", 1), ("block", 16), ("unstructured", 3)])
@pytest.mark.parametrize("conditional", [True, False])
@pytest.mark.parametrize("use_bias", [True, False])
def test_inference_matches_numpy_reference(impl, gating, gate_dim, conditional, use_bias):
    rng = np.random.default_rng(gate_dim + 7 * conditional + 3 * use_bias)
    cell = make_cell(gating, s=-0.3, gate_dim=gate_dim, conditional_inference=conditional, use_bias=use_bias)
    randomize(cell, rng)
    xs = inputs(rng)
    out = keras.layers.RNN(cell, return_sequences=True)(xs, training=False)
    expected, gates = reference_sequence(weights(cell), xs.astype(np.float64), gating, -0.3)
    assert 0.1 < (gates == 0).mean() < 0.9, "want a mix of open and closed gates"
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("gating", ["block", "unstructured"])
def test_training_step_uses_batch_statistics_and_updates_moving_ones(gating):
    rng = np.random.default_rng(1)
    cell = make_cell(gating, s=-0.25, gate_momentum=0.9)
    randomize(cell, rng)
    w = weights(cell)
    x = rng.standard_normal((BATCH, INPUT_DIM)).astype("float32")
    h = (rng.standard_normal((BATCH, UNITS)) * 0.5).astype("float32")
    out, _ = cell(x, [h], training=True)
    expected, _, (mean, var) = reference_step(w, x.astype(np.float64), h.astype(np.float64), gating, -0.25, True)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cell.moving_mean.numpy(), 0.9 * w["moving_mean"] + 0.1 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cell.moving_variance.numpy(), 0.9 * w["moving_variance"] + 0.1 * var, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("gating", ["block", "unstructured"])
def test_closed_units_pass_state_through_exactly(impl, gating):
    rng = np.random.default_rng(2)
    cell = make_cell(gating, s=-0.5)
    randomize(cell, rng)
    x = rng.standard_normal((BATCH, INPUT_DIM)).astype("float32")
    h = rng.standard_normal((BATCH, UNITS)).astype("float32")
    out, _ = cell(x, [h], training=False)
    _, gate, _ = reference_step(weights(cell), x.astype(np.float64), h.astype(np.float64), gating, -0.5, False)
    closed = np.repeat(gate == 0, cell.gate_block_size, axis=1)
    assert closed.any() and not closed.all()
    np.testing.assert_array_equal(out.numpy()[closed], h[closed])
    assert not np.allclose(out.numpy()[~closed], h[~closed])


@pytest.mark.parametrize("gating", ["block", "unstructured"])
def test_conditional_equals_dense_inference(impl, gating):
    rng = np.random.default_rng(3)
    xs = inputs(rng, batch=9, steps=6)
    outs = []
    for conditional in (True, False):
        cell = make_cell(gating, s=-0.4, conditional_inference=conditional)
        randomize(cell, np.random.default_rng(4))
        outs.append(keras.layers.RNN(cell, return_sequences=True)(xs).numpy())
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("batch", [1, 2, 3, 8])
def test_unstructured_conditional_equals_dense_at_size(impl, batch):
    """512 units: up to batch 2 the open pairs' product, large enough to be
    split over the threads (by rows of the transposed recurrent kernel);
    above, the dense product. Closed units keep `h` bit for bit either way."""
    rng = np.random.default_rng(10 + batch)
    cells = []
    for conditional in (True, False):
        cell = ConditionalGRUCell(512, 16, gating="unstructured", sparsity_bias=-0.5,
                                  conditional_inference=conditional)
        cell.build((None, INPUT_DIM))
        cells.append(cell)
    for v in cells[0].weights:
        v.assign(rng.standard_normal(v.shape).astype("float32") * 0.3)
    cells[0].moving_variance.assign(np.abs(cells[0].moving_variance.numpy()) + 0.5)
    cells[1].set_weights(cells[0].get_weights())
    x = rng.standard_normal((batch, INPUT_DIM)).astype("float32")
    h = rng.standard_normal((batch, 512)).astype("float32")
    cond, _ = cells[0](x, [h], training=False)
    dense, _ = cells[1](x, [h], training=False)
    closed = cells[0]._gate_preactivation(x, h, False).numpy() <= 0
    assert 0.2 < closed.mean() < 0.95
    np.testing.assert_allclose(cond.numpy(), dense.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(cond.numpy()[closed], h[closed])
    assert not np.any(cond.numpy()[~closed] == h[~closed])


@pytest.mark.parametrize("activation, recurrent_activation", [("softsign", "hard_sigmoid"), ("tanh", "relu")])
def test_block_conditional_with_other_activations(impl, activation, recurrent_activation):
    """Activations the fused update kernel does not compute take the composition."""
    rng = np.random.default_rng(8)
    xs = inputs(rng, batch=7, steps=5)
    outs = []
    for conditional in (True, False):
        cell = make_cell(
            "block", s=-0.4, conditional_inference=conditional,
            activation=activation, recurrent_activation=recurrent_activation,
        )
        randomize(cell, np.random.default_rng(4))
        outs.append(keras.layers.RNN(cell, return_sequences=True)(xs).numpy())
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-6, atol=1e-6)
    tanh_sigmoid = make_cell("block", s=-0.4)
    randomize(tanh_sigmoid, np.random.default_rng(4))
    assert not np.allclose(outs[0], keras.layers.RNN(tanh_sigmoid, return_sequences=True)(xs).numpy())


@pytest.mark.parametrize("gate_dim", [1, 4, 16])
def test_block_inference_with_mixed_samples(impl, gate_dim):
    """One batch with a sample whose gates are all closed, one all open, and mixes.

    The conditional path gathers the open (sample, block) pairs and scatters
    their update into `h`: it must equal the dense path and the reference on
    open pairs and be `h` bit for bit on closed ones, whatever the pattern.
    """
    rng = np.random.default_rng(12 + gate_dim)
    cells = [make_cell("block", s=-0.4, gate_dim=gate_dim, conditional_inference=c) for c in (True, False)]
    randomize(cells[0], rng)
    # Input feature 4 drives every gate far below 0 (closed: the moving means
    # are > 0 and s < 0), feature 3 far above (open).
    gk = cells[0].gate_kernel.numpy()
    gk[3], gk[4] = 100.0, -100.0
    cells[0].gate_kernel.assign(gk)
    cells[1].set_weights(cells[0].get_weights())
    x = rng.standard_normal((BATCH, INPUT_DIM)).astype("float32")
    x[:, 3:] = 0.0
    x[1, 4] = x[2, 3] = 1.0
    h = rng.standard_normal((BATCH, UNITS)).astype("float32")
    cond, _ = cells[0](x, [h], training=False)
    dense, _ = cells[1](x, [h], training=False)
    expected, gate, _ = reference_step(weights(cells[0]), x.astype(np.float64), h.astype(np.float64), "block", -0.4, False)
    assert (gate[1] == 0).all() and (gate[2] > 0).all()
    closed = np.repeat(gate == 0, UNITS // gate_dim, axis=1)
    np.testing.assert_allclose(cond.numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cond.numpy(), dense.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(cond.numpy()[closed], h[closed])


@pytest.mark.parametrize("gating", ["block", "unstructured"])
def test_inference_empty_batch(impl, gating):
    cell = make_cell(gating, s=-0.3)
    out, state = cell(np.zeros((0, INPUT_DIM), "float32"), [np.zeros((0, UNITS), "float32")], training=False)
    assert out.shape == (0, UNITS) and state[0].shape == (0, UNITS)


@pytest.mark.parametrize("gating", ["block", "unstructured"])
def test_all_gates_closed_and_all_open(impl, gating):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((BATCH, INPUT_DIM)).astype("float32")
    h = rng.standard_normal((BATCH, UNITS)).astype("float32")
    cell = make_cell(gating, s=-50.0)
    randomize(cell, rng)
    out, _ = cell(x, [h])
    np.testing.assert_array_equal(out.numpy(), h)
    # A very negative moving mean opens every gate.
    cell = make_cell(gating, s=0.0, conditional_inference=True)
    randomize(cell, rng)
    cell.moving_mean.assign(np.full(cell.moving_mean.shape, -100.0, "float32"))
    out, _ = cell(x, [h])
    expected, gate, _ = reference_step(weights(cell), x.astype(np.float64), h.astype(np.float64), gating, 0.0, False)
    assert (gate > 0).all()
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)


# -- metric -------------------------------------------------------------------


def test_closed_fraction_metric(impl):
    rng = np.random.default_rng(6)
    cell = make_cell("block", s=-0.3)
    randomize(cell, rng)
    xs = inputs(rng)
    # Step by step: keras.layers.RNN's TF loop runs the cell once more on the
    # first step (to infer output shapes), which the metric would count too.
    h = [tf.zeros((BATCH, UNITS))]
    for t in range(STEPS):
        _, h = cell(xs[:, t], h)
    _, gates = reference_sequence(weights(cell), xs.astype(np.float64), "block", -0.3)
    np.testing.assert_allclose(float(cell.closed_fraction.result()), (gates == 0).mean(), atol=1e-6)
    cell.closed_fraction.reset_state()
    assert float(cell.closed_fraction.result()) == 0.0


# -- Keras citizenship --------------------------------------------------------


def build_model(cell, steps=STEPS):
    inp = keras.Input((steps, INPUT_DIM))
    hidden = keras.layers.RNN(cell, return_sequences=True)(inp)
    return keras.Model(inp, keras.layers.Dense(3)(hidden))


@pytest.mark.parametrize("gating", ["block", "unstructured"])
def test_fit_trains_and_logs_the_sparsity_metric(gating):
    rng = np.random.default_rng(7)
    xs = inputs(rng, batch=32)
    ys = np.stack([xs[..., 0] > 0, xs[..., 1] > 0, xs[..., 2] > 0], -1).astype("float32")
    keras.utils.set_random_seed(0)
    cell = ConditionalGRUCell(UNITS, GATE_DIM, gating=gating, sparsity_bias=-0.25, dropout=0.1, recurrent_dropout=0.1, seed=1)
    model = build_model(cell)
    model.compile(keras.optimizers.Adam(0.02), keras.losses.BinaryCrossentropy(from_logits=True))
    before = model.evaluate(xs, ys, verbose=0, return_dict=True)
    history = model.fit(xs, ys, epochs=8, batch_size=8, verbose=0)
    after = model.evaluate(xs, ys, verbose=0, return_dict=True)
    assert after["loss"] < 0.8 * before["loss"]
    key = f"{cell.name}_closed_fraction"
    assert key in history.history
    assert all(0.0 <= v <= 1.0 for v in history.history[key])
    assert not np.allclose(cell.moving_mean.numpy(), 0.0)  # statistics were tracked


def test_keras_file_round_trip(tmp_path):
    rng = np.random.default_rng(8)
    cell = ConditionalGRUCell(UNITS, GATE_DIM, sparsity_bias=-0.5, kernel_regularizer="l2", dropout=0.2, seed=3)
    model = build_model(cell)
    randomize(cell, rng)
    xs = inputs(rng)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(xs, verbose=0), model.predict(xs, verbose=0), rtol=1e-6, atol=1e-6)
    loaded_cell = loaded.layers[1].cell
    assert isinstance(loaded_cell, ConditionalGRUCell)
    assert loaded_cell.get_config() == cell.get_config()
    np.testing.assert_array_equal(loaded_cell.moving_variance.numpy(), cell.moving_variance.numpy())


def test_rnn_options(impl):
    rng = np.random.default_rng(9)
    xs = inputs(rng)
    cell = make_cell("block", s=-0.3)
    randomize(cell, rng)
    w = weights(cell)
    # return_state + go_backwards
    out, state = keras.layers.RNN(cell, return_state=True, go_backwards=True)(xs)
    expected, _ = reference_sequence(w, xs[:, ::-1].astype(np.float64), "block", -0.3)
    np.testing.assert_allclose(out.numpy(), expected[:, -1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(state.numpy(), expected[:, -1], rtol=1e-5, atol=1e-5)
    # masking: masked trailing steps keep the state
    mask = np.ones((BATCH, STEPS), bool)
    mask[:, 2:] = False
    out = keras.layers.RNN(cell)(xs, mask=mask)
    expected, _ = reference_sequence(w, xs[:, :2].astype(np.float64), "block", -0.3)
    np.testing.assert_allclose(out.numpy(), expected[:, -1], rtol=1e-5, atol=1e-5)
    # Bidirectional
    bi = keras.layers.Bidirectional(keras.layers.RNN(ConditionalGRUCell(UNITS, GATE_DIM), return_sequences=True))
    assert bi(xs).shape == (BATCH, STEPS, 2 * UNITS)
    # stateful: two halves equal the whole
    layer = keras.layers.RNN(cell, stateful=True, return_sequences=True)
    first = layer(xs[:, :2]).numpy()
    second = layer(xs[:, 2:]).numpy()
    expected, _ = reference_sequence(w, xs.astype(np.float64), "block", -0.3)
    np.testing.assert_allclose(np.concatenate([first, second], 1), expected, rtol=1e-5, atol=1e-5)


def test_supports_jit_false_and_registered():
    cell = ConditionalGRUCell(8, 2)
    assert cell.supports_jit is False
    assert keras.saving.get_registered_object("keras_bandrnn>ConditionalGRUCell") is ConditionalGRUCell


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(units=0, gate_dim=2), "units"),
        (dict(units=8.5, gate_dim=2), "units"),
        (dict(units=8, gate_dim=0), "gate_dim"),
        (dict(units=8, gate_dim=3), "gate_dim"),
        (dict(units=8, gate_dim=2, gating="dense"), "gating"),
        (dict(units=8, gate_dim=2, sparsity_bias=0.5), "sparsity_bias"),
        (dict(units=8, gate_dim=2, sparsity_bias="x"), "sparsity_bias"),
        (dict(units=8, gate_dim=2, gate_momentum=1.0), "gate_momentum"),
        (dict(units=8, gate_dim=2, gate_epsilon=0.0), "gate_epsilon"),
        (dict(units=8, gate_dim=2, dropout=1.5), "dropout"),
    ],
)
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ConditionalGRUCell(**kwargs)


def test_unstructured_gate_dim_need_not_divide_units():
    cell = ConditionalGRUCell(10, 3, gating="unstructured")
    assert keras.layers.RNN(cell)(np.zeros((2, 3, 4), "float32")).shape == (2, 10)
