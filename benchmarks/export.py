"""Cost of the stock-op lowering in SavedModel exports against the custom op.

    python benchmarks/export.py            # writes the export section of BENCHMARKS.md
    python benchmarks/export.py --quick    # fewer configurations and repetitions, prints only

Two tables, float32, CPU:
1. one `band_matmul` (forward, open band): the compiled op against the
   stock-op lowering of `keras_bandrnn.ops.band_fallback` as exported (the
   diagonal sum for k <= 16, block tiles above) and against block tiles for
   every k (the lowering before the diagonal sum), each in a `tf.function`;
2. a served model (`RNN(BandCell) -> Dense`, 50 steps): the Keras model with
   the compiled op (`tf.function`) against the `serving_default` signature of
   `export_saved_model`, loaded with `tf.saved_model.load`, and the export
   made with the block tiles only (the lowering before the diagonal sum).
Ratios are against the compiled op, measured in the same run.
"""

import contextlib
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

import keras_bandrnn as kb  # noqa: E402
from benchmarks import report  # noqa: E402
from keras_bandrnn import _lib  # noqa: E402
from keras_bandrnn import ops  # noqa: E402
from keras_bandrnn.export import export_saved_model  # noqa: E402
from keras_bandrnn.ops import band_fallback  # noqa: E402

_QUICK = flags.DEFINE_bool("quick", False, "Fewer configurations and repetitions; print, do not write.")

STEPS = 50


@contextlib.contextmanager
def tiles_only():
    """The lowering without the diagonal-sum path (block tiles for every k)."""
    saved = band_fallback._DIAGONAL_SUM_MAX_K
    band_fallback._DIAGONAL_SUM_MAX_K = 0
    try:
        yield
    finally:
        band_fallback._DIAGONAL_SUM_MAX_K = saved


def op_row(batch, n, half, reps):
    rng = np.random.default_rng(n)
    x = tf.constant(rng.standard_normal((batch, n)), tf.float32)
    d = tf.constant(rng.standard_normal((n, 2 * half + 1)), tf.float32)
    compiled = tf.function(lambda x, d: ops.band_matmul(x, d, half, half))

    def lowering():
        return tf.function(lambda x, d: band_fallback.band_matmul(x, d, half, half))

    diagonal = lowering()
    with tiles_only():
        tiles = lowering()
        tiles(x, d)  # traced without the diagonal-sum path
    t = report.interleaved_medians(
        {"op": lambda: compiled(x, d), "diag": lambda: diagonal(x, d), "tiles": lambda: tiles(x, d)},
        reps, min_time=1.0,
    )
    return [batch, n, 2 * half + 1, f"{t['op'] * 1e6:.0f}",
            f"{t['diag'] / t['op']:.1f}x", f"{t['tiles'] / t['op']:.1f}x"]


def model_row(batch, units, half, reps, tmp):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, 16), name="symbols")
    h = keras.layers.RNN(kb.BandCell(units, half_width=half), return_sequences=True)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(16, name="logits")(h))
    x = tf.constant(np.random.default_rng(1).standard_normal((batch, STEPS, 16)), tf.float32)
    keras_fn = tf.function(lambda x: model(x, training=False))
    path = os.path.join(tmp, f"{batch}_{units}_{half}")
    export_saved_model(model, path + "/diag")
    with tiles_only():
        export_saved_model(model, path + "/tiles")
    served = tf.saved_model.load(path + "/diag").signatures["serving_default"]
    served_tiles = tf.saved_model.load(path + "/tiles").signatures["serving_default"]
    np.testing.assert_allclose(served(symbols=x)["logits"].numpy(), keras_fn(x).numpy(), atol=1e-4)
    t = report.interleaved_medians(
        {"keras": lambda: keras_fn(x), "served": lambda: served(symbols=x),
         "tiles": lambda: served_tiles(symbols=x)},
        reps, min_time=0.5,
    )
    return [batch, units, 2 * half + 1, f"{t['keras'] * 1e3:.2f}",
            f"{t['served'] / t['keras']:.2f}x", f"{t['tiles'] / t['keras']:.2f}x"]


def main(argv):
    del argv
    if _lib.op_library() is None:
        raise SystemExit(f"the compiled op library is needed: {_lib.fallback_reason()}")
    quick = _QUICK.value
    reps = 5 if quick else 30
    op_cases = [(1, 256, 4), (64, 1024, 4)] if quick else [
        (1, 256, 4), (1, 1024, 4), (1, 1024, 32), (64, 256, 4), (64, 1024, 4),
        (64, 1024, 7), (64, 1024, 32), (64, 4096, 32)]
    model_cases = [(1, 128, 4)] if quick else [
        (1, 128, 4), (1, 1024, 4), (64, 128, 4), (64, 1024, 4), (64, 1024, 32)]
    op_rows = [op_row(*c, reps) for c in op_cases]
    for r in op_rows:
        print(r, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        model_rows = [model_row(*c, max(reps // 3, 3), tmp) for c in model_cases]
    for r in model_rows:
        print(r, flush=True)
    body = (
        "## SavedModel export: stock-op lowering against the custom op\n\n"
        "One `band_matmul` (open band, float32): median time of the compiled op and "
        "the time of the stock-op lowering relative to it: as exported (diagonal sum "
        "for k <= 16, block tiles above; for k > 16 both columns run the same graph, "
        "so their difference there is the measurement noise), and block tiles for "
        "every k.\n\n"
        + report.markdown_table(
            ["batch", "n", "k", "compiled op (us)", "lowering as exported", "block tiles only"], op_rows)
        + f"\n\nServed model `RNN(BandCell(units)) -> Dense`, {STEPS} steps: Keras with the "
        "compiled op (`tf.function`), against the loaded `serving_default` signature of "
        "`export_saved_model` (stock ops), and an export lowered with block tiles only.\n\n"
        + report.markdown_table(
            ["batch", "units", "k", "Keras + op (ms)", "export", "export, tiles only"], model_rows)
    )
    if quick:
        print(body)
    else:
        report.write_section("export", body, "python benchmarks/export.py")


if __name__ == "__main__":
    app.run(main)
