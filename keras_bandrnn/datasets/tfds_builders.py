"""TensorFlow Datasets builders for text8 and Braille reading.

Importing this module registers the builders `text8` and `braille` with
TensorFlow Datasets (it needs `pip install tensorflow-datasets`):

```python
import tensorflow_datasets as tfds
import keras_bandrnn.datasets.tfds_builders  # noqa: F401  (registers them)

# text8: downloads http://mattmahoney.net/dc/text8.zip (SHA-1 checked), or
# uses text8.zip / any *.txt placed in the manual directory.
train = tfds.load("text8", split="train")
# Braille: one builder config per reading condition.
ds = tfds.load("braille/variable_distorted", split="validation",
               download_and_prepare_kwargs={"download_config":
                   tfds.download.DownloadConfig(manual_dir="~/my_texts")})
```

text8 examples are consecutive chunks of the cleaned text (`"text"`, in
order: shuffling is disabled, so concatenating a split gives back the 90M /
5M / 5M characters). Braille examples are rendered chunks: `"dots"`
`(steps, 3)` uint8 columns, `"chars"` `(steps,)` the index (in
`keras_bandrnn.datasets.text8.ALPHABET`) of the character under the reader
at each step, and `"text"`; apply a delay by shifting `"chars"`. Braille
renders the text files in the manual directory, or, without one, CPython's
`pydoc_data` reference text (`text8.pydoc_text()`).
"""

import os

import numpy as np
import tensorflow_datasets as tfds

from keras_bandrnn.datasets import braille
from keras_bandrnn.datasets import text8

_MANUAL = """\
Optional. Put `text8.zip` (the canonical archive) or one or more UTF-8 `*.txt`
files in the manual directory (`download_config=tfds.download.DownloadConfig(
manual_dir=...)`); text files are cleaned to a-z and space, concatenated in
file-name order and split 90/5/5.
"""


def _manual_text(dl_manager):
    """The cleaned text of the manual directory, or None if there is none."""
    try:
        manual = dl_manager.manual_dir
    except (AssertionError, ValueError):
        return None
    names = sorted(os.listdir(manual))
    if "text8.zip" in names:
        return text8.load_text(os.path.join(manual, "text8.zip"))
    texts = [text8.load_text(os.path.join(manual, n)) for n in names if n.endswith(".txt")]
    if not texts:
        raise ValueError(f"The manual directory {manual} has neither text8.zip nor *.txt files.")
    return " ".join(texts)


def _splits(text):
    train, valid, test = text8.split(text)
    return {"train": train, "validation": valid, "test": test}


class Text8(tfds.core.GeneratorBasedBuilder):
    """text8: 10^8 characters of English Wikipedia over a-z and space."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL
    CHUNK = 100_000  # characters per example

    def _info(self):
        return self.dataset_info_from_configs(
            description="text8 (Mahoney): the first 10^8 characters of an English "
            "Wikipedia dump cleaned to 27 symbols; 90M/5M/5M split.",
            features=tfds.features.FeaturesDict({"text": tfds.features.Text()}),
            homepage="http://mattmahoney.net/dc/textdata.html",
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        text = _manual_text(dl_manager)
        if text is None:
            text = text8.read_archive(os.fspath(dl_manager.download(text8.URL)))
        return {name: self._generate_examples(part) for name, part in _splits(text).items()}

    def _generate_examples(self, text):
        for i in range(0, len(text), self.CHUNK):
            yield i // self.CHUNK, {"text": text[i : i + self.CHUNK]}


class BrailleConfig(tfds.core.BuilderConfig):
    """A reading condition: `keras_bandrnn.datasets.braille.RenderOptions`."""

    def __init__(self, *, options, chars_per_example=100, seed=0, **kwargs):
        super().__init__(version=tfds.core.Version("1.0.0"), **kwargs)
        self.options = options
        self.chars_per_example = chars_per_example
        self.seed = seed


class Braille(tfds.core.GeneratorBasedBuilder):
    """Text rendered as 6-dot Braille cells read one 3-dot column per step."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL
    BUILDER_CONFIGS = [
        BrailleConfig(name=name, description=f"Reading condition {name}: {opts}.", options=opts)
        for name, opts in sorted(braille.PRESETS.items())
    ]

    def _info(self):
        return self.dataset_info_from_configs(
            description="Braille reading: text as 6-dot cells (Unicode Braille "
            "dot bits), 2 columns of 3 dots per cell; labels are the character "
            "under the reader.",
            features=tfds.features.FeaturesDict({
                "dots": tfds.features.Tensor(shape=(None, braille.INPUT_DIM), dtype=np.uint8),
                "chars": tfds.features.Tensor(shape=(None,), dtype=np.int32),
                "text": tfds.features.Text(),
            }),
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        text = _manual_text(dl_manager)
        if text is None:
            text = text8.pydoc_text()
        return {name: self._generate_examples(name, part) for name, part in _splits(text).items()}

    def _generate_examples(self, split, text):
        cfg = self.builder_config
        split_index = ("train", "validation", "test").index(split)
        ids = text8.encode(text)
        for i in range(0, len(ids), cfg.chars_per_example):
            chunk = ids[i : i + cfg.chars_per_example]
            rng = np.random.default_rng([cfg.seed, split_index, i])
            dots, chars = braille.render(chunk, rng, cfg.options)
            yield i, {"dots": dots.astype(np.uint8), "chars": chars, "text": text8.decode(chunk)}
