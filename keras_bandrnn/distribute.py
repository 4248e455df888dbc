"""Distribution strategies for the example scripts' `--distribute` flag.

`strategy(kind)` turns the flag's value into a `tf.distribute.Strategy`:

- `"none"`: the default strategy (one device, no distribution);
- `"mirrored"`: `tf.distribute.MirroredStrategy`, all local GPUs (all
  logical CPU devices where there is no GPU: one, unless configured);
- `"multi_worker"`: `tf.distribute.MultiWorkerMirroredStrategy`, one process
  per machine, the cluster taken from the `TF_CONFIG` environment variable
  (see docs/distributed.md).

Build and compile the model inside `strategy.scope()` and train it with
`fit(model, dataset, steps, strategy)`, `dataset` batched by the *global*
batch size: each step splits one global batch across all replicas, the
gradients are summed by an all-reduce, and every worker applies the same
update, so training matches one process on the same global batch. A custom
training loop (like examples/common.py's `train`, behind the example
scripts' `--distribute` flag) gets the same from
`make_train_step(strategy, model, optimizer, loss_fn, carry=None)`, whose
step takes the global batch and splits it across replicas itself
(`split_batch`), optionally with a state carried per batch row from step to
step (truncated BPTT). `is_chief`, `output_dir` and `check_same_on_workers`
decide where each worker writes and check that restarted workers resumed
from the same step.

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


def _task(strategy=None):
    """`(task_type, task_id)` of this process: from `strategy`'s cluster
    resolver when given (`(None, 0)` for a strategy without a cluster, such
    as the default or `MirroredStrategy`), else from `TF_CONFIG`."""
    if strategy is None:
        return cluster_spec()[:2]
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return None, 0
    return resolver.task_type, resolver.task_id


def is_chief(strategy=None):
    """Whether this process keeps checkpoints and logs (worker 0, or the chief).

    Args:
        strategy: the `tf.distribute.Strategy` training runs under; a
            strategy without a cluster (the default, `MirroredStrategy`)
            makes this process the chief whatever `TF_CONFIG` says. `None`:
            decide from `TF_CONFIG` alone.
    """
    task_type, task_id = _task(strategy)
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


def output_dir(base, strategy=None):
    """Where this worker may write: `base` on the chief, a scratch dir elsewhere.

    Every worker must run the same checkpoint and `model.save` calls (they
    may be collective), but only the chief's files are meant to be kept.
    The others write to `<base>/.workers/<task_type>_<task_id>` (on a
    cluster without a shared file system, a local directory of that
    machine), where they also find their own checkpoints when the job is
    restarted. `strategy` as in `is_chief`.
    """
    if is_chief(strategy):
        return base
    task_type, task_id = _task(strategy)
    return os.path.join(base, ".workers", f"{task_type}_{task_id}")


def split_batch(strategy, batch):
    """Splits a global batch (a tuple of arrays) into per-replica slices.

    Replica `r` of `R` (numbered across all workers) gets rows
    `[r B / R, (r + 1) B / R)` of every array, so every worker may compute the
    same global batch (e.g. from a step-seeded generator) and keep only its
    slices. Returns distributed values for `strategy.run`.
    """
    replicas = strategy.num_replicas_in_sync
    size = int(batch[0].shape[0])
    if size % replicas:
        raise ValueError(
            f"The global batch ({size}) must be divisible by the number of "
            f"replicas ({replicas})."
        )
    per = size // replicas

    def value_fn(ctx):
        r = ctx.replica_id_in_sync_group
        return tuple(a[r * per : (r + 1) * per] for a in batch)

    return strategy.experimental_distribute_values_from_function(value_fn)


def make_train_step(strategy, model, optimizer, loss_fn, carry=None):
    """A synchronous data-parallel training step on global batches.

    Args:
        strategy: the `tf.distribute.Strategy` the model and optimizer were
            built under.
        model: a built Keras model.
        optimizer: a Keras optimizer, built inside `strategy.scope()`.
        loss_fn: `loss_fn(model, batch, training) -> (loss, {name: scalar})`,
            `loss` the plain mean over the examples of `batch` (a replica's
            slice). Not a Keras `Loss` with its default reduction: that one
            already divides by the number of replicas inside `strategy.run`;
            use `reduction=None` and `tf.reduce_mean`. With `carry`, `batch`
            ends with the replica's rows of `carry` and `loss_fn` returns
            `(loss, metrics, new_rows)`.
        carry: optional `tf.Variable` whose first axis runs over the rows of
            the global batch, carried from step to step (e.g. the RNN state
            of truncated backpropagation through time). Each replica gets the
            rows of its own slice of the batch; the step gathers the new rows
            of all replicas (across workers) back into `carry`, which so holds
            the whole global state on every worker, as in one process.

    Returns:
        `step(batch)`: takes one global batch (a tuple of arrays), splits it
        across the replicas (`split_batch`), applies one update and returns
        `{"loss": ..., **metrics}` averaged over the replicas. Each replica
        scales its mean loss by `1 / replicas`, and the gradients are summed
        across the replicas before the optimizer sees them (in cross-replica
        context), so the update, gradient clipping included, is that of the
        mean loss over the global batch. (A Keras optimizer called inside a
        replica clips each replica's gradient before its own all-reduce,
        which changes the update whenever clipping is active.)
    """
    replicas = strategy.num_replicas_in_sync
    variables = model.trainable_variables
    # The packed all-reduce runs in float64 only if some variable needs it.
    packed_dtype = tf.float64 if any(tf.as_dtype(v.dtype) == tf.float64 for v in variables) else tf.float32

    def replica_step(batch):
        with tf.GradientTape() as tape:
            loss, metrics, *new_rows = loss_fn(model, batch, True)
            scaled = loss / replicas
            if model.losses:
                scaled += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        grads = tape.gradient(scaled, variables)
        # Variables the loss does not reach (no gradient) are left out; that
        # is known when tracing, the same on every replica.
        updated[:] = [(v, g.shape) for v, g in zip(variables, grads) if g is not None]
        names[:] = ["loss", *metrics]
        means = [loss, *metrics.values()]
        # One all-reduce for everything: the gradients and the means / replicas.
        packed = [tf.cast(tf.reshape(tf.convert_to_tensor(g), [-1]), packed_dtype)
                  for g in grads if g is not None]
        packed += [tf.reshape(tf.cast(m, packed_dtype), [1]) / replicas for m in means]
        return tf.concat(packed, 0), new_rows

    updated, names = [], []

    @tf.function
    def distributed_step(per_replica):
        packed, new_rows = strategy.run(replica_step, args=(per_replica,))
        total = strategy.reduce(tf.distribute.ReduceOp.SUM, packed, axis=None)
        sizes = [shape.num_elements() for _, shape in updated] + [1] * len(names)
        pieces = tf.split(total, sizes)
        grads = [tf.cast(tf.reshape(g, shape), v.dtype) for g, (v, shape) in zip(pieces, updated)]
        optimizer.apply_gradients(zip(grads, [v for v, _ in updated]))
        if carry is not None:
            carry.assign(strategy.gather(new_rows[0], axis=0))
        return {name: tf.cast(m[0], tf.float32) for name, m in zip(names, pieces[len(updated):])}

    def step(batch):
        batch = tuple(tf.convert_to_tensor(a) for a in batch)
        if carry is not None:
            batch += (carry.read_value(),)
        return distributed_step(split_batch(strategy, batch))

    return step


def check_same_on_workers(strategy, value, name):
    """Raises `ValueError` unless the integer `value` is the same on every
    replica of every worker, e.g. the step each worker restored from its
    own checkpoint (a worker that lost its checkpoint would otherwise train
    other weights than the rest, silently). Collective: every worker calls it."""
    values = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant([value], tf.int64))
    everywhere = [int(v) for v in strategy.gather(values, axis=0).numpy()]
    if len(set(everywhere)) > 1:
        raise ValueError(
            f"The workers disagree on {name}: {everywhere} (one value per replica). "
            "Each worker restores from its own output directory "
            "(`distribute.output_dir`): give all of them the same checkpoint, "
            "or start all of them afresh.")


def _compiled_loss_fn(model):
    """`loss_fn` for `make_train_step` from the model's compiled Keras loss.

    The loss runs with `reduction=None` and is averaged here: Keras's own
    reductions divide by the number of replicas when called in a replica
    context, and `make_train_step` does that scaling itself.
    """
    loss = model.loss
    if not isinstance(loss, keras.losses.Loss):
        raise ValueError(
            "`model` must be compiled with a `keras.losses.Loss` instance "
            f"(e.g. SparseCategoricalCrossentropy(from_logits=True)), got {loss!r}."
        )
    per_example = type(loss).from_config(dict(loss.get_config(), reduction=None))

    def loss_fn(model, batch, training):
        x, y = batch
        return tf.reduce_mean(per_example(y, model(x, training=training))), {}

    return loss_fn


def fit(model, dataset, steps, strategy):
    """Trains a compiled `model` for `steps` steps under `strategy`.

    Every worker iterates the same `dataset` of global batches `(x, y)` and
    keeps its replicas' slices (`split_batch`); `make_train_step` makes the
    update, equal to that of one process on the global batch.

    Args:
        model: a Keras model built and compiled inside `strategy.scope()`,
            with a `keras.losses.Loss` (mean over the batch, Keras's default).
        dataset: a `tf.data.Dataset` (or any iterable) of `(x, y)` global
            batches whose size the number of replicas divides.
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
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
    step = make_train_step(strategy, model, model.optimizer, _compiled_loss_fn(model))
    losses = []
    for _, batch in zip(range(steps), dataset):
        losses.append(float(step(batch)["loss"]))
    if len(losses) < steps:
        raise ValueError(f"`dataset` ran out after {len(losses)} of {steps} steps.")
    return losses
