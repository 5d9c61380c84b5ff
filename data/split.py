"""Duplicate removal and deterministic splits by hash of the normalised text."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bazkhord.data.errors import DataError
from bazkhord.data.normalise import DEFAULT_NORMALISER, NormaliserConfig, normalise
from bazkhord.data.record import FeedbackRecord, RejectedRow

SPLITS = ("train", "dev", "test")


@dataclass
class DedupResult:
    records: list[FeedbackRecord]
    dropped: list[RejectedRow]


def deduplicate(records: Sequence[FeedbackRecord], config: NormaliserConfig = DEFAULT_NORMALISER) -> DedupResult:
    """Keep the first of each group of comments that are equal once normalised; report the rest."""
    first_seen: dict[str, FeedbackRecord] = {}
    kept: list[FeedbackRecord] = []
    dropped: list[RejectedRow] = []
    for record in records:
        key = normalise(record.text, config)
        original = first_seen.get(key)
        if original is None:
            first_seen[key] = record
            kept.append(record)
            continue
        kind = "exact" if original.text == record.text else "normalised"
        conflict = ""
        if (original.sentiment, original.aspects) != (record.sentiment, record.aspects):
            conflict = ", with different labels"
        file, row = record.location()
        dropped.append(RejectedRow(file, row, "text", f"{kind} duplicate of {original.origin}{conflict}"))
    return DedupResult(kept, dropped)


def split_of(text: str, dev_fraction: float, test_fraction: float, seed: str = "bazkhord") -> str:
    """Which split a (normalised) text falls in: a hash, so it never changes as data grows."""
    digest = hashlib.sha256(f"{seed}\x00{text}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    if position < test_fraction:
        return "test"
    if position < test_fraction + dev_fraction:
        return "dev"
    return "train"


def split_by_hash(
    records: Sequence[FeedbackRecord],
    dev_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: str = "bazkhord",
    config: NormaliserConfig = DEFAULT_NORMALISER,
) -> dict[str, list[FeedbackRecord]]:
    if not 0 <= dev_fraction < 1 or not 0 <= test_fraction < 1 or dev_fraction + test_fraction >= 1:
        raise DataError(f"split fractions dev={dev_fraction}, test={test_fraction} must be >= 0 and sum below 1")
    splits: dict[str, list[FeedbackRecord]] = {name: [] for name in SPLITS}
    for record in records:
        splits[split_of(normalise(record.text, config), dev_fraction, test_fraction, seed)].append(record)
    return splits


def check_disjoint(splits: Mapping[str, Sequence[FeedbackRecord]], config: NormaliserConfig = DEFAULT_NORMALISER) -> None:
    """Refuse splits that share a comment: a metric on seen text is no metric."""
    owner: dict[str, str] = {}
    clashes: list[str] = []
    for name, records in splits.items():
        for record in records:
            key = normalise(record.text, config)
            if key in owner and owner[key] != name:
                clashes.append(f"{record.origin or record.text[:40]!s} is in both {owner[key]} and {name}")
            owner.setdefault(key, name)
    if clashes:
        raise DataError(f"{len(clashes)} comment(s) appear in two splits:\n  " + "\n  ".join(clashes[:10]))


def data_hash(records: Sequence[FeedbackRecord]) -> str:
    """Fingerprint of training data (texts and labels, in order) for the manifest."""
    digest = hashlib.sha256()
    for record in records:
        digest.update(json.dumps([record.text, record.sentiment, record.aspects], ensure_ascii=False, sort_keys=True).encode())
        digest.update(b"\n")
    return "sha256:" + digest.hexdigest()
