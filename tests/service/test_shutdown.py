"""Stopping the server: Ctrl-C (SIGINT to the whole process group, as a terminal sends it) ends the server and its
model worker without a trace in the log, and a request still running when the grace period ends is answered 503."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx

from bazkhord.model.folder import LoadedModel
from bazkhord.service.observability import EdgeMiddleware, Metrics
from benchmarks.service_http import Server, alive, descendants, free_port


def test_ctrl_c_stops_server_and_worker_cleanly(sample_model: LoadedModel, tmp_path: Path) -> None:
    server = Server(sample_model.folder, tmp_path, free_port(), new_session=True)
    try:
        key = server.key("ctrl-c", None)
        server.wait_ready()
        answer = httpx.post(f"{server.url}/v1/tag", json={"text": "پیک دیر اومد"}, timeout=30,
                            headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200
        children = descendants(server.process.pid)
        assert children, "the server runs its model in a worker process"
        os.killpg(server.process.pid, signal.SIGINT)
        assert server.process.wait(timeout=60) == 0
        deadline = time.monotonic() + 15
        while alive(children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(children), "the model worker outlived the server"
    finally:
        server.stop()
    log = Path(server.log.name).read_text(encoding="utf-8", errors="replace")
    assert "Finished server process" in log
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log[-3000:]


def test_a_request_cut_by_shutdown_is_answered_503() -> None:
    started = asyncio.Event()

    async def slow_app(scope: Any, receive: Any, send: Any) -> None:
        started.set()
        await asyncio.sleep(3600)  # a theme report still computing when the grace period ends

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def run() -> None:
        edge = EdgeMiddleware(slow_app, Metrics(), max_body_bytes=1000)
        scope = {"type": "http", "method": "POST", "path": "/v1/themes", "headers": []}
        task = asyncio.create_task(edge(scope, receive, send))
        await started.wait()
        task.cancel()  # what uvicorn does to requests still running after timeout_graceful_shutdown
        await task

    asyncio.run(run())
    assert sent[0]["status"] == 503
    assert json.loads(sent[1]["body"])["error"]["code"] == "shutting_down"
