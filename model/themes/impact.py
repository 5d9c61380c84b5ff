"""A theme's impact: what the negative share, mean rating and NPS would be if its complaints were neutral."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from bazkhord.data.record import FeedbackRecord

IMPACT_METHOD = ("a comment is negative when one of its statements is; for each theme, the comments whose only "
                 "negative statements belong to it are counted as not negative, their rating set to the mean "
                 "rating and their NPS score to the median score of comments without complaints")

def nps_of(scores: Sequence[float]) -> float | None:
    if not scores:
        return None
    promoters = sum(1 for s in scores if s >= 9)
    detractors = sum(1 for s in scores if s <= 6)
    return round(100 * (promoters - detractors) / len(scores), 2)


@dataclass(frozen=True)
class Outcomes:
    """Per-report baselines of the impact counterfactual, the same for every theme."""

    ratings: dict[int, float]  # comment index -> rating
    scores: dict[int, float]  # comment index -> NPS score
    calm_rating: float | None  # mean rating of comments without complaints
    calm_score: float | None  # median NPS score of those comments

    @classmethod
    def of(cls, records: Sequence[FeedbackRecord], negative: Mapping[int, object]) -> Outcomes:
        ratings = {i: float(r.rating) for i, r in enumerate(records) if r.rating is not None}
        scores = {i: float(r.nps) for i, r in enumerate(records) if r.nps is not None}
        calm_ratings = [v for i, v in ratings.items() if i not in negative]
        calm_scores = [v for i, v in scores.items() if i not in negative]
        return cls(ratings, scores, float(np.mean(calm_ratings)) if calm_ratings else None,
                   float(np.median(calm_scores)) if calm_scores else None)

    def rating_change(self, relieved: set[int]) -> float | None:
        if not self.ratings or self.calm_rating is None:
            return None
        before = float(np.mean(list(self.ratings.values())))
        after = float(np.mean([self.calm_rating if i in relieved else v for i, v in self.ratings.items()]))
        return round(after - before, 4)

    def nps_change(self, relieved: set[int]) -> float | None:
        if not self.scores or self.calm_score is None:
            return None
        before = nps_of(list(self.scores.values()))
        after = nps_of([self.calm_score if i in relieved else v for i, v in self.scores.items()])
        return None if before is None or after is None else round(after - before, 3)
