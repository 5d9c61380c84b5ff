"""tag-batch benchmark: the local and the Ray engine against the single-process `tag()` rate, in one run.

Builds N comments (the shipped sample's texts, cycled, with an id each) as JSONL, then measures, one after the
other on the same machine:
  - `tag()`: one process, the whole list through `tagger.tag` in batches (the reference rate);
  - `tag-batch --engine local` (a child process, so its peak memory is its own);
  - `tag-batch --engine ray` with 1 and 2 actors on a local Ray instance (`ray.init`), started by the run.
Writes the "tag-batch" section of docs/BENCHMARKS.md.

    python -m benchmarks.batch [--rows 50000] [--model sample] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.baseline import REPO, machine, publish, run_measured

BEGIN, END = "<!-- tag-batch:begin -->", "<!-- tag-batch:end -->"
SAMPLE = REPO / "data" / "samples" / "feedback.jsonl"


def make_input(path: Path, rows: int) -> None:
    texts = [json.loads(line)["text"] for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    with path.open("w", encoding="utf-8") as handle:
        for i in range(rows):
            # A suffix per row, so no two rows are the same text (the normaliser's memo must not flatter anyone).
            handle.write(json.dumps({"id": f"c{i}", "text": f"{texts[i % len(texts)]} #{i}"}, ensure_ascii=False) + "\n")


def reference_rate(model: str, models_dir: Path, path: Path, batch: int) -> float:
    """Comments/s of `tagger.tag` in this process, reading included: the bar the engines are held to."""
    from bazkhord.data.normalise import normalise
    from bazkhord.model.folder import load_model

    tagger = load_model(model, models_dir).tagger
    texts = [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()]
    normalise.cache_clear()
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        tagger.tag(texts[start : start + batch])
    return len(texts) / (time.perf_counter() - started)


def run_engine(args: list[str]) -> tuple[float, float, str]:
    """(seconds, peak RSS MiB of the command's own process, summary line) of one `bazkhord tag-batch` run."""
    seconds, peak, stdout = run_measured(["tag-batch", *args, "-q"])
    return seconds, peak, stdout.splitlines()[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--ray-rows", type=int, help="rows for the Ray runs (the first ones; default: --rows)")
    parser.add_argument("--model", default="sample")
    parser.add_argument("--models-dir", type=Path, default=REPO / "artifacts" / "models")
    parser.add_argument("--part-rows", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--vcpu-hour-usd", type=float, default=0.04,
                        help="price of one vCPU for an hour, for the cost per million (an assumption, not measured)")
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    ray_rows = min(args.ray_rows or args.rows, args.rows)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bazkhord-batch-") as tmp:
        work = Path(tmp)
        source = work / "comments.jsonl"
        make_input(source, args.rows)
        common = ["--model", args.model, "--models-dir", str(args.models_dir), "--part-rows", str(args.part_rows),
                  "--batch-size", str(args.batch_size)]
        reference = reference_rate(args.model, args.models_dir, source, args.batch_size)
        results = []  # (engine, workers, rows, command seconds, peak MiB, summary line)
        seconds, peak, line = run_engine(["--input", str(source), *common, "--out", str(work / "local")])
        results.append(("local", 1, args.rows, seconds, peak, line))
        if not args.no_ray:
            ray_source = source
            if ray_rows < args.rows:
                ray_source = work / "ray-comments.jsonl"
                make_input(ray_source, ray_rows)  # the first rows of the same input
            for actors in (1, 2):
                seconds, peak, line = run_engine(["--input", str(ray_source), *common, "--out", str(work / f"ray-{actors}"),
                                               "--engine", "ray", "--cpus", "2", "--actors", str(actors)])
                results.append(("ray", actors, ray_rows, seconds, peak, line))
    lines = ["## tag-batch: local and Ray engines", "",
             f"Measured {datetime.now(UTC):%Y-%m-%d} on {machine()} by `python -m benchmarks.batch "
             f"--rows {args.rows}" + (f" --ray-rows {ray_rows}" if ray_rows < args.rows else "")
             + f" --part-rows {args.part_rows}`: comments made from the sample's texts, each unique, model "
             f"`{args.model}`, parts of {args.part_rows:,} rows, {args.batch_size} comments a model call. Rates count "
             "the whole command (interpreter start and imports, model load, reading, tagging, writing); *job only* is "
             "the time the command itself reports (from loading the model, or starting Ray, to the last part), "
             "without the seconds of starting Python and importing libraries that do not grow with the input. "
             f"`tag()` is one process tagging the same {args.rows:,} texts in a loop, from memory: the reference.", "",
             "| engine | workers | comments | command, s | comments/s | vs tag() | job only, s | comments/s | vs tag() "
             "| peak memory |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
             f"| `tag()` in one process | 1 | {args.rows:,} | | | | {args.rows / reference:.1f} | {reference:,.0f} | "
             "1.00 | |"]
    job_rates: dict[tuple[str, int], float] = {}
    for engine, workers, rows, seconds, peak, line in results:
        rate = rows / seconds
        job = float(re.search(r" in ([\d.]+)s ", line).group(1))  # type: ignore[union-attr]
        job_rates[engine, workers] = rows / job
        memory = f"{peak:,.0f} MiB" + (" (driver; actors apart)" if engine == "ray" else "")
        lines.append(f"| `tag-batch --engine {engine}` | {workers} | {rows:,} | {seconds:.1f} | {rate:,.0f} | "
                     f"{rate / reference:.2f} | {job:.1f} | {rows / job:,.0f} | {rows / job / reference:.2f} | "
                     f"{memory} |")
    lines += ["", f"Peak memory is the child process's maximum resident size (parts of {args.part_rows:,} rows bound "
                  "it, whatever the input's size).", ""]
    lines += scaling_table(job_rates, cores, args.vcpu_hour_usd)
    publish(lines, BEGIN, END, write=not args.no_write)
    return 0


def scaling_table(rates: dict[tuple[str, int], float], cores: int, usd: float) -> list[str]:
    """Workers against throughput and the cost of a million comments: measured rows, and 4 Ray workers projected
    from them (this machine has no 4 cores to measure on)."""
    rows = [("local", 1, rates["local", 1], 1, "measured")]
    if ("ray", 1) in rates and ("ray", 2) in rates:
        one, two = rates["ray", 1], rates["ray", 2]
        efficiency = two / (2 * one)  # what a second worker adds, as a share of the first
        rows += [("ray", 1, one, cores, "measured"), ("ray", 2, two, cores, "measured"),
                 ("ray", 4, 2 * two, 4, f"projected: two nodes like this one, each at its measured 2-worker rate "
                                        f"(a second worker here adds {efficiency:.2f} of the first: the driver and "
                                        "Ray's own processes share the 2 cores)")]
    lines = [f"Scaling and cost per million comments (job-only rates; cost at an assumed ${usd:.2f} per vCPU-hour, "
             "for the vCPUs the run holds: the local engine uses one, a Ray run here the machine's "
             f"{cores}, the projection a 4-vCPU machine or cluster):", "",
             "| engine | workers | comments/s | a million in | vCPUs held | vCPU-hours per million | cost per million | "
             "figure |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for engine, workers, rate, vcpus, how in rows:
        hours = 1_000_000 / rate / 3600
        lines.append(f"| {engine} | {workers} | {rate:,.0f} | {hours * 60:.1f} min | {vcpus} | {hours * vcpus:.2f} | "
                     f"${hours * vcpus * usd:.3f} | {how} |")
    return [*lines, ""]


if __name__ == "__main__":
    raise SystemExit(main())
