"""Several service processes, one truth: a key's rate limit and its revocation shared through Redis, a model
activation made on one process followed by the other, metrics labelled by process."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bazkhord.model.folder import LATEST_FILE, LoadedModel
from benchmarks.service_http import REPO, Server, free_port
from tests.service.helpers import clone_version

REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The machine's Redis (database 15), or a throw-away redis-server; else the test is skipped with the reason."""
    redis = pytest.importorskip("redis", reason="the Redis client is not installed (pip install 'bazkhord[redis]')")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
        yield REDIS_URL
        return
    except redis.RedisError:
        pass
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no Redis on 127.0.0.1:6379 and no redis-server to start")
    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--save", "", "--appendonly", "no"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    pytest.skip("the throw-away redis-server did not start")
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def two_servers(sample_model: LoadedModel, tmp_path: Path, redis_url: str
                ) -> Iterator[tuple[Server, Server, str, str]]:
    """Two `bazkhord serve` processes on one store and one Redis, serving model "sample" by its bare name."""
    import redis

    models = tmp_path / "models"
    shutil.copytree(sample_model.folder, models / "sample" / sample_model.version)
    (models / "sample" / LATEST_FILE).write_text(sample_model.version, encoding="utf-8")
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    database = f"sqlite:///{tmp_path}/store.db"
    settings: dict[str, Any] = {"models_dir": str(models), "redis_url": redis_url, "redis_prefix": prefix, "sync_seconds": "0.5",
                "auth_cache_seconds": "300", "model_process": "false"}
    first = Server(Path("sample"), tmp_path, free_port(), database, **settings)
    first.wait_ready()  # the first one migrates the store
    second = Server(Path("sample"), tmp_path, free_port(), database, **settings)
    try:
        second.wait_ready()
        yield first, second, prefix, redis_url
    finally:
        first.stop()
        second.stop()
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)


def test_rate_limit_and_revocation_are_shared(two_servers: tuple[Server, Server, str, str]) -> None:
    first, second, prefix, redis_url = two_servers
    key = first.key("shared", rate_per_minute=6)  # a burst of 6, then one every 10 s
    headers = {"Authorization": f"Bearer {key}"}
    statuses = []
    for i in range(20):
        server = (first, second)[i % 2]
        statuses.append(httpx.post(f"{server.url}/v1/tag", json={"text": "پیک دیر اومد"}, headers=headers,
                                   timeout=30).status_code)
    assert statuses.count(200) in (6, 7), statuses  # one limit for both processes (each alone would allow 6)
    assert statuses.count(429) == 20 - statuses.count(200)
    other = first.key("other", rate_per_minute=None, scopes="report")
    other_headers = {"Authorization": f"Bearer {other}"}
    assert all(httpx.get(f"{s.url}/v1/reports/summary", headers=other_headers, timeout=30).status_code == 200
               for s in (first, second))
    env = {"BAZKHORD_REDIS_URL": redis_url, "BAZKHORD_REDIS_PREFIX": prefix, "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "bazkhord.cli", "keys", "revoke", "other", "--database-url",
                           first.database_url], cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    time.sleep(1.5)  # 3 sync rounds; the key cache alone would hold the key for 300 s
    assert [httpx.get(f"{s.url}/v1/reports/summary", headers=other_headers, timeout=30).status_code
            for s in (first, second)] == [401, 401]


def test_activation_on_one_process_is_followed_by_the_other(two_servers: tuple[Server, Server, str, str],
                                                            sample_model: LoadedModel, tmp_path: Path) -> None:
    first, second, _, _ = two_servers
    clone_version(tmp_path / "models" / "sample" / sample_model.version, "20990101-000000")
    admin = {"Authorization": f"Bearer {first.key('admin', None, scopes='admin')}"}
    answer = httpx.post(f"{first.url}/v1/models/activate", json={"version": "20990101-000000"}, headers=admin,
                        timeout=60)
    assert answer.status_code == 200, answer.text
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if httpx.get(f"{second.url}/readyz", timeout=5).json()["model"]["version"] == "20990101-000000":
            break
        time.sleep(0.2)
    assert httpx.get(f"{second.url}/readyz", timeout=5).json()["model"]["version"] == "20990101-000000"
    metrics = [httpx.get(f"{s.url}/metrics", timeout=5).text for s in (first, second)]
    labels = [m.split('bazkhord_model_info{process="', 1)[1].split('"', 1)[0] for m in metrics]
    assert labels[0] != labels[1]  # each process says who it is
    assert 'version="20990101-000000"' in metrics[1]


def test_serve_workers_share_one_port_and_one_limit(sample_model: LoadedModel, tmp_path: Path, redis_url: str) -> None:
    import redis

    prefix = f"test-{uuid.uuid4().hex[:8]}"
    server = Server(sample_model.folder, tmp_path, free_port(), workers=2, redis_url=redis_url,
                    redis_prefix=prefix, model_process="false")
    try:
        key = server.key("workers", rate_per_minute=6)
        server.wait_ready()
        statuses, processes = [], set()
        # httpx.post/get open a new connection each time, so both processes answer.
        for _ in range(20):
            statuses.append(httpx.post(f"{server.url}/v1/tag", json={"text": "پیک دیر اومد"}, timeout=30,
                                       headers={"Authorization": f"Bearer {key}"}).status_code)
        for _ in range(30):
            metrics = httpx.get(f"{server.url}/metrics", timeout=5).text
            processes.add(metrics.split('bazkhord_model_info{process="', 1)[1].split('"', 1)[0])
        assert len(processes) == 2, processes
        assert statuses.count(200) in (6, 7), statuses
    finally:
        server.stop()
        client_ = redis.Redis.from_url(redis_url)
        for name in client_.scan_iter(f"{prefix}:*"):
            client_.delete(name)
