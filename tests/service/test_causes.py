"""Causes of a domain without a taxonomy through the service: the API's codebook field and `discover`, the
summary's out-of-domain check, and the workspace in Debian's Chromium (the overview's warnings; «علت‌ها»: edit the
draft by keyboard, accept it, and see the next run assign comments to the edited causes; 420 px wide; no request to
another host)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bazkhord.model.folder import LoadedModel
from bazkhord.model.themes.discovery import DISCOVERED
from bazkhord.service.app import create_app
from bazkhord.service.auth import KeyStore
from bazkhord.service.store import NewFeedback
from tests.model.test_theme_discovery import hotel_comments
from tests.service.helpers import live_server
from tests.service.test_workspace_browser import CHROMIUM, browser, settings_for, sign_in, tfidf_themes  # noqa: F401


def fill_hotels(app: Any, model: LoadedModel, n: int = 120) -> None:
    records, _ = hotel_comments(n)
    start = datetime(2026, 9, 1, tzinfo=UTC)
    items = [NewFeedback(client_id=str(r.id), text=r.text, created_at=start + timedelta(hours=7 * i))
             for i, r in enumerate(records)]
    app.state.services.store.add(items, model.tagger.tag([i.text for i in items]), model.name, model.version)


def test_the_api_discovers_takes_an_edited_codebook_and_warns(tmp_path: Path, sample_model: LoadedModel) -> None:
    app = create_app(settings_for(tmp_path), model=sample_model)
    records, _ = hotel_comments(80)
    items = [{"id": str(r.id), "text": r.text} for r in records]
    with TestClient(app) as client:
        key = KeyStore(app.state.services.engine).create("caller", "tag,report,ingest").key
        headers = {"Authorization": f"Bearer {key}"}
        found = client.post("/v1/themes", json={"items": items, "min_theme_size": 5}, headers=headers)
        assert found.status_code == 200, found.text
        report = found.json()
        assert report["settings"]["taxonomy"] == DISCOVERED and report["taxonomy_fit"]["chosen"] is None
        draft = report["codebook_draft"]
        assert draft["domain"] == DISCOVERED and draft["aspect"]
        assert report["domain_shift"]["out_of_domain"] is True and report["domain_shift"]["reasons"]
        # The draft, edited (one cause renamed, the rest removed), sent back as the codebook.
        internet = next(a for a in draft["aspect"] if "اینترنت" in a["seeds"])
        edited = {**draft, "aspect": [{**internet, "name_fa": "اینترنت کند"}]}
        second = client.post("/v1/themes", json={"items": items, "min_theme_size": 5, "codebook": edited},
                             headers=headers).json()
        assert [t["label"] for t in second["themes"] if t["kind"] == "aspect"] == ["اینترنت کند"]
        assert second["codebook_draft"] is None
        forced = client.post("/v1/themes", json={"items": items, "min_theme_size": 5, "taxonomy": "discover"},
                             headers=headers).json()
        assert forced["settings"]["taxonomy"] == DISCOVERED and forced["taxonomy_fit"] is None
        bad = client.post("/v1/themes", json={"items": items, "codebook": {"aspect": [{"key": "x"}]}},
                          headers=headers)
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_codebook"
        assert "lacks name_fa, name_en" in bad.text and bad.json()["error"]["details"][0]["location"] == ["body", "codebook"]

        for start in range(0, len(records), 10):  # a request's size is limited: ten at a time
            client.post("/v1/feedback", json={"items": [{"client_id": str(r.id), "text": r.text}
                                                        for r in records[start:start + 10]]},
                        headers=headers).raise_for_status()
        summary = client.get("/v1/reports/summary", headers=headers).json()
        shift = summary["domain_shift"]
        assert shift["out_of_domain"] is True and shift["comments"] == len(records)
        assert shift["unknown_word_share"] > shift["training_unknown_word_share"]


pytestmark_browser = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


@pytestmark_browser
def test_accepting_edited_causes_in_the_workspace(tmp_path: Path, sample_model: LoadedModel, browser: Any) -> None:  # noqa: F811
    app = create_app(settings_for(tmp_path), model=sample_model)
    requests: list[str] = []
    with live_server(app) as base:
        services = app.state.services
        fill_hotels(app, sample_model)
        assert services.jobs.request("demand", "test") is not None and services.jobs.wait(300)
        key = KeyStore(services.engine).create("analyst", "report,curate").key
        context = browser.new_context(viewport={"width": 1300, "height": 1000}, locale="fa-IR")
        context.on("request", lambda request: requests.append(request.url))
        page = context.new_page()
        sign_in(page, base, key)
        # The overview says the comments are out of the model's domain and that causes were discovered.
        assert "بیرون از دامنه مدل" in page.content()
        page.click("main a[href='/app/causes']")
        assert page.locator("h1").inner_text() == "علت‌های کشف‌شده"
        names = page.locator("input[name^=name_]")
        count = names.count()
        assert count >= 2
        internet = next(i for i in range(count) if "اینترنت" in page.locator(f"#seeds_{i}").input_value())
        # By keyboard: focus the name, replace it, untick every other cause with the space bar, submit with Enter.
        page.focus(f"#name_{internet}")
        page.keyboard.press("Control+A")
        page.keyboard.type("اینترنت کند")
        for i in range(count):
            if i != internet:
                page.focus(f"#keep_{i}")
                page.keyboard.press("Space")
        page.focus(f"#name_{internet}")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert "saved=1" in page.url and page.locator(".notice").count() == 1
        accepted, row = services.theme_store.domain_codebook()
        assert accepted is not None and [a.name_fa for a in accepted.aspects] == ["اینترنت کند"]
        assert row is not None and row.accepted_by == "analyst"

        assert services.jobs.request("demand", "test") is not None and services.jobs.wait(300)
        run = services.theme_store.run_report(services.theme_store.latest_run())
        assert run is not None and [t["label"] for t in run["themes"] if t["kind"] == "aspect"] == ["اینترنت کند"]

        page.set_viewport_size({"width": 420, "height": 900})
        page.goto(f"{base}/app/causes")
        assert page.evaluate("document.documentElement.scrollWidth") <= 420
        page.screenshot(path=str(tmp_path / "causes-420.png"), full_page=True)
        with page.expect_navigation():
            page.click("form[action='/app/causes/reset'] button")
        assert services.theme_store.domain_codebook()[0] is None
        assert all(url.startswith(base) for url in requests)
        context.close()


def test_accepting_causes_refuses_bad_forms_clearly(tmp_path: Path, sample_model: LoadedModel) -> None:
    from tests.service.test_workspace_pages import FORM, client_for, csrf_of

    app = create_app(settings_for(tmp_path), model=sample_model)
    with TestClient(app):
        keys = KeyStore(app.state.services.engine)
        reader = client_for(app, keys.create("reader", "report").key)
        token = csrf_of(reader, "/app/causes")
        assert reader.post("/app/causes", content=f"csrf={token}&count=1&keep_0=on&name_0=x&seeds_0=y",
                           headers=FORM).status_code == 403  # accepting needs curate
        analyst = client_for(app, keys.create("analyst", "report,curate").key)
        token = csrf_of(analyst, "/app/causes")
        for body, message in [("count=two", "count"), ("count=1", "دست‌کم یک علت"),
                              ("count=1&keep_0=on&name_0=&seeds_0=y", "نام و دست‌کم یک عبارت"),
                              ("count=2&keep_0=on&name_0=a&seeds_0=y&key_0=k&keep_1=on&name_1=b&seeds_1=z&key_1=k",
                               "appear more than once")]:
            answer = analyst.post("/app/causes", content=f"csrf={token}&{body}", headers=FORM)
            assert answer.status_code == 422 and message in answer.text, (body, answer.text[:300])
        assert app.state.services.theme_store.domain_codebook()[0] is None
        done = analyst.post("/app/causes", content=f"csrf={token}&count=1&keep_0=on&name_0=صبحانه&seeds_0=صبحانه،+تنوع",
                            headers=FORM)
        assert done.status_code == 303
        accepted = app.state.services.theme_store.domain_codebook()[0]
        assert accepted is not None and accepted.aspects[0].seeds == ("صبحانه", "تنوع")
