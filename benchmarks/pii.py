"""Personal-data detectors side by side on data/labels/pii_cases.jsonl: variants of mobile numbers, cards, Sheba
numbers, national ids, e-mails and URLs as people type them (each must be found whole, at its exact span), and
near-misses that must stay (order and tracking numbers, prices, dates, times).

The table was written while bazkhord's detector (bazkhord/data/pii.py) was built, so its own row is an in-sample
figure; the libraries meet the table for the first time. A library missing here is skipped with a message
(`pip install -e '.[pii-bench]'`).

    python -m benchmarks.pii [--no-write]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from benchmarks.baseline import REPO, machine, publish

TABLE = REPO / "data" / "labels" / "pii_cases.jsonl"
BEGIN, END = "<!-- pii:begin -->", "<!-- pii:end -->"
Detector = Callable[[str], list[tuple[int, int]]]


def bazkhord_detector() -> Detector:
    from bazkhord.data.pii import find_pii

    return lambda text: [(s.start, s.end) for s in find_pii(text)]


def fa_redact_detector() -> Detector | str:
    try:
        import fa_redact
    except ImportError:
        return "not installed (pip install fa-redact==0.4.0)"
    return lambda text: [(d.start, d.end) for d in fa_redact.detect(text)]


def decima_detector() -> Detector | str:
    # decima-pii's detector is a 148 MB ONNX model its PII.from_pretrained() fetches from the Hugging Face hub on
    # first use: nothing here may load weights from a hub, and its wheel ships none.
    return "not scorable offline: its model is downloaded from the Hugging Face hub at run time"


def score(detect: Detector, cases: list[dict[str, Any]]) -> dict[str, Any]:
    variants = [c for c in cases if c["pii"]]
    near = [c for c in cases if not c["pii"]]
    whole = partial = 0
    missed_kinds: dict[str, int] = {}
    for case in variants:
        start = case["text"].index(case["pii"])
        spans = detect(case["text"])
        if (start, start + len(case["pii"])) in spans:
            whole += 1
        elif any(s < start + len(case["pii"]) and e > start for s, e in spans):
            partial += 1
        else:
            missed_kinds[case["kind"]] = missed_kinds.get(case["kind"], 0) + 1
    kept = sum(1 for case in near if not detect(case["text"]))
    return {"variants": len(variants), "whole": whole, "partial": partial, "near": len(near), "kept": kept,
            "missed": missed_kinds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-write", action="store_true", help="print the section, leave docs/BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    cases = [json.loads(line) for line in TABLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    lines = ["## Personal-data detectors", "",
             f"Measured {datetime.now(UTC):%Y-%m-%d} on {machine()} by `python -m benchmarks.pii`, on "
             f"`data/labels/pii_cases.jsonl` ({sum(1 for c in cases if c['pii'])} variants, "
             f"{sum(1 for c in cases if not c['pii'])} near-misses). The table was written while bazkhord's detector was "
             "built: its row is in-sample; the libraries meet the table for the first time.", "",
             "| detector | variants masked whole | only in part | missed (by kind) | near-misses kept |",
             "|---|---:|---:|---|---:|"]
    for name, made in (("bazkhord (data/pii.py)", bazkhord_detector()), ("fa-redact 0.4.0", fa_redact_detector()),
                       ("decima-pii 2.4.0", decima_detector())):
        if isinstance(made, str):
            lines.append(f"| {name} | – | – | {made} | – |")
            continue
        s = score(made, cases)
        missed = ", ".join(f"{k} {n}" for k, n in sorted(s["missed"].items())) or "none"
        lines.append(f"| {name} | {s['whole']} of {s['variants']} | {s['partial']} | {missed} | "
                     f"{s['kept']} of {s['near']} |")
    publish(lines, BEGIN, END, not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
