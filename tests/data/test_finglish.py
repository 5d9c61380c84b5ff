"""Finglish is written in Persian script before the model reads it; English, product codes and placeholders are
not; evidence offsets still point into the text as sent; models saved before it keep reading as they did."""

from __future__ import annotations

import pytest

from bazkhord.data.finglish import is_finglish, transliterate
from bazkhord.data.normalise import NormaliserConfig, normalise
from bazkhord.model.folder import LoadedModel

PAIRS = [
    ("kheili khub bud mamnoon", "خیلی خوب بود ممنون"),
    ("ghazash sard bood vali peyk kheili khosh akhlagh bood", "غذاش سرد بود ولی پیک خیلی خوش‌اخلاق بود"),
    ("Kheili KHOOB bood", "خیلی خوب بود"),  # shouting is still Finglish
    ("ersal dir bood va basteh bandi kharab", "ارسال دیر بود و بسته بندی خراب"),
    ("aslan raazi nistam", "اصلا راضی نیستم"),  # the package alone reads «اصلان رازی»
    ("گوشی رو گرفتم kheili khoobe", "گوشی رو گرفتم خیلی خوبه"),  # a Finglish clause inside Persian
    ("merci", "مرسی"),
]
UNTOUCHED = [
    "the delivery was very late but the food was good",  # English
    "ok",
    "iphone 13 خریدم",  # a product name
    "sms نیومد",  # an acronym alone decides nothing
    "[PHONE]",  # a placeholder
]


@pytest.mark.parametrize(("raw", "expected"), PAIRS)
def test_finglish_is_written_in_persian(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


@pytest.mark.parametrize("raw", UNTOUCHED)
def test_english_codes_and_placeholders_stay(raw: str) -> None:
    assert transliterate(raw) == raw


def test_a_run_needs_more_persian_than_english_words() -> None:
    assert is_finglish(["delivery", "kheili", "dir", "bood"])
    assert not is_finglish(["very", "bad", "delivery"])
    assert not is_finglish(["bad"])  # an English and a Finglish word at once: not enough to decide


def test_switch_and_models_saved_before() -> None:
    assert normalise("kheili khub", NormaliserConfig(finglish=False)) == "kheili khub"
    assert NormaliserConfig.from_dict({"version": 1, "finglish": True}).finglish  # an explicit setting wins
    saved_v1 = {k: v for k, v in NormaliserConfig().to_dict().items() if k != "finglish"} | {"version": 1}
    assert NormaliserConfig.from_dict(saved_v1).finglish is False
    assert NormaliserConfig.from_dict({}).finglish is True  # a training config without [normaliser]


def test_the_model_reads_finglish_with_offsets_into_the_text_as_sent(sample_model: LoadedModel) -> None:
    polite_courier = "ghazash sard bood vali peyk kheili khosh akhlagh bood"
    thanks = "kheili khub bud mamnoon"
    first, second = sample_model.tagger.tag([polite_courier, thanks])
    assert second.sentiment == "positive"
    assert first.sentiment != "negative"
    for aspect in first.aspects:
        assert aspect.polarity != "negative" or aspect.aspect != "delivery"  # the courier clause is praise
        for span in aspect.evidence:
            assert polite_courier[span.start:span.end] == span.text  # Latin text, as sent
