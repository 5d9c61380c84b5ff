"""Themes for a domain with no taxonomy: detection that may say "none", causes (not moods) discovered from the
complaints' targets, the draft codebook and its second run, and the out-of-domain warning."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from bazkhord.data.normalise import normalise
from bazkhord.data.record import FeedbackRecord
from bazkhord.data.taxonomy import load_taxonomy, taxonomy_toml
from bazkhord.model.domain import build_profile, domain_shift
from bazkhord.model.folder import LoadedModel
from bazkhord.model.themes import discovery
from bazkhord.model.themes.analysis import ThemeAnalyzer, ThemeSettings
from bazkhord.model.themes.opinion import is_reaction
from bazkhord.service.theme_report import DRAFT_FILE, write_report

# Hotel reviews, written for the test: each complaint blames one thing, wrapped in the moods, verdicts, stories,
# intentions and questions real reviews carry.
CAUSES = {
    "breakfast": ["صبحانه خیلی ضعیف بود", "تنوع صبحانه کم بود", "صبحانه هتل سرد و بی‌کیفیت بود", "صبحانه افتضاح بود"],
    "internet": ["اینترنت اتاق وصل نمی‌شد", "سرعت اینترنت خیلی کم بود", "اینترنت هتل ضعیف بود", "اینترنت اصلا نداشت"],
    "cleaning": ["حوله‌ها کثیف بود", "ملحفه‌ها کثیف و لکه‌دار بود", "حمام کثیف بود", "موکت راهرو کثیف بود"],
    "staff": ["برخورد پذیرش خیلی بد بود", "پذیرش جواب درست نمی‌داد", "پذیرش بی‌ادب بود", "کارمند پذیرش بداخلاق بود"],
}
FILLER = ["سلام", "خیلی بد بود", "اصلا راضی نبودم", "دیگه به این هتل نمیام", "پیشنهاد نمی‌کنم", "چرا جواب نمی‌دید؟",
          "کد تخفیف بدید", "ما سه شب در این هتل اقامت داشتیم", "واقعا متاسفم", "در حد سه ستاره هم نیست"]


def hotel_comments(n: int = 120, seed: int = 3) -> tuple[list[FeedbackRecord], dict[str, str]]:
    rng = random.Random(seed)
    records, cause_of = [], {}
    for i in range(n):
        cause = rng.choice(sorted(CAUSES))
        parts = [rng.choice(FILLER), rng.choice(CAUSES[cause]), rng.choice(FILLER)]
        records.append(FeedbackRecord(text="، ".join(parts[:2]) + ". " + parts[2] + ".", id=f"h{i}"))
        cause_of[f"h{i}"] = cause
    return records, cause_of


@pytest.mark.parametrize("clause", ["خیلی بد بود", "اصلا راضی نبودم", "دیگه سفارش نمیدم", "پیشنهاد نمی‌کنم",
                                    "چرا جواب نمی‌دید؟", "کد تخفیف بدید", "سلام خسته نباشید", "در حد سه ستاره نیست",
                                    "ما سه شب در این هتل اقامت داشتیم", "کتاب رو دیروز خوندم", "نمیدونم", "متاسفم براتون",
                                    "شماره من [PHONE] هست", "سفر به کیش خیلی بد بود", "اقامت خوبی نبود"])
def test_moods_verdicts_intentions_questions_and_stories_name_no_cause(clause: str) -> None:
    assert not discovery.names_cause(normalise(clause)), discovery.targets(normalise(clause))


@pytest.mark.parametrize(("clause", "target"), [
    ("صبحانه خیلی ضعیف بود", "صبحانه"), ("اینترنت اتاق وصل نمی‌شد", "اینترنت"), ("حوله‌ها کثیف بود", "حوله"),
    ("ترجمه کتاب افتضاح بود", "ترجمه"), ("اتاق تمیز نبود", "اتاق"),
])
def test_a_complaint_names_what_it_blames(clause: str, target: str) -> None:
    assert target in {t.key for t in discovery.targets(normalise(clause))}


def test_the_place_is_no_cause_but_what_went_wrong_there_is() -> None:
    found = {t.key for t in discovery.targets(normalise("صبحانه هتل‌های تهران ضعیف بود"))}
    assert "صبحانه" in found and not found & {"تهران", "هتل‌های تهران"}, found


def test_praise_is_not_blamed_unless_negated() -> None:
    assert discovery.praises("پرسنل مودب") and discovery.praises("اتاق‌ها تمیز بود")
    assert not discovery.praises("اتاق تمیز نبود")
    assert not discovery.names_cause(normalise("پرسنل بسیار مودب"))


def test_the_business_itself_is_no_cause() -> None:
    texts = [normalise(t) for t in ["این کتاب خیلی بد بود", "ترجمه این کتاب بد بود", "این کتاب رو دوست نداشتم",
                                     "نویسنده این کتاب رو نمی‌شناسم", "این کتاب گرون بود"] * 8]
    business = discovery.business_words(texts)
    assert "کتاب" in business and "ترجمه" not in business and "نویسنده" not in business


def test_no_taxonomy_fits_hotel_reviews_and_causes_are_discovered(sample_model: LoadedModel, tmp_path: Path) -> None:
    records, cause_of = hotel_comments()
    analyzer = ThemeAnalyzer(sample_model.tagger, ThemeSettings(min_theme_size=5), encoder="none")
    report = analyzer.analyse(records)
    assert report.taxonomy_fit is not None and report.taxonomy_fit.chosen is None
    assert max(report.taxonomy_fit.fits.values()) < report.taxonomy_fit.threshold
    assert report.settings["taxonomy"] == discovery.DISCOVERED and report.codebook_draft is not None
    assert any("no taxonomy fits" in note for note in report.notes)
    labels = [t.label for t in report.themes] + [s.label for t in report.themes for s in t.subthemes]
    # No theme is a mood or filler: every label names what a complaint blames.
    fillers = {normalise(f) for f in FILLER}
    assert labels and not [label for label in labels if is_reaction(label) or normalise(label) in fillers
                           or not discovery.names_cause(normalise(label))]
    # Each cause is found: the theme holding most of a cause's comments is mostly that cause.
    members: dict[str, set[str]] = {}
    for m in analyzer.membership_:
        members.setdefault(m.theme_id, set()).add(str(m.comment_id))
    for cause in CAUSES:
        gold = {i for i, c in cause_of.items() if c == cause}
        best = max(members.values(), key=lambda found: len(found & gold))
        assert len(best & gold) >= 0.6 * len(gold) and len(best & gold) >= 0.6 * len(best), (cause, labels)
    assert any("name no cause" in note for note in report.notes)


def test_the_draft_codebook_is_edited_and_drives_the_second_run(sample_model: LoadedModel, tmp_path: Path) -> None:
    records, cause_of = hotel_comments()
    first = ThemeAnalyzer(sample_model.tagger, ThemeSettings(min_theme_size=5), encoder="none")
    written = write_report(first.analyse(records), tmp_path / "first", first.membership_)
    draft_file = tmp_path / "first" / DRAFT_FILE
    assert draft_file in written
    draft = load_taxonomy(draft_file)  # the format of the shipped taxonomies: it loads back as written
    assert draft.domain == discovery.DISCOVERED and all(a.seeds and a.name_fa for a in draft.aspects)
    # An analyst renames the internet cause and deletes every other aspect but breakfast.
    keep = [a for a in draft.aspects if "اینترنت" in a.seeds or "صبحانه" in a.seeds]
    assert len(keep) == 2
    from dataclasses import replace

    edited = replace(draft, aspects=tuple(replace(a, name_fa="اینترنت کند") if "اینترنت" in a.seeds else a
                                          for a in keep))
    edited_file = tmp_path / "edited.toml"
    edited_file.write_text(taxonomy_toml(edited), encoding="utf-8")
    second = ThemeAnalyzer(sample_model.tagger, ThemeSettings(min_theme_size=5, taxonomy=str(edited_file)),
                           encoder="none")
    report = second.analyse(records)
    assert report.codebook_draft is None and report.taxonomy_fit is None
    aspect_themes = {t.label: t for t in report.themes if t.kind == "aspect"}
    assert set(aspect_themes) == {"اینترنت کند", next(a.name_fa for a in keep if "صبحانه" in a.seeds)}
    internet = {m.comment_id for m in second.membership_ if m.theme_id == aspect_themes["اینترنت کند"].id}
    gold = {i for i, c in cause_of.items() if c == "internet"}
    assert len(internet & gold) >= 0.8 * len(gold) and internet <= gold


def test_food_complaints_keep_the_food_taxonomy(sample_model: LoadedModel) -> None:
    texts = ["غذا سرد رسید", "پیتزا خیلی دیر رسید", "نوشابه رو نفرستادن", "کباب سوخته بود", "حجم غذا کم بود",
             "سالاد نداشت و پیک دیر اومد", "برنج خام بود", "بسته بندی پاره بود و غذا ریخته بود"]
    records = [FeedbackRecord(text=t, id=str(i)) for i, t in enumerate(texts * 6)]
    analyzer = ThemeAnalyzer(sample_model.tagger, ThemeSettings(min_theme_size=3), encoder="none")
    report = analyzer.analyse(records)
    assert report.taxonomy_fit is not None and report.taxonomy_fit.chosen == "food_delivery"
    assert report.settings["taxonomy"] == "food_delivery" and report.codebook_draft is None


SHARED_DOMAINS = [("snappfood", "dev", "food_delivery"), ("digikala_recommend", "dev", "ecommerce"),
                  ("taaghche_books", "dev", None), ("sentifars_hotels", "dev", None), ("parsinlu_movie", "dev", None)]


@pytest.mark.parametrize(("name", "split", "expected"), SHARED_DOMAINS)
def test_detection_on_the_shared_domains(sample_model: LoadedModel, shared_data: Path, name: str, split: str,
                                         expected: str | None) -> None:
    """Books are not food (nor anything else); food and e-commerce keep their taxonomy."""
    rows = [json.loads(line) for line in (shared_data / name / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]
    records = [FeedbackRecord(text=r["text"], id=str(i)) for i, r in enumerate(rows[:600])]
    analyzer = ThemeAnalyzer(sample_model.tagger, ThemeSettings(), encoder="none")
    fit = analyzer.detect_taxonomy(analyzer.statements(records))
    assert fit is not None
    assert fit.chosen == (expected if expected != "ecommerce" else fit.chosen), fit
    if expected == "ecommerce":
        assert fit.chosen in ("ecommerce", "model"), fit


def test_out_of_domain_warning_with_its_figures(sample_model: LoadedModel) -> None:
    profile = sample_model.tagger.domain_profile
    assert profile is not None and profile["vocabulary"] and profile["dev"]["unknown_word_share"] < 0.1
    records, _ = hotel_comments(60)
    report = ThemeAnalyzer(sample_model.tagger, ThemeSettings(min_theme_size=5), encoder="none").analyse(records)
    shift = report.domain_shift
    assert shift is not None and shift.out_of_domain and shift.unknown_word_share > 0.2
    assert shift.reasons and "%" in shift.reasons[0] and shift.message_fa
    assert any("out of the model's domain" in note for note in report.notes)


def test_in_domain_comments_raise_no_warning() -> None:
    rng = random.Random(5)
    words = [f"واژه{i}" for i in range(300)]

    def comment() -> str:
        return " ".join(rng.choice(words) for _ in range(12))

    profile = build_profile([comment() for _ in range(500)], [comment() for _ in range(100)], [0.9] * 100)
    same = domain_shift(profile, [comment() for _ in range(100)], [0.88] * 100)
    assert same is not None and not same.out_of_domain and not same.reasons and not same.message_fa
    other = domain_shift(profile, [" ".join(f"کلمه{rng.randrange(999)}" for _ in range(12)) for _ in range(100)],
                         [0.6] * 100)
    assert other is not None and other.out_of_domain and len(other.reasons) == 2  # words and confidence
    assert domain_shift(profile, ["کوتاه"] * 5) is None  # too few comments to say
    assert domain_shift(None, [comment() for _ in range(100)]) is None  # a folder trained before the profile


def test_the_profile_keeps_no_personal_data(sample_model: LoadedModel) -> None:
    from bazkhord.training.train import domain_profile

    texts = ["ارسال دیر بود، ایمیل من ali.rezaei@example.com است", "شماره من 09121234567 هست و پیک نیومد"]
    splits = {"train": [FeedbackRecord(text=t) for t in texts * 3], "dev": [FeedbackRecord(text=t) for t in texts]}
    profile = domain_profile(sample_model.tagger, splits, sample_model.tagger.normaliser)
    words = set(profile["vocabulary"])
    assert {"ارسال", "پیک"} <= words and not words & {"ali", "rezaei", "example", "com"}
    assert not any(ch.isdigit() for w in words for ch in w)
