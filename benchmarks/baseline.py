"""Baseline benchmark: train the TF-IDF tagger on every data set, score it on the held-out test split,
time it, and write the table into docs/BENCHMARKS.md (between this script's markers).

    python -m benchmarks.baseline [--shared-data ../shared/data] [--no-write]

Choices (C, class weights, thresholds) come from the training configs and were made on dev splits; each
test split is read here only to report the final figure. Data sets that are absent are skipped with a
message, never faked.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import f1_score

from bazkhord.data.normalise import normalise
from bazkhord.data.readers import read_records
from bazkhord.evaluation.evaluate import evaluate
from bazkhord.model.folder import LoadedModel, load_model
from bazkhord.model.metrics import headline
from bazkhord.training.config import load_config
from bazkhord.training.train import train

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = REPO / "docs" / "BENCHMARKS.md"
BEGIN, END = "<!-- baseline:begin -->", "<!-- baseline:end -->"

# Reference figures measured here by a plain TF-IDF + logistic regression (the bar to meet).
REFERENCE = {
    ("deepsentipers", "3-class"): {"accuracy": 0.750, "macro_f1": 0.680},
    ("deepsentipers", "5-class"): {"weighted_f1": 0.673},
    ("deepsentipers", "binary"): {"weighted_f1": 0.890},
    ("parsinlu_food", "3+mixed"): {"aspect_micro_f1": 0.846},
}


@dataclass
class Row:
    dataset: str
    task: str
    train_rows: int
    test_rows: int
    figures: dict[str, float]
    train_seconds: float
    notes: list[str] = field(default_factory=list)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def own_peak_mb() -> float:
    """This process's own peak (VmHWM), not ru_maxrss: a spawned worker's ru_maxrss keeps its parent's peak when that
    was larger (below), so a benchmark that loaded an encoder earlier would lend it to every later measurement."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return peak_rss_mb()


# A `bazkhord` command that reports its own peak memory on its last line of standard error. Its own, from /proc's
# VmHWM: ru_maxrss of a process started by fork and exec keeps its parent's peak when that was larger (measured:
# a child of a 600 MiB parent reports 613 MiB), so a benchmark holding a million texts would lend them to the child.
_MEASURED = ("import sys\n"
             "from bazkhord.cli import main\n"
             "code = main(sys.argv[1:])\n"
             "hwm = [line for line in open('/proc/self/status') if line.startswith('VmHWM:')]\n"
             "print('peak_kib', hwm[0].split()[1] if hwm else 'nan', file=sys.stderr)\n"
             "sys.exit(code)\n")


def run_measured(args: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak resident MiB of the command's own process, standard output) of `bazkhord ARGS` run in a
    child process from the repository; raises with the end of its standard error when it fails."""
    import subprocess

    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _MEASURED, *args], cwd=REPO, capture_output=True, text=True,
                          check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"bazkhord {' '.join(args)} failed: {done.stderr[-2000:]}")
    last = done.stderr.strip().splitlines()[-1]
    return seconds, float(last.removeprefix("peak_kib ")) / 1024, done.stdout


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB RAM, Python {platform.python_version()}"


def run_one(
    config_path: Path, overrides: list[str], test_path: Path, models: Path
) -> tuple[LoadedModel, dict[str, Any], float, int]:
    config = load_config(config_path, [*overrides, f"output.models_dir={json.dumps(str(models))}"])
    result = train(config)
    loaded = load_model(result.folder)
    metrics = evaluate(loaded, test_path, "test").metrics
    return loaded, metrics, result.seconds, result.sizes["fitted"]


def binary_figures(loaded: LoadedModel, test_path: Path) -> dict[str, float]:
    return binary(loaded.tagger, read_records(test_path).records)


def binary(tagger: Any, records: Sequence[Any]) -> dict[str, float]:
    """SentiPers binary task as ParsBERT reports it: neutral rows dropped, positive vs negative (the model's
    probabilities of those two compared)."""
    kept = [r for r in records if r.sentiment in ("positive", "negative")]
    proba = tagger.predict_proba([r.text for r in kept])
    columns = [tagger.labels.index("negative"), tagger.labels.index("positive")]
    predicted = np.array(["negative", "positive"])[proba[:, columns].argmax(axis=1)]
    gold = [r.sentiment for r in kept]
    return {
        "accuracy": round(float(np.mean(predicted == np.array(gold))), 4),
        "macro_f1": round(float(f1_score(gold, predicted, average="macro")), 4),
        "weighted_f1": round(float(f1_score(gold, predicted, average="weighted")), 4),
    }


def timings(run: Callable[[list[str]], object], texts: list[str], singles: int = 300,
            before_each: Callable[[], object] = lambda: None) -> dict[str, float]:
    """Batch rate (batches of 64) and single-text latency (the first `singles` texts, one call each) of `run`."""
    before_each()
    started = time.perf_counter()
    for start in range(0, len(texts), 64):
        run(texts[start : start + 64])
    batch_rate = len(texts) / (time.perf_counter() - started)
    before_each()
    latencies = []
    for text in texts[:singles]:
        t0 = time.perf_counter()
        run([text])
        latencies.append((time.perf_counter() - t0) * 1000)
    latencies.sort()
    return {"comments_per_s": round(batch_rate, 1), "p50_ms": round(statistics.median(latencies), 2),
            "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 2)}


def speed(tagger: Any, texts: list[str]) -> dict[str, float]:
    """`tag` on distinct raw texts, with the normaliser's memo emptied first: real feedback rarely repeats, so
    no timing may profit from a text seen before."""
    tagger.tag(["گرم کردن"])  # warm-up: hazm's lazy import
    return timings(tagger.tag, texts, before_each=normalise.cache_clear)


def collect(shared: Path, models: Path, say: Any) -> tuple[list[Row], list[str], dict[str, float] | None]:
    rows: list[Row] = []
    skipped: list[str] = []
    configs = REPO / "training" / "configs"

    say("sample (shipped)")
    sample, metrics, seconds, n = run_one(configs / "sample.toml", [], REPO / "data/samples/feedback_test.jsonl", models)
    rows.append(Row("sample (shipped)", "4-class + aspects", n, metrics["data"]["rows"], metrics["summary"], seconds))
    # Every distinct comment of the sample (train and test), in a fixed shuffled order.
    samples = REPO / "data" / "samples"
    texts = [r.text for name in ("feedback.jsonl", "feedback_test.jsonl") for r in read_records(samples / name).records]
    random.Random(13).shuffle(texts)
    timing = speed(sample.tagger, texts)

    if not shared.is_dir():
        skipped.append(f"{shared} is absent: the public data sets were skipped")
        return rows, skipped, timing
    for name in ("deepsentipers", "parsinlu_food", "parsinlu_movie"):
        folder = shared / name
        if not (folder / "test.jsonl").exists():
            skipped.append(f"{folder} is absent")
            continue
        say(name)
        overrides = [f"data.train={json.dumps(str(folder / 'train.jsonl'))}", f"data.dev={json.dumps(str(folder / 'dev.jsonl'))}"]
        loaded, metrics, seconds, n = run_one(configs / f"{name}.toml", overrides, folder / "test.jsonl", models)
        task = "3-class" if name == "deepsentipers" else "3+mixed"
        seen = metrics["data"]["left_out_seen_in_training"]
        notes = [f"{seen} test rows seen in training left out"] if seen else []
        rows.append(Row(name, task, n, metrics["data"]["rows"], metrics["summary"], seconds, notes))
        if name == "deepsentipers":
            binary = binary_figures(loaded, folder / "test.jsonl")
            rows.append(Row(name, "binary", n, -1, binary, 0.0, ["3-class model, neutral rows dropped"]))
            say("deepsentipers 5-class")
            _, metrics5, seconds5, n5 = run_one(configs / "deepsentipers_5class.toml", overrides, folder / "test.jsonl",
                                                models)
            rows.append(Row(name, "5-class", n5, metrics5["data"]["rows"], headline(metrics5), seconds5))
    return rows, skipped, timing


def render(rows: list[Row], skipped: list[str], timing: dict[str, float] | None, seconds: float) -> str:
    lines = [
        BEGIN,
        "## TF-IDF baseline",
        "",
        f"Measured {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} on {machine()};",
        f"whole run {seconds:.0f} s, peak memory {peak_rss_mb():.0f} MiB.",
        "Written by `python -m benchmarks.baseline` (`make benchmark`); every figure is on the test split,",
        "which no training or tuning step read. `train` counts the comments the saved model was fitted on (train + dev,",
        "after the dev score); `test` counts the rows scored: a test row whose normalised text is also in the training",
        "data is left out (the note says how many). `ref` is the issue's reference (plain TF-IDF + LR, measured here).",
        "",
        "| data set | task | train | test | accuracy | macro-F1 | weighted-F1 | aspect micro-F1 | aspect polarity acc "
        "| train s | ref |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        f = row.figures
        cells = [f.get(k) for k in ("accuracy", "macro_f1", "weighted_f1", "aspect_micro_f1", "aspect_polarity_accuracy")]
        shown = ["" if v is None else f"{v:.3f}" for v in cells]
        reference = REFERENCE.get((row.dataset, row.task), {})
        ref = ", ".join(f"{k} {v:.3f}" for k, v in reference.items())
        test_rows = "" if row.test_rows < 0 else str(row.test_rows)
        note = f" ({'; '.join(row.notes)})" if row.notes else ""
        lines.append(f"| {row.dataset} | {row.task}{note} | {row.train_rows} | {test_rows} | " + " | ".join(shown)
                     + f" | {row.train_seconds:.1f} | {ref} |")
    if timing:
        lines += ["", "Tagging speed of the sample model (sentiment + aspects + evidence, one process, the 1,580 distinct "
                  "sample comments, normaliser memo emptied before each timing):",
                  "", "| batch comments/s | single-comment p50 ms | single-comment p99 ms |", "|---:|---:|---:|",
                  f"| {timing['comments_per_s']} | {timing['p50_ms']} | {timing['p99_ms']} |"]
    for message in skipped:
        lines.append(f"\nSkipped: {message}.")
    lines.append(END)
    return "\n".join(lines)


def write_section(section: str, path: Path = BENCHMARKS_MD, begin: str = BEGIN, end: str = END) -> None:
    """Replace the text between a script's markers (or append it), leaving other scripts' sections alone."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n\n"
    if begin in text and end in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def publish(lines: list[str], begin: str, end: str, write: bool) -> None:
    """Print a benchmark's section (its lines, between its markers) and, unless told not to, write it."""
    section = "\n".join([begin, *lines, end])
    print(section)
    if write:
        write_section(section, BENCHMARKS_MD, begin, end)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path,
                        default=Path(os.environ.get("BAZKHORD_SHARED_DATA", REPO.parent / "shared" / "data")))
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("bazkhord.training.train").setLevel(logging.ERROR)  # duplicate-row lists are in each training report

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bazkhord-bench-") as tmp:
        rows, skipped, timing = collect(args.shared_data, Path(tmp), lambda m: print(f"... {m}", file=sys.stderr, flush=True))
    section = render(rows, skipped, timing, time.perf_counter() - started)
    print(section)
    if not args.no_write:
        write_section(section)
        print(f"\nwrote {BENCHMARKS_MD}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
