"""The model registry (list, activate, roll back, refuse broken folders), micro-batching, a model swap under
load that loses no request, the feedback routes end to end, and the metrics and request ids."""

from __future__ import annotations

import json
import logging
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bazkhord.model.folder import LATEST_FILE, LoadedModel
from bazkhord.service.observability import JsonFormatter
from tests.service.helpers import api, clone_version


@pytest.fixture
def versions(sample_model: LoadedModel, tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    """A models folder with one model in three versions, v1 (LATEST) to v3: the same weights, new names."""
    root = tmp_path / "models"
    original = root / "sample" / "v1"
    shutil.copytree(sample_model.folder, original)
    for version in ("v2", "v3"):
        clone_version(original, version)
    (root / "sample" / LATEST_FILE).write_text("v1\n", encoding="utf-8")
    # v1's manifest still names the original version: give it its folder's name.
    manifest = json.loads((original / "manifest.json").read_text(encoding="utf-8"))
    manifest["version"] = "v1"
    (original / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    yield root, ["v1", "v2", "v3"]


def test_list_activate_rollback_and_restart(versions: tuple[Path, list[str]], tmp_path: Path) -> None:
    root, _ = versions
    store = f"sqlite:///{tmp_path}/store.db"
    with api(tmp_path, None, "admin", model="sample", models_dir=root, database_url=store) as client:
        listed = client.get("/v1/models").json()
        assert listed["active"] == "v1" and [v["version"] for v in listed["versions"]] == ["v1", "v2", "v3"]
        assert [v["latest"] for v in listed["versions"]] == [True, False, False]
        assert client.post("/v1/models/activate", json={"version": "v3"}).json()["version"] == "v3"
        assert client.post("/v1/tag", json={"text": "خوب"}).json()["model"]["version"] == "v3"
        assert client.get("/readyz").json()["model"]["version"] == "v3"
        assert re.search(r'bazkhord_model_info\{process="[^"]+",kind="tfidf-tagger",name="sample",version="v3"\} 1.0',
                         client.get("/metrics").text)
        assert client.post("/v1/models/rollback").json()["version"] == "v1"
        assert client.post("/v1/models/rollback").json()["version"] == "v3"  # rollback of a rollback goes forward
        client.post("/v1/models/activate", json={"version": "v2"})
    # A restart serves what was active, not LATEST; the history survives, so rollback still works.
    with api(tmp_path / "again", None, "admin", model="sample", models_dir=root, database_url=store) as client:
        assert client.get("/readyz").json()["model"]["version"] == "v2"
        assert client.post("/v1/models/rollback").json()["version"] == "v3"


def test_broken_versions_are_refused_and_the_active_one_keeps_serving(versions: tuple[Path, list[str]],
                                                                       tmp_path: Path) -> None:
    root, _ = versions
    name_dir = root / "sample"
    corrupt = clone_version(name_dir / "v1", "corrupt")
    weights = next(p for p in corrupt.rglob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    incomplete = clone_version(name_dir / "v1", "incomplete")
    weights = next(p for p in incomplete.rglob("*.safetensors"))
    weights.unlink()
    newer = clone_version(name_dir / "v1", "newer")
    manifest = json.loads((newer / "manifest.json").read_text(encoding="utf-8"))
    manifest["format_version"] = 99
    (newer / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    other = clone_version(name_dir / "v1", "other")
    manifest = json.loads((other / "manifest.json").read_text(encoding="utf-8"))
    manifest["name"] = "someone-else"
    (other / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")

    with api(tmp_path, None, "admin", model="sample", models_dir=root) as client:
        for version, reason in (("corrupt", "checksum"), ("incomplete", "missing"), ("newer", "newer"),
                                ("other", "someone-else"), ("v9", "no version 'v9'"), ("..", None)):
            refused = client.post("/v1/models/activate", json={"version": version})
            assert refused.status_code in (409, 422), (version, refused.text)
            if reason is not None:
                assert refused.status_code == 409 and reason in refused.json()["error"]["message"], refused.text
            assert client.post("/v1/tag", json={"text": "خوب"}).json()["model"]["version"] == "v1"
        errors = {v["version"]: v["error"] for v in client.get("/v1/models").json()["versions"]}
        assert errors["newer"] and errors["v1"] is None
        assert "checksum" in errors["corrupt"] and "missing" in errors["incomplete"]  # as loading would find
        nothing_before = client.post("/v1/models/rollback")
        assert nothing_before.status_code == 409 and "nothing to roll back" in nothing_before.json()["error"]["message"]


@pytest.mark.parametrize("model_process", [False, True], ids=["model-thread", "model-process"])
def test_a_swap_under_load_loses_no_request(versions: tuple[Path, list[str]], tmp_path: Path,
                                            model_process: bool) -> None:
    root, _ = versions
    with api(tmp_path, None, "admin", model="sample", models_dir=root, rate_limit_burst=100_000,
             model_process=model_process) as client:
        seen: list[tuple[int, str | None]] = []
        stop = threading.Event()
        lock = threading.Lock()

        def load(worker: int) -> None:
            n = 0
            while not stop.is_set() or n < 5:
                response = client.post("/v1/tag", json={"items": [{"id": f"{worker}-{n}", "text": "پیک دیر اومد"}]})
                version = response.json()["model"]["version"] if response.status_code == 200 else None
                with lock:
                    seen.append((response.status_code, version))
                n += 1

        workers = [threading.Thread(target=load, args=(w,)) for w in range(6)]
        for worker in workers:
            worker.start()
        for version in ("v2", "v3", "v1", "v2"):
            assert client.post("/v1/models/activate", json={"version": version}).status_code == 200
        stop.set()
        for worker in workers:
            worker.join(timeout=60)
        statuses = {status for status, _ in seen}
        assert statuses == {200}, statuses
        assert len(seen) >= 30 and {v for _, v in seen} >= {"v1", "v2"}
        assert client.post("/v1/tag", json={"text": "خوب"}).json()["model"]["version"] == "v2"


def test_concurrent_requests_share_model_calls(sample_model: LoadedModel, tmp_path: Path) -> None:
    calls: list[int] = []
    original = sample_model.tagger.tag

    class Counting:
        def tag(self, texts: list[str]) -> object:
            calls.append(len(texts))
            return original(texts)

        def __getattr__(self, name: str) -> object:
            return getattr(sample_model.tagger, name)

    counted = LoadedModel(Counting(), sample_model.folder, sample_model.manifest)  # type: ignore[arg-type]
    with api(tmp_path, counted, "tag", max_batch_wait_ms=50, rate_limit_burst=1000) as client:
        calls.clear()
        results: list[dict[str, object]] = []

        def send(i: int) -> None:
            results.append(client.post("/v1/tag", json={"id": str(i), "text": f"پیک دیر اومد {i}"}).json())

        threads = [threading.Thread(target=send, args=(i,)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sum(calls) == 16 and len(calls) < 16 and max(calls) > 1, calls
        assert sorted(r["results"][0]["id"] for r in results) == sorted(str(i) for i in range(16))  # type: ignore[index]
        metrics = client.get("/metrics").text
        assert "bazkhord_batch_texts_count{" in metrics and re.search(r"bazkhord_queue_texts\{process=\"[^\"]+\"\} 0.0", metrics)
        assert re.search(r'bazkhord_requests_total\{process="[^"]+",method="POST",route="/v1/tag",status="200"\} 16.0',
                     metrics)
        assert re.search(r'bazkhord_request_seconds_count\{process="[^"]+",route="/v1/tag"\} 16.0', metrics)


def test_feedback_round_trip_over_http(sample_model: LoadedModel, tmp_path: Path) -> None:
    items = [{"client_id": "r1", "text": "پیک دو روز دیر اومد و جعبه له شده بود", "channel": "sms",
              "created_at": "2026-11-20T10:15:00+03:30", "rating": 1, "nps": 2},
             {"client_id": "r2", "text": "کیفیت گوشی عالیه، ممنون", "channel": "app", "created_at": "2026-11-21T09:00:00Z",
              "rating": 5, "nps": 10}]
    with api(tmp_path, sample_model, "ingest,report") as client:
        first = client.post("/v1/feedback", json={"items": items}).json()["results"]
        assert [r["status"] for r in first] == ["created", "created"]
        assert first[0]["created_at"] == "2026-11-20T06:45:00Z"  # stored in UTC
        assert first[0]["model"] == {"name": sample_model.name, "version": sample_model.version}
        retry = client.post("/v1/feedback", json={"items": items}).json()["results"]
        assert [r["status"] for r in retry] == ["duplicate", "duplicate"]
        assert [r["sentiment"] for r in retry] == [r["sentiment"] for r in first]
        assert client.get("/v1/feedback/r1").json()["aspects"] == first[0]["aspects"]
        assert client.get("/v1/feedback/nope").status_code == 404
        summary = client.get("/v1/reports/summary", params={"start": "2026-11-21T00:00:00Z"}).json()
        assert summary["comments"] == 1 and summary["channels"] == [{"channel": "app", "comments": 1, "negative": 0}]
        everything = client.get("/v1/reports/summary", params={"period": "day"}).json()
        assert everything["comments"] == 2 and everything["nps"] == {"responses": 2, "score": 0.0}
        assert [s["period"] for s in everything["series"]] == ["2026-11-20", "2026-11-21"]
        bad = client.get("/v1/reports/summary", params={"start": "2026-11-22", "end": "2026-11-01"})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "empty_range"
        html = client.get("/v1/reports/themes", params={"format": "html"})
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        assert 'dir="rtl"' in html.text


def test_request_ids_and_json_logs(sample_model: LoadedModel, tmp_path: Path,
                                   caplog: pytest.LogCaptureFixture) -> None:
    with api(tmp_path, sample_model, "tag") as client, caplog.at_level(logging.INFO, logger="bazkhord.access"):
        mine = client.post("/v1/tag", json={"text": "خوب"}, headers={"X-Request-ID": "crm-42"})
        assert mine.headers["x-request-id"] == "crm-42"
        made = client.post("/v1/tag", json={"text": "خوب"}, headers={"X-Request-ID": "bad id\twith tab"})
        assert len(made.headers["x-request-id"]) == 32 and made.headers["x-request-id"] != "bad id\twith tab"
        assert client.post("/v1/tag", json={}).headers["x-request-id"]  # errors carry one too
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "bazkhord.access"]
    first = next(line for line in lines if line.get("request_id") == "crm-42")
    assert first["route"] == "/v1/tag" and first["status"] == 200 and first["key"] == "test-0"
    assert first["duration_ms"] > 0


def test_a_dead_model_worker_is_replaced(sample_model: LoadedModel, tmp_path: Path) -> None:
    import os
    import signal

    with api(tmp_path, sample_model, "tag", model_process=True) as client:
        assert client.post("/v1/tag", json={"text": "خوب"}).status_code == 200
        batcher = client.app.state.services.batcher  # type: ignore[attr-defined]
        (pid,) = batcher._executor._processes  # the worker process
        os.kill(pid, signal.SIGKILL)
        answers = [client.post("/v1/tag", json={"text": "پیک دیر اومد"}) for _ in range(3)]
        assert answers[0].status_code in (200, 503)
        if answers[0].status_code == 503:
            assert answers[0].json()["error"]["code"] == "model_unavailable"
        assert answers[-1].status_code == 200 and answers[-1].json()["results"][0]["sentiment"] == "negative"


def test_following_the_store_never_undoes_an_activation_under_way(versions: tuple[Path, list[str]],
                                                                   tmp_path: Path) -> None:
    """A look at the store between this process's swap and its record must not take the older record for another
    process's activation and swap back."""
    from bazkhord.service.db import make_engine, upgrade
    from bazkhord.service.registry import ModelRegistry

    root, _ = versions
    engine = make_engine(f"sqlite:///{tmp_path / 'follow.db'}")
    upgrade(engine)
    registry = ModelRegistry("sample", root, engine)
    registry.start()
    registry.record_startup()
    looked: list[object] = []
    record = registry._record

    def record_after_a_look(loaded: LoadedModel, action: str, by: str | None) -> None:
        look = threading.Thread(target=lambda: looked.append(registry.follow()))
        look.start()
        look.join(5)
        looked.append(look.is_alive())
        record(loaded, action, by)

    registry._record = record_after_a_look  # type: ignore[method-assign]
    registry.activate("v2", "test")
    assert looked == [None, False]  # the look stood back at once
    assert registry.active is not None and registry.active.version == "v2"
    assert registry.follow() is None and registry.active.version == "v2"
