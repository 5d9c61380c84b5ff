"""The HTTP edge: loads the model in `lifespan`, validates requests, calls the tagger, maps errors to 4xx.

No text processing happens here: the tagger normalises with the config saved in its model folder.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from data.errors import BazkhordError
from data.record import FeedbackRecord
from model.base import Tag
from model.folder import LoadedModel, load_model
from model.themes.analysis import ThemeAnalyzer, ThemeSettings
from model.themes.report import ThemeReport
from service.schemas import (
    AspectOut,
    ErrorBody,
    ErrorDetail,
    ErrorResponse,
    EvidenceOut,
    Health,
    ModelInfo,
    Ready,
    TagRequest,
    TagResponse,
    TagResult,
    ThemeRequest,
)
from service.settings import Settings

log = logging.getLogger("bazkhord.service")

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (413, "too many texts, a text too long, or a body too large"),
        (422, "the request is not valid: see error.details"),
        (503, "no model is loaded"),
    )
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: list[ErrorDetail] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = ErrorBody(code=code, message=message, details=details or [])


def get_model(request: Request) -> LoadedModel:
    loaded: LoadedModel | None = request.app.state.model
    if loaded is None:
        raise ApiError(503, "model_unavailable", f"no model is loaded: {request.app.state.load_error}")
    return loaded


ModelDep = Annotated[LoadedModel, Depends(get_model)]


def error_response(status: int, body: ErrorBody) -> JSONResponse:
    return JSONResponse(status_code=status, content=ErrorResponse(error=body).model_dump())


def create_app(settings: Settings | None = None, model: LoadedModel | None = None) -> FastAPI:
    """Build the app. `model` lets tests and the CLI hand over a model already loaded."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.model = model
        app.state.load_error = None
        if model is None:
            try:
                app.state.model = load_model(settings.model, settings.models_dir)
                log.info("serving model %s %s", app.state.model.name, app.state.model.version)
            except BazkhordError as error:
                # Stay up and say why on /readyz, rather than crash-looping with a stack trace.
                app.state.load_error = str(error)
                log.error("no model loaded: %s", error)
        if app.state.model is not None:
            app.state.model.tagger.tag(["سلام"])  # warm-up: the normaliser's first call imports hazm (seconds)
        yield

    app = FastAPI(
        title="bazkhord",
        summary="Persian customer-feedback tagging: sentiment, aspects with polarity, evidence spans.",
        version="1",
        lifespan=lifespan,
    )
    app.state.settings = settings

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > settings.max_body_bytes:
            return error_response(413, ErrorBody(
                code="body_too_large",
                message=f"request body is {length} bytes; the limit is {settings.max_body_bytes}"))
        return await call_next(request)

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.body)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        details = [
            ErrorDetail(location=[p for p in e.get("loc", ()) if p != "body"], message=str(e.get("msg", "")))
            for e in error.errors()
        ]
        return error_response(422, ErrorBody(code="invalid_request", message="the request is not valid", details=details))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return error_response(error.status_code, ErrorBody(code=f"http_{error.status_code}", message=str(error.detail)))

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return error_response(500, ErrorBody(code="internal", message="internal error; it has been logged"))

    @app.get("/healthz", response_model=Health, tags=["ops"])
    def healthz() -> Health:
        return Health(status="ok")

    @app.get("/readyz", response_model=Ready, tags=["ops"], responses={503: {"model": Ready}})
    def readyz(request: Request) -> Any:
        loaded: LoadedModel | None = request.app.state.model
        if loaded is None:
            return JSONResponse(status_code=503, content=Ready(status="not ready", reason=request.app.state.load_error)
                                .model_dump())
        return Ready(status="ready", model=model_info(loaded))

    @app.post("/v1/tag", response_model=TagResponse, tags=["tagging"], responses=ERROR_RESPONSES)
    def tag(body: TagRequest, loaded: ModelDep) -> TagResponse:
        # A plain `def`: FastAPI runs it in a worker thread, so inference never blocks the event loop.
        items = body.as_items()
        check_limits([item.text for item in items], body.items is not None, settings)
        tags = loaded.tagger.tag([item.text for item in items])
        return TagResponse(
            model=model_info(loaded),
            results=[to_result(item.id, t, loaded) for item, t in zip(items, tags, strict=True)],
        )

    @app.post("/v1/themes", response_model=ThemeReport, tags=["themes"], responses=ERROR_RESPONSES)
    def themes(body: ThemeRequest, loaded: ModelDep) -> ThemeReport:
        """Root-cause themes of a batch of comments: the same report as `bazkhord report`'s report.json."""
        check_limits([item.text for item in body.items], True, settings, max_texts=settings.max_theme_items)
        records = [FeedbackRecord(text=i.text, id=i.id, channel=i.channel, created_at=i.created_at, rating=i.rating,
                                  nps=i.nps, product=i.product, segment=i.segment) for i in body.items]
        analyzer = ThemeAnalyzer(loaded.tagger, ThemeSettings(period=body.period, seed=body.seed,
                                                              min_theme_size=body.min_theme_size))
        return analyzer.analyse(records)

    return app


def check_limits(texts: list[str], as_items: bool, settings: Settings, max_texts: int | None = None) -> None:
    limit = max_texts or settings.max_texts_per_request
    if len(texts) > limit:
        raise ApiError(413, "too_many_texts", f"{len(texts)} texts in one call; the limit is {limit}",
                       [ErrorDetail(location=["items"], message="split the batch (or, for themes, use `bazkhord report`)")])
    for index, text in enumerate(texts):
        where: list[str | int] = ["items", index, "text"] if as_items else ["text"]
        if len(text) > settings.max_chars_per_text:
            raise ApiError(413, "text_too_long",
                           f"text has {len(text)} characters; the limit is {settings.max_chars_per_text}",
                           [ErrorDetail(location=where, message="shorten or split the text")])
        if not text.strip():
            raise ApiError(422, "empty_text", "a text is empty or only whitespace",
                           [ErrorDetail(location=where, message="send the comment's words")])
        if "\x00" in text:
            raise ApiError(422, "nul_in_text", "a text contains a NUL character",
                           [ErrorDetail(location=where, message="remove NUL (\\u0000) characters")])


def model_info(loaded: LoadedModel) -> ModelInfo:
    return ModelInfo(name=loaded.name, version=loaded.version, kind=str(loaded.manifest["kind"]))


def to_result(item_id: str | None, tag: Tag, loaded: LoadedModel) -> TagResult:
    taxonomy = loaded.tagger.taxonomy
    aspects = []
    for a in tag.aspects:
        entry = taxonomy.get(a.aspect) if taxonomy is not None else None
        aspects.append(AspectOut(
            aspect=a.aspect,
            name_fa=entry.name_fa if entry else None,
            name_en=entry.name_en if entry else None,
            confidence=a.confidence,
            polarity=a.polarity,
            polarity_confidence=a.polarity_confidence,
            evidence=[EvidenceOut(text=e.text, start=e.start, end=e.end) for e in a.evidence],
        ))
    return TagResult(id=item_id, sentiment=tag.sentiment, probabilities=tag.probabilities, aspects=aspects)
