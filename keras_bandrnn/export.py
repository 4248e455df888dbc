"""SavedModel export for TensorFlow Serving (SPEC section 6).

`export_saved_model(model, path)` traces the model's inference function inside
`keras_bandrnn.ops.pure_tf()`, so every band / block-sparse product is lowered
to stock TensorFlow ops (`keras_bandrnn.ops.band_fallback` and its siblings).
The SavedModel then loads in stock TensorFlow Serving and in any TensorFlow
process that never imported `keras_bandrnn` nor loaded its op library.

`model.export(...)` (Keras's own exporter) traces the model *before* any code
of ours runs, with the compiled kernels, and would write a SavedModel that
stock TensorFlow cannot load ("Op type not registered 'BandMatmul'"). Our cells
therefore refuse to be saved into a SavedModel while the compiled library is
in use, with an error that names `export_saved_model`; see
`SavedModelGuard`. (Inside `pure_tf()`, `model.export` works and gives the same
graph as `export_saved_model`.)
"""

import os

import keras
import tensorflow as tf

from keras_bandrnn.ops import dispatch

SERVING_KEY = "serving_default"


def _custom_op_names():
    """The op types our compiled library registers (empty when not loaded)."""
    lib = dispatch.library()
    if lib is None:
        return set()
    op_list = getattr(lib, "OP_LIST", None)
    if op_list is None:
        return set()
    return {op.name for op in op_list.op}


def graph_op_types(graph_def):
    """Every op type in `graph_def`, function library bodies included."""
    types = {node.op for node in graph_def.node}
    for fn in graph_def.library.function:
        types.update(node.op for node in fn.node_def)
    return types


def saved_model_op_types(path):
    """Every op type in the graphs of the SavedModel at `path`."""
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        sm.ParseFromString(f.read())
    types = set()
    for meta_graph in sm.meta_graphs:
        types |= graph_op_types(meta_graph.graph_def)
    return types


def _spec_name(name, used):
    """A signature key from a Keras tensor / layer name (unique, TF-valid)."""
    base = "".join(c if c.isalnum() or c in "_-." else "_" for c in name or "input")
    if not base[0].isalpha():
        base = "input_" + base
    key, i = base, 1
    while key in used:
        key, i = f"{base}_{i}", i + 1
    used.add(key)
    return key


def _input_specs(model, input_signature):
    if input_signature is not None:
        specs = list(tf.nest.flatten(input_signature))
        for spec in specs:
            if not isinstance(spec, tf.TensorSpec) or not spec.name:
                raise ValueError(
                    "`input_signature` must be a list of named tf.TensorSpec, "
                    f"got {spec!r}."
                )
        return specs
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise ValueError(
            "The model has no symbolic inputs (a subclassed model, or a "
            "Sequential model without an Input); pass `input_signature`, "
            "a list of named tf.TensorSpec."
        )
    used = set()
    return [
        tf.TensorSpec(tuple(t.shape), t.dtype, name=_spec_name(t.name, used))
        for t in inputs
    ]


def _output_names(model, n):
    names = list(getattr(model, "output_names", None) or [])
    if len(names) != n:
        names = [f"output_{i}" for i in range(n)]
    used = set()
    return [_spec_name(name, used) for name in names]


def export_saved_model(model, path, input_signature=None):
    """Writes `model` as a SavedModel that stock TensorFlow Serving can load.

    The `serving_default` signature takes the model's inputs by name (the
    names of its `keras.Input`s) and returns a dict keyed by the model's
    output names. The model runs in inference mode (`training=False`). Every
    custom op is replaced by its composition of stock TensorFlow ops (see
    `keras_bandrnn.ops.pure_tf`), so loading the export needs neither
    `keras_bandrnn` nor its op library; outputs equal the Keras model's to
    float tolerance.

    Args:
        model: a built Keras model (functional, or Sequential with an Input);
            any model works when `input_signature` is given.
        path: directory to write. TensorFlow Serving expects it to be a
            numbered version directory, e.g. `models/copy/1`.
        input_signature: optional list of named `tf.TensorSpec`, one per model
            input, used instead of the model's own inputs.

    Returns:
        The sorted list of op types in the exported graphs (all stock ops).

    Example:

    >>> inputs = keras.Input((None, 8), name="symbols")
    >>> outputs = keras.layers.Dense(9, name="logits")(
    ...     keras.layers.RNN(keras_bandrnn.BandCell(64, half_width=4),
    ...                      return_sequences=True)(inputs))
    >>> model = keras.Model(inputs, outputs)
    >>> ops = export_saved_model(model, "/tmp/copy_model/1")
    >>> "BandMatmul" in ops
    False
    """
    if not model.built:
        raise ValueError("`model` must be built (called once, or created with Inputs) before export.")
    specs = _input_specs(model, input_signature)
    custom = _custom_op_names()

    def serve(*tensors):
        x = tensors[0] if len(tensors) == 1 else list(tensors)
        outputs = tf.nest.flatten(model(x, training=False))
        return dict(zip(_output_names(model, len(outputs)), outputs))

    with dispatch.pure_tf():
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(SERVING_KEY, serve, input_signature=specs)
        # Only the serving signature: it is traced (and written) here, inside
        # pure_tf(), so no custom op can enter the graph.
        archive.write_out(str(path), verbose=False)

    types = saved_model_op_types(str(path))
    leaked = sorted(types & custom)
    if leaked:
        raise RuntimeError(
            f"The exported graph at {path} still contains custom ops {leaked}: "
            "a layer calls the compiled library directly instead of through "
            "keras_bandrnn.ops. Please report this."
        )
    return sorted(types)


class SavedModelGuard:
    """Mixin for layers that call our custom ops: refuses plain SavedModel saves.

    A layer that calls a custom op says so by `self.supports_jit = False`
    (CONTRIBUTING); the guard only acts on such layers.

    Keras's `model.export()` and `tf.saved_model.save()` trace the model with
    the compiled kernels, so the SavedModel would hold `BandMatmul` /
    `BlockSparseMatmul` nodes that stock TensorFlow Serving cannot load. While
    the compiled library is in use, saving such a layer into a SavedModel
    raises a `ValueError` that points to `export_saved_model`. Inside
    `keras_bandrnn.ops.pure_tf()` (or when the library is not loaded) the
    graph holds only stock ops, and saving proceeds. Checkpoints and `.keras`
    files are unaffected.
    """

    def _trackable_children(self, save_type="checkpoint", **kwargs):
        calls_custom_ops = getattr(self, "supports_jit", True) is False  # the convention
        if save_type == "savedmodel" and calls_custom_ops and dispatch.library() is not None:
            raise ValueError(
                f"{type(self).__name__} `{self.name}` calls keras_bandrnn's "
                "compiled ops, which stock TensorFlow Serving cannot load. "
                "Export with `keras_bandrnn.export.export_saved_model(model, "
                "path)`, which lowers them to stock TensorFlow ops (or call "
                "`model.export(...)` inside `keras_bandrnn.ops.pure_tf()`)."
            )
        return super()._trackable_children(save_type, **kwargs)
