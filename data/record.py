"""What one piece of customer feedback is."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

SENTIMENTS = ("negative", "neutral", "positive", "mixed")
POLARITIES = SENTIMENTS


@dataclass
class FeedbackRecord:
    """One comment with optional metadata and labels.

    `aspects` is None when the source has no aspect labels at all, and {} when it has them but the
    comment mentions no aspect: the difference decides whether aspect losses see the row.
    """

    text: str
    id: str | None = None
    channel: str | None = None
    created_at: datetime | None = None
    rating: float | None = None
    nps: int | None = None
    product: str | None = None
    segment: str | None = None
    sentiment: str | None = None
    sentiment_score: int | None = None
    aspects: dict[str, str] | None = None
    # Other metadata columns under the names the data gives them (a restaurant code, the ordered products); a list
    # keeps its items. Theme reports break down by them.
    fields: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False)
    origin: str | None = field(default=None, compare=False)
    # An analyst's correction of the sentiment (comments read from the feedback store): reports count it instead of
    # the model's reading. Never a label of a training file (that is `sentiment`).
    human_sentiment: str | None = field(default=None, compare=False)

    def location(self) -> tuple[str, int]:
        """(file, row) this record was read from, for messages; row 0 when it was not read from a file."""
        file, _, row = (self.origin or "(memory):0").rpartition(":")
        return (file, int(row)) if row.isdigit() else (self.origin or "(memory)", 0)

    def to_dict(self) -> dict[str, object]:
        row: dict[str, object] = {"text": self.text}
        for name in ("id", "channel", "rating", "nps", "product", "segment", "sentiment", "sentiment_score"):
            value = getattr(self, name)
            if value is not None:
                row[name] = value
        if self.created_at is not None:
            row["created_at"] = self.created_at.isoformat()
        if self.aspects is not None:
            row["aspects"] = dict(self.aspects)
        for name, values in self.fields.items():
            row.setdefault(name, list(values))
        return row


@dataclass(frozen=True)
class RejectedRow:
    """A row that was not used, with where it was and why; every one is reported, none dropped silently."""

    file: str
    row: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.row}: {self.field}: {self.reason}"
