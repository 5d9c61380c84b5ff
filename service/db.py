"""The feedback store's tables (SQLAlchemy 2), engines for SQLite and PostgreSQL, and Alembic migrations.

The schema is owned by the migrations in `service/migrations/versions/`; `tests/service/test_db.py` checks that
these classes and the migrations describe the same tables, so neither can drift.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    create_engine,
    event,
)
from sqlalchemy.engine import Dialect, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from bazkhord.data.errors import ConfigError

MIGRATIONS = Path(__file__).with_name("migrations")
# BIGINT on PostgreSQL, INTEGER (the rowid alias, so it autoincrements) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (SQLite has no time zones), handed back as aware UTC; naive input is taken as UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """Aware UTC; a time without a zone is taken as UTC."""
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class Feedback(Base):
    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(String(200), unique=True)
    text: Mapped[str] = mapped_column(Text)
    text_sha256: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(100))
    product: Mapped[str | None] = mapped_column(String(200))
    segment: Mapped[str | None] = mapped_column(String(100))
    rating: Mapped[float | None] = mapped_column(Float)
    nps: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sentiment: Mapped[str] = mapped_column(String(32))
    sentiment_confidence: Mapped[float] = mapped_column(Float)
    probabilities: Mapped[dict[str, float]] = mapped_column(JSON)
    model_name: Mapped[str] = mapped_column(String(100))
    model_version: Mapped[str] = mapped_column(String(100), index=True)
    tagged_at: Mapped[datetime] = mapped_column(UtcDateTime)
    api_key_id: Mapped[int | None] = mapped_column(Id, ForeignKey("api_keys.id", ondelete="SET NULL"))

    aspects: Mapped[list[FeedbackAspect]] = relationship(
        back_populates="feedback", cascade="all, delete-orphan", order_by="FeedbackAspect.id", lazy="selectin")


class FeedbackAspect(Base):
    """One aspect found in one comment: its own row, so reports group by aspect in SQL."""

    __tablename__ = "feedback_aspects"
    __table_args__ = (Index("ix_feedback_aspects_aspect_polarity", "aspect", "polarity"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    feedback_id: Mapped[int] = mapped_column(Id, ForeignKey("feedback.id", ondelete="CASCADE"), index=True)
    aspect: Mapped[str] = mapped_column(String(64))
    polarity: Mapped[str] = mapped_column(String(32))
    confidence: Mapped[float] = mapped_column(Float)
    polarity_confidence: Mapped[float] = mapped_column(Float)
    evidence: Mapped[list[dict[str, Any]]] = mapped_column(JSON)

    feedback: Mapped[Feedback] = relationship(back_populates="aspects")


class ApiKey(Base):
    """A caller's key. Only its SHA-256 is kept; the prefix finds the row without scanning."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_sha256: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(String(100), doc="comma-separated: tag, ingest, report, admin")
    rate_per_minute: Mapped[int | None] = mapped_column(Integer, doc="overrides the service default when set")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ModelActivation(Base):
    """The registry's history: which version of a model was made active, when, and by whom."""

    __tablename__ = "model_activations"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(100), index=True)
    model_version: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(16), doc="activate or rollback")
    activated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    activated_by: Mapped[str | None] = mapped_column(String(100))


def make_engine(url: str) -> Engine:
    """An engine for a SQLite file (its folder is created) or a PostgreSQL URL (postgresql+psycopg://...)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"database URL {url!r} is not valid: use sqlite:///path/to/file.db or "
                          "postgresql+psycopg://user@host:5432/dbname") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def sqlite_pragmas(connection: Any, _: Any) -> None:
            # pysqlite opens and commits transactions on its own, which breaks SAVEPOINT (a released savepoint
            # would commit); SQLAlchemy's recipe: let the driver do nothing and emit BEGIN ourselves.
            connection.isolation_level = None
            cursor = connection.cursor()
            # WAL lets reports read while ingestion writes; FULL makes a commit survive a crash of the machine,
            # not only of the process: an acknowledged comment is on disk.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def sqlite_begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN")

        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True, pool_size=8, max_overflow=8)
    raise ConfigError(f"database URL {url!r}: only sqlite and postgresql are supported")


def alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to the newest schema; safe to run on every start."""
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
