"""Turn a config and data into a saved model folder. No model code lives here."""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from data.errors import DataError
from data.normalise import NormaliserConfig, normalise
from data.readers import ColumnMap, read_records
from data.record import FeedbackRecord, RejectedRow
from data.split import check_disjoint, data_hash, deduplicate, split_by_hash
from data.taxonomy import Taxonomy, load_taxonomy
from evaluation.metrics import headline, score_tags
from model.folder import FINGERPRINTS_FILE, TRAINING_REPORT_FILE, save_model, text_fingerprint
from model.linear import TfidfParams
from model.tagger import Tagger
from training.config import TrainConfig

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass
class TrainResult:
    folder: Path
    metrics: dict[str, Any]
    rejected: list[RejectedRow]
    sizes: dict[str, int]
    seconds: float
    summaries: list[str] = field(default_factory=list)


def _labelled(records: Sequence[FeedbackRecord], label: str) -> list[str | None]:
    if label == "sentiment_score":
        return [None if r.sentiment_score is None else str(r.sentiment_score) for r in records]
    return [r.sentiment for r in records]


def load_training_data(
    config: TrainConfig, normaliser: NormaliserConfig, progress: Progress
) -> tuple[dict[str, list[FeedbackRecord]], list[RejectedRow], list[str]]:
    columns = ColumnMap.from_dict(config.data.columns)
    progress(f"reading {config.data.train}")
    train_read = read_records(config.data.train, columns=columns, max_bad_fraction=config.data.max_bad_fraction)
    rejected = list(train_read.rejected)
    summaries = [train_read.summary()]
    train = deduplicate(train_read.records, normaliser)
    rejected += train.dropped
    if config.data.dev:
        progress(f"reading {config.data.dev}")
        dev_read = read_records(config.data.dev, columns=columns, max_bad_fraction=config.data.max_bad_fraction)
        summaries.append(dev_read.summary())
        dev = deduplicate(dev_read.records, normaliser)
        rejected += dev_read.rejected + dev.dropped
        splits = {"train": train.records, "dev": dev.records}
        seen = {normalise(r.text, normaliser) for r in train.records}
        overlap = [r for r in dev.records if normalise(r.text, normaliser) in seen]
        if overlap:
            # The dev copy is dropped, never the training one: dev must be unseen text.
            rejected += [RejectedRow(*r.location(), "text", "also in the training file; dropped from dev")
                         for r in overlap]
            ids = {id(r) for r in overlap}
            splits["dev"] = [r for r in dev.records if id(r) not in ids]
    else:
        by_hash = split_by_hash(train.records, config.data.dev_fraction, 0.0, seed=str(config.seed), config=normaliser)
        splits = {"train": by_hash["train"], "dev": by_hash["dev"]}
    check_disjoint(splits, normaliser)
    labels = _labelled(splits["train"], config.data.label)
    if not any(label is not None for label in labels):
        raise DataError(f"{config.data.train}: no row has a {config.data.label!r} label to train on")
    return splits, rejected, summaries


def apply_taxonomy(taxonomy: Taxonomy, records: Sequence[FeedbackRecord]) -> list[str]:
    """Rename aspect labels to taxonomy keys through its aliases; say which names it does not know."""
    unknown: Counter[str] = Counter()
    for record in records:
        if record.aspects:
            record.aspects, names = taxonomy.map_labels(record.aspects)
            unknown.update(names)
    if not unknown:
        return []
    listed = ", ".join(f"{name} ({n})" for name, n in unknown.most_common())
    log.warning("aspect names not in the taxonomy, kept as they are: %s", listed)
    return [f"aspect names not in the taxonomy, kept as they are: {listed}"]


def train(config: TrainConfig, progress: Progress | None = None) -> TrainResult:
    """Train, score on dev, and write a model folder. The same data and seed give the same model."""
    say = progress or (lambda message: log.info(message))
    started = time.perf_counter()
    random.seed(config.seed)
    np.random.seed(config.seed)
    normaliser = config.normaliser_config
    splits, rejected, summaries = load_training_data(config, normaliser, say)
    for row in rejected:
        log.warning("skipped %s", row)

    taxonomy = load_taxonomy(config.data.taxonomy) if config.data.taxonomy else None
    if taxonomy is not None:
        summaries += apply_taxonomy(taxonomy, [r for rows in splits.values() for r in rows])
    unlabelled = sum(1 for label in _labelled(splits["train"], config.data.label) if label is None)
    if unlabelled:
        summaries.append(f"{unlabelled} training rows have no {config.data.label!r} label: they train aspects only")
    m = config.model
    tagger = Tagger(
        normaliser=normaliser,
        C=m.C,
        class_weight=None if m.class_weight == "none" else m.class_weight,
        aspect_C=m.aspect_C,
        aspect_threshold=m.aspect_threshold,
        features=TfidfParams(tuple(m.word_ngrams), tuple(m.char_ngrams), m.min_df, m.max_features),  # type: ignore[arg-type]
        taxonomy=taxonomy,
    )
    train_rows = splits["train"]
    has_aspects = any(r.aspects is not None for r in train_rows)

    def fit(rows: list[FeedbackRecord]) -> None:
        say(f"fitting on {len(rows)} comments ({'sentiment + aspects' if has_aspects else 'sentiment'})")
        tagger.fit([r.text for r in rows], _labelled(rows, config.data.label),
                   [r.aspects for r in rows] if has_aspects else None)

    fit(train_rows)
    metrics: dict[str, Any] = {}
    if splits["dev"]:
        say(f"scoring on {len(splits['dev'])} dev comments")
        dev = splits["dev"]
        dev_scores = score_tags(tagger.tag([r.text for r in dev]), _labelled(dev, config.data.label),
                                [r.aspects for r in dev], tagger.labels)
        metrics = {"dev": headline(dev_scores)}
        if config.data.refit_on_dev:
            # The dev figure above belongs to the train-only fit; the saved model also learns from dev.
            metrics["dev_scored_before_refit"] = True
            train_rows = train_rows + dev
            fit(train_rows)
    else:
        say("no dev comments: skipping the dev score")
    say("saving model folder")
    sizes = {**{name: len(rows) for name, rows in splits.items()}, "fitted": len(train_rows)}
    report = {
        "files": summaries,
        "sizes": sizes,
        "rejected": [{"file": r.file, "row": r.row, "field": r.field, "reason": r.reason} for r in rejected],
    }
    fingerprints = sorted({text_fingerprint(normalise(r.text, normaliser)) for r in train_rows})
    folder = save_model(
        tagger,
        Path(config.output.models_dir),
        m.name,
        config_text=config.to_toml(),
        data_hash=data_hash(train_rows),
        training_rows=len(train_rows),
        metrics=metrics,
        label_field=config.data.label,
        extra_files={TRAINING_REPORT_FILE: report, FINGERPRINTS_FILE: "\n".join(fingerprints) + "\n"},
    )
    return TrainResult(folder, metrics, rejected, sizes, time.perf_counter() - started, summaries)
