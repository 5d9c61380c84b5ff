"""Theme analysis: the statistics and the driver arithmetic by hand, on a rule-based stand-in tagger."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import ClassVar

import pytest

from bazkhord.data.record import FeedbackRecord
from bazkhord.data.taxonomy import load_taxonomy
from bazkhord.model.base import AspectTag, Tag
from bazkhord.model.folder import LoadedModel
from bazkhord.model.themes.analysis import ThemeAnalyzer, ThemeSettings
from bazkhord.model.themes.impact import nps_of
from bazkhord.model.themes.trends import period_key, period_range, trend_of, two_proportion_test
from tests.conftest import SAMPLE

RULES = {"دیر": ("delivery", "negative"), "له": ("packaging", "negative"), "عالی": ("quality", "positive")}


class RuleTagger:
    """Tags by keyword, so the expected report can be worked out by hand."""

    taxonomy = load_taxonomy()
    manifest: ClassVar[dict[str, str]] = {"name": "rules", "version": "1"}
    labels: ClassVar[list[str]] = ["negative", "positive"]
    aspect_names: ClassVar[list[str]] = ["delivery", "packaging", "quality"]

    def normalise(self, texts: list[str]) -> list[str]:
        return [t.strip() for t in texts]

    def tag(self, texts: list[str], normalised: list[str] | None = None) -> list[Tag]:
        tags = []
        for text in texts:
            aspects = tuple(AspectTag(a, 1.0, p, 1.0) for word, (a, p) in RULES.items() if word in text.split())
            negative = any(a.polarity == "negative" for a in aspects) or "بد" in text.split()
            tags.append(Tag("negative" if negative else "positive",
                            {"negative": 0.9 if negative else 0.1, "positive": 0.1 if negative else 0.9}, aspects))
        return tags


def comments() -> list[FeedbackRecord]:
    rows = ["ارسال دیر بود"] * 4 + ["ارسال دیر بود. جعبه له بود"] * 2 + ["کیفیت عالی بود"] * 4
    ratings = [2, 2, 2, 2, 1, 1, 5, 5, 5, 5]
    nps = [3, 3, 3, 3, 0, 0, 10, 10, 9, 7]
    return [FeedbackRecord(text=t, id=str(i), rating=r, nps=n, channel="sms" if i % 2 else "app_review")
            for i, (t, r, n) in enumerate(zip(rows, ratings, nps, strict=True))]


def test_driver_impact_by_hand() -> None:
    settings = ThemeSettings(min_theme_size=2, min_subtheme_size=2, taxonomy="model")
    report = ThemeAnalyzer(RuleTagger(), settings).analyse(comments())  # type: ignore[arg-type]
    assert report.totals.complaint_comments == 6 and report.totals.complaint_share == 0.6
    delivery, packaging = report.themes
    assert (delivery.id, packaging.id) == ("aspect:delivery", "aspect:packaging")
    assert delivery.comments == 6 and delivery.impact.negative_comment_share == 1.0
    # Four comments complain of delivery alone: without it they are not negative (40 points of 100 comments).
    assert delivery.impact.negative_share_change_pts == 40.0
    assert packaging.impact.negative_share_change_pts == 0.0  # its two comments also blame delivery
    # Their ratings (2) become the mean of the calm comments (5): mean rating rises by 4 * 3 / 10.
    assert delivery.impact.rating_change == pytest.approx(1.2)
    # NPS before: 3 promoters, 6 detractors of 10 = -30. Four detractors take the calm median (9.5) and become
    # promoters: 7 promoters, 2 detractors = +50, a rise of 80.
    assert report.totals.nps == -30.0 and delivery.impact.nps_change == pytest.approx(80.0)
    assert {r.value: r.comments for r in delivery.breakdowns["channel"]} == {"app_review": 3, "sms": 3}
    assert delivery.label == "ارسال و تحویل" and delivery.label_en == "Delivery & shipping"


def test_two_proportion_test_by_hand() -> None:
    z, p = two_proportion_test(30, 100, 10, 100)
    pooled = 0.2
    assert z == pytest.approx((0.3 - 0.1) / math.sqrt(pooled * (1 - pooled) * 0.02))
    assert p == pytest.approx(math.erfc(abs(z) / math.sqrt(2)))
    assert two_proportion_test(0, 10, 0, 10) == (0.0, 1.0)


def test_trend_needs_seven_periods_and_flags_a_rise() -> None:
    periods = [f"p{i}" for i in range(7)]
    periods_of: list[str | None] = [p for p in periods for _ in range(20)]
    rising = {i for i in range(120, 140) if i % 2 == 0} | {0, 25, 45, 65, 85, 105}
    trend = trend_of(rising, periods_of, periods, "week")
    assert trend is not None and trend.direction == "rising" and trend.p_value is not None and trend.p_value < 0.05
    assert trend.counts == [1, 1, 1, 1, 1, 1, 10] and trend.totals == [20] * 7
    short = trend_of(rising, periods_of[:120], periods[:6], "week")
    assert short is not None and short.direction == "insufficient history"


def test_periods() -> None:
    assert period_key(datetime(2026, 10, 31), "week") == "2026-W44"
    assert period_key(datetime(2026, 10, 31), "month") == "2026-10"
    assert period_range(datetime(2026, 1, 30), datetime(2026, 3, 2), "month") == ["2026-01", "2026-02", "2026-03"]
    start = datetime(2026, 5, 1)
    assert len(period_range(start, start + timedelta(days=2), "day")) == 3


def test_nps() -> None:
    assert nps_of([10, 9, 8, 7, 6, 0]) == pytest.approx(0.0)
    assert nps_of([]) is None


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="period"):
        ThemeSettings(period="year")


def test_sample_themes_are_found_and_deterministic(sample_model: LoadedModel) -> None:
    from bazkhord.data.readers import read_records

    records = read_records(SAMPLE).records
    analyzer = ThemeAnalyzer(sample_model.tagger, ThemeSettings(period="week"))
    report = analyzer.analyse(records)
    by_id = {t.id: t for t in report.themes}
    assert {"aspect:delivery", "aspect:quality", "aspect:app"} <= set(by_id)
    app = by_id["aspect:app"]
    assert app.trend is not None and app.trend.direction == "rising"  # the sample's late app update
    emerging = [t for t in report.themes if t.kind == "emerging"]
    assert any("باشگاه" in " ".join(t.keyphrases) for t in emerging)  # loyalty club: not in the taxonomy
    assert all(t.subthemes for t in report.themes if t.kind == "aspect")
    quotes = [q.text for t in report.themes for q in t.quotes + [q for s in t.subthemes for q in s.quotes]]
    assert quotes and not any("@" in q or "09" in q for q in quotes)  # PII masked
    again = ThemeAnalyzer(sample_model.tagger, ThemeSettings(period="week")).analyse(records)
    assert [(t.id, t.label, t.keyphrases, [s.label for s in t.subthemes]) for t in again.themes] == \
        [(t.id, t.label, t.keyphrases, [s.label for s in t.subthemes]) for t in report.themes]
