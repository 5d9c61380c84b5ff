"""Regression tests of the service hardening (issue 13): each odd or hostile input of the catalogue gets a clear
4xx, never a 5xx; theme reports stay bounded whatever is stored; keys are checked before bodies are read."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bazkhord.model.folder import LoadedModel
from bazkhord.service.store import NewFeedback
from tests.service.helpers import api

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def client(sample_model: LoadedModel, tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    with api(tmp_path_factory.mktemp("hard"), sample_model, "admin", rate_limit_burst=10_000) as test_client:
        yield test_client  # type: ignore[misc]


def error_code(response: object) -> str:
    return response.json()["error"]["code"]  # type: ignore[attr-defined,no-any-return]


# -- 1. dates ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00", "1989-12-31T23:59:59Z", "9999-12-31T00:00:00Z",
                                    "2999-01-01T00:00:00+03:30", "9999-12-31T23:59:59-14:00",
                                    "0001-01-01T00:00:00+14:00"])
def test_times_outside_the_accepted_range_are_refused(client: TestClient, moment: str) -> None:
    item = {"client_id": f"date-{moment}", "text": "پیک دیر اومد", "created_at": moment}
    response = client.post("/v1/feedback", json={"items": [item]})
    assert response.status_code == 422, response.text
    assert error_code(response) == "date_out_of_range"
    assert response.json()["error"]["details"][0]["location"] == ["items", 0, "created_at"]
    themes = client.post("/v1/themes", json={"items": [{"text": "پیک دیر اومد", "created_at": moment}]})
    assert themes.status_code == 422 and error_code(themes) == "date_out_of_range"


def test_times_in_range_with_any_zone_are_stored_in_utc(client: TestClient) -> None:
    response = client.post("/v1/feedback", json={"items": [
        {"client_id": "zoned-1", "text": "پیک دیر اومد", "created_at": "2025-06-01T10:00:00+03:30"}]})
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["created_at"].startswith("2025-06-01T06:30:00")


@pytest.mark.parametrize("period", ["day", "week", "month"])
def test_a_stored_comment_dated_far_off_keeps_the_theme_report_bounded(sample_model: LoadedModel, tmp_path: Path,
                                                                       period: str) -> None:
    with api(tmp_path, sample_model, "admin") as client:
        services = client.app.state.services  # type: ignore[attr-defined]
        texts = ["ارسال خیلی دیر بود", "بسته بندی پاره بود", "کیفیت بد بود"] * 4
        items = [NewFeedback(client_id=f"x{i}", text=t, created_at=datetime(2026, 1, 1 + i, tzinfo=UTC))
                 for i, t in enumerate(texts)]
        # Written past the API's checks, as an older version or another tool might have: the far ends of time.
        items += [NewFeedback(client_id="far-future", text="خیلی بد بود", created_at=datetime(9999, 12, 31, tzinfo=UTC)),
                  NewFeedback(client_id="far-past", text="خیلی بد بود", created_at=datetime(1, 1, 1, tzinfo=UTC))]
        tags = sample_model.tagger.tag([i.text for i in items])
        services.store.add(items, tags, sample_model.name, sample_model.version)
        started = time.monotonic()
        response = client.get(f"/v1/reports/themes?period={period}&min_theme_size=2")
        assert response.status_code == 200, response.text
        assert time.monotonic() - started < 30
        assert len(response.content) < 2_000_000
        body = response.json()
        assert any("left out of the trends" in note for note in body["notes"])
        for theme in body["themes"]:
            assert theme["trend"] is None or len(theme["trend"]["periods"]) <= 400


# -- 2. ordinary input that used to answer 500 ---------------------------------------------------------------------
@pytest.mark.parametrize("query", [
    "start=2026-01-01&end=2026-12-01T00:00:00Z",
    "start=2026-01-01T00:00:00%2B03:30&end=2026-12-01",
])
def test_filters_mix_times_with_and_without_a_zone(client: TestClient, query: str) -> None:
    for path in ("/v1/reports/summary", "/v1/reports/themes"):
        response = client.get(f"{path}?{query}")
        assert response.status_code in (200, 422), response.text
        assert response.status_code == 200 or error_code(response) != "internal"


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00%2B14:00"])
def test_filter_times_that_overflow_utc_are_422(client: TestClient, value: str) -> None:
    for path in ("/v1/reports/summary", "/v1/reports/themes"):
        response = client.get(f"{path}?start={value}")
        assert response.status_code == 422, response.text
        assert error_code(response) == "date_out_of_range"


@pytest.mark.parametrize("name", ["channel", "product", "segment", "model_version"])
def test_nul_in_a_filter_is_422(client: TestClient, name: str) -> None:
    response = client.get(f"/v1/reports/summary?{name}=a%00b")
    assert response.status_code == 422 and error_code(response) == "nul_in_value"


@pytest.mark.parametrize("field", ["client_id", "channel", "product", "segment"])
def test_nul_in_ingested_metadata_is_422(client: TestClient, field: str) -> None:
    item = {"client_id": "nul-meta", "text": "خوب بود", field: "a\u0000b"}
    response = client.post("/v1/feedback", json={"items": [item]})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["location"] == ["items", 0, field]


def test_nul_in_a_path_id_is_422(client: TestClient) -> None:
    response = client.get("/v1/feedback/a%00b")
    assert response.status_code == 422 and error_code(response) == "nul_in_value"


# -- 4. the key before the body ------------------------------------------------------------------------------------
def test_a_request_without_a_key_is_401_whatever_its_body(sample_model: LoadedModel, tmp_path: Path) -> None:
    with api(tmp_path, sample_model, "tag") as client:
        del client.headers["Authorization"]
        assert client.post("/v1/tag", content=b'{"text": "a"', headers=JSON).status_code == 401
        assert client.post("/v1/tag", content=b"\xff" * 1000, headers=JSON).status_code == 401
        response = client.post("/v1/tag", json={"text": "خوب"}, headers={"X-API-Key": "bzk_nope_nope"})
        assert response.status_code == 401 and error_code(response) == "invalid_key"


def test_the_body_of_a_request_without_a_key_is_never_read(sample_model: LoadedModel, tmp_path: Path) -> None:
    with api(tmp_path, sample_model, "tag") as client:
        del client.headers["Authorization"]
        read = []

        def body():  # type: ignore[no-untyped-def]
            read.append(True)
            yield b'{"text": "' + "خ".encode() * 100_000 + b'"}'

        assert client.post("/v1/tag", content=body(), headers=JSON).status_code == 401
        assert not read or len(read) == 1  # the client library may start sending; the server reads none of it


def test_requests_without_a_valid_key_are_limited_per_address(sample_model: LoadedModel, tmp_path: Path) -> None:
    with api(tmp_path, sample_model, "tag", unauthenticated_burst=5, unauthenticated_per_minute=6) as client:
        key = client.headers.pop("Authorization")
        statuses = [client.post("/v1/tag", json={"text": "خوب"}).status_code for _ in range(8)]
        assert statuses[:5] == [401] * 5 and statuses[5:] == [429] * 3
        limited = client.post("/v1/tag", json={"text": "خوب"}, headers={"X-API-Key": "bzk_bad_key"})
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        # A caller with a valid key is not held back by the address's failures.
        assert client.post("/v1/tag", json={"text": "خوب"}, headers={"Authorization": key}).status_code == 200


def test_keys_padded_with_spaces_are_accepted_in_either_header(client: TestClient) -> None:
    key = client.headers["Authorization"].removeprefix("Bearer ")
    for headers in ({"Authorization": f"Bearer   {key}  "}, {"X-API-Key": f"  {key} "}, {"Authorization": f"bearer {key}"}):
        response = client.post("/v1/tag", json={"text": "خوب"}, headers={"Authorization": "", **headers})
        assert response.status_code == 200, (headers, response.text)


# -- 8. smaller defects --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["\u064b\u064e\u0650", "ـــــ", "...", "!!! ؟؟", "\u0640\u064b."])
def test_text_that_normalises_to_nothing_is_422(client: TestClient, text: str) -> None:
    response = client.post("/v1/tag", json={"text": text})
    assert response.status_code == 422, response.text
    assert error_code(response) == "empty_text"
    stored = client.post("/v1/feedback", json={"items": [{"client_id": f"empty-{text}", "text": text}]})
    assert stored.status_code == 422 and error_code(stored) == "empty_text"


@pytest.mark.parametrize("rating", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_themes_refuse_ratings_that_are_not_finite(client: TestClient, rating: str) -> None:
    body = '{"items": [{"text": "پیک دیر اومد", "rating": RATING}]}'.replace("RATING", rating)
    response = client.post("/v1/themes", content=body.encode(), headers=JSON)
    assert response.status_code == 422, response.text


def test_a_client_id_with_a_slash_is_read_back(client: TestClient) -> None:
    client_id = "shop/42/review-7"
    assert client.post("/v1/feedback", json={"items": [{"client_id": client_id, "text": "عالی بود"}]}).status_code == 200
    response = client.get(f"/v1/feedback/{client_id}")
    assert response.status_code == 200, response.text
    assert response.json()["client_id"] == client_id


# -- 3. no orphans -----------------------------------------------------------------------------------------------
def test_a_killed_server_leaves_no_process_behind(sample_model: LoadedModel, tmp_path: Path) -> None:
    import signal

    from benchmarks.service_http import Server, alive, descendants, free_port

    server = Server(sample_model.folder, tmp_path, free_port())
    try:
        server.wait_ready()
        children = descendants(server.process.pid)
        assert children, "the model runs in a worker process of the server"
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=30)
        deadline = time.monotonic() + 15
        while alive(children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(children), f"processes {sorted(alive(children))} outlived the server"
    finally:
        server.stop()


# -- 6. CSV formula injection --------------------------------------------------------------------------------------
def test_csv_cells_that_look_like_formulas_are_neutralised(sample_model: LoadedModel, tmp_path: Path) -> None:
    import csv
    import dataclasses

    from bazkhord.data.readers import read_records
    from bazkhord.model.themes.analysis import ThemeAnalyzer, ThemeSettings
    from bazkhord.service.theme_report import write_csv
    from tests.conftest import SAMPLE

    hostile = ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "\tcmd"]
    records = [dataclasses.replace(r, text=f"{hostile[i % 5]} {r.text}", id=f"=id{i}", channel=hostile[i % 5],
                                   product=hostile[(i + 1) % 5], segment="@seg")
               for i, r in enumerate(read_records(SAMPLE).records[:400])]
    report = ThemeAnalyzer(sample_model.tagger, ThemeSettings(min_theme_size=4)).analyse(records)
    write_csv(report, tmp_path)
    neutralised = set()
    for name in ("breakdowns.csv", "quotes.csv", "themes.csv", "subthemes.csv", "trends.csv"):
        with (tmp_path / name).open(encoding="utf-8-sig", newline="") as handle:
            for row in csv.reader(handle):
                for cell in row:
                    if cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
                        float(cell)  # only a number (a negative change, say) may start so
                    if cell.startswith("'"):
                        neutralised.add((name, cell[1:2]))
    assert report.themes and ("breakdowns.csv", "=") in neutralised and ("quotes.csv", "=") in neutralised


# -- 7. headers, request ids, bidi controls --------------------------------------------------------------------------
def test_answers_carry_security_headers(client: TestClient) -> None:
    json_answer = client.get("/v1/reports/summary")
    assert json_answer.headers["x-content-type-options"] == "nosniff"
    assert json_answer.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in json_answer.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in json_answer.headers["content-security-policy"]
    assert json_answer.headers["cache-control"] == "no-store"
    page = client.get("/v1/reports/themes?format=html")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "style-src 'unsafe-inline'" in policy and "script-src" not in policy and "frame-ancestors 'none'" in policy
    assert page.headers["cache-control"] == "no-store"
    health = client.get("/healthz")
    assert health.headers["x-content-type-options"] == "nosniff" and "cache-control" not in health.headers
    refused = client.post("/v1/tag", json={"text": "خوب"}, headers={"Authorization": "Bearer bzk_x_y"})
    assert refused.status_code == 401 and refused.headers["x-frame-options"] == "DENY"


def test_an_unexpected_error_is_500_with_its_request_id_in_the_answer_and_the_log(
        client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    original = services.store.summary

    def broken(*args: object) -> None:
        raise RuntimeError("the store fell over")

    services.store.summary = broken
    try:
        with caplog.at_level("ERROR"):
            response = client.get("/v1/reports/summary", headers={"X-Request-ID": "trace-1234"})
    finally:
        services.store.summary = original
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "trace-1234"
    assert error_code(response) == "internal" and "trace-1234" in response.json()["error"]["message"]
    assert "RuntimeError" not in response.text  # no trace to the caller
    logged = [r for r in caplog.records if r.levelname == "ERROR" and "unexpected error" in r.getMessage()]
    assert logged and getattr(logged[0], "request_id", None) == "trace-1234" and logged[0].exc_info


def test_bidi_overrides_in_comments_do_not_reach_the_html_report(sample_model: LoadedModel) -> None:
    import dataclasses

    from bazkhord.data.readers import read_records
    from bazkhord.model.themes.analysis import ThemeAnalyzer, ThemeSettings
    from bazkhord.service.theme_report import render_html
    from tests.conftest import SAMPLE

    records = [dataclasses.replace(r, text=f"\u202e{r.text}\u202c \u2066!\u2069")
               for r in read_records(SAMPLE).records[:400]]
    report = ThemeAnalyzer(sample_model.tagger, ThemeSettings(min_theme_size=4)).analyse(records)
    assert any("\u202e" in q.text for t in report.themes for q in t.quotes)  # the report itself keeps the text
    page = render_html(report)
    assert not any(chr(c) in page for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)])


# -- 8. more small defects -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("body", [b"[" * 5_000 + b"]" * 5_000, b'{"text": "x", "id": ' + b"9" * 5_000 + b"}",
                                  b'{"items": ' + b"[" * 3_000 + b"]" * 3_000 + b"}"])
def test_json_python_cannot_build_is_422_not_400(client: TestClient, body: bytes) -> None:
    response = client.post("/v1/tag", content=body, headers=JSON)
    assert response.status_code == 422, response.text[:300]
    assert error_code(response) in ("invalid_json", "invalid_request")


def test_models_list_says_why_a_damaged_version_cannot_be_served(sample_model: LoadedModel, tmp_path: Path) -> None:
    import shutil

    from tests.service.helpers import clone_version

    folder = tmp_path / "models" / sample_model.name / sample_model.version
    shutil.copytree(sample_model.folder, folder)
    damaged = clone_version(folder, "damaged")
    weights = next(p for p in sorted(damaged.rglob("*.safetensors")))
    weights.write_bytes(weights.read_bytes()[:-8] + b"corrupt!")
    from bazkhord.model.folder import load_model

    with api(tmp_path, load_model(folder), "admin") as client:
        versions = {v["version"]: v for v in client.get("/v1/models").json()["versions"]}
        assert versions[sample_model.version]["error"] is None
        assert "checksum" in versions["damaged"]["error"]
        unknown = client.post("/v1/models/activate", json={"version": "nope"})
        assert unknown.status_code == 409
        message = unknown.json()["error"]["message"]
        assert "no version 'nope'" in message and "models/models" not in message.replace("\\", "/")


def test_a_dead_worker_is_503_with_retry_after(sample_model: LoadedModel, tmp_path: Path) -> None:
    import os
    import signal

    with api(tmp_path, sample_model, "tag", model_process=True) as client:
        assert client.post("/v1/tag", json={"text": "خوب"}).status_code == 200
        executor = client.app.state.services.batcher._executor  # type: ignore[attr-defined]
        for pid in list(executor._processes):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        response = client.post("/v1/tag", json={"text": "خوب"})
        assert response.status_code == 503 and error_code(response) == "model_unavailable"
        assert int(response.headers["retry-after"]) >= 1
        deadline = time.monotonic() + 60
        while client.post("/v1/tag", json={"text": "خوب"}).status_code != 200:  # a new worker takes over
            assert time.monotonic() < deadline
            time.sleep(0.5)


def test_slow_heads_and_bodies_are_cut_off(sample_model: LoadedModel, tmp_path: Path) -> None:
    import socket

    from benchmarks.service_http import Server, free_port

    port = free_port()
    server = Server(sample_model.folder, tmp_path, port, header_timeout_s="1", body_timeout_s="1")
    try:
        server.wait_ready()
        key = server.key("slow", None)

        def closed_within(payload: list[bytes], seconds: float) -> tuple[bool, bytes]:
            """Send `payload` a part every 0.3 s; whether the server answered or closed within `seconds` + 3."""
            import select

            with socket.create_connection(("127.0.0.1", port), timeout=seconds + 5) as sock:
                started = time.monotonic()
                answer = b""
                for part in payload:
                    try:
                        sock.sendall(part)
                    except OSError:
                        return True, answer  # closed by the server
                    readable, _, _ = select.select([sock], [], [], 0.3)
                    if readable:
                        break
                    if time.monotonic() - started > seconds + 3:
                        return False, answer
                sock.settimeout(seconds + 3)
                in_time = False
                try:
                    while chunk := sock.recv(4096):
                        answer += chunk
                        in_time = time.monotonic() - started < seconds + 3
                except OSError:
                    pass
                else:
                    in_time = time.monotonic() - started < seconds + 3  # closed, answering or not
                return in_time, answer

        # The head trickles in a byte every 0.3 s: the server closes the connection after about 1 s.
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40 + b"\r\n\r\n"
        closed, answer = closed_within([head[i : i + 1] for i in range(len(head))], 1)
        assert closed and b"200 OK" not in answer
        # The head arrives whole, the body trickles: 408.
        body = b'{"text": "' + "خوب".encode() * 20 + b'"}'
        head = (f"POST /v1/tag HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        closed, answer = closed_within([head, *(body[i : i + 2] for i in range(0, len(body), 2))], 1)
        assert closed and b" 408 " in answer.split(b"\r\n")[0], answer[:200]
        # An ordinary client is unaffected.
        import httpx

        assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
    finally:
        server.stop()


def test_made_up_key_prefixes_do_not_grow_the_key_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import create_engine

    from bazkhord.service import auth
    from bazkhord.service.db import Base

    engine = create_engine(f"sqlite:///{tmp_path / 'keys.db'}")
    Base.metadata.create_all(engine)
    keys = auth.KeyStore(engine, cache_seconds=0.0)
    monkeypatch.setattr(auth, "MAX_CACHED_KEYS", 50)
    real = keys.create("real", "tag")
    for n in range(400):
        assert keys.verify(f"bzk_{n:08x}_{'x' * 30}") is None
    assert len(keys._cache) <= 50
    assert keys.verify(real.key) is not None  # the real key still works


def test_the_server_hands_freed_memory_back() -> None:
    import platform

    from bazkhord.service.memory import limit_arenas, release_memory

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("malloc arenas and malloc_trim are glibc's")
    assert limit_arenas(8) is True  # glibc takes the setting (8: as it would choose on this machine)
    blocks = [bytes(1000) + bytes([n % 256]) for n in range(50_000)]  # 50 MiB on the malloc heap, then freed
    del blocks
    assert release_memory() is True  # pages were handed back
