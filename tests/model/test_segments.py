from __future__ import annotations

import pytest

from model.segments import split_segments


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
