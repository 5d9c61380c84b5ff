"""The swappable steps of theme discovery (BERTopic's shape): embed -> reduce -> cluster -> label.

Each step is a small class with one method, so a step can be replaced (e.g. the transformer's encoder as
embedder) and tested alone. All of them are deterministic for a given seed.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
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
WORD = re.compile(r"[\w\u200c]+", re.UNICODE)
PLACEHOLDER = re.compile(r"\[[A-Z_]+\]")
PRODUCT_COMPLAINT = "شکایت از"  # «شکایت از پیتزا»: the label of complaints about one product, nothing more in common


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
        return self.fit(texts).transform(texts)

    def fit(self, texts: Sequence[str]) -> FittedTfidf:
        fitted: list[TfidfVectorizer | None] = []
        for vectorizer in (TfidfVectorizer(token_pattern=r"(?u)[^\s]+", ngram_range=(1, 2), sublinear_tf=True),
                           TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)):
            try:
                fitted.append(vectorizer.fit(texts))
            except ValueError:  # nothing to count (e.g. only punctuation)
                fitted.append(None)
        return FittedTfidf(fitted)


@dataclass
class FittedTfidf:
    vectorizers: list[TfidfVectorizer | None]

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        parts = [v.transform(texts) if v is not None else sp.csr_matrix((len(texts), 1)) for v in self.vectorizers]
        return normalize(sp.hstack(parts, format="csr"))


class SvdReducer:
    """Latent semantic analysis: TF-IDF to a few dense dimensions, rows unit length (cosine geometry)."""

    def __init__(self, n_components: int = 40, seed: int = 13) -> None:
        self.n_components = n_components
        self.seed = seed

    def reduce(self, vectors: np.ndarray | sp.csr_matrix) -> np.ndarray:
        svd = self._svd(vectors)
        if svd is None:
            return FittedSvd(None).transform(vectors)
        return normalize(svd.fit_transform(vectors))

    def fit(self, vectors: np.ndarray | sp.csr_matrix) -> FittedSvd:
        svd = self._svd(vectors)
        return FittedSvd(svd.fit(vectors) if svd is not None else None)

    def _svd(self, vectors: np.ndarray | sp.csr_matrix) -> TruncatedSVD | None:
        n_rows, n_columns = vectors.shape
        components = min(self.n_components, n_rows - 1, n_columns - 1)
        return TruncatedSVD(components, random_state=self.seed, algorithm="arpack") if components >= 2 else None


@dataclass
class FittedSvd:
    svd: TruncatedSVD | None  # None: too few rows or columns to reduce; rows are only made unit length

    def transform(self, vectors: np.ndarray | sp.csr_matrix, unit: bool = True) -> np.ndarray:
        """The reduced vectors, unit length; or (`unit` False) as long as the part of each row the reduction keeps:
        a statement of words the fitted sample never used comes out short."""
        if self.svd is None:
            reduced = vectors.toarray() if isinstance(vectors, sp.spmatrix) else np.asarray(vectors)
        else:
            reduced = self.svd.transform(vectors)
        return normalize(reduced) if unit else reduced


@dataclass
class Projection:
    """Embedder and reducer fitted on a sample of statements: projects any statements into that sample's space.
    Plain scikit-learn objects, so it pickles to worker processes (Ray) for the statements outside the sample."""

    embedder: FittedTfidf
    reducer: FittedSvd

    def __call__(self, texts: Sequence[str], unit: bool = True) -> np.ndarray:
        return self.reducer.transform(self.embedder.transform(texts), unit)


def fit_projection(embedder: Embedder, reducer: Reducer, texts: Sequence[str]) -> Projection | None:
    """The steps fitted on `texts`, or None where they cannot be fitted apart from use (steps of one's own)."""
    if not isinstance(embedder, TfidfEmbedder) or not isinstance(reducer, SvdReducer):
        return None
    fitted = embedder.fit(texts)
    return Projection(fitted, reducer.fit(fitted.transform(texts)))


@dataclass
class NearestCentroid:
    """Assigns statements outside the clustered sample to the nearest cluster centroid, or to none (-1) when the
    statement is less than half as close to it as the cluster's loosest sample members (all but `FLOOR_QUANTILE`).
    Closeness is the projection's length along the centroid, not the cosine: a statement of words the sample never
    used projects short, and must not look close to a cluster only because its small remainder points that way.
    Half, because statements outside the sample always project somewhat shorter than those the reduction was fitted
    on (measured on 8 statements: 0.47-0.65 outside against a floor of 0.51-0.55; a greeting 0.07)."""

    projection: Projection
    centroids: np.ndarray  # unit rows, one per cluster
    clusters: np.ndarray  # the cluster label of each centroid row
    floors: np.ndarray  # the least similarity a statement needs to join each cluster

    FLOOR_QUANTILE = 0.05
    FLOOR_SHARE = 0.5

    @classmethod
    def of(cls, projection: Projection, raw: np.ndarray, labels: np.ndarray) -> NearestCentroid:
        """From the sample's projections (`projection(texts, unit=False)`) and the clusters found in them."""
        vectors = normalize(raw)
        clusters = np.array(sorted(set(labels.tolist()) - {-1}), dtype=int)
        centroids = normalize(np.stack([vectors[labels == c].mean(axis=0) for c in clusters])) if len(clusters) \
            else np.zeros((0, vectors.shape[1]))
        floors = np.array([cls.FLOOR_SHARE * np.quantile(raw[labels == c] @ centroids[i], cls.FLOOR_QUANTILE)
                           for i, c in enumerate(clusters)])
        return cls(projection, centroids, clusters, floors)

    def __call__(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(cluster label or -1, closeness to that cluster's centroid) of each statement."""
        if not len(self.clusters):
            return np.full(len(texts), -1, dtype=int), np.zeros(len(texts))
        similarity = self.projection(texts, unit=False) @ self.centroids.T
        best = similarity.argmax(axis=1)
        score = similarity[np.arange(len(texts)), best]
        return np.where(score >= self.floors[best], self.clusters[best], -1), score


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
def is_verb(word: str) -> bool:
    """hazm's reading: its lemmatizer answers verbs with "past#present" stems."""
    return "#" in str(_lemmatizer().lemmatize(word))


@lru_cache(maxsize=50_000)
def lemma(word: str) -> str:
    # hazm answers verbs with "past#present" stems and often takes nouns for verbs (کارم -> کاشت#کار):
    # keep such words as written, so labels stay readable; plural and possessive suffixes still go.
    found = str(_lemmatizer().lemmatize(word))
    return word if "#" in found or not found else found


@dataclass(frozen=True)
class CtfidfLabeler:
    """Key phrases by class-based TF-IDF (BERTopic's representation) and how many of the cluster's statements hold
    them (KeyBERT's closeness to the centre, measured by coverage); the label is a short phrase of 2-4 words.

    Phrases are counted by hazm lemma (so «سرد بود» and «سردند» count together) but shown as the cluster writes them
    most often (a lemma such as «سفارش نمید» is unreadable). A phrase may not start or end with a stop word. The
    label is never a greeting, thanks or purchase context, never only words to avoid (the data's product names,
    the words of every cluster), and a bare word only when no phrase of two or more words is common enough.
    """

    max_ngram: int = 4
    avoid: frozenset[str] = frozenset()  # words that alone make no label (product names from the data)
    # Whether a phrase names a cause at all (the report passes discovery.names_cause: no feeling, verdict, intention,
    # question or story is a label).
    names_cause: Callable[[str, frozenset[str]], bool] | None = None

    def candidates(self, text: str) -> list[tuple[str, str]]:
        """(lemma key, surface form) of every 1..max_ngram-gram that neither starts nor ends with a stop word."""
        words = [w for w in WORD.findall(PLACEHOLDER.sub(" ", text)) if not w.isdigit() and len(w) > 1]
        lemmas = [lemma(w) for w in words]
        stop = stopwords()
        found: list[tuple[str, str]] = []
        for n in range(1, self.max_ngram + 1):
            for i in range(len(words) - n + 1):
                first, last = i, i + n - 1
                if words[first] in stop or words[last] in stop or lemmas[first] in stop or lemmas[last] in stop:
                    continue
                gram = words[i : i + n]
                if len(set(gram)) < n:  # «افتضاح بود افتضاح»: a repetition, not a phrase
                    continue
                found.append((" ".join(lemmas[i : i + n]), " ".join(gram)))
        return found

    def terms(self, text: str) -> list[str]:
        return [key for key, _ in self.candidates(text)]

    def usable(self, phrase: str) -> bool:
        """Whether a phrase can name a theme: not a greeting or purchase context, not a feeling, verdict, intention
        or question («راضی نبودم», «دیگه سفارش نمیدم»; `names_cause`), not only product names and stop
        words; a single word not a verb («نداشت»)."""
        from bazkhord.model.themes.opinion import REACTION, carries_no_opinion

        words = phrase.split()
        if len(words) == 1 and is_verb(words[0]):
            return False
        plain = self.avoid | stopwords() | REACTION
        return (not carries_no_opinion(phrase) and not all(w in plain or lemma(w) in plain for w in words)
                and (self.names_cause is None or self.names_cause(phrase, self.avoid)))

    def label(self, keyphrases: Sequence[str]) -> str:
        """The first usable phrase of 2-4 words among the key phrases; else the first usable word; "" when none is
        usable (a cluster of feelings, not of a cause)."""
        usable = [k for k in keyphrases if self.usable(k)]
        phrase = next((k for k in usable if 2 <= len(k.split()) <= self.max_ngram), None)
        return phrase or (usable[0] if usable else "")

    def keyphrases(self, clusters: Sequence[Sequence[str]], top_n: int = 5) -> list[list[str]]:
        return [keys for keys, _ in self.describe(clusters, top_n)]

    def describe(self, clusters: Sequence[Sequence[str]], top_n: int = 5) -> list[tuple[list[str], str]]:
        """Per cluster, up to `top_n` key phrases (best first) and its label: the best usable phrase of 2-4 words
        that at least two statements and 4% of the cluster hold; else a usable word that a tenth of them hold;
        else «شکایت از X» for a product X that a quarter of them name; else "" (nothing in the cluster names a
        cause)."""
        from bazkhord.model.themes.opinion import carries_no_opinion

        per_text = [[dict(self.candidates(text)) for text in texts] for texts in clusters]
        counts = [Counter(key for found in texts for key in found) for texts in per_text]
        holders = [Counter(key for found in texts for key in set(found)) for texts in per_text]
        surfaces: list[dict[str, Counter[str]]] = []
        for texts in per_text:
            forms: dict[str, Counter[str]] = {}
            for found in texts:
                for key, surface in found.items():
                    forms.setdefault(key, Counter())[surface] += 1
            surfaces.append(forms)
        total = Counter[str]()
        for c in counts:
            total.update(c)
        # Words found in most clusters (غذا, سفارش) say nothing on their own.
        spread = Counter(w for c in counts for w in {k for k in c if " " not in k})
        common = {w for w, n in spread.items() if len(clusters) >= 4 and n >= 0.6 * len(clusters)}
        average_words = max(1.0, sum(sum(c.values()) for c in counts) / max(1, len(counts)))
        result = []
        for c, held, forms, cluster in zip(counts, holders, surfaces, clusters, strict=True):
            size = sum(c.values()) or 1
            statements = max(1, len(cluster))
            scores = {t: (n / size) * math.log(1 + average_words / total[t]) * (1 + 0.5 * t.count(" "))
                      * (0.5 + held[t] / statements)
                      for t, n in c.items() if (n >= 2 or len(c) < 10) and not (" " not in t and t in common)}

            def shown(term: str, forms: dict[str, Counter[str]] = forms) -> str:
                return forms[term].most_common(1)[0][0]

            ranked: list[str] = []
            for term in sorted(scores, key=lambda t: (-scores[t], t)):
                if not carries_no_opinion(shown(term)):  # «سفارش داده بودم»: context, not a cause
                    ranked.append(term)
                    if len(ranked) == 20 * top_n:
                        break
            picked: list[str] = []
            for term in ranked:
                # Skip a phrase that only repeats words of one already picked.
                if any(set(term.split()) <= set(p.split()) for p in picked):
                    continue
                picked.append(term)
                if len(picked) == top_n:
                    break
            phrase = next((t for t in ranked if " " in t and held[t] >= max(2, math.ceil(0.04 * statements))
                           and self.usable(shown(t))), None)
            word = next((t for t in ranked if " " not in t and held[t] >= max(2, math.ceil(0.1 * statements))
                         and self.usable(shown(t))), None)
            if phrase is not None and phrase not in picked:
                picked = [*picked[: top_n - 1], phrase]
            best = phrase or word
            label = shown(best) if best else ""
            if not label:  # complaints about one product, with nothing more common to say: name the product
                product = next((t for t in ranked if " " not in t and t not in common
                                and (t in self.avoid or shown(t) in self.avoid)
                                and held[t] >= max(2, math.ceil(0.25 * statements))), None)
                label = f"{PRODUCT_COMPLAINT} {shown(product)}" if product else ""
            result.append(([shown(t) for t in picked], label))
        return result
