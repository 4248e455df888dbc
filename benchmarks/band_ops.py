"""Speed of the band ops against dense matmul, pure TF, the FLOP floor and sgbmv.

    python benchmarks/band_ops.py            # writes the band_ops section of BENCHMARKS.md
    python benchmarks/band_ops.py --quick    # fewer sizes and repetitions, prints only

Batch 64, half-width 32 (k = 65), float32. For each n:
- forward `band_matmul`, `transpose=True`, and `band_outer`;
- (a) dense `tf.matmul` with an n x n matrix (n <= 8192);
- (b) the pure-TF composition (`keras_bandrnn.ops.band_fallback`, a
  block-bidiagonal batched matmul over windows), traced with `tf.function`;
- (c) the floor: band FLOPs 2 B n k at the dense matmul's measured FLOP/s;
- batch 1: forward against SciPy's banded BLAS `sgbmv`;
- time per unit, relative to n = 2048.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# sgbmv is a level-2 BLAS call: one thread. Idle OpenBLAS threads spinning
# beside TensorFlow's pool would otherwise slow down every measurement.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import scipy.linalg.blas  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from benchmarks import report  # noqa: E402
from keras_bandrnn import _lib  # noqa: E402
from keras_bandrnn import ops  # noqa: E402
from keras_bandrnn.ops import band_fallback  # noqa: E402

_QUICK = flags.DEFINE_bool("quick", False, "Fewer sizes and repetitions; print, do not write.")
_SIZES = flags.DEFINE_list("sizes", ["896", "2048", "8192", "32768", "131072"], "Values of n.")

BATCH, HALF = 64, 32
K = 2 * HALF + 1
DENSE_MAX = 8192


def sgbmv_storage(diags, lower, upper):
    """BLAS band storage ab[ku + i - c, c] = A[i, c] of the (n, k) diags."""
    n, k = diags.shape
    ab = np.zeros((k, n), diags.dtype)
    for j in range(k):
        i = np.arange(n)
        c = i + j - lower
        ok = (c >= 0) & (c < n)
        ab[k - 1 - j, c[ok]] = diags[i[ok], j]
    return ab


def measure(n, reps):
    rng = np.random.default_rng(n)
    x = tf.constant(rng.standard_normal((BATCH, n)), tf.float32)
    d = tf.constant(rng.standard_normal((n, K)), tf.float32)
    pure = tf.function(lambda x, d: band_fallback.band_matmul(x, d, HALF, HALF))
    # Each group is timed on its own: oneDNN's matmul leaves its threads
    # spinning for a while after each call, which would slow down whatever
    # runs right after it and make interleaved timings measure that instead.
    t = report.interleaved_medians(
        {
            "forward": lambda: ops.band_matmul(x, d, HALF, HALF),
            "transpose": lambda: ops.band_matmul(x, d, HALF, HALF, transpose=True),
            "outer": lambda: ops.band_outer(x, x, HALF, HALF),
        },
        reps,
        min_time=0.5,
    )
    t.update(report.interleaved_medians({"pure_tf": lambda: pure(x, d)}, reps, min_time=0.5))
    if n <= DENSE_MAX:
        w = tf.constant(rng.standard_normal((n, n)), tf.float32)
        t.update(report.interleaved_medians({"dense": lambda: tf.matmul(x, w)}, reps, min_time=0.5))

    x1 = tf.constant(rng.standard_normal((1, n)), tf.float32)
    d_np = d.numpy()
    ab = sgbmv_storage(d_np, HALF, HALF)
    x1_np = x1.numpy()[0]
    t1 = report.interleaved_medians(
        {
            "forward_b1": lambda: ops.band_matmul(x1, d, HALF, HALF),
            "sgbmv": lambda: scipy.linalg.blas.sgbmv(n, n, HALF, HALF, 1.0, ab, x1_np),
        },
        reps * 2,
        min_time=0.3,
    )
    # The two batch-1 results must agree, or the comparison means nothing.
    ref = scipy.linalg.blas.sgbmv(n, n, HALF, HALF, 1.0, ab, x1_np)
    np.testing.assert_allclose(ops.band_matmul(x1, d, HALF, HALF).numpy()[0], ref, rtol=1e-3, atol=1e-3)
    t.update(t1)
    return t


def dispatch_floor(reps):
    """Seconds per eager call of the forward op on a trivial input (n = 16, k = 3).

    This is the fixed cost of a call (Python wrapper, eager dispatch, output
    allocation) that no kernel can go below.
    """
    x = tf.ones((BATCH, 16))
    d = tf.ones((16, 3))
    return report.interleaved_medians({"floor": lambda: ops.band_matmul(x, d, 1, 1)}, reps, min_time=0.3)["floor"]


def targets(results, sizes, dense_rate, base, base_n):
    """Rows (target, measured, met) for the targets of issue 2."""
    rows = []

    def add(name, value, ok):
        rows.append([name, value, "met" if ok else "missed"])

    for n, factor in ((896, 10), (8192, 60)):
        r = results.get(n)
        if r and "dense" in r:
            add(f"forward >= {factor}x faster than dense at n={n}", f"{r['dense'] / r['forward']:.1f}x",
                r["dense"] / r["forward"] >= factor)
    big = [n for n in sizes if n >= 8192]
    if big:
        fracs = [2 * BATCH * n * K / results[n]["forward"] / dense_rate for n in big]
        add("effective rate >= 40% of dense for n >= 8192",
            ", ".join(f"{100 * f:.0f}%" for f in fracs), min(fracs) >= 0.4)
    add("forward >= 4x faster than pure TF at every n",
        f"min {min(results[n]['pure_tf'] / results[n]['forward'] for n in sizes):.1f}x",
        all(results[n]["pure_tf"] / results[n]["forward"] >= 4 for n in sizes))
    for op in ("transpose", "outer"):
        worst = max(results[n][op] / results[n]["forward"] for n in sizes)
        add(f"{'band_outer' if op == 'outer' else op} within 1.5x of forward", f"max {worst:.2f}x", worst <= 1.5)
    b1 = [n for n in sizes if n >= 65536]
    if b1:
        worst = max(results[n]["forward_b1"] / results[n]["sgbmv"] for n in b1)
        add("batch 1 within 1.5x of sgbmv for n >= 65536", f"max {worst:.2f}x", worst <= 1.5)
    per_unit = max((results[n]["forward"] / n) / (base["forward"] / base_n) for n in sizes)
    add(f"time per unit within 2x of n={base_n}", f"max {per_unit:.2f}", per_unit <= 2)
    return rows


def main(argv):
    del argv
    if _lib.fallback_reason() is not None:
        sys.exit(f"The compiled op library is not loaded: {_lib.fallback_reason()}")
    sizes = [int(s) for s in _SIZES.value]
    if _QUICK.value:
        sizes = [s for s in sizes if s <= 8192]
    reps = 5 if _QUICK.value else 15
    results = {}
    load_before = os.getloadavg()[0]
    floor_call = dispatch_floor(reps * 20)
    for n in sizes:
        results[n] = measure(n, reps)
        r = results[n]
        print(
            f"n={n}: forward {r['forward'] * 1e3:.3f} ms, transpose {r['transpose'] * 1e3:.3f}, "
            f"outer {r['outer'] * 1e3:.3f}, pure TF {r['pure_tf'] * 1e3:.3f}"
            + (f", dense {r['dense'] * 1e3:.3f}" if "dense" in r else "")
            + f"; batch 1 {r['forward_b1'] * 1e6:.1f} us vs sgbmv {r['sgbmv'] * 1e6:.1f} us",
            flush=True,
        )

    dense_n = max(n for n in sizes if "dense" in results[n])
    dense_rate = 2 * BATCH * dense_n * dense_n / results[dense_n]["dense"]
    base = results.get(2048, results[sizes[0]])
    base_n = 2048 if 2048 in results else sizes[0]
    rows = []
    for n in sizes:
        r = results[n]
        flops = 2 * BATCH * n * K
        floor = flops / dense_rate
        rows.append([
            n,
            f"{r['forward'] * 1e3:.3f}",
            f"{r['transpose'] * 1e3:.3f} ({r['transpose'] / r['forward']:.2f}x)",
            f"{r['outer'] * 1e3:.3f} ({r['outer'] / r['forward']:.2f}x)",
            f"{r['dense'] * 1e3:.2f} ({r['dense'] / r['forward']:.0f}x)" if "dense" in r else "-",
            f"{r['pure_tf'] * 1e3:.3f} ({r['pure_tf'] / r['forward']:.1f}x)",
            f"{floor * 1e3:.3f} ({100 * floor / r['forward']:.0f}%)",
            f"{flops / r['forward'] / 1e9:.0f}",
            f"{r['forward_b1'] * 1e6:.1f} / {r['sgbmv'] * 1e6:.1f} ({r['forward_b1'] / r['sgbmv']:.2f}x)",
            f"{(r['forward'] / n) / (base['forward'] / base_n):.2f}",
        ])
    table = report.markdown_table(
        [
            "n", "forward ms", "transpose ms (vs fwd)", "band_outer ms (vs fwd)",
            "dense tf.matmul ms (speedup)", "pure TF ms (speedup)",
            "floor ms (floor/fwd)", "fwd GFLOP/s", "batch 1: fwd / sgbmv us",
            f"time per unit vs n={base_n}",
        ],
        rows,
    )
    reach = ""
    if 896 in results and "dense" in results[896]:
        budget = results[896]["dense"] / 10 - floor_call
        flops = 2 * BATCH * 896 * K
        reach = (
            f"10x at n=896 leaves {budget * 1e6:.0f} us for the kernel after the fixed call cost "
            + (f"(below 0: out of reach at any speed). " if budget <= 0 else
               f"(a rate of {flops / budget / 1e9:.0f} GFLOP/s, {100 * flops / budget / dense_rate:.0f}% "
               "of the dense matmul's). ")
        )
    target_table = report.markdown_table(
        ["target (issue 2)", "measured", ""], targets(results, sizes, dense_rate, base, base_n))
    load_after = os.getloadavg()[0]
    body = (
        "## Band ops (`benchmarks/band_ops.py`)\n\n"
        f"Batch {BATCH}, half-width {HALF} (k = {K}), float32, CPU kernels. "
        f"Dense matmul rate measured at n={dense_n}: {dense_rate / 1e9:.0f} GFLOP/s; "
        "the floor is the band's 2 B n k FLOPs at that rate, so floor/fwd is the "
        "forward's effective rate as a fraction of the dense matmul's. "
        "Speedups are the baseline's time over the forward's.\n\n" + table
        + "\n\n" + target_table + "\n\n"
        f"Fixed cost of one eager call (forward on a (64, 16) input, k = 3): "
        f"{floor_call * 1e6:.0f} us, which bounds the forward's time from below at "
        f"every n; {reach}All times are wall-clock medians on a machine shared with other "
        f"jobs: load average {load_before:.1f} before the run, {load_after:.1f} after "
        "(2 cores), which slows the multi-threaded dense matmul and the two-thread "
        "kernels alike but not by the same factor."
    )
    print(body)
    if not _QUICK.value:
        report.write_section("band_ops", body, "python benchmarks/band_ops.py")
        report.write_readme_tables("band_ops", table + "\n\n" + target_table)


if __name__ == "__main__":
    app.run(main)
