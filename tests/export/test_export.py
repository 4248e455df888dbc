"""SavedModel export: stock-op graphs, loadable without keras_bandrnn (SPEC 6)."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_bandrnn as kb
from keras_bandrnn import _lib
from keras_bandrnn import export
from keras_bandrnn import ops as band_ops

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "load_in_stock_tf.py")
CHILD_TIMEOUT_S = 120
UNITS, FEATURES, STEPS = 16, 5, 7


def make_cell(name):
    if name == "band":
        return kb.BandCell(UNITS, lower=3, upper=1)
    if name == "closed":
        return kb.ClosedBandCell(UNITS, half_width=2)
    if name == "grid":
        return kb.GridBandCell(UNITS, half_width=1, grid_stride=5)
    if name == "factorized":
        return kb.FactorizedCell(UNITS, rank=3)
    if name == "conditional_gru":
        if not hasattr(kb, "ConditionalGRUCell"):
            pytest.skip("ConditionalGRUCell not merged into this branch yet")
        return kb.ConditionalGRUCell(UNITS, gate_dim=4, gating="block", sparsity_bias=-0.25)
    raise ValueError(name)


CELLS = ["band", "closed", "grid", "factorized", "conditional_gru"]


def randomize(model, seed):
    """Random non-zero weights everywhere (hub entries start at zero otherwise)."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        if v.trainable:
            v.assign(0.4 * rng.standard_normal(v.shape).astype(v.dtype))


def sequence_model(cell_name):
    inputs = keras.Input((None, FEATURES), name="symbols")
    h = keras.layers.RNN(make_cell(cell_name), return_sequences=True)(inputs)
    outputs = keras.layers.Dense(3, name="logits")(h)
    model = keras.Model(inputs, outputs)
    randomize(model, len(cell_name))
    return model


def two_in_two_out_model():
    """Two named inputs, two named outputs, a Bidirectional band layer."""
    a = keras.Input((None, FEATURES), name="left")
    b = keras.Input((None, 2), name="right")
    x = keras.layers.Concatenate()([a, b])
    seq = keras.layers.Bidirectional(
        keras.layers.RNN(kb.ClosedBandCell(UNITS, half_width=1), return_sequences=True)
    )(x)
    logits = keras.layers.Dense(4, name="logits")(seq)
    last = keras.layers.RNN(kb.BandCell(8, half_width=2), name="summary")(seq)
    model = keras.Model([a, b], [logits, last])
    randomize(model, 7)
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Exports every model, then loads them all in one stock-TF subprocess."""
    root = tmp_path_factory.mktemp("exports")
    rng = np.random.default_rng(0)
    cases, models = {}, {}
    builders = {name: (lambda n=name: sequence_model(n)) for name in CELLS}
    builders["two_in_two_out"] = two_in_two_out_model
    for name, build in builders.items():
        try:
            model = build()
        except pytest.skip.Exception:
            continue
        if len(model.inputs) == 1:
            inputs = {"symbols": rng.standard_normal((3, STEPS, FEATURES)).astype("float32")}
            expected = {"logits": model(inputs["symbols"]).numpy()}
        else:
            inputs = {
                "left": rng.standard_normal((2, STEPS, FEATURES)).astype("float32"),
                "right": rng.standard_normal((2, STEPS, 2)).astype("float32"),
            }
            logits, last = model([inputs["left"], inputs["right"]])
            expected = {"logits": logits.numpy(), "summary": last.numpy()}
        path = str(root / name / "1")
        types = export.export_saved_model(model, path)
        np.savez(root / f"{name}_in.npz", **inputs)
        np.savez(root / f"{name}_out.npz", **expected)
        cases[name] = {"path": path, "inputs": str(root / f"{name}_in.npz"),
                       "expected": str(root / f"{name}_out.npz")}
        models[name] = (model, types)
    with open(root / "cases.json", "w") as f:
        json.dump(cases, f)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KERAS_BANDRNN_LIBRARY")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    proc = subprocess.run(
        [sys.executable, CHILD, str(root / "cases.json"), str(root / "result.json")],
        cwd=str(root), env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    with open(root / "result.json") as f:
        results = json.load(f)
    return models, results


def test_child_never_imported_keras_bandrnn(exported):
    _, results = exported
    assert results["__modules__"] == []


@pytest.mark.parametrize("name", CELLS + ["two_in_two_out"])
def test_fresh_process_matches_keras(exported, name):
    models, results = exported
    if name not in results:
        pytest.skip(f"{name}: cell not available in this branch")
    r = results[name]
    assert r["shapes_match"]
    for key, diff in r["max_abs_diff"].items():
        assert diff is not None, f"output {key} missing from the signature"
        assert diff < 2e-5, (key, diff)


@pytest.mark.parametrize("name", CELLS + ["two_in_two_out"])
def test_only_stock_ops(exported, name):
    models, results = exported
    if name not in results:
        pytest.skip(f"{name}: cell not available in this branch")
    r = results[name]
    assert r["unregistered_ops"] == []
    assert not any(t.startswith(("Band", "BlockSparse")) for t in r["op_types"])
    assert sorted(models[name][1]) == r["op_types"]  # what export_saved_model reported


def test_signature_names(exported):
    _, results = exported
    assert results["band"]["input_names"] == ["symbols"]
    assert results["band"]["output_names"] == ["logits"]
    assert results["two_in_two_out"]["input_names"] == ["left", "right"]
    assert results["two_in_two_out"]["output_names"] == ["logits", "summary"]


def test_compiled_ops_would_leak_without_lowering(tmp_path):
    """The check is not vacuous: a plain trace does hold the custom op."""
    if _lib.op_library() is None:
        pytest.skip("compiled op library not built")
    model = sequence_model("band")
    fn = tf.function(lambda x: model(x)).get_concrete_function(
        tf.TensorSpec([None, None, FEATURES], tf.float32))
    # The tanh band cell's step is one BandMatmulTanh.
    assert "BandMatmulTanh" in export.graph_op_types(fn.graph.as_graph_def())


def test_keras_model_export_names_export_saved_model(tmp_path):
    if _lib.op_library() is None:
        pytest.skip("compiled op library not built: model.export gives stock ops anyway")
    model = sequence_model("closed")
    with pytest.raises(ValueError, match="export_saved_model"):
        model.export(str(tmp_path / "m"), verbose=False)
    with pytest.raises(ValueError, match="export_saved_model"):
        tf.saved_model.save(model, str(tmp_path / "m2"))


def test_keras_model_export_inside_pure_tf(tmp_path):
    model = sequence_model("grid")
    with band_ops.pure_tf():
        model.export(str(tmp_path / "m"), verbose=False)
    types = export.saved_model_op_types(str(tmp_path / "m"))
    assert not any(t.startswith("Band") for t in types)
    x = np.random.default_rng(1).standard_normal((2, STEPS, FEATURES)).astype("float32")
    loaded = tf.saved_model.load(str(tmp_path / "m"))
    np.testing.assert_allclose(loaded.serve(x).numpy(), model(x).numpy(), atol=2e-5)


def test_factorized_model_export_is_not_blocked(tmp_path):
    """FactorizedCell calls no custom op, so Keras's exporter is fine."""
    model = sequence_model("factorized")
    model.export(str(tmp_path / "m"), verbose=False)


def test_checkpoints_unaffected(tmp_path):
    model = sequence_model("band")
    tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    model.save(str(tmp_path / "m.keras"))


def test_input_signature_argument(tmp_path):
    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.rnn = keras.layers.RNN(kb.BandCell(8, half_width=1))

        def call(self, x):
            return self.rnn(x)

    model = Sub()
    x = np.ones((2, 3, 4), "float32")
    y = model(x)
    with pytest.raises(ValueError, match="input_signature"):
        export.export_saved_model(model, str(tmp_path / "a"))
    spec = [tf.TensorSpec([None, None, 4], tf.float32, name="seq")]
    export.export_saved_model(model, str(tmp_path / "b"), input_signature=spec)
    sig = tf.saved_model.load(str(tmp_path / "b")).signatures["serving_default"]
    out = sig(seq=tf.constant(x))
    assert list(out) == ["output_0"]
    np.testing.assert_allclose(out["output_0"].numpy(), y.numpy(), atol=1e-6)


def test_unbuilt_model_rejected(tmp_path):
    model = keras.Sequential([keras.layers.RNN(kb.BandCell(4, half_width=1))])
    with pytest.raises(ValueError, match="built"):
        export.export_saved_model(model, str(tmp_path / "m"))
