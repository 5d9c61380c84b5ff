"""`bazkhord init`: read a labelled file, say what is in it, and draft a training config that suits it.

Like spaCy's `init config`: the engineer answers nothing they cannot see; the file itself tells whether there are
sentiment labels, aspects (and whether a shipped taxonomy knows their names), and the machine tells whether the
pretrained encoder is there (the accurate profile) or not (TF-IDF, which trains in seconds anywhere).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bazkhord.data.finglish import is_finglish
from bazkhord.data.readers import ColumnMap, read_records
from bazkhord.data.record import RejectedRow
from bazkhord.data.split import deduplicate
from bazkhord.data.taxonomy import load_taxonomy, taxonomy_names
from bazkhord.training.config import config_from_dict, dump_toml

PERSIAN = re.compile(r"[\u0600-\u06FF\uFB50-\uFDFF\uFE70-\uFEFF]")
LATIN_WORD = re.compile(r"[A-Za-z]+")
# A shipped taxonomy is proposed when it knows at least this share of the aspect labels the file uses.
TAXONOMY_FIT = 0.8
# Fewer labelled rows than this: the transformer has too little to learn from; TF-IDF is proposed instead.
MIN_TRANSFORMER_ROWS = 200


@dataclass
class DataProfile:
    path: str
    rows: int
    kept: int
    rejected: list[RejectedRow]
    duplicates: int
    sentiments: Counter[str]
    scores: Counter[int]
    aspects: Counter[str]
    aspect_rows: int
    languages: Counter[str]  # persian, finglish, latin (English or unknown), other (digits, emoji only)
    taxonomy: str = ""  # the shipped taxonomy that knows the aspect names, "" for none
    taxonomy_fit: dict[str, float] = field(default_factory=dict)

    def share(self, language: str) -> float:
        return self.languages[language] / self.kept if self.kept else 0.0


def language_of(text: str) -> str:
    latin = LATIN_WORD.findall(text)
    persian = len(PERSIAN.findall(text))
    if persian >= sum(len(word) for word in latin) and persian:
        return "persian"
    if latin:
        return "finglish" if is_finglish(latin) else "latin"
    return "other"


def inspect_data(path: str | Path, columns: ColumnMap | None = None, max_bad_fraction: float = 0.1) -> DataProfile:
    """Read `path` as `train` would (the same row errors) and count what a config depends on."""
    read = read_records(path, columns=columns, max_bad_fraction=max_bad_fraction)
    records = read.records
    aspects: Counter[str] = Counter(name for r in records for name in (r.aspects or {}))
    profile = DataProfile(
        path=str(path), rows=read.rows_seen, kept=len(records), rejected=read.rejected,
        duplicates=len(deduplicate(records).dropped),
        sentiments=Counter(r.sentiment for r in records if r.sentiment is not None),
        scores=Counter(r.sentiment_score for r in records if r.sentiment_score is not None),
        aspects=aspects, aspect_rows=sum(1 for r in records if r.aspects is not None),
        languages=Counter(language_of(r.text) for r in records))
    if aspects:
        total = sum(aspects.values())
        for name in taxonomy_names():
            taxonomy = load_taxonomy(name)
            profile.taxonomy_fit[name] = sum(n for a, n in aspects.items() if taxonomy.canonical(a)) / total
        best = max(profile.taxonomy_fit, key=lambda name: (profile.taxonomy_fit[name], name == "default"))
        if profile.taxonomy_fit[best] >= TAXONOMY_FIT:
            profile.taxonomy = best
    return profile


def draft_config(profile: DataProfile, name: str, encoder: Path | None, models_dir: str = "artifacts/models",
                 columns: dict[str, Any] | None = None) -> dict[str, Any]:
    """A training config for the file in `profile`: checked by the same loader `train --config` uses."""
    labelled = sum(profile.sentiments.values()) or sum(profile.scores.values())
    transformer = encoder is not None and labelled >= MIN_TRANSFORMER_ROWS
    values: dict[str, Any] = {"seed": 13}
    if transformer:
        values["model"] = {"name": name, "kind": "transformer"}
        # e5's settings as `make run` trains them (training/configs/e5.toml), with a time budget that keeps a
        # first run on a laptop's CPU under a quarter of an hour.
        values["transformer"] = {"base_model": str(encoder), "prompt": "auto", "freeze_embeddings": "auto",
                                 "epochs": 8, "patience": 2, "batch_size": 32, "learning_rate": 1e-4,
                                 "head_learning_rate": 1e-3, "max_length_cap": 128, "ensemble": "auto",
                                 "quantize": "auto", "max_minutes": 15}
    else:
        values["model"] = {"name": name, "kind": "tfidf", "C": 0.5, "aspect_C": 4.0, "class_weight": "balanced",
                           "aspect_threshold": 0.3}
    data: dict[str, Any] = {"train": profile.path, "dev_fraction": 0.15, "taxonomy": profile.taxonomy}
    if not profile.sentiments and profile.scores:
        data["label"] = "sentiment_score"
    if columns:
        data["columns"] = columns
    values["data"] = data
    values["output"] = {"models_dir": models_dir}
    config_from_dict(values, where="the drafted config")  # what train will read must load
    return values


def config_text(values: dict[str, Any], profile: DataProfile, encoder: Path | None) -> str:
    kind = values["model"]["kind"]
    why = (f"the pretrained encoder at {encoder} is here" if kind == "transformer" else
           "no pretrained encoder here (`bazkhord encoder import` brings one)" if encoder is None else
           f"{sum(profile.sentiments.values())} labelled rows are too few for the encoder")
    taxonomy = (f"the shipped taxonomy {profile.taxonomy!r} knows {profile.taxonomy_fit[profile.taxonomy]:.0%} of "
                "the aspect names" if profile.taxonomy else
                "the file's own aspect names (no shipped taxonomy knows enough of them)" if profile.aspects else
                "no aspect labels in the file")
    header = [f"# Drafted by `bazkhord init` from {profile.path}: {profile.kept} usable rows.",
              f"# Profile {kind}: {why}.", f"# Aspects: {taxonomy}.",
              "# Train with: bazkhord train --config THIS_FILE   (every key: docs/TRAINING.md)", ""]
    return "\n".join(header) + dump_toml(values)


def describe(profile: DataProfile) -> list[str]:
    """What the file holds, as lines for a person."""
    lines = [f"{profile.path}: {profile.rows} rows, {profile.kept} usable, {len(profile.rejected)} skipped"]
    for row in profile.rejected[:10]:
        lines.append(f"  skipped {row}")
    if len(profile.rejected) > 10:
        lines.append(f"  ... and {len(profile.rejected) - 10} more skipped rows (`bazkhord train` lists them all)")
    if profile.sentiments:
        lines.append("sentiment labels: " + ", ".join(f"{k} {v}" for k, v in profile.sentiments.most_common()))
    elif profile.scores:
        lines.append("sentiment scores: " + ", ".join(f"{k} {v}" for k, v in sorted(profile.scores.items())))
    else:
        lines.append("no sentiment labels: the model learns aspects only")
    unlabelled = profile.kept - sum(profile.sentiments.values() or profile.scores.values())
    if unlabelled and (profile.sentiments or profile.scores):
        lines.append(f"  {unlabelled} row(s) without a sentiment label (they train aspects only)")
    if profile.aspects:
        lines.append(f"aspects ({profile.aspect_rows} rows labelled): "
                     + ", ".join(f"{k} {v}" for k, v in profile.aspects.most_common(12))
                     + (f", and {len(profile.aspects) - 12} more" if len(profile.aspects) > 12 else ""))
        fits = ", ".join(f"{name} {fit:.0%}" for name, fit in sorted(profile.taxonomy_fit.items()))
        lines.append(f"  aspect names a shipped taxonomy knows: {fits}")
    else:
        lines.append("no aspect labels")
    lines.append("languages: " + ", ".join(f"{lang} {profile.share(lang):.1%}" for lang in
                                         ("persian", "finglish", "latin", "other") if profile.languages[lang])
                 + f" (Finglish share {profile.share('finglish'):.1%}; the normaliser transliterates it)")
    lines.append(f"duplicates: {profile.duplicates} row(s) repeat an earlier comment once normalised "
                 "(training keeps the first)")
    return lines
