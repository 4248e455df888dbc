"""Runs the experiment tables one after another and writes RESULTS.md.

    python -m examples.results --group=copy          # run what is missing, then write
    python -m examples.results --write_only          # only rebuild RESULTS.md
    python -m examples.results --group=braille --protocol=full

Each experiment is one call of an example script with its own output
directory under `--runs_dir`; an experiment whose `result.json` exists is not
run again (and a killed one resumes from its checkpoint), so the command can
be repeated until everything is done. RESULTS.md gets one table per group,
with the command of every row; experiments without a result are listed as
pending with their commands.
"""

import json
import os
import shlex
import subprocess
import sys
import time

from absl import app
from absl import flags

flags.DEFINE_enum("group", None, ["copy", "braille", "text"], "Run only this group.")
flags.DEFINE_enum("protocol", "short", ["short", "full"],
                  "short: a few minutes per run on 2 CPU cores; full: the longer protocol.")
flags.DEFINE_string("runs_dir", "runs", "Where the runs go.")
flags.DEFINE_string("only", None, "Run only the experiments whose name starts with this.")
flags.DEFINE_boolean("write_only", False, "Do not run anything; rebuild RESULTS.md.")
flags.DEFINE_string("results_file", "RESULTS.md", "The report.")
FLAGS = flags.FLAGS

COPY_MODELS = {
    "lstm": ["--model=lstm", "--units=128"],
    "gru": ["--model=gru", "--units=128"],
    "band": ["--model=band", "--shift=10"],
    "closed": ["--model=closed", "--shift=10"],
    "closed_fixed": ["--model=closed_fixed"],
    # The fixed-shift ring buffer with only the readout trained, on the raw
    # one-hot inputs (T <= 1000 only: the readout has to learn to ignore the T
    # stored blanks, which takes hundreds of updates and more as T grows) and
    # on standardized inputs (the stored blanks are about 0).
    "closed_fixed_ring": ["--model=closed_fixed", "--freeze_rnn", "--learning_rate=0.01"],
    "closed_fixed_ring_std": ["--model=closed_fixed", "--freeze_rnn", "--standardize_inputs",
                              "--learning_rate=0.01"],
}
# The order the copy runs are made in (short protocol): what this machine
# manages first.
COPY_ORDER = [(100, m) for m in COPY_MODELS] + [(1000, "closed_fixed_ring"), (500, "closed_fixed_ring"),
              (500, "lstm"), (500, "gru"), (500, "closed_fixed"), (500, "band"), (500, "closed")]
COPY_ORDER += [(t, "closed_fixed_ring_std") for t in (500, 1000, 2000, 5000)]
COPY_ORDER += [(t, m) for t in (1000, 2000, 5000) for m in COPY_MODELS
               if (t, m) not in COPY_ORDER and m != "closed_fixed_ring"]
BRAILLE_MODELS = ["gru", "lstm", "simple_rnn", "factorized", "band", "grid", "closed", "closed_fixed"]
TEXT_MODELS = {
    "gru": ["--model=gru"],
    **{f"cgru_block{g}_s{s}": ["--model=cgru", "--gating=block", f"--gate_dim={g}", f"--sparsity_bias={s}"]
       for g in (16, 32, 64) for s in ("0", "-0.25", "-0.5", "-0.75")},
    **{f"cgru_rank{g}": ["--model=cgru", "--gating=unstructured", f"--gate_dim={g}"]
       for g in (16, 32, 64)},
}


def experiments(protocol):
    """`[(group, name, module, args)]` of a protocol."""
    full = protocol == "full"
    out = []
    for t, name in COPY_ORDER:
        steps = 60 if name == "closed_fixed_ring_std" else {100: 300, 500: 200}.get(t, 150)
        steps *= 4 if full else 1
        batch = {2000: 8, 5000: 4}.get(t, 16)  # the state sequence has to fit in memory
        out.append(("copy", f"T{t}_{name}", "examples.copy_task",
                    [*COPY_MODELS[name], f"--delay={t}", f"--batch_size={batch}", f"--steps={steps}",
                     f"--eval_every={max(steps // 3, 1)}", "--checkpoint_every=20"]))
    braille_steps = 4000 if full else 200
    conditions = [(r, d) for r in ("constant", "constant_distorted", "variable",
                                   "variable_distorted") for d in (5, 20)]
    # Short protocol: the two extreme conditions first.
    conditions.sort(key=lambda c: c not in (("constant", 5), ("variable_distorted", 20)))
    for render, delay in conditions:
        if True:
            for model in BRAILLE_MODELS:
                out.append(("braille", f"{render}_d{delay}_{model}", "examples.braille",
                            [f"--model={model}", f"--render={render}", f"--delay={delay}",
                             f"--steps={braille_steps}", f"--eval_every={braille_steps}",
                             "--checkpoint_every=100"]))
            out.append(("braille", f"{render}_d{delay}_big_closed_fixed", "examples.braille",
                        ["--model=closed_fixed", "--units=5888", f"--render={render}",
                         f"--delay={delay}", f"--steps={braille_steps}",
                         f"--eval_every={braille_steps}", "--checkpoint_every=100"]))
    text_steps = 20000 if full else 300
    corpus = "text8" if full else "pydoc"
    first = ["gru", "cgru_block32_s0", "cgru_block32_s-0.5", "cgru_rank32"]
    for name in first + [n for n in TEXT_MODELS if n not in first]:
        args = TEXT_MODELS[name]
        out.append(("text", name, "examples.text8",
                    [*args, f"--text={corpus}", "--units=256" if not full else "--units=1024",
                     f"--steps={text_steps}", f"--eval_every={text_steps}",
                     "--checkpoint_every=100"]))
    return out


def command(module, args, output_dir):
    return " ".join(["python", "-m", module, *map(shlex.quote, args), f"--output_dir={output_dir}"])


def load_result(output_dir):
    path = os.path.join(output_dir, "result.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def fmt(v, digits=3):
    return "" if v is None else f"{v:.{digits}f}"


def table(rows, header):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def recorded_rows(path):
    """`{command: row cells}` of the tables already in the report at `path`.

    Run directories (checkpoints, logs) are not kept in the repository, so a
    row whose run directory is gone stays as the report recorded it.
    """
    rows = {}
    if not os.path.exists(path):
        return rows
    with open(path) as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if line.startswith("|") and cells[-1].startswith("`python -m "):
                rows[cells[-1].strip("`")] = cells
    return rows


def write_report(exps, runs_dir, path, protocol):
    sections = {"copy": [], "braille": [], "text": []}
    pending = {"copy": [], "braille": [], "text": []}
    recorded = recorded_rows(path)
    for group, name, module, args in exps:
        out = os.path.join(runs_dir, group, name)
        cmd = command(module, args, out)
        r = load_result(out)
        if r is None and cmd in recorded:
            sections[group].append(recorded[cmd])
            continue
        if r is None:
            pending[group].append(f"- `{cmd}`")
            continue
        c = r["config"]
        if group == "copy":
            sections[group].append([
                c["delay"], name.split("_", 1)[1], c["units"], r["parameters"], r["steps"],
                fmt(r["eval/loss"], 4), fmt(r["eval/baseline_loss"], 4),
                fmt(r["eval/recall_loss"]), fmt(100 * r["eval/recall_accuracy"], 1),
                fmt(r["wall_clock_seconds"], 0), f"`{cmd}`"])
        elif group == "braille":
            sections[group].append([
                c["render"], c["delay"], name.split(f"_d{c['delay']}_", 1)[1], c["units"],
                r["parameters"], r["steps"], fmt(100 * r["valid/char_accuracy"], 1),
                fmt(100 * r["test/char_accuracy"], 1), fmt(r["wall_clock_seconds"], 0), f"`{cmd}`"])
        else:
            sections[group].append([
                name, c["units"], r["parameters"], r["steps"], fmt(r["valid/bpc"]),
                fmt(r["test/bpc"]), fmt(r.get("test/gate_sparsity")),
                fmt(r["test/chars_per_second"], 0), fmt(r["wall_clock_seconds"], 0), f"`{cmd}`"])
    headers = {
        "copy": ["T", "model", "units", "params", "steps", "loss", "baseline", "recall loss",
                 "recall acc %", "wall s", "command"],
        "braille": ["render", "delay", "model", "units", "params", "steps", "valid char acc %",
                    "test char acc %", "wall s", "command"],
        "text": ["model", "units", "params", "updates", "valid bpc", "test bpc",
                 "gate sparsity", "inference chars/s", "wall s", "command"],
    }
    with open(os.path.join(os.path.dirname(__file__), "RESULTS_intro.md")) as f:
        intro = f.read()
    parts = [intro.replace("{protocol}", protocol)]
    titles = {"copy": "## Copy task", "braille": "## Braille", "text": "## Character language model"}
    for group in ("copy", "braille", "text"):
        parts.append(titles[group])
        if sections[group]:
            parts.append(table(sections[group], headers[group]))
        if pending[group]:
            parts.append(f"Pending ({len(pending[group])} runs, not run on this machine yet):\n\n"
                         + "\n".join(pending[group]))
    with open(path, "w") as f:
        f.write("\n\n".join(parts) + "\n")


def main(argv):
    del argv
    exps = experiments(FLAGS.protocol)
    if not FLAGS.write_only:
        for group, name, module, args in exps:
            if FLAGS.group and group != FLAGS.group or FLAGS.only and not name.startswith(FLAGS.only):
                continue
            out = os.path.join(FLAGS.runs_dir, group, name)
            if load_result(out) is not None:
                continue
            print(f"[{time.strftime('%H:%M:%S')}] {command(module, args, out)}", flush=True)
            subprocess.run([sys.executable, "-m", module, *args, "--verbose=0", f"--output_dir={out}"],
                           check=False)
    write_report(exps, FLAGS.runs_dir, FLAGS.results_file, FLAGS.protocol)


if __name__ == "__main__":
    app.run(main)
