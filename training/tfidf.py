"""The TF-IDF tagger as a config describes it: the fast profile, and the baseline trained beside a transformer.

Both `train` and the transformer's trainer fit it, so it lives apart from either.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


def fit_tfidf(config: TrainConfig, splits: dict[str, list[FeedbackRecord]], taxonomy: Taxonomy | None,
              say: Say) -> tuple[Tagger, dict[str, Any]]:
    """The TF-IDF tagger: fit on train, score on dev, then (refit_on_dev) fit again on train + dev."""
    tagger = tfidf_tagger(config, taxonomy)
    train_rows = splits["train"]
    has_aspects = any(r.aspects is not None for r in train_rows)

    def fit(rows: list[FeedbackRecord]) -> None:
        say(f"fitting on {len(rows)} comments ({'sentiment + aspects' if has_aspects else 'sentiment'})")
        fit_rows(tagger, rows, config.data.label, has_aspects)

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
    return tagger, metrics


def dev_confusion(scores: dict[str, Any]) -> dict[str, Any]:
    """The dev confusion matrix (rows: gold, columns: predicted), kept in the manifest: theme reports correct the
    shares they count on new traffic, whose class balance is rarely the training data's, with it (adjusted
    classify and count, model/themes/prevalence.py)."""
    sentiment = scores.get("sentiment")
    if not sentiment:
        return {}
    return {"dev_confusion": {"labels": sentiment["labels"], "matrix": sentiment["confusion_matrix"]}}
