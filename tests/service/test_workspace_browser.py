"""The analysts' workspace driven in a real browser: Debian's Chromium through Playwright (its own executable, no
downloaded browser). Sign in, filter, open a theme, page and search its statements, open a comment, rename and merge
as a `curate` key, see it survive a restart and reach GET /v1/reports/themes; a `report` key changes nothing; a write
without the CSRF token is refused; hostile comment text renders inert; nothing is fetched from another host."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from bazkhord.model.folder import LoadedModel
from bazkhord.service.app import create_app
from bazkhord.service.auth import KeyStore
from bazkhord.service.settings import Settings
from bazkhord.service.store import NewFeedback
from tests.service.helpers import live_server
from tests.service.test_theme_runs import fill

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (`make test` installs Debian's)")
HOSTILE = ("<script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\">"
           "\u202eسفارش دیر رسید و غذا سرد بود\u202c " + "خیلی بد بود " * 420)


@pytest.fixture(autouse=True)
def tfidf_themes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAZKHORD_ENCODER", "none")


def settings_for(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'store.db'}", model_process=False, json_logs=False,
                    theme_run_minutes=0, auth_cache_seconds=0, models_dir=tmp_path / "models", sync_seconds=0)


@pytest.fixture
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield launched
        finally:
            launched.close()


def sign_in(page: Any, base: str, key: str) -> None:
    page.goto(f"{base}/app/")
    assert "/app/login" in page.url
    page.fill("#key", key)
    page.keyboard.press("Enter")  # by keyboard
    page.wait_for_url(f"{base}/app/")


def test_the_workspace_in_chromium(tmp_path: Path, sample_model: LoadedModel, browser: Any) -> None:
    settings = settings_for(tmp_path)
    app = create_app(settings, model=sample_model)
    requests: list[str] = []
    with live_server(app) as base:
        services = app.state.services
        fill(services.store, sample_model)
        hostile = NewFeedback("hostile-1", HOSTILE, channel="app_review", created_at=datetime(2026, 9, 20, tzinfo=UTC))
        services.store.add([hostile], sample_model.tagger.tag([HOSTILE]), sample_model.name, sample_model.version)
        keys = KeyStore(services.engine)
        curator_key = keys.create("analyst", "report,curate").key
        reader_key = keys.create("viewer", "report").key
        assert services.jobs.request("demand", "test") is not None and services.jobs.wait(300)

        context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="fa-IR")
        context.on("request", lambda request: requests.append(request.url))
        page = context.new_page()
        sign_in(page, base, curator_key)
        cookie = next(c for c in context.cookies() if c["name"] == "bazkhord_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert page.locator("html").get_attribute("dir") == "rtl"
        assert page.locator(".headline .big").inner_text().endswith("٪")

        # Filters live in the URL: a channel and a period, then the link reopens the same view.
        page.select_option("select[name=channel]", "app_review")
        page.select_option("select[name=period]", "week")
        page.click("form.filters button[type=submit]")
        assert "channel=app_review" in page.url and "period=week" in page.url
        shared = page.url
        first = page.locator("table tbody tr th a").first
        label = first.inner_text()
        first.click()
        assert "channel=app_review" in page.url and page.locator("h1").inner_text().startswith(label)
        theme_url = page.url.split("?")[0]
        theme_id = int(theme_url.rsplit("/", 1)[1])

        # Statements: paged, searched, each with a link to the whole comment.
        page.goto(theme_url)
        total = int(page.locator("#statements").inner_text().split("(")[1].rstrip(")").translate(
            str.maketrans("۰۱۲۳۴۵۶۷۸۹", "0123456789")))
        assert page.locator("ol.statements > li mark").count() == min(25, total)
        if total > 25:
            page.click("a[rel=next]")
            assert "page=1" in page.url and page.locator("ol.statements > li").count() >= 1
        word = page.locator("ol.statements > li mark").first.inner_text().split()[0]
        page.fill("#q", word)
        page.click("form.search button")
        assert page.locator("ol.statements > li mark").count() >= 1
        page.locator("ol.statements > li a", has_text="نظر کامل").first.click()
        assert "/app/comments/" in page.url and page.locator("blockquote.comment").inner_text()

        # Rename and merge as a curate key.
        page.goto(theme_url)
        page.click("details.curate summary")
        page.fill("#rename", "تاخیر و سرد رسیدن غذا")
        page.click("form[action$='/rename'] button")
        assert page.locator("h1").inner_text().startswith("تاخیر و سرد رسیدن غذا")
        names = services.theme_store.names()
        other = next(n for n in names.values() if n.id != theme_id and not n.hidden)
        page.goto(f"{base}/app/themes/{other.id}")
        page.click("details.curate summary")
        page.select_option("#merge", str(theme_id))
        page.click("form[action$='/merge'] button")
        assert page.url.startswith(f"{base}/app/themes/{theme_id}")
        page.goto(f"{base}/app/codebook")
        assert page.locator("tbody tr").count() == 2

        # The hostile comment renders inert, readable and within the page.
        page.goto(f"{base}/app/comments/hostile-1")
        assert page.evaluate("window.pwned") is None
        text = page.locator("blockquote.comment").inner_text()
        assert "<script>" in text and "سفارش دیر رسید" in text
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        page.goto(shared)  # the shared link reopens the filtered view
        assert page.locator("select[name=channel]").input_value() == "app_review"

        # Phone width: nothing sticks out.
        phone = browser.new_context(viewport={"width": 420, "height": 900}, storage_state=context.storage_state())
        small = phone.new_page()
        for path in ("/app/", theme_url.removeprefix(base), "/app/comments/hostile-1"):
            small.goto(base + path)
            assert small.evaluate("document.documentElement.scrollWidth <= 421"), path
        phone.close()

        # A report-only key sees no edit forms, and its writes are refused.
        viewer = browser.new_context()
        vpage = viewer.new_page()
        sign_in(vpage, base, reader_key)
        vpage.goto(theme_url)
        assert vpage.locator("details.curate").count() == 0
        csrf = vpage.locator("input[name=csrf]").first.get_attribute("value")
        answer = vpage.request.post(f"{theme_url}/rename", form={"csrf": csrf, "label": "x"}, max_redirects=0)
        assert answer.status == 403
        viewer.close()

        # A write without the CSRF token is refused, with the session cookie.
        answer = page.request.post(f"{theme_url}/hide", form={"back": "/app/"}, max_redirects=0)
        assert answer.status == 403 and not services.theme_store.names()[theme_id].hidden
        context.close()

        api = httpx.get(f"{base}/v1/reports/themes", headers={"Authorization": f"Bearer {curator_key}"}, timeout=300)
        assert api.status_code == 200, api.text
        reported = {t["codebook_id"]: t for t in api.json()["themes"]}
        assert reported[theme_id]["label"] == "تاخیر و سرد رسیدن غذا" and other.id not in reported

    # Nothing was fetched from another host.
    assert requests and all(url.startswith(base) for url in requests), [u for u in requests if not u.startswith(base)]

    # After a restart the edits are still there.
    again = create_app(settings_for(tmp_path), model=sample_model)
    with live_server(again) as base2:
        context = browser.new_context()
        page = context.new_page()
        sign_in(page, base2, curator_key)
        page.goto(f"{base2}/app/themes/{theme_id}")
        assert page.locator("h1").inner_text().startswith("تاخیر و سرد رسیدن غذا")
        context.close()


def test_sessions_end_with_their_key_and_sign_in_is_rate_limited(tmp_path: Path, sample_model: LoadedModel) -> None:
    app = create_app(Settings(**{**settings_for(tmp_path).model_dump(), "unauthenticated_per_minute": 3,
                                 "unauthenticated_burst": 3}), model=sample_model)
    with live_server(app) as base, httpx.Client(base_url=base, follow_redirects=False) as client:
        keys = KeyStore(app.state.services.engine)
        key = keys.create("temp", "report").key
        signed = client.post("/app/login", data={"key": key, "next": "/app/"})
        assert signed.status_code == 303 and "httponly" in signed.headers["set-cookie"].lower()
        assert client.get("/app/runs").status_code == 200
        keys.revoke("temp")
        assert client.get("/app/runs").status_code == 303  # back to sign-in
        statuses = [client.post("/app/login", data={"key": "bzk_wrong"}).status_code for _ in range(5)]
        assert statuses[0] == 401 and 429 in statuses
        assert client.post("/app/login", data={"key": key, "next": "https://evil.example/"}).status_code in (401, 429)
        assert os.environ.get("BAZKHORD_ENCODER") == "none"
