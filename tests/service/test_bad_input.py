"""The bad-input catalogue: each kind of bad (or odd) input gets the status docs/API.md documents for it, never a
5xx; odd but valid comments are tagged. Also the overload answers: a full queue and a timeout give 503."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bazkhord.model.base import Tag
from bazkhord.model.folder import LoadedModel
from tests.conftest import REPO
from tests.service.helpers import api

JSON = {"content-type": "application/json"}
# (name as in docs/API.md, request keyword arguments for POST /v1/tag, status, error code or None)
CATALOGUE: list[tuple[str, dict[str, Any], int, str | None]] = [
    ("empty text", {"json": {"text": ""}}, 422, "empty_text"),
    ("whitespace only", {"json": {"text": " \n\t\u200c "}}, 422, "empty_text"),
    ("1 MB text", {"json": {"text": "a" * 1_000_000}}, 413, "too_large"),
    ("text over max_chars_per_text", {"json": {"text": "خ" * 5_001}}, 413, "text_too_long"),
    ("body over max_body_bytes", {"json": {"text": "خوب " * 600_000}}, 413, "body_too_large"),
    ("invalid UTF-8", {"content": b'{"text": "\xff\xfe"}', "headers": JSON}, 422, "invalid_encoding"),
    ("NUL byte", {"json": {"text": "خوب\u0000بود"}}, 422, "nul_in_text"),
    ("HTML / script", {"json": {"text": "<script>alert('x')</script> خیلی بد بود"}}, 200, None),
    ("emoji only", {"json": {"text": "😡😡😡"}}, 200, None),
    ("Latin / Finglish only", {"json": {"text": "kheili bad bood, pas midam"}}, 200, None),
    ("Arabic", {"json": {"text": "الخدمة سيئة جدا والتوصيل متأخر"}}, 200, None),
    ("digits only", {"json": {"text": "۱۲۳۴۵ 678"}}, 200, None),
    ("10,000 texts in one call", {"json": {"items": [{"text": "خوب"}] * 10_000}}, 413, "too_many_texts"),
    ("10,001 texts in one call", {"json": {"items": [{"text": "خوب"}] * 10_001}}, 413, "too_large"),
    ("malformed JSON", {"content": b'{"text": "a"', "headers": JSON}, 422, "invalid_request"),
    ("JSON that is not an object", {"json": ["خوب"]}, 422, "invalid_request"),
    ("wrong type", {"json": {"text": 5}}, 422, "invalid_request"),
    ("wrong type in items", {"json": {"items": "خوب"}}, 422, "invalid_request"),
    ("unknown field", {"json": {"text": "خوب", "lang": "fa"}}, 422, "invalid_request"),
    ("both text and items", {"json": {"text": "a", "items": [{"text": "b"}]}}, 422, "invalid_request"),
    ("no body", {}, 422, "invalid_request"),
    ("not JSON content type", {"content": b"text=khob", "headers": {"content-type": "text/plain"}}, 422,
     "invalid_request"),
    ("only diacritics, tatweel or dots", {"json": {"text": "ـــ\u064b..."}}, 422, "empty_text"),
    ("deeply nested JSON", {"content": b'{"text": "x", "id": ' + b"[" * 5_000 + b"]" * 5_000 + b"}", "headers": JSON},
     422, "invalid_json"),
    ("5,000-digit number", {"content": b'{"text": "x", "id": ' + b"7" * 5_000 + b"}", "headers": JSON}, 422,
     "invalid_json"),
    ("NUL in an id", {"json": {"text": "خوب", "id": "a\u0000b"}}, 422, "invalid_request"),
    # JSON may spell a lone UTF-16 surrogate ("\\udfff"), which no UTF-8 encoder can write back.
    ("lone surrogate in an id", {"content": b'{"text": "\\u067e\\u06cc\\u06a9", "id": "\\udfff"}', "headers": JSON},
     422, "invalid_request"),
    ("lone surrogate in the text", {"content": b'{"text": "x\\ud800y"}', "headers": JSON}, 422, "invalid_request"),
    ("blank-looking letters only", {"json": {"text": "\u3164 \u2800\u3164"}}, 422, "empty_text"),
]


@pytest.fixture(scope="module")
def client(sample_model: LoadedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with api(tmp_path_factory.mktemp("bad"), sample_model, "tag,ingest", rate_limit_burst=10_000) as test_client:
        yield test_client


@pytest.mark.parametrize(("name", "request_args", "status", "code"), CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_catalogue(client: TestClient, name: str, request_args: dict[str, Any], status: int, code: str | None) -> None:
    response = client.post("/v1/tag", **request_args)
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    if code is None:
        (result,) = body["results"]
        assert result["sentiment"] in result["probabilities"]
    else:
        assert body["error"]["code"] == code and body["error"]["message"]


def test_the_catalogue_is_the_documented_one() -> None:
    documented = {m.group(1).strip(): int(m.group(2)) for m in
                  re.finditer(r"^\| ([^|]+?) \| (\d{3}) \|", (REPO / "docs/API.md").read_text(encoding="utf-8"), re.M)}
    assert {name: status for name, _, status, _ in CATALOGUE}.items() <= documented.items()


def test_a_body_sent_in_chunks_is_cut_at_the_limit(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"text": "'
        for _ in range(300):
            yield "خوب ".encode() * 2_000  # 16 kB a chunk, no Content-Length declared
        yield b'"}'

    response = client.post("/v1/tag", content=chunks(), headers=JSON)
    assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"


def test_feedback_bad_input(client: TestClient) -> None:
    repeated = client.post("/v1/feedback", json={"items": [{"client_id": "a", "text": "خوب"},
                                                           {"client_id": "a", "text": "بد"}]})
    assert repeated.status_code == 422 and repeated.json()["error"]["details"][0]["location"] == ["items", 1, "client_id"]
    no_id = client.post("/v1/feedback", json={"items": [{"text": "خوب"}]})
    assert no_id.status_code == 422 and ["items", 0, "client_id"] in [d["location"] for d in no_id.json()["error"]["details"]]
    bad_nps = client.post("/v1/feedback", json={"items": [{"client_id": "b", "text": "خوب", "nps": 11}]})
    assert bad_nps.status_code == 422
    bad_date = client.post("/v1/feedback", json={"items": [{"client_id": "b", "text": "خوب", "created_at": "دیروز"}]})
    assert bad_date.status_code == 422 and ["items", 0, "created_at"] in [
        d["location"] for d in bad_date.json()["error"]["details"]]
    empty = client.post("/v1/feedback", json={"items": [{"client_id": "b", "text": "  "}]})
    assert empty.status_code == 422 and empty.json()["error"]["code"] == "empty_text"


class SlowTagger:
    """The real tagger, `delay` seconds slower per call: to fill the queue and run past timeouts."""

    def __init__(self, inner: Any, delay: float) -> None:
        self.inner, self.delay = inner, delay

    def tag(self, texts: Sequence[str]) -> list[Tag]:
        time.sleep(self.delay)
        return self.inner.tag(texts)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def slow(model: LoadedModel, delay: float) -> LoadedModel:
    return LoadedModel(SlowTagger(model.tagger, delay), model.folder, model.manifest)  # type: ignore[arg-type]


def concurrently(client: TestClient, count: int, body: dict[str, Any]) -> list[Any]:
    responses: list[Any] = [None] * count

    def send(i: int) -> None:
        responses[i] = client.post("/v1/tag", json=body)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return responses


def test_a_full_queue_answers_503_at_once(sample_model: LoadedModel, tmp_path: Path) -> None:
    with api(tmp_path, slow(sample_model, 0.3), "tag", max_queue_texts=4, max_batch_texts=2) as client:
        client.post("/v1/tag", json={"text": "گرم"})  # the first call pays the warm-up delay
        responses = concurrently(client, 12, {"items": [{"text": "پیک دیر اومد"}, {"text": "خوب بود"}]})
        statuses = sorted(r.status_code for r in responses)
        assert set(statuses) == {200, 503} and statuses.count(200) >= 2, statuses
        refused = next(r for r in responses if r.status_code == 503)
        assert refused.json()["error"]["code"] == "overloaded" and refused.headers["retry-after"] == "1"
        metrics = client.get("/metrics").text
        assert 'reason="queue_full"}' in metrics and 'bazkhord_rejected_total{process=' in metrics


def test_tagging_that_runs_past_the_timeout_answers_503(sample_model: LoadedModel, tmp_path: Path) -> None:
    with api(tmp_path, slow(sample_model, 0.5), "tag", request_timeout_s=0.2) as client:
        response = client.post("/v1/tag", json={"text": "پیک دیر اومد"})
        assert response.status_code == 503 and response.json()["error"]["code"] == "timeout"
        assert "retry-after" in response.headers
