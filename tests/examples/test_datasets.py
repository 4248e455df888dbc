"""The task data: copy task, Braille rendering, text cleaning and splitting."""

import math
import zipfile

import numpy as np
import pytest

from keras_bandrnn.datasets import braille
from keras_bandrnn.datasets import copy
from keras_bandrnn.datasets import text8


@pytest.mark.parametrize("delay", [1, 7, 100])
def test_copy_batch_layout(delay):
    x, y = copy.copy_batch(3, 5, 16, delay)
    assert x.shape == y.shape == (16, delay + 20)
    symbols = x[:, :10]
    assert ((symbols >= 1) & (symbols <= 8)).all()
    # T - 1 blanks, the delimiter, 10 blanks.
    assert (x[:, 10 : delay + 9] == 0).all()
    assert (x[:, delay + 9] == copy.DELIMITER).all()
    assert (x[:, delay + 10 :] == 0).all()
    np.testing.assert_array_equal(y[:, -10:], symbols)
    assert (y[:, :-10] == 0).all()


def test_copy_batch_is_a_function_of_seed_and_step():
    a = copy.copy_batch(1, 2, 8, 10)
    np.testing.assert_array_equal(a[0], copy.copy_batch(1, 2, 8, 10)[0])
    assert not np.array_equal(a[0], copy.copy_batch(1, 3, 8, 10)[0])
    assert not np.array_equal(a[0], copy.copy_batch(2, 2, 8, 10)[0])


def test_copy_baseline_is_the_memoryless_cross_entropy():
    assert copy.baseline_loss(100) == pytest.approx(10 * math.log(8) / 120)
    # Predicting blank with certainty until the delimiter and uniform over 8
    # categories for the 10 recalled symbols gives exactly that.
    t = 30
    _, y = copy.copy_batch(0, 0, 4, t)
    p = np.zeros((t + 20, copy.NUM_CLASSES))
    p[:-10, 0] = 1.0
    p[-10:, 1:] = 1.0 / 8
    ce = -np.log(p[np.arange(t + 20)[None], y]).mean()
    assert ce == pytest.approx(copy.baseline_loss(t))


@pytest.mark.parametrize("delay", [1, 7, 300])
def test_copy_input_moments_match_generated_data(delay):
    x, _ = copy.copy_batch(seed=3, step=0, batch_size=4000, delay=delay)
    onehot = np.eye(copy.INPUT_DIM)[x].reshape(-1, copy.INPUT_DIM)
    mean, variance = copy.input_moments(delay)
    np.testing.assert_allclose(mean.sum(), 1.0)
    np.testing.assert_allclose(mean, onehot.mean(0), atol=2e-3 / (1 + delay / 100))
    np.testing.assert_allclose(variance, onehot.var(0), atol=2e-3 / (1 + delay / 100))
    with pytest.raises(ValueError, match="delay"):
        copy.input_moments(0)


def test_copy_batch_rejects_bad_arguments():
    with pytest.raises(ValueError, match="delay"):
        copy.copy_batch(0, 0, 4, 0)
    with pytest.raises(ValueError, match="batch_size"):
        copy.copy_batch(0, 0, 0, 5)


def test_braille_unicode_matches_the_standard_letters():
    # U+2801 a, U+2803 b, U+2809 c, U+283A w, U+2835 z, U+2800 space.
    assert braille.to_unicode("abcwz ") == "\u2801\u2803\u2809\u283a\u2835\u2800"
    assert braille.to_unicode("the quick") == "⠞⠓⠑⠀⠟⠥⠊⠉⠅"


def test_braille_cell_columns():
    # "d" is dots 1, 4, 5: left column top; right column top and middle.
    d = braille.CELL_COLUMNS[text8.ALPHABET.index("d")]
    np.testing.assert_array_equal(d, [[1, 0, 0], [1, 1, 0]])
    assert braille.CELL_COLUMNS[0].sum() == 0  # space
    # All 27 symbols have distinct cells.
    assert len({c.tobytes() for c in braille.CELL_COLUMNS}) == 27


def test_braille_constant_speed_render_and_delay():
    ids = text8.encode("hello world")
    cols, chars = braille.render(ids, np.random.default_rng(0))
    assert cols.shape == (22, 3)
    np.testing.assert_array_equal(chars, np.repeat(ids, 2))
    np.testing.assert_array_equal(cols.reshape(11, 2, 3), braille.CELL_COLUMNS[ids])
    text = text8.encode(text8.clean("the quick brown fox jumps over the lazy dog " * 5))
    x, y, w = braille.braille_batch(text, 0, 0, 4, 30, 6)
    assert (w[:, :6] == 0).all() and (w[:, 6:] == 1).all()
    # At constant speed the label at t is the character of column t - delay.
    for b in range(4):
        start = next(s for s in range(len(text)) if np.array_equal(
            braille.CELL_COLUMNS[text[s : s + 15]].reshape(-1, 3), x[b]))
        np.testing.assert_array_equal(y[b, 6:], np.repeat(text[start : start + 15], 2)[:24])


def test_braille_variable_speed_and_pauses():
    ids = text8.encode("abcdefghij")
    opts = braille.RenderOptions(max_hold=3, pause_prob=0.5, max_pause=2)
    cols, chars = braille.render(ids, np.random.default_rng(1), opts)
    assert len(cols) > 20
    # Per character: 2..2*(max_hold + max_pause) steps, and its non-blank
    # columns, runs collapsed, are its cell's non-blank columns in order.
    assert (np.diff(chars) >= 0).all()
    np.testing.assert_array_equal(np.unique(chars), np.sort(ids))
    for i in ids:
        steps = cols[chars == i]
        assert 2 <= len(steps) <= 2 * (3 + 2)
        seen = [tuple(c) for c in steps if c.any()]
        seen = [c for j, c in enumerate(seen) if j == 0 or seen[j - 1] != c]
        cell = [tuple(c) for c in braille.CELL_COLUMNS[i] if c.any()]
        cell = [c for j, c in enumerate(cell) if j == 0 or cell[j - 1] != c]
        assert seen == cell


def test_braille_dot_noise_rate():
    ids = np.zeros(5000, np.int64)  # blank cells: every 1 is a flipped dot
    cols, _ = braille.render(ids, np.random.default_rng(2), braille.RenderOptions(dot_noise=0.1))
    assert cols.mean() == pytest.approx(0.1, abs=0.01)


def test_braille_rejects_bad_options():
    with pytest.raises(ValueError, match="dot_noise"):
        braille.RenderOptions(dot_noise=2.0)
    with pytest.raises(ValueError, match="delay"):
        braille.braille_batch(np.zeros(100, np.uint8), 0, 0, 2, 10, 10)


def test_clean_to_27_symbols():
    assert text8.clean("Hello, World!\n It's 42.") == "hello world it s four two"
    ids = text8.encode(text8.clean("Zebra   crossing"))
    assert text8.decode(ids) == "zebra crossing"
    with pytest.raises(ValueError, match="clean"):
        text8.encode("Upper")


def test_split_text8_sizes_and_proportions():
    a, b, c = text8.split(np.broadcast_to(np.uint8(0), (100_000_000,)))
    assert (len(a), len(b), len(c)) == (90_000_000, 5_000_000, 5_000_000)
    a, b, c = text8.split(np.arange(1000))
    assert (len(a), len(b), len(c)) == (900, 50, 50)
    np.testing.assert_array_equal(np.concatenate([a, b, c]), np.arange(1000))


def test_stream_batches_continue_each_stream():
    ids = np.arange(1000) % 27
    x0, y0 = text8.stream_batch(ids, 0, 4, 10)
    x1, _ = text8.stream_batch(ids, 1, 4, 10)
    np.testing.assert_array_equal(y0[:, :-1], x0[:, 1:])
    np.testing.assert_array_equal(y0[:, -1], x1[:, 0])
    with pytest.raises(ValueError, match="too short"):
        text8.stream_batch(ids[:20], 0, 4, 10)


def test_archive_checksum_is_checked(tmp_path):
    path = tmp_path / "text8.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("text8", " anarchism originated as a term")
    with pytest.raises(ValueError, match="SHA-1"):
        text8.load_text(str(path))


def test_local_text_file_and_pydoc_corpus(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("Call me Ishmael. Some years ago...\n" * 40)
    train, valid, test = text8.load(str(path))
    assert text8.decode(train[:16]) == "call me ishmael "
    assert len(train) + len(valid) + len(test) == len(text8.clean(path.read_text()))
    assert len(text8.load_text("pydoc")) > 300_000
    with pytest.raises(ValueError, match="source"):
        text8.load_text(str(tmp_path / "missing.txt"))
