"""Evidence benchmark: how the transformer tagger finds the clauses that speak of each aspect, read from the
comment's own encoder pass ("spans", the default) or by encoding every clause again on its own ("clauses"), side by
side on the shipped sample's test file: where the evidence points, polarity, and what a tag() costs.

The sample is assembled from hand-written clauses, each with its aspect (`data/samples/make_sample.py`), so the clause
that carries an aspect is known: a comment's clauses are labelled with the aspects whose written clause they are part
of, and an evidence clause is right when it carries the aspect it is given for. Only test comments whose every labelled
aspect's clause is found in the text (noise can break the match) and that split into two clauses or more are judged.

    python -m benchmarks.evidence [--model sample-e5] [--data MODEL=FILE ...] [--repeats 3] [--no-write]

`--data` adds real labelled comments (a shared set's dev split, with a model trained on that set): no clause is
known to carry an aspect there, so only polarity, agreement between the two and time are compared.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bazkhord.model.metrics import aspect_metrics
from benchmarks.baseline import REPO, machine, publish

SAMPLE_DIR = REPO / "data" / "samples"
TEST_FILE = SAMPLE_DIR / "feedback_test.jsonl"
BEGIN, END = "<!-- evidence:begin -->", "<!-- evidence:end -->"
BATCH = 16  # as the service's batcher gathers them under load
MODES = ("clauses", "spans")


def written_clauses() -> dict[str, list[str]]:
    """aspect -> every clause the sample generator can write for it (all polarities, product-family prefix dropped)."""
    spec = importlib.util.spec_from_file_location("make_sample", SAMPLE_DIR / "make_sample.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {aspect: [f.split("|", 1)[-1] for texts in by_polarity.values() for f in texts]
            for aspect, by_polarity in module.FRAGMENTS.items()}


def skeleton(text: str, tagger: Any) -> str:
    """The normalised text without spaces and half-spaces, so noise in spacing does not hide a match."""
    from bazkhord.data.normalise import normalise
    from bazkhord.model.segments import without_gaps

    return without_gaps(normalise(text, tagger.normaliser))


@dataclass
class Judged:
    """One test comment: its clauses (raw spans) and the aspects each clause carries."""

    row: dict[str, Any]
    clauses: list[tuple[int, int]]
    carries: list[set[str]]


def judged_rows(rows: list[dict[str, Any]], tagger: Any) -> list[Judged]:
    from bazkhord.model.segments import split_segments

    written = {a: [skeleton(c, tagger) for c in clauses] for a, clauses in written_clauses().items()}
    out = []
    for row in rows:
        if not row.get("aspects"):
            continue
        segments = split_segments(row["text"])
        if len(segments) < 2:
            continue
        whole = skeleton(row["text"], tagger)
        found = {a: [c for c in written[a] if c and c in whole] for a in row["aspects"]}
        if not all(found.values()):
            continue
        parts = [skeleton(s.text, tagger) for s in segments]
        carries = [{a for a, cs in found.items() if any(p and (p in c or c in p) for c in cs)} for p in parts]
        if all(any(a in c for c in carries) for a in row["aspects"]):
            out.append(Judged(row, [(s.start, s.end) for s in segments], carries))
    return out


def judge(judged: list[Judged], tags: list[Any]) -> dict[str, float]:
    """Over (comment, labelled aspect found by the tagger) pairs: share whose evidence holds a clause carrying the
    aspect, share of evidence clauses that carry it, clauses per aspect."""
    hits, precision, sizes = [], [], []
    for item, tag in zip(judged, tags, strict=True):
        for aspect in tag.aspects:
            if aspect.aspect not in item.row["aspects"]:
                continue
            right = [any(span.start < e and span.end > s and aspect.aspect in item.carries[k]
                         for k, (s, e) in enumerate(item.clauses)) for span in aspect.evidence]
            hits.append(any(right))
            precision.append(float(np.mean(right)) if right else 0.0)
            sizes.append(len(aspect.evidence))
    return {"pairs": len(hits), "hit": float(np.mean(hits)), "precise": float(np.mean(precision)),
            "clauses": float(np.mean(sizes))}


def timed(tagger: Any, texts: list[str], batch: int = BATCH) -> float:
    """Milliseconds per comment, tag() in batches of `batch`."""
    started = time.perf_counter()
    for i in range(0, len(texts), batch):
        tagger.tag(texts[i : i + batch])
    return 1000 * (time.perf_counter() - started) / len(texts)


def compare(tagger: Any, rows: list[dict[str, Any]], judged: list[Judged] | None, repeats: int) -> dict[str, Any]:
    """Both modes on `rows`: evidence judged on `judged` (when known), polarity, agreement and time per comment."""
    texts = [r["text"] for r in rows]
    saved = tagger.meta.evidence
    tagger.tag(texts[:BATCH])  # warm-up
    results: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        tagger.meta.evidence = mode
        tags = tagger.tag(texts)
        polarity = aspect_metrics([r.get("aspects") for r in rows], [{a.aspect: a.polarity for a in t.aspects} for t in tags])
        results[mode] = {"tags": tags, "polarity": polarity["polarity_accuracy"] if polarity else float("nan"),
                         "polarity_n": polarity["polarity_n"] if polarity else 0, "ms": float("inf"),
                         **(judge(judged, tagger.tag([j.row["text"] for j in judged])) if judged is not None else {})}
    for _ in range(repeats):  # interleaved, so both modes see the same noise from the machine
        for mode in MODES:
            tagger.meta.evidence = mode
            results[mode]["ms"] = min(results[mode]["ms"], timed(tagger, texts))
    tagger.meta.evidence = saved
    pairs = [(a, b) for ta, tb in zip(results["clauses"]["tags"], results["spans"]["tags"], strict=True)
             for a in ta.aspects for b in tb.aspects if a.aspect == b.aspect]
    return {"modes": results, "aspects": len(pairs),
            "same": float(np.mean([[e.start for e in a.evidence] == [e.start for e in b.evidence] for a, b in pairs])),
            "same_polarity": float(np.mean([a.polarity == b.polarity for a, b in pairs])),
            "n": len(texts), **placed(tagger, texts)}


def placed(tagger: Any, texts: list[str]) -> dict[str, int]:
    """Comments of two clauses or more, and how many of them the one pass scored clause by clause (the others, cut
    off at the length limit, go through the second pass)."""
    normalised = tagger.normalise(texts)
    segments, clauses = tagger.clause_spans(texts, normalised)
    scored = tagger.forward_texts(normalised, clauses).clause_presence
    return {"multi": sum(len(parts) > 1 for parts in segments.values()), "placed": len(scored)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sample-e5", help="model name or folder (a transformer tagger)")
    parser.add_argument("--models-dir", type=Path, default=REPO / "artifacts" / "models")
    parser.add_argument("--data", action="append", default=[], metavar="MODEL=FILE",
                        help="also compare on a labelled file (e.g. a shared set's dev split) with a model trained "
                             "on that set: polarity, agreement and time (repeat)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per mode, interleaved; the best is kept")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    from bazkhord.data.readers import read_records

    extra = []
    for item in args.data:
        model, _, path = item.partition("=")
        if not model or not path or not Path(path).is_file():
            parser.error(f"--data {item!r}: expected MODEL=FILE with an existing file")
        extra.append((model, Path(path)))
    rows = [json.loads(line) for line in TEST_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    tagger, version = transformer(parser, args.model, args.models_dir)
    judged_items = judged_rows(rows, tagger)
    sample = compare(tagger, rows, judged_items, args.repeats)
    others = []
    for model, path in extra:
        other, other_version = transformer(parser, model, args.models_dir)
        records = read_records(path).records
        others.append((other, other_version, path, compare(other, [{"text": r.text, "aspects": r.aspects} for r in records],
                                                     None, args.repeats)))

    judged = sample["modes"]["spans"]["pairs"]
    lines = [f"## Evidence: from the comment's own pass or from a second one (`{args.model}`)", "",
             f"Measured {datetime.now(UTC):%Y-%m-%d} on {machine()} by `python -m benchmarks.evidence`, "
             f"model folder `{version}`.",
             f"The shipped sample's {sample['n']} test comments ({sample['multi']} of them with two clauses or more, "
             f"{sample['placed']} of those placed whole in the one pass). "
             "*clauses*: every clause of a multi-clause comment with an aspect is encoded again on its own to score "
             "it; *spans* (the default): each clause is scored from the comment's own pass, the mean of its tokens' "
             f"states through the aspect head. Evidence is judged on the {len(judged_items)} multi-clause test comments "
             "whose labelled aspects' written clauses are found in the text (the sample is assembled from clauses "
             f"written per aspect), over the {judged} labelled aspects the model finds there: *right* = the evidence "
             "holds a clause that carries the aspect, *precise* = share of evidence clauses that carry it. Polarity "
             "accuracy over every "
             f"labelled aspect found; tag() in batches of {BATCH}, best of {args.repeats} interleaved runs.", "",
             "| evidence | right | precise | clauses per aspect | aspect polarity accuracy | tag() ms per comment |",
             "|---|---:|---:|---:|---:|---:|"]
    for mode in MODES:
        r = sample["modes"][mode]
        lines.append(f"| {mode} | {r['hit']:.3f} | {r['precise']:.3f} | {r['clauses']:.2f} | {r['polarity']:.3f} | "
                     f"{r['ms']:.1f} |")
    lines += ["", agreement(sample)]
    if others:
        lines += ["", "Other labelled files (no clause is known to carry an aspect there: polarity, agreement and time):",
                  "", "| model | file | comments (multi-clause, placed whole) | evidence | aspect polarity accuracy (n) | "
                  "tag() ms per comment |", "|---|---|---:|---|---:|---:|"]
        for _, other_version, path, result in others:
            for mode in MODES:
                r = result["modes"][mode]
                counts = f"{result['n']} ({result['multi']}, {result['placed']})"
                lines.append(f"| {other_version} | {path.parent.name}/{path.name} | {counts} | {mode} | "
                             f"{r['polarity']:.3f} ({r['polarity_n']}) | {r['ms']:.1f} |")
        lines += [""] + [f"{path.parent.name}/{path.name}: {agreement(result)}" for _, _, path, result in others]
        lines += ["", "Models: " + "; ".join(dict.fromkeys(described(t, v) for t, v, _, _ in others)) + "."]
    lines.append("")
    publish(lines, BEGIN, END, write=not args.no_write)
    return 0


def transformer(parser: argparse.ArgumentParser, model: str, models_dir: Path) -> tuple[Any, str]:
    """The model's tagger and "name version"; a clear error where it is missing or not a transformer with aspects."""
    from bazkhord.model.folder import ModelFolderError, load_model
    from bazkhord.model.transformer import TransformerTagger

    try:
        loaded = load_model(model, models_dir)
    except ModelFolderError as error:
        parser.error(f"{error} (train it first: make train)")
    if not isinstance(loaded.tagger, TransformerTagger) or not loaded.tagger.meta.aspects:
        parser.error(f"{model} is not a transformer tagger with aspects")
    return loaded.tagger, f"{loaded.manifest['name']} {loaded.manifest['version']}"


def described(tagger: Any, version: str) -> str:
    """What a model is, for readers of the section: its folder, encoder and training rows."""
    rows = tagger.manifest.get("training_rows", "?")
    return f"`{version}` ({Path(tagger.meta.base_model).name} fine-tuned on {rows} rows, {tagger.meta.precision()})"


def agreement(result: dict[str, Any]) -> str:
    modes = result["modes"]
    return (f"The two choose the same evidence for {100 * result['same']:.1f}% of the {result['aspects']} aspects "
            f"found, and the same polarity for {100 * result['same_polarity']:.1f}%; *spans* takes "
            f"{modes['spans']['ms'] / modes['clauses']['ms']:.2f}x the time of *clauses*.")


if __name__ == "__main__":
    raise SystemExit(main())
