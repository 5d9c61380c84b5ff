"""Shared by the service tests: an app on a throw-away store, with a key of the scopes a test asks for."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from bazkhord.model.folder import MANIFEST_FILE, LoadedModel
from bazkhord.service.app import create_app
from bazkhord.service.auth import KeyStore
from bazkhord.service.settings import Settings
from benchmarks.service_http import free_port


@contextmanager
def api(tmp_path: Path, loaded: LoadedModel | None = None, scopes: str = "admin", engine: Engine | None = None,
        **settings: Any) -> Iterator[TestClient]:
    """A TestClient whose requests carry a fresh key with `scopes`; the store is a SQLite file under tmp_path."""
    settings.setdefault("database_url", f"sqlite:///{tmp_path}/store.db")
    settings.setdefault("auth_cache_seconds", 0)
    settings.setdefault("json_logs", False)
    settings.setdefault("model_process", False)  # a worker process costs seconds to start; tests that need it ask
    app = create_app(Settings(**settings), model=loaded, engine=engine)
    with TestClient(app) as client:
        keys = KeyStore(app.state.services.engine)
        client.headers["Authorization"] = f"Bearer {keys.create(f'test-{len(keys.list())}', scopes).key}"
        yield client


def clone_version(folder: Path, version: str) -> Path:
    """Another version of a model folder: the same weights, a new version name (the manifest does not hash itself)."""
    import json

    target = folder.parent / version
    shutil.copytree(folder, target)
    manifest = json.loads((target / MANIFEST_FILE).read_text(encoding="utf-8"))
    manifest["version"] = version
    (target / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    return target


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """`app` served by uvicorn on a free loopback port in a thread; yields its base URL."""
    import threading
    import time

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning",
                                           access_log=False, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
