"""Personal data as people type it (data/labels/pii_cases.jsonl): every variant masked as a whole, every
near-miss (order numbers, prices, dates, times) kept."""

from __future__ import annotations

import json

import pytest

from bazkhord.data.pii import find_pii, mask_pii, national_id_valid
from tests.conftest import REPO

CASES = [json.loads(line) for line in (REPO / "data/labels/pii_cases.jsonl").read_text(encoding="utf-8").splitlines()]
VARIANTS = [c for c in CASES if c["pii"]]
NEAR_MISSES = [c for c in CASES if not c["pii"]]


def test_the_table_is_large_enough() -> None:
    assert len(VARIANTS) >= 40 and len(NEAR_MISSES) >= 40


@pytest.mark.parametrize("case", VARIANTS, ids=[c["pii"] for c in VARIANTS])
def test_a_variant_is_masked_whole(case: dict[str, str]) -> None:
    text, pii = case["text"], case["pii"]
    spans = find_pii(text)
    start = text.index(pii)
    assert [(s.start, s.end, s.placeholder) for s in spans] == [(start, start + len(pii), case["kind"])], spans
    assert mask_pii(text) == text.replace(pii, case["kind"])


@pytest.mark.parametrize("case", NEAR_MISSES, ids=[c["text"] for c in NEAR_MISSES])
def test_a_near_miss_stays(case: dict[str, str]) -> None:
    assert find_pii(case["text"]) == [] and mask_pii(case["text"]) == case["text"]


def test_national_id_check_digit() -> None:
    assert national_id_valid("0499370899") and national_id_valid("0012345679")
    assert not national_id_valid("0499370898") and not national_id_valid("1111111111")
