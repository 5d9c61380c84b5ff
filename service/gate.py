"""Authentication at the door: every /v1/ request is checked from its headers alone, before any of its body is
read or parsed, so a caller without a valid key costs the service a header lookup, not a 2 MB JSON parse.

A request without a key, or with an unknown or revoked one, is answered 401; such requests are also counted per
client address, and an address past its limit is answered 429. A valid key over its own rate limit is answered
429. The verified caller travels to the routes in the request state, where `require(scope)` checks its scope.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from bazkhord.service.auth import NOT_CACHED, Caller, retry_after_header
from bazkhord.service.errors import error_bytes

if TYPE_CHECKING:
    from bazkhord.service.deps import Services

PROTECTED = "/v1/"
CHALLENGE = (b"www-authenticate", b"Bearer")


def key_from_headers(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The API key from `Authorization: Bearer <key>` or `X-API-Key: <key>`; white space around it is ignored
    in both (the same key is the same key however it is padded)."""
    found = dict(headers)
    authorization = found.get(b"authorization", b"").decode("latin-1").strip()
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    header = found.get(b"x-api-key", b"").decode("latin-1").strip()
    return header or None


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class AuthGate:
    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED):
            await self.app(scope, receive, send)
            return
        services = self.services
        key = key_from_headers(scope.get("headers") or [])
        caller: Any = None
        if key is not None:
            caller = services.keys.verify_cached(key)
            if caller is NOT_CACHED:
                caller = await run_in_threadpool(services.keys.verify, key)
        if not isinstance(caller, Caller):
            wait = services.guard.acquire(client_address(scope))
            if wait > 0:
                services.metrics.rejected.labels("unauthenticated_rate").inc()
                await answer(send, 429, "rate_limited", "too many requests without a valid API key from this address; "
                             f"retry in {wait:.1f} s", [(b"retry-after", retry_after_header(wait).encode())])
            elif key is None:
                await answer(send, 401, "unauthenticated", "this route needs an API key: send 'Authorization: Bearer "
                             "<key>' or 'X-API-Key: <key>' (create one with `bazkhord keys create`)", [CHALLENGE])
            else:
                await answer(send, 401, "invalid_key", "the API key is unknown or revoked", [CHALLENGE])
            return
        scope.setdefault("state", {})
        scope["state"]["caller"] = caller
        scope["state"]["caller_name"] = caller.name
        wait = services.limiter.acquire(caller.id, caller.rate_per_minute)
        if wait > 0:
            services.metrics.rejected.labels("rate_limited").inc()
            await answer(send, 429, "rate_limited", f"key {caller.name!r} is over its rate limit; retry in {wait:.2f} s",
                         [(b"retry-after", retry_after_header(wait).encode())])
            return
        await self.app(scope, receive, send)


async def answer(send: Send, status: int, code: str, message: str, headers: list[tuple[bytes, bytes]]) -> None:
    """A JSON error sent before the body was read; the connection closes, so the unread body is never parsed."""
    body = error_bytes(code, message)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *headers]})
    await send({"type": "http.response.body", "body": body})
