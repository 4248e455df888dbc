"""The TensorFlow Datasets builders, prepared from a local text (no network)."""

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from keras_bandrnn.datasets import braille  # noqa: E402
from keras_bandrnn.datasets import text8  # noqa: E402
from keras_bandrnn.datasets import tfds_builders  # noqa: E402,F401

TEXT = "It was the best of times, it was the worst of times. " * 40


@pytest.fixture()
def manual(tmp_path):
    d = tmp_path / "manual"
    d.mkdir()
    (d / "book.txt").write_text(TEXT)
    return d


def load(name, split, tmp_path, manual):
    return tfds.load(
        name, split=split, data_dir=str(tmp_path / "data"),
        download_and_prepare_kwargs={
            "download_config": tfds.download.DownloadConfig(manual_dir=str(manual))},
    )


def test_text8_builder_splits_the_manual_text(tmp_path, manual):
    cleaned = text8.clean(TEXT)
    parts = []
    for split in ("train", "validation", "test"):
        ds = load("text8", split, tmp_path, manual)
        parts.append("".join(ex["text"].numpy().decode() for ex in ds))
    assert [len(p) for p in parts] == [len(x) for x in text8.split(cleaned)]
    assert "".join(parts) == cleaned


@pytest.mark.parametrize("config", ["constant", "variable_distorted"])
def test_braille_builder_renders_the_text(tmp_path, manual, config):
    ds = load(f"braille/{config}", "train", tmp_path, manual)
    examples = list(tfds.as_numpy(ds))
    train, _, _ = text8.split(text8.clean(TEXT))
    assert "".join(ex["text"].decode() for ex in examples) == train
    for ex in examples:
        ids = text8.encode(ex["text"].decode())
        assert ex["dots"].shape[1] == 3 and len(ex["dots"]) == len(ex["chars"])
        if config == "constant":
            np.testing.assert_array_equal(ex["chars"], np.repeat(ids, 2))
            np.testing.assert_array_equal(ex["dots"].reshape(-1, 2, 3), braille.CELL_COLUMNS[ids])
        else:
            assert len(ex["chars"]) >= 2 * len(ids)
            assert (np.diff(ex["chars"].astype(int)) != 0).sum() <= len(ids)
