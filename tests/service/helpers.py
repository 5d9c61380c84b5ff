"""Shared by the service tests: an app on a throw-away store, with a key of the scopes a test asks for."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from model.folder import MANIFEST_FILE, LoadedModel
from service.app import create_app
from service.auth import KeyStore
from service.settings import Settings


@contextmanager
def api(tmp_path: Path, loaded: LoadedModel | None = None, scopes: str = "admin", engine: Engine | None = None,
        **settings: Any) -> Iterator[TestClient]:
    """A TestClient whose requests carry a fresh key with `scopes`; the store is a SQLite file under tmp_path."""
    settings.setdefault("database_url", f"sqlite:///{tmp_path}/store.db")
    settings.setdefault("auth_cache_seconds", 0)
    settings.setdefault("json_logs", False)
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
