"""The example scripts: each --quick run, and a killed run resumed."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from examples import braille
from examples import common
from examples import copy_task
from examples import text8

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_script(module, *args):
    common.FLAGS.unparse_flags()
    common.FLAGS([module.__name__, "--verbose=0", *args])
    return module.run()


def read_log(output_dir):
    with open(os.path.join(output_dir, "train_log.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_copy_task_quick_learns_to_copy(tmp_path):
    result = run_script(copy_task, "--quick", f"--output_dir={tmp_path}")
    with open(tmp_path / "result.json") as f:
        assert json.load(f) == json.loads(json.dumps(result))
    assert result["config"]["model"] == "closed_fixed"
    assert result["config"]["delay"] == 20
    # The fixed-shift ring buffer recalls the symbols far above chance (1/8)
    # and beats the memoryless baseline.
    assert result["eval/recall_accuracy"] > 0.9
    assert result["eval/loss"] < result["eval/baseline_loss"]
    assert os.listdir(tmp_path / "tensorboard")
    assert len(read_log(tmp_path)) == result["steps"]


@pytest.mark.parametrize("model", ["gru", "band"])
def test_braille_quick(tmp_path, model):
    result = run_script(braille, "--quick", f"--model={model}", f"--output_dir={tmp_path}")
    assert 0.0 <= result["valid/char_accuracy"] <= 1.0
    assert np.isfinite(result["test/loss"])
    # Better than the uniform guess over 27 characters after a few steps.
    assert result["valid/loss"] < np.log(27)


@pytest.mark.parametrize("model", ["gru", "cgru"])
def test_text8_quick_on_a_local_file(tmp_path, model):
    corpus = tmp_path / "corpus.txt"
    rng = np.random.default_rng(0)
    words = ["the", "band", "matrix", "shift", "register", "of", "a", "cell"]
    corpus.write_text(" ".join(rng.choice(words, 6000)))
    out = tmp_path / "run"
    result = run_script(text8, "--quick", f"--model={model}", "--gate_dim=8",
                        "--sparsity_bias=-0.5", f"--text={corpus}", f"--output_dir={out}")
    assert result["config"]["train_chars"] == int(0.9 * len(corpus.read_text()))
    assert result["valid/bpc"] < np.log2(27)
    assert result["valid/chars_per_second"] > 0
    if model == "cgru":
        assert 0.0 <= result["test/gate_sparsity"] <= 1.0
    else:
        assert "test/gate_sparsity" not in result


@pytest.mark.parametrize("model", ["gru", "lstm", "closed", "closed_fixed"])
def test_budget_picks_the_largest_model_that_fits(model):
    units = common.units_for_budget(model, 80_000, 3, 27, half_width=32)
    build = lambda u: braille.build_model(model, u, half_width=32)  # noqa: E731
    assert build(units).count_params() <= 80_000 < build(units + 1).count_params()


def test_killed_run_resumes_at_the_same_step_with_the_same_data(tmp_path):
    args = ["--quick", "--steps=40", "--checkpoint_every=5", "--eval_every=100"]
    reference = tmp_path / "reference"
    run_script(copy_task, *args, f"--output_dir={reference}")
    ref_log = read_log(reference)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "examples.copy_task", *args, "--verbose=0", f"--output_dir={killed}"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    log_path = killed / "train_log.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if log_path.exists() and len(log_path.read_text().splitlines()) >= 13:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = read_log(killed)
    assert 13 <= len(before) < 40, "the run was not killed mid-way"
    saved = sorted(int(n.split("-")[1].split(".")[0]) for n in os.listdir(killed / "checkpoints")
                   if n.startswith("ckpt-") and n.endswith(".index"))
    assert saved and saved[-1] % 5 == 0 and saved[-1] <= len(before)

    result = run_script(copy_task, *args, f"--output_dir={killed}")
    after = read_log(killed)[len(before):]
    # The resumed run starts at the last checkpoint and runs to the end...
    assert [r["step"] for r in after] == list(range(saved[-1], 40))
    # ...on the same batches as the uninterrupted run, with the same losses
    # (model and optimizer state restored).
    for r in before + after:
        assert r["batch"] == ref_log[r["step"]]["batch"]
    for r in after:
        np.testing.assert_allclose(r["loss"], ref_log[r["step"]]["loss"], rtol=1e-4, atol=1e-6)
    assert result["steps"] == 40
