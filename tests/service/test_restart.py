"""A real server process, killed with SIGKILL while comments stream in, then started again: every comment it
acknowledged is in the store, and the client's retries of the rest are answered without duplicates."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from model.folder import LoadedModel
from service.auth import KeyStore
from service.db import make_engine, upgrade
from service.store import FeedbackStore
from tests.conftest import REPO
from tests.service.helpers import free_port


def start_server(model: Path, database_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BAZKHORD_JSON_LOGS": "true", "BAZKHORD_RATE_LIMIT_BURST": "100000"}
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--model", str(model), "--database-url", database_url,
         "--port", str(port)], cwd=REPO, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the server did not become ready: {log.read_text()[-2000:]}")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigkill_loses_no_acknowledged_feedback(sample_model: LoadedModel, tmp_path: Path, backend: str,
                                                request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path}/store.db" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    upgrade(engine)
    key = KeyStore(engine).create(f"restart-{backend}-{time.time_ns()}", "ingest").key
    headers = {"Authorization": f"Bearer {key}"}
    prefix = f"{backend}-{time.time_ns()}"
    port = free_port()
    server = start_server(sample_model.folder, url, port, tmp_path / "server.log")
    acknowledged: list[str] = []
    sent: list[str] = []
    stop = threading.Event()

    def stream(worker: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=10) as client:
            n = 0
            while not stop.is_set():
                ids = [f"{prefix}-{worker}-{n}-{i}" for i in range(4)]
                sent.extend(ids)
                items = [{"client_id": cid, "text": f"پیک {n} روز دیر اومد ولی کیفیت خوبه"} for cid in ids]
                try:
                    response = client.post("/v1/feedback", json={"items": items})
                except httpx.TransportError:
                    return  # the server died mid-request: not acknowledged
                if response.status_code == 200:
                    acknowledged.extend(r["client_id"] for r in response.json()["results"])
                n += 1

    workers = [threading.Thread(target=stream, args=(w,)) for w in range(4)]
    try:
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 30
        while len(acknowledged) < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
        assert len(acknowledged) >= 40, "too little traffic before the kill to test anything"
        assert len(sent) > len(acknowledged)  # some requests were in flight when it died

        found = FeedbackStore(engine).find(acknowledged)
        assert sorted(found) == sorted(acknowledged)

        server = start_server(sample_model.folder, url, port, tmp_path / "server.log")
        # The client retries everything it sent: acknowledged ones are duplicates, the rest are stored now.
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as client:
            statuses: dict[str, str] = {}
            for start in range(0, len(sent), 64):
                batch = sent[start : start + 64]
                response = client.post("/v1/feedback", json={"items": [
                    {"client_id": cid, "text": f"پیک {cid.split('-')[-2]} روز دیر اومد ولی کیفیت خوبه"} for cid in batch]})
                assert response.status_code == 200, response.text
                statuses.update({r["client_id"]: r["status"] for r in response.json()["results"]})
        assert all(statuses[cid] == "duplicate" for cid in acknowledged)
        assert FeedbackStore(engine).find(sent).keys() == set(sent)
    finally:
        stop.set()
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=30)
        engine.dispose()
