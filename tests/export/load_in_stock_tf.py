"""Loads SavedModels in a process that never imports keras_bandrnn.

Run as a script by tests/export/test_export.py:

    python load_in_stock_tf.py CASES.json RESULT.json

`CASES.json` lists `{"path", "inputs" (npz file), "expected" (npz file)}`.
For each case it loads the SavedModel with `tf.saved_model.load`, runs its
`serving_default` signature, and records the largest difference to the
expected outputs, the signature's input/output names, and every op type in the
graph (function library bodies included) that this process does not know.
This file imports only TensorFlow and NumPy, on purpose.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.core.protobuf import saved_model_pb2  # noqa: E402
from tensorflow.python.framework import op_def_registry  # noqa: E402


def op_types(path):
    sm = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        sm.ParseFromString(f.read())
    types = set()
    for meta_graph in sm.meta_graphs:
        graph = meta_graph.graph_def
        types.update(node.op for node in graph.node)
        for fn in graph.library.function:
            types.update(node.op for node in fn.node_def)
    return types


def run_case(case):
    loaded = tf.saved_model.load(case["path"])
    sig = loaded.signatures["serving_default"]
    inputs = dict(np.load(case["inputs"]))
    expected = dict(np.load(case["expected"]))
    outputs = {k: v.numpy() for k, v in sig(**{k: tf.constant(v) for k, v in inputs.items()}).items()}
    types = op_types(case["path"])
    return {
        "input_names": sorted(sig.structured_input_signature[1]),
        "output_names": sorted(outputs),
        "max_abs_diff": {
            k: float(np.max(np.abs(outputs[k] - expected[k]))) if k in outputs else None
            for k in expected
        },
        "shapes_match": all(
            k in outputs and outputs[k].shape == expected[k].shape for k in expected
        ),
        "op_types": sorted(types),
        "unregistered_ops": sorted(t for t in types if op_def_registry.get(t) is None),
    }


def main(cases_file, result_file):
    with open(cases_file) as f:
        cases = json.load(f)
    results = {name: run_case(case) for name, case in cases.items()}
    results["__modules__"] = sorted(m for m in sys.modules if m.startswith("keras_bandrnn"))
    with open(result_file, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main(*sys.argv[1:3])
