"""Exports a band RNN for TensorFlow Serving and builds REST and gRPC requests.

    python examples/serving_request.py --export_base=/tmp/models/copy_band
    # prints the tensorflow_model_server command, writes the REST body to
    # /tmp/models/copy_band_request.json and shows the gRPC PredictRequest.

    # with a server running (see docs/serving.md), send both requests:
    python examples/serving_request.py --export_base=/tmp/models/copy_band \\
        --rest_url=http://localhost:8501 --grpc_target=localhost:8500

The model reads a one-hot copy-task sequence (`symbols`, shape
`(batch, time, 10)`) and returns per-step `logits`. TensorFlow Serving loads
numbered version directories, so the export goes to `<export_base>/1`.

The request builders read names, dtypes and shapes from the SavedModel's
`serving_default` signature, not from the Keras model, so they also work for
any export of `keras_bandrnn.export.export_saved_model`. The gRPC part needs
`pip install tensorflow-serving-api` (it pins `tensorflow>=2.21,<3` and leaves
an installed TensorFlow 2.21 in place).
"""

import json
import os
import sys
import urllib.request

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

SIGNATURE = "serving_default"


def build_example_model(units=64, half_width=4, vocab=10, seed=0):
    """A small copy-task model: RNN(BandCell) -> Dense logits."""
    import keras

    import keras_bandrnn as kb

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, vocab), name="symbols")
    h = keras.layers.RNN(kb.BandCell(units, half_width=half_width), return_sequences=True)(inputs)
    outputs = keras.layers.Dense(vocab, name="logits")(h)
    return keras.Model(inputs, outputs)


def signature_inputs(export_dir):
    """`{name: tf.TensorSpec}` of the export's `serving_default` inputs."""
    loaded = tf.saved_model.load(export_dir)
    return dict(loaded.signatures[SIGNATURE].structured_input_signature[1])


def check_inputs(specs, inputs):
    """Raises ValueError unless `inputs` match the signature `specs`."""
    if set(inputs) != set(specs):
        raise ValueError(f"inputs {sorted(inputs)} do not match the signature's {sorted(specs)}.")
    for name, value in inputs.items():
        spec = specs[name]
        if not spec.shape.is_compatible_with(np.shape(value)):
            raise ValueError(f"input `{name}` has shape {np.shape(value)}, signature {spec.shape}.")


def rest_body(specs, inputs, row_format=False):
    """A TF Serving REST `:predict` body for the signature.

    Args:
        specs: the signature inputs, from `signature_inputs`.
        inputs: `{name: array}`, batch first.
        row_format: `{"instances": [...]}` (one object per example) instead of
            the columnar `{"inputs": {name: batch}}`.

    Returns:
        A JSON-serializable dict.
    """
    check_inputs(specs, inputs)
    arrays = {k: np.asarray(v, specs[k].dtype.as_numpy_dtype) for k, v in inputs.items()}
    body = {"signature_name": SIGNATURE}
    if row_format:
        batch = len(next(iter(arrays.values())))
        body["instances"] = [{k: v[i].tolist() for k, v in arrays.items()} for i in range(batch)]
    else:
        body["inputs"] = {k: v.tolist() for k, v in arrays.items()}
    return body


def predict_request(specs, inputs, model_name):
    """A gRPC `tensorflow.serving.PredictRequest` for the signature."""
    from tensorflow_serving.apis import predict_pb2

    check_inputs(specs, inputs)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = SIGNATURE
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value, dtype=specs[name].dtype))
    return request


def serve_command(export_base, model_name, rest_port=8501, grpc_port=8500):
    """The tensorflow_model_server command line for the export."""
    return (
        f"tensorflow_model_server --port={grpc_port} --rest_api_port={rest_port} "
        f"--model_name={model_name} --model_base_path={os.path.abspath(export_base)}"
    )


FLAGS = flags.FLAGS
flags.DEFINE_string("export_base", "/tmp/models/copy_band", "Model base path (version 1 goes below).")
flags.DEFINE_string("model_name", "copy_band", "Model name in TF Serving.")
flags.DEFINE_string("rest_url", None, "If set, POST the REST body to this server.")
flags.DEFINE_string("grpc_target", None, "If set, send the PredictRequest to this host:port.")


def main(argv):
    del argv
    from keras_bandrnn.export import export_saved_model

    model = build_example_model()
    export_dir = os.path.join(FLAGS.export_base, "1")
    export_saved_model(model, export_dir)
    specs = signature_inputs(export_dir)
    x = np.eye(10, dtype=np.float32)[np.random.default_rng(0).integers(0, 10, (2, 25))]
    inputs = {"symbols": x}

    print("Serve with:\n  " + serve_command(FLAGS.export_base, FLAGS.model_name))
    body = rest_body(specs, inputs)
    body_file = FLAGS.export_base.rstrip("/") + "_request.json"
    with open(body_file, "w") as f:
        json.dump(body, f)
    url = f"http://localhost:8501/v1/models/{FLAGS.model_name}:predict"
    print(f"REST body written to {body_file}; send it with\n  curl -d @{body_file} {url}")
    request = predict_request(specs, inputs, FLAGS.model_name)
    print(f"gRPC PredictRequest: model {request.model_spec.name}, inputs "
          f"{ {k: (tf.dtypes.as_dtype(v.dtype).name, [d.size for d in v.tensor_shape.dim]) for k, v in request.inputs.items()} }")

    expected = model(x).numpy()
    if FLAGS.rest_url:
        req = urllib.request.Request(
            f"{FLAGS.rest_url}/v1/models/{FLAGS.model_name}:predict",
            data=json.dumps(body).encode(), headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            got = np.asarray(json.load(resp)["outputs"], np.float32)
        print("REST max |diff| to Keras:", float(np.max(np.abs(got - expected))))
    if FLAGS.grpc_target:
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(FLAGS.grpc_target))
        result = stub.Predict(request, timeout=30)
        got = tf.make_ndarray(result.outputs["logits"])
        print("gRPC max |diff| to Keras:", float(np.max(np.abs(got - expected))))


if __name__ == "__main__":
    app.run(main)
