"""The HTTP edge: contract, limits and errors. The same Persian golden pairs go through the model and the
API, so any training/serving skew fails here."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bazkhord.model.folder import LoadedModel
from tests.data.test_normalise import GOLDEN
from tests.service.helpers import api


@pytest.fixture
def client(sample_model: LoadedModel, tmp_path: Path) -> Iterator[TestClient]:
    with api(tmp_path, sample_model, "tag", max_texts_per_request=8, max_chars_per_text=300,
             max_body_bytes=20_000) as test_client:
        yield test_client


def assert_error(response, status: int, code: str, location: list[object] | None = None) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    if location is not None:
        assert location in [d["location"] for d in body["error"]["details"]], body


def test_health_and_ready(client: TestClient, sample_model: LoadedModel) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready"
    assert ready["model"] == {"name": sample_model.name, "version": sample_model.version, "kind": "tfidf-tagger"}


def test_tag_one_comment(client: TestClient, sample_model: LoadedModel) -> None:
    text = "ارسال خیلی دیر انجام شد و جعبه له شده بود ولی کیفیت خود گوشی عالیه"
    body = client.post("/v1/tag", json={"text": text, "id": "c-1"}).json()
    assert body["model"]["version"] == sample_model.version
    (result,) = body["results"]
    assert result["id"] == "c-1"
    assert result["sentiment"] in ("mixed", "negative")
    assert set(result["probabilities"]) == set(sample_model.tagger.labels)
    aspects = {a["aspect"]: a for a in result["aspects"]}
    assert aspects["delivery"]["polarity"] == "negative" and aspects["delivery"]["name_fa"] == "ارسال و تحویل"
    for aspect in aspects.values():
        for span in aspect["evidence"]:
            assert text[span["start"] : span["end"]] == span["text"]


def test_items_keep_order_and_ids(client: TestClient) -> None:
    items = [{"id": f"n{i}", "text": t} for i, t in enumerate(["عالی بود", "افتضاح", "پیک دیر اومد"])]
    results = client.post("/v1/tag", json={"items": items}).json()["results"]
    assert [r["id"] for r in results] == ["n0", "n1", "n2"]
    assert results[0]["sentiment"] == "positive" and results[1]["sentiment"] == "negative"


def test_api_equals_model_on_golden_pairs(client: TestClient, sample_model: LoadedModel) -> None:
    texts = [raw for raw, _ in GOLDEN]
    api = client.post("/v1/tag", json={"items": [{"text": t} for t in texts[:8]]}).json()["results"]
    api += client.post("/v1/tag", json={"items": [{"text": t} for t in texts[8:16]]}).json()["results"]
    api += client.post("/v1/tag", json={"items": [{"text": t} for t in texts[16:]]}).json()["results"]
    direct = sample_model.tagger.tag(texts)
    assert len(api) == len(direct)
    for over_http, in_process in zip(api, direct, strict=True):
        assert over_http["sentiment"] == in_process.sentiment
        assert over_http["probabilities"] == in_process.probabilities
        assert [(a["aspect"], a["polarity"]) for a in over_http["aspects"]] == [
            (a.aspect, a.polarity) for a in in_process.aspects]
    # The pair's two spellings are the same comment to the model.
    for raw, normalised in GOLDEN:
        assert asdict(sample_model.tagger.tag([raw])[0])["probabilities"] == \
            asdict(sample_model.tagger.tag([normalised])[0])["probabilities"]


@pytest.mark.parametrize(("body", "status", "code", "location"), [
    ({"items": [{"text": "x"}] * 9}, 413, "too_many_texts", ["items"]),
    ({"text": "خ" * 301}, 413, "text_too_long", ["text"]),
    ({"items": [{"text": "ok"}, {"text": "خ" * 301}]}, 413, "text_too_long", ["items", 1, "text"]),
    ({"text": "   "}, 422, "empty_text", ["text"]),
    ({"text": "a\u0000b"}, 422, "nul_in_text", ["text"]),
    ({}, 422, "invalid_request", []),
    ({"text": "a", "items": [{"text": "b"}]}, 422, "invalid_request", []),
    ({"text": 5}, 422, "invalid_request", ["text"]),
    ({"items": []}, 422, "invalid_request", ["items"]),
    ({"items": [{"txt": "a"}]}, 422, "invalid_request", ["items", 0, "text"]),
    ({"text": "a", "colour": "red"}, 422, "invalid_request", ["colour"]),
])
def test_bad_requests_get_clear_4xx(client: TestClient, body: object, status: int, code: str,
                                    location: list[object]) -> None:
    assert_error(client.post("/v1/tag", json=body), status, code, location or None)


def test_malformed_json_and_huge_body(client: TestClient) -> None:
    response = client.post("/v1/tag", content=b'{"text": ', headers={"content-type": "application/json"})
    assert_error(response, 422, "invalid_request")
    response = client.post("/v1/tag", content=b'{"text": "\xff"}', headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500 and "error" in response.json()
    assert_error(client.post("/v1/tag", json={"text": "خ" * 30_000}), 413, "body_too_large")
    assert_error(client.get("/v1/nothing"), 404, "http_404")


def test_without_a_model_the_service_says_why(tmp_path: Path) -> None:
    with api(tmp_path, None, model="missing", models_dir=tmp_path) as no_model:
        assert no_model.get("/healthz").status_code == 200
        ready = no_model.get("/readyz")
        assert ready.status_code == 503 and "no model at" in ready.json()["reason"]
        assert_error(no_model.post("/v1/tag", json={"text": "سلام"}), 503, "model_unavailable")


def test_lifespan_loads_the_model_from_settings(sample_model: LoadedModel, tmp_path: Path) -> None:
    with api(tmp_path, None, model=str(sample_model.folder)) as loaded_client:
        assert loaded_client.get("/readyz").json()["model"]["version"] == sample_model.version
