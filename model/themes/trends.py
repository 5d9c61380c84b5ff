"""Trends of themes over time: counts per period, a test of the latest complete period against the ones before it,
Benjamini-Hochberg across a report's themes, and which themes are new."""

from __future__ import annotations

import calendar
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
from scipy.special import gammaln

from bazkhord.data.record import FeedbackRecord
from bazkhord.model.themes.report import Theme, Trend

PERIODS = ("day", "week", "month")
HISTORY = 6
TREND_TEST = ("two-sided Fisher's exact test of the theme's share of comments in the latest complete period against "
              "the six periods before it pooled, at least 5 comments with the theme in those seven periods; p-values "
              "adjusted across the report's themes (Benjamini-Hochberg); rising/falling when the adjusted q < 0.05. A "
              "last period that is not over is shown but not tested")
MIN_TREND_COMMENTS = 5


def utc_naive(moment: datetime | None) -> datetime | None:
    """Times with a zone in UTC, times without one as given: so both kinds compare and fall in the same periods."""
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def period_key(moment: datetime, period: str) -> str:
    if period == "day":
        return moment.date().isoformat()
    if period == "week":
        year, week, _ = moment.isocalendar()
        return f"{year:04d}-W{week:02d}"
    return f"{moment.year:04d}-{moment.month:02d}"  # zero-padded: keys sort as the times do


def previous_period(moment: datetime, period: str) -> datetime:
    """A moment in the period before `moment`'s."""
    if period == "day":
        return moment - timedelta(days=1)
    if period == "week":
        return moment - timedelta(days=7)
    return moment.replace(day=1) - timedelta(days=1)


def period_range(first: datetime, last: datetime, period: str, limit: int | None = None) -> list[str]:
    """Every period key from `first`'s to `last`'s, oldest first; only the newest `limit` of them when there are
    more. Walks one step a period, from the newest, so its cost is bounded by `limit` whatever the dates."""
    keys: list[str] = []
    oldest = period_key(first, period)
    moment = last
    while True:
        keys.append(period_key(moment, period))
        if keys[-1] <= oldest or (limit is not None and len(keys) >= limit):
            break
        moment = previous_period(moment, period)
    return keys[::-1]


def two_proportion_test(x1: int, n1: int, x0: int, n0: int) -> tuple[float, float]:
    """z and two-sided p for p1 = x1/n1 against p0 = x0/n0."""
    pooled = (x1 + x0) / (n1 + n0)
    if pooled in (0.0, 1.0):
        return 0.0, 1.0
    z = (x1 / n1 - x0 / n0) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    return z, math.erfc(abs(z) / math.sqrt(2))


def trend_of(comments: set[int], periods_of: list[str | None], periods: list[str], period: str,
             partial_last: bool = False) -> Trend | None:
    """Counts per period and the test of the latest complete period against the six before it (raw p; the report
    adjusts the p-values of all its themes together, `adjust_trends`)."""
    if not periods:
        return None
    index = {p: i for i, p in enumerate(periods)}
    counts = [0] * len(periods)
    totals = [0] * len(periods)
    for i, key in enumerate(periods_of):
        if key is None:
            continue
        totals[index[key]] += 1
        if i in comments:
            counts[index[key]] += 1
    return trend_of_counts(counts, totals, periods, period, partial_last)


def trend_of_counts(counts: list[int], totals: list[int], periods: list[str], period: str,
                    partial_last: bool = False) -> Trend:
    """The same test on counts already made (the workspace counts them in SQL)."""
    trend = Trend(period, periods, counts, totals, "insufficient history", partial_last=partial_last)
    end = len(periods) - (1 if partial_last else 0)  # the periods that may be tested
    latest, baseline = slice(end - 1, end), slice(end - HISTORY - 1, end - 1)
    if end < HISTORY + 1 or totals[end - 1] == 0 or sum(totals[baseline]) == 0:
        return trend
    x1, n1 = sum(counts[latest]), sum(totals[latest])
    x0, n0 = sum(counts[baseline]), sum(totals[baseline])
    trend.latest_share, trend.baseline_share = round(x1 / n1, 4), round(x0 / n0, 4)
    if x1 + x0 < MIN_TREND_COMMENTS:
        trend.direction = "too few comments"
        return trend
    z, _ = two_proportion_test(x1, n1, x0, n0)
    p = fisher_two_sided(x1, n1, x0, n0)
    trend.z, trend.p_value = round(z, 3), round(p, 5)
    trend.direction = "steady" if p >= 0.05 else ("rising" if x1 / n1 > x0 / n0 else "falling")
    return trend


def fisher_two_sided(x1: int, n1: int, x0: int, n0: int) -> float:
    """Fisher's exact test, two-sided, of x1 of n1 against x0 of n0: scipy's `fisher_exact` p-value (the tables as
    likely as the observed one or less, with the same relative tolerance), from the hypergeometric log-pmf of the
    whole support at once. scipy's own walks it in Python and costs milliseconds a table; the workspace tests every
    theme on every page."""
    total, hits = n1 + n0, x1 + x0
    low, high = max(0, hits - n0), min(hits, n1)
    support = np.arange(low, high + 1)
    logpmf = (gammaln(n1 + 1) - gammaln(support + 1) - gammaln(n1 - support + 1)
              + gammaln(n0 + 1) - gammaln(hits - support + 1) - gammaln(n0 - hits + support + 1)
              - gammaln(total + 1) + gammaln(hits + 1) + gammaln(total - hits + 1))
    observed = logpmf[x1 - low]
    p = float(np.exp(logpmf[logpmf <= observed + math.log1p(1e-7)]).sum())
    return min(1.0, p)


def adjust_trends(trends: Sequence[Trend | None]) -> None:
    """Benjamini-Hochberg over the tested trends of one report: with 18 themes tested, some p < 0.05 by chance."""
    tested = [t for t in trends if t is not None and t.p_value is not None]
    if not tested:
        return
    order = sorted(range(len(tested)), key=lambda i: tested[i].p_value or 1.0)
    m = len(tested)
    q = [1.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, (tested[i].p_value or 1.0) * m / rank)
        q[i] = running
    for trend, value in zip(tested, q, strict=True):
        trend.q_value = round(value, 5)
        if value >= 0.05:
            trend.direction = "steady"


def last_period_partial(last: datetime, period: str) -> bool:
    """Whether the latest comment's period looks unfinished: the data covers less than 70% of it (a week's data
    ending on its Thursday, a month's before its 22nd). A day is always taken as whole."""
    if period == "day":
        return False
    if period == "week":
        start = datetime(last.year, last.month, last.day) - timedelta(days=last.isoweekday() - 1)
        length = timedelta(days=7)
    else:
        start = datetime(last.year, last.month, 1)
        length = timedelta(days=calendar.monthrange(last.year, last.month)[1])
    return (last - start) < 0.7 * length


def mark_new(themes: Sequence[Theme], comments_of: Mapping[int, set[int]], records: Sequence[FeedbackRecord]) -> None:
    """A theme is new when none of its dated comments falls in the first half of the report's time and at least
    three quarters fall in its last quarter."""
    moments = [utc_naive(r.created_at) for r in records]
    dated = [m for m in moments if m is not None]
    if len(dated) < 2:
        return
    first, last = min(dated), max(dated)
    span = last - first
    if span.total_seconds() <= 0:
        return
    for theme in themes:
        times = [m for i in comments_of[id(theme)] if (m := moments[i]) is not None]
        if len(times) < MIN_TREND_COMMENTS:
            continue
        late = sum(1 for m in times if m >= first + 0.75 * span)
        theme.new = all(m >= first + 0.5 * span for m in times) and late >= 0.75 * len(times)
