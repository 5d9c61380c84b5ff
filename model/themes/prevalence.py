"""Class shares on new traffic, corrected for label shift (quantification).

A classifier's share of predicted negatives is biased wherever the true share differs from its training data's:
trained on 50/50 and run on mostly happy customers, its false positives inflate the count. Adjusted classify and
count (Forman 2008) inverts the errors measured on dev: with C[i, j] = P(predicted j | true i), the observed
predicted shares q satisfy q = Cᵀ p, solved for the true shares p (non-negative, summing to one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import nnls


@dataclass(frozen=True)
class Prevalence:
    counted: dict[str, float]  # share of comments predicted as each class
    adjusted: dict[str, float] | None  # corrected by the dev confusion matrix; None without one
    method: str


def adjusted_shares(predicted: Sequence[str], labels: Sequence[str], confusion: dict[str, Any] | None) -> Prevalence:
    """Counted and adjusted shares of `labels` among `predicted` (one predicted label per comment)."""
    n = max(len(predicted), 1)
    counted = {label: sum(1 for p in predicted if p == label) / n for label in labels}
    if not confusion or not predicted:
        return Prevalence(counted, None, "classify and count (the model folder has no dev confusion matrix)")
    names = list(confusion["labels"])
    matrix = np.asarray(confusion["matrix"], dtype=float)
    rows = matrix.sum(axis=1, keepdims=True)
    if matrix.shape != (len(names), len(names)) or (rows == 0).any():
        return Prevalence(counted, None, "classify and count (the dev confusion matrix lacks a class)")
    rates = matrix / rows  # P(predicted j | true i)
    observed = np.array([sum(1 for p in predicted if p == name) / n for name in names])
    solution = _solve(rates, observed)
    adjusted = {label: float(solution[names.index(label)]) if label in names else 0.0 for label in labels}
    return Prevalence(counted, adjusted, "adjusted classify and count: the predicted shares corrected by the "
                                         "model's error rates on its dev split")


def _solve(rates: np.ndarray, observed: np.ndarray) -> np.ndarray:
    # Non-negative least squares, with the sum-to-one row weighted in: the shares stay a distribution.
    system = np.vstack([rates.T, 10.0 * np.ones(len(observed))])
    target = np.concatenate([observed, [10.0]])
    solution, _ = nnls(system, target)
    return solution / solution.sum() if solution.sum() > 0 else observed


def adjusted_interval(counts: dict[str, int], wanted: Sequence[str], confusion: dict[str, Any] | None,
                      level: float = 0.95, draws: int = 400, seed: int = 0) -> tuple[float, float, float] | None:
    """The adjusted share of the `wanted` classes with a percentile bootstrap interval: the comments' predicted
    counts resampled (multinomial) and the dev confusion matrix's rows too (Dirichlet on their counts), since both
    are samples. None without a usable confusion matrix or without comments."""
    total = sum(counts.values())
    if not confusion or total == 0:
        return None
    names = list(confusion["labels"])
    matrix = np.asarray(confusion["matrix"], dtype=float)
    if matrix.shape != (len(names), len(names)) or (matrix.sum(axis=1) == 0).any():
        return None
    picked = np.array([name in wanted for name in names])
    observed = np.array([counts.get(name, 0) for name in names], dtype=float) / total
    point = float(_solve(matrix / matrix.sum(axis=1, keepdims=True), observed)[picked].sum())
    rng = np.random.default_rng(seed)
    drawn = rng.multinomial(total, observed, size=draws) / total  # (draws, classes)
    # Dirichlet rows as normalised gammas, all draws at once: (draws, true class, predicted class).
    gammas = rng.standard_gamma(np.broadcast_to(matrix + 0.5, (draws, *matrix.shape)))
    rates = gammas / gammas.sum(axis=2, keepdims=True)
    # The same weighted system as `_solve`, solved by least squares for every draw together and clipped at zero
    # (where no share is zero, exactly the non-negative solution); one nnls per draw cost a tenth of a second a page.
    k = len(names)
    system = np.concatenate([rates.transpose(0, 2, 1), np.full((draws, 1, k), 10.0)], axis=1)
    target = np.concatenate([drawn, np.full((draws, 1), 10.0)], axis=1)
    solved = np.clip(np.einsum("dij,dj->di", np.linalg.pinv(system), target), 0.0, None)
    solved /= np.maximum(solved.sum(axis=1, keepdims=True), 1e-12)
    shares = solved[:, picked].sum(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(shares, [tail, 1 - tail])
    return point, float(min(low, point)), float(max(high, point))
