"""A short tour of the band ops, checked against dense matmul.

    python examples/ops_demo.py

Builds a random band matrix, multiplies a batch with it through
`band_matmul` (open and closed band, both directions), compares each product
with the dense `tf.matmul` of the same matrix, checks `band_outer` against
the gradient TensorFlow computes through the dense product, and times both.
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_bandrnn import _lib  # noqa: E402
from keras_bandrnn import ops  # noqa: E402


def median_ms(fn, reps=20):
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def main():
    reason = _lib.fallback_reason()
    print("op library:", "compiled kernels" if reason is None else f"pure-TF fallback ({reason})")
    batch, n, lower, upper = 64, 4096, 32, 32
    k = lower + upper + 1
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((batch, n)), tf.float32)
    diags = tf.constant(rng.standard_normal((n, k)), tf.float32)
    for cyclic in (False, True):
        dense = ops.band_to_dense(diags, lower, upper, cyclic=cyclic)
        for transpose in (False, True):
            y = ops.band_matmul(x, diags, lower, upper, cyclic=cyclic, transpose=transpose)
            ref = tf.matmul(x, dense, transpose_b=not transpose)
            err = float(tf.reduce_max(tf.abs(y - ref)))
            print(f"cyclic={cyclic!s:5} transpose={transpose!s:5}: max |band - dense| = {err:.2e}")
            assert err < 1e-3, err
    # band_outer is the gradient of band_matmul with respect to the band.
    dense = ops.band_to_dense(diags, lower, upper)
    with tf.GradientTape() as tape:
        tape.watch(dense)
        loss = tf.reduce_sum(tf.matmul(x, dense, transpose_b=True) * x)
    g_dense = ops.dense_to_band(tape.gradient(loss, dense), lower, upper)
    g_band = ops.band_outer(x, x, lower, upper)
    err = float(tf.reduce_max(tf.abs(g_band - g_dense)))
    print(f"band_outer vs dense gradient: max difference {err:.2e}")
    assert err < 1e-2, err

    t_band = median_ms(lambda: ops.band_matmul(x, diags, lower, upper))
    t_dense = median_ms(lambda: tf.matmul(x, dense, transpose_b=True))
    print(
        f"batch {batch}, n={n}, k={k}: band_matmul {t_band:.3f} ms, dense matmul "
        f"{t_dense:.3f} ms ({t_dense / t_band:.0f}x); the band stores "
        f"{n * k:,} numbers, the dense matrix {n * n:,}"
    )


if __name__ == "__main__":
    main()
