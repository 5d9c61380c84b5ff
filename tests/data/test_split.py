from __future__ import annotations

import pytest

from bazkhord.data.errors import DataError
from bazkhord.data.record import FeedbackRecord
from bazkhord.data.split import check_disjoint, data_hash, deduplicate, split_by_hash, split_of


def records(*texts: str) -> list[FeedbackRecord]:
    return [FeedbackRecord(text=t, sentiment="positive", origin=f"f.jsonl:{i + 1}") for i, t in enumerate(texts)]


def test_exact_and_normalised_duplicates_are_dropped_and_reported() -> None:
    result = deduplicate(records("کیفیت عالی", "کیفیت عالی", "كيفيت عالي", "چیز دیگر"))
    assert [r.text for r in result.records] == ["کیفیت عالی", "چیز دیگر"]
    assert [(d.row, d.reason.split(" duplicate")[0]) for d in result.dropped] == [(2, "exact"), (3, "normalised")]
    assert all("f.jsonl:1" in d.reason for d in result.dropped)


def test_conflicting_labels_are_named() -> None:
    rows = records("خوب", "خوب")
    rows[1].sentiment = "negative"
    assert "different labels" in deduplicate(rows).dropped[0].reason


def test_split_is_deterministic_and_stable_as_data_grows() -> None:
    texts = [f"نظر شماره {i}" for i in range(500)]
    first = split_by_hash(records(*texts), 0.1, 0.1)
    again = split_by_hash(records(*texts[:250]), 0.1, 0.1)
    where = {r.text: name for name, rows in first.items() for r in rows}
    assert all(where[r.text] == name for name, rows in again.items() for r in rows)
    assert 30 < len(first["dev"]) < 75 and 30 < len(first["test"]) < 75
    assert split_of("x", 0.1, 0.1, seed="a") == split_of("x", 0.1, 0.1, seed="a")


def test_spelling_variants_land_in_the_same_split() -> None:
    assert {split_of(t, 0.3, 0.3) for t in ("كيفيت", "کیفیت")} == {split_of("کیفیت", 0.3, 0.3)}


def test_bad_fractions() -> None:
    with pytest.raises(DataError, match="fractions"):
        split_by_hash(records("a"), 0.6, 0.5)


def test_check_disjoint() -> None:
    check_disjoint({"train": records("a"), "dev": records("b")})
    with pytest.raises(DataError, match="both train and dev"):
        check_disjoint({"train": records("كيفيت"), "dev": records("کیفیت")})


def test_data_hash_follows_text_and_labels() -> None:
    rows = records("a", "b")
    assert data_hash(rows) == data_hash(records("a", "b"))
    rows[0].sentiment = "negative"
    assert data_hash(rows) != data_hash(records("a", "b"))
