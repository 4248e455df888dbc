"""Reading Braille with a delay: the seed's parameter-matched model table.

    python -m examples.braille --quick
    python -m examples.braille --model=closed_fixed --delay=20 --render=variable
    python -m examples.braille --model=gru --budget=80000 --text=/path/to/book.txt

Text (`--text`: CPython's `pydoc_data` reference text by default, offline;
any text file; or text8) is rendered as 6-dot Braille cells read one column
of 3 dots per step (`keras_bandrnn.datasets.braille`); the network must name
the character that was under the reader `--delay` steps earlier.
`--render` picks constant or variable speed, with or without distortions
(pauses and dot noise). Without `--units`/`--budget` the hidden sizes are
those of the seed's 80k-parameter table (`common.SEED_UNITS_80K`).
Reports per-character accuracy (over the labelled steps) on the validation
and test parts of the text (90/5/5 split).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from examples import common  # noqa: E402
from keras_bandrnn.datasets import braille as braille_data  # noqa: E402
from keras_bandrnn.datasets import text8  # noqa: E402

FLAGS = common.FLAGS
flags.DEFINE_enum("render", "constant", sorted(braille_data.PRESETS),
                  "Reader speed and distortions (keras_bandrnn.datasets.braille.PRESETS).")
flags.DEFINE_integer("length", None, "Steps (columns) per training sequence.")

DEFAULTS = dict(model="closed_fixed", delay=10, text="pydoc", length=100, steps=1000,
                batch_size=32, learning_rate=1e-3, eval_every=200, checkpoint_every=100)
QUICK = dict(units=64, half_width=8, grid_stride=16, rank=8, length=40, delay=4, steps=40,
             batch_size=16, eval_every=20, checkpoint_every=10)
EVAL_BATCHES = 4
EVAL_SEED_OFFSET = 1_000_003


def build_model(model="closed_fixed", units=None, seed=0, **cell_args):
    """Braille model: 3 dots per step -> RNN -> logits over 27 characters."""
    units = units or common.SEED_UNITS_80K[model]
    keras.utils.set_random_seed(seed)
    cell = common.make_cell(model, units, braille_data.INPUT_DIM, seed=seed, **cell_args)
    return common.sequence_model(cell, braille_data.INPUT_DIM, braille_data.NUM_CLASSES,
                                 name=f"braille_{model}")


def load_splits(source):
    """`(train, valid, test)` character ids of the corpus `source`."""
    return text8.load(source)


def make_dataset(ids, seed, batch_size, length, delay, render="constant"):
    """`batch(step) -> (x, y, w)`, deterministic in `(seed, step)`."""
    options = braille_data.PRESETS[render]
    return lambda step: braille_data.braille_batch(ids, seed, step, batch_size, length, delay, options)


def loss_fn(model, batch, training):
    x, y, w = batch
    loss, acc = common.masked_crossentropy(y, model(x, training=training), w)
    return loss, {"char_accuracy": acc}


def make_eval(splits, seed, batch_size, length, delay, render):
    sets = {
        name: [make_dataset(ids, seed + EVAL_SEED_OFFSET, batch_size, length, delay, render)(i)
               for i in range(EVAL_BATCHES)]
        for name, ids in (("valid", splits[1]), ("test", splits[2]))
    }
    step = tf.function(lambda model, x, y, w: loss_fn(model, (x, y, w), False))

    def evaluate(model):
        out = {}
        for name, batches in sets.items():
            for x, y, w in batches:
                loss, metrics = step(model, tf.constant(x), tf.constant(y), tf.constant(w))
                for k, v in {"loss": loss, **metrics}.items():
                    key = f"{name}/{k}"
                    out[key] = out.get(key, 0.0) + float(v) / len(batches)
        return out

    return evaluate


def cell_args_from_flags():
    return dict(half_width=FLAGS.half_width, shift=FLAGS.shift, fixed_shift=FLAGS.fixed_shift,
                grid_stride=FLAGS.grid_stride, rank=FLAGS.rank, activation=FLAGS.activation)


def run():
    """Trains with the parsed flags; returns the result dict."""
    common.resolve_flags(DEFAULTS, QUICK)
    cell_args = cell_args_from_flags()
    if FLAGS.budget:
        FLAGS.units = common.units_for_budget(FLAGS.model, FLAGS.budget, braille_data.INPUT_DIM,
                                              braille_data.NUM_CLASSES, **cell_args)
    units = FLAGS.units or common.SEED_UNITS_80K[FLAGS.model]
    splits = load_splits(FLAGS.text)
    strategy = common.strategy()
    with strategy.scope():
        model = build_model(FLAGS.model, units, FLAGS.seed, **cell_args)
        optimizer = common.make_optimizer(FLAGS.learning_rate, FLAGS.clipnorm)
    config = {**common.flag_values(), "units": units, "render": FLAGS.render,
              "length": FLAGS.length, "task": "braille"}
    return common.train_from_flags(
        model,
        optimizer,
        make_dataset(splits[0], FLAGS.seed, FLAGS.batch_size, FLAGS.length, FLAGS.delay, FLAGS.render),
        loss_fn,
        make_eval(splits, FLAGS.seed, FLAGS.batch_size, FLAGS.length, FLAGS.delay, FLAGS.render),
        config=config,
        strategy=strategy,
    )


def main(argv):
    del argv
    run()


if __name__ == "__main__":
    app.run(main)
