"""The HTTP edge: auth, limits, batching and the store wired around the model; errors mapped to 4xx/503.

`create_app` only assembles: the services (service/deps.py), the middlewares, the error handlers and one router
per resource (service/routes/). No text processing happens here: the tagger normalises with the config saved in
its model folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from bazkhord.data.errors import BazkhordError
from bazkhord.data.normalise import normalise
from bazkhord.model.folder import LoadedModel
from bazkhord.service.db import make_engine, upgrade
from bazkhord.service.deps import Services
from bazkhord.service.docs import add_docs_routes
from bazkhord.service.errors import ApiError, error_response
from bazkhord.service.gate import AuthGate
from bazkhord.service.memory import freeze_heap, limit_arenas
from bazkhord.service.observability import BodyTooLarge, BodyTooSlow, EdgeMiddleware, setup_json_logging
from bazkhord.service.routes import corrections, feedback, models, ops, reports, tagging
from bazkhord.service.routes.workspace import add_workspace
from bazkhord.service.schemas import ErrorBody, ErrorDetail
from bazkhord.service.server import die_with_supervisor, supervised
from bazkhord.service.settings import Settings

log = logging.getLogger("bazkhord.service")
ROUTERS = (ops.router, tagging.router, feedback.router, corrections.router, reports.router, models.router)


def create_app(settings: Settings | None = None, model: LoadedModel | None = None, engine: Engine | None = None
               ) -> FastAPI:
    """Build the app. `model` lets tests and the CLI hand over a model already loaded; `engine` a database."""
    settings = settings or Settings()
    if supervised():  # a process of `serve --workers`: set up as `serve` sets up itself, and ends with it
        limit_arenas()  # before its thread pool starts; a spawned process does not inherit the supervisor's
        die_with_supervisor()
        configure_logging(settings)
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
        services.jobs.start_schedule()
        # The workspace's statement search normalises its words: hazm's normaliser takes seconds to build, once.
        await run_in_threadpool(normalise, "")
        # The workspace's filter lists, read once before the first page asks (in the background: readiness waits
        # for nothing but the model).
        threading.Thread(target=services.workspace.options, name="bazkhord-filter-options", daemon=True).start()
        await run_in_threadpool(freeze_heap)
        syncing = asyncio.create_task(keep_in_sync(services), name="bazkhord-sync") if settings.sync_seconds else None
        yield
        if syncing is not None:
            syncing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await syncing
        await services.batcher.stop()
        await run_in_threadpool(services.jobs.stop)
        await run_in_threadpool(services.retraining.stop)

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
    # The last added runs first: the edge (request id, metrics, body limit), then the key check, then the routes.
    app.add_middleware(AuthGate, services=services)
    app.add_middleware(EdgeMiddleware, metrics=services.metrics, max_body_bytes=settings.max_body_bytes,
                       body_timeout=settings.body_timeout_s)
    add_error_handlers(app)
    # An unexpected error is answered 500 by EdgeMiddleware, with the request id in the answer and in the log.
    for router in ROUTERS:
        app.include_router(router)
    add_workspace(app)
    return app


def configure_logging(settings: Settings) -> None:
    """The logging `bazkhord serve` sets up for itself, in a process it spawned (which starts with none, and so
    wrote no access lines): JSON lines, or plain ones on standard error."""
    if settings.json_logs:
        setup_json_logging(settings.log_level)
    else:
        logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")


def add_error_handlers(app: FastAPI) -> None:
    """Every error the app expects as the API's one error body, 4xx (or 503)."""

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.body, error.headers)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = error.errors()
        details = [ErrorDetail(location=[p for p in e.get("loc", ()) if p != "body"], message=str(e.get("msg", "")))
                   for e in errors]
        # Too much to take (a comment's text, a list of items) is 413; an id, metadata or filter value too long is
        # an invalid value like any other, 422, as docs/API.md says.
        if errors and all(e.get("type") in ("string_too_long", "too_long") and is_payload(e.get("loc", ()))
                          for e in errors):
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


def is_payload(location: tuple[str | int, ...] | list[str | int]) -> bool:
    """Whether a validation error's location is a comment's text or a list of items (what makes a request big)."""
    parts = [p for p in location if p != "body"]
    return bool(parts) and parts[0] != "query" and parts[-1] in ("text", "items")


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
