"""What the routes share (FastAPI's `deps` module): the services made once per app, the callers' scopes, the
documented error answers, and the report filters of the query string."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine

from bazkhord.data.errors import BazkhordError, DataError, ModelFolderError
from bazkhord.data.record import FeedbackRecord
from bazkhord.data.taxonomy import Taxonomy, taxonomy_names
from bazkhord.model.base import Tag
from bazkhord.model.folder import LoadedModel
from bazkhord.model.themes.analysis import ThemeAnalyzer, ThemeSettings
from bazkhord.model.themes.codebook import Curator
from bazkhord.model.themes.report import ThemeReport
from bazkhord.service.alerts import AlertSender
from bazkhord.service.auth import Caller, KeyStore, RateLimiter
from bazkhord.service.batcher import MicroBatcher, NoModel, QueueFull
from bazkhord.service.checks import check_no_nul, utc_time
from bazkhord.service.corrections import CorrectionStore, LabelSet
from bazkhord.service.errors import ApiError
from bazkhord.service.jobs import ThemeJobs
from bazkhord.service.memory import release_memory
from bazkhord.service.observability import Metrics
from bazkhord.service.registry import ModelRegistry
from bazkhord.service.retraining import RetrainJobs
from bazkhord.service.review import ReviewQueues
from bazkhord.service.schemas import ErrorDetail, ErrorResponse
from bazkhord.service.sessions import SessionStore
from bazkhord.service.settings import Settings
from bazkhord.service.shared import KeyRevocations, RedisRateLimiter, connect
from bazkhord.service.store import FeedbackStore, Filters
from bazkhord.service.themestore import ThemeStore, settle
from bazkhord.service.workspace import WorkspaceQueries

log = logging.getLogger("bazkhord.service")


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    described = {
        401: "no API key, or an unknown or revoked one",
        403: "the key lacks the scope this route needs",
        404: "not found",
        409: "conflicts with what is stored",
        413: "too many texts, a text too long, or a body too large",
        422: "the request is not valid: see error.details",
        429: "this key's rate limit is reached: wait Retry-After seconds",
        503: "overloaded (queue full or tagging timed out: retry after Retry-After seconds) or no model loaded",
    }
    return {s: {"model": ErrorResponse, "description": described[s]} for s in statuses}


TAG_ERRORS = responses(401, 403, 413, 422, 429, 503)


# Documented in OpenAPI (the "Authorize" button of /docs); checked by `require` below.
bearer_scheme = HTTPBearer(auto_error=False, description="Authorization: Bearer bzk_...")
header_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="or X-API-Key: bzk_...")


class Services:
    """What the routes need, made once per app."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.metrics = Metrics()
        self.keys = KeyStore(engine, settings.auth_cache_seconds)
        self.limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
        # Requests without a valid key, counted per client address.
        self.guard = RateLimiter(settings.unauthenticated_per_minute, settings.unauthenticated_burst)
        self.revocations: KeyRevocations | None = None
        if settings.redis_url:  # several processes: one bucket per key, revocations seen by all
            client = connect(settings.redis_url)
            prefix = settings.redis_prefix
            self.limiter = RedisRateLimiter(client, "key", settings.rate_limit_per_minute, settings.rate_limit_burst,
                                            prefix)
            self.guard = RedisRateLimiter(client, "address", settings.unauthenticated_per_minute,
                                          settings.unauthenticated_burst, prefix)
            self.revocations = KeyRevocations(client, prefix)
            self.revocations.changed()
        self.store = FeedbackStore(engine)
        self.sessions = SessionStore(engine, self.keys, settings.session_minutes)
        self.theme_store = ThemeStore(engine)
        self.workspace = WorkspaceQueries(engine, self.theme_store)
        self.corrections = CorrectionStore(engine, self.theme_store)
        self.review = ReviewQueues(engine, self.theme_store, settings)
        self.retraining = RetrainJobs(engine, settings.database_url, settings.models_dir, settings.retrain_test_file,
                                      settings.retrain_holdout, settings.retrain_min_corrections)
        self.alerts = AlertSender(engine, settings.webhook_attempts, settings.webhook_backoff_s, settings.webhook_timeout_s)
        self.jobs = ThemeJobs(settings, self.store, self.theme_store, lambda: self.registry.active, self.alerts)
        self.registry = ModelRegistry(settings.model, settings.models_dir, engine)
        self.batcher = MicroBatcher(lambda: self.registry.active, settings.max_batch_texts,
                                    settings.max_batch_wait_ms / 1000, settings.max_queue_texts,
                                    on_batch=self.metrics.batch_size.observe, worker_process=settings.model_process,
                                    max_queue_chars=settings.max_queue_chars,
                                    max_owner_share=settings.max_key_queue_share,
                                    max_batch_chars=settings.max_batch_chars,
                                    small_chars=settings.small_request_chars)
        self.registry.prepare = self.batcher.prepare
        self.metrics.queue_depth.set_function(lambda: self.batcher.queued)
        self.load_error: str | None = None
        self.themes_busy = asyncio.Semaphore(1)  # theme analysis is heavy: one at a time, others get 503
        # Each process's metrics carry its name, so series scraped through a balancer from several processes stay
        # apart.
        self.process = settings.process_name or f"{socket.gethostname()}:{os.getpid()}"

    async def tag(self, texts: list[str], caller: Caller) -> tuple[LoadedModel, list[Tag]]:
        """Tags through the micro-batcher (which takes turns between callers), with the limits turned into answers."""
        try:
            return await asyncio.wait_for(self.batcher.tag(texts, caller.id), self.settings.request_timeout_s)
        except QueueFull as error:
            self.metrics.rejected.labels("queue_full").inc()
            raise ApiError(503, "overloaded", f"the service is saturated: {error}", headers={"Retry-After": "1"}
                           ) from None
        except TimeoutError:
            self.metrics.rejected.labels("timeout").inc()
            raise ApiError(503, "timeout", f"tagging did not finish within {self.settings.request_timeout_s} s",
                           headers={"Retry-After": "2"}) from None
        except NoModel as error:  # no model loaded, or the worker died and is being restarted
            raise ApiError(503, "model_unavailable", f"{error}: {self.load_error or ''}".rstrip(": "),
                           headers={"Retry-After": "2"}) from None
        except BazkhordError as error:  # the worker process could not load the model folder (moved, damaged)
            raise ApiError(503, "model_unavailable", str(error), headers={"Retry-After": "30"}) from None

    def sync(self) -> LoadedModel | None:
        """What other processes changed (blocking; from a thread): a revoked key, another active model version."""
        if self.revocations is not None:
            try:
                if self.revocations.changed():
                    self.keys.clear_cache()
            except Exception as error:  # Redis away: the key cache still expires after auth_cache_seconds
                log.warning("cannot read key revocations from Redis: %s", error)
        try:
            return self.registry.follow()
        except ModelFolderError as error:
            log.error("another process activated a version this one cannot load: %s", error)
            return None

    async def themes(self, records: list[FeedbackRecord], theme_settings: ThemeSettings,
                     curator: Curator | None = None) -> ThemeReport:
        """A theme report, one at a time (a second is answered 503 at once rather than queued); with the store's
        codebook (`curator`), its themes carry their lasting ids and the analysts' edits."""
        if self.themes_busy.locked():
            self.metrics.rejected.labels("themes_busy").inc()
            raise ApiError(503, "overloaded", "another theme report is being computed; retry shortly",
                           headers={"Retry-After": "5"})
        loaded = self.active()
        async with self.themes_busy:
            analyzer = ThemeAnalyzer(loaded.tagger, theme_settings, encoder=self.settings.theme_encoder, curator=curator)
            try:
                return settle(await run_in_threadpool(analyzer.analyse, records), {}, {})
            finally:
                del analyzer
                await run_in_threadpool(release_memory)  # a report's arrays are gone: give their pages back

    def normaliser(self) -> Callable[[list[str]], list[str]] | None:
        """The active model's own normaliser (the service never builds one), for the empty-text check."""
        loaded = self.registry.active
        return loaded.tagger.normalise if loaded is not None else None

    def labels(self) -> LabelSet:
        """What a correction may say: the active model's sentiment labels, aspects and polarities."""
        tagger = self.active().tagger
        return LabelSet(tuple(tagger.labels), tuple(tagger.aspect_names), tuple(tagger.polarity_names))

    def taxonomy(self) -> Taxonomy | None:
        loaded = self.registry.active
        return loaded.tagger.taxonomy if loaded is not None else None

    def active(self) -> LoadedModel:
        loaded = self.registry.active
        if loaded is None:
            raise ApiError(503, "model_unavailable", f"no model is loaded: {self.load_error}", headers={"Retry-After": "30"})
        return loaded


async def get_services(request: Request) -> Services:  # async: no thread hop per request
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(get_services)]


def require(scope: str) -> Any:
    """A dependency that lets through only a caller whose key has `scope` (or admin). The key itself was verified,
    and its rate limit applied, by `AuthGate` before the body was read; the security schemes are declared here so
    the OpenAPI page documents them."""

    async def check(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
        header: Annotated[str | None, Depends(header_scheme)],
    ) -> Caller:
        caller = getattr(request.state, "caller", None)
        if not isinstance(caller, Caller):  # only a route outside /v1/ could get here: AuthGate guards /v1/
            raise ApiError(401, "unauthenticated", "this route needs an API key", headers={"WWW-Authenticate": "Bearer"})
        if not caller.allows(scope):
            raise ApiError(403, "missing_scope", f"key {caller.name!r} has scopes {sorted(caller.scopes)}; "
                           f"this route needs {scope!r}")
        return caller

    return check


TagCaller = Annotated[Caller, Depends(require("tag"))]
IngestCaller = Annotated[Caller, Depends(require("ingest"))]
ReportCaller = Annotated[Caller, Depends(require("report"))]
CurateCaller = Annotated[Caller, Depends(require("curate"))]
AdminCaller = Annotated[Caller, Depends(require("admin"))]


def check_codebook(values: dict[str, Any] | None, where: str) -> Taxonomy | None:
    """A taxonomy sent as a table (an edited draft codebook), or 422 naming what is wrong in it."""
    if values is None:
        return None
    try:
        return Taxonomy.from_dict(values, f"{where}.codebook")
    except (DataError, TypeError, ValueError) as error:
        raise ApiError(422, "invalid_codebook", str(error),
                       [ErrorDetail(location=[where, "codebook"], message=str(error))]) from None


def check_taxonomy(name: str, where: str) -> str:
    """Over HTTP a report names a shipped taxonomy (never a file path)."""
    allowed = ["auto", "discover", "model", *taxonomy_names()]
    if name not in allowed:
        raise ApiError(422, "unknown_taxonomy", f"taxonomy {name!r} is not one of {', '.join(allowed)}",
                       [ErrorDetail(location=[where, "taxonomy"], message=f"choose one of {', '.join(allowed)}")])
    return name


async def report_filters(
    start: Annotated[datetime | None, Query(description="from this time (inclusive), on created_at")] = None,
    end: Annotated[datetime | None, Query(description="until this time (exclusive)")] = None,
    channel: Annotated[str | None, Query(max_length=100)] = None,
    product: Annotated[str | None, Query(max_length=200)] = None,
    segment: Annotated[str | None, Query(max_length=100)] = None,
    model_version: Annotated[str | None, Query(max_length=100)] = None,
) -> Filters:
    # Both in aware UTC: a time with a zone and one without (taken as UTC) compare, and the store holds UTC.
    start = utc_time(start, ["query", "start"]) if start is not None else None
    end = utc_time(end, ["query", "end"]) if end is not None else None
    if start is not None and end is not None and end <= start:
        raise ApiError(422, "empty_range", f"end ({end.isoformat()}) must come after start ({start.isoformat()})",
                       [ErrorDetail(location=["query", "end"], message="must be later than start")])
    check_no_nul([(["query", name], value) for name, value in (("channel", channel), ("product", product),
                                                                ("segment", segment), ("model_version", model_version))])
    return Filters(start=start, end=end, channel=channel, product=product, segment=segment, model_version=model_version)


def describe(filters: Filters) -> dict[str, str | None]:
    return {"start": filters.start.isoformat() if filters.start else None,
            "end": filters.end.isoformat() if filters.end else None,
            "channel": filters.channel, "product": filters.product, "segment": filters.segment,
            "model_version": filters.model_version}


