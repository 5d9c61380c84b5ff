"""The shell blocks of the README and of every page under docs/ run as written, from a fresh copy of the repository
with the environment `make install` made (and no `bazkhord` on the PATH until the block activates it), and with the
reader's own labelled files the README's "Train on your own data" names. Lines that start a server, run make or
the slow suite are left out, each for the reason given in SKIPPED; the server of "Train on your own data" is started
by its own test below, which goes from a labelled file to tagging over HTTP with the README's commands alone."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_TEST, TINY, copy_checkout, needs_project_venv, write_jsonl

REPO = Path(__file__).resolve().parents[1]
SKIPPED = {
    "make ": "installs, serves or runs the whole suite (make run / make test are what CI and newcomers run)",
    "curl ": "needs the server that make run starts",
    ".venv/bin/pytest": "the slow suite itself",
    "bazkhord serve": "starts a server: test_own_labelled_file_to_a_served_model runs the README's",
}
OWN_FILE, OWN_TEST_FILE = "my-feedback.jsonl", "my-feedback-test.jsonl"


def shell_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", markdown, flags=re.M | re.S)


def runnable(block: str) -> tuple[str, list[str]]:
    """The block as a script without the skipped commands (continuation lines joined), and those commands."""
    lines: list[str] = []
    for line in re.sub(r"\\\n\s*", " ", block).splitlines():
        if line[:1].isspace() and lines:  # an indented line goes on with the command above (a quoted JSON body)
            lines[-1] += "\n" + line
        else:
            lines.append(line)
    kept, left_out = [], []
    for line in lines:
        if line.strip().startswith(tuple(SKIPPED)):
            left_out.append(line.strip())
        elif line.strip():
            kept.append(line)
    return "\n".join(kept), left_out


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh copy of the checkout with this checkout's .venv linked in."""
    needs_project_venv()
    target = copy_checkout(tmp_path_factory.mktemp("clone"))
    (target / ".venv").symlink_to(REPO / ".venv")
    write_own_files(target)
    return target


def write_own_files(folder: Path) -> None:
    """A reader's labelled comments: TINY's with small variations (not the shipped sample), and held-out ones."""
    suffixes = ("", "!", " واقعا", " خیلی", " ممنون", "، همین")
    rows = [dict(row, text=str(row["text"]) + suffix) for suffix in suffixes for row in TINY]
    write_jsonl(folder / OWN_FILE, rows)
    shutil.copy(SAMPLE_TEST, folder / OWN_TEST_FILE)


DOCS = ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]
BLOCKS = [(doc, index) for doc in DOCS
          for index in range(len(shell_blocks((REPO / doc).read_text(encoding="utf-8"))))]


def test_readme_has_blocks_to_run() -> None:
    scripts = [runnable(block)[0] for block in shell_blocks((REPO / "README.md").read_text(encoding="utf-8"))]
    assert sum(1 for script in scripts if "bazkhord " in script) >= 2
    assert runnable('curl -s x -d \'{\n  "a": 1}\'\nbazkhord models')[0] == "bazkhord models"


@pytest.mark.parametrize(("doc", "index"), BLOCKS)
def test_doc_block_runs_as_written(clone: Path, doc: str, index: int) -> None:
    script, left_out = runnable(shell_blocks((REPO / doc).read_text(encoding="utf-8"))[index])
    if not script:
        pytest.skip(f"nothing to run here: {left_out}")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("VIRTUAL_ENV", "BAZKHORD_"))}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"  # as a new terminal: the environment is not active
    env["BAZKHORD_ENCODER"] = "none"
    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=clone, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, f"{doc} block {index} failed:\n{script}\n--- stdout\n{done.stdout[-3000:]}" \
                                 f"\n--- stderr\n{done.stderr[-3000:]}"


def block_with(doc: str, command: str) -> str:
    return next(b for b in shell_blocks((REPO / doc).read_text(encoding="utf-8")) if command in b)


def test_own_labelled_file_to_a_served_model(tmp_path: Path) -> None:
    """The README's "Train on your own data" from start to end in a fresh copy: init, train, evaluate, serve (this
    block's own line, on a free port), tag over HTTP; then a second version trained and activated through the API."""
    import socket
    import time

    import httpx

    needs_project_venv()
    clone = copy_checkout(tmp_path / "clone")
    (clone / ".venv").symlink_to(REPO / ".venv")
    write_own_files(clone)

    block = block_with("README.md", "bazkhord init")
    script, left_out = runnable(block)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("VIRTUAL_ENV", "BAZKHORD_"))}
    env.update(PATH="/usr/local/bin:/usr/bin:/bin", BAZKHORD_ENCODER="none",
               BAZKHORD_DATABASE_URL=f"sqlite:///{tmp_path / 'store.db'}")
    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=clone, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "sentiment labels: positive" in done.stdout and "wrote my-feedback.toml" in done.stdout
    assert "macro_f1" in done.stdout  # evaluate's table

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    serve = next(line for line in left_out if line.startswith("bazkhord serve")).split("#")[0]
    serve = serve.replace("--port 8001", f"--port {port}")
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen(["bash", "-c", f". .venv/bin/activate && exec {serve}"], cwd=clone, env=env,
                                  stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        key = log.read_text().split("a demo key with scopes tag, ingest, report: ", 1)[1].split()[0]
        answer = httpx.post(f"{url}/v1/tag", headers={"Authorization": f"Bearer {key}"},
                            json={"text": "ارسال خیلی دیر بود و جعبه له شده بود"}, timeout=30).json()
        assert answer["model"]["name"] == "my-feedback"
        assert answer["results"][0]["sentiment"] == "negative"
        first = answer["model"]["version"]

        def cli(*args: str) -> str:
            ran = subprocess.run([str(clone / ".venv/bin/bazkhord"), *args], cwd=clone, env=env, capture_output=True,
                                 text=True, timeout=300, check=True)
            return ran.stdout

        cli("train", "--config", "my-feedback.toml", "-q")
        admin = {"Authorization": f"Bearer {cli('keys', 'create', '--name', 'ops', '--scopes', 'admin').strip()}"}
        versions = [v["version"] for v in httpx.get(f"{url}/v1/models", headers=admin, timeout=30).json()["versions"]]
        second = next(v for v in versions if v != first)
        switched = httpx.post(f"{url}/v1/models/activate", headers=admin, json={"version": second}, timeout=60)
        assert switched.status_code == 200 and switched.json()["version"] == second
        back = httpx.post(f"{url}/v1/models/rollback", headers=admin, timeout=60)
        assert back.json()["version"] == first
    finally:
        server.terminate()
        server.wait(timeout=60)
