"""API keys: hashed at rest, scopes, 401/403, revocation, per-key rate limits, and the `bazkhord keys` CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bazkhord.cli import main
from bazkhord.data.errors import InputError
from bazkhord.model.folder import LoadedModel
from bazkhord.service.auth import KeyStore, RateLimiter, hash_key
from bazkhord.service.db import ApiKey, make_engine, upgrade
from tests.service.helpers import api

TAG = {"text": "پیک دیر اومد"}


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    engine = make_engine(f"sqlite:///{tmp_path}/keys.db")
    upgrade(engine)
    return KeyStore(engine, cache_seconds=0)


def test_only_the_hash_is_stored_and_verification_needs_the_whole_key(keys: KeyStore) -> None:
    new = keys.create("crm", "tag,ingest")
    with Session(keys.engine) as session:
        row = session.scalars(select(ApiKey)).one()
    assert new.key not in (row.key_sha256, row.prefix, row.name) and row.key_sha256 == hash_key(new.key)
    assert keys.verify(new.key) == new.caller and new.caller.scopes == {"tag", "ingest"}
    assert keys.verify(new.key[:-1] + ("x" if new.key[-1] != "x" else "y")) is None
    assert keys.verify("bzk_nothing_here") is None and keys.verify("") is None and keys.verify("Bearer") is None
    keys.revoke("crm")
    assert keys.verify(new.key) is None
    assert keys.list()[0]["revoked_at"] is not None


@pytest.mark.parametrize(("name", "scopes", "message"), [
    ("a", "tag,delete", "unknown"), ("a", "", "at least one scope"), ("", "tag", "name"), ("x" * 101, "tag", "name")])
def test_bad_keys_are_refused_clearly(keys: KeyStore, name: str, scopes: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        keys.create(name, scopes)


def test_duplicate_names_and_unknown_revocations(keys: KeyStore) -> None:
    keys.create("crm", "tag")
    with pytest.raises(InputError, match="exists already"):
        keys.create("crm", "report")
    with pytest.raises(InputError, match="no key named"):
        keys.revoke("nobody")


@pytest.mark.parametrize(("scopes", "route", "status"), [
    ("tag", ("POST", "/v1/tag", TAG), 200),
    ("ingest", ("POST", "/v1/tag", TAG), 403),
    ("report", ("POST", "/v1/feedback", {"items": [{"client_id": "a", "text": "خوب"}]}), 403),
    ("ingest", ("POST", "/v1/feedback", {"items": [{"client_id": "a", "text": "خوب"}]}), 200),
    ("tag", ("GET", "/v1/reports/summary", None), 403),
    ("report", ("GET", "/v1/reports/summary", None), 200),
    ("report", ("GET", "/v1/models", None), 403),
    ("tag,ingest,report", ("POST", "/v1/models/rollback", None), 403),
    ("admin", ("GET", "/v1/models", None), 200),
    ("admin", ("POST", "/v1/tag", TAG), 200),  # admin may do everything
])
def test_scopes(sample_model: LoadedModel, tmp_path: Path, scopes: str, route: tuple[str, str, object],
                status: int) -> None:
    method, path, body = route
    with api(tmp_path, sample_model, scopes) as client:
        response = client.request(method, path, json=body)
        assert response.status_code == status, response.text
        if status == 403:
            assert response.json()["error"]["code"] == "missing_scope"
        del client.headers["Authorization"]
        anonymous = client.request(method, path, json=body)
        assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
        assert anonymous.json()["error"]["code"] == "unauthenticated"


def test_wrong_and_revoked_keys_get_401_and_open_routes_stay_open(sample_model: LoadedModel, tmp_path: Path) -> None:
    with api(tmp_path, sample_model, "tag") as client:
        key = client.headers["Authorization"].removeprefix("Bearer ")
        assert client.post("/v1/tag", json=TAG, headers={"Authorization": "Bearer bzk_0000_wrong"}).status_code == 401
        del client.headers["Authorization"]
        assert client.post("/v1/tag", json=TAG, headers={"X-API-Key": key}).status_code == 200
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
            assert client.get(path).status_code == 200, path
        KeyStore(client.app.state.services.engine).revoke("test-0")  # type: ignore[attr-defined]
        revoked = client.post("/v1/tag", json=TAG, headers={"X-API-Key": key})
        assert revoked.status_code == 401 and revoked.json()["error"]["code"] == "invalid_key"


def test_rate_limit_answers_429_with_retry_after(sample_model: LoadedModel, tmp_path: Path) -> None:
    with api(tmp_path, sample_model, "tag", rate_limit_per_minute=60, rate_limit_burst=3) as client:
        statuses = [client.post("/v1/tag", json=TAG).status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        limited = client.post("/v1/tag", json=TAG)
        assert limited.json()["error"]["code"] == "rate_limited" and 1 <= int(limited.headers["retry-after"]) <= 2
        # Another key has its own bucket.
        other = KeyStore(client.app.state.services.engine).create("other", "tag").key  # type: ignore[attr-defined]
        assert client.post("/v1/tag", json=TAG, headers={"Authorization": f"Bearer {other}"}).status_code == 200


def test_token_bucket_refills_at_the_rate() -> None:
    limiter = RateLimiter(per_minute=600, burst=2)  # 10 a second
    assert limiter.acquire(1) == 0 and limiter.acquire(1) == 0
    wait = limiter.acquire(1)
    assert 0 < wait <= 0.1
    assert limiter.acquire(2, per_minute=60) == 0 and limiter.acquire(2, per_minute=60) == 0
    assert 0.9 < limiter.acquire(2, per_minute=60) <= 1.0  # a key's own rate overrides the default


def test_keys_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/cli.db"
    assert main(["keys", "create", "--name", "crm", "--scopes", "tag,ingest", "--database-url", url]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("bzk_")
    assert main(["keys", "list", "--database-url", url]) == 0
    listed = capsys.readouterr().out
    assert "crm" in listed and "active" in listed and key not in listed
    assert main(["keys", "create", "--name", "x", "--scopes", "root", "--database-url", url]) == 2
    assert "unknown" in capsys.readouterr().err
    assert main(["keys", "revoke", "crm", "--database-url", url]) == 0
    assert main(["keys", "list", "--database-url", url]) == 0
    assert "revoked" in capsys.readouterr().out
    engine = make_engine(url)
    assert KeyStore(engine).verify(key) is None
