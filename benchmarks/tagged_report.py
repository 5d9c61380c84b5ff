"""Theme reports over a tagged archive: `tag-batch --statements`, then `report --tagged`, in one run.

    python -m benchmarks.tagged_report [--shared-data ../shared/data] [--rows 100000] [--no-write]

Scale: N comments resampled from the shared training texts (as the theme benchmark makes them: an order number
each, dates over six months, three channels) as JSONL; `tag-batch --statements` (local engine), `report --tagged`
and, for comparison, `report --input` on the same file, each a child process with its wall time and peak memory.

Sampling: what clustering a large theme on a sample costs in agreement. The negative statements of the SnappFood
train and dev comments (tagged by the sample model) are clustered whole, as a report clusters a pool, and on seeded
samples with the rest assigned to the nearest cluster; the adjusted Rand index between the two labellings (all
statements, "none" a label of its own), the share the sampled run leaves in no cluster, and both times.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import adjusted_rand_score

from benchmarks.baseline import REPO, machine, publish, run_measured

BEGIN, END = "<!-- tagged-report:begin -->", "<!-- tagged-report:end -->"
SEED = 13


def make_archive(shared: Path, rows: int, path: Path) -> None:
    from benchmarks.themes import resampled

    with path.open("w", encoding="utf-8") as handle:
        for record in resampled(shared, rows):
            handle.write(json.dumps({"id": record.id, "text": record.text, "channel": record.channel,
                                     "created_at": record.created_at.isoformat() if record.created_at else None},
                                    ensure_ascii=False) + "\n")


def scale(shared: Path, rows: int, work: Path) -> list[tuple[str, float, float]]:
    source = work / "archive.jsonl"
    make_archive(shared, rows, source)
    steps = [("tag-batch --statements (local)", ["tag-batch", "--input", str(source), "--out", str(work / "tagged"),
                                                 "--model", "sample", "--statements", "-q"]),
             ("report --tagged", ["report", "--tagged", str(work / "tagged"), "--out", str(work / "r-tagged"), "-q"]),
             ("report --input (tags in the report)", ["report", "--input", str(source), "--out", str(work / "r-input"),
                                                      "--model", "sample", "-q"])]
    results = []
    for name, args in steps:
        seconds, peak, _ = run_measured(args)
        results.append((name, seconds, peak))
        print(f"... {name}: {seconds:.0f} s, {peak:.0f} MiB", file=sys.stderr, flush=True)
    notes = json.loads((work / "r-tagged" / "report.json").read_text(encoding="utf-8"))["notes"]
    results.append(("; ".join(n for n in notes if n.startswith("clustered on samples")) or "no sampled clustering",
                    float("nan"), float("nan")))
    return results


def sampling(shared: Path, sizes: list[int]) -> tuple[int, float, int, list[dict[str, Any]]]:
    from bazkhord.data.readers import read_records
    from bazkhord.model.base import NEGATIVE_SENTIMENTS
    from bazkhord.model.folder import load_model
    from bazkhord.model.themes.sampling import cluster_on_sample
    from bazkhord.model.themes.statements import statements_of
    from bazkhord.model.themes.steps import KMeansClusterer, SvdReducer, TfidfEmbedder

    texts = [r.text for split in ("train", "dev") for r in read_records(shared / "snappfood" / f"{split}.jsonl").records]
    tagger = load_model("sample").tagger
    pool = [st.normalised for st in statements_of(tagger, texts) if st.opinion and st.sentiment in NEGATIVE_SENTIMENTS]
    reducer, clusterer = SvdReducer(seed=SEED), KMeansClusterer(max_k=10, min_size=8, seed=SEED)
    started = time.perf_counter()
    whole = clusterer.cluster(reducer.reduce(TfidfEmbedder().embed(pool)))
    whole_seconds = time.perf_counter() - started
    # The yardstick: how far the whole clustering agrees with itself under another seed (k-means is not unique).
    other = KMeansClusterer(max_k=10, min_size=8, seed=SEED + 1).cluster(
        SvdReducer(seed=SEED + 1).reduce(TfidfEmbedder().embed(pool)))
    rows = [{"size": len(pool), "seconds": whole_seconds, "ari": adjusted_rand_score(whole, other),
             "clusters": len(set(other.tolist()) - {-1}), "none": float(np.mean(other == -1)), "seed": SEED + 1}]
    for size in sizes:
        started = time.perf_counter()
        found = cluster_on_sample(pool, TfidfEmbedder(), reducer, clusterer, size, SEED)
        assert found is not None
        labels = found[0]
        rows.append({"size": size, "seconds": time.perf_counter() - started, "ari": adjusted_rand_score(whole, labels),
                     "clusters": len(set(labels.tolist()) - {-1}), "none": float(np.mean(labels == -1))})
        print(f"... sample {size}: ARI {rows[-1]['ari']:.3f}", file=sys.stderr, flush=True)
    return len(pool), whole_seconds, len(set(whole.tolist()) - {-1}), rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path,
                        default=Path(os.environ.get("BAZKHORD_SHARED_DATA", REPO.parent / "shared" / "data")))
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--samples", type=int, nargs="+", default=[1000, 2000, 5000])
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    if not (args.shared_data / "snappfood" / "train.jsonl").exists():
        print(f"no shared data at {args.shared_data} (--shared-data or BAZKHORD_SHARED_DATA)", file=sys.stderr)
        return 2
    pool, whole_seconds, whole_clusters, sampled = sampling(args.shared_data, args.samples)
    with tempfile.TemporaryDirectory(prefix="bazkhord-tagged-report-") as tmp:
        steps = scale(args.shared_data, args.rows, Path(tmp))
    lines = ["## Theme reports over a tagged archive", "",
             f"Measured {datetime.now(UTC):%Y-%m-%d} on {machine()} by `python -m benchmarks.tagged_report "
             f"--rows {args.rows}`, sample model, theme encoder off (TF-IDF).", "",
             f"**Scale**: {args.rows:,} comments resampled from the shared training texts (an order number each, dates "
             "over six months); each command a process of its own (wall time with start-up; peak resident memory).", "",
             "| command | seconds | comments/s | peak memory |", "|---|---:|---:|---:|"]
    for name, seconds, peak in steps[:-1]:
        lines.append(f"| `bazkhord {name}` | {seconds:.0f} | {args.rows / seconds:,.0f} | {peak:,.0f} MiB |")
    tagged_total = steps[0][1] + steps[1][1]
    lines += ["", f"Tagging first and reporting from the parts: {tagged_total:.0f} s against {steps[2][1]:.0f} s for "
                  f"`report --input` ({steps[2][1] / tagged_total:.2f}x); the report itself "
                  f"({steps[1][1]:.0f} s) is what is left on the driver once the tagging runs elsewhere (Ray). "
                  f"{steps[3][0][0].upper() + steps[3][0][1:]}.", "",
              f"**Sampling**: {pool:,} negative statements of the SnappFood train and dev comments, clustered whole "
              f"({whole_clusters} clusters, {whole_seconds:.1f} s: TF-IDF, SVD, k-means with k by silhouette up to 10) "
              "and on seeded samples, the rest assigned to the nearest cluster. The first row is the yardstick: the "
              "whole clustered again under another seed (k-means and the silhouette's k are not unique):", "",
              "| sample | seconds | clusters | in no cluster | agreement with the whole (ARI) |",
              "|---:|---:|---:|---:|---:|"]
    for row in sampled:
        size = f"all, seed {row['seed']}" if "seed" in row else f"{row['size']:,}"
        lines.append(f"| {size} | {row['seconds']:.1f} | {row['clusters']} | {100 * row['none']:.1f}% | "
                     f"{row['ari']:.3f} |")
    lines.append("")
    publish(lines, BEGIN, END, write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
