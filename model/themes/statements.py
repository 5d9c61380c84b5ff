"""Statements: the parts of a comment that each say one thing, tagged one by one.

A comment is split at hazm's sentence ends and at contrastive clauses, so one comment can praise the product and
blame the courier; each statement is tagged, and marked when it carries no opinion (greetings, thanks, context).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bazkhord.data.progress import QUIET, Progress
from bazkhord.data.record import FeedbackRecord
from bazkhord.model.base import NEGATIVE_SENTIMENTS
from bazkhord.model.segments import split_segments
from bazkhord.model.tagger import BaseTagger
from bazkhord.model.themes.opinion import carries_no_opinion

NEGATIVE = set(NEGATIVE_SENTIMENTS)
LEANS_NEGATIVE = 0.5  # a statement this likely negative (or mixed) helps choose the report's taxonomy
BATCH = 256

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


def statements_of(tagger: BaseTagger, texts: Sequence[str], progress: Progress = QUIET) -> list[Statement]:
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
        progress.count(min(start + BATCH, len(pending)), len(pending), "statements tagged")
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



