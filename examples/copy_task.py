"""The copy task (Arjovsky et al. 2016) with band RNNs and Keras baselines.

    python -m examples.copy_task --quick
    python -m examples.copy_task --model=closed_fixed --delay=1000 --steps=300
    python -m examples.copy_task --model=lstm --units=128 --delay=100

10 symbols from 8 categories, `--delay` (T) blanks, a delimiter: the network
has to output the 10 symbols after the delimiter. Reports the cross-entropy
over the whole sequence against the memoryless baseline `10 ln 8 / (T + 20)`,
and the loss and accuracy on the 10 recalled symbols.

A closed band cell with a fixed shift `s = input_dim` (`--model=closed_fixed`)
is a ring buffer holding `units / s` past inputs: with
`units >= s * (T + 20)` (the default for band models here) every symbol is
still in the state when it has to be recalled, and the readout learns where.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from examples import common  # noqa: E402
from keras_bandrnn.datasets import copy as copy_data  # noqa: E402

flags.DEFINE_boolean(
    "standardize_inputs", False,
    "Standardize the one-hot inputs with the task's exact class means and variances "
    "(keras.layers.Normalization) before the RNN. A ring buffer then stores about 0 "
    "for the T blanks instead of T always-on units, which the readout would otherwise "
    "have to learn to ignore.")
FLAGS = common.FLAGS

DEFAULTS = dict(model="closed_fixed", delay=100, half_width=10, steps=500, batch_size=32,
                learning_rate=1e-3, activation=None, eval_every=100, checkpoint_every=50)
QUICK = dict(delay=20, steps=150, batch_size=16, eval_every=30, checkpoint_every=20)
EVAL_BATCHES = 4
EVAL_SEED_OFFSET = 1_000_003  # evaluation data: another seed, never trained on


def default_units(model, delay, input_dim=copy_data.INPUT_DIM):
    """Band models: a ring of `input_dim * (T + 20)` units (every symbol
    survives until it is recalled); Keras cells: 128."""
    if model in ("band", "closed", "closed_fixed", "grid", "factorized"):
        return input_dim * (delay + 2 * copy_data.NUM_SYMBOLS)
    return 128


def build_model(model="closed_fixed", units=None, delay=100, seed=0, freeze_rnn=False,
                standardize_inputs=False, **cell_args):
    """The copy-task model: one-hot input classes -> [standardization] -> RNN
    -> per-step logits."""
    units = units or default_units(model, delay)
    keras.utils.set_random_seed(seed)
    cell = common.make_cell(model, units, copy_data.INPUT_DIM, seed=seed, **cell_args)
    normalization = None
    if standardize_inputs:
        mean, variance = copy_data.input_moments(delay)
        normalization = keras.layers.Normalization(mean=mean, variance=variance,
                                                   name="standardize")
    return common.sequence_model(cell, copy_data.INPUT_DIM, copy_data.NUM_CLASSES,
                                 length=delay + 2 * copy_data.NUM_SYMBOLS, name=f"copy_{model}",
                                 freeze_rnn=freeze_rnn, normalization=normalization)


def make_dataset(seed, batch_size, delay):
    """`batch(step) -> (x one-hot float32, y int32)`, deterministic in `(seed, step)`."""

    def batch(step):
        x, y = copy_data.copy_batch(seed, step, batch_size, delay)
        return keras.ops.convert_to_numpy(keras.ops.one_hot(x, copy_data.INPUT_DIM)), y

    return batch


def loss_fn(model, batch, training):
    x, y = batch
    logits = model(x, training=training)
    loss, _ = common.masked_crossentropy(y, logits)
    n = copy_data.NUM_SYMBOLS
    recall_loss, recall_acc = common.masked_crossentropy(y[:, -n:], logits[:, -n:])
    return loss, {"recall_loss": recall_loss, "recall_accuracy": recall_acc}


def make_eval(seed, batch_size, delay):
    batches = [make_dataset(seed + EVAL_SEED_OFFSET, batch_size, delay)(i) for i in range(EVAL_BATCHES)]
    step = tf.function(lambda model, x, y: loss_fn(model, (x, y), False))

    def evaluate(model):
        totals = {}
        for x, y in batches:
            loss, metrics = step(model, tf.constant(x), tf.constant(y))
            for k, v in {"loss": loss, **metrics}.items():
                totals[k] = totals.get(k, 0.0) + float(v) / len(batches)
        return {**{f"eval/{k}": v for k, v in totals.items()},
                "eval/baseline_loss": copy_data.baseline_loss(delay)}

    return evaluate


def cell_args_from_flags():
    """Cell arguments; the activation defaults to linear for a shifting band
    cell (an exact delay line) and to tanh otherwise."""
    shifting = FLAGS.model == "closed_fixed" or bool(FLAGS.shift)
    activation = FLAGS.activation or ("linear" if shifting else "tanh")
    return dict(half_width=FLAGS.half_width, shift=FLAGS.shift, fixed_shift=FLAGS.fixed_shift,
                grid_stride=FLAGS.grid_stride, rank=FLAGS.rank, activation=activation)


def run():
    """Trains with the parsed flags; returns the result dict."""
    common.resolve_flags(DEFAULTS, QUICK)
    cell_args = cell_args_from_flags()
    if FLAGS.budget:
        FLAGS.units = common.units_for_budget(FLAGS.model, FLAGS.budget, copy_data.INPUT_DIM,
                                              copy_data.NUM_CLASSES, **cell_args)
    units = FLAGS.units or default_units(FLAGS.model, FLAGS.delay)
    strategy = common.strategy()
    with strategy.scope():
        model = build_model(FLAGS.model, units, FLAGS.delay, FLAGS.seed, FLAGS.freeze_rnn,
                            FLAGS.standardize_inputs, **cell_args)
        optimizer = common.make_optimizer(FLAGS.learning_rate, FLAGS.clipnorm)
    config = {**common.flag_values(), "units": units, "task": "copy",
              "activation": cell_args["activation"],
              "standardize_inputs": FLAGS.standardize_inputs}
    return common.train_from_flags(
        model,
        optimizer,
        make_dataset(FLAGS.seed, FLAGS.batch_size, FLAGS.delay),
        loss_fn,
        make_eval(FLAGS.seed, FLAGS.batch_size, FLAGS.delay),
        config=config,
        strategy=strategy,
    )


def main(argv):
    del argv
    run()


if __name__ == "__main__":
    app.run(main)
