"""The HTTP server's own guards, below the app: a connection must send its request line and headers within a
time limit (a client trickling them byte by byte, "slowloris", would otherwise hold a connection for ever, as
uvicorn restarts its keep-alive timer on every byte), and the request head is bounded in bytes and in header
fields (uvicorn's httptools protocol bounds neither: a 50 MB header would be read into memory and reach the app).
Both answer before any of the app runs, in every serving mode (`serve --workers` hands the class to its processes,
which read the limits from the environment)."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import sys
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bazkhord.service.errors import error_bytes

log = logging.getLogger("bazkhord.server")


def guarded_http_protocol(header_timeout: float, max_head_bytes: int = 32_768, max_headers: int = 100) -> Any:
    """uvicorn's httptools protocol, closing a connection whose request head takes longer than `header_timeout`
    seconds from its first byte (or from the connection, for the first request), and answering 431 to a head of
    more than `max_head_bytes` (request line and headers) or more than `max_headers` header fields. The body is
    timed and bounded by the app's EdgeMiddleware. The class is module-level, so `serve --workers` can hand it to
    spawned processes (which read the limits from the environment, set here)."""
    os.environ[TIMEOUT_VARIABLE] = str(header_timeout)
    os.environ[HEAD_BYTES_VARIABLE] = str(max_head_bytes)
    os.environ[HEADERS_VARIABLE] = str(max_headers)
    GuardedHttpToolsProtocol.header_timeout = header_timeout
    GuardedHttpToolsProtocol.max_head_bytes = max_head_bytes
    GuardedHttpToolsProtocol.max_headers = max_headers
    return GuardedHttpToolsProtocol


TIMEOUT_VARIABLE = "BAZKHORD_HEADER_TIMEOUT_S"
HEAD_BYTES_VARIABLE = "BAZKHORD_MAX_HEADER_BYTES"
HEADERS_VARIABLE = "BAZKHORD_MAX_HEADERS"


class HeadTooLarge(Exception):
    """Raised from the parser's callbacks to stop reading a request head past its limits."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):  # type: ignore[misc]
    header_timeout = float(os.environ.get(TIMEOUT_VARIABLE, "10"))
    max_head_bytes = int(os.environ.get(HEAD_BYTES_VARIABLE, "32768"))
    max_headers = int(os.environ.get(HEADERS_VARIABLE, "100"))
    _head_timer: asyncio.TimerHandle | None = None
    _in_head = True  # between a request's first byte and the end of its headers
    _raw_head_bytes = 0  # bytes received while in the head (may include the start of a body: a coarse bound)
    _head_bytes = 0  # the head as parsed: request target and header fields
    _headers = 0
    _refusal = ""  # why the head is refused, once it is

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._raw_head_bytes += len(data)
        super().data_received(data)
        # A head streamed in many pieces: the parser holds an unfinished header field in memory, so stop it at
        # the limit (and a piece of body read with the head's end gets the same slack).
        if self._in_head and not self._refusal and self._raw_head_bytes > self.max_head_bytes + 65_536:
            self._refuse(f"the request head is over {self.max_head_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._raw_head_bytes, self._head_bytes, self._headers = True, 0, 0, 0
        self._start_head_timer()

    def on_url(self, url: bytes) -> None:
        self._count(len(url) + 16, 0)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4, 1)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stop_head_timer()
        super().on_headers_complete()

    def _count(self, size: int, fields: int) -> None:
        self._head_bytes += size
        self._headers += fields
        if self._head_bytes > self.max_head_bytes:
            self._refusal = f"the request head is over {self.max_head_bytes} bytes (request line and headers)"
        elif self._headers > self.max_headers:
            self._refusal = f"the request has more than {self.max_headers} header fields"
        if self._refusal:
            raise HeadTooLarge(self._refusal)  # the parser stops; uvicorn answers through send_400_response

    def send_400_response(self, msg: str) -> None:
        if self._refusal:
            self._send_431()
        else:
            super().send_400_response(msg)

    def _refuse(self, reason: str) -> None:
        self._refusal = reason
        self._send_431()

    def _send_431(self) -> None:
        log.warning("refusing a request from %s: %s", self.client, self._refusal)
        self._stop_head_timer()
        body = error_bytes("headers_too_large", self._refusal)
        self.transport.write(b"".join([
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n", b"content-type: application/json\r\n",
            b"content-length: ", str(len(body)).encode("ascii"), b"\r\n", b"connection: close\r\n\r\n", body]))
        self.transport.close()

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


SUPERVISOR_VARIABLE = "BAZKHORD_SUPERVISOR_PID"
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def supervised() -> bool:
    """Whether this process is one of `serve --workers`, spawned by the supervising `bazkhord serve`."""
    return bool(os.environ.get(SUPERVISOR_VARIABLE))


def die_with_supervisor() -> None:
    """In a process of `serve --workers`: be sent SIGTERM (a graceful stop, which ends this process's model worker
    too) when the supervising `bazkhord serve` ends, even by SIGKILL, which leaves it no chance to stop its
    children. Linux's parent-death signal; elsewhere, and in a single-process server, nothing."""
    supervisor = os.environ.get(SUPERVISOR_VARIABLE)
    if not supervisor or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("cannot ask to end with the supervisor (prctl: errno %d)", ctypes.get_errno())
        return
    if os.getppid() != int(supervisor):  # it died before the request was made: nobody would send the signal
        os.kill(os.getpid(), signal.SIGTERM)
