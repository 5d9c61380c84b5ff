"""Request and response schemas of the HTTP API: separate classes, explicit limits (pydantic at the edge)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from bazkhord.model.domain import DomainShift

# Hard caps whatever the settings say; the settings may only be stricter (checked in the route, answering 413).
HARD_MAX_TEXTS = 10_000
HARD_MAX_CHARS = 100_000


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("contains a NUL character (\\u0000); ids and metadata cannot hold one")
    return value


# A lone UTF-16 surrogate (JSON's "\\udfff" alone) is no character: no UTF-8 encoder, the answer's or the store's,
# can write it. Every string of a request is checked, so the field is named in a 422 before any work is done.
SURROGATE = re.compile("[\ud800-\udfff]")


def _no_surrogate(value: str) -> str:
    found = SURROGATE.search(value)
    if found:
        raise ValueError(f"contains a lone UTF-16 surrogate (\\u{ord(found.group()):04x}) at character {found.start()}, "
                         "which is not a character: send valid Unicode")
    return value


# Comment texts (NUL in a text gets its own check, after the limits).
Text = Annotated[str, AfterValidator(_no_surrogate)]
# Ids and metadata that reach the store or a filter: PostgreSQL text cannot hold NUL.
Clean = Annotated[str, AfterValidator(_no_nul), AfterValidator(_no_surrogate)]


class TagItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Clean | None = Field(None, max_length=200, description="the caller's own id, echoed back")
    text: Text = Field(..., max_length=HARD_MAX_CHARS, description="the raw comment, as the customer wrote it")


class TagRequest(BaseModel):
    """Either one comment (`text`, optional `id`) or several (`items`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"text": "ارسال خیلی دیر انجام شد ولی کیفیت گوشی عالیه"},
                                        {"items": [{"id": "c1", "text": "عالی بود"}, {"id": "c2", "text": "افتضاح"}]}]},
    )

    text: Text | None = Field(None, max_length=HARD_MAX_CHARS)
    id: Clean | None = Field(None, max_length=200)
    items: list[TagItem] | None = Field(None, min_length=1, max_length=HARD_MAX_TEXTS)

    @model_validator(mode="after")
    def one_form(self) -> Self:
        if (self.text is None) == (self.items is None):
            raise ValueError("send either `text` (one comment) or `items` (a list of {id, text}), not both or neither")
        if self.items is not None and self.id is not None:
            raise ValueError("`id` goes inside each item when sending `items`")
        return self

    def as_items(self) -> list[TagItem]:
        return self.items if self.items is not None else [TagItem(id=self.id, text=self.text or "")]


FieldName = Annotated[Clean, Field(min_length=1, max_length=64)]
FieldValue = Annotated[Clean, Field(max_length=200)]


class ThemeItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Clean | None = Field(None, max_length=200)
    text: Text = Field(..., max_length=HARD_MAX_CHARS)
    created_at: datetime | None = None
    channel: Clean | None = Field(None, max_length=100)
    rating: float | None = Field(None, ge=-1e9, le=1e9, allow_inf_nan=False)
    nps: int | None = Field(None, ge=0, le=10)
    product: Clean | None = Field(None, max_length=200)
    segment: Clean | None = Field(None, max_length=100)
    fields: dict[FieldName, FieldValue | list[FieldValue]] = Field(
        default_factory=dict, max_length=20,
        description="other metadata to break themes down by, under your own names: a restaurant code, the list of "
                    "ordered products (a list is counted per item); at most 20 fields, 100 items each")

    @model_validator(mode="after")
    def short_lists(self) -> Self:
        for name, value in self.fields.items():
            if isinstance(value, list) and len(value) > 100:
                raise ValueError(f"fields.{name} has {len(value)} items; at most 100")
        return self

    def field_values(self) -> dict[str, tuple[str, ...]]:
        return {name: tuple(dict.fromkeys(v for v in (value if isinstance(value, list) else [value]) if v.strip()))
                for name, value in self.fields.items()}


class ThemeRequest(BaseModel):
    """A batch of comments; the answer is the theme report (the schema of report.json)."""

    model_config = ConfigDict(extra="forbid")

    items: list[ThemeItem] = Field(..., min_length=1, max_length=HARD_MAX_TEXTS * 10)
    period: Literal["day", "week", "month"] = "week"
    seed: int = Field(13, ge=0, le=2**31 - 1)
    min_theme_size: int = Field(8, ge=2, le=10_000)
    taxonomy: str = Field("auto", pattern=r"^[a-z_]{1,40}$",
                          description="auto (the shipped taxonomy that fits the complaints, else causes discovered "
                                      "from them), discover, model (the model's own), or a shipped one: ecommerce, "
                                      "food_delivery")
    codebook: dict[str, Any] | None = Field(
        None, description="a taxonomy as a table (a report's codebook_draft, edited): its aspects are the themes' "
                          "causes, instead of `taxonomy`")


class FeedbackItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: Clean = Field(..., min_length=1, max_length=200,
                           description="the caller's id for this comment; sending it again stores nothing new")
    text: Text = Field(..., max_length=HARD_MAX_CHARS)
    created_at: datetime | None = Field(None, description="when the customer wrote it; default: when received")
    channel: Clean | None = Field(None, max_length=100)
    rating: float | None = Field(None, ge=-1e9, le=1e9, allow_inf_nan=False)
    nps: int | None = Field(None, ge=0, le=10)
    product: Clean | None = Field(None, max_length=200)
    segment: Clean | None = Field(None, max_length=100)


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"items": [{"client_id": "app-review-1042", "channel": "app_review",
                                                    "text": "پیک دو روز دیر اومد", "rating": 2}]}]},
    )

    items: list[FeedbackItem] = Field(..., min_length=1, max_length=HARD_MAX_TEXTS)


class EvidenceOut(BaseModel):
    text: str
    start: int = Field(description="offset of the span in the text as sent")
    end: int


class AspectOut(BaseModel):
    aspect: str
    name_fa: str | None = None
    name_en: str | None = None
    confidence: float
    polarity: str
    polarity_confidence: float
    evidence: list[EvidenceOut]
    source: Literal["model", "human"] = Field("model", description="human: an analyst's label (stored comments)")
    model_polarity: str | None = Field(None, description="the model's polarity where an analyst changed it; null "
                                                         "for an aspect the analyst added")


class TagResult(BaseModel):
    id: str | None
    sentiment: str
    probabilities: dict[str, float]
    aspects: list[AspectOut]


class StoredFeedback(BaseModel):
    client_id: str
    status: Literal["created", "duplicate", "stored"] = Field(
        description="created: stored now; duplicate: stored earlier with the same text, nothing changed")
    text: str
    channel: str | None
    product: str | None
    segment: str | None
    rating: float | None
    nps: int | None
    created_at: datetime | None = Field(description="null (with the other metadata) in a duplicate of a comment "
                                                    "another key stored: its metadata is not the sender's to read")
    received_at: datetime | None
    sentiment: str
    probabilities: dict[str, float]
    aspects: list[AspectOut]
    model: ModelRef
    sentiment_source: Literal["model", "human"] = Field(
        "model", description="human: `sentiment` is an analyst's correction, `model_sentiment` what the model read")
    model_sentiment: str | None = None
    removed_aspects: list[str] = Field(default_factory=list, description="aspects the model found and an analyst "
                                                                         "said are not there")
    corrected_by: str | None = None
    corrected_at: datetime | None = None


class ModelRef(BaseModel):
    name: str
    version: str


class FeedbackResponse(BaseModel):
    results: list[StoredFeedback]


class AspectSummary(BaseModel):
    aspect: str
    mentions: int
    polarity: dict[str, int]
    negative_share: float


class ChannelSummary(BaseModel):
    channel: str | None
    comments: int
    negative: int = Field(description="comments read as negative or mixed (see negative_share)")


class VersionSummary(BaseModel):
    name: str
    version: str
    comments: int


class PeriodSummary(BaseModel):
    period: str
    comments: int
    negative: int


class NpsSummary(BaseModel):
    responses: int
    score: float


class SummaryResponse(BaseModel):
    filters: dict[str, str | None]
    comments: int
    sentiment: dict[str, int]
    negative_share: float | None = Field(description="comments whose sentiment (an analyst's correction where there "
                                                     "is one, else the model's reading of the whole comment) is "
                                                     "negative or mixed, over all comments")
    negative_share_definition: str
    corrected: int = Field(0, description="comments with an analyst's label; their sentiment and aspects count "
                                          "as corrected")
    mean_rating: float | None
    nps: NpsSummary | None
    aspects: list[AspectSummary]
    channels: list[ChannelSummary]
    model_versions: list[VersionSummary]
    series: list[PeriodSummary]
    domain_shift: DomainShift | None = Field(
        None, description="how far the newest (at most 500) matching comments are from the active model's training "
                          "data: unknown words, length, confidence; out_of_domain with the figures that say so (null "
                          "without a model, or for a model folder trained before it kept a domain profile)")


class ModelVersion(BaseModel):
    version: str
    active: bool
    latest: bool
    kind: str | None = None
    created_at: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    error: str | None = Field(None, description="why this folder cannot be served")


class ModelsResponse(BaseModel):
    name: str
    active: str
    versions: list[ModelVersion]


class ActivateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = Field(..., min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ModelInfo(BaseModel):
    name: str
    version: str
    kind: str


class TagResponse(BaseModel):
    model: ModelInfo
    results: list[TagResult]


class ErrorDetail(BaseModel):
    location: list[str | int] = Field(default_factory=list, description="where in the request, e.g. ['items', 3, 'text']")
    message: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    error: ErrorBody


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    model: ModelInfo | None = None
    reason: str | None = None


# -- corrections, review queue, retraining -------------------------------------------------------------------------
class StatementCorrection(BaseModel):
    start: int = Field(ge=0, description="the statement's start in the comment (as the theme report gives it)")
    theme_id: int = Field(ge=1, description="the lasting theme id it belongs to")


class CorrectionItem(BaseModel):
    client_id: str = Field(min_length=1, max_length=200)
    sentiment: str | None = Field(None, max_length=32, description="one of the active model's sentiment labels")
    aspects: dict[str, str] = Field(default_factory=dict, max_length=50,
                                    description="aspect key -> polarity, or 'absent' for an aspect that is not there")
    statement: StatementCorrection | None = Field(None, description="move a complaint statement to another theme")
    confirm: bool = Field(False, description="the model's reading is right as it stands: recorded as the analyst's")


class CorrectionRequest(BaseModel):
    items: list[CorrectionItem] = Field(min_length=1, max_length=100)


class CorrectionResponse(BaseModel):
    results: list[StoredFeedback]


class CorrectionOut(BaseModel):
    id: int
    client_id: str
    field: Literal["sentiment", "aspect", "theme"]
    aspect: str | None
    value: str
    model_value: str | None
    start: int | None
    made_by: str
    made_at: datetime


class CorrectionList(BaseModel):
    corrections: list[CorrectionOut]
    total: int = Field(description="corrections recorded, all comments")
    corrected_comments: int


class ReviewReason(BaseModel):
    uncertainty: float = Field(description="1 - the margin between the model's two likeliest labels")
    disagreement: float = Field(description="1 when the TF-IDF baseline reads it otherwise; 0 without one")
    theme_doubt: float
    worth: float


class ReviewItem(BaseModel):
    client_id: str
    text: str
    sentiment: str
    probabilities: dict[str, float]
    aspects: list[AspectOut]
    reason: ReviewReason


class ReviewQueue(BaseModel):
    items: list[ReviewItem]
    queued: int = Field(description="comments in the current queue, corrected or not")
    corrected: int = Field(description="of those, corrected since the queue was built")
    built_at: datetime


class RetrainJobOut(BaseModel):
    id: int
    status: Literal["running", "done", "failed"]
    phase: str
    done: int
    total: int
    requested_by: str
    started_at: datetime
    finished_at: datetime | None
    model_name: str
    champion: str | None
    challenger: str | None
    decision: Literal["activated", "refused"] | None
    figures: dict[str, Any] | None
    error: str | None
