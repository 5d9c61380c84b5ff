"""The swappable steps of theme discovery (BERTopic's shape): embed -> reduce -> cluster -> label.

Each step is a small class with one method, so a step can be replaced (e.g. the transformer's encoder as
embedder) and tested alone. All of them are deterministic for a given seed.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np
import scipy.sparse as sp
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import normalize

STOPWORDS_FILE = Path(__file__).resolve().parents[2] / "data" / "stopwords_fa.txt"
_TOKEN = re.compile(r"[\w\u200c]+", re.UNICODE)
PLACEHOLDER = re.compile(r"\[[A-Z_]+\]")


class Embedder(Protocol):
    def embed(self, texts: Sequence[str]) -> np.ndarray | sp.csr_matrix: ...


class Reducer(Protocol):
    def reduce(self, vectors: np.ndarray | sp.csr_matrix) -> np.ndarray: ...


class Clusterer(Protocol):
    def cluster(self, vectors: np.ndarray) -> np.ndarray:
        """A cluster id per row, 0..k-1; -1 for rows left out."""
        ...


class Labeler(Protocol):
    def keyphrases(self, clusters: Sequence[Sequence[str]], top_n: int = 5) -> list[list[str]]: ...

    def label(self, keyphrases: Sequence[str]) -> str: ...


class TfidfEmbedder:
    """Word 1-2-grams and character 2-5-grams of the normalised statements, fitted on the statements given."""

    def embed(self, texts: Sequence[str]) -> sp.csr_matrix:
        parts = []
        for vectorizer in (TfidfVectorizer(token_pattern=r"(?u)[^\s]+", ngram_range=(1, 2), sublinear_tf=True),
                           TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)):
            try:
                parts.append(vectorizer.fit_transform(texts))
            except ValueError:  # nothing to count (e.g. only punctuation)
                parts.append(sp.csr_matrix((len(texts), 1)))
        return normalize(sp.hstack(parts, format="csr"))


class SvdReducer:
    """Latent semantic analysis: TF-IDF to a few dense dimensions, rows unit length (cosine geometry)."""

    def __init__(self, n_components: int = 40, seed: int = 13) -> None:
        self.n_components = n_components
        self.seed = seed

    def reduce(self, vectors: np.ndarray | sp.csr_matrix) -> np.ndarray:
        n_rows, n_columns = vectors.shape
        components = min(self.n_components, n_rows - 1, n_columns - 1)
        if components < 2:
            dense = vectors.toarray() if isinstance(vectors, sp.spmatrix) else np.asarray(vectors)
            return normalize(dense)
        reduced = TruncatedSVD(components, random_state=self.seed, algorithm="arpack").fit_transform(vectors)
        return normalize(reduced)


class KMeansClusterer:
    """k-means with k chosen by the silhouette score; clusters under `min_size` are left out (-1)."""

    def __init__(self, max_k: int = 6, min_size: int = 5, seed: int = 13) -> None:
        self.max_k = max_k
        self.min_size = min_size
        self.seed = seed

    def cluster(self, vectors: np.ndarray) -> np.ndarray:
        n = len(vectors)
        if n < 2 * self.min_size:
            return np.zeros(n, dtype=int)
        best: tuple[float, np.ndarray] | None = None
        for k in range(2, min(self.max_k, n // self.min_size) + 1):
            labels = KMeans(k, n_init=5, random_state=self.seed).fit_predict(vectors)
            if len(set(labels)) < 2:
                continue
            score = silhouette_score(vectors, labels, metric="cosine", random_state=self.seed,
                                     sample_size=min(n, 2000))
            if best is None or score > best[0] + 1e-9:
                best = (score, labels)
        labels = best[1] if best is not None else np.zeros(n, dtype=int)
        return _drop_small(labels, self.min_size)


class AgglomerativeClusterer:
    """Average-linkage clustering cut at a cosine distance; an alternative to k-means (no k to choose)."""

    def __init__(self, distance: float = 0.75, min_size: int = 5) -> None:
        self.distance = distance
        self.min_size = min_size

    def cluster(self, vectors: np.ndarray) -> np.ndarray:
        if len(vectors) < 2:
            return np.zeros(len(vectors), dtype=int)
        labels = AgglomerativeClustering(n_clusters=None, distance_threshold=self.distance, metric="cosine",
                                         linkage="average").fit_predict(vectors)
        return _drop_small(labels, self.min_size)


def _drop_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Renumber clusters by size (largest 0), deterministic on ties; small ones become -1."""
    counts = Counter(int(label) for label in labels)
    order = sorted((c for c in counts if counts[c] >= min_size), key=lambda c: (-counts[c], c))
    mapping = {old: new for new, old in enumerate(order)}
    return np.array([mapping.get(int(label), -1) for label in labels], dtype=int)


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    from hazm import stopwords_list

    ours = [line.strip() for line in STOPWORDS_FILE.read_text(encoding="utf-8").splitlines()]
    return frozenset(stopwords_list()) | {w for w in ours if w and not w.startswith("#")}


@lru_cache(maxsize=1)
def _lemmatizer():  # type: ignore[no-untyped-def]
    from hazm import Lemmatizer

    return Lemmatizer()


@lru_cache(maxsize=50_000)
def lemma(word: str) -> str:
    # hazm answers verbs with "past#present" stems and often takes nouns for verbs (کارم -> کاشت#کار):
    # keep such words as written, so labels stay readable; plural and possessive suffixes still go.
    found = str(_lemmatizer().lemmatize(word))
    return word if "#" in found or not found else found


@dataclass(frozen=True)
class CtfidfLabeler:
    """Class-based TF-IDF over hazm-lemmatised 1-3-grams (BERTopic's representation), stop words removed.

    A keyphrase may not start or end with a stop word; the label is the best keyphrase.
    """

    max_ngram: int = 3

    def terms(self, text: str) -> list[str]:
        words = [w for w in _TOKEN.findall(PLACEHOLDER.sub(" ", text)) if not w.isdigit() and len(w) > 1]
        lemmas = [lemma(w) for w in words]
        stop = stopwords()
        terms: list[str] = []
        for n in range(1, self.max_ngram + 1):
            for i in range(len(words) - n + 1):
                gram = lemmas[i : i + n]
                if words[i] in stop or words[i + n - 1] in stop or gram[0] in stop or gram[-1] in stop:
                    continue
                terms.append(" ".join(gram))
        return terms

    @staticmethod
    def label(keyphrases: Sequence[str]) -> str:
        """The first keyphrase, or a longer one among the top three that contains its words (reads better)."""
        if not keyphrases:
            return "—"
        first = keyphrases[0]
        longer = [k for k in keyphrases[1:3] if set(first.split()) < set(k.split())]
        return longer[0] if longer else first

    def keyphrases(self, clusters: Sequence[Sequence[str]], top_n: int = 5) -> list[list[str]]:
        counts = [Counter(t for text in texts for t in self.terms(text)) for texts in clusters]
        total = Counter[str]()
        for c in counts:
            total.update(c)
        average_words = max(1.0, sum(sum(c.values()) for c in counts) / max(1, len(counts)))
        result = []
        for c in counts:
            size = sum(c.values()) or 1
            scores = {t: (n / size) * math.log(1 + average_words / total[t]) * (1 + 0.15 * t.count(" "))
                      for t, n in c.items() if n >= 2 or len(c) < 10}
            ranked = sorted(scores, key=lambda t: (-scores[t], t))
            picked: list[str] = []
            for term in ranked:
                # Skip a phrase that only repeats words of one already picked.
                if any(set(term.split()) <= set(p.split()) for p in picked):
                    continue
                picked.append(term)
                if len(picked) == top_n:
                    break
            result.append(picked)
        return result
