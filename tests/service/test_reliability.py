"""Second hardening round: what a careless client or an attacker sends, answered 4xx before any work."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bazkhord.model.folder import LoadedModel
from tests.service.helpers import api

JSON = {"content-type": "application/json"}
SURROGATE = "\\udfff"  # as JSON spells it: a lone UTF-16 surrogate, no character


@pytest.fixture(scope="module")
def client(sample_model: LoadedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with api(tmp_path_factory.mktemp("reliability"), sample_model, "tag,ingest,report",
             rate_limit_burst=10_000) as test_client:
        yield test_client


@pytest.mark.parametrize(("route", "body", "location"), [
    ("/v1/tag", '{"text": "پیک دیر اومد", "id": "%s"}', ["id"]),
    ("/v1/tag", '{"items": [{"text": "خوب", "id": "x%s"}]}', ["items", 0, "id"]),
    ("/v1/tag", '{"items": [{"text": "خوب%s"}]}', ["items", 0, "text"]),
    ("/v1/feedback", '{"items": [{"client_id": "c-1", "text": "پیک دیر اومد", "channel": "%s"}]}',
     ["items", 0, "channel"]),
    ("/v1/feedback", '{"items": [{"client_id": "c-2", "text": "پیک دیر اومد", "product": "%s"}]}',
     ["items", 0, "product"]),
    ("/v1/feedback", '{"items": [{"client_id": "c-3", "text": "پیک دیر اومد", "segment": "%s"}]}',
     ["items", 0, "segment"]),
    ("/v1/feedback", '{"items": [{"client_id": "%s", "text": "پیک دیر اومد"}]}', ["items", 0, "client_id"]),
    ("/v1/themes", '{"items": [{"text": "پیک دیر اومد", "channel": "%s"}]}', ["items", 0, "channel"]),
    ("/v1/themes", '{"items": [{"text": "پیک دیر اومد", "fields": {"shop": "%s"}}]}', ["items", 0, "fields", "shop"]),
])
def test_a_lone_surrogate_in_any_string_field_is_422_naming_it(client: TestClient, route: str, body: str,
                                                              location: list[str | int]) -> None:
    response = client.post(route, content=(body % SURROGATE).encode("utf-8"), headers=JSON)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert any(detail["location"][: len(location)] == location and ("surrogate" in detail["message"] or
               "unicode" in detail["message"]) for detail in error["details"]), error
    if route == "/v1/feedback":  # nothing was stored
        assert client.get("/v1/reports/summary").json()["comments"] == 0


@pytest.mark.parametrize("text", ["\u3164", "\u2800", "\u3164\u200c \u2800", "\uffa0\u115f\u1160"])
def test_blank_looking_letters_are_no_comment(client: TestClient, text: str) -> None:
    response = client.post("/v1/feedback", json={"items": [{"client_id": "blank", "text": text}]})
    assert response.status_code == 422 and response.json()["error"]["code"] == "empty_text"
    assert client.post("/v1/tag", json={"text": f"{text}پیک دیر اومد"}).status_code == 200  # beside words: fine


def raw_request(port: int, head: bytes, body_chunks: int = 0, chunk: bytes = b"") -> tuple[bytes, int]:
    """Send a request head (then `body_chunks` more pieces of it), return the answer and how many bytes went out
    before the server answered or closed."""
    import socket

    sent = 0
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        try:
            sock.sendall(head)
            sent += len(head)
            for _ in range(body_chunks):
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass  # closed by the server
        try:
            while part := sock.recv(65536):
                answer += part
        except OSError:
            pass
    return answer, sent


@pytest.mark.parametrize("processes", [1, 2])
def test_request_heads_are_bounded_in_every_serving_mode(sample_model: LoadedModel, tmp_path_factory: pytest.TempPathFactory,
                                                         processes: int) -> None:
    import json
    import time

    import httpx

    from benchmarks.service_http import Server, free_port

    tmp_path = tmp_path_factory.mktemp(f"heads-{processes}")
    port = free_port()
    server = Server(sample_model.folder, tmp_path, port, workers=processes)
    try:
        server.wait_ready()
        # One header of 1 MB on an open route: refused before the app runs.
        answer, _ = raw_request(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "headers_too_large"
        # A 50 MB header streamed in pieces: cut off long before its end.
        answer, sent = raw_request(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ", 800, b"a" * 65_536)
        assert answer.startswith(b"HTTP/1.1 431 ") and sent < 10_000_000, (answer[:100], sent)
        # 150 small header fields.
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(150))
        answer, _ = raw_request(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
        # Within the limits, and after the refusals, the server answers as before.
        answer, _ = raw_request(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Ok: "
                                + b"a" * 20_000 + b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
        assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
        # Every process writes its access lines (with --workers they once wrote none).
        deadline = time.monotonic() + 10
        while b"bazkhord.access" not in Path(server.log.name).read_bytes() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert b"bazkhord.access" in Path(server.log.name).read_bytes()
    finally:
        server.stop()


@pytest.mark.parametrize("trusted", ["", "127.0.0.1"])
def test_forwarded_addresses_count_only_from_trusted_proxies(sample_model: LoadedModel,
                                                             tmp_path_factory: pytest.TempPathFactory,
                                                             trusted: str) -> None:
    """Key-less requests are limited per client address; a client that names its own address in X-Forwarded-For
    gets a fresh bucket each time unless only configured proxies are believed."""
    import httpx

    from benchmarks.service_http import Server, free_port

    tmp_path = tmp_path_factory.mktemp("proxies")
    server = Server(sample_model.folder, tmp_path, free_port(), unauthenticated_burst="5",
                    unauthenticated_per_minute="5", trusted_proxies=trusted)
    try:
        server.wait_ready()
        statuses = [httpx.post(f"{server.url}/v1/tag", json={"text": "خوب"}, timeout=10,
                               headers={"X-Forwarded-For": f"203.0.113.{n}"}).status_code for n in range(12)]
        if trusted:  # a proxy on loopback, configured: each forwarded client has its own bucket
            assert set(statuses) == {401}
        else:
            assert statuses.count(429) >= 6 and statuses[:5] == [401] * 5
    finally:
        server.stop()


@pytest.mark.parametrize(("cell", "neutralised"), [
    ("=1+1", True), ("+98 912", True), ("-2+3", True), ("@SUM(A1)", True), ("\t=1", True),
    ("\u200c=HYPERLINK(\"http://x\")", True),  # after a ZWNJ
    ("\u202e=1+1", True),  # after a right-to-left override
    (" =1+1", True), ("\u00a0=1", True), ("\ufeff+1", True),  # after a space, a no-break space, a BOM
    ("\uff1dcmd|' /C calc'!A0", True), ("\ufe62 1", True), ("\uff20A1", True),  # full-width and small signs
    ("پیک دیر اومد", False), ("غذا سرد بود = بد", False), ("۱۲۳", False), ("a-b", False), ("", False),
])
def test_csv_cells_that_look_like_formulas(cell: str, neutralised: bool) -> None:
    from bazkhord.service.theme_report import spreadsheet_safe

    assert spreadsheet_safe(cell) == ("'" + cell if neutralised else cell)
    assert spreadsheet_safe(-2.5) == -2.5  # numbers stay numbers


def test_a_duplicate_of_another_keys_comment_tells_nothing_of_its_metadata(sample_model: LoadedModel,
                                                                           tmp_path_factory: pytest.TempPathFactory
                                                                           ) -> None:
    from bazkhord.service.auth import KeyStore

    item = {"client_id": "order-77", "text": "پیک دیر اومد", "channel": "sms", "product": "phone-x",
            "segment": "vip", "rating": 1, "nps": 2, "created_at": "2026-11-20T10:15:00+03:30"}
    with api(tmp_path_factory.mktemp("tenants"), sample_model, "ingest") as owner:
        first = owner.post("/v1/feedback", json={"items": [item]}).json()["results"][0]
        assert first["status"] == "created" and first["channel"] == "sms"
        other = KeyStore(owner.app.state.services.engine).create("other", "ingest").key  # type: ignore[attr-defined]
        guessed = owner.post("/v1/feedback", headers={"Authorization": f"Bearer {other}"},
                             json={"items": [{"client_id": "order-77", "text": "پیک دیر اومد"}]})
        answer = guessed.json()["results"][0]
        assert guessed.status_code == 200 and answer["status"] == "duplicate"
        assert [answer[k] for k in ("channel", "product", "segment", "rating", "nps", "created_at", "received_at")] \
            == [None] * 7
        again = owner.post("/v1/feedback", json={"items": [item]}).json()["results"][0]  # the owner's own retry
        assert again["status"] == "duplicate" and again["channel"] == "sms" and again["created_at"]


@pytest.mark.parametrize(("method", "route", "kwargs", "status"), [
    ("post", "/v1/tag", {"json": {"text": "خوب", "id": "x" * 201}}, 422),
    ("post", "/v1/feedback", {"json": {"items": [{"client_id": "c", "text": "خوب", "channel": "x" * 101}]}}, 422),
    ("post", "/v1/themes", {"json": {"items": [{"text": "خوب", "fields": {"shop": "x" * 201}}]}}, 422),
    ("get", "/v1/reports/summary", {"params": {"channel": "x" * 101}}, 422),
    ("get", "/v1/reports/summary", {"params": {"model_version": "x" * 101}}, 422),
    ("post", "/v1/tag", {"json": {"text": "x" * 100_001}}, 413),  # too much to take: a text, a list
    ("post", "/v1/tag", {"json": {"items": [{"text": "a"}] * 10_001}}, 413),
])
def test_an_over_long_value_is_422_and_too_much_is_413(client: TestClient, method: str, route: str,
                                                        kwargs: dict[str, object], status: int) -> None:
    response = getattr(client, method)(route, **kwargs)
    assert response.status_code == status, response.text[:300]
    assert response.json()["error"]["code"] == ("invalid_request" if status == 422 else "too_large")


def test_personal_data_in_metadata_is_masked_and_in_ids_refused(client: TestClient) -> None:
    item = {"client_id": "ticket-5521", "text": "پیک دیر اومد، شمارم 0912.123.4567 هست", "channel": "0912 123 45 67",
            "product": "6037-9975-1234-5678", "segment": "ali.rezaei@gmail.com"}
    stored = client.post("/v1/feedback", json={"items": [item]}).json()["results"][0]
    read = client.get("/v1/feedback/ticket-5521").json()
    for answer in (stored, read):
        assert (answer["channel"], answer["product"], answer["segment"]) == ("[PHONE]", "[CARD]", "[EMAIL]")
        assert answer["text"] == "پیک دیر اومد، شمارم [PHONE] هست"
    refused = client.post("/v1/feedback", json={"items": [{"client_id": "۰۹۱۲ ۱۲۳ ۴۵۶۷", "text": "خوب"}]})
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "personal_data_in_id"
    assert refused.json()["error"]["details"][0]["location"] == ["items", 0, "client_id"]


def test_theme_reports_mask_ids_and_metadata(client: TestClient) -> None:
    items = [{"id": f"0912 123 45 {10 + n}", "text": f"پیک خیلی دیر اومد و غذا سرد بود {n}", "channel": "0935-111-2233",
              "fields": {"caller": "6037 9975 1234 5678"}} for n in range(12)]
    report = client.post("/v1/themes", json={"items": items, "min_theme_size": 2}).text
    assert "0912" not in report and "0935" not in report and "6037" not in report


def test_a_workers_process_is_set_up_as_serve_sets_up_itself(sample_model: LoadedModel, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A process `serve --workers` spawns starts with nothing of the supervisor's set-up: it limits its malloc
    arenas (else theme reports grow it steadily), asks to end with the supervisor and configures its logging."""
    import bazkhord.service.app as app_module
    from bazkhord.service.server import SUPERVISOR_VARIABLE

    calls: list[str] = []
    monkeypatch.setenv(SUPERVISOR_VARIABLE, "1")
    monkeypatch.setattr(app_module, "limit_arenas", lambda: calls.append("arenas"))
    monkeypatch.setattr(app_module, "die_with_supervisor", lambda: calls.append("supervisor"))
    monkeypatch.setattr(app_module, "configure_logging", lambda settings: calls.append("logging"))
    with api(tmp_path, sample_model, "tag"):
        pass
    assert calls == ["arenas", "supervisor", "logging"]
    monkeypatch.delenv(SUPERVISOR_VARIABLE)
    calls.clear()
    with api(tmp_path / "single", sample_model, "tag"):
        pass
    assert calls == []  # one process: `serve` did all this itself


def test_freezing_the_heap_keeps_loaded_objects_out_of_collections_but_not_forever() -> None:
    import gc
    import weakref

    from bazkhord.service.memory import freeze_heap

    class Model:  # a cycle, as a swapped-out model's objects may hold
        def __init__(self) -> None:
            self.me = self

    old = Model()
    gone = weakref.ref(old)
    try:
        assert freeze_heap() > 0 and gc.get_freeze_count() > 0
        del old
        gc.collect()
        assert gone() is not None  # frozen: no collection looks at it
        freeze_heap()  # the next freeze (a new version loaded) looks again first
        assert gone() is None
    finally:
        gc.unfreeze()
