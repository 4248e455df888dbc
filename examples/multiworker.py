"""Trains a band RNN on the copy task with one process per machine.

    # one machine, no distribution
    python examples/multiworker.py --steps=20

    # two workers (run each line on its own machine, or both on one for a test)
    TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]},
                "task": {"type": "worker", "index": 0}}' \\
        python examples/multiworker.py --distribute=multi_worker --steps=20
    TF_CONFIG='{... same cluster ..., "task": {"type": "worker", "index": 1}}' \\
        python examples/multiworker.py --distribute=multi_worker --steps=20

`--global_batch` is the batch of one step over *all* workers; each worker
computes the gradient of its slice and the all-reduce sums them, so the
result equals one process training on the same global batches. The strategy
comes from `keras_bandrnn.distribute.strategy`, the same function behind the
example scripts' `--distribute` flag; see docs/distributed.md.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

import keras_bandrnn as kb  # noqa: E402
from keras_bandrnn import distribute  # noqa: E402

SYMBOLS, BLANK, DELIM = 8, 8, 9
VOCAB = 10


def copy_task(num, delay, seed):
    """Copy-task batches: 10 symbols, `delay` blanks, a delimiter, 10 recalls."""
    rng = np.random.default_rng(seed)
    length = delay + 20
    x = np.full((num, length), BLANK, np.int32)
    y = np.full((num, length), BLANK, np.int32)
    symbols = rng.integers(0, SYMBOLS, (num, 10))
    x[:, :10] = symbols
    x[:, delay + 9] = DELIM
    y[:, -10:] = symbols
    return np.eye(VOCAB, dtype=np.float32)[x], y


def build_model(units, half_width, seed, optimizer="adam", learning_rate=1e-2):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, VOCAB), name="symbols")
    h = keras.layers.RNN(kb.BandCell(units, half_width=half_width), return_sequences=True)(inputs)
    outputs = keras.layers.Dense(VOCAB, name="logits")(h)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.get({"class_name": optimizer, "config": {"learning_rate": learning_rate}}),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def train(kind="none", steps=5, global_batch=16, units=32, half_width=2, delay=10,
          seed=0, collective_timeout_s=None, optimizer="adam", learning_rate=1e-2):
    """Builds the model under the strategy for `kind` and fits `steps` steps.

    Returns the trained Keras model and the loss of every step.
    """
    strategy = distribute.strategy(kind, timeout_seconds=collective_timeout_s)
    if global_batch % strategy.num_replicas_in_sync:
        raise ValueError(
            f"`global_batch` ({global_batch}) must be divisible by the number "
            f"of replicas ({strategy.num_replicas_in_sync})."
        )
    x, y = copy_task(steps * global_batch, delay, seed)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(global_batch, drop_remainder=True)
    with strategy.scope():
        model = build_model(units, half_width, seed, optimizer, learning_rate)
    return model, distribute.fit(model, dataset, steps, strategy)


FLAGS = flags.FLAGS


def define_flags():
    """Defines the script's flags (only when run as a script, so that importing
    its functions next to the other examples defines no clashing flags)."""
    flags.DEFINE_enum("distribute", "none", distribute.KINDS, "Distribution strategy.")
    flags.DEFINE_integer("steps", 20, "Training steps.")
    flags.DEFINE_integer("global_batch", 32, "Batch size of one step over all workers.")
    flags.DEFINE_integer("units", 64, "Band cell units.")
    flags.DEFINE_integer("half_width", 4, "Band half-width.")
    flags.DEFINE_integer("delay", 20, "Copy-task delay T.")
    flags.DEFINE_enum("optimizer", "adam", ["adam", "sgd"], "Optimizer.")
    flags.DEFINE_float("learning_rate", 1e-2, "Learning rate.")
    flags.DEFINE_integer("seed", 0, "Seed of the data and the initial weights.")
    flags.DEFINE_integer("collective_timeout_s", 300, "Limit on each all-reduce (seconds).")
    flags.DEFINE_string("weights_out", None, "Write the trained weights to this .npz.")
    

def main(argv):
    del argv
    model, losses = train(
        FLAGS.distribute, FLAGS.steps, FLAGS.global_batch, FLAGS.units, FLAGS.half_width,
        FLAGS.delay, FLAGS.seed, FLAGS.collective_timeout_s, FLAGS.optimizer,
        FLAGS.learning_rate,
    )
    task_type, task_id, workers = distribute.cluster_spec()
    print(f"worker {task_type}:{task_id} of {workers}: loss {losses[-1]:.4f}")
    if FLAGS.weights_out:
        np.savez(FLAGS.weights_out, *[w.numpy() for w in model.weights])


if __name__ == "__main__":
    define_flags()
    app.run(main)
