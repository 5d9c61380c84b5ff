"""Prometheus metrics, JSON logs, request ids, security headers, the body-size guard and the last-resort 500, as
one ASGI middleware.

Each app owns its own metrics registry, so several apps in one process (tests) do not collide.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "x-request-id"
log = logging.getLogger("bazkhord.service")

# Every answer: no content sniffing, no framing. JSON answers load nothing; the HTML theme report needs its own
# inline style and SVG, nothing from elsewhere; the API docs pages load Swagger UI / ReDoc from this server
# (service/docs.py), nothing from elsewhere.
COMMON_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                  (b"referrer-policy", b"no-referrer")]
CSP_NONE = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
CSP_REPORT = (b"default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; "
              b"base-uri 'none'; form-action 'none'")
CSP_DOCS = (b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            b"img-src 'self' data:; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'")
# The workspace (/app/) loads its style sheet and script from this server, nothing inline, nothing from elsewhere.
CSP_APP = (b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
           b"frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
APP_PREFIX = "/app"
DOCS_PATHS = ("/docs", "/redoc", "/docs/oauth2-redirect")
# Answers to authenticated routes hold customers' comments: never kept by a browser or a shared cache.
PRIVATE_PREFIX = "/v1/"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
access_log = logging.getLogger("bazkhord.access")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("bazkhord_requests", "HTTP requests by route, method and status",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("bazkhord_request_seconds", "HTTP request latency by route", ["route"],
                                 buckets=(0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.2, 0.5, 1, 2, 5, 10),
                                 registry=self.registry)
        self.batch_size = Histogram("bazkhord_batch_texts", "texts per model call", registry=self.registry,
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
        self.queue_depth = Gauge("bazkhord_queue_texts", "texts waiting for or in a model call", registry=self.registry)
        self.rejected = Counter("bazkhord_rejected", "requests refused by a limit", ["reason"], registry=self.registry)
        self.feedback = Counter("bazkhord_feedback_stored", "comments stored by POST /v1/feedback",
                                registry=self.registry)
        self.model = Info("bazkhord_model", "the active model", registry=self.registry)

    def set_model(self, name: str, version: str, kind: str) -> None:
        self.model.info({"name": name, "version": version, "kind": kind})


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the request id of the request being served, if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key in ("route", "method", "status", "duration_ms", "client", "key"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_json_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("gensim", "matplotlib", "httpx", "uvicorn.access", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class BodyTooLarge(StarletteHTTPException):
    """Raised while reading a body that grows past the limit; the app's HTTP error handler answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over the limit of {limit} bytes")


class BodyTooSlow(StarletteHTTPException):
    """Raised while reading a body that has not arrived whole within the time limit; answered 408."""

    def __init__(self, limit: float) -> None:
        super().__init__(408, f"the request body did not arrive within {limit:g} s")


class EdgeMiddleware:
    """Request id (taken from the caller when well-formed, else made), metrics, one access-log line, security
    headers, a 413 for bodies over `max_body_bytes` whether or not the caller declared a Content-Length, a 408
    for a body that trickles in slower than `body_timeout` seconds, and a 500 (with the request id) for any
    error nothing else answered."""

    def __init__(self, app: ASGIApp, metrics: Metrics, max_body_bytes: int, body_timeout: float = 30.0) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = given if _SAFE_ID.match(given) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        seen = 0
        response_started = False

        body_done = False

        async def guarded_receive() -> Message:
            nonlocal seen, body_done
            if body_done:  # after the body, receive() only waits for the client to go away: no limit then
                return await receive()
            remaining = self.body_timeout - (time.perf_counter() - started)
            try:
                message = await asyncio.wait_for(receive(), max(remaining, 0.001))
            except TimeoutError:
                raise BodyTooSlow(self.body_timeout) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
                body_done = not message.get("more_body", False)
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER.encode(), request_id.encode()),
                                      *security_headers(scope["path"], message.get("headers", []))]
            await send(message)

        try:
            declared = headers.get(b"content-length", b"")
            if declared.isdigit() and int(declared) > self.max_body_bytes:
                raise BodyTooLarge(self.max_body_bytes)
            await self.app(scope, guarded_receive, send_with_id)
        except BodyTooLarge:
            if response_started:
                raise
            self.metrics.rejected.labels("body_too_large").inc()
            await self._too_large(send_with_id)
        except BodyTooSlow as error:
            if response_started:
                raise
            self.metrics.rejected.labels("body_too_slow").inc()
            await self._answer(send_with_id, 408, "body_too_slow", str(error.detail))
        except asyncio.CancelledError:
            # The server is stopping and its grace period is over: a clear 503 rather than uvicorn's bare 500 and an
            # "Exception in ASGI application" trace. The task ends right after, so the cancellation is honoured.
            if response_started:
                raise
            await self._answer(send_with_id, 503, "shutting_down", "the service is shutting down; retry on another "
                               "instance or once it is back")
        except Exception:
            # The last resort, here rather than in Starlette's outer handler, so the 500 carries the request id
            # (and the log line with the trace says it too) and the caller can quote it.
            log.exception("unexpected error on %s", scope["path"], extra={"request_id": request_id})
            if response_started:
                raise
            await self._answer(send_with_id, 500, "internal", f"internal error; it has been logged with request id "
                               f"{request_id}")
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "(unmatched)"
            elapsed = time.perf_counter() - started
            self.metrics.requests.labels(path, scope["method"], str(status)).inc()
            self.metrics.latency.labels(path).observe(elapsed)
            access_log.info("%s %s %d", scope["method"], path, status, extra={
                "request_id": request_id, "route": path, "method": scope["method"], "status": status,
                "duration_ms": round(1000 * elapsed, 2), "key": scope.get("state", {}).get("caller_name")})
            request_id_var.reset(token)

    async def _too_large(self, send: Send) -> None:
        await self._answer(send, 413, "body_too_large", f"the request body is over the limit of {self.max_body_bytes} bytes")

    @staticmethod
    async def _answer(send: Send, status: int, code: str, message: str) -> None:
        body = json.dumps({"error": {"code": code, "message": message, "details": []}}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status in (408, 413):  # the unread rest of the body must not be taken for the next request
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def security_headers(path: str, present: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The headers every answer gets, with the content policy its kind needs; a header the route set is kept."""
    names = {name.lower() for name, _ in present}
    content_type = next((value for name, value in present if name.lower() == b"content-type"), b"")
    if path in DOCS_PATHS:
        policy = CSP_DOCS
    elif path == APP_PREFIX or path.startswith(APP_PREFIX + "/"):
        policy = CSP_APP
    elif content_type.startswith(b"text/html"):
        policy = CSP_REPORT
    else:
        policy = CSP_NONE
    added = [*COMMON_HEADERS, (b"content-security-policy", policy)]
    if path.startswith(PRIVATE_PREFIX) or (path.startswith(APP_PREFIX + "/") and not path.startswith("/app/static/")):
        added.append((b"cache-control", b"no-store"))
    return [(name, value) for name, value in added if name not in names]
