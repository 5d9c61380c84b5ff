"""The composite tagger: normaliser + sentiment predictor + aspect model, behind one `tag(raw_texts)`.

Callers always pass raw text. The tagger normalises with the config saved beside its weights, so the
training run, the evaluation and the HTTP service cannot normalise differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from bazkhord.data.normalise import DEFAULT_NORMALISER, NormaliserConfig, normalise, normalise_many
from bazkhord.data.taxonomy import Taxonomy
from bazkhord.model.aspects import TfidfAspectModel
from bazkhord.model.base import AspectTag, Evidence, Tag
from bazkhord.model.linear import TfidfClassifier, TfidfParams
from bazkhord.model.segments import split_segments

SENTIMENT_DIR = "sentiment"
ASPECTS_DIR = "aspects"


class BaseTagger:
    """What every tagger kind shares: the saved normaliser, clause splitting, and `predict` from `predict_proba`.

    Subclasses set `sentiment labels`, `aspect_names` and `polarity_names`, and implement `predict_proba` and `tag`.
    """

    kind = "base"
    normaliser: NormaliserConfig
    taxonomy: Taxonomy | None
    manifest: dict[str, Any]
    # What the model learned from (bazkhord.model.domain), read with the folder where training wrote one.
    domain_profile: dict[str, Any] | None = None

    @property
    def labels(self) -> list[str]:
        raise NotImplementedError

    @property
    def aspect_names(self) -> list[str]:
        return []

    @property
    def polarity_names(self) -> list[str]:
        return []

    def normalise(self, texts: Sequence[str]) -> list[str]:
        return normalise_many(texts, self.normaliser)

    def _normalised_segments(self, raw: str, whole: str | None = None) -> list[tuple[str, Evidence]]:
        """Clauses of `raw` with their normalised text; `whole` (raw normalised) is reused for a one-clause text."""
        spans = split_segments(raw)
        if whole is not None and len(spans) == 1 and spans[0].text == raw.strip():
            return [(whole, spans[0])] if whole else []
        pairs = [(normalise(span.text, self.normaliser), span) for span in spans]
        return [(text, span) for text, span in pairs if text]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [self.labels[i] for i in self.predict_proba(texts).argmax(axis=1)]

    def tag(self, texts: Sequence[str], normalised: Sequence[str] | None = None) -> list[Tag]:
        raise NotImplementedError

    def save_components(self, folder: Path) -> dict[str, str]:
        raise NotImplementedError


def make_tags(labels: Sequence[str], proba: np.ndarray, aspects: Sequence[Sequence[AspectTag]]) -> list[Tag]:
    return [
        Tag(labels[int(row.argmax())], {label: round(float(v), 4) for label, v in zip(labels, row, strict=True)},
            tuple(aspects[i]))
        for i, row in enumerate(proba)
    ]


class Tagger(BaseTagger):
    kind = "tfidf-tagger"

    def __init__(
        self,
        normaliser: NormaliserConfig = DEFAULT_NORMALISER,
        C: float = 0.5,
        class_weight: str | None = "balanced",
        aspect_C: float = 4.0,
        aspect_threshold: float = 0.3,
        features: TfidfParams | None = None,
        taxonomy: Taxonomy | None = None,
    ) -> None:
        self.normaliser = normaliser
        self.C = C
        self.class_weight = class_weight
        self.aspect_C = aspect_C
        self.aspect_threshold = aspect_threshold
        self.features = features or TfidfParams()
        self.taxonomy = taxonomy
        self.manifest: dict[str, Any] = {}

    # -- training ---------------------------------------------------------------------------------------
    def fit(
        self,
        texts: Sequence[str],
        sentiments: Sequence[str | None],
        aspects: Sequence[dict[str, str] | None] | None = None,
    ) -> Self:
        """Fit on raw texts. Rows whose sentiment is None train only the aspect model, and vice versa."""
        normalised = self.normalise(texts)
        with_sentiment = [i for i, s in enumerate(sentiments) if s is not None]
        self.sentiment_ = TfidfClassifier(self.C, self.class_weight, self.features).fit(
            [normalised[i] for i in with_sentiment], [str(sentiments[i]) for i in with_sentiment]
        )
        self.aspects_: TfidfAspectModel | None = None
        if aspects is not None and any(a for a in aspects):
            segments = [self._normalised_segments(t) for t in texts]
            self.aspects_ = TfidfAspectModel(self.aspect_C, self.aspect_threshold, self.features).fit(
                normalised, aspects, [[s for s, _ in segs] for segs in segments]
            )
        return self

    # -- prediction -------------------------------------------------------------------------------------
    @property
    def labels(self) -> list[str]:
        return list(self.sentiment_.classes_)

    @property
    def aspect_names(self) -> list[str]:
        return list(self.aspects_.aspects_) if self.aspects_ is not None else []

    @property
    def polarity_names(self) -> list[str]:
        return list(self.aspects_.polarities_) if self.aspects_ is not None else []

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.sentiment_.predict_proba(self.normalise(texts))

    def tag(self, texts: Sequence[str], normalised: Sequence[str] | None = None) -> list[Tag]:
        """Tag raw texts. A caller that has already normalised them (with `self.normalise`) may pass that too."""
        normalised = list(normalised) if normalised is not None else self.normalise(texts)
        proba = self.sentiment_.predict_proba(normalised)
        return make_tags(self.labels, proba, self.tag_aspects(texts, normalised))

    def tag_aspects(self, texts: Sequence[str], normalised: Sequence[str]) -> list[list[AspectTag]]:
        results: list[list[AspectTag]] = [[] for _ in texts]
        if self.aspects_ is None:
            return results
        segments = [self._normalised_segments(t, n) for t, n in zip(texts, normalised, strict=True)]
        predictions = self.aspects_.predict(normalised, [[s for s, _ in segs] for segs in segments])
        for i, found in enumerate(predictions):
            results[i] = [
                AspectTag(p.aspect, round(p.confidence, 4), p.polarity, round(p.polarity_confidence, 4),
                          tuple(segments[i][j][1] for j in p.evidence))
                for p in found
            ]
        return results

    # -- persistence ------------------------------------------------------------------------------------
    def save_components(self, folder: Path) -> dict[str, str]:
        files = {f"{SENTIMENT_DIR}/{k}": v for k, v in self.sentiment_.save(folder / SENTIMENT_DIR).items()}
        if self.aspects_ is not None:
            files.update({f"{ASPECTS_DIR}/{k}": v for k, v in self.aspects_.save(folder / ASPECTS_DIR).items()})
        return files

    @classmethod
    def load_components(cls, folder: Path, normaliser: NormaliserConfig, taxonomy: Taxonomy | None) -> Tagger:
        tagger = cls(normaliser=normaliser, taxonomy=taxonomy)
        tagger.sentiment_ = TfidfClassifier.load(folder / SENTIMENT_DIR)
        tagger.C = tagger.sentiment_.C
        tagger.class_weight = tagger.sentiment_.class_weight
        tagger.aspects_ = TfidfAspectModel.load(folder / ASPECTS_DIR) if (folder / ASPECTS_DIR).exists() else None
        if tagger.aspects_ is not None:
            tagger.aspect_C = tagger.aspects_.C
            tagger.aspect_threshold = tagger.aspects_.threshold
        return tagger
