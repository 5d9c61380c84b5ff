"""Themes of more statements than one machine clusters at once: the steps fitted on a seeded sample, the rest
assigned to the nearest cluster chunk by chunk, here or as Ray tasks (`mapper`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.preprocessing import normalize

from bazkhord.model.themes.steps import Clusterer, Embedder, NearestCentroid, Reducer, fit_projection

Mapper = Callable[[Callable[[list[str]], tuple[np.ndarray, np.ndarray]], list[str]], tuple[np.ndarray, np.ndarray]]
ASSIGN_CHUNK = 20_000


def map_locally(assign: Callable[[list[str]], tuple[np.ndarray, np.ndarray]],
                texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Run `assign` over the texts a chunk at a time in this process (the default; Ray's mapper runs the chunks on
    the cluster)."""
    labels, scores = [], []
    for start in range(0, len(texts), ASSIGN_CHUNK):
        chunk_labels, chunk_scores = assign(texts[start : start + ASSIGN_CHUNK])
        labels.append(chunk_labels)
        scores.append(chunk_scores)
    return (np.concatenate(labels), np.concatenate(scores)) if labels else (np.zeros(0, dtype=int), np.zeros(0))


def seeded_sample(n: int, size: int, seed: int) -> np.ndarray:
    """`size` of the indices 0..n-1, the same for the same seed, in order."""
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def cluster_on_sample(texts: list[str], embedder: Embedder, reducer: Reducer, clusterer: Clusterer, size: int,
                      seed: int, mapper: Mapper = map_locally) -> tuple[np.ndarray, np.ndarray] | None:
    """Labels (-1: none) and closeness to the cluster centre of statements too many to cluster at once: embedder,
    reducer and clusterer fitted on a seeded sample of `size`, the rest given the nearest cluster by `mapper`.
    None when the steps cannot be fitted apart from use (steps of one's own)."""
    chosen = seeded_sample(len(texts), size, seed)
    projection = fit_projection(embedder, reducer, [texts[i] for i in chosen])
    if projection is None:
        return None
    raw = projection([texts[i] for i in chosen], unit=False)
    sample_labels = clusterer.cluster(normalize(raw))
    assign = NearestCentroid.of(projection, raw, sample_labels)
    rest = np.setdiff1d(np.arange(len(texts)), chosen)
    labels = np.full(len(texts), -1, dtype=int)
    closeness = np.zeros(len(texts))
    labels[chosen] = sample_labels
    for row, c in enumerate(assign.clusters):
        closeness[chosen[sample_labels == c]] = raw[sample_labels == c] @ assign.centroids[row]
    labels[rest], closeness[rest] = mapper(assign, [texts[i] for i in rest])
    return labels, closeness
