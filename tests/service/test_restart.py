"""A real server process, killed with SIGKILL while comments stream in, then started again: every comment it
acknowledged is in the store, and the client's retries of the rest are answered without duplicates."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from bazkhord.model.folder import LoadedModel
from bazkhord.service.db import make_engine
from bazkhord.service.store import FeedbackStore
from benchmarks.service_http import Server, alive, descendants, free_port


def text_of(client_id: str) -> str:
    return f"پیک {client_id.split('-')[-2]} روز دیر اومد ولی کیفیت خوبه"


@pytest.mark.parametrize(("backend", "processes"), [("sqlite", 1), ("postgresql", 1), ("postgresql", 2)])
def test_sigkill_loses_no_acknowledged_feedback(sample_model: LoadedModel, tmp_path: Path, backend: str, processes: int,
                                                request: pytest.FixtureRequest) -> None:
    """With `--workers 2` the SIGKILLed supervisor leaves its two service processes, their model workers and the
    resource tracker behind unless each ends with it."""
    url = f"sqlite:///{tmp_path}/store.db" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    port = free_port()
    server = Server(sample_model.folder, tmp_path, port, url, workers=processes, rate_limit_burst="100000")
    key = server.key(f"restart-{backend}-{time.time_ns()}", None, scopes="ingest")
    headers = {"Authorization": f"Bearer {key}"}
    prefix = f"{backend}-{time.time_ns()}"
    acknowledged: list[str] = []
    sent: list[str] = []
    stop = threading.Event()

    def stream(worker: int) -> None:
        with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
            n = 0
            while not stop.is_set():
                ids = [f"{prefix}-{worker}-{n}-{i}" for i in range(4)]
                sent.extend(ids)
                try:
                    response = client.post("/v1/feedback", json={"items": [
                        {"client_id": cid, "text": text_of(cid)} for cid in ids]})
                except httpx.TransportError:
                    return  # the server died mid-request: not acknowledged
                if response.status_code == 200:
                    acknowledged.extend(r["client_id"] for r in response.json()["results"])
                n += 1

    engine = make_engine(url)
    workers = [threading.Thread(target=stream, args=(w,)) for w in range(4)]
    left_behind: set[int] = set()
    try:
        server.wait_ready()
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 30
        while len(acknowledged) < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        children = descendants(server.process.pid)
        assert children, "the server runs its model in a worker process"
        left_behind |= children
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=30)
        deadline = time.monotonic() + 15
        while alive(children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(children), "a process of the killed server lives on"
        with pytest.raises(httpx.TransportError):  # nothing answers on the port any more
            httpx.get(f"{server.url}/readyz", timeout=2)
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
        assert len(acknowledged) >= 40, "too little traffic before the kill to test anything"
        assert len(sent) > len(acknowledged)  # some requests were in flight when it died

        found = FeedbackStore(engine).find(acknowledged)
        assert sorted(found) == sorted(acknowledged)

        server.stop()
        server = Server(sample_model.folder, tmp_path, port, url, workers=processes, rate_limit_burst="100000")
        server.wait_ready()
        # The client retries everything it sent: acknowledged ones are duplicates, the rest are stored now.
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            statuses: dict[str, str] = {}
            for start in range(0, len(sent), 64):
                batch = sent[start : start + 64]
                response = client.post("/v1/feedback", json={"items": [
                    {"client_id": cid, "text": text_of(cid)} for cid in batch]})
                assert response.status_code == 200, response.text
                statuses.update({r["client_id"]: r["status"] for r in response.json()["results"]})
        assert all(statuses[cid] == "duplicate" for cid in acknowledged)
        assert FeedbackStore(engine).find(sent).keys() == set(sent)
    finally:
        stop.set()
        server.stop()
        engine.dispose()
        for pid in alive(left_behind):  # what a failing run leaves must not run on after the test
            os.kill(pid, signal.SIGKILL)
