"""One model-folder format: `<root>/<name>/<version>/` with `manifest.json`, weights and the training config.

A `LATEST` file in `<root>/<name>/` names the newest version. Loading checks the manifest, the format
version and a SHA-256 of every weight file, and refuses a folder that is incomplete, corrupt or from an
incompatible bazkhord with a message that says which.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import platform
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bazkhord.data.errors import ModelFolderError
from bazkhord.data.normalise import NormaliserConfig
from bazkhord.data.taxonomy import Taxonomy
from bazkhord.model.device import place
from bazkhord.model.domain import load_profile
from bazkhord.model.tagger import BaseTagger, Tagger

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
CONFIG_FILE = "config.toml"
LATEST_FILE = "LATEST"
TRAINING_REPORT_FILE = "training_report.json"
# Hashes of the normalised training texts, so evaluation can leave out rows the model has seen.
FINGERPRINTS_FILE = "train_fingerprints.txt"
DEFAULT_MODELS_DIR = Path("artifacts/models")
# Model kinds and the class that loads each; the transformer kinds import torch only when one is loaded.
KINDS = {Tagger.kind: "bazkhord.model.tagger:Tagger", "transformer-tagger": "bazkhord.model.transformer:TransformerTagger",
         "ensemble-tagger": "bazkhord.model.transformer:TransformerTagger"}


def kind_class(kind: str) -> type[Any]:
    module, name = KINDS[kind].split(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class LoadedModel:
    tagger: BaseTagger
    folder: Path
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def version(self) -> str:
        return str(self.manifest["version"])


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("bazkhord", "scikit-learn", "numpy", "scipy", "hazm", "safetensors", "torch", "transformers"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def text_fingerprint(normalised_text: str) -> str:
    return hashlib.sha256(normalised_text.encode()).hexdigest()[:20]


def git_commit() -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).resolve().parent, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def new_version(name_dir: Path) -> str:
    base = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    version, n = base, 1
    while (name_dir / version).exists():
        n += 1
        version = f"{base}-{n}"
    return version


def save_model(
    tagger: BaseTagger,
    root: Path,
    name: str,
    *,
    config_text: str | None = None,
    data_hash: str | None = None,
    training_rows: int | None = None,
    metrics: dict[str, Any] | None = None,
    label_field: str = "sentiment",
    extra_files: dict[str, str | dict[str, Any]] | None = None,
) -> Path:
    """Write a complete model folder, then point `LATEST` at it. Returns the version folder.

    `extra_files` are written beside the weights (text as is, dicts as JSON) and checksummed with them.
    """
    if not name or "/" in name or name.startswith("."):
        raise ModelFolderError(f"model name {name!r} must be a plain folder name")
    name_dir = root / name
    version = new_version(name_dir)
    final = name_dir / version
    staging = name_dir / f".{version}.partial"
    staging.mkdir(parents=True)
    roles = tagger.save_components(staging)
    if config_text is not None:
        (staging / CONFIG_FILE).write_text(config_text, encoding="utf-8")
        roles[CONFIG_FILE] = "training config"
    for file_name, content in (extra_files or {}).items():
        text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False, indent=1)
        (staging / file_name).write_text(text, encoding="utf-8")
        roles[file_name] = "training record"
    manifest = {
        "format_version": FORMAT_VERSION,
        "kind": tagger.kind,
        "name": name,
        "version": version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "data_hash": data_hash,
        "training_rows": training_rows,
        "labels": {"field": label_field, "sentiment": tagger.labels, "aspects": tagger.aspect_names,
                   "polarities": tagger.polarity_names},
        "taxonomy": tagger.taxonomy.to_dict() if tagger.taxonomy is not None else None,
        "normaliser": tagger.normaliser.to_dict(),
        "libraries": library_versions(),
        "metrics": metrics or {},
        "files": {path: {"sha256": sha256_of(staging / path), "role": role} for path, role in sorted(roles.items())},
    }
    (staging / MANIFEST_FILE).write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    # Rename last, so a crashed run never leaves a folder that looks complete.
    staging.rename(final)
    write_latest(name_dir, version)
    tagger.manifest = manifest
    tagger.domain_profile = load_profile(final)
    return final


def write_latest(name_dir: Path, version: str) -> None:
    tmp = name_dir / f".{LATEST_FILE}.tmp"
    tmp.write_text(version + "\n", encoding="utf-8")
    os.replace(tmp, name_dir / LATEST_FILE)


def default_model(root: Path = DEFAULT_MODELS_DIR) -> str:
    """The model a command uses when none is named: the one trained last under `root` (the newest `created_at` of
    the versions the names' LATEST files point to), so the model a newcomer just trained is the one they get."""
    newest: tuple[str, float, str] | None = None
    for name_dir in sorted(root.iterdir()) if root.is_dir() else []:
        latest = name_dir / LATEST_FILE
        if name_dir.name.startswith(".") or not latest.is_file():
            continue
        manifest = name_dir / latest.read_text(encoding="utf-8").strip() / MANIFEST_FILE
        try:
            # created_at has whole seconds; the file's time tells apart two models trained in one second
            key = (str(json.loads(manifest.read_text(encoding="utf-8")).get("created_at", "")), manifest.stat().st_mtime,
                   name_dir.name)
        except (OSError, ValueError):
            continue  # a broken folder is reported when it is named, not chosen silently
        if newest is None or key > newest:
            newest = key
    if newest is None:
        raise ModelFolderError(f"no model under {root}: train one with `make run` or `bazkhord train`, or name one "
                               "with --model")
    return newest[2]


def resolve(reference: str | Path | None, root: Path = DEFAULT_MODELS_DIR) -> Path:
    """A version folder from: a version folder, a name folder (its LATEST), `name` or `name@version` under root;
    None means the default model (`default_model`)."""
    text = str(reference if reference is not None else default_model(root))
    candidates = [Path(text)]
    if "@" in text and not Path(text).exists():
        name, version = text.split("@", 1)
        candidates = [root / name / version]
    elif not Path(text).exists() and len(Path(text).parts) == 1:  # a bare name; a path is taken as given
        candidates = [root / text]
    path = candidates[0]
    if not path.exists():
        raise ModelFolderError(f"no model at {path}: train one with `bazkhord train` or check the path")
    if (path / MANIFEST_FILE).exists():
        return path
    latest = path / LATEST_FILE
    if latest.exists():
        version = latest.read_text(encoding="utf-8").strip()
        if not (path / version).exists():
            raise ModelFolderError(f"{latest} names version {version!r}, which is not in {path}")
        return path / version
    raise ModelFolderError(f"{path} is neither a model version folder (no {MANIFEST_FILE}) nor a model name folder "
                           f"(no {LATEST_FILE})")


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST_FILE
    if not path.exists():
        raise ModelFolderError(f"{folder}: incomplete model folder, {MANIFEST_FILE} is missing")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelFolderError(f"{path}: corrupt manifest ({error})") from None
    if not isinstance(manifest, dict):
        raise ModelFolderError(f"{path}: corrupt manifest (not a JSON object)")
    for key in ("format_version", "kind", "name", "version", "files", "normaliser", "labels"):
        if key not in manifest:
            raise ModelFolderError(f"{path}: manifest lacks {key!r}; the folder is incomplete or not a bazkhord model")
    if not isinstance(manifest["format_version"], int) or manifest["format_version"] > FORMAT_VERSION:
        raise ModelFolderError(
            f"{path}: model format {manifest['format_version']} is newer than this bazkhord reads ({FORMAT_VERSION}); "
            "upgrade bazkhord or use an older model"
        )
    if manifest["kind"] not in KINDS:
        raise ModelFolderError(f"{path}: unknown model kind {manifest['kind']!r}; this bazkhord knows {sorted(KINDS)}")
    return manifest


def verify_files(folder: Path, manifest: dict[str, Any]) -> None:
    for relative, info in manifest["files"].items():
        path = folder / relative
        if not path.exists():
            raise ModelFolderError(f"{folder}: incomplete model folder, {relative} is missing")
        if sha256_of(path) != info["sha256"]:
            raise ModelFolderError(f"{folder}: {relative} is corrupt (checksum differs from the manifest)")


def load_model(reference: str | Path | None, root: Path = DEFAULT_MODELS_DIR) -> LoadedModel:
    folder = resolve(reference, root)
    manifest = read_manifest(folder)
    verify_files(folder, manifest)
    try:
        normaliser = NormaliserConfig.from_dict(manifest["normaliser"])
        taxonomy = Taxonomy.from_dict(manifest["taxonomy"]) if manifest.get("taxonomy") else None
        tagger = kind_class(manifest["kind"]).load_components(folder, normaliser, taxonomy)
    except ModelFolderError:
        raise
    except Exception as error:  # any failure here means the files do not fit together
        raise ModelFolderError(f"{folder}: cannot load the model ({type(error).__name__}: {error})") from error
    place(tagger)  # on a GPU where one is present or asked for (BAZKHORD_DEVICE)
    tagger.manifest = manifest
    tagger.domain_profile = load_profile(folder)
    return LoadedModel(tagger, folder, manifest)


def list_models(root: Path = DEFAULT_MODELS_DIR) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if not root.exists():
        return rows
    for name_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):  # .checkpoints
        latest_file = name_dir / LATEST_FILE
        latest = latest_file.read_text(encoding="utf-8").strip() if latest_file.exists() else None
        for version_dir in sorted(p for p in name_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            try:
                manifest = read_manifest(version_dir)
            except ModelFolderError as error:
                rows.append({"name": name_dir.name, "version": version_dir.name, "error": str(error)})
                continue
            rows.append({"name": manifest["name"], "version": manifest["version"], "kind": manifest["kind"],
                         "created_at": manifest.get("created_at"), "latest": manifest["version"] == latest,
                         "metrics": manifest.get("metrics", {}), "evaluations": evaluations(version_dir)})
    return rows


def evaluations(folder: Path) -> dict[str, dict[str, Any]]:
    """{split: {"summary", "data"}} from the `metrics_<split>.json` files `bazkhord evaluate` wrote in `folder`."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("metrics_*.json")):
        try:
            metrics = json.loads(path.read_text(encoding="utf-8"))
            found[path.stem.removeprefix("metrics_")] = {"summary": metrics["summary"], "data": metrics.get("data", {})}
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a half-written or foreign file is not a figure to show
    return found
