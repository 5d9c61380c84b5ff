"""Finglish benchmark: sentiment on bazkhord's own labelled Finglish comments (data/labels/finglish_sentiment.jsonl,
80 comments written for this, 40 dev and 40 test), each model read twice: as trained before transliteration
(the normaliser leaves Latin letters alone) and with Finglish written in Persian script first.

The transliteration table (data/finglish_fa.tsv) was written before the set, the test half after the table was
frozen; the table's coverage of each half's Latin words is printed so the reader can judge how much it knew.

    python -m benchmarks.finglish [--model sample --model sample-e5] [--no-write]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bazkhord.model.metrics import sentiment_metrics
from benchmarks.baseline import REPO, machine, publish

SET_FILE = REPO / "data" / "labels" / "finglish_sentiment.jsonl"
BEGIN, END = "<!-- finglish:begin -->", "<!-- finglish:end -->"


def load_set(path: Path = SET_FILE) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def coverage(rows: list[dict[str, Any]]) -> float:
    """Share of the Latin words of `rows` that bazkhord's own table holds (the rest go through the package)."""
    from bazkhord.data.finglish import table

    words = [w.lower() for r in rows for w in re.findall(r"[A-Za-z]+", r["text"])]
    return sum(1 for w in words if w in table()) / max(1, len(words))


def score(model: str, models_dir: Path, rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """{"before"|"after": {split: {"accuracy", "macro_f1", "n"}}} for one model."""
    from bazkhord.model.folder import load_model

    loaded = load_model(model, models_dir)
    tagger = loaded.tagger
    trained_with = tagger.normaliser
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name, finglish in (("before", False), ("after", True)):
        tagger.normaliser = dataclasses.replace(trained_with, finglish=finglish)
        results[name] = {}
        for split in ("dev", "test"):
            part = [r for r in rows if r["split"] == split]
            predicted = tagger.predict([r["text"] for r in part])
            m = sentiment_metrics([r["sentiment"] for r in part], predicted, tagger.labels)
            results[name][split] = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "n": len(part)}
    tagger.normaliser = trained_with
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="model name or folder (repeat); default: sample, sample-e5")
    parser.add_argument("--models-dir", type=Path, default=REPO / "artifacts" / "models")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    rows = load_set()
    models = args.model or [m for m in ("sample", "sample-e5") if (args.models_dir / m).exists()]
    if not models:
        parser.error(f"no model under {args.models_dir}: train one first (make train, or bazkhord train --config "
                     "training/configs/sample.toml)")
    header = "| model | split | n | accuracy before | accuracy after | macro-F1 before | macro-F1 after |"
    lines = ["## Finglish (Persian typed in Latin letters)", "",
             f"Measured {datetime.now(UTC):%Y-%m-%d} on {machine()} by `python -m benchmarks.finglish`.",
             "Sentiment on `data/labels/finglish_sentiment.jsonl` (80 comments written for bazkhord, 40 dev and 40 "
             "test, 4 classes as the sample models), each model as trained on Persian script: *before* leaves "
             "Latin letters alone (normaliser version 1), *after* writes Finglish in Persian script first "
             "(`data/finglish.py`). The table of feedback words was written before the set and frozen before "
             "its test half; it holds " + ", ".join(f"{100 * coverage([r for r in rows if r['split'] == s]):.0f}% "
                                                     f"of the {s} half's Latin words" for s in ("dev", "test"))
             + " (the rest go through the `finglish` package's letter rules).", "", header,
             "|---|---|---:|---:|---:|---:|---:|"]
    for model in models:
        result = score(model, args.models_dir, rows)
        for split in ("dev", "test"):
            b, a = result["before"][split], result["after"][split]
            lines.append(f"| {model} | {split} | {a['n']} | {b['accuracy']:.3f} | {a['accuracy']:.3f} | "
                         f"{b['macro_f1']:.3f} | {a['macro_f1']:.3f} |")
    lines.append("")
    publish(lines, BEGIN, END, write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
