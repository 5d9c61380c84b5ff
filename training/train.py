"""Turn a config and data into a saved model folder. No model code lives here."""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bazkhord.data.errors import DataError
from bazkhord.data.normalise import NormaliserConfig, normalise
from bazkhord.data.pii import mask_pii
from bazkhord.data.progress import QUIET, Progress
from bazkhord.data.readers import ColumnMap, read_records
from bazkhord.data.record import FeedbackRecord, RejectedRow
from bazkhord.data.split import check_disjoint, data_hash, deduplicate, split_by_hash
from bazkhord.data.taxonomy import Taxonomy, load_taxonomy
from bazkhord.model.domain import PROFILE_FILE, build_profile
from bazkhord.model.folder import FINGERPRINTS_FILE, TRAINING_REPORT_FILE, save_model, text_fingerprint
from bazkhord.model.tagger import BaseTagger
from bazkhord.training.config import TrainConfig
from bazkhord.training.corrections import add_corrections
from bazkhord.training.tfidf import Say, fit_tfidf, labels_of

log = logging.getLogger(__name__)



@dataclass
class TrainResult:
    folder: Path
    metrics: dict[str, Any]
    rejected: list[RejectedRow]
    sizes: dict[str, int]
    seconds: float
    summaries: list[str] = field(default_factory=list)


def load_training_data(
    config: TrainConfig, normaliser: NormaliserConfig, progress: Say
) -> tuple[dict[str, list[FeedbackRecord]], list[RejectedRow], list[str]]:
    columns = ColumnMap.from_dict(config.data.columns)
    rejected: list[RejectedRow] = []
    summaries: list[str] = []

    def read(paths: str | list[str]) -> list[FeedbackRecord]:
        records: list[FeedbackRecord] = []
        for path in [paths] if isinstance(paths, str) else paths:
            progress(f"reading {path}")
            result = read_records(path, columns=columns, max_bad_fraction=config.data.max_bad_fraction)
            rejected.extend(result.rejected)
            summaries.append(result.summary())
            records += result.records
        unique = deduplicate(records, normaliser)
        rejected.extend(unique.dropped)
        return unique.records

    train = read(config.data.train)
    if config.data.dev:
        dev = read(config.data.dev)
        splits = {"train": train, "dev": dev}
        seen = {normalise(r.text, normaliser) for r in train}
        overlap = [r for r in dev if normalise(r.text, normaliser) in seen]
        if overlap:
            # The dev copy is dropped, never the training one: dev must be unseen text.
            rejected += [RejectedRow(*r.location(), "text", "also in the training file; dropped from dev")
                         for r in overlap]
            ids = {id(r) for r in overlap}
            splits["dev"] = [r for r in dev if id(r) not in ids]
    else:
        by_hash = split_by_hash(train, config.data.dev_fraction, 0.0, seed=str(config.seed), config=normaliser)
        splits = {"train": by_hash["train"], "dev": by_hash["dev"]}
    check_disjoint(splits, normaliser)
    labels = labels_of(splits["train"], config.data.label)
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


def unlabelled_texts(config: TrainConfig, given: Sequence[str] | None, splits: dict[str, list[FeedbackRecord]],
                     corrections: Sequence[FeedbackRecord] | None, normaliser: NormaliserConfig,
                     say: Say) -> tuple[list[str], list[RejectedRow]]:
    """The comments without labels a TF-IDF model self-trains on: `given` (the store's uncorrected comments) and
    data.unlabelled's files, personal data masked, each once, none whose text a split or a correction holds (dev
    must stay unseen, and a human label outranks the model's); and the files' rows that could not be read."""
    texts = list(given or [])
    rejected: list[RejectedRow] = []
    for path in config.data.unlabelled_files:
        say(f"reading comments without labels {path}")
        read = read_records(path, max_bad_fraction=1.0)
        texts += [r.text for r in read.records]
        rejected += read.rejected
    seen = {normalise(r.text, normaliser) for rows in splits.values() for r in rows}
    seen |= {normalise(r.text, normaliser) for r in corrections or []}
    out = []
    for text in texts:
        masked = mask_pii(text)
        key = normalise(masked, normaliser)
        if key and key not in seen:
            seen.add(key)
            out.append(masked)
    return out, rejected


def domain_profile(tagger: BaseTagger, splits: dict[str, list[FeedbackRecord]], normaliser: NormaliserConfig,
                   dev_sample: int = 1000) -> dict[str, Any]:
    """The words of the training split and how sure the model is on (up to `dev_sample` comments of) dev, for the
    report's out-of-domain check (bazkhord.model.domain). Words come from train alone, so dev's unknown-word share is
    what new comments of the same business bring; personal data is masked first, as the report masks it, so no phone
    number or e-mail address lands in the folder's word list."""
    train_texts = [normalise(mask_pii(r.text), normaliser) for r in splits["train"]]
    dev = [mask_pii(r.text) for r in splits.get("dev", [])[:dev_sample]]
    dev_texts = [normalise(text, normaliser) for text in dev]
    confidences = [max(tag.probabilities.values(), default=0.0) for tag in tagger.tag(dev, dev_texts)] if dev else []
    return build_profile(train_texts, dev_texts, confidences)


def train(config: TrainConfig, progress: Progress = QUIET, interrupt_after: int | None = None,
          corrections: Sequence[FeedbackRecord] | None = None, unlabelled: Sequence[str] | None = None) -> TrainResult:
    """Train, score on dev, and write a model folder. The same data and seed give the same model.

    `corrections`: analysts' corrected comments read by the caller (the store's, for `corrections.database_url`);
    else `corrections.file` is read when set. `unlabelled`: comments without labels (the store's uncorrected ones)
    a TF-IDF model self-trains on beside data.unlabelled's (model.self_training)."""
    say, on_event = progress.phase, progress.event
    started = time.perf_counter()
    random.seed(config.seed)
    np.random.seed(config.seed)
    normaliser = config.normaliser_config
    splits, rejected, summaries = load_training_data(config, normaliser, say)
    corrections_used = None
    source = config.corrections.file or config.corrections.database_url
    if corrections is None and config.corrections.file:
        say(f"reading corrections {config.corrections.file}")
        read = read_records(config.corrections.file, max_bad_fraction=config.data.max_bad_fraction)
        corrections = read.records
        rejected += read.rejected
    if corrections is not None:
        splits, corrections_used = add_corrections(splits, corrections, normaliser, repeat=config.corrections.repeat,
                                                   holdout=config.corrections.holdout, source=source or "corrections")
        rejected += corrections_used.rejected
        summaries.append(corrections_used.summary())
        say(corrections_used.summary())
    for row in rejected:
        log.warning("skipped %s", row)

    taxonomy = load_taxonomy(config.data.taxonomy) if config.data.taxonomy else None
    if taxonomy is not None:
        summaries += apply_taxonomy(taxonomy, [r for rows in splits.values() for r in rows])
    aspects_only = sum(1 for label in labels_of(splits["train"], config.data.label) if label is None)
    if aspects_only:
        summaries.append(f"{aspects_only} training rows have no {config.data.label!r} label: they train aspects only")
    m = config.model
    train_rows = splits["train"]
    metrics: dict[str, Any] = {}
    extra: dict[str, str | dict[str, Any]] = {}
    report: dict[str, Any] = {}
    tagger: BaseTagger
    learned_from: list[str] = []
    if m.kind == "transformer":
        from bazkhord.training.transformer import LOG_FILE, fit_transformer

        if unlabelled:
            summaries.append(f"{len(unlabelled)} comments without labels were given and not used: self-training "
                             "(model.self_training) is for TF-IDF models; a transformer learns from such comments "
                             "through a teacher (data.unlabelled with transformer.teacher)")
        fitted = fit_transformer(config, splits, normaliser, taxonomy, data_hash(train_rows), say, on_event, interrupt_after)
        tagger = fitted.tagger
        metrics = {"dev": fitted.dev_scores["chosen"], "dev_by_model": fitted.dev_scores, **fitted.confusion}
        summaries += fitted.notes
        report["transformer"] = fitted.report
        extra[LOG_FILE] = fitted.log_text
        learned_from = fitted.extra_texts  # unlabelled comments seen through a teacher: evaluation leaves them out too
        for row in fitted.unreadable:
            log.warning("skipped %s", row)
        rejected += fitted.unreadable
        if config.data.refit_on_dev and fitted.baseline_refit is not None:
            # As the baseline alone does: its dev figure is taken, then it also learns from dev.
            say("refitting the blended TF-IDF baseline on train + dev")
            train_rows = train_rows + splits["dev"]
            fitted.baseline_refit(train_rows)
            metrics["dev_scored_before_refit"] = True
    else:
        extra_texts = None
        if m.self_training and (unlabelled is not None or config.data.unlabelled_files):
            extra_texts, unreadable = unlabelled_texts(config, unlabelled, splits, corrections, normaliser, say)
            for row in unreadable:
                log.warning("skipped %s", row)
            rejected += unreadable
        tagger, metrics, selftrained = fit_tfidf(config, splits, taxonomy, say, extra_texts)
        if metrics.get("dev_scored_before_refit"):
            train_rows = train_rows + splits["dev"]
        if selftrained is not None:
            summaries.append(selftrained.summary())
            report["self_training"] = selftrained.to_dict()
            learned_from = selftrained.texts  # trained on with the model's labels: evaluation leaves them out
    say("saving model folder")
    sizes = {**{name: len(rows) for name, rows in splits.items()}, "fitted": len(train_rows)}
    report = {
        "files": summaries,
        "sizes": sizes,
        **({"corrections": corrections_used.to_dict()} if corrections_used is not None else {}),
        "rejected": [{"file": r.file, "row": r.row, "field": r.field, "reason": r.reason} for r in rejected],
        **report,
    }
    seen = [*(r.text for r in train_rows), *learned_from]
    fingerprints = sorted({text_fingerprint(normalise(text, normaliser)) for text in seen})
    say("profiling the training comments (the out-of-domain check)")
    profile = domain_profile(tagger, splits, normaliser)
    folder = save_model(
        tagger,
        Path(config.output.models_dir),
        m.name,
        config_text=config.to_toml(),
        data_hash=data_hash(train_rows),
        training_rows=len(train_rows),
        metrics=metrics,
        label_field=config.data.label,
        extra_files={TRAINING_REPORT_FILE: report, FINGERPRINTS_FILE: "\n".join(fingerprints) + "\n",
                     PROFILE_FILE: profile, **extra},
    )
    checkpoint = report.get("transformer", {}).get("checkpoint")
    if checkpoint and not config.transformer.keep_checkpoint:
        from bazkhord.training.transformer import remove_checkpoint

        remove_checkpoint(Path(checkpoint), config)  # the model folder is written: nothing is left to resume
    return TrainResult(folder, metrics, rejected, sizes, time.perf_counter() - started, summaries)
