"""The TF-IDF tagger as a config describes it: the fast profile, and the baseline trained beside a transformer.

Both `train` and the transformer's trainer fit it, so it lives apart from either.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bazkhord.data.record import FeedbackRecord
from bazkhord.data.taxonomy import Taxonomy
from bazkhord.model.linear import TfidfParams
from bazkhord.model.metrics import headline, score_tags
from bazkhord.model.tagger import Tagger
from bazkhord.training.config import TrainConfig

Say = Callable[[str], None]


def labels_of(records: Sequence[FeedbackRecord], label: str) -> list[str | None]:
    if label == "sentiment_score":
        return [None if r.sentiment_score is None else str(r.sentiment_score) for r in records]
    return [r.sentiment for r in records]


def tfidf_tagger(config: TrainConfig, taxonomy: Taxonomy | None) -> Tagger:
    """The TF-IDF tagger as [model] describes it (also the baseline trained beside a transformer)."""
    m = config.model
    return Tagger(
        normaliser=config.normaliser_config,
        C=m.C,
        class_weight=None if m.class_weight == "none" else m.class_weight,
        aspect_C=m.aspect_C,
        aspect_threshold=m.aspect_threshold,
        features=TfidfParams(tuple(m.word_ngrams), tuple(m.char_ngrams), m.min_df, m.max_features),  # type: ignore[arg-type]
        taxonomy=taxonomy,
    )


def fit_rows(tagger: Tagger, rows: list[FeedbackRecord], label: str, with_aspects: bool) -> None:
    tagger.fit([r.text for r in rows], labels_of(rows, label), [r.aspects for r in rows] if with_aspects else None)


@dataclass
class SelfTraining:
    """What self-training took from the comments without labels, for the training report."""

    threshold: float
    unlabelled: int = 0
    used: int = 0
    by_label: dict[str, int] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)  # the comments trained on (recorded as seen)

    def to_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "unlabelled": self.unlabelled, "used": self.used,
                "by_label": self.by_label}

    def summary(self) -> str:
        labels = ", ".join(f"{label} {n}" for label, n in sorted(self.by_label.items()))
        return (f"self-training: {self.used} of {self.unlabelled} comments without labels read with probability >= "
                f"{self.threshold} and trained on with that label ({labels or 'none'})")


def confident_rows(tagger: Tagger, texts: Sequence[str], threshold: float, label: str) -> list[FeedbackRecord]:
    """The comments the fitted tagger labels with at least `threshold` probability, as rows with that label."""
    if not texts:
        return []
    proba = tagger.predict_proba(texts)
    labels = tagger.labels
    rows = []
    for text, p in zip(texts, proba, strict=True):
        best = int(p.argmax())
        if p[best] >= threshold:
            value = labels[best]
            rows.append(FeedbackRecord(text=text, sentiment_score=int(value)) if label == "sentiment_score"
                        else FeedbackRecord(text=text, sentiment=value))
    return rows


def fit_tfidf(config: TrainConfig, splits: dict[str, list[FeedbackRecord]], taxonomy: Taxonomy | None,
              say: Say, unlabelled: Sequence[str] | None = None) -> tuple[Tagger, dict[str, Any], SelfTraining | None]:
    """The TF-IDF tagger: fit on train, score on dev, then (refit_on_dev) fit again on train + dev. With comments
    without labels (`unlabelled`, none of them in a split) and `model.self_training`, each fit is followed by a
    second on its rows plus the comments it labelled confidently; the dev figure is the second's. Given an empty
    list, the report says that none was there."""
    tagger = tfidf_tagger(config, taxonomy)
    train_rows = splits["train"]
    has_aspects = any(r.aspects is not None for r in train_rows)
    threshold = config.model.self_training
    selftrained = SelfTraining(threshold, len(unlabelled)) if unlabelled is not None and threshold else None

    def fit(rows: list[FeedbackRecord]) -> None:
        say(f"fitting on {len(rows)} comments ({'sentiment + aspects' if has_aspects else 'sentiment'})")
        fit_rows(tagger, rows, config.data.label, has_aspects)
        if selftrained is not None and unlabelled:
            confident = confident_rows(tagger, unlabelled, threshold, config.data.label)
            selftrained.used, selftrained.texts = len(confident), [r.text for r in confident]
            selftrained.by_label = dict(Counter(str(v) for v in labels_of(confident, config.data.label)))
            say(f"fitting again with {len(confident)} of {len(unlabelled)} comments without labels, as the model "
                f"read them (probability >= {threshold})")
            fit_rows(tagger, rows + confident, config.data.label, has_aspects)

    fit(train_rows)
    metrics: dict[str, Any] = {}
    if splits["dev"]:
        say(f"scoring on {len(splits['dev'])} dev comments")
        dev = splits["dev"]
        dev_scores = score_tags(tagger.tag([r.text for r in dev]), labels_of(dev, config.data.label),
                                [r.aspects for r in dev], tagger.labels)
        metrics = {"dev": headline(dev_scores), **dev_confusion(dev_scores)}
        if config.data.refit_on_dev:
            # The dev figure above belongs to the train-only fit; the saved model also learns from dev.
            metrics["dev_scored_before_refit"] = True
            fit(train_rows + dev)
    else:
        say("no dev comments: skipping the dev score")
    return tagger, metrics, selftrained


def dev_confusion(scores: dict[str, Any]) -> dict[str, Any]:
    """The dev confusion matrix (rows: gold, columns: predicted), kept in the manifest: theme reports correct the
    shares they count on new traffic, whose class balance is rarely the training data's, with it (adjusted
    classify and count, model/themes/prevalence.py)."""
    sentiment = scores.get("sentiment")
    if not sentiment:
        return {}
    return {"dev_confusion": {"labels": sentiment["labels"], "matrix": sentiment["confusion_matrix"]}}
