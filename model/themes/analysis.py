"""From comments to a ranked theme report.

1. Each comment is split into statements (hazm's sentence ends plus contrastive clauses) and every statement is
   tagged, so one comment can praise the product and blame the courier.
2. Negative statements of each aspect form an aspect theme, clustered into sub-themes with keyphrase labels.
3. Negative statements with no aspect of the taxonomy are clustered into emerging themes.
4. Every theme gets a trend (two-proportion z-test: latest period against the six before it), an impact
   (what the negative share, mean rating and NPS would be if its complaints were neutral) and breakdowns.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from data.normalise import mask_pii
from data.record import FeedbackRecord
from model.segments import split_segments
from model.tagger import BaseTagger
from model.themes.report import (
    SCHEMA_VERSION,
    BreakdownRow,
    Impact,
    Quote,
    SubTheme,
    Theme,
    ThemeReport,
    Totals,
    Trend,
)
from model.themes.steps import (
    PLACEHOLDER,
    Clusterer,
    CtfidfLabeler,
    Embedder,
    KMeansClusterer,
    Labeler,
    Reducer,
    SvdReducer,
    TfidfEmbedder,
)

PERIODS = ("day", "week", "month")
NEGATIVE = {"negative", "mixed"}
HISTORY = 6
TREND_TEST = ("two-sided two-proportion z-test of the theme's share of comments in the latest period against "
              "the six periods before it pooled; rising/falling when p < 0.05")
IMPACT_METHOD = ("a comment is negative when one of its statements is; for each theme, the comments whose only "
                 "negative statements belong to it are counted as not negative, their rating set to the mean "
                 "rating and their NPS score to the median score of comments without complaints")
BATCH = 256
_LETTERS = re.compile(r"[\W_]+")
Progress = Callable[[int, int], None]


@dataclass
class ThemeSettings:
    period: str = "week"
    seed: int = 13
    min_theme_size: int = 8  # negative statements for a theme
    min_subtheme_size: int = 5
    max_subthemes: int = 5
    # A statement with no aspect joins the emerging pool only when the model is this sure it is negative.
    min_negative_confidence: float = 0.7
    quotes: int = 3
    breakdown_fields: tuple[str, ...] = ("channel", "product", "segment")
    # Trends cover at most this many periods, the newest: one comment dated decades off must not make a report of
    # thousands of empty periods (or take minutes to walk them).
    max_periods: int = 400

    def __post_init__(self) -> None:
        if self.period not in PERIODS:
            raise ValueError(f"period must be one of {PERIODS}, not {self.period!r}")
        if self.min_theme_size < 2 or self.min_subtheme_size < 2:
            raise ValueError("minimum theme and sub-theme sizes must be at least 2")
        if self.max_periods < 1:
            raise ValueError(f"max_periods must be at least 1, not {self.max_periods}")


@dataclass
class ThemeSteps:
    """The swappable pipeline. The defaults need nothing but scikit-learn and hazm."""

    embedder: Embedder = field(default_factory=TfidfEmbedder)
    reducer: Reducer | None = None
    clusterer: Clusterer | None = None
    labeler: Labeler = field(default_factory=CtfidfLabeler)

    def for_seed(self, seed: int, max_k: int, min_size: int) -> tuple[Reducer, Clusterer]:
        return (self.reducer or SvdReducer(seed=seed),
                self.clusterer or KMeansClusterer(max_k=max_k, min_size=min_size, seed=seed))


@dataclass
class Statement:
    comment: int
    text: str  # raw span
    normalised: str
    sentiment: str
    negative_probability: float
    aspects: dict[str, str]


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


def trend_of(comments: set[int], periods_of: list[str | None], periods: list[str], period: str) -> Trend | None:
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
    trend = Trend(period, periods, counts, totals, "insufficient history")
    if len(periods) < HISTORY + 1 or totals[-1] == 0 or sum(totals[-HISTORY - 1 : -1]) == 0:
        return trend
    x1, n1 = counts[-1], totals[-1]
    x0, n0 = sum(counts[-HISTORY - 1 : -1]), sum(totals[-HISTORY - 1 : -1])
    z, p = two_proportion_test(x1, n1, x0, n0)
    trend.latest_share, trend.baseline_share = round(x1 / n1, 4), round(x0 / n0, 4)
    trend.z, trend.p_value = round(z, 3), round(p, 5)
    trend.direction = "steady" if p >= 0.05 else ("rising" if z > 0 else "falling")
    return trend


def nps_of(scores: Sequence[float]) -> float | None:
    if not scores:
        return None
    promoters = sum(1 for s in scores if s >= 9)
    detractors = sum(1 for s in scores if s <= 6)
    return round(100 * (promoters - detractors) / len(scores), 2)


@dataclass(frozen=True)
class Outcomes:
    """Per-report baselines of the impact counterfactual, the same for every theme."""

    ratings: dict[int, float]  # comment index -> rating
    scores: dict[int, float]  # comment index -> NPS score
    calm_rating: float | None  # mean rating of comments without complaints
    calm_score: float | None  # median NPS score of those comments

    @classmethod
    def of(cls, records: Sequence[FeedbackRecord], negative: Mapping[int, object]) -> Outcomes:
        ratings = {i: float(r.rating) for i, r in enumerate(records) if r.rating is not None}
        scores = {i: float(r.nps) for i, r in enumerate(records) if r.nps is not None}
        calm_ratings = [v for i, v in ratings.items() if i not in negative]
        calm_scores = [v for i, v in scores.items() if i not in negative]
        return cls(ratings, scores, float(np.mean(calm_ratings)) if calm_ratings else None,
                   float(np.median(calm_scores)) if calm_scores else None)

    def rating_change(self, relieved: set[int]) -> float | None:
        if not self.ratings or self.calm_rating is None:
            return None
        before = float(np.mean(list(self.ratings.values())))
        after = float(np.mean([self.calm_rating if i in relieved else v for i, v in self.ratings.items()]))
        return round(after - before, 4)

    def nps_change(self, relieved: set[int]) -> float | None:
        if not self.scores or self.calm_score is None:
            return None
        before = nps_of(list(self.scores.values()))
        after = nps_of([self.calm_score if i in relieved else v for i, v in self.scores.items()])
        return None if before is None or after is None else round(after - before, 3)


class ThemeAnalyzer:
    def __init__(self, tagger: BaseTagger, settings: ThemeSettings | None = None, steps: ThemeSteps | None = None) -> None:
        self.tagger = tagger
        self.settings = settings or ThemeSettings()
        self.steps = steps or ThemeSteps()
        taxonomy = tagger.taxonomy
        self.names = {a.key: (a.name_fa, a.name_en) for a in taxonomy.aspects} if taxonomy is not None else {}

    # -- statements -------------------------------------------------------------------------------------
    def statements(self, records: Sequence[FeedbackRecord], progress: Progress | None = None) -> list[Statement]:
        pending: list[tuple[int, str]] = []
        for i, record in enumerate(records):
            for span in split_segments(record.text):
                pending.append((i, span.text))
        result: list[Statement] = []
        for start in range(0, len(pending), BATCH):
            batch = pending[start : start + BATCH]
            texts = [text for _, text in batch]
            normalised_texts = self.tagger.normalise(texts)
            tags = self.tagger.tag(texts, normalised_texts)
            for (comment, text), normalised, tag in zip(batch, normalised_texts, tags, strict=True):
                if not normalised:
                    continue
                result.append(Statement(comment, text, normalised, tag.sentiment,
                                        tag.probabilities.get("negative", 0.0),
                                        {a.aspect: a.polarity for a in tag.aspects}))
            if progress is not None:
                progress(min(start + BATCH, len(pending)), len(pending))
        return result

    # -- the report -------------------------------------------------------------------------------------
    def analyse(self, records: Sequence[FeedbackRecord], progress: Progress | None = None) -> ThemeReport:
        s = self.settings
        statements = self.statements(records, progress)
        negative_by_comment: dict[int, list[int]] = defaultdict(list)
        by_aspect: dict[str, list[int]] = defaultdict(list)
        unassigned: list[int] = []
        for k, st in enumerate(statements):
            negative_aspects = [a for a, p in st.aspects.items() if p in NEGATIVE]
            if negative_aspects or st.sentiment in NEGATIVE:
                negative_by_comment[st.comment].append(k)
            for aspect in negative_aspects:
                by_aspect[aspect].append(k)
            # Contact details («با [PHONE] تماس بگیرید») come with complaints but are no cause of them.
            if (st.sentiment == "negative" and not st.aspects and st.negative_probability >= s.min_negative_confidence
                    and not PLACEHOLDER.search(st.normalised)):
                unassigned.append(k)

        negative_statements = {k for ks in negative_by_comment.values() for k in ks}
        # (kind, aspect, statement indices, sub-themes, keyphrases, quotes when the clustering chose them)
        themes: list[tuple[str, str | None, list[int], list[SubTheme], list[str], list[Quote] | None]] = []
        for aspect in sorted(by_aspect, key=lambda a: (-len(by_aspect[a]), a)):
            members = by_aspect[aspect]
            if len(members) < s.min_theme_size:
                continue
            subthemes = [sub for sub, _ in self._clusters(statements, records, members, s.min_subtheme_size,
                                                          s.max_subthemes)]
            # Keyphrases against the other complaints, so they say what is special about this aspect.
            inside = set(members)
            others = [st.normalised for k, st in enumerate(statements)
                      if k not in inside and k in negative_statements]
            keyphrases = self.steps.labeler.keyphrases([[statements[k].normalised for k in members], others])[0]
            themes.append(("aspect", aspect, members, subthemes, keyphrases, None))
        for cluster, members in self._clusters(statements, records, unassigned, s.min_theme_size, 8):
            themes.append(("emerging", None, members, [], cluster.keyphrases, cluster.quotes))

        periods_of, periods, before = self._periods(records)
        outcomes = Outcomes.of(records, negative_by_comment)
        report_themes = [self._theme(i, kind, aspect, members, subs, keys, quotes, statements, records,
                                     negative_by_comment, outcomes, periods_of, periods)
                         for i, (kind, aspect, members, subs, keys, quotes) in enumerate(themes)]
        # A cluster that is never a comment's only complaint («ناامید شدم») is a reaction, not a cause.
        reactions = [t for t in report_themes if t.kind == "emerging" and t.impact.negative_share_change_pts == 0]
        report_themes = [t for t in report_themes if t not in reactions]
        report_themes.sort(key=lambda t: (-t.impact.negative_share_change_pts, -t.comments, t.id))
        for number, theme in enumerate(t for t in report_themes if t.kind == "emerging"):
            theme.id = f"emerging:{number}"
        ratings = [r.rating for r in records if r.rating is not None]
        dates = sorted(m for m in (utc_naive(r.created_at) for r in records) if m is not None)
        notes = []
        if reactions:
            notes.append(f"{len(reactions)} cluster(s) of general discontent left out ("
                         + ", ".join(t.label for t in reactions) + "): never the only complaint of a comment")
        if not dates:
            notes.append("no created_at in the data: trends are not computed")
        elif len(periods) < HISTORY + 1:
            notes.append(f"only {len(periods)} {s.period}(s) of data: trends need {HISTORY + 1}")
        if before:
            notes.append(f"{before} comment(s) dated before {periods[0]} are left out of the trends: they cover the "
                         f"newest {s.max_periods} {s.period}s at most")
        return ThemeReport(
            schema_version=SCHEMA_VERSION,
            model={"name": str(self.tagger.manifest.get("name", "")), "version": str(self.tagger.manifest.get("version", ""))},
            settings={"period": s.period, "seed": s.seed, "min_theme_size": s.min_theme_size,
                      "min_subtheme_size": s.min_subtheme_size},
            totals=Totals(
                comments=len(records), statements=len(statements), negative_comments=len(negative_by_comment),
                negative_share=round(len(negative_by_comment) / len(records), 4) if records else 0.0,
                mean_rating=round(float(np.mean(ratings)), 3) if ratings else None,
                nps=nps_of([r.nps for r in records if r.nps is not None]),
                first_date=dates[0].date().isoformat() if dates else None,
                last_date=dates[-1].date().isoformat() if dates else None,
            ),
            themes=report_themes,
            trend_test=TREND_TEST,
            impact_method=IMPACT_METHOD,
            notes=notes,
        )

    # -- parts --------------------------------------------------------------------------------------------
    def _clusters(self, statements: list[Statement], records: Sequence[FeedbackRecord], members: list[int],
                  min_size: int, max_k: int) -> list[tuple[SubTheme, list[int]]]:
        """Cluster the given statements; each cluster as a sub-theme with the statement indices it holds."""
        if len(members) < min_size:
            return []
        texts = [statements[k].normalised for k in members]
        reducer, clusterer = self.steps.for_seed(self.settings.seed, max_k, min_size)
        vectors = reducer.reduce(self.steps.embedder.embed(texts))
        labels = clusterer.cluster(vectors)
        ids = sorted(set(labels) - {-1})
        keyphrases = self.steps.labeler.keyphrases([[texts[i] for i in np.flatnonzero(labels == c)] for c in ids])
        clusters = []
        for c, keys in zip(ids, keyphrases, strict=True):
            rows = np.flatnonzero(labels == c)
            centroid = vectors[rows].mean(axis=0)
            closest = rows[np.argsort(-(vectors[rows] @ centroid), kind="stable")]
            quotes = self._quotes([members[i] for i in closest], statements, records)
            sub = SubTheme(label=self.steps.labeler.label(keys), keyphrases=keys, statements=len(rows),
                           comments=len({statements[members[i]].comment for i in rows}), quotes=quotes)
            clusters.append((sub, [members[i] for i in rows]))
        return clusters

    def _quotes(self, order: Sequence[int], statements: list[Statement], records: Sequence[FeedbackRecord]) -> list[Quote]:
        quotes: list[Quote] = []
        seen: set[str] = set()
        for k in order:
            st = statements[k]
            key = _LETTERS.sub("", st.normalised)  # the same words with other punctuation or emoji: one quote
            if key in seen:
                continue
            seen.add(key)
            quotes.append(Quote(records[st.comment].id, mask_pii(st.text)))
            if len(quotes) == self.settings.quotes:
                break
        return quotes

    def _periods(self, records: Sequence[FeedbackRecord]) -> tuple[list[str | None], list[str], int]:
        """Each comment's period key, the report's periods, and how many dated comments fall before them."""
        moments = [utc_naive(r.created_at) for r in records]
        dated = [m for m in moments if m is not None]
        if not dated:
            return [None] * len(records), [], 0
        periods = period_range(min(dated), max(dated), self.settings.period, self.settings.max_periods)
        keys = [period_key(m, self.settings.period) if m else None for m in moments]
        earliest = periods[0]
        before = sum(1 for k in keys if k is not None and k < earliest)
        return [k if k is None or k >= earliest else None for k in keys], periods, before

    def _theme(self, number: int, kind: str, aspect: str | None, members: list[int], subthemes: list[SubTheme],
               keyphrases: list[str], quotes: list[Quote] | None, statements: list[Statement],
               records: Sequence[FeedbackRecord],
               negative_by_comment: dict[int, list[int]], outcomes: Outcomes, periods_of: list[str | None],
               periods: list[str]) -> Theme:
        member_set = set(members)
        comments = {statements[k].comment for k in members}
        # Comments whose every negative statement belongs to this theme stop being negative without it.
        relieved = {c for c in comments if set(negative_by_comment[c]) <= member_set}
        impact = Impact(
            negative_comment_share=round(len(comments) / max(1, len(negative_by_comment)), 4),
            negative_share_change_pts=round(100 * len(relieved) / (len(records) or 1), 3),
            rating_change=outcomes.rating_change(relieved),
            nps_change=outcomes.nps_change(relieved),
        )
        if kind == "aspect" and aspect is not None:
            name_fa, name_en = self.names.get(aspect, (aspect, None))
            theme_id, label, label_en = f"aspect:{aspect}", name_fa, name_en
        else:
            theme_id = f"emerging:{number}"
            label, label_en = self.steps.labeler.label(keyphrases), None
        if subthemes:  # one quote from each sub-theme, largest first: the range of the complaint
            quotes = [sub.quotes[0] for sub in subthemes if sub.quotes][: self.settings.quotes]
        elif quotes is None:
            quotes = self._quotes(sorted(members, key=lambda k: (len(statements[k].text), k)), statements, records)
        return Theme(
            id=theme_id, kind=kind, aspect=aspect, label=label, label_en=label_en, keyphrases=keyphrases,
            statements=len(members), comments=len(comments), impact=impact,
            trend=trend_of(comments, periods_of, periods, self.settings.period), quotes=quotes, subthemes=subthemes,
            breakdowns=self._breakdowns(records, comments),
        )

    def _breakdowns(self, records: Sequence[FeedbackRecord], comments: set[int]) -> dict[str, list[BreakdownRow]]:
        result: dict[str, list[BreakdownRow]] = {}
        for name in self.settings.breakdown_fields:
            values = [getattr(r, name) for r in records]
            if not any(values):
                continue
            totals = Counter(v for v in values if v)
            hits = Counter(values[i] for i in comments if values[i])
            rows = [BreakdownRow(str(v), hits[v], round(hits[v] / totals[v], 4)) for v in totals if hits[v]]
            rows.sort(key=lambda row: (-row.comments, row.value))
            result[name] = rows[:10]
        return result
