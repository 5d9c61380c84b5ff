"""The shell blocks of the README and docs/API.md run as written, from a fresh copy of the repository with the
environment `make install` made (and no `bazkhord` on the PATH until the block activates it). Lines that start a
server, run make or the slow suite are left out, each for the reason given in SKIPPED."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SKIPPED = {
    "make ": "installs, serves or runs the whole suite (make run / make test are what CI and newcomers run)",
    "curl ": "needs the server that make run starts",
    ".venv/bin/pytest": "the slow suite itself",
}


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


def fresh_copy(target: Path) -> Path:
    """The files git would hand a new clone (tracked and not ignored), with this checkout's .venv linked in."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / ".venv").symlink_to(REPO / ".venv")
    return target


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and a checkout to copy")
    if not (REPO / ".venv" / "bin" / "activate").exists() or Path(sys.prefix).resolve() != (REPO / ".venv").resolve():
        pytest.skip("needs the .venv that make install creates (this run's Python is another)")
    return fresh_copy(tmp_path_factory.mktemp("clone"))


DOCS = ["README.md", "docs/API.md"]
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
