"""The statistics of trends and of the headline: Fisher's exact p-value as scipy gives it (computed faster), and the
adjusted negative share's bootstrap interval."""

from __future__ import annotations

import random

import pytest
from scipy.stats import fisher_exact

from bazkhord.model.themes.trends import fisher_two_sided


def test_fisher_two_sided_is_scipys_p_value() -> None:
    rng = random.Random(7)
    tables = [(0, 1, 0, 1), (5, 5, 0, 9), (0, 30, 30, 30), (3, 100, 1, 700), (40, 900, 200, 6000)]
    for _ in range(500):
        n1, n0 = rng.randint(1, 2000), rng.randint(1, 12000)
        tables.append((rng.randint(0, n1), n1, rng.randint(0, min(n0, rng.choice([n0, 40, 3]))), n0))
    for x1, n1, x0, n0 in tables:
        expected = float(fisher_exact([[x1, n1 - x1], [x0, n0 - x0]]).pvalue)
        assert fisher_two_sided(x1, n1, x0, n0) == pytest.approx(expected, rel=1e-8, abs=1e-300), (x1, n1, x0, n0)


def test_the_headline_interval_covers_the_true_share() -> None:
    """Simulated traffic with a known negative share, classified with known errors: the 95% interval of the
    adjusted share holds the true share in most draws, and is narrower with more comments."""
    import numpy as np

    from bazkhord.model.themes.prevalence import adjusted_interval

    rng = np.random.default_rng(3)
    labels = ["negative", "neutral", "positive"]
    rates = np.array([[0.8, 0.1, 0.1], [0.15, 0.6, 0.25], [0.05, 0.1, 0.85]])  # P(predicted | true)
    truth = np.array([0.3, 0.2, 0.5])
    confusion = {"labels": labels, "matrix": (rng.multinomial(300, [1 / 3] * 3)[:, None] * rates).round().tolist()}
    covered, widths = 0, {}
    for n in (400, 4000):
        for _ in range(60 if n == 400 else 10):
            true_classes = rng.choice(3, size=n, p=truth)
            predicted = [rng.choice(3, p=rates[c]) for c in true_classes]
            counts = {labels[k]: int(sum(1 for p in predicted if p == k)) for k in range(3)}
            found = adjusted_interval(counts, ["negative"], confusion)
            assert found is not None and found[1] <= found[0] <= found[2]
            widths.setdefault(n, []).append(found[2] - found[1])
            if n == 400:
                covered += found[1] <= float(np.mean(true_classes == 0)) <= found[2]
    assert covered >= 0.85 * 60
    assert np.mean(widths[4000]) < np.mean(widths[400])
    assert adjusted_interval({}, ["negative"], confusion) is None
    assert adjusted_interval({"negative": 3}, ["negative"], None) is None
