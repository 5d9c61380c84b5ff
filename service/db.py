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
    Boolean,
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
    text,
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
    # What the reports count, in an index: their scans read it, not the rows with the comments' text.
    __table_args__ = (Index("ix_feedback_reporting", "created_at", "sentiment", "channel", "product", "segment",
                            "model_version", "human_sentiment"),)

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
    # An analyst's label beside the model's (which `sentiment` keeps): the newest correction, its table the record.
    human_sentiment: Mapped[str | None] = mapped_column(String(32))
    corrected_by: Mapped[str | None] = mapped_column(String(100))
    corrected_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)

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
    # "model": found by the model (polarity is its reading); "human": added by an analyst the model missed.
    origin: Mapped[str] = mapped_column(String(8), default="model", server_default="model")
    human_polarity: Mapped[str | None] = mapped_column(String(32), doc="an analyst's polarity, or 'absent'")

    feedback: Mapped[Feedback] = relationship(back_populates="aspects")


class ApiKey(Base):
    """A caller's key. Only its SHA-256 is kept; the prefix finds the row without scanning."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_sha256: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(String(100), doc="comma-separated: tag, ingest, report, curate, admin")
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


class WorkspaceSession(Base):
    """A browser signed in to the workspace with an API key. Only the cookie's SHA-256 is kept; a revoked key ends
    every session it opened (the key is checked on each request)."""

    __tablename__ = "workspace_sessions"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    api_key_id: Mapped[int] = mapped_column(Id, ForeignKey("api_keys.id", ondelete="CASCADE"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ThemeRun(Base):
    """One background theme analysis over the store: its progress while it runs, its report when done."""

    __tablename__ = "theme_runs"
    # At most one run is "running", whichever process started it: a second insert fails on this index.
    __table_args__ = (Index("ux_theme_runs_running", "status", unique=True, sqlite_where=text("status = 'running'"),
                            postgresql_where=text("status = 'running'")),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    trigger: Mapped[str] = mapped_column(String(16), doc="schedule or demand")
    requested_by: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), doc="running, done or failed")
    phase: Mapped[str] = mapped_column(String(100))
    done: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    comments: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    model_name: Mapped[str | None] = mapped_column(String(100))
    model_version: Mapped[str | None] = mapped_column(String(100))
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON, doc="the theme report, with the codebook applied")


class CodebookTheme(Base):
    """A theme with an id that lasts across runs: a new run's theme takes the id of the earlier one it matches."""

    __tablename__ = "codebook_themes"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16), doc="aspect, emerging or split (made by an analyst)")
    aspect: Mapped[str | None] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(Text, doc="as the analysis named it; the codebook's renames come on top")
    label_en: Mapped[str | None] = mapped_column(Text)
    keyphrases: Mapped[list[str]] = mapped_column(JSON)
    signature: Mapped[dict[str, float]] = mapped_column(JSON, doc="the centroid of its statements' hashed words")
    first_run_id: Mapped[int | None] = mapped_column(Id)
    last_run_id: Mapped[int | None] = mapped_column(Id)
    new: Mapped[bool] = mapped_column(Boolean, doc="first found by the last run it was in, after an earlier run")
    direction: Mapped[str | None] = mapped_column(String(32), doc="the trend of its last run")
    q_value: Mapped[float | None] = mapped_column(Float)


class CodebookSubtheme(Base):
    __tablename__ = "codebook_subthemes"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    theme_id: Mapped[int] = mapped_column(Id, ForeignKey("codebook_themes.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(Text)
    keyphrases: Mapped[list[str]] = mapped_column(JSON)


class ThemeStatement(Base):
    """A complaint statement of a run in its theme: what the workspace's pages count and list. `found_*` is where the
    run put it (ids matched to earlier runs), `theme_id`/`subtheme_id` where it is after the codebook's edits."""

    __tablename__ = "theme_statements"
    # Paging a theme's statements by date; counting them by day (covering: the counts read the index alone).
    __table_args__ = (Index("ix_theme_statements_run_theme", "run_id", "theme_id", "created_at"),
                      Index("ix_theme_statements_counts", "run_id", "theme_id", "day", "lead", "sole"),
                      Index("ix_theme_statements_run_feedback", "run_id", "feedback_id"))

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(Id, ForeignKey("theme_runs.id", ondelete="CASCADE"))
    feedback_id: Mapped[int] = mapped_column(Id, ForeignKey("feedback.id", ondelete="CASCADE"))
    start: Mapped[int] = mapped_column(Integer)
    end: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text, doc="the statement, personal data masked")
    search_text: Mapped[str] = mapped_column(Text, doc="the same, normalised, for search")
    sentiment: Mapped[str] = mapped_column(String(32))
    complaints: Mapped[int] = mapped_column(Integer, doc="complaint statements of its comment, in themes or not")
    found_theme_id: Mapped[int] = mapped_column(Id)
    found_subtheme_id: Mapped[int | None] = mapped_column(Id)
    theme_id: Mapped[int] = mapped_column(Id)
    subtheme_id: Mapped[int | None] = mapped_column(Id)
    sole: Mapped[bool] = mapped_column(Boolean, doc="every complaint of its comment is in this theme")
    lead: Mapped[bool] = mapped_column(Boolean, doc="the first of its comment's statements in this theme: counting "
                                                     "these counts comments, with no join and no DISTINCT")
    # The comment's reporting columns, copied: the pages filter and count statements without reading the feedback.
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    day: Mapped[str] = mapped_column(String(10), doc="created_at's UTC day, ISO")
    channel: Mapped[str | None] = mapped_column(String(100))
    product: Mapped[str | None] = mapped_column(String(200))
    segment: Mapped[str | None] = mapped_column(String(100))
    model_version: Mapped[str] = mapped_column(String(100))


class CodebookEdit(Base):
    """An analyst's change to the themes: rename, rename_sub, merge, split, hide or move; undone, not deleted."""

    __tablename__ = "codebook_edits"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    action: Mapped[str] = mapped_column(String(16))
    theme_id: Mapped[int | None] = mapped_column(Id)
    target_id: Mapped[int | None] = mapped_column(Id, doc="merge and move: the theme that receives; split: the new one")
    subtheme_id: Mapped[int | None] = mapped_column(Id)
    comment_id: Mapped[str | None] = mapped_column(String(200), doc="move: the statement's comment (client id)")
    start: Mapped[int | None] = mapped_column(Integer, doc="move: the statement's start in its comment")
    label: Mapped[str | None] = mapped_column(Text)
    made_by: Mapped[str] = mapped_column(String(100))
    made_at: Mapped[datetime] = mapped_column(UtcDateTime)
    undone_by: Mapped[str | None] = mapped_column(String(100))
    undone_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Alert(Base):
    """A theme a run found rising, or new and large enough: listed in the workspace, sent to the webhooks."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(Id, ForeignKey("theme_runs.id", ondelete="CASCADE"), index=True)
    theme_id: Mapped[int] = mapped_column(Id)
    kind: Mapped[str] = mapped_column(String(16), doc="rising or new")
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    deliveries: Mapped[dict[str, str]] = mapped_column(JSON, doc="webhook name -> delivered, or the last error")


class Webhook(Base):
    """Where alerts are POSTed (Slack-compatible JSON). The URL is a secret: it is never shown back."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    url: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Correction(Base):
    """An analyst's correction of a stored comment, kept for good: who and when, what the model had said. The newest
    of each (comment, field, aspect) is in force and is copied beside the model's tags for the reports."""

    __tablename__ = "corrections"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    feedback_id: Mapped[int] = mapped_column(Id, ForeignKey("feedback.id", ondelete="CASCADE"), index=True)
    field: Mapped[str] = mapped_column(String(16), doc="sentiment, aspect or theme")
    aspect: Mapped[str | None] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(String(64), doc="a label; an aspect's polarity or 'absent'; a theme id")
    model_value: Mapped[str | None] = mapped_column(String(64), doc="what the model had said")
    start: Mapped[int | None] = mapped_column(Integer, doc="theme: the statement's start in the comment")
    made_by: Mapped[str] = mapped_column(String(100))
    made_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class RetrainJob(Base):
    """A retraining on the corrections started from the workspace or the API, and the gate's verdict on it."""

    __tablename__ = "retrain_jobs"
    __table_args__ = (Index("ux_retrain_jobs_running", "status", unique=True, sqlite_where=text("status = 'running'"),
                            postgresql_where=text("status = 'running'")),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    requested_by: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), doc="running, done or failed")
    phase: Mapped[str] = mapped_column(Text)
    done: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    pid: Mapped[int | None] = mapped_column(Integer)
    model_name: Mapped[str] = mapped_column(String(100))
    champion: Mapped[str | None] = mapped_column(String(100), doc="the version active when it started")
    challenger: Mapped[str | None] = mapped_column(String(100), doc="the version it trained")
    decision: Mapped[str | None] = mapped_column(String(16), doc="activated or refused")
    figures: Mapped[dict[str, Any] | None] = mapped_column(JSON, doc="both models' scores, the corrections used")
    error: Mapped[str | None] = mapped_column(Text)


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


class DomainCodebook(Base):
    """The causes an analyst accepted for this store's theme reports (a discovery run's draft codebook, edited): the
    newest row is in force; one whose taxonomy is null puts the reports back on choosing a taxonomy themselves."""

    __tablename__ = "domain_codebooks"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    taxonomy: Mapped[dict[str, Any] | None] = mapped_column(JSON, doc="the taxonomy file's table; null: back to auto")
    run_id: Mapped[int | None] = mapped_column(Integer, doc="the theme run whose draft it was edited from")
    accepted_by: Mapped[str] = mapped_column(String(100))
    accepted_at: Mapped[datetime] = mapped_column(UtcDateTime)
