"""From comments to a ranked theme report.

1. Each comment is split into statements (hazm's sentence ends plus contrastive clauses) and every statement is
   tagged, so one comment can praise the product and blame the courier.
2. Negative statements of each aspect form an aspect theme, clustered into sub-themes with keyphrase labels.
3. Negative statements with no aspect of the taxonomy are clustered into emerging themes.
4. Every theme gets a trend (Fisher's exact test: latest complete period against the six before it, with
   Benjamini-Hochberg across themes), an impact
   (what the negative share, mean rating and NPS would be if its complaints were neutral) and breakdowns.
"""

from __future__ import annotations

import calendar
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from scipy.stats import fisher_exact
from sklearn.preprocessing import normalize

from data.normalise import mask_pii
from data.record import FeedbackRecord
from data.taxonomy import Taxonomy, load_taxonomy, taxonomy_names
from model.base import NEGATIVE_SENTIMENTS, NEGATIVE_SHARE_DEFINITION
from model.segments import split_segments
from model.tagger import BaseTagger
from model.themes.embeddings import default_embedder
from model.themes.opinion import carries_no_opinion
from model.themes.prevalence import adjusted_shares
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
    WORD,
    Clusterer,
    CtfidfLabeler,
    Embedder,
    KMeansClusterer,
    Labeler,
    NearestCentroid,
    Reducer,
    SvdReducer,
    TfidfEmbedder,
    fit_projection,
)
from model.themes.zeroshot import ZeroShotAspects

PERIODS = ("day", "week", "month")
NEGATIVE = set(NEGATIVE_SENTIMENTS)
HISTORY = 6
LEANS_NEGATIVE = 0.5  # a statement this likely negative (or mixed) helps choose the report's taxonomy
TREND_TEST = ("two-sided Fisher's exact test of the theme's share of comments in the latest complete period against "
              "the six periods before it pooled, at least 5 comments with the theme in those seven periods; p-values "
              "adjusted across the report's themes (Benjamini-Hochberg); rising/falling when the adjusted q < 0.05. A "
              "last period that is not over is shown but not tested")
MIN_TREND_COMMENTS = 5
IMPACT_METHOD = ("a comment is negative when one of its statements is; for each theme, the comments whose only "
                 "negative statements belong to it are counted as not negative, their rating set to the mean "
                 "rating and their NPS score to the median score of comments without complaints")
BATCH = 256
_LETTERS = re.compile(r"[\W_]+")
OTHER_SUBTHEME = "سایر موارد"
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
    # Fields to break themes down by: channel, product, segment and every other metadata column of the data (a list
    # such as ordered products counted per item), or only the names given.
    breakdown_fields: tuple[str, ...] | None = None
    # Trends cover at most this many periods, the newest: one comment dated decades off must not make a report of
    # thousands of empty periods (or take minutes to walk them).
    max_periods: int = 400
    # The aspects themes are made of: "auto" (the shipped taxonomy whose seed phrases fit the complaints best; the
    # model's own when that is it), "model" (the model's own), or a shipped name (ecommerce, food_delivery) / file.
    taxonomy: str = "auto"
    # A negative statement inside a comment the model calls positive is a complaint only when this sure: a happy
    # customer's «بازم سفارش میدم» read as negative must not be quoted as a complaint.
    strong_negative: float = 0.6
    max_emerging: int = 30  # the silhouette chooses how many emerging themes; this only bounds the search
    # Statements embedded by the pretrained encoder (where its folder exists) at most; more use TF-IDF (CPU time).
    max_encoder_statements: int = 2000
    zero_shot: str = "lexical"  # how statements get a taxonomy's aspects without a trained head: "lexical" or "e5"
    # A theme with more statements than this is clustered on a sample this large (the embedding, the reduction and
    # k-means fitted on it); the rest join the nearest cluster, chunk by chunk (on Ray workers where given).
    max_cluster_statements: int = 20_000

    def __post_init__(self) -> None:
        if self.period not in PERIODS:
            raise ValueError(f"period must be one of {PERIODS}, not {self.period!r}")
        if self.min_theme_size < 2 or self.min_subtheme_size < 2:
            raise ValueError("minimum theme and sub-theme sizes must be at least 2")
        if self.max_cluster_statements < 100:
            raise ValueError(f"max_cluster_statements must be at least 100, not {self.max_cluster_statements}")
        if self.max_periods < 1:
            raise ValueError(f"max_periods must be at least 1, not {self.max_periods}")
        if self.zero_shot not in ("lexical", "e5"):
            raise ValueError(f"zero_shot must be 'lexical' or 'e5', not {self.zero_shot!r}")


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


@dataclass(frozen=True)
class Membership:
    """One complaint statement and the theme (and sub-theme) that holds it: what an analyst exports to check."""

    comment: int  # index into the records
    comment_id: str | None
    start: int  # the statement's span in the comment's text
    end: int
    text: str
    sentiment: str
    theme_id: str
    subtheme: str | None


@dataclass
class Statement:
    comment: int
    text: str  # raw span
    normalised: str
    sentiment: str
    negative_probability: float
    aspects: dict[str, str]
    opinion: bool = True  # False: a greeting, thanks, a wish or purchase context, neutral whatever the model says
    complaint: bool = False  # a negative statement that themes hold and quote
    start: int = 0  # the span in the comment's text
    end: int = 0

    def to_row(self) -> dict[str, object]:
        """What `tag-batch --statements` stores of the statement beside its comment (the text is the span)."""
        return {"start": self.start, "end": self.end, "normalised": self.normalised, "sentiment": self.sentiment,
                "negative": round(self.negative_probability, 6), "aspects": self.aspects, "opinion": self.opinion}

    @classmethod
    def from_row(cls, comment: int, text: str, row: Mapping[str, Any]) -> Statement:
        start, end = int(row["start"]), int(row["end"])
        return cls(comment, text[start:end], str(row["normalised"]), str(row["sentiment"]), float(row["negative"]),
                   {str(a): str(p) for a, p in row["aspects"].items()}, bool(row["opinion"]), start=start, end=end)

    @property
    def negative(self) -> bool:
        """The model calls it, or one of its aspects, negative: the first condition of a complaint."""
        return self.sentiment in NEGATIVE or any(p in NEGATIVE for p in self.aspects.values())

    @property
    def may_complain(self) -> bool:
        """Whether the report can use it at all: only negative statements become complaints, and only those the
        model leans negative on decide the taxonomy; the rest are only counted."""
        return self.negative or self.negative_probability >= LEANS_NEGATIVE


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
    p = float(fisher_exact([[x1, n1 - x1], [x0, n0 - x0]]).pvalue)
    trend.z, trend.p_value = round(z, 3), round(p, 5)
    trend.direction = "steady" if p >= 0.05 else ("rising" if x1 / n1 > x0 / n0 else "falling")
    return trend


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


def statements_of(tagger: BaseTagger, texts: Sequence[str], progress: Progress | None = None) -> list[Statement]:
    """Every statement of the comments, tagged; `Statement.comment` is the comment's index in `texts`. The report
    calls it, and so does `tag-batch --statements`, which runs it where the comments are tagged."""
    pending: list[tuple[int, str, int, int]] = []
    for i, text in enumerate(texts):
        for span in split_segments(text):
            pending.append((i, span.text, span.start, span.end))
    result: list[Statement] = []
    for start in range(0, len(pending), BATCH):
        batch = pending[start : start + BATCH]
        spans = [item[1] for item in batch]
        normalised_texts = tagger.normalise(spans)
        tags = tagger.tag(spans, normalised_texts)
        for (comment, text, begin, end), normalised, tag in zip(batch, normalised_texts, tags, strict=True):
            if not normalised:
                continue
            negative = sum(tag.probabilities.get(label, 0.0) for label in NEGATIVE)
            result.append(Statement(comment, text, normalised, tag.sentiment, negative,
                                    {a.aspect: a.polarity for a in tag.aspects}, not carries_no_opinion(normalised),
                                    start=begin, end=end))
        if progress is not None:
            progress(min(start + BATCH, len(pending)), len(pending))
    return result


@dataclass
class TaggedComments:
    """Comments tagged elsewhere (tag-batch --statements): what a report needs of them, nothing more. `records`
    carry the metadata; `statements` only those that may be complaints (`Statement.may_complain`), the others
    counted; `sentiment` is each comment's label as the model reads it."""

    records: list[FeedbackRecord]
    statements: list[Statement]
    sentiment: list[str]
    statement_count: int
    opinion_free: int


Mapper = Callable[[Callable[[list[str]], tuple[np.ndarray, np.ndarray]], list[str]], tuple[np.ndarray, np.ndarray]]
ASSIGN_CHUNK = 20_000


def map_locally(assign: Callable[[list[str]], tuple[np.ndarray, np.ndarray]],
                texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Run `assign` over the texts a chunk at a time in this process (the default; Ray's mapper runs the chunks on
    the cluster)."""
    labels, scores = [], []
    for start in range(0, len(texts), ASSIGN_CHUNK):
        chunk_labels, chunk_scores = assign(texts[start : start + ASSIGN_CHUNK])
        labels.append(chunk_labels)
        scores.append(chunk_scores)
    return (np.concatenate(labels), np.concatenate(scores)) if labels else (np.zeros(0, dtype=int), np.zeros(0))


def seeded_sample(n: int, size: int, seed: int) -> np.ndarray:
    """`size` of the indices 0..n-1, the same for the same seed, in order."""
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def cluster_on_sample(texts: list[str], embedder: Embedder, reducer: Reducer, clusterer: Clusterer, size: int,
                      seed: int, mapper: Mapper = map_locally) -> tuple[np.ndarray, np.ndarray] | None:
    """Labels (-1: none) and closeness to the cluster centre of statements too many to cluster at once: embedder,
    reducer and clusterer fitted on a seeded sample of `size`, the rest given the nearest cluster by `mapper`.
    None when the steps cannot be fitted apart from use (steps of one's own)."""
    chosen = seeded_sample(len(texts), size, seed)
    projection = fit_projection(embedder, reducer, [texts[i] for i in chosen])
    if projection is None:
        return None
    raw = projection([texts[i] for i in chosen], unit=False)
    sample_labels = clusterer.cluster(normalize(raw))
    assign = NearestCentroid.of(projection, raw, sample_labels)
    rest = np.setdiff1d(np.arange(len(texts)), chosen)
    labels = np.full(len(texts), -1, dtype=int)
    closeness = np.zeros(len(texts))
    labels[chosen] = sample_labels
    for row, c in enumerate(assign.clusters):
        closeness[chosen[sample_labels == c]] = raw[sample_labels == c] @ assign.centroids[row]
    labels[rest], closeness[rest] = mapper(assign, [texts[i] for i in rest])
    return labels, closeness


class ThemeAnalyzer:
    def __init__(self, tagger: BaseTagger, settings: ThemeSettings | None = None, steps: ThemeSteps | None = None,
                 encoder: str | None = None, mapper: Mapper = map_locally) -> None:
        self.tagger = tagger
        self.mapper = mapper  # runs the nearest-cluster assignment of statements outside a clustered sample
        self.settings = settings or ThemeSettings()
        self.steps = steps or ThemeSteps()
        # Sub-themes and emerging themes are clustered on the pretrained encoder's vectors where its folder exists.
        self.encoder = default_embedder(encoder) if steps is None else None
        self.taxonomy: Taxonomy | None = tagger.taxonomy
        self.zero_shot: ZeroShotAspects | None = None
        self.membership_: list[Membership] = []  # set by analyse: every complaint statement in a theme
        self._vectors: dict[int, np.ndarray] = {}
        self._partial = False
        self._sampled: list[tuple[int, int]] = []  # (statements, sample) of each clustering done on a sample
        self._fields: dict[str, list[tuple[str, ...]]] = {}  # set by analyse: breakdown fields' values per comment
        self._labeler: Labeler = self.steps.labeler
        self._set_names()

    def _set_names(self) -> None:
        taxonomy = self.taxonomy
        self.names = {a.key: (a.name_fa, a.name_en) for a in taxonomy.aspects} if taxonomy is not None else {}

    # -- statements -------------------------------------------------------------------------------------
    def statements(self, records: Sequence[FeedbackRecord], progress: Progress | None = None) -> list[Statement]:
        return statements_of(self.tagger, [record.text for record in records], progress)

    # -- the report -------------------------------------------------------------------------------------
    def comment_sentiment(self, records: Sequence[FeedbackRecord], statements: Sequence[Statement]) -> list[str]:
        """Each comment's sentiment, from the whole comment as the model reads it (the headline counts these, not
        "any negative statement"); a one-statement comment reuses its statement's tag."""
        counts = Counter(st.comment for st in statements)
        single = {st.comment: st.sentiment for st in statements if counts[st.comment] == 1}
        several = [i for i in range(len(records)) if i not in single]
        result = dict(single)
        for start in range(0, len(several), BATCH):
            batch = several[start : start + BATCH]
            for i, tag in zip(batch, self.tagger.tag([records[i].text for i in batch]), strict=True):
                result[i] = tag.sentiment
        return [result.get(i, "neutral") for i in range(len(records))]

    def choose_taxonomy(self, statements: Sequence[Statement]) -> None:
        """The taxonomy of the report (settings.taxonomy), and whether statements get its aspects zero-shot."""
        choice = self.settings.taxonomy
        own = self.tagger.taxonomy
        if choice == "model":
            self.taxonomy, self.zero_shot = own, None
        elif choice != "auto":
            self.taxonomy = load_taxonomy(choice)
        else:
            # The shipped taxonomy whose seed phrases reach the most complaints, by the lexical similarity (fast).
            pool = [st.normalised for st in statements if st.opinion and st.negative_probability >= LEANS_NEGATIVE]
            pool = pool[:3000]
            candidates = [load_taxonomy(name) for name in taxonomy_names() if name != "default"]
            if own is not None and own.keys not in [t.keys for t in candidates]:
                candidates.append(own)

            def coverage(taxonomy: Taxonomy) -> float:
                if not pool or not any(a.seeds for a in taxonomy.aspects):
                    return 0.0
                assigner = ZeroShotAspects(taxonomy)
                return float(np.mean([bool(found) for found in assigner.assign(pool)]))

            scored = sorted(candidates, key=lambda t: (-round(coverage(t), 3), t.keys != (own.keys if own else None)))
            self.taxonomy = scored[0] if scored else own
        taxonomy = self.taxonomy
        trained = set(self.tagger.aspect_names)
        if taxonomy is None or len(trained & set(taxonomy.keys)) >= len(taxonomy.keys) / 2:
            self.zero_shot = None  # the model's own aspect head covers this taxonomy (or there is none to use)
        elif self.settings.zero_shot == "e5" and getattr(self.encoder, "name", "") == "e5":
            self.zero_shot = ZeroShotAspects(taxonomy, "e5", embedder=self.encoder)
        else:
            self.zero_shot = ZeroShotAspects(taxonomy)
        self._set_names()

    def mark_complaints(self, statements: list[Statement], comment_sentiment: Sequence[str]) -> None:
        """Which statements are complaints, and (zero-shot) what aspects they are about."""
        s = self.settings
        for st in statements:
            sure = comment_sentiment[st.comment] in NEGATIVE or st.negative_probability >= s.strong_negative
            st.complaint = st.opinion and st.negative and sure
            if self.zero_shot is not None:
                st.aspects = {}  # the model's aspects belong to another taxonomy
        if self.zero_shot is not None:
            complaints = [st for st in statements if st.complaint]
            taxonomy = self.zero_shot.taxonomy
            products = frozenset(taxonomy.product_words)
            for st, found in zip(complaints, self.zero_shot.assign([st.normalised for st in complaints]), strict=True):
                if not found and taxonomy.product_aspect and products.intersection(WORD.findall(st.normalised)):
                    found = [taxonomy.product_aspect]  # «سالاد سزار افتضاح بود»: the product itself
                st.aspects = dict.fromkeys(found, "negative")

    def analyse(self, records: Sequence[FeedbackRecord], progress: Progress | None = None) -> ThemeReport:
        statements = self.statements(records, progress)
        return self.analyse_tagged(TaggedComments(list(records), statements, self.comment_sentiment(records, statements),
                                                  len(statements), sum(1 for st in statements if not st.opinion)))

    def analyse_tagged(self, tagged: TaggedComments) -> ThemeReport:
        """The report of comments whose statements are tagged already (`analyse` tags them first)."""
        s = self.settings
        records, sentiment_of = tagged.records, tagged.sentiment
        statements = [replace(st) for st in tagged.statements]  # marked below; the caller's stay as tagged
        self._sampled = []
        self.choose_taxonomy(statements)
        self._labeler = self._labeler_for(records)
        self._fields = self._field_values(records)
        self.mark_complaints(statements, sentiment_of)
        negative_by_comment: dict[int, list[int]] = defaultdict(list)
        by_aspect: dict[str, list[int]] = defaultdict(list)
        unassigned: list[int] = []
        for k, st in enumerate(statements):
            if not st.complaint:
                continue
            negative_by_comment[st.comment].append(k)
            negative_aspects = [a for a, p in st.aspects.items() if p in NEGATIVE]
            for aspect in negative_aspects:
                by_aspect[aspect].append(k)
            # Contact details («با [PHONE] تماس بگیرید») come with complaints but are no cause of them.
            if (not negative_aspects and st.negative_probability >= s.min_negative_confidence
                    and not PLACEHOLDER.search(st.normalised)):
                unassigned.append(k)

        negative_statements = {k for ks in negative_by_comment.values() for k in ks}
        self._vectors = self._encode(statements, sorted(negative_statements))
        # (kind, aspect, statement indices, sub-themes, keyphrases, quotes when the clustering chose them)
        themes: list[tuple[str, str | None, list[int], list[SubTheme], list[str], list[Quote] | None]] = []
        sub_members: dict[int, list[list[int]]] = {}  # theme number -> its sub-themes' statements
        names: dict[int, str] = {}  # theme number -> label of an emerging theme ("" when nothing names a cause)
        for aspect in sorted(by_aspect, key=lambda a: (-len(by_aspect[a]), a)):
            members = by_aspect[aspect]
            if len(members) < s.min_theme_size:
                continue
            clustered = self._clusters(statements, records, members, s.min_subtheme_size, s.max_subthemes,
                                       other=OTHER_SUBTHEME)
            subthemes = [sub for sub, _ in clustered]
            sub_members[len(themes)] = [rows for _, rows in clustered]
            # Keyphrases against the other complaints, so they say what is special about this aspect.
            inside = set(members)
            others = [st.normalised for k, st in enumerate(statements)
                      if k not in inside and k in negative_statements]
            keyphrases = self._labeler.keyphrases([self._capped([statements[k].normalised for k in members]),
                                                   self._capped(others)])[0]
            themes.append(("aspect", aspect, members, subthemes, keyphrases, None))
        for cluster, members in self._clusters(statements, records, unassigned, s.min_theme_size, s.max_emerging):
            names[len(themes)] = cluster.label
            themes.append(("emerging", None, members, [], cluster.keyphrases, cluster.quotes))

        periods_of, periods, before = self._periods(records)
        outcomes = Outcomes.of(records, negative_by_comment)
        report_themes = [self._theme(i, kind, aspect, members, subs, keys, quotes, statements, records,
                                     negative_by_comment, outcomes, periods_of, periods, names.get(i))
                         for i, (kind, aspect, members, subs, keys, quotes) in enumerate(themes)]
        held = {id(theme): (themes[i][2], sub_members.get(i, [])) for i, theme in enumerate(report_themes)}
        # A cluster that is never a comment's only complaint («ناامید شدم») is a reaction, not a cause.
        # So is one whose every phrase is a feeling («بد», «راضی نبودم») or context: it gets no label.
        reactions = [t for t in report_themes
                     if t.kind == "emerging" and (t.impact.negative_share_change_pts == 0 or not t.label)]
        report_themes = [t for t in report_themes if t not in reactions]
        report_themes.sort(key=lambda t: (-t.impact.negative_share_change_pts, -t.comments, t.id))
        for number, theme in enumerate(t for t in report_themes if t.kind == "emerging"):
            theme.id = f"emerging:{number}"
        self.membership_ = self._membership(report_themes, held, statements, records)
        adjust_trends([t.trend for t in report_themes])
        mark_new(report_themes, {id(t): {statements[k].comment for k in held[id(t)][0]} for t in report_themes}, records)
        ratings = [r.rating for r in records if r.rating is not None]
        dates = sorted(m for m in (utc_naive(r.created_at) for r in records) if m is not None)
        labels = list(self.tagger.labels)
        prevalence = adjusted_shares(sentiment_of, labels, self.tagger.manifest.get("metrics", {}).get("dev_confusion"))
        counted = sum(prevalence.counted.get(label, 0.0) for label in NEGATIVE)
        adjusted = (sum(prevalence.adjusted.get(label, 0.0) for label in NEGATIVE)
                    if prevalence.adjusted is not None else None)
        notes = []
        if reactions:
            notes.append(f"{len(reactions)} cluster(s) of general discontent left out ("
                         + ", ".join(t.label or "/".join(t.keyphrases[:2]) or "—" for t in reactions)
                         + "): never the only complaint of a comment, or no phrase in them names a cause")
        if self._sampled:
            notes.append("clustered on samples: " + ", ".join(f"{size:,} of {n:,} statements" for n, size in self._sampled)
                         + "; the others joined the nearest cluster (or none, when not half as close as most of its sample)")
        if not dates:
            notes.append("no created_at in the data: trends are not computed")
        elif len(periods) < HISTORY + 1:
            notes.append(f"only {len(periods)} {s.period}(s) of data: trends need {HISTORY + 1}")
        if before:
            notes.append(f"{before} comment(s) dated before {periods[0]} are left out of the trends: they cover the "
                         f"newest {s.max_periods} {s.period}s at most")
        taxonomy = self.taxonomy
        return ThemeReport(
            schema_version=SCHEMA_VERSION,
            model={"name": str(self.tagger.manifest.get("name", "")), "version": str(self.tagger.manifest.get("version", ""))},
            settings={"period": s.period, "seed": s.seed, "min_theme_size": s.min_theme_size,
                      "min_subtheme_size": s.min_subtheme_size,
                      "taxonomy": (taxonomy.domain or "model") if taxonomy is not None else None,
                      "aspects": "zero-shot" if self.zero_shot is not None else "model"},
            totals=Totals(
                comments=len(records), statements=tagged.statement_count,
                negative_comments=sum(1 for label in sentiment_of if label in NEGATIVE), negative_share=round(counted, 4),
                negative_share_definition=NEGATIVE_SHARE_DEFINITION,
                complaint_comments=len(negative_by_comment),
                complaint_share=round(len(negative_by_comment) / len(records), 4) if records else 0.0,
                mean_rating=round(float(np.mean(ratings)), 3) if ratings else None,
                nps=nps_of([r.nps for r in records if r.nps is not None]),
                first_date=dates[0].date().isoformat() if dates else None,
                last_date=dates[-1].date().isoformat() if dates else None,
                negative_share_adjusted=round(adjusted, 4) if adjusted is not None else None,
                headline="adjusted" if adjusted is not None else "counted",
                prevalence_method=prevalence.method,
                opinion_free_statements=tagged.opinion_free,
            ),
            themes=report_themes,
            trend_test=TREND_TEST,
            impact_method=IMPACT_METHOD,
            notes=notes,
        )

    # -- parts --------------------------------------------------------------------------------------------
    def _encode(self, statements: Sequence[Statement], complaints: list[int]) -> dict[int, np.ndarray]:
        """The pretrained encoder's vectors of the complaint statements, once for every clustering, where its
        folder exists and there are at most `max_encoder_statements` (on a CPU it embeds tens a second; past that
        the statements are clustered on TF-IDF)."""
        if self.encoder is None or getattr(self.encoder, "name", "") != "e5" or \
                len(complaints) > self.settings.max_encoder_statements:
            return {}
        vectors = self.encoder.embed([statements[k].normalised for k in complaints])
        return dict(zip(complaints, vectors, strict=True))

    @staticmethod
    def _membership(themes: Sequence[Theme], held: Mapping[int, tuple[list[int], list[list[int]]]],
                    statements: Sequence[Statement], records: Sequence[FeedbackRecord]) -> list[Membership]:
        rows: list[Membership] = []
        for theme in themes:
            members, subs = held[id(theme)]
            sub_of = {k: sub.label for sub, ks in zip(theme.subthemes, subs, strict=False) for k in ks}
            for k in members:
                st = statements[k]
                rows.append(Membership(st.comment, records[st.comment].id, st.start, st.end, mask_pii(st.text),
                                       st.sentiment, theme.id, sub_of.get(k)))
        return rows

    def _clusters(self, statements: list[Statement], records: Sequence[FeedbackRecord], members: list[int],
                  min_size: int, max_k: int, other: str | None = None) -> list[tuple[SubTheme, list[int]]]:
        """Cluster the given statements; each cluster as a sub-theme with the statement indices it holds. A cluster
        with no usable label is named `other` (all such merged), or keeps "" when `other` is None."""
        if len(members) < min_size:
            return []
        texts = [statements[k].normalised for k in members]
        reducer, clusterer = self.steps.for_seed(self.settings.seed, max_k, min_size)
        vectors: np.ndarray | None = None
        if all(k in self._vectors for k in members):
            vectors = reducer.reduce(np.stack([self._vectors[k] for k in members]))
        elif (sampled := self._cluster_sample(texts, reducer, clusterer)) is not None:
            labels, closeness = sampled  # closeness to the sample's clusters, before any merge by label
        else:
            vectors = reducer.reduce(self.steps.embedder.embed(texts))
        if vectors is not None:
            labels = clusterer.cluster(vectors)
        ids, keyphrases, names = self._labelled(labels, texts, other)
        if vectors is not None:
            closeness = self._closeness(vectors, labels)
        clusters = []
        for c, keys, name in zip(ids, keyphrases, names, strict=True):
            rows = np.flatnonzero(labels == c)
            closest = rows[np.argsort(-closeness[rows], kind="stable")]
            quotes = self._quotes([members[i] for i in closest], statements, records)
            sub = SubTheme(label=name, keyphrases=keys, statements=len(rows),
                           comments=len({statements[members[i]].comment for i in rows}), quotes=quotes)
            clusters.append((sub, [members[i] for i in rows]))
        return clusters

    def _capped(self, texts: list[str]) -> list[str]:
        """At most `max_cluster_statements` of the texts (a seeded sample, in order) for key phrases: counting the
        phrases of every statement of an archive's theme costs memory and minutes, and shares need no more."""
        size = self.settings.max_cluster_statements
        if len(texts) <= size:
            return texts
        chosen = seeded_sample(len(texts), size, self.settings.seed)
        return [texts[i] for i in chosen]

    @staticmethod
    def _closeness(vectors: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Each statement's closeness to its cluster's centre (the mean of its vectors): quotes are the closest."""
        closeness = np.zeros(len(labels))
        for c in set(labels.tolist()):
            rows = np.flatnonzero(labels == c)
            closeness[rows] = vectors[rows] @ vectors[rows].mean(axis=0)
        return closeness

    def _cluster_sample(self, texts: list[str], reducer: Reducer,
                        clusterer: Clusterer) -> tuple[np.ndarray, np.ndarray] | None:
        size = self.settings.max_cluster_statements
        if len(texts) <= size:
            return None
        found = cluster_on_sample(texts, self.steps.embedder, reducer, clusterer, size, self.settings.seed, self.mapper)
        if found is not None:
            self._sampled.append((len(texts), size))
        return found

    def _labelled(self, labels: np.ndarray, texts: list[str], other: str | None) -> tuple[list[int], list[list[str]], list[str]]:
        """Key phrases and a label per cluster. Clusters that get the same label are near duplicates and are merged
        (in place, into the larger one), keeping that label. Clusters that nothing names ("") stay apart, or, given
        `other`, merge into one cluster of that name."""
        def describe() -> tuple[list[int], list[tuple[list[str], str]]]:
            ids = sorted(set(labels.tolist()) - {-1})
            groups = [self._capped([texts[i] for i in np.flatnonzero(labels == c)]) for c in ids]
            labeler = self._labeler
            if isinstance(labeler, CtfidfLabeler):
                return ids, labeler.describe(groups)
            return ids, [(keys, labeler.label(keys)) for keys in labeler.keyphrases(groups)]

        ids, described = describe()
        first: dict[str, int] = {}
        for c, (_, name) in zip(ids, described, strict=True):
            name = name or (other or "")
            if name in first and name:
                labels[labels == c] = first[name]
            else:
                first.setdefault(name, c)
        name_of = {c: name for name, c in first.items()}
        if len(first) < len(ids):  # merged: the key phrases of the merged clusters again, their labels kept
            ids, described = describe()
        return ids, [keys for keys, _ in described], [name_of.get(c, "") for c in ids]

    def _labeler_for(self, records: Sequence[FeedbackRecord]) -> Labeler:
        """The labeler, told which words name products: the taxonomy's, and those of the data's product fields."""
        labeler = self.steps.labeler
        if not isinstance(labeler, CtfidfLabeler):
            return labeler
        taxonomy = self.taxonomy
        words = {*taxonomy.product_words, *taxonomy.context_words} if taxonomy is not None else set()
        for record in records:
            for value in (record.product, *(v for name, vs in record.fields.items() if "product" in name.lower()
                                            for v in vs)):
                if value:
                    words.update(WORD.findall(value.lower()))
        return replace(labeler, avoid=labeler.avoid | frozenset(words))

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
        self._partial = last_period_partial(max(dated), self.settings.period)
        keys = [period_key(m, self.settings.period) if m else None for m in moments]
        earliest = periods[0]
        before = sum(1 for k in keys if k is not None and k < earliest)
        return [k if k is None or k >= earliest else None for k in keys], periods, before

    def _theme(self, number: int, kind: str, aspect: str | None, members: list[int], subthemes: list[SubTheme],
               keyphrases: list[str], quotes: list[Quote] | None, statements: list[Statement],
               records: Sequence[FeedbackRecord],
               negative_by_comment: dict[int, list[int]], outcomes: Outcomes, periods_of: list[str | None],
               periods: list[str], label_of_cluster: str | None = None) -> Theme:
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
            label, label_en = label_of_cluster or "", None
        if subthemes:  # one quote from each sub-theme, largest first: the range of the complaint
            quotes = [sub.quotes[0] for sub in subthemes if sub.quotes][: self.settings.quotes]
        elif quotes is None:
            quotes = self._quotes(sorted(members, key=lambda k: (len(statements[k].text), k)), statements, records)
        return Theme(
            id=theme_id, kind=kind, aspect=aspect, label=label, label_en=label_en, keyphrases=keyphrases,
            statements=len(members), comments=len(comments), impact=impact,
            trend=trend_of(comments, periods_of, periods, self.settings.period, self._partial), quotes=quotes,
            subthemes=subthemes,
            breakdowns=self._breakdowns(records, comments),
        )

    def _breakdowns(self, records: Sequence[FeedbackRecord], comments: set[int]) -> dict[str, list[BreakdownRow]]:
        """Per field, the values whose comments this theme holds most: count and the share of that value's comments."""
        result: dict[str, list[BreakdownRow]] = {}
        for name, values in self._fields.items():
            totals = Counter(v for items in values for v in items)
            hits = Counter(v for i in comments for v in values[i])
            rows = [BreakdownRow(v, hits[v], round(hits[v] / totals[v], 4)) for v in totals if hits[v]]
            rows.sort(key=lambda row: (-row.comments, row.value))
            if rows:
                result[name] = rows[:10]
        return result

    def _field_values(self, records: Sequence[FeedbackRecord]) -> dict[str, list[tuple[str, ...]]]:
        """Each breakdown field's values per comment. A field is kept when some value is shared by two comments:
        one value per comment (an order number) breaks nothing down."""
        names: list[str] = [n for n in ("channel", "product", "segment") if any(getattr(r, n) for r in records)]
        names += sorted({n for r in records for n in r.fields} - set(names))
        if self.settings.breakdown_fields is not None:
            names = [n for n in names if n in self.settings.breakdown_fields]
        table: dict[str, list[tuple[str, ...]]] = {}
        for name in names:
            values: list[tuple[str, ...]]
            if name in ("channel", "product", "segment") and not any(name in r.fields for r in records):
                values = [(v,) if (v := getattr(r, name)) else () for r in records]
            else:
                values = [r.fields.get(name, ()) for r in records]
            counts = Counter(v for items in values for v in items)
            if counts and counts.most_common(1)[0][1] >= 2:
                table[name] = values
        return table
