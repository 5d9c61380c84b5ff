"""Second hardening round: what a careless client or an attacker sends, answered 4xx before any work."""

from __future__ import annotations

from collections.abc import Iterator

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
