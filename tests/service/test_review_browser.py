"""The review queue in Debian's Chromium: correct a comment by keyboard (a digit key saves its sentiment), see the
queue's progress move on and the correction on the comment's page, in the next export, and at 420 px nothing wider
than the window; no request to another host."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bazkhord.cli import main
from bazkhord.model.folder import LoadedModel
from bazkhord.service.app import create_app
from bazkhord.service.auth import KeyStore
from tests.service.helpers import live_server
from tests.service.test_theme_runs import fill
from tests.service.test_workspace_browser import CHROMIUM, browser, settings_for, sign_in, tfidf_themes  # noqa: F401

pytestmark = __import__("pytest").mark.skipif(CHROMIUM is None, reason="chromium is not installed")
FA = str.maketrans("۰۱۲۳۴۵۶۷۸۹", "0123456789")


def progress(page: Any) -> tuple[int, int]:
    text = page.locator("label[for=queue-progress]").inner_text().translate(FA)
    numbers = [int(w) for w in text.split() if w.isdigit()]
    return numbers[0], numbers[1]


def test_correcting_a_comment_in_the_review_queue(tmp_path: Path, sample_model: LoadedModel, browser: Any) -> None:  # noqa: F811
    settings = settings_for(tmp_path).model_copy(update={"review_size": 30})
    app = create_app(settings, model=sample_model)
    requests: list[str] = []
    with live_server(app) as base:
        services = app.state.services
        fill(services.store, sample_model, limit=300)
        key = KeyStore(services.engine).create("analyst", "report,curate").key
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="fa-IR")
        context.on("request", lambda request: requests.append(request.url))
        page = context.new_page()
        sign_in(page, base, key)
        page.click("nav a[href='/app/review']")
        assert page.locator("h1").inner_text() == "صف بازبینی"
        assert progress(page) == (0, 30)
        first = page.locator("#review-comment a").inner_text()
        label = page.locator("button[data-key='1']").get_attribute("value")
        page.locator("body").click(position={"x": 5, "y": 5})  # focus outside any control, as after reading
        with page.expect_navigation():  # the POST, then its 303 back to the queue
            page.keyboard.press("1")
        assert page.url == f"{base}/app/review"
        assert progress(page) == (1, 30)
        second = page.locator("#review-comment a").inner_text()
        assert second != first
        with page.expect_navigation():
            page.keyboard.press("s")  # skip: the next comment, nothing stored
        assert "/app/review?skip=" in page.url
        assert progress(page) == (1, 30) and page.locator("#review-comment a").inner_text() != second
        with page.expect_navigation():
            page.keyboard.press("Enter")  # the model is right: confirmed as the analyst's reading
        assert progress(page) == (2, 30)

        page.goto(f"{base}/app/comments/{first}")
        assert page.locator(".badge.human").count() >= 1 or label == services.store.find([first])[first].model_sentiment
        assert "تاریخچه اصلاح‌ها" in page.content()

        page.set_viewport_size({"width": 420, "height": 900})
        page.goto(f"{base}/app/review")
        assert page.evaluate("document.documentElement.scrollWidth") <= 420
        page.screenshot(path=str(tmp_path / "review-420.png"), full_page=True)

        out = tmp_path / "export.jsonl"
        assert main(["corrections", "export", "--database-url", settings.database_url, "--out", str(out)]) == 0
        rows = {r["id"]: r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
        assert rows[first]["sentiment"] == label and len(rows) == 2
        assert all(url.startswith(base) for url in requests)
        context.close()
