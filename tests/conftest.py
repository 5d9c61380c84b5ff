"""Shared fixtures: tiny data sets, one model trained on the shipped sample, and the shared data folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bazkhord.model.folder import LoadedModel, load_model
from bazkhord.training.config import load_config
from bazkhord.training.train import train

REPO = Path(__file__).resolve().parents[1]
# Theme reports embed with the encoder folder where one exists; the suite behaves the same on a machine with
# `make encoder` done and on one without (tests of the encoder path pass their own tiny folder).
os.environ["BAZKHORD_ENCODER"] = "none"
SAMPLE = REPO / "data" / "samples" / "feedback.jsonl"
SAMPLE_TEST = REPO / "data" / "samples" / "feedback_test.jsonl"

# Eight comments a linear model can overfit: sentiment plus aspects with their own polarity.
TINY = [
    {"text": "ارسال خیلی سریع بود و کیفیت عالیه", "sentiment": "positive",
     "aspects": {"delivery": "positive", "quality": "positive"}},
    {"text": "ارسال خیلی دیر بود و جعبه له شده بود", "sentiment": "negative",
     "aspects": {"delivery": "negative", "packaging": "negative"}},
    {"text": "قیمتش مناسبه و کیفیتش خوبه", "sentiment": "positive", "aspects": {"price": "positive", "quality": "positive"}},
    {"text": "قیمتش خیلی گرونه ولی کیفیتش عالیه", "sentiment": "mixed", "aspects": {"price": "negative", "quality": "positive"}},
    {"text": "بسته‌بندی محکم و شیک بود", "sentiment": "positive", "aspects": {"packaging": "positive"}},
    {"text": "پیک دیر اومد و بسته‌بندی پاره بود", "sentiment": "negative",
     "aspects": {"delivery": "negative", "packaging": "negative"}},
    {"text": "کیفیت افتضاح بود و خراب شد", "sentiment": "negative", "aspects": {"quality": "negative"}},
    {"text": "همه چیز عالی بود ممنون", "sentiment": "positive", "aspects": {}},
]


def write_jsonl(path: Path, rows: list[dict[str, object]] | list[str]) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write((row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n")
    return path


@pytest.fixture
def tiny_file(tmp_path: Path) -> Path:
    # Repeated with small variations so calibration folds see every class.
    rows: list[dict[str, object]] = [dict(r, text=str(r["text"]) + suffix) for suffix in ("", "!", " واقعا") for r in TINY]
    return write_jsonl(tmp_path / "tiny.jsonl", rows)


@pytest.fixture(scope="session")
def sample_model(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    """The embedded default, trained once per test session on the shipped sample."""
    models = tmp_path_factory.mktemp("models")
    config = load_config(REPO / "training/configs/sample.toml",
                         [f"data.train={json.dumps(str(SAMPLE))}", f"output.models_dir={json.dumps(str(models))}"])
    result = train(config)
    return load_model(result.folder)


@pytest.fixture
def ray_sessions() -> Iterator[None]:
    """A test that starts Ray takes away the session folders (logs, sockets) Ray leaves under its temp dir."""
    import tempfile

    root = Path(os.environ.get("RAY_TMPDIR", tempfile.gettempdir())) / "ray"
    before = set(root.glob("session_*"))
    yield
    for path in set(root.glob("session_*")) - before:
        if path.is_symlink():  # session_latest
            path.unlink()
        else:
            shutil.rmtree(path, ignore_errors=True)
    if root.exists() and not any(root.iterdir()):
        root.rmdir()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = Path(os.environ.get("BAZKHORD_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(f"shared data folder {path} is absent (set BAZKHORD_SHARED_DATA)")
    return path


# -- PostgreSQL for the store tests: the machine's server, started when it is down, else one of our own ----------
POSTGRES_URL = os.environ.get("BAZKHORD_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _reachable(url: str) -> bool:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        return True
    except SQLAlchemyError:
        return False
    finally:
        engine.dispose()


def _start_debian_cluster() -> None:
    """Start the clusters of Debian's postgresql package, as the machine's own set-up does."""
    import subprocess

    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        return
    for version in sorted(os.listdir("/etc/postgresql")):
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                       capture_output=True, timeout=60, check=False)


def _own_cluster() -> tuple[str, list[str], Path] | str:
    """A throw-away cluster with trust auth on a free port, from Debian's binaries: its URL, stop command and
    folder; or why there is none. The folder is made under the system's temp folder, which the postgres user
    (the server refuses to run as root) can reach, unlike pytest's private ones."""
    import subprocess
    import tempfile

    from benchmarks.service_http import free_port

    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not binaries:
        return "Debian's postgresql binaries are not installed"
    bin_dir = binaries[-1].parent
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="bazkhord-pg-"))
    if run_as:
        shutil.chown(folder, "postgres")
    port = free_port()
    data = folder / "data"
    steps = [[*run_as, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
             [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(folder / "log"), "-o",
              f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            shutil.rmtree(folder, ignore_errors=True)
            return f"{Path(step[len(run_as)]).name} failed: {(done.stderr or done.stdout).strip()[-300:]}"
    stop = [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", stop, folder


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, empty database on a real PostgreSQL server, dropped afterwards."""
    import subprocess
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server, stop, folder = POSTGRES_URL, None, None
    if not _reachable(server):
        _start_debian_cluster()
    if not _reachable(server):
        own = _own_cluster()
        if isinstance(own, str) or not _reachable(own[0]):
            pytest.skip(f"no PostgreSQL at {POSTGRES_URL}, and none could be started: "
                        f"{own if isinstance(own, str) else 'it does not answer'}")
        server, stop, folder = own
    name = f"bazkhord_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        if stop is not None:
            subprocess.run(stop, capture_output=True, timeout=60, check=False)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def sample_subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped sample's first 240 rows: a small labelled file for the transformer and pre-training tests."""
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()[:240]]
    return write_jsonl(tmp_path_factory.mktemp("data") / "subset.jsonl", rows)


def copy_checkout(target: Path) -> Path:
    """The files git would hand a new clone (tracked and not ignored), copied to `target`."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def needs_project_venv() -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and a checkout to copy")
    if not (REPO / ".venv" / "bin" / "activate").exists() or Path(sys.prefix).resolve() != (REPO / ".venv").resolve():
        pytest.skip("needs the .venv that make install creates (this run's Python is another)")


@dataclass(frozen=True)
class InstalledWheel:
    wheel: Path
    python: Path  # the fresh environment's interpreter; its `bazkhord` is beside it
    cwd: Path  # a folder outside the checkout to run it in


@pytest.fixture(scope="session")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> InstalledWheel:
    """The wheel built from a copy of the checkout, installed (without dependencies) into a fresh environment
    that reuses this one's installed dependencies through a .pth file; the editable install is not visible there."""
    needs_project_venv()
    root = tmp_path_factory.mktemp("wheel")
    source = copy_checkout(root / "source")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(root / "dist"), str(source)], check=True, capture_output=True)
    wheel = next((root / "dist").glob("bazkhord-*.whl"))
    env = root / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    python = env / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True)
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    # A path line in a .pth adds the folder, but the .pth files inside it (the editable install's) are not run.
    (Path(purelib) / "bazkhord_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    (root / "work").mkdir()
    return InstalledWheel(wheel, python, root / "work")
