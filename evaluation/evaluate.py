"""Score a saved model folder on labelled data; write `metrics_<split>.json` and a confusion matrix PNG.

Rows whose text the model trained on are left out and counted: a metric on seen text is no metric.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bazkhord.data.errors import DataError
from bazkhord.data.normalise import normalise
from bazkhord.data.readers import ColumnMap, read_records
from bazkhord.data.record import FeedbackRecord
from bazkhord.model.base import Tag
from bazkhord.model.folder import DEFAULT_MODELS_DIR, FINGERPRINTS_FILE, LoadedModel, load_model, text_fingerprint
from bazkhord.model.metrics import headline, score_tags

log = logging.getLogger(__name__)

BATCH = 256
Progress = Callable[[int, int], None]  # (comments tagged, of how many)


@dataclass
class EvaluationResult:
    metrics: dict[str, Any]
    metrics_file: Path
    confusion_png: Path | None
    seen_in_training: int


def gold_label(record: FeedbackRecord, field: str) -> str | None:
    if field == "sentiment_score":
        return None if record.sentiment_score is None else str(record.sentiment_score)
    return record.sentiment


def evaluate(
    model: str | Path | LoadedModel,
    data_path: str | Path,
    split: str = "test",
    *,
    root: Path = DEFAULT_MODELS_DIR,
    columns: ColumnMap | None = None,
    write: bool = True,
    progress: Progress = lambda done, total: None,
) -> EvaluationResult:
    """`progress(done, total)` after each batch of comments tagged."""
    loaded = model if isinstance(model, LoadedModel) else load_model(model, root)
    tagger = loaded.tagger
    records = read_records(data_path, columns=columns).records
    fingerprints_path = loaded.folder / FINGERPRINTS_FILE
    seen = 0
    if fingerprints_path.exists():
        known = set(fingerprints_path.read_text(encoding="utf-8").split())
        fresh = [r for r in records if text_fingerprint(normalise(r.text, tagger.normaliser)) not in known]
        seen = len(records) - len(fresh)
        if seen:
            log.warning("%d of %d rows of %s were in the training data and are left out", seen, len(records), data_path)
        records = fresh
    if not records:
        raise DataError(f"{data_path}: no row left to score (all {seen} were training data)")

    field = loaded.manifest["labels"].get("field", "sentiment")
    texts = [r.text for r in records]
    started = time.perf_counter()
    # A transformer folder keeps the TF-IDF baseline it was compared with: every part is scored on the same rows,
    # from one encoder pass ("model": the saved model's own tags).
    tag_batch = getattr(tagger, "variant_tags", None) or (lambda batch: {"model": tagger.tag(batch)})
    by_variant: dict[str, list[Tag]] = {}
    for start in range(0, len(texts), BATCH):
        for name, found in tag_batch(texts[start : start + BATCH]).items():
            by_variant.setdefault(name, []).extend(found)
        progress(min(start + BATCH, len(texts)), len(texts))
    tags = by_variant.pop("model")
    seconds = time.perf_counter() - started
    gold_aspects = [r.aspects for r in records]
    if tagger.taxonomy is not None:
        # Training renamed aspect labels to taxonomy keys through its aliases; the gold labels must be too.
        gold_aspects = [tagger.taxonomy.map_labels(a)[0] if a else a for a in gold_aspects]
    gold = [gold_label(r, field) for r in records]
    metrics = score_tags(tags, gold, gold_aspects, tagger.labels)
    if not metrics:
        raise DataError(f"{data_path}: no row has a {field!r} or an aspects label to score against")
    if by_variant:
        metrics["side_by_side"] = {name: headline(score_tags(found, gold, gold_aspects, tagger.labels))
                                   for name, found in by_variant.items()}
    metrics["model"] = {"name": loaded.name, "version": loaded.version, "kind": loaded.manifest["kind"]}
    metrics["data"] = {"path": str(data_path), "split": split, "rows": len(records), "left_out_seen_in_training": seen}
    metrics["summary"] = headline(metrics)
    metrics["seconds"] = round(seconds, 3)

    metrics_file = loaded.folder / f"metrics_{split}.json"
    confusion_png = None
    if write:
        metrics_file.write_text(json.dumps(metrics, ensure_ascii=False, indent=2), encoding="utf-8")
        if "sentiment" in metrics:
            confusion_png = loaded.folder / f"confusion_{split}.png"
            plot_confusion(metrics["sentiment"], f"{loaded.name} {loaded.version} — {split}", confusion_png)
    return EvaluationResult(metrics, metrics_file, confusion_png, seen)


def tag_all(tag: Callable[[Sequence[str]], list[Tag]], texts: Sequence[str]) -> list[Tag]:
    tags: list[Tag] = []
    for start in range(0, len(texts), BATCH):
        tags.extend(tag(texts[start : start + BATCH]))
    return tags


def plot_confusion(sentiment: dict[str, Any], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = sentiment["labels"]
    matrix = sentiment["confusion_matrix"]
    figure, axes = plt.subplots(figsize=(1.2 * len(labels) + 2.5, 1.1 * len(labels) + 2))
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("gold")
    axes.set_title(title, fontsize=9)
    peak = max((max(row) for row in matrix), default=0)
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            axes.text(j, i, str(value), ha="center", va="center", color="white" if value > peak / 2 else "black")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def format_table(metrics: dict[str, Any]) -> str:
    lines = [f"{'metric':<28}{'value':>8}"]
    for key, value in metrics["summary"].items():
        lines.append(f"{key:<28}{value:>8.3f}")
    if "sentiment" in metrics:
        sentiment = metrics["sentiment"]
        scored = sentiment.get("scored_classes", sentiment["labels"])
        lines.append(f"macro_f1 and weighted_f1 over the {len(scored)} classes of the gold labels: {', '.join(scored)}")
        for label, n in sentiment.get("predicted_outside_gold", {}).items():
            lines.append(f"  {label}: predicted {n} time(s) though the data has no such label (counted as errors)")
        lines.append("")
        lines.append(f"{'class':<12}{'precision':>10}{'recall':>8}{'f1':>8}{'n':>6}")
        for label, row in metrics["sentiment"]["per_class"].items():
            lines.append(f"{label:<12}{row['precision']:>10.3f}{row['recall']:>8.3f}{row['f1']:>8.3f}{row['support']:>6}")
    if "side_by_side" in metrics:
        keys = sorted({k for scores in metrics["side_by_side"].values() for k in scores})
        lines += ["", f"{'side by side':<14}" + "".join(f"{k[:16]:>18}" for k in keys)]
        for name, scores in metrics["side_by_side"].items():
            lines.append(f"{name:<14}" + "".join(f"{scores.get(k, float('nan')):>18.3f}" for k in keys))
    return "\n".join(lines)
