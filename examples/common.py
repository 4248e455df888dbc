"""What the example training scripts share: flags, models, the training loop.

Each script (`copy_task`, `braille`, `text8`) supplies a model, a batch
function `batch(step) -> tuple of arrays` that is a deterministic function of
`(seed, step)`, a loss function and an evaluation; `train` does the rest:

- a progress bar (`keras.utils.Progbar`),
- TensorBoard logs under `<output_dir>/tensorboard`,
- checkpoints with `tf.train.CheckpointManager` under `<output_dir>/checkpoints`
  holding the model, the optimizer state, the step and the elapsed time (and
  any task state, such as a carried RNN state), so that a run that is killed
  and started again with the same flags continues at the step of its last
  checkpoint with the same data,
- `<output_dir>/train_log.jsonl`: one line per step (loss, a fingerprint of
  the batch), appended across restarts,
- `<output_dir>/result.json`: the flags, the parameter count, the final
  evaluation and the wall-clock time.

`--distribute` trains with a `tf.distribute` strategy
(`keras_bandrnn.distribute`, docs/distributed.md): `none`, `mirrored` (the
local GPUs) or `multi_worker` (one process per machine, the cluster in
`TF_CONFIG`). `--batch_size` is then the global batch: every worker computes
the same step-seeded global batch and trains on its replicas' slices of it,
so a run makes the same updates as one process with `--distribute=none`.
Only the chief (worker 0) writes to `--output_dir`; the other workers write
the same files to `distribute.output_dir(...)` (`<output_dir>/.workers/...`),
where they also resume from. Every worker evaluates the model on the full
evaluation batches (the same weights give the same numbers), so no worker
waits on the others during an evaluation.
"""

import functools
import hashlib
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow's BFC allocator for CPU tensors (README, "Performance on CPU"):
# the default one makes wide models fault their per-step tensors in again on
# every step. Read when TensorFlow creates its CPU allocator, at the first op,
# which comes after this module is imported.
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import flags  # noqa: E402

import keras_bandrnn  # noqa: E402
from keras_bandrnn import distribute  # noqa: E402
from keras_bandrnn import sizing  # noqa: E402

FLAGS = flags.FLAGS

MODELS = (
    "gru", "lstm", "simple_rnn", "factorized", "band", "grid", "closed",
    "closed_fixed", "cgru",
)

# Hidden units of the seed's parameter-matched table (80k trainable
# parameters, half-width and factorizing rank 32; "Combi" is Band+Grid).
SEED_UNITS_80K = {
    "gru": 160, "lstm": 128, "simple_rnn": 256, "factorized": 864, "band": 896,
    "grid": 864, "closed": 864, "closed_fixed": 864,
}
SEED_UNITS_540K = {"closed_fixed": 5888}

flags.DEFINE_enum("model", None, MODELS, "Recurrent cell.")
flags.DEFINE_integer("units", None, "Hidden units (default: the task's; see --budget).")
flags.DEFINE_integer(
    "budget", None,
    "Trainable-parameter budget: choose the largest --units whose whole model fits it.",
)
flags.DEFINE_integer("half_width", None, "Band half-width (band cells).")
flags.DEFINE_integer("shift", None, "Shift initialization s (band cells); 0 = none.")
flags.DEFINE_boolean("fixed_shift", None, "Make the shift a fixed part of the recurrence.")
flags.DEFINE_integer("grid_stride", None, "Distance between hub units (model=grid).")
flags.DEFINE_integer("rank", None, "Rank of the factorized recurrence (model=factorized).")
flags.DEFINE_boolean(
    "freeze_rnn", None,
    "Train only the readout: the recurrent layer keeps its initialization (with "
    "--model=closed_fixed and a linear activation, an exact ring buffer of past inputs).")
flags.DEFINE_string("activation", None, "Activation of the band/simple cells.")
flags.DEFINE_string(
    "text", None,
    "Text corpus: 'text8' (download), 'pydoc' (CPython's pydoc_data, offline) or a text file.")
flags.DEFINE_integer("delay", None, "Copy task: T, the blanks to bridge. Braille: label delay.")
flags.DEFINE_integer("steps", None, "Training steps (batches).")
flags.DEFINE_integer("batch_size", None, "Batch size.")
flags.DEFINE_float("learning_rate", None, "Adam learning rate.")
flags.DEFINE_float("clipnorm", None, "Gradient clipping by global norm (0 = none).")
flags.DEFINE_integer("seed", None, "Seed of the initialization and of the data.")
flags.DEFINE_string("output_dir", None, "Checkpoints, TensorBoard logs and result.json go here.")
flags.DEFINE_integer("eval_every", None, "Evaluate every this many steps.")
flags.DEFINE_integer("checkpoint_every", None, "Checkpoint every this many steps.")
flags.DEFINE_boolean("quick", False, "A small setting that runs in well under 2 minutes on a CPU.")
flags.DEFINE_integer("verbose", 1, "1: progress bar, 0: quiet.")
flags.DEFINE_enum(
    "distribute", "none", distribute.KINDS,
    "tf.distribute strategy: none, mirrored (local GPUs) or multi_worker (the cluster in "
    "TF_CONFIG, see docs/distributed.md); --batch_size is the global batch.")
flags.DEFINE_integer(
    "collective_timeout_s", 600,
    "--distribute=multi_worker: limit on each all-reduce (seconds), so a lost worker "
    "fails the others instead of hanging them; 0 = none.")

COMMON_DEFAULTS = dict(
    units=None, budget=None, half_width=32, shift=0, fixed_shift=False, grid_stride=288,
    rank=32, activation="tanh", freeze_rnn=False, batch_size=32, learning_rate=1e-3, clipnorm=1.0, seed=0,
    eval_every=100, checkpoint_every=50,
)


def resolve_flags(defaults, quick):
    """Fills the flags the command line left unset: `quick` values under
    --quick, then the task's defaults, then `COMMON_DEFAULTS`."""
    merged = {**COMMON_DEFAULTS, **defaults}
    if FLAGS.quick:
        merged.update(quick)
    for name, value in merged.items():
        if not FLAGS[name].present and FLAGS[name].value is None:
            FLAGS[name].value = value
    if FLAGS.output_dir is None:
        FLAGS.output_dir = os.path.join("runs", f"{FLAGS.model}_seed{FLAGS.seed}")


def run_main(main, argv):
    """Runs `main` with `argv` parsed into the flags (for tests and scripts
    that call another script in-process)."""
    FLAGS.unparse_flags()
    FLAGS(argv)
    return main(argv)


def strategy():
    """The `tf.distribute.Strategy` of `--distribute` (one per process: a
    `MultiWorkerMirroredStrategy` can be created only once)."""
    return _strategy(FLAGS.distribute, FLAGS.collective_timeout_s or None)


@functools.lru_cache(maxsize=None)
def _strategy(kind, timeout_seconds):
    return distribute.strategy(kind, timeout_seconds=timeout_seconds)


def flag_values():
    names = [f.name for f in FLAGS.get_key_flags_for_module(sys.modules[__name__])]
    return {n: FLAGS[n].value for n in names}


# Models -------------------------------------------------------------------


def make_cell(model, units, input_dim, *, half_width=32, shift=0, fixed_shift=False,
              grid_stride=288, rank=32, activation="tanh", seed=None, **cell_kwargs):
    """The recurrent cell named `model` (one of `MODELS`).

    `shift=0` means no shift initialization, except for `closed_fixed`,
    whose fixed shift defaults to `input_dim` (the smallest delay line that
    keeps every input).
    """
    if model == "gru":
        return keras.layers.GRUCell(units, seed=seed, **cell_kwargs)
    if model == "lstm":
        return keras.layers.LSTMCell(units, seed=seed, **cell_kwargs)
    if model == "simple_rnn":
        return keras.layers.SimpleRNNCell(units, activation=activation, seed=seed, **cell_kwargs)
    if model == "factorized":
        return keras_bandrnn.FactorizedCell(units, rank=rank, activation=activation, seed=seed, **cell_kwargs)
    if model == "cgru":
        return keras_bandrnn.ConditionalGRUCell(units, seed=seed, **cell_kwargs)
    band_args = dict(half_width=half_width, activation=activation, seed=seed, **cell_kwargs)
    if model == "closed_fixed":
        return keras_bandrnn.ClosedBandCell(
            units, shift=shift or input_dim, fixed_shift=True, **band_args)
    if shift:
        band_args.update(shift=shift, fixed_shift=fixed_shift)
    if model == "band":
        return keras_bandrnn.BandCell(units, **band_args)
    if model == "closed":
        return keras_bandrnn.ClosedBandCell(units, **band_args)
    if model == "grid":
        return keras_bandrnn.GridBandCell(units, grid_stride=grid_stride, **band_args)
    raise ValueError(f"Unknown `model` {model!r}; expected one of {MODELS}.")


def sequence_model(cell, input_dim, num_classes, length=None, name="model", freeze_rnn=False,
                   normalization=None):
    """`Input (batch, length, input_dim) -> [normalization] -> RNN(cell) ->
    Dense(num_classes)`, logits at every step; `freeze_rnn` makes the RNN
    layer non-trainable."""
    inputs = keras.Input((length, input_dim), name="inputs")
    rnn = keras.layers.RNN(cell, return_sequences=True, name="rnn")
    rnn.trainable = not freeze_rnn
    hidden = rnn(normalization(inputs) if normalization is not None else inputs)
    logits = keras.layers.Dense(num_classes, name="readout")(hidden)
    return keras.Model(inputs, logits, name=name)


def units_for_budget(model, budget, input_dim, num_classes, half_width=32, rank=32,
                     grid_stride=288, **unused):
    """The largest `units` whose model (cell and readout) has at most `budget`
    trainable parameters (`keras_bandrnn.sizing`; padding entries of an open
    band are not counted, as in the seed's table)."""
    del unused
    if model not in sizing.MODELS:
        raise ValueError(f"--budget supports the models {sizing.MODELS}, not {model!r}.")
    units = sizing.units_for_budget(model, budget, input_dim, output_dim=num_classes,
                                    half_width=half_width, rank=rank, grid_stride=grid_stride)
    if units < 1:
        raise ValueError(f"`budget` {budget} is below the smallest {model} model.")
    return units


# Losses -------------------------------------------------------------------


def masked_crossentropy(y, logits, w=None):
    """Mean sparse cross-entropy (nats) and accuracy over the entries with
    weight 1 (all entries if `w` is None)."""
    y = tf.cast(y, tf.int32)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=tf.cast(logits, tf.float32))
    correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32)
    if w is None:
        return tf.reduce_mean(ce), tf.reduce_mean(correct)
    w = tf.cast(w, tf.float32)
    total = tf.maximum(tf.reduce_sum(w), 1.0)
    return tf.reduce_sum(ce * w) / total, tf.reduce_sum(correct * w) / total


# Training loop ------------------------------------------------------------


def fingerprint(arrays):
    """SHA-1 of a batch's arrays (to check that a resumed run sees the same data)."""
    h = hashlib.sha1()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def make_optimizer(learning_rate, clipnorm):
    return keras.optimizers.Adam(learning_rate, global_clipnorm=clipnorm or None)


def train_from_flags(model, optimizer, batch_fn, loss_fn, eval_fn, **kwargs):
    """`train` with the run's length, output directory, intervals and
    verbosity taken from the common flags."""
    return train(model, optimizer, batch_fn, loss_fn, eval_fn, steps=FLAGS.steps,
                 output_dir=FLAGS.output_dir, eval_every=FLAGS.eval_every,
                 checkpoint_every=FLAGS.checkpoint_every, verbose=FLAGS.verbose, **kwargs)


def train(model, optimizer, batch_fn, loss_fn, eval_fn, *, steps, output_dir,
          eval_every=100, checkpoint_every=50, carry=None, verbose=1, config=None,
          strategy=None):
    """Trains `model` for `steps` steps, resuming from `output_dir` if it has a checkpoint.

    Args:
        model: A built Keras model, built inside `strategy.scope()`.
        optimizer: A Keras optimizer, made inside `strategy.scope()`.
        batch_fn: `batch_fn(step)` -> tuple of NumPy arrays (the global batch),
            deterministic in `step`.
        loss_fn: `loss_fn(model, batch, training)` -> `(loss, {name: scalar})`,
            traceable by `tf.function`; `loss` the plain mean over the rows of
            `batch` (with `--distribute`, a replica's slice of the global batch).
        eval_fn: `eval_fn(model)` -> `{name: float}` (valid/test metrics).
        steps: Total number of training steps of the run.
        output_dir: Directory for checkpoints, logs and `result.json` (on the
            chief; see `keras_bandrnn.distribute.output_dir`).
        eval_every, checkpoint_every: Intervals in steps.
        carry: Optional `tf.Variable` carried from step to step whose first
            axis runs over the rows of the global batch (e.g. an RNN state):
            `batch` then ends with the rows of `carry` that go with it, and
            `loss_fn` returns `(loss, metrics, new_rows)`
            (`keras_bandrnn.distribute.make_train_step`). Saved in the
            checkpoint as `carried_state`.
        verbose: 1 shows a progress bar.
        config: Dict recorded in `result.json` (the flags).
        strategy: The `tf.distribute.Strategy` the model and optimizer were
            made under (default: the default strategy, no distribution).

    Returns:
        The result dict also written to `result.json`.
    """
    strategy = strategy or tf.distribute.get_strategy()
    output_dir = distribute.output_dir(output_dir, strategy)
    os.makedirs(output_dir, exist_ok=True)
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    elapsed = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="elapsed_seconds")
    with strategy.scope():
        optimizer.build(model.trainable_variables)
    ckpt = tf.train.Checkpoint(step=step, elapsed=elapsed, model=model, optimizer=optimizer,
                               **({} if carry is None else {"carried_state": carry}))
    manager = tf.train.CheckpointManager(ckpt, os.path.join(output_dir, "checkpoints"), max_to_keep=2)
    if manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        print(f"Resumed from {manager.latest_checkpoint} at step {int(step.numpy())}.", flush=True)
    distribute.check_same_on_workers(strategy, int(step.numpy()), "the step to resume from")
    writer = tf.summary.create_file_writer(os.path.join(output_dir, "tensorboard"))
    train_step = distribute.make_train_step(strategy, model, optimizer, loss_fn, carry=carry)

    def evaluate(current):
        metrics = {k: float(v) for k, v in eval_fn(model).items()}
        with writer.as_default(step=current):
            for k, v in metrics.items():
                tf.summary.scalar(k, v)
        with open(os.path.join(output_dir, "eval_log.jsonl"), "a") as f:
            f.write(json.dumps({"step": current, "elapsed_seconds": float(elapsed.numpy()), **metrics}) + "\n")
        return metrics

    start = int(step.numpy())
    progbar = keras.utils.Progbar(steps, verbose=verbose, unit_name="step")
    if start:
        progbar.update(start)
    log = open(os.path.join(output_dir, "train_log.jsonl"), "a")
    metrics = {}
    t0 = time.perf_counter()
    base_elapsed = float(elapsed.numpy())
    for current in range(start, steps):
        batch = batch_fn(current)
        out = {k: float(v) for k, v in train_step(batch).items()}
        step.assign(current + 1)
        elapsed.assign(base_elapsed + time.perf_counter() - t0)
        log.write(json.dumps({"step": current, "batch": fingerprint(batch), **out}) + "\n")
        log.flush()
        with writer.as_default(step=current):
            for k, v in out.items():
                tf.summary.scalar(f"train/{k}", v)
        progbar.update(current + 1, values=list(out.items()))
        if (current + 1) % eval_every == 0 and current + 1 < steps:
            metrics = evaluate(current + 1)
        if (current + 1) % checkpoint_every == 0 or current + 1 == steps:
            manager.save(checkpoint_number=current + 1)
    log.close()
    metrics = evaluate(steps)
    writer.flush()
    result = {
        "config": config or {},
        "parameters": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
        "steps": steps,
        "wall_clock_seconds": round(float(elapsed.numpy()), 2),
        **metrics,
    }
    with open(os.path.join(output_dir, "result.json"), "w") as f:
        json.dump(result, f, indent=2)
    if verbose:
        print(json.dumps(result), flush=True)
    return result
