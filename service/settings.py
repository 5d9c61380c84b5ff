"""Service settings, from the environment (prefix BAZKHORD_) or a .env file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BAZKHORD_", env_file=".env", extra="ignore")

    model: str | None = Field(None, description="model name (the version recorded active, else LATEST), "
                                                 "name@version, or a folder path; default: the model trained last "
                                                 "under models_dir")
    models_dir: Path = Path("artifacts/models")
    database_url: str = Field("sqlite:///artifacts/bazkhord.db",
                              description="sqlite:///file.db or postgresql+psycopg://user@host:5432/db")
    migrate_on_start: bool = Field(True, description="run the Alembic migrations when the service starts")
    redis_url: str | None = Field(None, description="redis://host:6379/0: rate limits and key revocations shared by "
                                                    "every service process using it (else each process keeps its own)")
    redis_prefix: str = Field("bazkhord", description="the prefix of this deployment's keys in Redis")
    process_name: str | None = Field(None, description="this process's `process` label in /metrics (default "
                                                       "host:pid)")
    sync_seconds: float = Field(2.0, ge=0, description="how often a process checks the store for another process's "
                                                      "model activation (and Redis for key revocations); 0: never")
    store_raw_text: bool = Field(False, description="keep comments in the store as sent, personal data included; by "
                                                    "default they are stored with it masked ([PHONE], [CARD], ...)")

    # request size
    max_texts_per_request: int = Field(64, ge=1, le=10_000)
    max_chars_per_text: int = Field(5_000, ge=1, le=100_000)
    max_body_bytes: int = Field(2_000_000, ge=1_000)
    max_theme_items: int = Field(2_000, ge=1, le=100_000, description="comments per theme report")
    # The analysts' workspace (/app/): sessions, the background theme run and its alerts.
    session_minutes: int = Field(480, ge=1, le=60 * 24 * 30, description="a workspace sign-in lasts this long")
    theme_run_minutes: int = Field(24 * 60, ge=0, description="minutes between scheduled theme runs; 0: on demand only")
    theme_run_items: int = Field(100_000, ge=100, le=2_000_000, description="the newest comments a theme run analyses")
    theme_run_period: str = Field("week", pattern="^(day|week|month)$", description="the trend period of theme runs")
    alert_min_comments: int = Field(20, ge=1, description="a new theme is alerted on from this many comments")
    webhook_attempts: int = Field(4, ge=1, le=10, description="tries per alert and webhook")
    webhook_backoff_s: float = Field(2.0, ge=0.0, description="first wait between tries; doubled each time")
    webhook_timeout_s: float = Field(5.0, gt=0.0)
    theme_encoder: str = Field("none", description="encoder folder whose vectors cluster theme reports' statements; "
                                                   "'none' (the default here): TF-IDF, seconds rather than a minute "
                                                   "on a CPU")
    # Corrections: the review queue and the retraining on them (champion / challenger).
    review_pool: int = Field(5_000, ge=50, le=200_000, description="the newest uncorrected comments the review "
                                                                  "queue chooses from")
    review_size: int = Field(200, ge=1, le=5_000, description="comments in a review queue")
    review_queue_minutes: float = Field(30.0, ge=0, description="a queue is rebuilt after this long, or sooner once "
                                                                "it is all answered")
    retrain_test_file: str = Field("", description="labelled file (training data format) the retraining gate scores "
                                                   "both models on, beside the held-out corrections; '': those only")
    retrain_holdout: float = Field(0.2, ge=0.05, lt=1, description="share of corrected comments kept out of the "
                                                                   "retraining for the gate (by hash of the text)")
    retrain_min_corrections: int = Field(20, ge=1, description="a retraining needs at least this many corrections")

    # accepted comment times (created_at on /v1/feedback and /v1/themes)
    min_created_at: datetime = Field(datetime(1990, 1, 1, tzinfo=UTC), description="the earliest accepted created_at")
    max_future_hours: float = Field(24.0, ge=0, description="how far past now a created_at may lie (clock skew, zones)")

    # auth and rate limits
    auth_cache_seconds: float = Field(5.0, ge=0, description="how long a verified key is trusted before re-reading it")
    rate_limit_per_minute: int = Field(1_200, ge=1, description="requests a minute per key, unless the key says")
    rate_limit_burst: int = Field(120, ge=1, description="requests a key may send at once before the rate applies")
    unauthenticated_per_minute: int = Field(60, ge=1, description="requests a minute without a valid key, per client "
                                                                  "address, answered 401; past it, 429")
    unauthenticated_burst: int = Field(30, ge=1, description="such requests an address may send at once")

    # batching and backpressure
    max_batch_texts: int = Field(64, ge=1, le=4_096, description="texts per model call")
    max_batch_wait_ms: float = Field(
        0.0, ge=0, le=1_000, description="how long a batch waits for more requests once the model is free; at 0, a "
                                         "batch is what queued while the model was busy (measured best here)")
    max_queue_texts: int = Field(1_024, ge=1, description="texts waiting to be tagged before 503")
    max_queue_chars: int = Field(400_000, ge=1_000, description="characters waiting to be tagged before 503: the queue "
                                                                "bounds work, not only requests")
    max_key_queue_share: float = Field(0.5, gt=0, le=1, description="share of max_queue_chars one key may hold waiting; "
                                                                    "past it that key gets 503, others still get in")
    # Small enough that a single comment waits for at most one short model call behind a key sending 64 x 5,000
    # characters (the soak benchmark), large enough for full batches of ordinary comments.
    max_batch_chars: int = Field(8_000, ge=1_000, description="characters per model call (a larger text goes alone)")
    small_request_chars: int = Field(2_000, ge=0, description="a request this short may be tagged in a batch of short "
                                                              "requests before the next mixed one (0: never)")
    model_process: bool = Field(True, description="tag in a worker process of its own (the event loop keeps a core); "
                                                   "false: in a thread of the server process")
    request_timeout_s: float = Field(10.0, gt=0, description="longest wait for tagging before 503")
    header_timeout_s: float = Field(10.0, gt=0, description="a request line and headers must arrive within this; "
                                                            "slower connections are closed (slowloris)")
    trusted_proxies: str = Field("", description="comma-separated addresses (or *) of the proxies whose "
                                                 "X-Forwarded-For and X-Forwarded-Proto are believed; none by default, "
                                                 "so a client cannot choose the address its key-less requests are "
                                                 "counted under")
    max_header_bytes: int = Field(32_768, ge=1_024, le=1_048_576, description="the request line and headers at most; "
                                                                           "past it 431 headers_too_large")
    max_headers: int = Field(100, ge=10, le=1_000, description="header fields at most; past it 431")
    body_timeout_s: float = Field(30.0, gt=0, description="a request body must arrive within this, else 408")
    shutdown_grace_s: int = Field(5, ge=0, description="on SIGINT/SIGTERM, requests still running get this many "
                                                        "seconds to finish (then 503 shutting_down) before the server exits")

    switch_interval_ms: float = Field(1.0, gt=0, le=100, description="Python's GIL switch interval in the server")
    log_level: str = "INFO"
    json_logs: bool = True
