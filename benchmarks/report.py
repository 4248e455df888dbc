"""Shared helpers of the benchmark scripts: timing and the BENCHMARKS.md sections."""

import os
import platform
import statistics
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS_MD = os.path.join(ROOT, "BENCHMARKS.md")
README_MD = os.path.join(ROOT, "README.md")
HEADER = (
    "# Benchmarks\n\n"
    "Each section is written by the script it names; rerun the command to "
    "regenerate it. Times are medians over repeated calls; ratios are taken "
    "within one run, since the machine is shared and noisy.\n"
)


def machine():
    """A one-line description of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def interleaved_medians(candidates, reps, warmup=2, min_time=0.0):
    """Median seconds per call of each `name -> fn`, timed round-robin.

    Interleaving spreads the machine's background noise over all candidates
    alike, which keeps their ratios meaningful.
    """
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    samples = {name: [] for name in candidates}
    start = time.perf_counter()
    rounds = 0
    while rounds < reps or time.perf_counter() - start < min_time:
        for name, fn in candidates.items():
            t = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t)
        rounds += 1
    return {name: statistics.median(s) for name, s in samples.items()}


def write_section(name, body, command, machine_name=None):
    """Replaces (or appends) section `name` of BENCHMARKS.md; `machine_name`
    names the machine that made it, where that is not this one."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = open(BENCHMARKS_MD).read() if os.path.exists(BENCHMARKS_MD) else HEADER
    block = (
        f"{begin}\n{body.rstrip()}\n\nMachine: {machine_name or machine()}. "
        f"Regenerate with `{command}`.\n{end}"
    )
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    with open(BENCHMARKS_MD, "w") as f:
        f.write(text)


def write_readme_tables(name, body):
    """Replaces the README's block `<!-- name:begin -->` ... `<!-- name:end -->`
    (the headline tables of a benchmark) with `body`, so the README shows
    the same run as BENCHMARKS.md. A README without the block is left alone."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = open(README_MD).read()
    if begin not in text or end not in text:
        return
    head, rest = text.split(begin, 1)
    with open(README_MD, "w") as f:
        f.write(f"{head}{begin}\n{body.strip()}\n{end}{rest.split(end, 1)[1]}")


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
