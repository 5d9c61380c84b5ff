"""Analysts' corrections as training data: read, held out for the champion/challenger gate, added to train.

A corrected comment is the company's own text with a human label, so it teaches the model the domain it serves.
It goes to train only, never dev (a dev figure on what analysts chose is no estimate of the stream's), and it
replaces a row of the configured data with the same text wherever that row was: the human label is the newer one.
Each is repeated `corrections.repeat` times: a few hundred corrections beside thousands of rows of another
domain otherwise move the model little.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bazkhord.data.normalise import NormaliserConfig, normalise
from bazkhord.data.record import FeedbackRecord, RejectedRow
from bazkhord.data.split import split_of

HOLDOUT_SEED = "bazkhord-corrections"


@dataclass
class CorrectionsUsed:
    """What a training run did with the corrections, for its report."""

    source: str
    rows: int = 0
    used: int = 0
    held_out: int = 0
    repeat: int = 1
    replaced: dict[str, int] = field(default_factory=dict)  # split -> rows of the configured data replaced
    rejected: list[RejectedRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "rows": self.rows, "used": self.used, "held_out": self.held_out,
                "repeat": self.repeat, "replaced": self.replaced, "rejected": len(self.rejected)}

    def summary(self) -> str:
        replaced = sum(self.replaced.values())
        return (f"corrections from {self.source}: {self.rows} corrected comments, {self.used} used (each seen "
                f"{self.repeat}x), {self.held_out} held out for the gate, {replaced} rows of the configured data "
                f"replaced by them, {len(self.rejected)} rejected")


def is_held_out(record: FeedbackRecord, fraction: float, normaliser: NormaliserConfig) -> bool:
    """Whether a corrected comment is kept for the gate: a hash of its text, so the same comment is held out by
    every run and by the gate that scores the run."""
    return fraction > 0 and split_of(normalise(record.text, normaliser), fraction, 0.0, HOLDOUT_SEED) == "dev"


def held_out(records: Sequence[FeedbackRecord], fraction: float, normaliser: NormaliserConfig) -> list[FeedbackRecord]:
    return [r for r in records if is_held_out(r, fraction, normaliser)]


def add_corrections(splits: dict[str, list[FeedbackRecord]], corrections: Sequence[FeedbackRecord],
                    normaliser: NormaliserConfig, *, repeat: int = 1, holdout: float = 0.0,
                    source: str = "corrections") -> tuple[dict[str, list[FeedbackRecord]], CorrectionsUsed]:
    """`splits` with the corrections added to train (each `repeat` times) and the rows they correct removed from
    every split. Held-out corrections are not trained on, and their texts leave the configured data too."""
    used = CorrectionsUsed(source=source, repeat=repeat)
    latest: dict[str, FeedbackRecord] = {}
    for record in corrections:
        if record.sentiment is None and record.aspects is None:
            used.rejected.append(RejectedRow(*record.location(), "sentiment", "a correction without a label"))
            continue
        latest[normalise(record.text, normaliser)] = record  # a later row of the same text wins
    used.rows = len(latest)
    keep = {key: r for key, r in latest.items() if not is_held_out(r, holdout, normaliser)}
    used.used, used.held_out = len(keep), len(latest) - len(keep)
    out: dict[str, list[FeedbackRecord]] = {}
    for name, rows in splits.items():
        kept = [r for r in rows if normalise(r.text, normaliser) not in latest]
        if len(kept) != len(rows):
            used.replaced[name] = len(rows) - len(kept)
        out[name] = kept
    out["train"] = out.get("train", []) + [r for r in keep.values() for _ in range(repeat)]
    return out, used
