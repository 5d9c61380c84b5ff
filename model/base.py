"""The predictor contract and the tagger's output types (dataclasses inside, pydantic only at the edge)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol, Self, runtime_checkable

import numpy as np

from bazkhord.data.pii import PiiSpan, find_pii, mask_span


@runtime_checkable
class Predictor(Protocol):
    """What every text classifier in bazkhord offers: the TF-IDF baseline and the transformer alike.

    Texts given to a predictor are already normalised: the `Tagger` owns the normaliser, so no component
    can normalise differently from another.
    """

    classes_: list[str]

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> Self: ...

    def predict(self, texts: Sequence[str]) -> list[str]: ...

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...

    def save(self, folder: Path) -> dict[str, str]:
        """Write the component's files into `folder`; return {file name: role} for the manifest."""
        ...

    @classmethod
    def load(cls, folder: Path) -> Self: ...


# One definition of "negative" for every figure bazkhord reports (the store's summary and the theme report alike).
NEGATIVE_SENTIMENTS = ("negative", "mixed")
NEGATIVE_SHARE_DEFINITION = ("share of comments whose sentiment, an analyst's label where one corrected it, else the "
                             "model's reading of the whole comment, is negative or mixed")


@dataclass(frozen=True)
class Evidence:
    """A span of the original (raw) comment: `text == raw[start:end]`, or, once `mask_evidence` has run, that span
    with its personal data replaced by placeholders (the offsets still point into the raw text)."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class AspectTag:
    aspect: str
    confidence: float
    polarity: str
    polarity_confidence: float
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True)
class Tag:
    sentiment: str
    probabilities: dict[str, float]
    aspects: tuple[AspectTag, ...] = field(default_factory=tuple)


def mask_evidence(tag: Tag, raw: str, spans: Sequence[PiiSpan] | None = None) -> Tag:
    """`tag` with the personal data in its evidence quotes replaced by placeholders; the offsets stay into `raw`,
    so a caller can still highlight the span in the text it sent. `spans`: `find_pii(raw)`, when already known."""
    spans = find_pii(raw) if spans is None else spans
    if not spans:
        return tag
    return replace(tag, aspects=tuple(
        replace(a, evidence=tuple(Evidence(mask_span(raw, e.start, e.end, spans), e.start, e.end) for e in a.evidence))
        for a in tag.aspects))
