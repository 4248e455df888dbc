"""The band cells' fused step (`_fuse_step`, off by default) where it applies."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_bandrnn as kb


def op_types(fn, *args):
    """Op types of the traced graph of `fn`, including its loop bodies."""
    graph_def = tf.function(fn).get_concrete_function(*args).graph.as_graph_def()
    types = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        types |= {node.op for node in function.node_def}
    return types


def train_step_ops(cell):
    rnn = keras.layers.RNN(cell, return_sequences=True)
    x = tf.random.normal([2, 5, 3])
    rnn.build(x.shape)

    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(rnn(x) ** 2)
        return tape.gradient(loss, rnn.trainable_weights)

    return op_types(step, x)


def fused(cls):
    return type("Fused" + cls.__name__, (cls,), {"_fuse_step": True})


@pytest.mark.parametrize(
    "make",
    [
        lambda: fused(kb.BandCell)(16, half_width=2),
        lambda: fused(kb.ClosedBandCell)(16, half_width=3, shift=3, fixed_shift=True, activation=None),
        lambda: fused(kb.GridBandCell)(16, half_width=1, grid_stride=4, activation="relu"),
        lambda: fused(kb.BandCell)(16, half_width=3, active_half_width=1, activation="sigmoid"),
    ],
    ids=["band", "closed_fixed_shift_linear", "grid_relu", "band_scheduled_sigmoid"],
)
def test_cells_use_the_fused_step_with_the_compiled_kernels(impl, make):
    types = train_step_ops(make())
    fused = impl == "compiled" and not tf.config.list_logical_devices("GPU")
    assert ("BandRnnStep" in types) == fused
    assert ("BandRnnStepGrad" in types) == fused
    if fused:  # the separate band ops are gone from the loop
        assert "BandMatmul" not in types and "BandOuter" not in types


def test_other_activations_and_the_default_take_the_generic_path(impl):
    for cell in (fused(kb.BandCell)(16, half_width=2, activation="softsign"),
                 kb.BandCell(16, half_width=2)):
        types = train_step_ops(cell)
        assert "BandRnnStep" not in types
        if impl == "compiled":
            assert "BandMatmul" in types


def test_fused_and_unfused_cells_train_alike(impl):
    """Same weights, same data: a few SGD steps give the same weights."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 12, 3)).astype(np.float32)
    y = rng.normal(size=(8, 12, 3)).astype(np.float32)
    weights = []
    for cls in (fused(kb.BandCell), kb.BandCell):
        keras.utils.set_random_seed(1)
        model = keras.Sequential([
            keras.Input((12, 3)),
            keras.layers.RNN(cls(32, half_width=4, dropout=0.2, recurrent_dropout=0.2, seed=3),
                             return_sequences=True),
            keras.layers.Dense(3),
        ])
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
        weights.append([w.numpy() for w in model.weights])
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
