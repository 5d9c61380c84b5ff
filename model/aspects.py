"""Aspect tagging as two small models (SetFit's AbsaModel shape): a multi-label detector that says which
aspects a comment mentions, and one polarity model that reads the evidence clauses of each aspect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np
import scipy.sparse as sp

from bazkhord.model.linear import CalibratedLinear, TfidfFeatures, TfidfParams, read_component, write_component

MAX_EVIDENCE = 2
# A clause is evidence for an aspect when it scores at least this share of the best clause's score.
EVIDENCE_SHARE = 0.5


@dataclass(frozen=True)
class AspectPrediction:
    aspect: str
    confidence: float
    polarity: str
    polarity_confidence: float
    evidence: tuple[int, ...]  # indices into the comment's segments


def pick_evidence(segment_scores: np.ndarray, share: float = EVIDENCE_SHARE) -> tuple[int, ...]:
    """The clauses that speak of an aspect, in text order, given their detector scores: at most MAX_EVIDENCE of the
    best, each scoring at least `share` of the best one's."""
    if segment_scores.size <= 1:
        return tuple(range(segment_scores.size))
    best = float(segment_scores.max())
    order = np.argsort(-segment_scores, kind="stable")
    chosen = [int(i) for i in order if segment_scores[i] >= share * best][:MAX_EVIDENCE]
    return tuple(sorted(chosen))


class TfidfAspectModel:
    """Multi-label aspect detection plus per-aspect polarity over TF-IDF features."""

    def __init__(self, C: float = 4.0, threshold: float = 0.3, features: TfidfParams | None = None) -> None:
        self.C = C
        self.threshold = threshold
        self.features = features or TfidfParams()

    def fit(
        self,
        texts: Sequence[str],
        aspects: Sequence[dict[str, str] | None],
        segments: Sequence[Sequence[str]],
    ) -> Self:
        """`texts` normalised comments; `aspects` their labels (None: not labelled); `segments` their clauses."""
        labelled = [i for i, a in enumerate(aspects) if a is not None]
        if not labelled:
            raise ValueError("no row has aspect labels")
        texts_l = [texts[i] for i in labelled]
        labels_l = [aspects[i] or {} for i in labelled]
        self.aspects_ = sorted({name for a in labels_l for name in a})
        if not self.aspects_:
            raise ValueError("aspect labels are present but no row names an aspect")
        self.features_ = TfidfFeatures(self.features).fit(texts_l)
        X = self.features_.transform(texts_l)
        self.detectors_: dict[str, CalibratedLinear] = {}
        self.priors_: dict[str, float] = {}
        for aspect in self.aspects_:
            y = ["yes" if aspect in a else "no" for a in labels_l]
            self.priors_[aspect] = y.count("yes") / len(y)
            if 0 < y.count("yes") < len(y):
                self.detectors_[aspect] = CalibratedLinear(self.C, class_weight=None).fit(X, y)

        polarity_texts: list[str] = []
        polarity_aspects: list[str] = []
        polarity_labels: list[str] = []
        for i in labelled:
            gold = aspects[i] or {}
            if not gold:
                continue
            scores = self._segment_scores(segments[i])
            for aspect, polarity in gold.items():
                chosen = pick_evidence(scores[:, self.aspects_.index(aspect)])
                polarity_texts.append(" ".join(segments[i][j] for j in chosen) or texts[i])
                polarity_aspects.append(aspect)
                polarity_labels.append(polarity)
        self.polarity_ = CalibratedLinear(self.C, class_weight="balanced").fit(
            self._polarity_matrix(polarity_texts, polarity_aspects), polarity_labels
        )
        self.polarities_ = self.polarity_.classes_
        return self

    def detect_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probability that each text mentions each aspect, columns in `aspects_` order."""
        X = self.features_.transform(texts)
        columns = []
        for aspect in self.aspects_:
            detector = self.detectors_.get(aspect)
            if detector is None:
                columns.append(np.full(len(texts), self.priors_[aspect]))
            else:
                columns.append(detector.predict_proba(X)[:, detector.classes_.index("yes")])
        return np.column_stack(columns) if columns else np.zeros((len(texts), 0))

    def _segment_scores(self, segments: Sequence[str]) -> np.ndarray:
        if not segments:
            return np.zeros((0, len(self.aspects_)))
        return self.detect_proba(list(segments))

    def _polarity_matrix(self, texts: Sequence[str], aspects: Sequence[str]) -> sp.csr_matrix:
        onehot = sp.csr_matrix(
            (np.ones(len(aspects)), ([*range(len(aspects))], [self.aspects_.index(a) for a in aspects])),
            shape=(len(aspects), len(self.aspects_)),
        )
        return sp.hstack([self.features_.transform(texts), onehot], format="csr")

    def predict(self, texts: Sequence[str], segments: Sequence[Sequence[str]]) -> list[list[AspectPrediction]]:
        detected = self.detect_proba(texts)
        hits = [[k for k in np.argsort(-row, kind="stable") if row[k] >= self.threshold] for row in detected]
        # The clauses of every comment with a hit are scored in one call (a call per comment costs far more).
        with_hits = [i for i, found in enumerate(hits) if found]
        all_scores = self._segment_scores([s for i in with_hits for s in segments[i]])
        scores_of: dict[int, np.ndarray] = {}
        start = 0
        for i in with_hits:
            scores_of[i] = all_scores[start : start + len(segments[i])]
            start += len(segments[i])
        # Gather every (comment, aspect) evidence first so polarity runs as one batch.
        jobs: list[tuple[int, str, float, tuple[int, ...], str]] = []
        for i in with_hits:
            scores = scores_of[i]
            for k in hits[i]:
                aspect = self.aspects_[k]
                chosen = pick_evidence(scores[:, k]) if scores.size else ()
                evidence_text = " ".join(segments[i][j] for j in chosen) or texts[i]
                jobs.append((i, aspect, float(detected[i, k]), chosen, evidence_text))
        results: list[list[AspectPrediction]] = [[] for _ in texts]
        if jobs:
            proba = self.polarity_.predict_proba(self._polarity_matrix([j[4] for j in jobs], [j[1] for j in jobs]))
            for (i, aspect, confidence, chosen, _), p in zip(jobs, proba, strict=True):
                best = int(p.argmax())
                results[i].append(AspectPrediction(aspect, confidence, self.polarities_[best], float(p[best]), chosen))
        return results

    def save(self, folder: Path) -> dict[str, str]:
        arrays, feature_meta = self.features_.state("features.")
        detector_meta = {}
        for aspect, detector in self.detectors_.items():
            index = self.aspects_.index(aspect)
            detector_arrays, detector_meta[aspect] = detector.state(f"detector.{index}.")
            arrays.update(detector_arrays)
        polarity_arrays, polarity_meta = self.polarity_.state("polarity.")
        arrays.update(polarity_arrays)
        meta = {"kind": "tfidf-aspects", "aspects": self.aspects_, "threshold": self.threshold, "C": self.C,
                "priors": self.priors_, "features": feature_meta, "detectors": detector_meta,
                "polarity": polarity_meta}
        return write_component(folder, arrays, meta)

    @classmethod
    def load(cls, folder: Path) -> TfidfAspectModel:
        arrays, meta = read_component(folder)
        model = cls(C=meta["C"], threshold=meta["threshold"])
        model.aspects_ = list(meta["aspects"])
        model.priors_ = {k: float(v) for k, v in meta["priors"].items()}
        model.features_ = TfidfFeatures.from_state("features.", arrays, meta["features"])
        model.features = model.features_.params
        model.detectors_ = {
            aspect: CalibratedLinear.from_state(f"detector.{model.aspects_.index(aspect)}.", arrays, state)
            for aspect, state in meta["detectors"].items()
        }
        model.polarity_ = CalibratedLinear.from_state("polarity.", arrays, meta["polarity"])
        model.polarities_ = model.polarity_.classes_
        return model
