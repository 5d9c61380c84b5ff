"""The HTTP server's own guards, below the app: a connection must send its request line and headers within a
time limit (a client trickling them byte by byte, "slowloris", would otherwise hold a connection for ever, as
uvicorn restarts its keep-alive timer on every byte)."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("bazkhord.server")


def guarded_http_protocol(header_timeout: float) -> Any:
    """uvicorn's httptools protocol, closing a connection whose request head takes longer than `header_timeout`
    seconds from its first byte (or from the connection, for the first request). The body is timed by the app's
    EdgeMiddleware. The class is module-level, so `serve --workers` can hand it to spawned processes (which read
    the timeout from the environment, set here)."""
    os.environ[TIMEOUT_VARIABLE] = str(header_timeout)
    GuardedHttpToolsProtocol.header_timeout = header_timeout
    return GuardedHttpToolsProtocol


TIMEOUT_VARIABLE = "BAZKHORD_HEADER_TIMEOUT_S"


class GuardedHttpToolsProtocol(HttpToolsProtocol):  # type: ignore[misc]
    header_timeout = float(os.environ.get(TIMEOUT_VARIABLE, "10"))
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_head_timer()

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        log.warning("closing a connection from %s: no complete request head within %.0f s", self.client,
                    self.header_timeout)
        self.transport.close()
