"""examples/results.py: RESULTS.md is rebuilt from run directories, and rows
whose run directory is gone are kept as the report recorded them."""

import json
import os

from examples import results


def _copy_result(delay, accuracy):
    return {
        "config": {"delay": delay, "units": 10 * (delay + 20)},
        "parameters": 123, "steps": 7, "eval/loss": 0.5, "eval/baseline_loss": 0.6,
        "eval/recall_loss": 0.25, "eval/recall_accuracy": accuracy, "wall_clock_seconds": 9.0,
    }


def test_rows_come_from_runs_and_survive_their_run_directory(tmp_path):
    exps = [e for e in results.experiments("short") if e[0] == "copy"][:3]
    runs, report = tmp_path / "runs", tmp_path / "RESULTS.md"
    (first, second, third) = [os.path.join(runs, g, n) for g, n, _, _ in exps]
    for out, accuracy in ((first, 0.5), (second, 0.25)):
        os.makedirs(out)
        with open(os.path.join(out, "result.json"), "w") as f:
            json.dump(_copy_result(100, accuracy), f)
    results.write_report(exps, str(runs), str(report), "short")
    text = report.read_text()
    assert "| 50.0 |" in text and "| 25.0 |" in text
    third_cmd = results.command(exps[2][2], exps[2][3], third)
    assert f"- `{third_cmd}`" in text  # pending

    os.remove(os.path.join(first, "result.json"))  # run directory lost
    with open(os.path.join(second, "result.json"), "w") as f:
        json.dump(_copy_result(100, 1.0), f)  # rerun: the new result wins
    results.write_report(exps, str(runs), str(report), "short")
    rebuilt = report.read_text()
    first_cmd = results.command(exps[0][2], exps[0][3], first)
    first_rows = [l for l in rebuilt.splitlines() if l.endswith(f"`{first_cmd}` |")]
    assert len(first_rows) == 1 and "| 50.0 |" in first_rows[0]
    assert "| 25.0 |" not in rebuilt and "| 100.0 |" in rebuilt
    assert f"- `{third_cmd}`" in rebuilt
