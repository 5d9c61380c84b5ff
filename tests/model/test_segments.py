from __future__ import annotations

import pytest

from bazkhord.model.segments import locate_parts, split_segments


@pytest.mark.parametrize(("raw", "expected"), [
    ("ارسال دیر بود ولی کیفیتش عالیه", ["ارسال دیر بود", "ولی کیفیتش عالیه"]),
    ("ارسال دیر بود ولي کیفیتش عالیه", ["ارسال دیر بود", "ولي کیفیتش عالیه"]),  # Arabic yeh in the connective
    ("سلام. ارسال دیر بود؟ اما کیفیت خوبه! عالی", ["سلام.", "ارسال دیر بود؟", "اما کیفیت خوبه!", "عالی"]),
    ("خط اول\nخط دوم", ["خط اول", "خط دوم"]),
    ("ولیعهد آمد", ["ولیعهد آمد"]),  # a word that starts like ولی is no connective
    ("سفارش ناقص بود، ضمنا جعبه له بود", ["سفارش ناقص بود", "ضمنا جعبه له بود"]),
    ("نان تازه بود و تازه ارزان هم بود", ["نان تازه بود و تازه ارزان هم بود"]),
    ("عالی", ["عالی"]),
    (" 😍 ", ["😍"]),
])
def test_segments(raw: str, expected: list[str]) -> None:
    spans = split_segments(raw)
    assert [s.text for s in spans] == expected
    assert all(raw[s.start : s.end] == s.text for s in spans)


def test_clauses_are_found_in_the_whole_whatever_the_spaces_and_half_spaces() -> None:
    whole = "ارسال می‌کنند ولی دیر، کیفیت خوبه"
    parts = ["ارسال می کنند", "ولی دیر،", "کیفیت خوبه"]  # normalised alone, a clause may lose or gain a half-space
    spans = locate_parts(whole, parts)
    assert spans is not None
    assert [whole[s:e] for s, e in spans] == ["ارسال می‌کنند", "ولی دیر،", "کیفیت خوبه"]
    assert locate_parts(whole, ["کیفیت خوبه", "ارسال"]) is None  # in order, or not at all
    assert locate_parts(whole, ["ارسال", "قیمت"]) is None
