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

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np

from bazkhord.data.calendar import check_calendar, next_period, period_start, periods_between
from bazkhord.data.calendar import period_key as calendar_key
from bazkhord.data.pii import mask_pii
from bazkhord.data.progress import QUIET, Progress
from bazkhord.data.record import FeedbackRecord
from bazkhord.data.taxonomy import Taxonomy, load_taxonomy, taxonomy_names
from bazkhord.model.base import NEGATIVE_SENTIMENTS, NEGATIVE_SHARE_DEFINITION
from bazkhord.model.domain import DomainShift, domain_shift
from bazkhord.model.tagger import BaseTagger
from bazkhord.model.themes import discovery
from bazkhord.model.themes.codebook import Curator
from bazkhord.model.themes.embeddings import default_embedder
from bazkhord.model.themes.found import FoundTheme
from bazkhord.model.themes.impact import IMPACT_METHOD, Outcomes, nps_of
from bazkhord.model.themes.prevalence import adjusted_shares
from bazkhord.model.themes.report import (
    SCHEMA_VERSION,
    BreakdownRow,
    Impact,
    Quote,
    SubTheme,
    TaxonomyFit,
    Theme,
    ThemeReport,
    Totals,
)
from bazkhord.model.themes.sampling import Mapper, cluster_on_sample, map_locally, seeded_sample
from bazkhord.model.themes.statements import BATCH, LEANS_NEGATIVE, Statement, TaggedComments, statements_of
from bazkhord.model.themes.steps import (
    PLACEHOLDER,
    WORD,
    Clusterer,
    CtfidfLabeler,
    Embedder,
    KMeansClusterer,
    Labeler,
    Reducer,
    SvdReducer,
    TfidfEmbedder,
)
from bazkhord.model.themes.trends import (
    HISTORY,
    PERIODS,
    TREND_TEST,
    adjust_trends,
    last_period_partial,
    mark_new,
    period_key,
    period_range,
    trend_of,
    utc_naive,
)
from bazkhord.model.themes.zeroshot import ZeroShotAspects

NEGATIVE = set(NEGATIVE_SENTIMENTS)
FIT_METHOD = ("the share of the 40 words complaints blame most (by comments) that the taxonomy's seeds, aspect names, "
              "product, context and domain words name; the best taxonomy is used when it reaches the threshold, "
              "else causes are discovered")
SHIFT_COMMENTS = 5000  # comments (a seeded sample) the out-of-domain check measures
SHIFT_SAMPLE = 500  # of them, tagged again for the model's confidence
_LETTERS = re.compile(r"[\W_]+")
OTHER_SUBTHEME = "سایر موارد"


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
    # The aspects themes are made of: "auto" (the shipped taxonomy that names most of what the complaints blame, when
    # it names at least `taxonomy_fit` of it; else causes are discovered), "discover", "model" (the model's own), or a
    # shipped name (ecommerce, food_delivery) / file (a draft codebook a discovery run wrote, edited or not).
    taxonomy: str = "auto"
    # A taxonomy given as such (a draft codebook the API received, or the one a store's analysts accepted): used
    # instead of `taxonomy`.
    codebook: Taxonomy | None = None
    # Least share of the targets complaints blame (weighted by comments) that a shipped taxonomy must name to be
    # used; chosen on the shared sets' dev splits of five domains (docs/THEMES.md, docs/BENCHMARKS.md "Themes").
    taxonomy_fit: float = 0.45
    # Discovered targets whose complaints read this alike are one cause (cosine of the encoder's centred vectors,
    # average linkage; chosen on the hand-labelled hotel causes, data/labels/hotels_causes.jsonl).
    join_similarity: float = 0.3
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
    # How periods are cut: "gregorian" (ISO weeks, Gregorian months) or "jalali" (weeks from Saturday, Solar Hijri
    # months), the calendar Iranian analysts read; see bazkhord.data.calendar for the keys.
    calendar: str = "gregorian"

    def __post_init__(self) -> None:
        if self.period not in PERIODS:
            raise ValueError(f"period must be one of {PERIODS}, not {self.period!r}")
        if self.min_theme_size < 2 or self.min_subtheme_size < 2:
            raise ValueError("minimum theme and sub-theme sizes must be at least 2")
        if self.max_cluster_statements < 100:
            raise ValueError(f"max_cluster_statements must be at least 100, not {self.max_cluster_statements}")
        if self.max_periods < 1:
            raise ValueError(f"max_periods must be at least 1, not {self.max_periods}")
        check_calendar(self.calendar)
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


@dataclass
class Complaints:
    """A report's complaint statements (indices into its statements), grouped."""

    by_comment: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    by_aspect: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    unassigned: list[int] = field(default_factory=list)  # no aspect: the emerging themes' pool

    @property
    def statements(self) -> set[int]:
        return {k for ks in self.by_comment.values() for k in ks}


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
    codebook_id: int | None = None  # the theme's and sub-theme's lasting ids, where a codebook curated the report
    codebook_sub: int | None = None
    complaints: int = 1  # complaint statements of its comment, in a theme or not


class ThemeAnalyzer:
    def __init__(self, tagger: BaseTagger, settings: ThemeSettings | None = None, steps: ThemeSteps | None = None,
                 encoder: str | None = None, mapper: Mapper = map_locally, curator: Curator | None = None) -> None:
        self.tagger = tagger
        self.curator = curator  # the company's codebook: lasting theme ids and analysts' edits
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
        self._held: dict[int, FoundTheme] = {}  # id of a measured theme -> what clustering found for it
        self._periods_seen: list[str] = []  # the report's periods, oldest first
        self._before = 0  # dated comments older than the report's periods
        self._business: frozenset[str] = frozenset()  # set by analyse: words naming the business itself («هتل»)
        self._discover = False  # no taxonomy fits: causes are discovered (set by choose_taxonomy)
        self.fit_: TaxonomyFit | None = None  # how well each shipped taxonomy fits, set under taxonomy "auto"
        self.discovered_: Taxonomy | None = None  # the draft codebook of a discovery run
        self._causeless = 0  # complaint statements that name no cause (feelings, verdicts, intentions)
        self._cause_texts: dict[int, str] = {}  # complaint statement -> its clauses that name a cause
        self.shift_: DomainShift | None = None  # set by analyse: how far the comments are from the training data
        self._set_names()

    def _set_names(self) -> None:
        taxonomy = self.taxonomy
        self.names = {a.key: (a.name_fa, a.name_en) for a in taxonomy.aspects} if taxonomy is not None else {}

    # -- statements -------------------------------------------------------------------------------------
    def statements(self, records: Sequence[FeedbackRecord], progress: Progress = QUIET) -> list[Statement]:
        return statements_of(self.tagger, [record.text for record in records], progress)

    # -- the report -------------------------------------------------------------------------------------
    def comment_sentiment(self, records: Sequence[FeedbackRecord], statements: Sequence[Statement]) -> list[str]:
        """Each comment's sentiment, from the whole comment as the model reads it (the headline counts these, not
        "any negative statement"); a one-statement comment reuses its statement's tag; an analyst's correction, where
        the store has one, wins."""
        counts = Counter(st.comment for st in statements)
        single = {st.comment: st.sentiment for st in statements if counts[st.comment] == 1}
        several = [i for i in range(len(records)) if i not in single]
        result = dict(single)
        for start in range(0, len(several), BATCH):
            batch = several[start : start + BATCH]
            for i, tag in zip(batch, self.tagger.tag([records[i].text for i in batch]), strict=True):
                result[i] = tag.sentiment
        return [records[i].human_sentiment or result.get(i, "neutral") for i in range(len(records))]

    def choose_taxonomy(self, statements: Sequence[Statement]) -> None:
        """The taxonomy of the report (settings.taxonomy), and whether statements get its aspects zero-shot. Under
        "auto", the shipped taxonomy (or the model's own) that names most of what the complaints blame, if it names
        at least `taxonomy_fit` of it; otherwise none, and causes are discovered."""
        choice = self.settings.taxonomy
        own = self.tagger.taxonomy
        self._discover, self.fit_ = choice == "discover" and self.settings.codebook is None, None
        if self.settings.codebook is not None:
            self.taxonomy = self.settings.codebook
        elif choice == "model":
            self.taxonomy, self.zero_shot = own, None
        elif choice == "discover":
            self.taxonomy = None
        elif choice != "auto":
            self.taxonomy = load_taxonomy(choice)
        else:
            pool = [(st.comment, st.normalised) for st in statements
                    if st.opinion and st.negative_probability >= LEANS_NEGATIVE][:5000]
            counts, surface = discovery.blamed_terms(pool, self._business)
            candidates = [load_taxonomy(name) for name in taxonomy_names() if name != "default"]
            if own is not None and own.keys not in [t.keys for t in candidates]:
                candidates.append(own)
            fits = {t: round(discovery.taxonomy_fit(t, counts, surface), 3) for t in candidates}
            scored = sorted(candidates, key=lambda t: (-fits[t], t.keys != (own.keys if own else None)))
            best = scored[0] if scored else None
            fitting = best is not None and fits[best] >= self.settings.taxonomy_fit
            self.taxonomy = best if fitting else None
            self._discover = not fitting
            self.fit_ = TaxonomyFit({(t.domain or "model"): f for t, f in fits.items()}, self.settings.taxonomy_fit,
                                    (best.domain or "model") if fitting and best is not None else None, FIT_METHOD)
        taxonomy = self.taxonomy
        trained = set(self.tagger.aspect_names)
        if self._discover:
            self.zero_shot = None  # set once the causes are found (discover)
        elif taxonomy is None or len(trained & set(taxonomy.keys)) >= len(taxonomy.keys) / 2:
            self.zero_shot = None  # the model's own aspect head covers this taxonomy (or there is none to use)
        elif self.settings.zero_shot == "e5" and getattr(self.encoder, "name", "") == "e5":
            self.zero_shot = ZeroShotAspects(taxonomy, "e5", embedder=self.encoder)
        else:
            self.zero_shot = ZeroShotAspects(taxonomy)
        self._set_names()

    def detect_taxonomy(self, statements: Sequence[Statement]) -> TaxonomyFit | None:
        """The words that name the business itself, then the report's taxonomy (`choose_taxonomy`); under "auto",
        how well each candidate fits."""
        self._business = discovery.business_words(self._comment_texts(statements))
        self.choose_taxonomy(statements)
        return self.fit_

    def mark_complaints(self, statements: list[Statement], comment_sentiment: Sequence[str]) -> None:
        """Which statements are complaints, and (zero-shot) what aspects they are about."""
        s = self.settings
        # A model trained on another business misses complaints in this one: where the causes are the report's own
        # (discovered, or such a codebook edited), a statement that names a problem is a complaint as well.
        own = self._discover or (self.zero_shot is not None and self.zero_shot.taxonomy.domain == discovery.DISCOVERED)
        for st in statements:
            sure = comment_sentiment[st.comment] in NEGATIVE or st.negative_probability >= s.strong_negative
            st.complaint = st.opinion and st.negative and sure
            if own and st.opinion and not st.complaint and discovery.complains(st.normalised):
                st.complaint = True
            if self.zero_shot is not None or self._discover:
                st.aspects = {}  # the model's aspects belong to another taxonomy
        if self._discover:
            self.discover(statements)
        elif self.zero_shot is not None and self.zero_shot.taxonomy.domain == discovery.DISCOVERED:
            self._assign_by_clause([st for st in statements if st.complaint])
        elif self.zero_shot is not None:
            complaints = [st for st in statements if st.complaint]
            taxonomy = self.zero_shot.taxonomy
            products = frozenset(taxonomy.product_words)
            for st, found in zip(complaints, self.zero_shot.assign([st.normalised for st in complaints]), strict=True):
                if not found and taxonomy.product_aspect and products.intersection(WORD.findall(st.normalised)):
                    found = [taxonomy.product_aspect]  # «سالاد سزار افتضاح بود»: the product itself
                st.aspects = dict.fromkeys(found, "negative")

    def discover(self, statements: list[Statement]) -> None:
        """No taxonomy fits: a draft codebook of what the complaints blame (`discovered_`), its aspects assigned to
        the complaints zero-shot."""
        complaints = [st for st in statements if st.complaint]
        blamed = self._blaming_clauses(complaints)
        found = discovery.induce_codebook(
            [(st.comment, clause) for st, cs in zip(complaints, blamed, strict=True) for clause in cs], self._business,
            self.encoder, discovery.CodebookSettings(min_comments=self.settings.min_theme_size,
                                                     max_aspects=self.settings.max_emerging,
                                                     join_similarity=self.settings.join_similarity))
        self.discovered_ = self.taxonomy = found
        self._set_names()
        if found is not None:
            self.zero_shot = ZeroShotAspects(found)
            self._assign_by_clause(complaints, blamed)

    def _blaming_clauses(self, complaints: Sequence[Statement]) -> list[list[str]]:
        """Per complaint statement, its clauses that complain: those that praise nothing unnegated and, in a
        statement of several, that the model leans negative on or that name a problem («اتاق تمیز، صبحانه ضعیف»:
        only the second)."""
        parts = [discovery.clauses(st.normalised) or [st.normalised] for st in complaints]
        several = [clause for cs in parts if len(cs) > 1 for clause in cs]
        leaning: dict[str, bool] = {}
        unique = list(dict.fromkeys(several))
        for start in range(0, len(unique), BATCH):
            batch = unique[start : start + BATCH]
            for clause, tag in zip(batch, self.tagger.tag(batch, batch), strict=True):
                leaning[clause] = sum(tag.probabilities.get(label, 0.0) for label in NEGATIVE) >= LEANS_NEGATIVE
        return [[c for c in cs if (len(cs) == 1 or leaning[c] or discovery.complains(c)) and not discovery.praises(c)]
                for cs in parts]

    def _assign_by_clause(self, complaints: Sequence[Statement], blamed: list[list[str]] | None = None) -> None:
        """A discovered (or edited) codebook's aspects, found in each complaint's blaming clauses: a praise clause
        of the same sentence does not make «اتاق» a complaint."""
        assert self.zero_shot is not None
        blamed = blamed if blamed is not None else self._blaming_clauses(complaints)
        flat = [(i, clause) for i, cs in enumerate(blamed) for clause in cs]
        found = discovery.assign(self.zero_shot.taxonomy, [clause for _, clause in flat], self._business)
        per: dict[int, list[str]] = defaultdict(list)
        for (i, _), keys in zip(flat, found, strict=True):
            per[i].extend(k for k in keys if k not in per[i])
        for i, st in enumerate(complaints):
            st.aspects = dict.fromkeys(per.get(i, []), "negative")

    def analyse(self, records: Sequence[FeedbackRecord], progress: Progress = QUIET) -> ThemeReport:
        statements = self.statements(records, progress)
        return self.analyse_tagged(TaggedComments(list(records), statements, self.comment_sentiment(records, statements),
                                                  len(statements), sum(1 for st in statements if not st.opinion)))

    def analyse_tagged(self, tagged: TaggedComments) -> ThemeReport:
        """The report of comments whose statements are tagged already (`analyse` tags them first): a short list of
        named steps, each below."""
        records = tagged.records
        statements = [replace(st) for st in tagged.statements]  # marked below; the caller's stay as tagged
        self._sampled, self._causeless, self.discovered_, self._cause_texts = [], 0, None, {}
        self.detect_taxonomy(statements)
        self._labeler = self._labeler_for(records)
        self._fields = self._field_values(records)
        self.mark_complaints(statements, tagged.sentiment)
        complaints = self._group_complaints(statements)
        self._vectors = self._encode(statements, sorted(complaints.statements))
        found = self._aspect_themes(statements, records, complaints) + self._emerging_themes(statements, records,
                                                                                               complaints)
        if self.curator is not None:
            found = self.curator.apply(found, statements, records)
        themes, reactions = self._ranked_themes(found, statements, records, complaints)
        self.membership_ = self._membership(themes, statements, records, complaints)
        themes = [t for t in themes if not self._held[id(t)].hidden]
        return self._report(tagged, themes, reactions, complaints)

    @staticmethod
    def _comment_texts(statements: Sequence[Statement]) -> list[str]:
        texts: dict[int, list[str]] = defaultdict(list)
        for st in statements:
            texts[st.comment].append(st.normalised)
        return [" ".join(parts) for parts in texts.values()]

    # -- steps ----------------------------------------------------------------------------------------------
    def _group_complaints(self, statements: Sequence[Statement]) -> Complaints:
        """Complaint statements by comment and by negative aspect; those with no aspect (and not merely contact
        details) form the pool emerging themes are found in."""
        complaints = Complaints()
        for k, st in enumerate(statements):
            if not st.complaint:
                continue
            self._cause_texts[k] = discovery.cause_text(st.normalised, self._business)
            complaints.by_comment[st.comment].append(k)
            negative_aspects = [a for a, p in st.aspects.items() if p in NEGATIVE]
            for aspect in negative_aspects:
                complaints.by_aspect[aspect].append(k)
            # Contact details («با [PHONE] تماس بگیرید») come with complaints but are no cause of them.
            if negative_aspects or st.negative_probability < self.settings.min_negative_confidence \
                    or PLACEHOLDER.search(st.normalised):
                continue
            # Feelings, verdicts, intentions, questions («خیلی بد بود», «دیگه سفارش نمیدم») blame nothing: counted
            # as complaints (the note on general discontent), never clustered into a theme.
            if discovery.names_cause(st.normalised, self._business):
                complaints.unassigned.append(k)
            else:
                self._causeless += 1
        return complaints

    def _aspect_themes(self, statements: list[Statement], records: Sequence[FeedbackRecord],
                       complaints: Complaints) -> list[FoundTheme]:
        """One theme per aspect with enough complaints, its sub-themes clustered, largest first."""
        s, by_aspect, found = self.settings, complaints.by_aspect, []
        every = complaints.statements  # a set built per access: once here, not once per statement below
        for aspect in sorted(by_aspect, key=lambda a: (-len(by_aspect[a]), a)):
            members = by_aspect[aspect]
            if len(members) < s.min_theme_size:
                continue
            clustered = self._clusters(statements, records, members, s.min_subtheme_size, s.max_subthemes,
                                       other=OTHER_SUBTHEME)
            # Keyphrases against the other complaints, so they say what is special about this aspect.
            inside = set(members)
            others = [self._text(k) for k in sorted(every) if k not in inside]
            keyphrases = self._labeler.keyphrases([self._capped([self._text(k) for k in members]),
                                                   self._capped(others)])[0]
            found.append(FoundTheme("aspect", aspect, members, [sub for sub, _ in clustered], keyphrases,
                                    sub_members=[rows for _, rows in clustered]))
        return found

    def _emerging_themes(self, statements: list[Statement], records: Sequence[FeedbackRecord],
                         complaints: Complaints) -> list[FoundTheme]:
        """Clusters of the complaints no aspect holds."""
        s = self.settings
        return [FoundTheme("emerging", None, members, [], cluster.keyphrases, cluster.quotes, cluster.label)
                for cluster, members in self._clusters(statements, records, complaints.unassigned, s.min_theme_size,
                                                       s.max_emerging)]

    def _ranked_themes(self, found: list[FoundTheme], statements: list[Statement], records: Sequence[FeedbackRecord],
                       complaints: Complaints) -> tuple[list[Theme], list[Theme]]:
        """Each found theme measured (impact, trend, breakdowns), reactions set apart, the rest ranked by impact;
        trends adjusted across the report and new themes marked."""
        periods_of, periods, self._before = self._periods(records)
        self._periods_seen = periods
        outcomes = Outcomes.of(records, complaints.by_comment)
        themes = [self._theme(i, f, statements, records, complaints.by_comment, outcomes, periods_of, periods)
                  for i, f in enumerate(found)]
        self._held = {id(theme): f for theme, f in zip(themes, found, strict=True)}
        # A cluster that is never a comment's only complaint («ناامید شدم») is a reaction, not a cause.
        # So is one whose every phrase is a feeling («بد», «راضی نبودم») or context: it gets no label.
        # A theme an analyst named is kept whatever it is.
        reactions = [t for t in themes if t.kind == "emerging" and self._held[id(t)].label_override is None
                     and (t.impact.negative_share_change_pts == 0 or not t.label)]
        themes = [t for t in themes if t not in reactions]
        themes.sort(key=lambda t: (-t.impact.negative_share_change_pts, -t.comments, t.id))
        for number, theme in enumerate(t for t in themes if t.kind == "emerging"):
            theme.id = f"emerging:{number}"
        adjust_trends([t.trend for t in themes])
        mark_new(themes, {id(t): {statements[k].comment for k in self._held[id(t)].members} for t in themes}, records)
        return themes, reactions

    def _report(self, tagged: TaggedComments, themes: list[Theme], reactions: list[Theme],
                complaints: Complaints) -> ThemeReport:
        """The totals (the headline share corrected for label shift), the notes and the settings around the themes."""
        s, records, sentiment_of = self.settings, tagged.records, tagged.sentiment
        ratings = [r.rating for r in records if r.rating is not None]
        dates = sorted(m for m in (utc_naive(r.created_at) for r in records) if m is not None)
        labels = list(self.tagger.labels)
        prevalence = adjusted_shares(sentiment_of, labels, self.tagger.manifest.get("metrics", {}).get("dev_confusion"))
        counted = sum(prevalence.counted.get(label, 0.0) for label in NEGATIVE)
        adjusted = (sum(prevalence.adjusted.get(label, 0.0) for label in NEGATIVE)
                    if prevalence.adjusted is not None else None)
        taxonomy = self.taxonomy
        self.shift_ = self._domain_shift(records)
        return ThemeReport(
            schema_version=SCHEMA_VERSION,
            model={"name": str(self.tagger.manifest.get("name", "")), "version": str(self.tagger.manifest.get("version", ""))},
            settings={"period": s.period, "calendar": s.calendar, "seed": s.seed, "min_theme_size": s.min_theme_size,
                      "min_subtheme_size": s.min_subtheme_size,
                      "taxonomy": (taxonomy.domain or "model") if taxonomy is not None else None,
                      "aspects": "zero-shot" if self.zero_shot is not None else "model"},
            totals=Totals(
                comments=len(records), statements=tagged.statement_count,
                negative_comments=sum(1 for label in sentiment_of if label in NEGATIVE), negative_share=round(counted, 4),
                negative_share_definition=NEGATIVE_SHARE_DEFINITION,
                complaint_comments=len(complaints.by_comment),
                complaint_share=round(len(complaints.by_comment) / len(records), 4) if records else 0.0,
                mean_rating=round(float(np.mean(ratings)), 3) if ratings else None,
                nps=nps_of([r.nps for r in records if r.nps is not None]),
                first_date=dates[0].date().isoformat() if dates else None,
                last_date=dates[-1].date().isoformat() if dates else None,
                negative_share_adjusted=round(adjusted, 4) if adjusted is not None else None,
                headline="adjusted" if adjusted is not None else "counted",
                prevalence_method=prevalence.method,
                opinion_free_statements=tagged.opinion_free,
            ),
            themes=themes,
            trend_test=TREND_TEST,
            impact_method=IMPACT_METHOD,
            notes=self._notes(reactions, bool(dates)),
            taxonomy_fit=self.fit_,
            codebook_draft=self.discovered_.to_dict() if self.discovered_ is not None else None,
            domain_shift=self.shift_,
        )

    def _domain_shift(self, records: Sequence[FeedbackRecord]) -> DomainShift | None:
        """The out-of-domain check (bazkhord.model.domain) on a seeded sample of the comments (PII masked, so a file
        and its tagged parts measure the same), the model's confidence on the first `SHIFT_SAMPLE` of them."""
        profile = getattr(self.tagger, "domain_profile", None)  # test doubles and older taggers have none
        if not profile or not any(r.text for r in records[:100]):
            return None  # tag-batch parts keep statements, not the comments' text: nothing to measure
        chosen = sorted(seeded_sample(len(records), SHIFT_COMMENTS, self.settings.seed)) \
            if len(records) > SHIFT_COMMENTS else range(len(records))
        raw = [mask_pii(records[i].text) for i in chosen]
        texts = self.tagger.normalise(raw)
        sample, normalised = raw[:SHIFT_SAMPLE], texts[:SHIFT_SAMPLE]
        confidences = [max(tag.probabilities.values(), default=0.0) for start in range(0, len(sample), BATCH)
                       for tag in self.tagger.tag(sample[start : start + BATCH], normalised[start : start + BATCH])]
        return domain_shift(profile, texts, confidences)

    def _notes(self, reactions: list[Theme], dated: bool) -> list[str]:
        """What the reader should know about what the report left out or could not do."""
        s, periods, notes = self.settings, self._periods_seen, []
        fit = self.fit_
        if fit is not None and fit.chosen is None:
            best = max(fit.fits.items(), key=lambda kv: kv[1], default=("—", 0.0))
            notes.append(f"no taxonomy fits these complaints (the closest, {best[0]}, names {100 * best[1]:.0f}% of what "
                         f"they blame; {100 * fit.threshold:.0f}% needed): their causes were discovered, and the draft "
                         "codebook (codebook_draft) can be edited and passed back as the taxonomy")
        if self._discover and self.discovered_ is None:
            notes.append("no cause is blamed in enough comments to make a theme")
        if self._causeless:
            notes.append(f"{self._causeless} complaint statement(s) name no cause (feelings, verdicts, intentions, "
                         "questions): counted in the complaint share, in no theme")
        if self.shift_ is not None and self.shift_.out_of_domain:
            notes.append("out of the model's domain: " + "; ".join(self.shift_.reasons)
                         + ". Read its sentiment with care, and train it on your own labelled comments")
        if reactions:
            notes.append(f"{len(reactions)} cluster(s) of general discontent left out ("
                         + ", ".join(t.label or "/".join(t.keyphrases[:2]) or "—" for t in reactions)
                         + "): never the only complaint of a comment, or no phrase in them names a cause")
        if self._sampled:
            notes.append("clustered on samples: " + ", ".join(f"{size:,} of {n:,} statements" for n, size in self._sampled)
                         + "; the others joined the nearest cluster (or none, when not half as close as most of its sample)")
        hidden = sum(1 for found in self._held.values() if found.hidden)
        if hidden:
            notes.append(f"{hidden} theme(s) hidden by the codebook")
        if not dated:
            notes.append("no created_at in the data: trends are not computed")
        elif len(periods) < HISTORY + 1:
            notes.append(f"only {len(periods)} {s.period}(s) of data: trends need {HISTORY + 1}")
        if self._before:
            notes.append(f"{self._before} comment(s) dated before {periods[0]} are left out of the trends: they cover "
                         f"the newest {s.max_periods} {s.period}s at most")
        return notes

    # -- parts --------------------------------------------------------------------------------------------
    def _encode(self, statements: Sequence[Statement], complaints: list[int]) -> dict[int, np.ndarray]:
        """The pretrained encoder's vectors of the complaint statements, once for every clustering, where its
        folder exists and there are at most `max_encoder_statements` (on a CPU it embeds tens a second; past that
        the statements are clustered on TF-IDF)."""
        if self.encoder is None or getattr(self.encoder, "name", "") != "e5" or \
                len(complaints) > self.settings.max_encoder_statements:
            return {}
        vectors = self.encoder.embed([self._text(k) for k in complaints])
        return dict(zip(complaints, vectors, strict=True))

    def _membership(self, themes: Sequence[Theme], statements: Sequence[Statement],
                    records: Sequence[FeedbackRecord], complaints: Complaints) -> list[Membership]:
        rows: list[Membership] = []
        for theme in themes:
            members, subs = self._held[id(theme)].members, self._held[id(theme)].sub_members
            sub_ids = self._held[id(theme)].sub_ids
            sub_of = {k: sub.label for sub, ks in zip(theme.subthemes, subs, strict=False) for k in ks}
            sub_id_of = {k: sub_id for sub_id, ks in zip(sub_ids, subs, strict=False) for k in ks}
            for k in members:
                st = statements[k]
                rows.append(Membership(st.comment, records[st.comment].id, st.start, st.end, mask_pii(st.text),
                                       st.sentiment, theme.id, sub_of.get(k), self._held[id(theme)].codebook_id,
                                       sub_id_of.get(k), len(complaints.by_comment[st.comment])))
        return rows

    def _clusters(self, statements: list[Statement], records: Sequence[FeedbackRecord], members: list[int],
                  min_size: int, max_k: int, other: str | None = None) -> list[tuple[SubTheme, list[int]]]:
        """Cluster the given statements; each cluster as a sub-theme with the statement indices it holds. A cluster
        with no usable label is named `other` (all such merged), or keeps "" when `other` is None."""
        if len(members) < min_size:
            return []
        texts = [self._text(k) for k in members]
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

    def _text(self, k: int) -> str:
        """What a complaint statement is clustered and labelled by: its clauses that name a cause («کد تخفیف بدید،
        حوله‌ها کثیف بود» -> «حوله‌ها کثیف بود»), so themes group what complaints blame, not their wording."""
        return self._cause_texts[k]

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
        words |= self._business
        for record in records:
            for value in (record.product, *(v for name, vs in record.fields.items() if "product" in name.lower()
                                            for v in vs)):
                if value:
                    words.update(WORD.findall(value.lower()))
        return replace(labeler, avoid=labeler.avoid | frozenset(words), names_cause=discovery.names_cause)

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
        period, calendar = self.settings.period, self.settings.calendar
        if calendar == "jalali":
            first, last = calendar_key(min(dated), period, calendar), calendar_key(max(dated), period, calendar)
            periods = periods_between(first, last, period, calendar, limit=10**6)[-self.settings.max_periods:]
            start = period_start(last, period, calendar)
            length = period_start(next_period(last, period, calendar), period, calendar) - start
            self._partial = period != "day" and (max(dated) - datetime(start.year, start.month, start.day)) < 0.7 * length
            keys = [calendar_key(m, period, calendar) if m else None for m in moments]
        else:
            periods = period_range(min(dated), max(dated), period, self.settings.max_periods)
            self._partial = last_period_partial(max(dated), period)
            keys = [period_key(m, period) if m else None for m in moments]
        earliest = periods[0]
        before = sum(1 for k in keys if k is not None and k < earliest)
        return [k if k is None or k >= earliest else None for k in keys], periods, before

    def _theme(self, number: int, found: FoundTheme, statements: list[Statement], records: Sequence[FeedbackRecord],
               negative_by_comment: dict[int, list[int]], outcomes: Outcomes, periods_of: list[str | None],
               periods: list[str]) -> Theme:
        kind, aspect, members, subthemes, quotes = found.kind, found.aspect, found.members, found.subthemes, found.quotes
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
            label, label_en = found.label or "", None
        if found.label_override is not None:
            label, label_en = found.label_override, None
        if subthemes:  # one quote from each sub-theme, largest first: the range of the complaint
            quotes = [sub.quotes[0] for sub in subthemes if sub.quotes][: self.settings.quotes]
        elif quotes is None:
            quotes = self._quotes(sorted(members, key=lambda k: (len(statements[k].text), k)), statements, records)
        return Theme(
            id=theme_id, kind=kind, aspect=aspect, label=label, label_en=label_en, keyphrases=found.keyphrases,
            statements=len(members), comments=len(comments), impact=impact,
            trend=trend_of(comments, periods_of, periods, self.settings.period, self._partial), quotes=quotes,
            subthemes=subthemes,
            breakdowns=self._breakdowns(records, comments),
            codebook_id=found.codebook_id,  # a stand-in (negative) until a store settles it
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
