"""text8 and other text corpora as character streams over 27 symbols.

text8 (Mahoney) is the first 10^8 characters of an English Wikipedia dump,
cleaned to lower-case `a-z` and space. The canonical archive is
`http://mattmahoney.net/dc/text8.zip` (31,344,016 bytes, SHA-1 below); the
standard split is the first 90M characters for training, the next 5M for
validation and the last 5M for testing. Any other text file can take its
place: `clean` maps it to the same alphabet and `split` divides it in the
same 90/5/5 proportions.
"""

import hashlib
import os
import re
import zipfile

import numpy as np

URL = "http://mattmahoney.net/dc/text8.zip"
ARCHIVE_SIZE = 31344016
ARCHIVE_SHA1 = "6c70299b93b7e1f927b42cd8f6ac1a31547c7a2e"
TEXT_SHA1 = "0dc3edebc970dcc96137e7deda4d9995af9d93de"
TEXT8_SPLIT = (90_000_000, 5_000_000, 5_000_000)

ALPHABET = " abcdefghijklmnopqrstuvwxyz"
VOCAB_SIZE = len(ALPHABET)

_NON_ALPHA = re.compile(r"[^a-z]+")
_LOOKUP = np.full(256, -1, np.int8)
for _i, _c in enumerate(ALPHABET):
    _LOOKUP[ord(_c)] = _i


def clean(text):
    """Maps any text to the 27-symbol alphabet the way text8 was made.

    Lower-cases, spells digits out as words (as text8 does), turns every run
    of other characters (punctuation, whitespace, accents) into one space.
    """
    digits = "zero one two three four five six seven eight nine".split()
    text = text.lower()
    text = re.sub(r"[0-9]", lambda m: " " + digits[int(m.group())] + " ", text)
    return _NON_ALPHA.sub(" ", text).strip()


def encode(text):
    """Indices (uint8) of a cleaned text in `ALPHABET`."""
    ids = _LOOKUP[np.frombuffer(text.encode("ascii"), np.uint8)]
    if (ids < 0).any():
        raise ValueError("`text` has characters outside a-z and space; pass it through `clean` first.")
    return ids.astype(np.uint8)


def decode(ids):
    return "".join(ALPHABET[int(i)] for i in np.asarray(ids).ravel())


def split(ids):
    """`(train, valid, test)`: text8's 90M/5M/5M split for text8 itself, the
    same 90/5/5 proportions for any other length."""
    n = len(ids)
    if n == sum(TEXT8_SPLIT):
        a, b = TEXT8_SPLIT[0], TEXT8_SPLIT[0] + TEXT8_SPLIT[1]
    else:
        a, b = int(n * 0.9), int(n * 0.95)
    return ids[:a], ids[a:b], ids[b:]


def _sha1(path):
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_archive(path):
    """The text of a text8 zip archive, after checking its SHA-1."""
    digest = _sha1(path)
    if digest != ARCHIVE_SHA1:
        raise ValueError(
            f"`{path}` is not the canonical text8.zip: SHA-1 {digest}, expected {ARCHIVE_SHA1}."
        )
    with zipfile.ZipFile(path) as z:
        return z.read("text8").decode("ascii")


def download(cache_dir=None):
    """Downloads (once) the canonical text8.zip with Keras's file cache and
    returns its path, after checking its SHA-1."""
    import keras

    path = keras.utils.get_file("text8.zip", URL, cache_dir=cache_dir, cache_subdir="datasets")
    read_archive(path)  # checks the checksum
    return path


def pydoc_text():
    """An English corpus every CPython ships: the Python reference topics of
    `pydoc_data.topics` (about 390k characters once cleaned), in key order."""
    from pydoc_data import topics

    return clean(" ".join(topics.topics[k] for k in sorted(topics.topics)))


def load_text(source=None, cache_dir=None):
    """The cleaned text of `source`.

    Args:
        source: `None` or `"text8"` downloads the canonical archive; `"pydoc"`
            is `pydoc_text()` (offline); a path to a `.zip` reads it as
            text8's archive (checksum checked); any other path is read as
            UTF-8 text and cleaned with `clean`.
    """
    if source in (None, "text8"):
        return read_archive(download(cache_dir))
    if source == "pydoc":
        return pydoc_text()
    if not os.path.exists(source):
        raise ValueError(f"`source` {source!r} is neither 'text8', 'pydoc' nor an existing file.")
    if source.endswith(".zip"):
        return read_archive(source)
    with open(source, encoding="utf-8", errors="ignore") as f:
        return clean(f.read())


def load(source=None, cache_dir=None):
    """`(train, valid, test)` index arrays of `source` (see `load_text`)."""
    return split(encode(load_text(source, cache_dir)))


def stream_batch(ids, step, batch_size, length):
    """Truncated-BPTT window `step` of `batch_size` parallel streams.

    The corpus is cut into `batch_size` contiguous streams; window `step`
    is characters `step * length ..` of each stream (wrapping around), so
    consecutive steps continue each stream and an RNN can carry its state.

    Returns:
        `(x, y)` int32 arrays `(batch_size, length)`: `y` is `x` shifted by
        one character.
    """
    stream_len = (len(ids) - 1) // batch_size
    if stream_len < length:
        raise ValueError(
            f"The text ({len(ids)} characters) is too short for batch_size="
            f"{batch_size} streams of windows of length {length}."
        )
    windows = stream_len // length
    start = (int(step) % windows) * length
    offsets = np.arange(batch_size)[:, None] * stream_len + start + np.arange(length + 1)[None]
    chunk = np.asarray(ids, np.int32)[offsets]
    return chunk[:, :-1], chunk[:, 1:]


def windows_per_epoch(num_chars, batch_size, length):
    return ((num_chars - 1) // batch_size) // length
