"""Reading Braille: text rendered as 6-dot cells read column by column.

Each character of a (cleaned, 27-symbol, see `text8.clean`) text is a
Braille cell of 6 dots in 2 columns of 3 (dots 1-2-3 on the left, 4-5-6 on
the right). The Unicode Braille block encodes the dots as bits: the
character `U+2800 + bits` has dot `d` raised iff bit `d - 1` is set. A
reader moves over the text one column per step; at each step the input is
the 3 dots of the column under it and the label is the character that was
under the reader `delay` steps earlier (steps before `delay` have no label).

Distortions (`RenderOptions`):
- variable speed: each column is held for a random number of steps
  (1..`max_hold`);
- pauses: after a column, with probability `pause_prob`, 1..`max_pause`
  blank columns are inserted (the reader is still over the same character);
- dot noise: each dot is flipped with probability `dot_noise`.
"""

import dataclasses

import numpy as np

from keras_bandrnn.datasets import text8

# Grade-1 English Braille: a-j are dots in the top two rows, k-t add dot 3,
# u v x y z add dots 3 and 6; w (absent from French Braille) is j + dot 6.
_LETTER_DOTS = {
    "a": "1", "b": "12", "c": "14", "d": "145", "e": "15",
    "f": "124", "g": "1245", "h": "125", "i": "24", "j": "245",
    "w": "2456", " ": "",
}
for _a, _k in zip("abcdefghij", "klmnopqrst"):
    _LETTER_DOTS[_k] = _LETTER_DOTS[_a] + "3"
for _a, _u in zip("abcde", "uvxyz"):
    _LETTER_DOTS[_u] = _LETTER_DOTS[_a] + "36"

INPUT_DIM = 3
NUM_CLASSES = text8.VOCAB_SIZE


def to_unicode(text):
    """The text as Unicode Braille characters (`U+2800 + dot bits`)."""
    return "".join(
        chr(0x2800 + sum(1 << (int(d) - 1) for d in _LETTER_DOTS[c])) for c in text
    )


def _cell_columns():
    """`(27, 2, 3)` dots of each alphabet symbol, decoded from its Unicode cell."""
    cols = np.zeros((NUM_CLASSES, 2, 3), np.float32)
    for i, c in enumerate(text8.ALPHABET):
        bits = ord(to_unicode(c)) - 0x2800
        for d in range(6):  # dot d + 1: column d // 3, row d % 3
            cols[i, d // 3, d % 3] = (bits >> d) & 1
    return cols


CELL_COLUMNS = _cell_columns()


@dataclasses.dataclass(frozen=True)
class RenderOptions:
    """How the reader moves and how the dots are distorted.

    Attributes:
        max_hold: Each column is held for 1..`max_hold` steps (uniform);
            1 is constant speed.
        pause_prob: Probability of a pause after each column.
        max_pause: A pause is 1..`max_pause` blank columns.
        dot_noise: Probability of flipping each dot.
    """

    max_hold: int = 1
    pause_prob: float = 0.0
    max_pause: int = 4
    dot_noise: float = 0.0

    def __post_init__(self):
        if self.max_hold < 1 or self.max_pause < 1:
            raise ValueError("`max_hold` and `max_pause` must be >= 1.")
        for name in ("pause_prob", "dot_noise"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"`{name}` must be in [0, 1], got {getattr(self, name)}.")


PRESETS = {
    "constant": RenderOptions(),
    "constant_distorted": RenderOptions(pause_prob=0.05, max_pause=4, dot_noise=0.02),
    "variable": RenderOptions(max_hold=3),
    "variable_distorted": RenderOptions(max_hold=3, pause_prob=0.05, max_pause=4, dot_noise=0.02),
}


def render(ids, rng, options=RenderOptions(), length=None):
    """Renders characters `ids` as a column sequence.

    Returns:
        `(columns, chars)`: float32 `(steps, 3)` dots and int32 `(steps,)`
        index of the character under the reader at each step, cut to
        `length` steps if given.
    """
    ids = np.asarray(ids, np.int64)
    cols = CELL_COLUMNS[ids].reshape(-1, 3)  # 2 columns per character
    chars = np.repeat(ids, 2)
    hold = np.ones(len(cols), np.int64)
    if options.max_hold > 1:
        hold = rng.integers(1, options.max_hold + 1, size=len(cols))
    if options.pause_prob > 0:
        pause = (rng.random(len(cols)) < options.pause_prob) * rng.integers(
            1, options.max_pause + 1, size=len(cols)
        )
        # Column j becomes `hold[j]` copies of itself then `pause[j]` blanks.
        reps = np.stack([hold, pause], 1).ravel()
        cols = np.stack([cols, np.zeros_like(cols)], 1).reshape(-1, 3)
        chars = np.repeat(chars, 2)
    else:
        reps = hold
    cols = np.repeat(cols, reps, axis=0)
    chars = np.repeat(chars, reps)
    if length is not None:
        cols, chars = cols[:length], chars[:length]
    if options.dot_noise > 0:
        flip = rng.random(cols.shape) < options.dot_noise
        cols = np.where(flip, 1.0 - cols, cols).astype(np.float32)
    return cols, chars.astype(np.int32)


def braille_batch(ids, seed, step, batch_size, length, delay, options=RenderOptions()):
    """Batch `step` of Braille reading from random places in text `ids`.

    A deterministic function of `(seed, step)`.

    Returns:
        `(x, y, w)`: float32 `(batch, length, 3)` dots, int32 `(batch, length)`
        labels (the character under the reader `delay` steps earlier) and
        float32 `(batch, length)` weights, 0 for the first `delay` steps.
    """
    if delay < 0 or delay >= length:
        raise ValueError(f"`delay` must be in [0, length); got delay={delay}, length={length}.")
    num_chars = length // 2 + 1  # enough: every column lasts >= 1 step
    if len(ids) <= num_chars:
        raise ValueError(f"The text ({len(ids)} characters) is shorter than one window ({num_chars}).")
    rng = np.random.default_rng([int(seed), int(step)])
    starts = rng.integers(0, len(ids) - num_chars, size=batch_size)
    x = np.zeros((batch_size, length, 3), np.float32)
    chars = np.zeros((batch_size, length), np.int32)
    for b, s in enumerate(starts):
        cols, ch = render(ids[s : s + num_chars], rng, options, length)
        x[b], chars[b] = cols, ch
    y = np.zeros_like(chars)
    y[:, delay:] = chars[:, : length - delay]
    w = np.zeros((batch_size, length), np.float32)
    w[:, delay:] = 1.0
    return x, y, w
