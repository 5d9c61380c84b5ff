"""The workspace's pages over HTTP (no browser): scopes, CSRF, sessions that expire, the CSV export's rules, the
webhook page's secrets, clear 4xx answers, the content policy; and `report --database-url` applying the codebook."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from bazkhord.cli import main
from bazkhord.model.folder import LoadedModel
from bazkhord.service.app import create_app
from bazkhord.service.auth import KeyStore
from bazkhord.service.db import ThemeStatement, WorkspaceSession, utcnow
from bazkhord.service.settings import Settings
from bazkhord.service.store import NewFeedback
from tests.conftest import SAMPLE
from tests.service.test_theme_runs import fill

FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, sample_model: LoadedModel) -> Iterator[tuple[Any, Path, dict[str, str]]]:
    folder = tmp_path_factory.mktemp("workspace")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BAZKHORD_ENCODER", "none")
        app = create_app(Settings(database_url=f"sqlite:///{folder / 'store.db'}", model_process=False, json_logs=False,
                                  theme_run_minutes=0, auth_cache_seconds=0, sync_seconds=0,
                                  models_dir=folder / "models"), model=sample_model)
        with TestClient(app):
            services = app.state.services
            fill(services.store, sample_model)
            formula = "=HYPERLINK(\"http://evil\") پیک دیر اومد و غذا سرد بود، شماره من 09121234567"
            services.store.add([NewFeedback("formula-1", formula, channel="sms")], sample_model.tagger.tag([formula]),
                               sample_model.name, sample_model.version)
            assert services.jobs.request("demand", "test") is not None and services.jobs.wait(300)
            keys = KeyStore(services.engine)
            made = {scopes: keys.create(f"k-{scopes}", scopes).key for scopes in ("report", "report,curate", "admin")}
            yield app, folder, made


def client_for(app: Any, key: str) -> TestClient:
    client = TestClient(app, follow_redirects=False)
    answer = client.post("/app/login", content=f"key={key}&next=/app/runs", headers=FORM)
    assert answer.status_code == 303 and answer.headers["location"] == "/app/runs"
    return client


def csrf_of(client: TestClient, path: str = "/app/runs") -> str:
    page = client.get(path).text
    return page.split('name="csrf" value="')[1].split('"')[0]


def test_pages_answer_with_the_content_policy_and_no_caching(served: tuple[Any, Path, dict[str, str]]) -> None:
    app, _, keys = served
    client = client_for(app, keys["report"])
    answer = client.get("/app/")
    assert answer.status_code == 200 and '<html lang="fa" dir="rtl">' in answer.text
    policy = answer.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "'unsafe-inline'" not in policy and "http" not in policy
    assert answer.headers["cache-control"] == "no-store"
    assert client.get("/app/static/app.css").status_code == 200
    assert TestClient(app, follow_redirects=False).get("/app/themes/1").headers["location"].startswith(
        "/app/login?next=%2Fapp%2Fthemes%2F1")
    assert client.get("/app/themes/999999").status_code == 404
    assert client.get("/app/?from=yesterday").status_code == 422
    assert client.get("/app/comments/no-such-comment").status_code == 404


def test_a_report_key_reads_but_changes_nothing(served: tuple[Any, Path, dict[str, str]]) -> None:
    app, _, keys = served
    client = client_for(app, keys["report"])
    token = csrf_of(client)
    for path, body in (("/app/runs", ""), ("/app/themes/1/rename", "label=x"), ("/app/themes/1/hide", ""),
                       ("/app/codebook/1/undo", ""), ("/app/webhooks", "name=a&url=http://x")):
        answer = client.post(path, content=f"csrf={token}&{body}", headers=FORM)
        assert answer.status_code == 403, path
    assert client.get("/app/webhooks").status_code == 403
    theme = min(app.state.services.theme_store.names())
    page = client.get(f"/app/themes/{theme}").text
    assert 'class="card curate"' not in page and "/move" not in page  # no edit forms shown


def test_writes_need_the_session_csrf_token(served: tuple[Any, Path, dict[str, str]]) -> None:
    app, _, keys = served
    curator = client_for(app, keys["report,curate"])
    other = client_for(app, keys["report,curate"])
    names = app.state.services.theme_store.names()
    theme = min(names)
    for token in ("", "forged", csrf_of(other)):  # none, a made-up one, another session's
        answer = curator.post(f"/app/themes/{theme}/rename", content=f"csrf={token}&label=x", headers=FORM)
        assert answer.status_code == 403
    answer = curator.post(f"/app/themes/{theme}/rename", content=f"csrf={csrf_of(curator)}&label=%20", headers=FORM)
    assert answer.status_code == 422 and "1 to 120" in answer.text
    assert app.state.services.theme_store.names()[theme].label == names[theme].label


def test_sessions_expire(served: tuple[Any, Path, dict[str, str]]) -> None:
    app, _, keys = served
    client = client_for(app, keys["report"])
    with Session(app.state.services.engine) as session, session.begin():
        session.execute(update(WorkspaceSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert client.get("/app/runs").status_code == 303


def test_csv_export_masks_personal_data_and_neutralises_formulas(served: tuple[Any, Path, dict[str, str]]) -> None:
    app, _, keys = served
    services = app.state.services
    with Session(services.engine) as session:  # put the hostile statement in the first theme, as a move would
        theme = min(services.theme_store.names())
        session.execute(update(ThemeStatement).where(ThemeStatement.text.contains("HYPERLINK")).values(theme_id=theme))
        session.commit()
    client = client_for(app, keys["report"])
    answer = client.get(f"/app/themes/{theme}/statements.csv?q=HYPERLINK")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(answer.text.lstrip("\ufeff"))))
    assert rows[0][:3] == ["comment_id", "created_at", "created_at_jalali"] and len(rows) == 2
    statement = rows[1][rows[0].index("statement")]
    assert statement.startswith("'=") and "09121234567" not in answer.text and "[PHONE]" in statement
    assert rows[1][2][0] in "۰۱۲۳۴۵۶۷۸۹"  # a Jalali date in Persian digits


def test_webhooks_page_never_shows_the_secret(served: tuple[Any, Path, dict[str, str]]) -> None:
    app, _, keys = served
    admin = client_for(app, keys["admin"])
    url = "https://hooks.slack.example/services/T0/B0/very-secret-token"
    answer = admin.post("/app/webhooks", content=f"csrf={csrf_of(admin)}&name=ops&url={url}", headers=FORM)
    assert answer.status_code == 303
    page = admin.get("/app/webhooks").text
    assert "hooks.slack.example" in page and "very-secret-token" not in page
    bad = admin.post("/app/webhooks", content=f"csrf={csrf_of(admin)}&name=x&url=ftp://a", headers=FORM)
    assert bad.status_code == 422 and "http" in bad.text


def test_report_applies_the_codebook_of_a_store(served: tuple[Any, Path, dict[str, str]], sample_model: LoadedModel,
                                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app, folder, _ = served
    monkeypatch.setenv("BAZKHORD_ENCODER", "none")
    store = app.state.services.theme_store
    theme = next(n for n in store.names().values() if n.kind == "aspect" and not n.hidden)
    store.edit("rename", "test", theme=theme.id, label="نام کدبوک")
    code = main(["report", "--input", str(SAMPLE), "--out", str(tmp_path / "r"), "--model", str(sample_model.folder),
                 "--database-url", f"sqlite:///{folder / 'store.db'}", "--calendar", "jalali", "-q"])
    assert code == 0
    report = json.loads((tmp_path / "r" / "report.json").read_text(encoding="utf-8"))
    assert report["settings"]["calendar"] == "jalali"
    assert next(t for t in report["themes"] if t["codebook_id"] == theme.id)["label"] == "نام کدبوک"
    trends = (tmp_path / "r" / "trends.csv").read_text(encoding="utf-8")
    assert "period_label" in trends.splitlines()[0] and "۱۴۰۵" in trends


def test_a_form_whose_browser_left_is_refused_not_an_error() -> None:
    import asyncio

    from starlette.requests import Request

    from bazkhord.service.routes.workspace import Refused, form_of

    async def gone() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    request = Request({"type": "http", "method": "POST", "path": "/app/x", "headers": []}, gone)
    user = type("U", (), {"caller": type("C", (), {"allows": lambda self, scope: True, "name": "a"})()})()
    with pytest.raises(Refused) as refused:
        asyncio.run(form_of(request, user, "curate"))  # type: ignore[arg-type]
    assert refused.value.status == 400
