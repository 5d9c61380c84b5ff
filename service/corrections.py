"""Analysts' corrections of stored comments: recorded for good, copied beside the model's tags, exported for training.

A correction never overwrites what the model read: `feedback.sentiment` and each aspect's `polarity` stay the
model's; the newest human label goes beside them (`human_sentiment`, `human_polarity`), and every correction is a
row of its own with who and when. Reports count the human label where there is one. A statement's theme is
corrected through the codebook (a move edit), so it reaches the pages and the next theme run as every edit does.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bazkhord.data.pii import mask_pii
from bazkhord.data.record import FeedbackRecord
from bazkhord.service.db import CodebookTheme, Correction, Feedback, ThemeStatement, utcnow
from bazkhord.service.store import ABSENT, Stored, _stored, human_aspect
from bazkhord.service.themestore import ThemeStore

# The newest uncorrected comments a retraining self-trains on: enough to hold a stream's vocabulary, few enough that
# the TF-IDF fit stays a matter of minutes on two cores.
UNCORRECTED_LIMIT = 50_000

log = logging.getLogger("bazkhord.corrections")


@dataclass(frozen=True)
class LabelSet:
    """What a correction may say: the active model's labels (a label it cannot learn is refused)."""

    sentiments: tuple[str, ...]
    aspects: tuple[str, ...]
    polarities: tuple[str, ...]


@dataclass(frozen=True)
class Change:
    """One comment's corrections, as a request or a form gives them."""

    client_id: str
    sentiment: str | None = None
    aspects: dict[str, str] = field(default_factory=dict)
    statement: tuple[int, int] | None = None  # (start, theme id)
    confirm: bool = False


class CorrectionError(Exception):
    """Refused corrections, each problem with where it is: [(location, message)]; nothing was stored."""

    def __init__(self, status: int, code: str, message: str, problems: list[tuple[list[str | int], str]]) -> None:
        super().__init__(message)
        self.status, self.code, self.problems = status, code, problems


@dataclass(frozen=True)
class ExportedRows:
    rows: list[dict[str, Any]]  # the training data format
    conflicts: list[dict[str, Any]]  # where people disagreed: every value, who and when; the newest is exported


class CorrectionStore:
    def __init__(self, engine: Engine, themes: ThemeStore) -> None:
        self.engine, self.themes = engine, themes

    def check(self, changes: Sequence[Change], labels: LabelSet) -> None:
        """Refuse labels the model does not know, an empty correction, and (below) comments not in the store."""
        problems: list[tuple[list[str | int], str]] = []
        for n, change in enumerate(changes):
            if change.sentiment is None and not change.aspects and change.statement is None and not change.confirm:
                problems.append((["items", n], "says nothing to correct: give sentiment, aspects, statement or "
                                               "confirm"))
            if change.sentiment is not None and change.sentiment not in labels.sentiments:
                problems.append((["items", n, "sentiment"], f"{change.sentiment!r} is not one of the model's labels "
                                                            f"({', '.join(labels.sentiments)})"))
            for aspect, polarity in change.aspects.items():
                if aspect not in labels.aspects:
                    problems.append((["items", n, "aspects", aspect], "not an aspect of the model's taxonomy ("
                                     + (", ".join(labels.aspects) or "the model has no aspects") + ")"))
                elif polarity not in (*labels.polarities, ABSENT):
                    problems.append((["items", n, "aspects", aspect], f"{polarity!r} is not a polarity "
                                     f"({', '.join((*labels.polarities, ABSENT))})"))
        if problems:
            raise CorrectionError(422, "invalid_correction", f"{len(problems)} problem(s) in the corrections; nothing "
                                                             "was stored", problems)

    def correct(self, changes: Sequence[Change], labels: LabelSet, made_by: str) -> list[Stored]:
        """Record the corrections in one transaction (all or none) and answer the comments as now stored."""
        self.check(changes, labels)
        moves: list[tuple[int, int]] = []  # (statement row, theme)
        now = utcnow()
        with Session(self.engine) as session, session.begin():
            rows = {r.client_id: r for r in session.scalars(
                select(Feedback).where(Feedback.client_id.in_([c.client_id for c in changes])))}
            missing: list[tuple[list[str | int], str]] = [
                (["items", n, "client_id"], f"no stored comment has client_id {c.client_id!r}")
                for n, c in enumerate(changes) if c.client_id not in rows]
            if missing:
                raise CorrectionError(404, "not_found", "unknown comment(s); nothing was stored", missing)
            run_id = self.themes.latest_run()
            for n, change in enumerate(changes):
                row = rows[change.client_id]
                if change.statement is not None:
                    moves.append(self._statement(session, n, row, change.statement, run_id))
                    session.add(Correction(feedback_id=row.id, field="theme", aspect=None,
                                           value=str(change.statement[1]), model_value=None,
                                           start=change.statement[0], made_by=made_by, made_at=now))
                self._apply(session, row, change, made_by, now)
        for statement_row, theme in moves:
            self.themes.edit("move", made_by, statement_row=statement_row, target=theme)
        with Session(self.engine) as session:
            fresh = session.scalars(select(Feedback).where(Feedback.client_id.in_([c.client_id for c in changes])))
            by_id = {r.client_id: _stored(r) for r in fresh}
        return [by_id[c.client_id] for c in changes]

    @staticmethod
    def _statement(session: Session, n: int, row: Feedback, statement: tuple[int, int],
                   run_id: int | None) -> tuple[int, int]:
        start, theme = statement
        found = None
        if run_id is not None:
            found = session.scalar(select(ThemeStatement.id).where(
                ThemeStatement.run_id == run_id, ThemeStatement.feedback_id == row.id, ThemeStatement.start == start))
        if found is None:
            raise CorrectionError(422, "invalid_correction", "no such complaint statement", [(
                ["items", n, "statement", "start"], f"the newest theme run has no complaint statement of comment "
                                                    f"{row.client_id!r} starting at {start}")])
        if session.get(CodebookTheme, theme) is None:
            raise CorrectionError(422, "invalid_correction", "no such theme", [(
                ["items", n, "statement", "theme_id"], f"no theme has id {theme}")])
        return found, theme

    @staticmethod
    def _apply(session: Session, row: Feedback, change: Change, made_by: str, now: datetime) -> None:
        sentiment = change.sentiment
        if change.confirm and sentiment is None:
            sentiment = row.human_sentiment or row.sentiment
        if sentiment is not None:
            session.add(Correction(feedback_id=row.id, field="sentiment", aspect=None, value=sentiment,
                                   model_value=row.sentiment, start=None, made_by=made_by, made_at=now))
            row.human_sentiment = sentiment
        if change.confirm:  # the aspects as shown are right too: what was the model's becomes the analyst's
            for aspect in row.aspects:
                if aspect.human_polarity is None and aspect.aspect not in change.aspects:
                    aspect.human_polarity = aspect.polarity
        by_name = {a.aspect: a for a in row.aspects}
        for name, polarity in change.aspects.items():
            existing = by_name.get(name)
            session.add(Correction(feedback_id=row.id, field="aspect", aspect=name, value=polarity,
                                   model_value=existing.polarity if existing is not None and existing.origin == "model"
                                   else None, start=None, made_by=made_by, made_at=now))
            if existing is None:
                if polarity != ABSENT:
                    row.aspects.append(human_aspect(name, polarity))
            elif existing.origin == "human" and polarity == ABSENT:
                row.aspects.remove(existing)
            else:
                existing.human_polarity = polarity
                if existing.origin == "human":
                    existing.polarity = polarity
        row.corrected_by, row.corrected_at = made_by, now

    def move_statement(self, statement_row: int, theme: int, made_by: str) -> None:
        """The theme page's move of one statement, as a correction of its comment."""
        with Session(self.engine) as session:
            found = session.execute(select(Feedback.client_id, ThemeStatement.start)
                                    .join(Feedback, Feedback.id == ThemeStatement.feedback_id)
                                    .where(ThemeStatement.id == statement_row)).first()
        if found is None:
            raise CorrectionError(422, "invalid_correction", f"no statement {statement_row}", [])
        self.correct([Change(found.client_id, statement=(found.start, theme))], LabelSet((), (), ()), made_by)

    # -- reading ---------------------------------------------------------------------------------------------
    def history(self, client_id: str | None = None, limit: int = 100) -> list[tuple[Correction, str]]:
        with Session(self.engine) as session:
            query = (select(Correction, Feedback.client_id).join(Feedback, Feedback.id == Correction.feedback_id)
                     .order_by(Correction.id.desc()).limit(limit))
            if client_id is not None:
                query = query.where(Feedback.client_id == client_id)
            return [(c, cid) for c, cid in session.execute(query).all()]

    def counts(self) -> tuple[int, int]:
        """(corrections recorded, comments corrected)."""
        with Session(self.engine) as session:
            total = int(session.scalar(select(func.count(Correction.id))) or 0)
            comments = int(session.scalar(select(func.count(Feedback.id)).where(Feedback.corrected_at.is_not(None)))
                           or 0)
        return total, comments

    def corrected_among(self, client_ids: Sequence[str]) -> set[str]:
        if not client_ids:
            return set()
        with Session(self.engine) as session:
            return set(session.scalars(select(Feedback.client_id).where(
                Feedback.client_id.in_(list(client_ids)), Feedback.corrected_at.is_not(None))))

    def uncorrected(self, limit: int = UNCORRECTED_LIMIT) -> list[str]:
        """The texts of the newest comments nobody corrected (personal data masked): a retraining on corrections
        self-trains on them (model.self_training), so the model learns the words of the company's own stream."""
        with Session(self.engine) as session:
            texts = session.scalars(select(Feedback.text).where(Feedback.corrected_at.is_(None))
                                    .order_by(Feedback.created_at.desc(), Feedback.id.desc()).limit(limit))
            return [mask_pii(text) for text in texts]

    def export(self, mask: bool = True) -> ExportedRows:
        """Every corrected comment as a row of the training data format: its text (personal data masked), the
        newest human sentiment, and its aspects as the analyst left them where the analyst touched them. A label
        the analyst did not give stays out (null), so the model never learns its own guesses back."""
        rows: list[dict[str, Any]] = []
        conflicts: list[dict[str, Any]] = []
        with Session(self.engine) as session:
            history: dict[int, list[Correction]] = defaultdict(list)
            for correction in session.scalars(select(Correction).where(Correction.field != "theme")
                                              .order_by(Correction.id)):
                history[correction.feedback_id].append(correction)
            query = select(Feedback).where(Feedback.corrected_at.is_not(None)).order_by(Feedback.corrected_at,
                                                                                         Feedback.id)
            for row in session.scalars(query):
                kept = history.get(row.id, [])
                reviewed_aspects = any(c.field == "aspect" for c in kept) or any(
                    a.human_polarity is not None for a in row.aspects)
                if row.human_sentiment is None and not reviewed_aspects:
                    continue  # only the theme of a statement was corrected: nothing to train on
                aspects = ({a.aspect: a.human_polarity or a.polarity for a in row.aspects if a.human_polarity != ABSENT}
                           if reviewed_aspects else None)
                rows.append({"id": row.client_id, "text": mask_pii(row.text) if mask else row.text,
                             "sentiment": row.human_sentiment, "aspects": aspects,
                             "channel": row.channel, "product": row.product, "segment": row.segment,
                             "created_at": row.created_at.isoformat(),
                             "corrected_by": row.corrected_by, "corrected_at": row.corrected_at.isoformat()
                             if row.corrected_at else None,
                             "model_sentiment": row.sentiment, "model_version": row.model_version})
                conflicts += _conflicts(row.client_id, kept)
        return ExportedRows([{k: v for k, v in r.items() if v is not None or k in ("sentiment", "aspects")}
                             for r in rows], conflicts)


def as_records(rows: Sequence[dict[str, Any]]) -> list[FeedbackRecord]:
    """Exported rows as the training data's records (what `corrections.file` would read back)."""
    return [FeedbackRecord(text=r["text"], id=r["id"], sentiment=r["sentiment"], aspects=r["aspects"],
                           origin=f"store:{r['id']}") for r in rows]


def _conflicts(client_id: str, corrections: Sequence[Correction]) -> list[dict[str, Any]]:
    """Fields of one comment that two people labelled differently: every (value, who, when) in order."""
    by_field: dict[tuple[str, str | None], list[Correction]] = defaultdict(list)
    for c in corrections:
        by_field[(c.field, c.aspect)].append(c)
    found = []
    for (name, aspect), made in by_field.items():
        people = {c.made_by for c in made}
        if len(people) > 1 and len({c.value for c in made}) > 1:
            found.append({"id": client_id, "field": name, "aspect": aspect, "newest": made[-1].value,
                          "values": [{"value": c.value, "by": c.made_by, "at": c.made_at.isoformat()} for c in made]})
    return found
