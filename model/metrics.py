"""Metrics for sentiment and aspects. Pure functions over gold and predicted labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from bazkhord.model.base import Tag


def sentiment_metrics(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, and macro/weighted F1 over the classes the gold labels have: a class the data cannot have (a
    4-class model on positive/negative data) would add an F1 of 0 that says nothing about the model. Its
    predictions still count, as errors, and it is listed in `per_class` and the confusion matrix."""
    shown = [label for label in labels if label in set(gold) | set(predicted)] or list(labels)
    scored = [label for label in shown if label in set(gold)] or shown
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, predicted, labels=shown, zero_division=0
    )
    extra = [label for label in shown if label not in scored]
    return {
        "n": len(gold),
        "accuracy": float(accuracy_score(gold, predicted)),
        "macro_f1": float(f1_score(gold, predicted, labels=scored, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(gold, predicted, labels=scored, average="weighted", zero_division=0)),
        "scored_classes": scored,
        "predicted_outside_gold": {label: sum(1 for p in predicted if p == label) for label in extra},
        "per_class": {
            label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for label, p, r, f, s in zip(shown, precision, recall, f1, support, strict=True)
        },
        "labels": list(shown),
        "confusion_matrix": confusion_matrix(gold, predicted, labels=shown).tolist(),
    }


def aspect_metrics(gold: Sequence[dict[str, str] | None], predicted: Sequence[dict[str, str]]) -> dict[str, Any] | None:
    """Detection micro/macro F1 and polarity accuracy, over rows that have aspect labels (gold not None)."""
    rows = [(g, p) for g, p in zip(gold, predicted, strict=True) if g is not None]
    if not rows:
        return None
    aspects = sorted({a for g, p in rows for a in g} | {a for g, p in rows for a in p})
    per_aspect: dict[str, dict[str, float]] = {}
    tp_all = fp_all = fn_all = 0
    for aspect in aspects:
        tp = sum(1 for g, p in rows if aspect in g and aspect in p)
        fp = sum(1 for g, p in rows if aspect not in g and aspect in p)
        fn = sum(1 for g, p in rows if aspect in g and aspect not in p)
        tp_all, fp_all, fn_all = tp_all + tp, fp_all + fp, fn_all + fn
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_aspect[aspect] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
    micro_p = tp_all / (tp_all + fp_all) if tp_all + fp_all else 0.0
    micro_r = tp_all / (tp_all + fn_all) if tp_all + fn_all else 0.0
    supported = [m["f1"] for m in per_aspect.values() if m["support"] > 0]
    matched = [(g[a], p[a]) for g, p in rows for a in g if a in p]
    return {
        "n": len(rows),
        "detection_micro_f1": 2 * micro_p * micro_r / (micro_p + micro_r) if micro_p + micro_r else 0.0,
        "detection_micro_precision": micro_p,
        "detection_micro_recall": micro_r,
        "detection_macro_f1": float(np.mean(supported)) if supported else 0.0,
        # Polarity is judged where the aspect was both labelled and found, so it does not repeat detection.
        "polarity_accuracy": float(np.mean([g == p for g, p in matched])) if matched else 0.0,
        "polarity_n": len(matched),
        "per_aspect": per_aspect,
    }


def score_tags(
    tags: Sequence[Tag], gold_sentiment: Sequence[str | None], gold_aspects: Sequence[dict[str, str] | None],
    labels: Sequence[str],
) -> dict[str, Any]:
    with_sentiment = [i for i, s in enumerate(gold_sentiment) if s is not None]
    result: dict[str, Any] = {}
    if with_sentiment:
        result["sentiment"] = sentiment_metrics(
            [str(gold_sentiment[i]) for i in with_sentiment], [tags[i].sentiment for i in with_sentiment], labels
        )
    aspects = aspect_metrics(gold_aspects, [{a.aspect: a.polarity for a in t.aspects} for t in tags])
    if aspects is not None:
        result["aspects"] = aspects
    return result


def headline(metrics: dict[str, Any]) -> dict[str, float]:
    """The few numbers a table or a manifest shows."""
    out: dict[str, float] = {}
    if "sentiment" in metrics:
        for key in ("accuracy", "macro_f1", "weighted_f1"):
            out[key] = round(metrics["sentiment"][key], 4)
    if "aspects" in metrics:
        out["aspect_micro_f1"] = round(metrics["aspects"]["detection_micro_f1"], 4)
        out["aspect_polarity_accuracy"] = round(metrics["aspects"]["polarity_accuracy"], 4)
    return out
