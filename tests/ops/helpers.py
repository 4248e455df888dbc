"""Random inputs for the op tests (seeded, so every run sees the same data)."""

import zlib

import numpy as np
import tensorflow as tf


# (n, lower, upper, cyclic): one-sided, asymmetric, full and over-wide open
# bands, cyclic bands with k == n, block edges of the fallback (16 rows), and
# n up to a few thousand.
BANDS = [
    (1, 0, 0, False),
    (1, 0, 0, True),
    (2, 1, 0, False),
    (2, 0, 1, True),
    (3, 2, 2, False),  # k = 5 > n: open band, wide padding
    (5, 4, 4, False),  # full band
    (5, 4, 0, False),  # lower triangle
    (5, 0, 4, False),  # upper triangle
    (5, 2, 2, True),   # k == n
    (5, 4, 0, True),   # k == n, one-sided
    (5, 0, 4, True),
    (6, 0, 0, True),
    (7, 3, 1, False),
    (7, 1, 3, True),
    (16, 15, 15, False),
    (17, 3, 5, False),
    (33, 16, 0, False),
    (33, 0, 17, True),
    (64, 20, 43, True),  # k == n
    (100, 7, 2, True),
    (257, 0, 0, False),
    (300, 299, 299, False),
    (300, 150, 149, True),  # k == n
    (2500, 3, 3, False),
    (3000, 10, 40, True),
    (4096, 0, 63, False),
]


def band_id(band):
    n, lower, upper, cyclic = band
    return f"n{n}-l{lower}-u{upper}-{'cyc' if cyclic else 'open'}"


def rng(*key):
    """A generator seeded by `key` (stable across processes, unlike hash())."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def random(gen, shape, dtype="float64", scale=1.0):
    """A `(tensor, float64 array)` pair holding the same values.

    The values are drawn in float64 and rounded to `dtype`; the array holds the
    rounded values, so references see exactly what the op sees.
    """
    values = gen.standard_normal(shape) * scale
    t = tf.cast(tf.constant(values, tf.float64), dtype)
    return t, t.numpy().astype(np.float64)


def numpy64(t):
    return np.asarray(t.numpy(), dtype=np.float64) if hasattr(t, "numpy") else np.asarray(t, np.float64)
