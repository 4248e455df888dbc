"""Character language modelling on text8 (or any text): dense GRU against
the conditional GRU.

    python -m examples.text8 --quick
    python -m examples.text8 --text=pydoc --model=gru --units=512 --steps=2000
    python -m examples.text8 --text=text8 --model=cgru --gating=block --gate_dim=32 \\
        --sparsity_bias=-0.5

The corpus (`--text`: 'text8' downloads the canonical archive and checks its
checksum; 'pydoc' is CPython's reference text, offline; or any text file) is
cleaned to 27 symbols and split 90/5/5 (`keras_bandrnn.datasets.text8`).
Training is truncated BPTT over `--bptt` steps with the state carried from
window to window (it is part of the checkpoint), batch 64 and Adam 1e-3 as
in the seed. With `--distribute`, each replica carries the state of its own
rows of the global batch (its streams), and the whole state is gathered back
after every step, so the checkpoint holds all of it. Reports bits per character on the validation and test parts,
the inference speed (characters per second) and, for `--model=cgru`, the
fraction of zero update-gate blocks.
"""

import math
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from examples import common  # noqa: E402
from keras_bandrnn.datasets import text8  # noqa: E402

FLAGS = common.FLAGS
flags.DEFINE_integer("bptt", None, "Truncated-BPTT window (characters).")
flags.DEFINE_integer("eval_chars", None, "Characters of each evaluation split to score (0 = all).")
flags.DEFINE_enum("gating", "block", ["block", "unstructured"], "ConditionalGRUCell gating.")
flags.DEFINE_integer("gate_dim", 32, "ConditionalGRUCell gate_dim (blocks or rank).")
flags.DEFINE_float("sparsity_bias", 0.0, "ConditionalGRUCell sparsity_bias s <= 0.")

DEFAULTS = dict(model="gru", units=512, text="pydoc", bptt=50, steps=2000, batch_size=64,
                learning_rate=1e-3, clipnorm=1.0, eval_every=500, checkpoint_every=100,
                eval_chars=100_000)
QUICK = dict(units=64, bptt=20, steps=30, batch_size=16, eval_every=15, checkpoint_every=10,
             eval_chars=4_000)


def build_model(model="gru", units=512, seed=0, **cell_args):
    """`[one-hot chars (B, L, 27), state (B, units)] -> [logits, new state]`."""
    keras.utils.set_random_seed(seed)
    cell = common.make_cell(model, units, text8.VOCAB_SIZE, seed=seed, **cell_args)
    x = keras.Input((None, text8.VOCAB_SIZE), name="chars")
    h0 = keras.Input((units,), name="state")
    seq, h = keras.layers.RNN(cell, return_sequences=True, return_state=True, name="rnn")(
        x, initial_state=[h0])
    logits = keras.layers.Dense(text8.VOCAB_SIZE, name="readout")(seq)
    return keras.Model([x, h0], [logits, h], name=f"text_{model}")


def make_dataset(ids, batch_size, bptt):
    """`batch(step) -> (x, y)`: window `step` of `batch_size` parallel streams."""
    return lambda step: text8.stream_batch(ids, step, batch_size, bptt)


def loss_fn(model, batch, training):
    """Loss over a window `(x, y, state)`; returns `(loss, metrics, new state)`
    (`common.train`'s `carry`)."""
    x, y, state = batch
    logits, h = model([tf.one_hot(x, text8.VOCAB_SIZE), state], training=training)
    loss, acc = common.masked_crossentropy(y, logits)
    return loss, {"bpc": loss / math.log(2.0), "accuracy": acc}, h


def gate_sparsity(model):
    """The `closed_fraction` metric of a ConditionalGRUCell (fraction of zero
    update-gate blocks), or None for other cells."""
    metric = getattr(model.get_layer("rnn").cell, "closed_fraction", None)
    return None if metric is None else float(keras.ops.convert_to_numpy(metric.result()))


def reset_gate_sparsity(model):
    metric = getattr(model.get_layer("rnn").cell, "closed_fraction", None)
    if metric is not None:
        metric.reset_state()


def make_eval(splits, batch_size, bptt, eval_chars, units):
    state = tf.Variable(tf.zeros((batch_size, units)), trainable=False)

    @tf.function
    def step(model, x, y):
        loss, _, h = loss_fn(model, (x, y, state), False)
        state.assign(h)
        return loss

    def evaluate(model):
        out = {}
        for name, ids in (("valid", splits[1]), ("test", splits[2])):
            ids = ids[:eval_chars] if eval_chars else ids
            reset_gate_sparsity(model)
            windows = text8.windows_per_epoch(len(ids), batch_size, bptt)
            state.assign(tf.zeros_like(state))
            total, t0 = 0.0, time.perf_counter()
            for w in range(windows):
                x, y = text8.stream_batch(ids, w, batch_size, bptt)
                loss = step(model, tf.constant(x), tf.constant(y))
                total += float(loss)
            seconds = time.perf_counter() - t0
            out[f"{name}/bpc"] = total / max(windows, 1) / math.log(2.0)
            out[f"{name}/chars_per_second"] = windows * batch_size * bptt / seconds
            sparsity = gate_sparsity(model)
            if sparsity is not None:
                out[f"{name}/gate_sparsity"] = sparsity
        return out

    return evaluate


def cell_args_from_flags():
    if FLAGS.model == "cgru":
        return dict(gate_dim=FLAGS.gate_dim, gating=FLAGS.gating, sparsity_bias=FLAGS.sparsity_bias)
    return dict(half_width=FLAGS.half_width, shift=FLAGS.shift, fixed_shift=FLAGS.fixed_shift,
                grid_stride=FLAGS.grid_stride, rank=FLAGS.rank, activation=FLAGS.activation)


def run():
    """Trains with the parsed flags; returns the result dict."""
    common.resolve_flags(DEFAULTS, QUICK)
    if FLAGS.model in ("lstm",):
        raise ValueError("examples.text8 carries one state vector; use a single-state cell, not lstm.")
    splits = text8.load(FLAGS.text)
    cell_args = cell_args_from_flags()
    strategy = common.strategy()
    with strategy.scope():
        model = build_model(FLAGS.model, FLAGS.units, FLAGS.seed, **cell_args)
        optimizer = common.make_optimizer(FLAGS.learning_rate, FLAGS.clipnorm)
    state = tf.Variable(tf.zeros((FLAGS.batch_size, FLAGS.units)), trainable=False, name="state")
    config = {**common.flag_values(), "bptt": FLAGS.bptt, "task": "text",
              "train_chars": int(len(splits[0]))}
    if FLAGS.model == "cgru":
        config.update(cell_args)
    return common.train_from_flags(
        model,
        optimizer,
        make_dataset(splits[0], FLAGS.batch_size, FLAGS.bptt),
        loss_fn,
        make_eval(splits, FLAGS.batch_size, FLAGS.bptt, FLAGS.eval_chars, FLAGS.units),
        carry=state,
        config=config,
        strategy=strategy,
    )


def main(argv):
    del argv
    run()


if __name__ == "__main__":
    app.run(main)
