from __future__ import annotations

import pytest

from bazkhord.data.normalise import DEFAULT_NORMALISER, NormaliserConfig, normalise
from bazkhord.data.pii import mask_pii

ZWNJ = "\u200c"

# Persian golden pairs (hazm's style): raw -> normalised.
GOLDEN = [
    ("گوشي خوبيه ولي كيفيتش", "گوشی خوبیه ولی کیفیتش"),  # Arabic yeh/kaf -> Persian
    ("خانة", "خانه"),  # teh marbuta
    ("می شه", f"می{ZWNJ}شه"),  # detached verb prefix joined by a half-space
    ("نمی خوام", f"نمی{ZWNJ}خوام"),
    ("کتاب ها", f"کتاب{ZWNJ}ها"),  # plural suffix (hazm)
    (f"می{ZWNJ}{ZWNJ}شه", f"می{ZWNJ}شه"),  # doubled half-space
    (f"{ZWNJ}سلام{ZWNJ}", "سلام"),  # half-space at word edges
    ("خیلیییی خوب", "خیلی خوب"),  # elongation
    ("عااالی", "عالی"),
    ("ناامید", "ناامید"),  # a real double letter survives
    ("عـــالـــی", "عالی"),  # tatweel
    ("مَن رَفتَم", "من رفتم"),  # diacritics
    ("۱۲۳ و ١٢٣ و 123", "123 و 123 و 123"),  # Persian, Arabic-Indic and Latin digits unified
    ("عالی بود 😍😍", "عالی بود 😍😍"),  # emoji carry sentiment and stay
    ("Kheili KHOOB bood", "خیلی خوب بود"),  # Finglish written in Persian script
    ("Very GOOD", "very good"),  # English lower-cased
    ("  سلام   دنیا  ", "سلام دنیا"),
    ("سلام\r\n\r\nخوب", "سلام\nخوب"),
]

PII = [
    ("شماره‌ام ۰۹۱۲۱۲۳۴۵۶۷ است", "[PHONE]"),
    ("call +989121234567", "[PHONE]"),
    ("0912 123 4567", "[PHONE]"),
    ("کارت 6037-9975-1234-5678", "[CARD]"),
    ("کارت ۶۰۳۷۹۹۷۵۱۲۳۴۵۶۷۸", "[CARD]"),
    ("شبا IR120570028780010612345678", "[IBAN]"),
    ("ایمیل ali.r@gmail.com", "[EMAIL]"),
    ("سایت https://shop.ir/p/12?x=1", "[URL]"),
    ("www.example.com", "[URL]"),
    ("کد ملی ۰۰۱۲۳۴۵۶۷۹", "[NATIONAL_ID]"),  # a valid check digit
]


@pytest.mark.parametrize(("raw", "expected"), GOLDEN)
def test_golden_pairs(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


@pytest.mark.parametrize(("raw", "placeholder"), PII)
def test_pii_is_masked(raw: str, placeholder: str) -> None:
    out = normalise(raw)
    assert placeholder in out
    assert not any(ch.isdigit() for ch in out.replace("[", "").replace("]", "")), out


def test_masking_leaves_order_numbers_alone() -> None:
    assert normalise("سفارش شماره 12345678") == "سفارش شماره 12345678"


def test_email_is_not_taken_for_a_url() -> None:
    assert mask_pii("a.b@gmail.com") == "[EMAIL]"


@pytest.mark.parametrize("raw", [raw for raw, _ in GOLDEN + PII])
def test_idempotent(raw: str) -> None:
    once = normalise(raw)
    assert normalise(once) == once


def test_config_switches_change_output() -> None:
    assert normalise("۱۲۳", NormaliserConfig(digits="persian")) == "۱۲۳"
    assert "09121234567" in normalise("09121234567", NormaliserConfig(mask_pii=False))
    assert normalise("خیلیییی", NormaliserConfig(squeeze_elongation=False, use_hazm=False)) == "خیلیییی"


def test_config_round_trip_and_errors() -> None:
    assert NormaliserConfig.from_dict(DEFAULT_NORMALISER.to_dict()) == DEFAULT_NORMALISER
    with pytest.raises(ValueError, match="unknown normaliser setting"):
        NormaliserConfig.from_dict({"lowercase": True})
    with pytest.raises(ValueError, match="newer"):
        NormaliserConfig.from_dict({"version": 99})
    with pytest.raises(ValueError, match="digits"):
        NormaliserConfig.from_dict({"digits": "roman"})


def test_config_is_frozen() -> None:
    with pytest.raises(AttributeError):
        DEFAULT_NORMALISER.digits = "persian"  # type: ignore[misc]
