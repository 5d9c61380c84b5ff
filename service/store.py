"""The feedback store: idempotent ingestion of tagged comments, summary reports over filters, re-tagging.

Plain synchronous SQLAlchemy; the HTTP edge calls it from worker threads. A comment is acknowledged only after
its transaction has committed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, and_, case, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bazkhord.data.errors import BazkhordError
from bazkhord.data.record import FeedbackRecord
from bazkhord.model.base import NEGATIVE_SENTIMENTS, NEGATIVE_SHARE_DEFINITION, Tag
from bazkhord.service.db import Feedback, FeedbackAspect, as_utc, utcnow

Period = Literal["day", "week", "month"]


class ConflictError(BazkhordError):
    """A client id that is already stored with a different text."""

    code = "E410"

    def __init__(self, client_ids: list[str]) -> None:
        super().__init__(f"client id(s) {client_ids} are stored already with a different text; "
                         "a client id names one comment for good")
        self.client_ids = client_ids


@dataclass(frozen=True)
class NewFeedback:
    client_id: str
    text: str
    channel: str | None = None
    product: str | None = None
    segment: str | None = None
    rating: float | None = None
    nps: int | None = None
    created_at: datetime | None = None

    @property
    def text_sha256(self) -> str:
        return sha256_text(self.text)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Stored:
    """A stored comment with its tags, as the API hands it back."""

    client_id: str
    text: str
    channel: str | None
    product: str | None
    segment: str | None
    rating: float | None
    nps: int | None
    created_at: datetime
    received_at: datetime
    sentiment: str
    probabilities: dict[str, float]
    aspects: list[dict[str, Any]]
    model_name: str
    model_version: str
    text_sha256: str = field(repr=False)
    api_key_id: int | None = field(default=None, repr=False)  # the key that stored it
    # Where an analyst corrected it: `sentiment` and `aspects` are then the human labels (each aspect says whose it
    # is), `model_sentiment` what the model read; `removed_aspects` the model's aspects an analyst said are absent.
    model_sentiment: str | None = None
    human_sentiment: str | None = None
    corrected_by: str | None = None
    corrected_at: datetime | None = None
    removed_aspects: tuple[str, ...] = ()


@dataclass(frozen=True)
class Filters:
    start: datetime | None = None  # inclusive, on created_at
    end: datetime | None = None  # exclusive
    channel: str | None = None
    product: str | None = None
    segment: str | None = None
    model_version: str | None = None

    def conditions(self, table: Any = Feedback) -> list[ColumnElement[bool]]:
        """The filters on the feedback table, or on a table that copies its reporting columns (the workspace's
        stored statements)."""
        found: list[ColumnElement[bool]] = []
        if self.start is not None:
            found.append(table.created_at >= self.start)
        if self.end is not None:
            found.append(table.created_at < self.end)
        for column, value in ((table.channel, self.channel), (table.product, self.product),
                              (table.segment, self.segment), (table.model_version, self.model_version)):
            if value is not None:
                found.append(column == value)
        return found


ABSENT = "absent"  # an analyst's polarity for an aspect the model found and the comment does not speak of


def effective_sentiment() -> ColumnElement[str]:
    """The label the reports count: an analyst's where there is one, else the model's."""
    return func.coalesce(Feedback.human_sentiment, Feedback.sentiment)


def effective_polarity() -> ColumnElement[str]:
    return func.coalesce(FeedbackAspect.human_polarity, FeedbackAspect.polarity)


def _stored(row: Feedback) -> Stored:
    aspects = [{"aspect": a.aspect, "polarity": a.human_polarity or a.polarity, "confidence": a.confidence,
                "polarity_confidence": a.polarity_confidence, "evidence": a.evidence,
                "source": "human" if a.human_polarity is not None else "model",
                "model_polarity": a.polarity if a.origin == "model" else None}
               for a in row.aspects if a.human_polarity != ABSENT]
    return Stored(
        client_id=row.client_id, text=row.text, channel=row.channel, product=row.product, segment=row.segment,
        rating=row.rating, nps=row.nps, created_at=row.created_at, received_at=row.received_at,
        sentiment=row.human_sentiment or row.sentiment, probabilities=dict(row.probabilities), aspects=aspects,
        model_name=row.model_name, model_version=row.model_version, text_sha256=row.text_sha256,
        api_key_id=row.api_key_id, model_sentiment=row.sentiment, human_sentiment=row.human_sentiment,
        corrected_by=row.corrected_by,
        corrected_at=row.corrected_at,
        removed_aspects=tuple(a.aspect for a in row.aspects if a.human_polarity == ABSENT))


def _apply_tag(row: Feedback, tag: Tag, model_name: str, model_version: str) -> None:
    """The model's tags on the row. Analysts' aspect labels stay: on the new model's aspect where it found the same
    one, else as an aspect of their own."""
    human = {a.aspect: a.human_polarity for a in (row.aspects or []) if a.human_polarity is not None}
    row.sentiment = tag.sentiment
    row.sentiment_confidence = float(tag.probabilities.get(tag.sentiment, 0.0))
    row.probabilities = dict(tag.probabilities)
    row.model_name, row.model_version, row.tagged_at = model_name, model_version, utcnow()
    row.aspects = [
        FeedbackAspect(aspect=a.aspect, polarity=a.polarity, confidence=a.confidence,
                       polarity_confidence=a.polarity_confidence, origin="model", human_polarity=human.get(a.aspect),
                       evidence=[{"text": e.text, "start": e.start, "end": e.end} for e in a.evidence])
        for a in tag.aspects
    ] + [human_aspect(name, polarity) for name, polarity in human.items()
         if polarity != ABSENT and name not in {a.aspect for a in tag.aspects}]



def human_aspect(aspect: str, polarity: str) -> FeedbackAspect:
    """An aspect an analyst added where the model found none: no confidence and no evidence of the model's."""
    return FeedbackAspect(aspect=aspect, polarity=polarity, confidence=1.0, polarity_confidence=1.0, evidence=[],
                          origin="human", human_polarity=polarity)


class FeedbackStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- ingestion ---------------------------------------------------------------------------------------
    def find(self, client_ids: Sequence[str]) -> dict[str, Stored]:
        if not client_ids:
            return {}
        with Session(self.engine) as session:
            rows = session.scalars(select(Feedback).where(Feedback.client_id.in_(list(client_ids)))).all()
            return {row.client_id: _stored(row) for row in rows}

    def add(self, items: Sequence[NewFeedback], tags: Sequence[Tag], model_name: str, model_version: str,
            api_key_id: int | None = None) -> list[tuple[Stored, bool]]:
        """Store tagged comments in one transaction. Each comes back with `True` when it was new, `False` when the
        same client id and text were stored already (a retry, perhaps racing this one). Raises ConflictError,
        storing nothing, when a client id is stored with another text."""
        results: list[tuple[Stored, bool]] = []
        conflicts: list[str] = []
        now = utcnow()
        with Session(self.engine) as session, session.begin():
            for item, tag in zip(items, tags, strict=True):
                row = Feedback(client_id=item.client_id, text=item.text, text_sha256=item.text_sha256,
                               channel=item.channel, product=item.product, segment=item.segment, rating=item.rating,
                               nps=item.nps, created_at=as_utc(item.created_at) if item.created_at else now,
                               received_at=now, api_key_id=api_key_id)
                _apply_tag(row, tag, model_name, model_version)
                try:
                    with session.begin_nested():
                        session.add(row)
                    results.append((_stored(row), True))
                except IntegrityError:  # stored meanwhile by a concurrent request
                    existing = session.scalars(select(Feedback).where(Feedback.client_id == item.client_id)).one()
                    if existing.text_sha256 != item.text_sha256:
                        conflicts.append(item.client_id)
                    results.append((_stored(existing), False))
            if conflicts:
                session.rollback()
                raise ConflictError(conflicts)
        return results

    def count(self, filters: Filters | None = None) -> int:
        with Session(self.engine) as session:
            return int(session.scalar(select(func.count(Feedback.id)).where(*(filters or Filters()).conditions())) or 0)

    # -- reports -----------------------------------------------------------------------------------------
    def summary(self, filters: Filters, period: Period = "week") -> dict[str, Any]:
        where = filters.conditions()
        sentiment = effective_sentiment()
        negative = func.sum(case((sentiment.in_(NEGATIVE_SENTIMENTS), 1), else_=0))
        with Session(self.engine) as session:
            total, mean_rating = session.execute(
                select(func.count(Feedback.id), func.avg(Feedback.rating)).where(*where)).one()
            nps_row = session.execute(select(
                func.count(Feedback.nps),
                func.sum(case((Feedback.nps >= 9, 1), else_=0)),
                func.sum(case((Feedback.nps <= 6, 1), else_=0)),
            ).where(*where, Feedback.nps.is_not(None))).one()
            sentiments = dict(session.execute(
                select(sentiment, func.count()).where(*where).group_by(sentiment)).all())
            corrected = int(session.scalar(select(func.count(Feedback.id)).where(
                *where, Feedback.corrected_at.is_not(None))) or 0)
            read = effective_polarity()
            aspect_rows = session.execute(
                select(FeedbackAspect.aspect, read, func.count())
                .join(Feedback, FeedbackAspect.feedback_id == Feedback.id).where(*where, read != ABSENT)
                .group_by(FeedbackAspect.aspect, read)).all()
            channels = session.execute(
                select(Feedback.channel, func.count(), negative).where(*where).group_by(Feedback.channel)).all()
            versions = session.execute(
                select(Feedback.model_name, Feedback.model_version, func.count()).where(*where)
                .group_by(Feedback.model_name, Feedback.model_version)).all()
            bucket = self._bucket(period).label("period")
            series = session.execute(
                select(bucket, func.count(), negative).where(*where).group_by(bucket).order_by(bucket)).all()

        aspects: dict[str, dict[str, int]] = {}
        for aspect, polarity, n in aspect_rows:
            aspects.setdefault(aspect, {})[polarity] = int(n)
        nps_n, promoters, detractors = (int(v or 0) for v in nps_row)
        return {
            "comments": int(total),
            "sentiment": {label: int(n) for label, n in sorted(sentiments.items())},
            "negative_share": sum(sentiments.get(label, 0) for label in NEGATIVE_SENTIMENTS) / total if total else None,
            "negative_share_definition": NEGATIVE_SHARE_DEFINITION,
            "corrected": corrected,
            "mean_rating": float(mean_rating) if mean_rating is not None else None,
            "nps": {"responses": nps_n, "score": 100.0 * (promoters - detractors) / nps_n} if nps_n else None,
            "aspects": sorted(
                ({"aspect": name, "mentions": sum(p.values()), "polarity": p,
                  "negative_share": p.get("negative", 0) / sum(p.values())} for name, p in aspects.items()),
                key=lambda a: (-a["mentions"], a["aspect"])),
            "channels": [{"channel": c, "comments": int(n), "negative": int(neg or 0)}
                         for c, n, neg in sorted(channels, key=lambda r: (-r[1], str(r[0])))],
            "model_versions": [{"name": m, "version": v, "comments": int(n)} for m, v, n in versions],
            "series": [{"period": str(p), "comments": int(n), "negative": int(neg or 0)} for p, n, neg in series],
        }

    def _bucket(self, period: Period) -> ColumnElement[Any]:
        column = Feedback.created_at
        if self.engine.dialect.name == "postgresql":
            return func.to_char(func.date_trunc(period, column), "YYYY-MM-DD" if period != "month" else "YYYY-MM")
        if period == "week":  # the Monday of the week, as PostgreSQL's date_trunc('week') gives
            return func.date(column, "weekday 0", "-6 days")
        return func.strftime("%Y-%m-%d" if period == "day" else "%Y-%m", column)

    def records(self, filters: Filters, limit: int) -> tuple[list[FeedbackRecord], int]:
        """The newest `limit` comments matching `filters`, as records for the theme analysis, and how many matched."""
        where = filters.conditions()
        with Session(self.engine) as session:
            matched = int(session.scalar(select(func.count(Feedback.id)).where(*where)) or 0)
            rows = session.execute(
                select(Feedback.client_id, Feedback.text, Feedback.channel, Feedback.created_at, Feedback.rating,
                       Feedback.nps, Feedback.product, Feedback.segment, Feedback.human_sentiment)
                .where(*where).order_by(Feedback.created_at.desc(), Feedback.id.desc()).limit(limit)).all()
        records = [FeedbackRecord(text=r.text, id=r.client_id, channel=r.channel, created_at=r.created_at,
                                  rating=r.rating, nps=r.nps, product=r.product, segment=r.segment,
                                  human_sentiment=r.human_sentiment) for r in rows]
        return records[::-1], matched

    def shift_sample(self, filters: Filters, limit: int = 500) -> tuple[list[str], list[float]]:
        """The newest `limit` matching comments' texts and the model's confidence in each: what the summary's
        out-of-domain check reads (an analyst's label says nothing of the model's confidence, so it is not used).
        Few: the summary normalises them on every call, milliseconds each where the normaliser's memo has not met
        them."""
        with Session(self.engine) as session:
            rows = session.execute(select(Feedback.text, Feedback.sentiment_confidence).where(*filters.conditions())
                                   .order_by(Feedback.created_at.desc(), Feedback.id.desc()).limit(limit)).all()
        return [r.text for r in rows], [float(r.sentiment_confidence) for r in rows]

    # -- re-tagging --------------------------------------------------------------------------------------
    def retag(self, tag: Callable[[list[str]], list[Tag]], model_name: str, model_version: str,
              filters: Filters | None = None, batch_size: int = 256, everything: bool = False,
              progress: Callable[[int, int], None] | None = None) -> int:
        """Tag stored comments again with another model, `batch_size` at a time, each batch its own transaction,
        so an interrupted run resumes where it stopped. Comments tagged by this version already are skipped
        unless `everything`."""
        where: list[ColumnElement[bool]] = list((filters or Filters()).conditions())
        if not everything:
            where.append(~and_(Feedback.model_name == model_name, Feedback.model_version == model_version))
        with Session(self.engine) as session:
            total = int(session.scalar(select(func.count(Feedback.id)).where(*where)) or 0)
        done, last_id = 0, 0
        while True:
            with Session(self.engine) as session, session.begin():
                query: Select[Feedback] = (select(Feedback).where(*where, Feedback.id > last_id)
                                                  .order_by(Feedback.id).limit(batch_size))
                rows = session.scalars(query).all()
                if not rows:
                    break
                for row, tag_ in zip(rows, tag([r.text for r in rows]), strict=True):
                    _apply_tag(row, tag_, model_name, model_version)
                last_id = rows[-1].id
                done += len(rows)
            if progress is not None:
                progress(done, total)
        return done
