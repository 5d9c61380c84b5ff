"""Which comments an analyst should correct first: the review queue's choice, as one pure function.

The service's queue (over the store) and the corrections benchmark (over a labelled pool whose gold labels are
revealed only when chosen) call the same `choose_for_review`, so the benchmark measures what analysts get.

A comment is worth reviewing when the model is unsure of it (a small margin between its two most probable labels),
when a second model reads it otherwise (the TF-IDF baseline beside a transformer), or when the theme its complaint
was put in is in doubt. Ranked by worth alone, a queue fills with one cluster of odd comments that all teach the same
thing; so each pick lowers the worth of what shares its stratum (theme, channel, month), and a comment too like one
already chosen or corrected is skipped.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

# Weights of the three signals, and how much each earlier pick from the same stratum discounts a comment. On the dev
# splits of snappfood and digikala_recommend, with a model trained on the other (benchmarks/corrections.py), weighting
# by typicality (information density), by the share of words the model never saw, by the label read as a stratum,
# and a stronger discount (0.5) all scored within noise of this, and none better at 200 and 400 corrections.
DISAGREEMENT_WEIGHT = 1.0
THEME_DOUBT_WEIGHT = 0.5
STRATUM_DECAY = 0.7
NEAR_DUPLICATE = 0.7  # Jaccard similarity of character 4-gram sets at or above which two comments count as one
SHINGLE = 4


@dataclass(frozen=True)
class Candidate:
    """A comment the queue may ask about. `text` is normalised (near-duplicates are found on it); `probabilities` are
    the model's over its labels, `second` another model's over the same labels where there is one."""

    key: str
    text: str
    probabilities: Sequence[float]
    second: Sequence[float] | None = None
    theme_doubt: float = 0.0  # 0..1: how unsure the theme of its complaint is
    strata: tuple[str, ...] = ()  # e.g. its theme, channel, month and wording cluster: picks are spread across each


@dataclass(frozen=True)
class Reason:
    """Why a comment was chosen, for the page and the API (each 0..1)."""

    uncertainty: float
    disagreement: float
    theme_doubt: float
    worth: float = field(default=0.0)


def margin_uncertainty(probabilities: Sequence[float]) -> float:
    """1 minus the margin between the two most probable labels: 1 when they tie, 0 when one has it all."""
    top = sorted(probabilities, reverse=True)
    return 1.0 - (top[0] - (top[1] if len(top) > 1 else 0.0)) if top else 0.0


def disagreement(first: Sequence[float], second: Sequence[float] | None) -> float:
    """1 when the two models choose different labels, else half the total variation distance between them."""
    if second is None or len(second) != len(first) or not len(first):
        return 0.0
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if int(a.argmax()) != int(b.argmax()):
        return 1.0
    return float(0.25 * np.abs(a - b).sum())


def reason_for(candidate: Candidate) -> Reason:
    u = margin_uncertainty(candidate.probabilities)
    d = disagreement(candidate.probabilities, candidate.second)
    t = min(max(candidate.theme_doubt, 0.0), 1.0)
    return Reason(round(u, 4), round(d, 4), round(t, 4), round(u + DISAGREEMENT_WEIGHT * d + THEME_DOUBT_WEIGHT * t, 4))


def shingles(text: str) -> frozenset[str]:
    squeezed = " ".join(text.split())
    if len(squeezed) <= SHINGLE:
        return frozenset([squeezed])
    return frozenset(squeezed[i:i + SHINGLE] for i in range(len(squeezed) - SHINGLE + 1))


class NearDuplicates:
    """Texts already taken; `seen(text)` when a new one is about as one of them. An inverted index over shingles keeps
    the check to the texts that share some."""

    def __init__(self, texts: Iterable[str] = (), threshold: float = NEAR_DUPLICATE) -> None:
        self.threshold = threshold
        self._sets: list[frozenset[str]] = []
        self._index: dict[str, list[int]] = {}
        self._exact: set[str] = set()
        for text in texts:
            self.add(text)

    def add(self, text: str) -> None:
        grams = shingles(text)
        self._exact.add(" ".join(text.split()))
        for gram in grams:
            self._index.setdefault(gram, []).append(len(self._sets))
        self._sets.append(grams)

    def seen(self, text: str) -> bool:
        if " ".join(text.split()) in self._exact:
            return True
        grams = shingles(text)
        shared: Counter[int] = Counter()
        for gram in grams:
            shared.update(self._index.get(gram, ()))
        for other, common in shared.items():
            union = len(grams) + len(self._sets[other]) - common
            if union and common / union >= self.threshold:
                return True
        return False


def choose_for_review(candidates: Sequence[Candidate], budget: int, *, already: Iterable[str] = (),
                      decay: float = STRATUM_DECAY) -> list[tuple[int, Reason]]:
    """Up to `budget` candidates, best first, as (index into `candidates`, why). `already`: normalised texts of the
    comments corrected before, whose near-duplicates are not asked again.

    Greedy: the next pick is the candidate of highest worth, discounted by `decay` for each earlier pick that shares
    one of its strata (a lazy heap: a popped candidate whose discount has grown since it was pushed goes back)."""
    reasons = [reason_for(c) for c in candidates]
    taken: Counter[tuple[int, str]] = Counter()  # (stratum position, value) -> picks so far

    def discounted(i: int) -> float:
        shared = sum(taken[(k, value)] for k, value in enumerate(candidates[i].strata))
        return reasons[i].worth * decay ** shared

    # Ties go to the earlier candidate (the caller's order: e.g. the newest comment first).
    heap = [(-discounted(i), i) for i in range(len(candidates))]
    heapq.heapify(heap)
    duplicates = NearDuplicates(already)
    chosen: list[tuple[int, Reason]] = []
    while heap and len(chosen) < budget:
        negative, i = heapq.heappop(heap)
        now = discounted(i)
        if now < -negative - 1e-12:
            heapq.heappush(heap, (-now, i))
            continue
        if duplicates.seen(candidates[i].text):
            continue
        duplicates.add(candidates[i].text)
        chosen.append((i, reasons[i]))
        for k, value in enumerate(candidates[i].strata):
            taken[(k, value)] += 1
    return chosen


def text_clusters(texts: Sequence[str], clusters: int = 20, seed: int = 0) -> list[str]:
    """A cluster label per (normalised) text, for a stratum: comments that read alike share one, so the queue does
    not ask about one kind of comment over and over where the data has no theme or channel to spread across."""
    if len(texts) < 2 * clusters:
        return ["0"] * len(texts)
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer

    vectors = TfidfTransformer().fit_transform(
        HashingVectorizer(analyzer="char_wb", ngram_range=(2, 4), n_features=2**18, alternate_sign=False,
                          norm=None).transform(texts))
    found = MiniBatchKMeans(n_clusters=clusters, random_state=seed, n_init=3, batch_size=1024).fit_predict(vectors)
    return [str(int(c)) for c in found]
