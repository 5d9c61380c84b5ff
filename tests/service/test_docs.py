"""The API docs pages work offline: Swagger UI and ReDoc load their assets from the server itself, render the
routes in a real (headless) browser that can reach nothing else, and show up in the metrics by their path."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bazkhord.model.folder import LoadedModel
from bazkhord.service.app import create_app
from bazkhord.service.docs import ASSETS, ASSETS_URL
from bazkhord.service.settings import Settings
from tests.service.helpers import api, live_server

REMOTE = re.compile(r"""(src|href)\s*=\s*["']?(https?:)?//""")


def test_pages_name_only_local_assets(sample_model: LoadedModel, tmp_path: Path) -> None:
    with api(tmp_path, sample_model, "tag") as client:
        for page in ("/docs", "/redoc"):
            answer = client.get(page)
            assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
            assert ASSETS_URL in answer.text and not REMOTE.search(answer.text), page
            assert "cdn" not in answer.headers["content-security-policy"]
        for name, kind in ASSETS.items():
            asset = client.get(f"{ASSETS_URL}/{name}")
            assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind), name
            assert len(asset.content) > 1000, name
        assert client.get(f"{ASSETS_URL}/..%2F..%2Fpyproject.toml").status_code == 404
        assert client.get(f"{ASSETS_URL}/nothing.js").json()["error"]["code"] == "not_found"
        assert "/v1/tag" in client.get("/openapi.json").json()["paths"]
        assert client.get("/docs/oauth2-redirect").status_code == 200
        metrics = client.get("/metrics").text
    for path in ("/docs", "/redoc", "/openapi.json", ASSETS_URL + "/{name}"):
        assert re.search(rf'bazkhord_requests_total\{{[^}}]*route="{re.escape(path)}"', metrics), path
    # Only the path that names no route (the escaped one, a 404) is unmatched.
    assert re.findall(r'requests_total{[^}]*route="\(unmatched\)",status="(\d+)"', metrics) == ["404"]


@pytest.mark.parametrize(("page", "shown"), [("/docs", "/v1/tag"), ("/redoc", "/v1/tag")])
def test_pages_render_in_a_browser_with_no_internet(sample_model: LoadedModel, tmp_path: Path, page: str,
                                                    shown: str) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (`make test` installs Debian's package when it can)")
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/store.db", json_logs=False, model_process=False),
                     model=sample_model)
    with TestClient(app), live_server(app) as url:
        # Every host but this server is unresolvable: a page that needs a CDN stays blank.
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--virtual-time-budget=20000"]
        dom = subprocess.run([browser, *flags, "--dump-dom", url + page], capture_output=True, text=True,
                             timeout=120, check=False).stdout
    # The rendered routes are elements the scripts built, not text of the page as served.
    assert "/v1/feedback" in dom and shown in dom, dom[:2000]
    assert ("opblock" in dom) if page == "/docs" else ("operation" in dom.lower())
