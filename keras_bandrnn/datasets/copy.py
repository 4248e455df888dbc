"""The copy task of Arjovsky et al. (2016), "Unitary evolution RNNs".

A sequence of length `T + 20`: 10 symbols drawn from 8 categories, `T - 1`
blanks, a delimiter, then 10 more blanks during which the 10 symbols are to
be reproduced. Targets are blank everywhere except the last 10 steps.
Input classes: 0 = blank, 1..8 = symbols, 9 = delimiter (10 classes, one-hot).
Output classes: 0 = blank, 1..8 = symbols (9 classes).
"""

import math

import numpy as np

NUM_SYMBOLS = 10
NUM_CATEGORIES = 8
INPUT_DIM = NUM_CATEGORIES + 2
NUM_CLASSES = NUM_CATEGORIES + 1
DELIMITER = NUM_CATEGORIES + 1


def baseline_loss(delay):
    """Cross-entropy of the memoryless strategy, `10 ln 8 / (T + 20)`: predict
    blank until the delimiter, then a uniform guess over the 8 categories."""
    return NUM_SYMBOLS * math.log(NUM_CATEGORIES) / (delay + 2 * NUM_SYMBOLS)


def input_moments(delay):
    """Mean and variance of each one-hot input class over the positions of a
    sequence: `(mean, variance)`, float arrays of shape `(INPUT_DIM,)`.

    Per sequence of length `T + 20`: `T + 9` blanks, 10 symbols spread
    uniformly over the 8 categories, one delimiter. For
    `keras.layers.Normalization(mean=..., variance=...)`.
    """
    if delay < 1:
        raise ValueError(f"`delay` must be >= 1, got {delay}.")
    length = delay + 2 * NUM_SYMBOLS
    counts = np.full(INPUT_DIM, NUM_SYMBOLS / NUM_CATEGORIES)
    counts[0] = length - NUM_SYMBOLS - 1
    counts[DELIMITER] = 1.0
    mean = counts / length
    return mean, mean * (1.0 - mean)


def copy_batch(seed, step, batch_size, delay):
    """The batch number `step` of the copy task for `seed`.

    Args:
        seed: Integer seed of the run.
        step: Integer index of the batch; the batch is a deterministic
            function of `(seed, step)`.
        batch_size: Number of sequences.
        delay: `T`, the number of steps between the last symbol and the
            first recalled one (`T >= 1`).

    Returns:
        `(x, y)`: int32 arrays of shape `(batch_size, T + 20)`, `x` the input
        classes and `y` the target classes.
    """
    if delay < 1:
        raise ValueError(f"`delay` must be >= 1, got {delay}.")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    rng = np.random.default_rng([int(seed), int(step)])
    length = delay + 2 * NUM_SYMBOLS
    symbols = rng.integers(1, NUM_CATEGORIES + 1, size=(batch_size, NUM_SYMBOLS))
    x = np.zeros((batch_size, length), np.int32)
    y = np.zeros((batch_size, length), np.int32)
    x[:, :NUM_SYMBOLS] = symbols
    x[:, delay + NUM_SYMBOLS - 1] = DELIMITER
    y[:, -NUM_SYMBOLS:] = symbols
    return x, y
