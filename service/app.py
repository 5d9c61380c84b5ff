"""The HTTP edge: auth, limits, batching and the store wired around the model; errors mapped to 4xx/503.

No text processing happens here: the tagger normalises with the config saved in its model folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.engine import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from data.errors import BazkhordError, ModelFolderError
from data.normalise import mask_pii
from data.record import FeedbackRecord
from data.taxonomy import Taxonomy
from model.base import AspectTag, Evidence, Tag, mask_evidence
from model.folder import LoadedModel
from model.themes.analysis import ThemeAnalyzer, ThemeSettings
from model.themes.report import ThemeReport
from service.auth import Caller, KeyStore, RateLimiter
from service.batcher import MicroBatcher, NoModel, QueueFull
from service.checks import check_created_at, check_limits, check_no_nul, utc_time
from service.db import make_engine, upgrade
from service.docs import add_docs_routes
from service.errors import ApiError, error_response
from service.gate import AuthGate
from service.memory import release_memory
from service.observability import BodyTooLarge, BodyTooSlow, EdgeMiddleware, Metrics
from service.registry import ModelRegistry
from service.schemas import (
    ActivateRequest,
    AspectOut,
    ErrorBody,
    ErrorDetail,
    ErrorResponse,
    EvidenceOut,
    FeedbackRequest,
    FeedbackResponse,
    Health,
    ModelInfo,
    ModelRef,
    ModelsResponse,
    ModelVersion,
    Ready,
    StoredFeedback,
    SummaryResponse,
    TagRequest,
    TagResponse,
    TagResult,
    ThemeRequest,
)
from service.settings import Settings
from service.shared import KeyRevocations, RedisRateLimiter, connect
from service.store import ConflictError, FeedbackStore, Filters, NewFeedback, Stored, sha256_text

log = logging.getLogger("bazkhord.service")


def _responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
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


TAG_ERRORS = _responses(401, 403, 413, 422, 429, 503)


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
        self.registry = ModelRegistry(settings.model, settings.models_dir, engine)
        self.batcher = MicroBatcher(lambda: self.registry.active, settings.max_batch_texts,
                                    settings.max_batch_wait_ms / 1000, settings.max_queue_texts,
                                    on_batch=self.metrics.batch_size.observe, worker_process=settings.model_process,
                                    max_queue_chars=settings.max_queue_chars,
                                    max_owner_share=settings.max_key_queue_share,
                                    max_batch_chars=settings.max_batch_chars)
        self.registry.prepare = self.batcher.prepare
        self.metrics.queue_depth.set_function(lambda: self.batcher.queued)
        self.load_error: str | None = None
        self.themes_busy = asyncio.Semaphore(1)  # theme analysis is heavy: one at a time, others get 503

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

    def normaliser(self) -> Callable[[list[str]], list[str]] | None:
        """The active model's own normaliser (the service never builds one), for the empty-text check."""
        loaded = self.registry.active
        return loaded.tagger.normalise if loaded is not None else None

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
AdminCaller = Annotated[Caller, Depends(require("admin"))]


def create_app(settings: Settings | None = None, model: LoadedModel | None = None, engine: Engine | None = None
               ) -> FastAPI:
    """Build the app. `model` lets tests and the CLI hand over a model already loaded; `engine` a database."""
    settings = settings or Settings()
    services = Services(settings, engine or make_engine(settings.database_url))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.migrate_on_start:
            await run_in_threadpool(upgrade, services.engine)
        try:
            loaded = await run_in_threadpool(services.registry.start, model)
            services.registry.record_startup()
            services.metrics.set_model(loaded.name, loaded.version, str(loaded.manifest["kind"]))
            log.info("serving model %s %s", loaded.name, loaded.version)
        except BazkhordError as error:
            # Stay up and say why on /readyz, rather than crash-looping with a stack trace.
            services.load_error = str(error)
            log.error("no model loaded: %s", error)
        await services.batcher.start()
        syncing = asyncio.create_task(keep_in_sync(services), name="bazkhord-sync") if settings.sync_seconds else None
        yield
        if syncing is not None:
            syncing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await syncing
        await services.batcher.stop()

    app = FastAPI(
        title="bazkhord",
        summary="Persian customer-feedback tagging: sentiment, aspects with polarity, evidence spans; a feedback "
                "store with summary and theme reports.",
        version="1",
        lifespan=lifespan,
        # The docs pages and the schema are routes of service/docs.py: offline assets, labelled in the metrics.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    add_docs_routes(app)
    app.state.settings = settings
    app.state.services = services
    # Each process's metrics carry its name, so series scraped through a balancer from several processes stay apart.
    process = settings.process_name or f"{socket.gethostname()}:{os.getpid()}"
    # The last added runs first: the edge (request id, metrics, body limit), then the key check, then the routes.
    app.add_middleware(AuthGate, services=services)
    app.add_middleware(EdgeMiddleware, metrics=services.metrics, max_body_bytes=settings.max_body_bytes,
                       body_timeout=settings.body_timeout_s)

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.body, error.headers)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = error.errors()
        details = [ErrorDetail(location=[p for p in e.get("loc", ()) if p != "body"], message=str(e.get("msg", "")))
                   for e in errors]
        if errors and all(e.get("type") in ("string_too_long", "too_long") for e in errors):
            return error_response(413, ErrorBody(code="too_large", message="a text or a list is over its limit",
                                                 details=details))
        return error_response(422, ErrorBody(code="invalid_request", message="the request is not valid", details=details))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if isinstance(error.__cause__, UnicodeDecodeError):  # FastAPI's 400 for a body that is not UTF-8
            return error_response(422, ErrorBody(code="invalid_encoding", message="the body is not UTF-8 encoded JSON: "
                                                 f"{error.__cause__.reason} at byte {error.__cause__.start}"))
        if error.status_code == 400 and isinstance(error.__cause__, RecursionError | ValueError):
            # Valid JSON syntax that Python will not build: nesting past the recursion limit, an integer of
            # thousands of digits. The body is at fault, as with any other JSON the API cannot take.
            reason = ("it nests too deeply" if isinstance(error.__cause__, RecursionError)
                      else f"a value cannot be read ({str(error.__cause__).split(';')[0]})")
            return error_response(422, ErrorBody(code="invalid_json", message=f"the body is not usable JSON: {reason}"))
        code = ("body_too_large" if isinstance(error, BodyTooLarge) else "body_too_slow" if isinstance(error, BodyTooSlow)
                else f"http_{error.status_code}")
        headers = dict(error.headers or {})
        if isinstance(error, BodyTooLarge | BodyTooSlow):
            headers["Connection"] = "close"  # the rest of the body must not be read as the next request
        return error_response(error.status_code, ErrorBody(code=code, message=str(error.detail)), headers)

    # An unexpected error is answered 500 by EdgeMiddleware, with the request id in the answer and in the log.

    # -- open: health, readiness, metrics ------------------------------------------------------------------
    @app.get("/healthz", response_model=Health, tags=["ops"])
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get("/readyz", response_model=Ready, tags=["ops"], responses={503: {"model": Ready}})
    async def readyz() -> Any:
        loaded = services.registry.active
        if loaded is None:
            return JSONResponse(status_code=503, content=Ready(status="not ready", reason=services.load_error)
                                .model_dump())
        return Ready(status="ready", model=model_info(loaded))

    @app.get("/metrics", tags=["ops"], response_class=Response,
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
    def metrics() -> Response:
        return Response(with_label(generate_latest(services.metrics.registry), "process", process),
                        media_type=CONTENT_TYPE_LATEST)

    # -- tagging -------------------------------------------------------------------------------------------
    @app.post("/v1/tag", response_model=TagResponse, tags=["tagging"], responses=TAG_ERRORS)
    async def tag(body: TagRequest, caller: TagCaller, services: ServicesDep) -> Response:
        items = body.as_items()
        check_limits([item.text for item in items], body.items is not None, settings, normalise=services.normaliser())
        loaded, tags = await services.tag([item.text for item in items], caller)
        answer = TagResponse(
            model=model_info(loaded),
            results=[to_result(item.id, mask_evidence(t, item.text), loaded) for item, t in zip(items, tags, strict=True)],
        )
        # Already a validated TagResponse: serialise it once, rather than have FastAPI validate it again.
        return Response(answer.model_dump_json(), media_type="application/json")

    @app.post("/v1/themes", response_model=ThemeReport, tags=["themes"], responses=TAG_ERRORS)
    async def themes(body: ThemeRequest, caller: ReportCaller, services: ServicesDep) -> ThemeReport:
        """Root-cause themes of a batch of comments: the same report as `bazkhord report`'s report.json."""
        check_limits([item.text for item in body.items], True, settings, max_texts=settings.max_theme_items,
                     normalise=services.normaliser())
        times = [check_created_at(i.created_at, ["items", n, "created_at"], settings) for n, i in enumerate(body.items)]
        records = [FeedbackRecord(text=i.text, id=i.id, channel=i.channel, created_at=t, rating=i.rating, nps=i.nps,
                                  product=i.product, segment=i.segment, fields=i.field_values())
                   for i, t in zip(body.items, times, strict=True)]
        return await services_themes(services, records, ThemeSettings(period=body.period, seed=body.seed,
                                                                      min_theme_size=body.min_theme_size,
                                                                      taxonomy=check_taxonomy(body.taxonomy, "body")))

    # -- the feedback store --------------------------------------------------------------------------------
    @app.post("/v1/feedback", response_model=FeedbackResponse, tags=["feedback"],
              responses=_responses(401, 403, 409, 413, 422, 429, 503))
    async def ingest(body: FeedbackRequest, caller: IngestCaller, services: ServicesDep) -> FeedbackResponse:
        """Store comments with their tags. Idempotent on `client_id`: sending a comment again (a retry) stores
        nothing new and answers `duplicate` with what was stored; the same `client_id` with another text is 409."""
        check_limits([item.text for item in body.items], True, settings, normalise=services.normaliser())
        times = [check_created_at(i.created_at, ["items", n, "created_at"], settings) for n, i in enumerate(body.items)]
        seen: dict[str, int] = {}
        for index, item in enumerate(body.items):
            if item.client_id in seen:
                raise ApiError(422, "repeated_client_id", f"client_id {item.client_id!r} occurs twice in one request",
                               [ErrorDetail(location=["items", index, "client_id"],
                                            message=f"already used by items[{seen[item.client_id]}]")])
            seen[item.client_id] = index
        # Personal data is masked before the comment is tagged and stored (unless the deployment keeps raw text), so
        # the stored text, its evidence offsets and every report built from the store hold placeholders only.
        keep = (lambda text: text) if settings.store_raw_text else mask_pii
        new = [NewFeedback(client_id=i.client_id, text=keep(i.text), channel=i.channel, product=i.product,
                           segment=i.segment, rating=i.rating, nps=i.nps, created_at=t)
               for i, t in zip(body.items, times, strict=True)]
        stored = await run_in_threadpool(services.store.find, [n.client_id for n in new])
        # A retry matches what was stored, masked or (stored before masking, or by a raw-text deployment) as sent.
        conflicts = [i for i, (n, item) in enumerate(zip(new, body.items, strict=True)) if n.client_id in stored
                     and stored[n.client_id].text_sha256 not in (n.text_sha256, sha256_text(item.text))]
        if conflicts:
            raise ApiError(409, "client_id_conflict", "client ids already stored with a different text; nothing was "
                           "stored", [ErrorDetail(location=["items", i, "client_id"], message="stored with another text")
                                      for i in conflicts])
        todo = [n for n in new if n.client_id not in stored]
        created: dict[str, Stored] = {}
        if todo:
            loaded, tags = await services.tag([n.text for n in todo], caller)
            try:
                added = await run_in_threadpool(services.store.add, todo, tags, loaded.name, loaded.version, caller.id)
            except ConflictError as error:
                raise ApiError(409, "client_id_conflict", str(error)) from None
            for row, was_new in added:
                (created if was_new else stored)[row.client_id] = row
            services.metrics.feedback.inc(sum(1 for _, was_new in added if was_new))
        taxonomy = services.taxonomy()
        return FeedbackResponse(results=[
            to_stored(created[n.client_id], "created", taxonomy) if n.client_id in created
            else to_stored(stored[n.client_id], "duplicate", taxonomy) for n in new])

    # `:path`: a client_id may hold "/" (it is stored as sent), so the rest of the path is the id.
    @app.get("/v1/feedback/{client_id:path}", response_model=StoredFeedback, tags=["feedback"],
             responses=_responses(401, 403, 404, 422, 429))
    async def get_feedback(client_id: str, caller: ReportCaller, services: ServicesDep) -> StoredFeedback:
        check_no_nul([(["path", "client_id"], client_id)])
        found = await run_in_threadpool(services.store.find, [client_id])
        if client_id not in found:
            raise ApiError(404, "not_found", f"no stored comment has client_id {client_id!r}")
        return to_stored(found[client_id], "stored", services.taxonomy())

    @app.get("/v1/reports/summary", response_model=SummaryResponse, tags=["reports"],
             responses=_responses(401, 403, 422, 429))
    async def summary(caller: ReportCaller, services: ServicesDep, filters: Annotated[Filters, Depends(report_filters)],
                      period: Literal["day", "week", "month"] = "week") -> SummaryResponse:
        """Counts over stored feedback: sentiment, aspects with their polarity, channels, model versions, and a
        series by `period` (of `created_at`, UTC)."""
        result = await run_in_threadpool(services.store.summary, filters, period)
        return SummaryResponse(filters=describe(filters), **result)

    @app.get("/v1/reports/themes", response_model=ThemeReport, tags=["reports"],
             responses={**_responses(401, 403, 422, 429, 503), 200: {"content": {"text/html": {}}}})
    async def stored_themes(caller: ReportCaller, services: ServicesDep,
                            filters: Annotated[Filters, Depends(report_filters)],
                            period: Literal["day", "week", "month"] = "week",
                            format: Literal["json", "html"] = "json",
                            seed: Annotated[int, Query(ge=0, le=2**31 - 1)] = 13,
                            min_theme_size: Annotated[int, Query(ge=2, le=10_000)] = 8,
                            taxonomy: Annotated[str, Query(pattern=r"^[a-z_]{1,40}$")] = "auto") -> Any:
        """The theme report (see the themes docs) over the newest stored comments that match the filters, at most
        `max_theme_items` of them; `format=html` gives the analysts' RTL page."""
        records, matched = await run_in_threadpool(services.store.records, filters, settings.max_theme_items)
        report = await services_themes(services, records, ThemeSettings(period=period, seed=seed,
                                                                        min_theme_size=min_theme_size,
                                                                        taxonomy=check_taxonomy(taxonomy, "query")))
        if matched > len(records):
            report.notes.append(f"{matched} stored comments matched; the newest {len(records)} were analysed "
                                "(BAZKHORD_MAX_THEME_ITEMS)")
        if format == "html":
            from service.theme_report import render_html

            return HTMLResponse(render_html(report))
        return report

    # -- the model registry --------------------------------------------------------------------------------
    @app.get("/v1/models", response_model=ModelsResponse, tags=["models"], responses=_responses(401, 403, 429, 503))
    async def models(caller: AdminCaller, services: ServicesDep) -> ModelsResponse:
        loaded = services.active()
        rows = await run_in_threadpool(services.registry.versions)
        return ModelsResponse(name=loaded.name, active=loaded.version, versions=[ModelVersion(**r) for r in rows])

    @app.post("/v1/models/activate", response_model=ModelInfo, tags=["models"],
              responses=_responses(401, 403, 409, 422, 429, 503))
    async def activate(body: ActivateRequest, caller: AdminCaller, services: ServicesDep) -> ModelInfo:
        """Serve another version of the model. It is loaded, checked and warmed up first; requests in flight
        finish on the old one. A folder that does not load is refused (409) and the active model keeps serving."""
        return await swap(services, lambda: services.registry.activate(body.version, caller.name))

    @app.post("/v1/models/rollback", response_model=ModelInfo, tags=["models"],
              responses=_responses(401, 403, 409, 429, 503))
    async def rollback(caller: AdminCaller, services: ServicesDep) -> ModelInfo:
        """Serve again the version that was active before the current one."""
        return await swap(services, lambda: services.registry.rollback(caller.name))

    return app


def with_label(exposition: bytes, name: str, value: str) -> bytes:
    """Prometheus text with `name="value"` added to every sample (prometheus_client has no constant labels)."""
    label = f'{name}="{value.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
    lines = []
    for line in exposition.decode("utf-8").splitlines():
        if line and not line.startswith("#"):
            head, _, rest = line.partition(" ")
            if "{" in head:
                metric, _, labels = line.partition("{")
                line = f"{metric}{{{label},{labels}"
            else:
                line = f"{head}{{{label}}} {rest}"
        lines.append(line)
    return ("\n".join(lines) + "\n").encode("utf-8")


async def keep_in_sync(services: Services) -> None:
    """Every `sync_seconds`: follow another process's activation, drop the key cache after a revocation."""
    while True:
        await asyncio.sleep(services.settings.sync_seconds)
        try:
            loaded = await run_in_threadpool(services.sync)
        except Exception:  # the loop must outlive a bad moment of the store; the error is in the log
            log.exception("syncing with the other processes failed")
            continue
        if loaded is not None:
            services.metrics.set_model(loaded.name, loaded.version, str(loaded.manifest["kind"]))


async def swap(services: Services, change: Any) -> ModelInfo:
    services.active()
    try:
        loaded: LoadedModel = await run_in_threadpool(change)
    except ModelFolderError as error:
        raise ApiError(409, "model_refused", f"{error}; the active model keeps serving") from None
    services.metrics.set_model(loaded.name, loaded.version, str(loaded.manifest["kind"]))
    return model_info(loaded)


async def services_themes(services: Services, records: list[FeedbackRecord], theme_settings: ThemeSettings
                          ) -> ThemeReport:
    if services.themes_busy.locked():
        services.metrics.rejected.labels("themes_busy").inc()
        raise ApiError(503, "overloaded", "another theme report is being computed; retry shortly",
                       headers={"Retry-After": "5"})
    loaded = services.active()
    async with services.themes_busy:
        analyzer = ThemeAnalyzer(loaded.tagger, theme_settings, encoder=services.settings.theme_encoder)
        try:
            return await run_in_threadpool(analyzer.analyse, records)
        finally:
            del analyzer
            await run_in_threadpool(release_memory)  # a report's arrays are gone: give their pages back


def check_taxonomy(name: str, where: str) -> str:
    """Over HTTP a report names a shipped taxonomy (never a file path)."""
    from data.taxonomy import taxonomy_names

    allowed = ["auto", "model", *taxonomy_names()]
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


def to_stored(row: Stored, status: str, taxonomy: Taxonomy | None) -> StoredFeedback:
    aspects = tuple(AspectTag(a["aspect"], a["confidence"], a["polarity"], a["polarity_confidence"],
                              tuple(Evidence(e["text"], e["start"], e["end"]) for e in a["evidence"]))
                    for a in row.aspects)
    return StoredFeedback(
        client_id=row.client_id, status=status, text=row.text, channel=row.channel, product=row.product,  # type: ignore[arg-type]
        segment=row.segment, rating=row.rating, nps=row.nps, created_at=row.created_at, received_at=row.received_at,
        sentiment=row.sentiment, probabilities=row.probabilities, aspects=aspects_out(aspects, taxonomy),
        model=ModelRef(name=row.model_name, version=row.model_version))


def model_info(loaded: LoadedModel) -> ModelInfo:
    return ModelInfo(name=loaded.name, version=loaded.version, kind=str(loaded.manifest["kind"]))


def aspects_out(aspects: tuple[AspectTag, ...], taxonomy: Taxonomy | None) -> list[AspectOut]:
    found = []
    for a in aspects:
        entry = taxonomy.get(a.aspect) if taxonomy is not None else None
        found.append(AspectOut(
            aspect=a.aspect,
            name_fa=entry.name_fa if entry else None,
            name_en=entry.name_en if entry else None,
            confidence=a.confidence,
            polarity=a.polarity,
            polarity_confidence=a.polarity_confidence,
            evidence=[EvidenceOut(text=e.text, start=e.start, end=e.end) for e in a.evidence],
        ))
    return found


def to_result(item_id: str | None, tag: Tag, loaded: LoadedModel) -> TagResult:
    return TagResult(id=item_id, sentiment=tag.sentiment, probabilities=tag.probabilities,
                     aspects=aspects_out(tag.aspects, loaded.tagger.taxonomy))
