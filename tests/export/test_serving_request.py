"""examples/serving_request.py: REST and gRPC requests match the signature.

No model server runs here: the requests are checked against the SavedModel's
`serving_default` SignatureDef (what TensorFlow Serving reads), and their
decoded tensors are fed to the loaded signature and compared with Keras.
"""

import importlib.util
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.tools import saved_model_utils

from keras_bandrnn.export import export_saved_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_example():
    spec = importlib.util.spec_from_file_location(
        "serving_request_example", os.path.join(ROOT, "examples", "serving_request.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    example = load_example()
    base = tmp_path_factory.mktemp("models") / "copy_band"
    model = example.build_example_model(units=16, half_width=2)
    export_dir = str(base / "1")
    export_saved_model(model, export_dir)
    sig_def = saved_model_utils.get_meta_graph_def(export_dir, "serve").signature_def["serving_default"]
    x = np.eye(10, dtype=np.float32)[np.random.default_rng(0).integers(0, 10, (3, 12))]
    return example, model, export_dir, sig_def, {"symbols": x}


def test_rest_body_matches_signature(served):
    example, model, export_dir, sig_def, inputs = served
    specs = example.signature_inputs(export_dir)
    body = json.loads(json.dumps(example.rest_body(specs, inputs)))  # as sent on the wire
    assert body["signature_name"] == "serving_default"
    assert set(body["inputs"]) == set(sig_def.inputs)
    decoded = {}
    for name, info in sig_def.inputs.items():
        dtype = tf.dtypes.as_dtype(info.dtype)
        value = np.asarray(body["inputs"][name])
        assert np.can_cast(value.dtype, dtype.as_numpy_dtype, casting="same_kind")
        assert tf.TensorShape(info.tensor_shape).is_compatible_with(value.shape)
        decoded[name] = tf.constant(value, dtype)
    out = tf.saved_model.load(export_dir).signatures["serving_default"](**decoded)
    np.testing.assert_allclose(out["logits"].numpy(), model(inputs["symbols"]).numpy(), atol=2e-5)


def test_rest_row_format(served):
    example, _, export_dir, sig_def, inputs = served
    specs = example.signature_inputs(export_dir)
    body = json.loads(json.dumps(example.rest_body(specs, inputs, row_format=True)))
    assert len(body["instances"]) == 3
    for i, instance in enumerate(body["instances"]):
        assert set(instance) == set(sig_def.inputs)
        np.testing.assert_array_equal(np.asarray(instance["symbols"], np.float32), inputs["symbols"][i])


def test_grpc_predict_request_matches_signature(served):
    pytest.importorskip("tensorflow_serving.apis.predict_pb2")
    example, _, export_dir, sig_def, inputs = served
    specs = example.signature_inputs(export_dir)
    request = example.predict_request(specs, inputs, "copy_band")
    request = type(request).FromString(request.SerializeToString())  # as sent on the wire
    assert request.model_spec.name == "copy_band"
    assert request.model_spec.signature_name == "serving_default"
    assert set(request.inputs) == set(sig_def.inputs)
    for name, info in sig_def.inputs.items():
        proto = request.inputs[name]
        assert proto.dtype == info.dtype
        shape = [d.size for d in proto.tensor_shape.dim]
        assert tf.TensorShape(info.tensor_shape).is_compatible_with(shape)
        np.testing.assert_array_equal(tf.make_ndarray(proto), inputs[name])


def test_requests_reject_wrong_names_and_shapes(served):
    example, _, export_dir, _, inputs = served
    specs = example.signature_inputs(export_dir)
    with pytest.raises(ValueError, match="signature"):
        example.rest_body(specs, {"x": inputs["symbols"]})
    with pytest.raises(ValueError, match="symbols"):
        example.rest_body(specs, {"symbols": inputs["symbols"][..., :4]})


def test_serve_command_names_version_parent(served):
    example, _, export_dir, _, _ = served
    cmd = example.serve_command(os.path.dirname(export_dir), "copy_band")
    assert "--rest_api_port=8501" in cmd and "--model_name=copy_band" in cmd
    base = cmd.split("--model_base_path=")[1]
    assert os.path.isdir(os.path.join(base, "1"))  # TF Serving loads numbered versions
