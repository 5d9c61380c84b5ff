"""Prometheus metrics, JSON logs, request ids, and the body-size guard, as one ASGI middleware.

Each app owns its own metrics registry, so several apps in one process (tests) do not collide.
"""

from __future__ import annotations

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


class EdgeMiddleware:
    """Request id (taken from the caller when well-formed, else made), metrics, one access-log line, and a
    413 for bodies over `max_body_bytes` whether or not the caller declared a Content-Length."""

    def __init__(self, app: ASGIApp, metrics: Metrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

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

        async def guarded_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (REQUEST_ID_HEADER.encode(), request_id.encode())]
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
        body = json.dumps({"error": {"code": "body_too_large", "message":
                                     f"the request body is over the limit of {self.max_body_bytes} bytes",
                                     "details": []}}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
