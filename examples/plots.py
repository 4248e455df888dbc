"""Pictures for the README, made from finished runs (PNG files under docs/images/).

    python -m examples.plots                      # after python -m examples.results
    python -m examples.plots --copy_runs=runs/copy --braille_run=runs/braille/constant_d5_closed_fixed

- `band_matrix.png`: the learned recurrent matrices of a shift-initialised
  BandCell and of a ClosedBandCell with fixed shift (copy task), as dense
  matrices (a corner of them);
- `hidden_states.png`: hidden states over time for one copy-task sequence:
  the shift register shows as diagonal stripes, each symbol moving `s` units
  per step;
- `training_curves.png`: recall accuracy and loss against steps per model;
- `braille_saliency.png`: a saliency map (tf-keras-vis) over the input time
  steps for one Braille prediction.
"""

import glob
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from examples import braille  # noqa: E402
from examples import copy_task  # noqa: E402
from keras_bandrnn import ops as band_ops  # noqa: E402
from keras_bandrnn.datasets import text8  # noqa: E402

flags.DEFINE_string("copy_runs", "runs/copy", "Directory of copy-task runs (one per subdirectory).")
flags.DEFINE_string("copy_delay", "T100", "Prefix of the copy runs to plot.")
flags.DEFINE_string("braille_run", "runs/braille/constant_d5_closed_fixed", "A Braille run.")
flags.DEFINE_string("images_dir", "docs/images", "Where the PNG files go.")
FLAGS = flags.FLAGS

CELL_KEYS = ("half_width", "shift", "fixed_shift", "grid_stride", "rank", "activation")


def load_run(run_dir, build):
    """The model of a finished run, restored from its last checkpoint, and its result."""
    with open(os.path.join(run_dir, "result.json")) as f:
        result = json.load(f)
    config = result["config"]
    model = build(config)
    latest = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    tf.train.Checkpoint(model=model).restore(latest).expect_partial()
    return model, result


def build_copy(config):
    return copy_task.build_model(config["model"], config["units"], config["delay"], config["seed"],
                                 config.get("freeze_rnn") or False,
                                 **{k: config[k] for k in CELL_KEYS})


def build_braille(config):
    return braille.build_model(config["model"], config["units"], config["seed"],
                               **{k: config[k] for k in CELL_KEYS})


def dense_recurrence(cell):
    """The cell's recurrent matrix `A` as a dense NumPy array (with its fixed shift)."""
    diags = tf.convert_to_tensor(cell.recurrent_kernel)
    a = band_ops.band_to_dense(diags, cell.lower, cell.upper, cyclic=cell.cyclic).numpy()
    if cell.fixed_shift:
        a = a + np.roll(np.eye(cell.units), cell.shift, axis=0)
    return a


def hidden_states(model, x):
    """States `(steps, units)` of the model's RNN layer for one sequence."""
    rnn = model.get_layer("rnn")
    return rnn(tf.constant(x[None])).numpy()[0]


def plot_band_matrices(runs, path, corner=60):
    """The learned matrices, and the learned deviation from the shift."""
    panels = []
    for title, model in runs:
        cell = model.get_layer("rnn").cell
        a = dense_recurrence(cell)
        panels.append((title, a))
        shift = np.roll(np.eye(cell.units), cell.shift, axis=0)
        if not cell.cyclic:
            shift[: cell.shift] = 0
        panels.append((f"{title.split(',')[0]}: A - shift (learned change)", a - shift))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.4), squeeze=False)
    for ax, (title, a) in zip(axes[0], panels):
        a = a[:corner, :corner]
        lim = np.abs(a).max()
        im = ax.imshow(a, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("from unit (h_{t-1})")
        ax.set_ylabel("to unit (h_t)")
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(f"Learned recurrent matrices after the copy task (top-left {corner}x{corner})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_hidden_states(runs, path, delay):
    x, y = copy_task.make_dataset(12345, 1, delay)(0)
    fig, axes = plt.subplots(len(runs), 1, figsize=(11, 3.2 * len(runs)), squeeze=False)
    for ax, (title, model) in zip(axes[:, 0], runs):
        h = hidden_states(model, x[0])
        lim = np.percentile(np.abs(h), 99) or 1.0
        ax.imshow(h.T, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_title(f"{title}: hidden state over time (symbols {y[0, -10:].tolist()})")
        ax.set_xlabel("time step")
        ax.set_ylabel("unit")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def smooth(v, n=10):
    v = np.asarray(v, float)
    if len(v) < n:
        return v
    return np.convolve(v, np.ones(n) / n, mode="valid")


def plot_curves(run_dirs, path, baseline):
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    for name, run_dir in run_dirs:
        with open(os.path.join(run_dir, "train_log.jsonl")) as f:
            log = {}
            for line in f:
                r = json.loads(line)
                log[r["step"]] = r  # a resumed run repeats steps: keep the last
        steps = sorted(log)
        acc = smooth([log[s]["recall_accuracy"] for s in steps])
        loss = smooth([log[s]["loss"] for s in steps])
        ax1.plot(steps[len(steps) - len(acc):], 100 * acc, label=name)
        ax2.semilogy(steps[len(steps) - len(loss):], loss, label=name)
    ax1.axhline(100 / 8, color="gray", ls=":", label="chance (1/8)")
    ax2.axhline(baseline, color="gray", ls=":", label="memoryless baseline")
    ax1.set(xlabel="step", ylabel="recall accuracy % (train, smoothed)", title="Copy task")
    ax2.set(xlabel="step", ylabel="cross-entropy (nats/step)", title="Copy task loss")
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_saliency(model, config, path):
    from tf_keras_vis.saliency import Saliency

    _, valid, _ = text8.load(config["text"])
    x, y, w = braille.make_dataset(valid, 777, 1, config["length"], config["delay"],
                                   config["render"])(0)
    t = config["length"] - 1
    pred = int(np.argmax(model(x)[0, t]))
    saliency = Saliency(model, clone=True)
    smap = saliency(lambda out: out[:, t, pred], tf.constant(x), normalize_map=False)
    smap = np.abs(np.asarray(smap)[0])  # |d logit / d input|, max over the 3 dots
    if smap.ndim == 2:
        smap = smap.max(1)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 4.2), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 2]})
    ax1.imshow(x[0].T, aspect="auto", cmap="Greys", interpolation="nearest")
    chars = text8.decode(y[0])
    for step in range(config["delay"], config["length"]):
        if step == config["delay"] or y[0, step] != y[0, step - 1]:
            ax1.text(step - config["delay"], -0.6, chars[step], ha="left", fontsize=8)
    ax1.set_yticks([0, 1, 2], ["dot row 1", "row 2", "row 3"])
    ax1.set_title(f"Braille input ({config['render']}); prediction at step {t}: "
                  f"'{text8.ALPHABET[pred]}' (label '{chars[t]}', delay {config['delay']}); letters: the text under the reader", pad=24)
    ax2.bar(np.arange(len(smap)), smap, color="tab:red")
    ax2.axvline(t - config["delay"], color="gray", ls=":")
    ax2.set(xlabel="input time step", ylabel="saliency |d logit / d x|")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv):
    del argv
    os.makedirs(FLAGS.images_dir, exist_ok=True)
    prefix = os.path.join(FLAGS.copy_runs, FLAGS.copy_delay + "_")
    runs = {os.path.basename(d)[len(FLAGS.copy_delay) + 1:]: d
            for d in sorted(glob.glob(prefix + "*")) if os.path.exists(os.path.join(d, "result.json"))}
    band_runs = [(title, load_run(runs[name], build_copy)[0]) for name, title in
                 (("band", "BandCell, shift-initialised (s=10)"),
                  ("closed_fixed", "ClosedBandCell, fixed shift (S + D)")) if name in runs]
    if band_runs:
        plot_band_matrices(band_runs, os.path.join(FLAGS.images_dir, "band_matrix.png"))
        delay = load_run(runs["closed_fixed" if "closed_fixed" in runs else "band"], build_copy)[1]
        plot_hidden_states(band_runs, os.path.join(FLAGS.images_dir, "hidden_states.png"),
                           delay["config"]["delay"])
    if runs:
        any_run = next(iter(runs.values()))
        with open(os.path.join(any_run, "result.json")) as f:
            baseline = json.load(f)["eval/baseline_loss"]
        plot_curves(sorted(runs.items()), os.path.join(FLAGS.images_dir, "training_curves.png"), baseline)
    if os.path.exists(os.path.join(FLAGS.braille_run, "result.json")):
        model, result = load_run(FLAGS.braille_run, build_braille)
        plot_saliency(model, result["config"], os.path.join(FLAGS.images_dir, "braille_saliency.png"))
    print("wrote", sorted(os.listdir(FLAGS.images_dir)))


if __name__ == "__main__":
    app.run(main)
