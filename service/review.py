"""The review queue over the store: the comments whose correction is worth most, chosen by `model.review`.

The queue is built from the newest uncorrected comments (`REVIEW_POOL`) with the active model's stored probabilities,
the TF-IDF baseline's reading where the model is a transformer with one, and the newest theme run's statements (a
comment whose complaints went to several themes, or to an aspect's theme the model barely saw, is in doubt). It is
kept until it is answered, the model changes, or `REVIEW_QUEUE_MINUTES` pass; each process keeps its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bazkhord.model.folder import LoadedModel
from bazkhord.model.review import Candidate, Reason, choose_for_review, text_clusters
from bazkhord.service.db import CodebookTheme, Feedback, FeedbackAspect, ThemeStatement, utcnow
from bazkhord.service.settings import Settings
from bazkhord.service.themestore import ThemeStore

ALREADY = 5_000  # the newest corrected comments whose near-duplicates are not asked again


@dataclass
class Queue:
    items: list[tuple[str, Reason]]  # (client id, why), best first
    model: str  # name@version it was built with
    built_at: datetime
    built: float = field(default_factory=time.monotonic)


class ReviewQueues:
    def __init__(self, engine: Engine, themes: ThemeStore, settings: Settings) -> None:
        self.engine, self.themes, self.settings = engine, themes, settings
        self._queue: Queue | None = None
        self._lock = threading.Lock()  # one build at a time; a page waiting for it gets the new queue

    def queue(self, loaded: LoadedModel, corrected: Callable[[list[str]], set[str]], rebuild: bool = False) -> Queue:
        """The current queue, built again when asked, stale, of another model, or all answered."""
        with self._lock:
            held = self._queue
            model = f"{loaded.name}@{loaded.version}"
            stale = held is None or rebuild or held.model != model or (
                time.monotonic() - held.built > self.settings.review_queue_minutes * 60)
            if not stale and held is not None:
                ids = [c for c, _ in held.items]
                stale = len(corrected(ids)) >= len(ids)
            if stale or held is None:
                held = self._queue = Queue(self._choose(loaded), model, utcnow())
            return held

    def waiting(self, loaded: LoadedModel, corrected: Callable[[list[str]], set[str]],
                rebuild: bool = False) -> tuple[Queue, list[tuple[str, Reason]]]:
        """The current queue and its comments nobody has answered yet, best first."""
        queue = self.queue(loaded, corrected, rebuild)
        done = corrected([c for c, _ in queue.items])
        return queue, [(c, r) for c, r in queue.items if c not in done]

    def _choose(self, loaded: LoadedModel) -> list[tuple[str, Reason]]:
        tagger = loaded.tagger
        labels = list(tagger.labels)
        with Session(self.engine) as session:
            rows = session.execute(
                select(Feedback.id, Feedback.client_id, Feedback.text, Feedback.probabilities, Feedback.channel,
                       Feedback.created_at).where(Feedback.corrected_at.is_(None))
                .order_by(Feedback.created_at.desc(), Feedback.id.desc()).limit(self.settings.review_pool)).all()
            if not rows:
                return []
            already = list(session.scalars(select(Feedback.text).where(Feedback.corrected_at.is_not(None))
                                           .order_by(Feedback.corrected_at.desc()).limit(ALREADY)))
            doubt, theme_of = self._theme_doubt(session, [r.id for r in rows])
        normalised = tagger.normalise([r.text for r in rows])
        second = self._second_opinion(tagger, labels, normalised)
        clusters = text_clusters(normalised)
        candidates = []
        for n, row in enumerate(rows):
            probabilities = [float(row.probabilities.get(label, 0.0)) for label in labels]
            candidates.append(Candidate(
                row.client_id, normalised[n], probabilities, None if second is None else tuple(second[n]),
                doubt.get(row.id, 0.0),
                (theme_of.get(row.id, "-"), row.channel or "-", row.created_at.strftime("%Y-%m"), clusters[n])))
        chosen = choose_for_review(candidates, self.settings.review_size, already=tagger.normalise(already))
        return [(candidates[i].key, reason) for i, reason in chosen]

    @staticmethod
    def _second_opinion(tagger: Any, labels: list[str], normalised: list[str]) -> np.ndarray | None:
        """The TF-IDF baseline's probabilities, in the model's label order, where the model keeps one."""
        baseline = getattr(tagger, "baseline", None)
        if baseline is None:
            return None
        proba = baseline.sentiment_.predict_proba(normalised)
        order = [list(baseline.labels).index(label) if label in baseline.labels else -1 for label in labels]
        out = np.zeros((len(normalised), len(labels)))
        for j, k in enumerate(order):
            if k >= 0:
                out[:, j] = proba[:, k]
        return out

    def _theme_doubt(self, session: Session, ids: list[int]) -> tuple[dict[int, float], dict[int, str]]:
        """How unsure the newest run's theme of each comment's complaints is, and that theme (for spreading)."""
        run_id = self.themes.latest_run()
        if run_id is None:
            return {}, {}
        doubt: dict[int, float] = {}
        theme_of: dict[int, str] = {}
        aspects = dict(session.execute(select(CodebookTheme.id, CodebookTheme.aspect)
                                       .where(CodebookTheme.aspect.is_not(None))).all())
        confidence: dict[tuple[int, str], float] = {}
        for chunk in range(0, len(ids), 900):
            part = ids[chunk:chunk + 900]
            for fid, theme, sole in session.execute(
                    select(ThemeStatement.feedback_id, ThemeStatement.theme_id, ThemeStatement.sole)
                    .where(ThemeStatement.run_id == run_id, ThemeStatement.feedback_id.in_(part))):
                theme_of.setdefault(fid, str(theme))
                doubt[fid] = max(doubt.get(fid, 0.0), 0.0 if sole else 0.5)
            for fid, name, conf in session.execute(
                    select(FeedbackAspect.feedback_id, FeedbackAspect.aspect, FeedbackAspect.confidence)
                    .where(FeedbackAspect.feedback_id.in_(part))):
                confidence[(fid, name)] = float(conf)
        # An aspect theme's statement whose comment the model gave that aspect with little confidence (or not at all).
        for fid, theme_key in list(theme_of.items()):
            aspect = aspects.get(int(theme_key))
            if aspect is not None:
                doubt[fid] = max(doubt.get(fid, 0.0), 1.0 - confidence.get((fid, aspect), 0.4))
        return doubt, theme_of
