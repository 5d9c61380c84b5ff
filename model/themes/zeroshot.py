"""Zero-shot aspects: statements assigned to a taxonomy's aspects for a model that has no trained aspect head for
the taxonomy at hand, from each aspect's seed phrases (the short phrases customers use for it).

Two methods, each with its own threshold in the taxonomy file's [zero_shot] table:
- `lexical` (the default): the share of a seed's character 2-4-gram TF-IDF weight that the statement contains.
  A statement containing «سرد» (or «سرده», «سردِ») holds nearly all of that seed; the length of the statement
  does not dilute it, as it would a cosine. On the hand-labelled SnappFood dev complaints it found causes far
  better than the encoder's similarity (docs/BENCHMARKS.md, "Themes").
- `e5`: cosine of the pretrained encoder's vectors to the seeds and the Persian description.
A statement is about every aspect whose best seed reaches the threshold; under it the assigner abstains.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from bazkhord.data.normalise import normalise_many
from bazkhord.data.taxonomy import Taxonomy

METHODS = ("lexical", "e5")
# Used when the taxonomy file names none for the method.
FALLBACK_THRESHOLDS = {"lexical": 0.69, "e5": 0.87}


class ZeroShotAspects:
    def __init__(self, taxonomy: Taxonomy, method: str = "lexical", threshold: float | None = None,
                 embedder: Any = None) -> None:
        if method not in METHODS:
            raise ValueError(f"zero-shot method {method!r}: choose {' or '.join(METHODS)}")
        if method == "e5" and embedder is None:
            raise ValueError("the e5 method needs the encoder's embedder")
        self.taxonomy = taxonomy
        self.method = method
        self.embedder = embedder
        self.threshold = threshold if threshold is not None else (
            taxonomy.zero_shot_threshold(method) or FALLBACK_THRESHOLDS[method])
        texts: list[str] = []
        owners: list[int] = []
        for k, aspect in enumerate(taxonomy.aspects):
            # The description is a sentence: it can never be contained in a statement, only resemble one.
            for text in (*aspect.seeds, *([aspect.description_fa] if method == "e5" and aspect.description_fa else [])):
                texts.append(text)
                owners.append(k)
        if not texts:
            raise ValueError("the taxonomy has no seed phrases to assign aspects by")
        self.seeds_ = normalise_many(texts)
        self.owners_ = np.array(owners, dtype=int)
        self._seed_vectors: np.ndarray | None = None

    @property
    def keys(self) -> list[str]:
        return self.taxonomy.keys

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """(texts, aspects): each normalised text's score for each aspect's best seed."""
        n, a = len(texts), len(self.taxonomy.aspects)
        if n == 0:
            return np.zeros((0, a))
        similarity = self._contained(texts) if self.method == "lexical" else self._cosine(texts)
        out = np.full((n, a), -1.0)
        for k in range(a):
            columns = np.flatnonzero(self.owners_ == k)
            if columns.size:
                out[:, k] = similarity[:, columns].max(axis=1)
        return out

    def _contained(self, texts: Sequence[str]) -> np.ndarray:
        """The share of each seed's squared TF-IDF weight whose n-grams occur in the text (1.0: all of them). The
        weights are fitted on the texts and seeds together, so n-grams every statement has count little."""
        vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
        matrix = sp.csr_matrix(vectorizer.fit_transform([*texts, *self.seeds_]))
        n = len(texts)
        present = (matrix[:n] > 0).astype(np.float64)
        seeds = matrix[n:]
        weights = seeds.multiply(seeds)
        totals = np.asarray(weights.sum(axis=1)).ravel()
        return np.asarray((present @ weights.T).todense()) / np.maximum(totals, 1e-12)

    def _cosine(self, texts: Sequence[str]) -> np.ndarray:
        if self._seed_vectors is None:
            self._seed_vectors = np.asarray(self.embedder.embed(self.seeds_))
        return np.asarray(self.embedder.embed(list(texts))) @ self._seed_vectors.T

    def assign(self, texts: Sequence[str], scores: np.ndarray | None = None) -> list[list[str]]:
        """The aspects each normalised text is about, best first; none where no seed reaches the threshold."""
        scores = self.scores(texts) if scores is None else scores
        keys = self.keys
        return [[keys[k] for k in np.argsort(-row, kind="stable") if row[k] >= self.threshold] for row in scores]
