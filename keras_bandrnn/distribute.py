"""Distribution strategies for the example scripts' `--distribute` flag.

`strategy(kind)` turns the flag's value into a `tf.distribute.Strategy`:

- `"none"`: the default strategy (one device, no distribution);
- `"mirrored"`: `tf.distribute.MirroredStrategy`, all local GPUs;
- `"multi_worker"`: `tf.distribute.MultiWorkerMirroredStrategy`, one process
  per machine, the cluster taken from the `TF_CONFIG` environment variable
  (see docs/distributed.md).

Build and compile the model inside `strategy.scope()` and train it with
`fit(model, dataset, steps, strategy)`, `dataset` batched by the *global*
batch size: each step splits one global batch across all replicas, the
gradients are summed by an all-reduce, and every worker applies the same
update, so training matches one process on the same global batch.

Why not `model.fit`: Keras 3 (up to 3.15 at least) does not run
`MultiWorkerMirroredStrategy` through `model.fit` when there is more than one
worker: `fit` reduces a structure of per-replica values eagerly and fails
("Attempt to convert a value (PerReplica...) to a Tensor"), see
https://github.com/keras-team/keras/issues/20585. `fit` here is the plain
custom training loop of TensorFlow's distributed-training guide. With
`"none"` / `"mirrored"`, `model.fit` works and gives the same updates.

The custom ops need nothing special: their gradients are ordinary registered
gradients, computed per replica before the all-reduce.
"""

import json
import os

import keras
import tensorflow as tf

KINDS = ("none", "mirrored", "multi_worker")


def cluster_spec():
    """`(task_type, task_id, num_workers)` from `TF_CONFIG`, or `(None, 0, 1)`."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None, 0, 1
    try:
        config = json.loads(raw)
        task = config["task"]
        workers = len(config["cluster"].get("worker", [])) + len(config["cluster"].get("chief", []))
        return task["type"], int(task["index"]), max(workers, 1)
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"TF_CONFIG must be JSON with 'cluster' and 'task' (type, index): {e}"
        ) from None


def is_chief():
    """Whether this process writes checkpoints and logs (worker 0, or the chief)."""
    task_type, task_id, _ = cluster_spec()
    return task_type in (None, "chief") or (task_type == "worker" and task_id == 0)


def strategy(kind="none", timeout_seconds=None):
    """The `tf.distribute.Strategy` for the `--distribute` flag value `kind`.

    Args:
        kind: one of `"none"`, `"mirrored"`, `"multi_worker"`.
        timeout_seconds: for `"multi_worker"`, the limit on each collective
            operation (all-reduce, broadcast), so a lost worker raises
            `DeadlineExceededError` instead of hanging. `None`: no limit.

    Returns:
        A `tf.distribute.Strategy`.

    Example:

    >>> s = strategy("none")
    >>> with s.scope():
    ...     model = keras.Sequential([keras.layers.Dense(1)])
    """
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {KINDS}, got {kind!r}.")
    if kind == "none":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    if not os.environ.get("TF_CONFIG"):
        raise ValueError(
            "`multi_worker` needs the TF_CONFIG environment variable (the "
            "cluster's worker addresses and this worker's index); see "
            "docs/distributed.md."
        )
    cluster_spec()  # validates TF_CONFIG with a clear message
    options = tf.distribute.experimental.CommunicationOptions(
        timeout_seconds=timeout_seconds
    )
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def output_dir(base):
    """Where this worker may write: `base` on the chief, a scratch dir elsewhere.

    Every worker must run the same `model.save`/checkpoint calls (they are
    collective), but only the chief's files are kept.
    """
    if is_chief():
        return base
    task_type, task_id, _ = cluster_spec()
    return os.path.join(base, ".workers", f"{task_type}_{task_id}")


def _per_example_loss(model):
    """The compiled Keras loss without its batch reduction."""
    loss = model.loss
    if not isinstance(loss, keras.losses.Loss):
        raise ValueError(
            "`model` must be compiled with a `keras.losses.Loss` instance "
            f"(e.g. SparseCategoricalCrossentropy(from_logits=True)), got {loss!r}."
        )
    config = dict(loss.get_config(), reduction=None)
    return type(loss).from_config(config)


def fit(model, dataset, steps, strategy):
    """Trains a compiled `model` for `steps` steps under `strategy`.

    Each element of `dataset` is one *global* batch `(x, y)`. Every replica
    computes the mean loss of its slice scaled by `slice / global batch`, so
    that the all-reduced (summed) gradient is the gradient of the mean loss
    over the global batch, exactly as one process would compute it. The
    compiled optimizer applies it (Keras optimizers all-reduce gradients in a
    replica context).

    Args:
        model: a Keras model built and compiled inside `strategy.scope()`,
            with a `keras.losses.Loss` (per-example values are averaged over
            all non-batch axes, as Keras's default reduction does).
        dataset: a `tf.data.Dataset` of `(x, y)` global batches (use
            `drop_remainder=True`, so every batch splits evenly).
        steps: number of training steps.
        strategy: the `tf.distribute.Strategy` the model was built under.

    Returns:
        The list of global mean losses, one per step (numbers).

    Example:

    >>> s = strategy("none")
    >>> with s.scope():
    ...     model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    ...     model.compile("sgd", keras.losses.MeanSquaredError())
    >>> data = tf.data.Dataset.from_tensor_slices(
    ...     (tf.ones([8, 3]), tf.zeros([8, 1]))).batch(4, drop_remainder=True)
    >>> len(fit(model, data, 2, s))
    2
    """
    if model.optimizer is None:
        raise ValueError("`model` must be compiled (an optimizer and a loss) before `fit`.")
    per_example = _per_example_loss(model)
    optimizer = model.optimizer
    with strategy.scope():
        optimizer.build(model.trainable_variables)

    def replica_step(x, y):
        global_batch = tf.shape(x)[0] * strategy.num_replicas_in_sync
        with tf.GradientTape() as tape:
            pred = model(x, training=True)
            values = per_example(y, pred)
            values = tf.reshape(values, [tf.shape(values)[0], -1])
            loss = tf.nn.compute_average_loss(
                tf.reduce_mean(values, axis=1), global_batch_size=global_batch
            )
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function
    def train_step(batch):
        losses = strategy.run(replica_step, args=batch)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    return [float(train_step(next(iterator))) for _ in range(steps)]
