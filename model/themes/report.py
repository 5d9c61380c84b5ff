"""The theme report: plain dataclasses, the stable schema of `report.json` and of `POST /v1/themes`.

`SCHEMA_VERSION` changes only when a field is removed or changes meaning; new fields may appear.
docs/THEMES.md documents every field; `docs/theme_report.schema.json` is generated from these classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bazkhord.model.domain import DomainShift

SCHEMA_VERSION = 2  # 2: negative_share is the comments' sentiment; complaint_share added


@dataclass
class Quote:
    comment_id: str | None
    text: str  # the statement as written, PII masked


@dataclass
class Trend:
    period: str  # "day" | "week" | "month"
    periods: list[str]
    counts: list[int]  # comments with the theme, per period
    totals: list[int]  # all comments, per period
    direction: str  # "rising" | "falling" | "steady" | "insufficient history" | "too few comments"
    latest_share: float | None = None  # the latest *complete* period
    baseline_share: float | None = None  # the six periods before it, pooled
    z: float | None = None
    p_value: float | None = None  # Fisher's exact test, two-sided
    q_value: float | None = None  # p adjusted across the report's themes (Benjamini-Hochberg); the direction uses it
    partial_last: bool = False  # the last period is not over: shown, never tested


@dataclass
class Impact:
    negative_comment_share: float  # share of negative comments that raise this theme
    negative_share_change_pts: float  # fall of the negative share (points) if its complaints were neutral
    rating_change: float | None = None  # rise of the mean rating under the same counterfactual
    nps_change: float | None = None  # rise of NPS (points)


@dataclass
class BreakdownRow:
    value: str
    comments: int  # comments with the theme
    rate: float  # of all comments with this value, the share that raise the theme


@dataclass
class SubTheme:
    label: str
    keyphrases: list[str]
    statements: int
    comments: int
    quotes: list[Quote]
    codebook_id: int | None = None  # lasting across runs, where the report was curated by a store's codebook


@dataclass
class Theme:
    id: str
    kind: str  # "aspect" | "emerging"
    aspect: str | None
    label: str  # Persian
    label_en: str | None
    keyphrases: list[str]
    statements: int
    comments: int
    impact: Impact
    trend: Trend | None
    quotes: list[Quote]
    subthemes: list[SubTheme] = field(default_factory=list)
    breakdowns: dict[str, list[BreakdownRow]] = field(default_factory=dict)  # per metadata field, as the data names it
    # Appears late: none of its comments in the first half of the report's time, and most in the last quarter
    # (`kind` "emerging" only says a theme is outside the taxonomy).
    new: bool = False
    codebook_id: int | None = None  # lasting across runs, where the report was curated by a store's codebook


@dataclass
class Totals:
    comments: int
    statements: int
    negative_comments: int  # comments the model reads as negative or mixed (NEGATIVE_SHARE_DEFINITION)
    negative_share: float  # the same definition as /v1/reports/summary's negative_share
    negative_share_definition: str
    complaint_comments: int  # comments with at least one complaint statement: what the themes explain
    complaint_share: float
    mean_rating: float | None
    nps: float | None
    first_date: str | None
    last_date: str | None
    # `negative_share` corrected for label shift (null when the model folder has no dev confusion matrix);
    # `headline` says which of the two the report leads with.
    negative_share_adjusted: float | None = None
    headline: str = "counted"
    prevalence_method: str = ""
    opinion_free_statements: int = 0  # greetings, thanks, wishes, purchase context: neutral, never complaints


@dataclass
class TaxonomyFit:
    """How the report chose its aspects under `taxonomy: auto`: the share of what the complaints blame (their
    commonest target words, weighted by the comments blaming them) that each candidate taxonomy names."""

    fits: dict[str, float]  # taxonomy (domain name, or "model") -> share
    threshold: float  # least share to be used
    chosen: str | None  # null: none fits, and the causes were discovered
    method: str = ""


@dataclass
class ThemeReport:
    schema_version: int
    model: dict[str, str]
    settings: dict[str, object]
    totals: Totals
    themes: list[Theme]  # ranked by impact on the negative share
    trend_test: str
    impact_method: str
    notes: list[str] = field(default_factory=list)
    taxonomy_fit: TaxonomyFit | None = None  # under `taxonomy: auto`
    # The discovered causes as a taxonomy file (the format of data/taxonomies/*.toml, as a table): an analyst edits
    # it and passes it back (`--taxonomy FILE`) for the next run. Null unless causes were discovered.
    codebook_draft: dict[str, object] | None = None
    domain_shift: DomainShift | None = None  # how far the comments are from the model's training data
