"""The model registry of a running service: the versions of the served model, which one is active, and
atomic activation and rollback.

A new version is loaded, checked (manifest, checksums, kind) and warmed up *before* it replaces the active
one, in a single reference assignment: requests already being tagged finish on the old model, later ones
use the new one, none is dropped. A folder that does not load is refused and the active model keeps serving.
Activations are recorded in the store, so a restart serves the version that was active.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bazkhord.data.errors import ModelFolderError
from bazkhord.model.folder import (
    LATEST_FILE,
    MANIFEST_FILE,
    LoadedModel,
    default_model,
    load_model,
    read_manifest,
    verify_files,
)
from bazkhord.service.db import ModelActivation, utcnow
from bazkhord.service.memory import freeze_heap

log = logging.getLogger("bazkhord.registry")


def warm_up(loaded: LoadedModel) -> LoadedModel:
    loaded.tagger.tag(["سلام، ارسال دیر بود ولی کیفیت خوبه"])  # first call imports hazm's data (seconds)
    return loaded


class ModelRegistry:
    def __init__(self, reference: str | None, models_dir: Path, engine: Engine | None = None) -> None:
        self._reference = reference  # None: the model trained last, found when the service starts
        self.models_dir = models_dir
        self.engine = engine
        self._active: LoadedModel | None = None
        self._lock = threading.Lock()  # one activation at a time; serving never takes it
        # Readies a model where it will tag (the batcher's worker process) before it goes live.
        self.prepare: Callable[[LoadedModel], None] = lambda loaded: None
        self._verified: dict[Path, tuple[Any, str | None]] = {}  # folder -> (files' sizes and times, error)

    @property
    def reference(self) -> str:
        """What the service serves: a name (its recorded or LATEST version), name@version or a folder."""
        if self._reference is None:
            self._reference = default_model(self.models_dir)
        return self._reference

    @property
    def active(self) -> LoadedModel | None:
        return self._active

    @property
    def name_dir(self) -> Path | None:
        return self._active.folder.parent if self._active is not None else None

    def start(self, preloaded: LoadedModel | None = None) -> LoadedModel:
        """Load what the service should serve: the version recorded as active in the store when the reference is
        a bare model name, else the reference itself (name -> its LATEST, name@version, or a folder)."""
        loaded = preloaded
        if loaded is None:
            recorded = self._recorded_version(self.reference)
            if recorded is not None:
                try:
                    loaded = load_model(f"{self.reference}@{recorded}", self.models_dir)
                except ModelFolderError as error:
                    log.error("the recorded active version %s cannot be loaded (%s); serving %s instead",
                              recorded, error, self.reference)
            if loaded is None:
                loaded = load_model(self.reference, self.models_dir)
        self._active = warm_up(loaded)
        return loaded

    def _is_bare_name(self, reference: str) -> bool:
        return "@" not in reference and "/" not in reference and not Path(reference).exists()

    def _recorded_version(self, reference: str) -> str | None:
        if self.engine is None or not self._is_bare_name(reference):
            return None
        with Session(self.engine) as session:
            row = session.scalars(select(ModelActivation).where(ModelActivation.model_name == reference)
                                  .order_by(ModelActivation.id.desc()).limit(1)).first()
            return row.model_version if row else None

    def versions(self) -> list[dict[str, Any]]:
        name_dir = self.name_dir
        if name_dir is None:
            return []
        latest_file = name_dir / LATEST_FILE
        latest = latest_file.read_text(encoding="utf-8").strip() if latest_file.exists() else None
        active = self._active.version if self._active else None
        rows: list[dict[str, Any]] = []
        for folder in sorted(p for p in name_dir.iterdir() if p.is_dir() and (p / MANIFEST_FILE).exists()):
            row: dict[str, Any] = {"version": folder.name, "active": folder.name == active, "latest": folder.name == latest}
            try:
                manifest = read_manifest(folder)
                row.update(kind=manifest["kind"], created_at=manifest.get("created_at"),
                           metrics=manifest.get("metrics", {}).get("dev", {}))
                self._verify(folder, manifest)
            except ModelFolderError as error:
                row["error"] = str(error)
            rows.append(row)
        return rows

    def _verify(self, folder: Path, manifest: dict[str, Any]) -> None:
        """The checksums of every file, as loading checks them; hashed again only when a file's size or time
        changed (a transformer folder is hundreds of MB)."""
        try:
            signature = tuple((name, (folder / name).stat().st_size, (folder / name).stat().st_mtime_ns)
                              for name in sorted(manifest["files"]))
        except OSError:
            signature = None  # a file is missing: verify_files says which
        known = self._verified.get(folder)
        if signature is not None and known is not None and known[0] == signature:
            if known[1]:
                raise ModelFolderError(known[1])
            return
        try:
            verify_files(folder, manifest)
        except ModelFolderError as error:
            self._verified[folder] = (signature, str(error))
            raise
        self._verified[folder] = (signature, None)

    def follow(self) -> LoadedModel | None:
        """Serve the version the store records as active, when another process activated one: the new model when
        it changed here, else None. Only a service started from a bare model name follows (as `start` does)."""
        if self._active is None or self.engine is None or not self._is_bare_name(self.reference):
            return None
        # Read and act under the activation lock: an activation made here swaps the model before it records itself,
        # and a read between the two would take the record before it for another process's and swap back to it.
        if not self._lock.acquire(blocking=False):
            return None  # an activation is under way here: the next look sees its record
        try:
            current = self._active
            with Session(self.engine) as session:
                row = session.scalars(select(ModelActivation).where(ModelActivation.model_name == current.name)
                                      .order_by(ModelActivation.id.desc()).limit(1)).first()
            if row is None or row.model_version == current.version:
                return None
            return self._activate(row.model_version, row.activated_by, row.action, record=False)
        finally:
            self._lock.release()

    def activate(self, version: str, by: str | None = None, action: str = "activate", record: bool = True
                 ) -> LoadedModel:
        """Make `version` of the served model active. Raises ModelFolderError (and changes nothing) when the folder
        is missing, corrupt, incomplete, of another model, or does not load."""
        with self._lock:
            return self._activate(version, by, action, record)

    def _activate(self, version: str, by: str | None, action: str, record: bool) -> LoadedModel:
        """`activate`, the lock held."""
        current = self._active
        if current is None or self.name_dir is None:
            raise ModelFolderError("no model is active, so there is no model name whose versions to choose from")
        if not version or "/" in version or "\\" in version or version.startswith("."):
            raise ModelFolderError(f"{version!r} is not a version name (see GET /v1/models)")
        folder = self.name_dir / version
        if not (folder / MANIFEST_FILE).exists():
            raise ModelFolderError(f"{current.name} has no version {version!r} (in {self.name_dir}); "
                                   "see GET /v1/models")
        loaded = load_model(folder)
        if loaded.name != current.name:
            raise ModelFolderError(f"{folder} holds model {loaded.name!r}, not {current.name!r}")
        try:
            warm_up(loaded)
            self.prepare(loaded)
        except Exception as error:  # a model that loads but cannot tag must not go live
            raise ModelFolderError(f"{folder}: the model loads but fails to tag ({type(error).__name__}: {error})"
                                   ) from error
        self._active = loaded  # the swap: one reference assignment
        freeze_heap()  # the new version lives as long as it is served: out of the collector's walks
        if record:
            self._record(loaded, action, by)
        log.info("%s %s: now serving %s (was %s)", action, loaded.name, loaded.version, current.version)
        return loaded

    def rollback(self, by: str | None = None) -> LoadedModel:
        """Go back to the version that was active before the current one (as recorded in the store)."""
        current = self._active
        if current is None or self.engine is None:
            raise ModelFolderError("rollback needs an active model and the store's activation history")
        with Session(self.engine) as session:
            history = session.scalars(select(ModelActivation.model_version).where(
                ModelActivation.model_name == current.name).order_by(ModelActivation.id.desc())).all()
        previous = next((v for v in history if v != current.version), None)
        if previous is None:
            raise ModelFolderError(f"no earlier version of {current.name!r} was ever active here; nothing to roll back to")
        return self.activate(previous, by, action="rollback")

    def _record(self, loaded: LoadedModel, action: str, by: str | None) -> None:
        if self.engine is None:
            return
        with Session(self.engine) as session, session.begin():
            session.add(ModelActivation(model_name=loaded.name, model_version=loaded.version, action=action,
                                        activated_at=utcnow(), activated_by=by))

    def record_startup(self) -> None:
        """Note the version served at start as the first entry of an empty history, so rollback can reach it."""
        if self.engine is None or self._active is None:
            return
        with Session(self.engine) as session:
            last = session.scalars(select(ModelActivation).where(ModelActivation.model_name == self._active.name)
                                   .order_by(ModelActivation.id.desc()).limit(1)).first()
        if last is None or last.model_version != self._active.version:
            self._record(self._active, "start", None)
