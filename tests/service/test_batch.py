"""`bazkhord tag-batch`: every row tagged or rejected (file, row, reason), parts that a repeated run skips, and
the same rows from the local engine and from a real local Ray instance."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bazkhord.cli import main
from bazkhord.data.errors import ConfigError
from bazkhord.data.progress import LogProgress
from bazkhord.model.folder import LoadedModel
from bazkhord.service.batch import BatchJob, run_local
from benchmarks.service_http import free_port
from tests.conftest import SAMPLE


def comments(n: int) -> list[dict[str, Any]]:
    texts = [json.loads(line)["text"] for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    return [{"id": f"c{i}", "text": texts[i % len(texts)] + (" شماره ۰۹۱۲۳۴۵۶۷۸۹" if i % 50 == 3 else "")}
            for i in range(n)]


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    """A folder of three formats: JSONL with two bad rows, CSV with an empty text, Parquet."""
    folder = tmp_path / "in"
    folder.mkdir()
    rows = comments(300)
    lines = [json.dumps(r, ensure_ascii=False) for r in rows[:200]]
    lines[10] = "{not json"
    lines[20] = json.dumps({"id": "no-text"})
    (folder / "a.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    csv_rows = ["id,text", *(f'{r["id"]},"{r["text"]}"' for r in rows[200:250]), "empty,"]
    (folder / "b.csv").write_text("\n".join(csv_rows) + "\n", encoding="utf-8")
    pq.write_table(pa.Table.from_pylist(rows[250:]), folder / "c.parquet")
    return folder


def read_parts(out: Path) -> list[dict[str, Any]]:
    return [row for path in sorted((out / "parts").glob("*.parquet")) for row in pq.read_table(path).to_pylist()]


def read_rejects(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted((out / "rejects").glob("*.jsonl"))
            for line in path.read_text(encoding="utf-8").splitlines()]


def test_local_tags_every_row_or_names_why_not(sample_model: LoadedModel, inputs: Path, tmp_path: Path) -> None:
    job = BatchJob([inputs], tmp_path / "out", str(sample_model.folder), tmp_path, part_rows=64, batch_size=32)
    result = run_local(job)
    rows, rejects = read_parts(tmp_path / "out"), read_rejects(tmp_path / "out")
    assert len(rows) + len(rejects) == 301 and result.rows == len(rows) and result.rejected == len(rejects) == 3
    assert {(Path(r["file"]).name, r["row"], r["field"]) for r in rejects} == {
        ("a.jsonl", 11, "(row)"), ("a.jsonl", 21, "text"), ("b.csv", 52, "text")}
    assert {r["model_name"] for r in rows} == {sample_model.name}
    assert {r["model_version"] for r in rows} == {sample_model.version}
    assert [r["id"] for r in rows if r["source"].endswith("c.parquet")] == [f"c{i}" for i in range(250, 300)]
    phone = next(r for r in rows if r["id"] == "c53")
    assert "[PHONE]" in phone["text"] and "۰۹۱۲" not in json.dumps(phone, ensure_ascii=False)
    expected = sample_model.tagger.tag([comments(300)[1]["text"]])[0]
    first = next(r for r in rows if r["id"] == "c1")
    assert first["sentiment"] == expected.sentiment
    assert json.loads(first["probabilities"]) == expected.probabilities


def test_a_repeated_run_skips_finished_parts(sample_model: LoadedModel, inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    class StopAfterTwoParts(LogProgress):
        calls = 0

        def count(self, done: int, total: int | None, unit: str) -> None:
            self.calls += 1
            if self.calls == 2:
                raise KeyboardInterrupt  # Ctrl-C after the second part

    job = BatchJob([inputs], out, str(sample_model.folder), tmp_path, part_rows=64)
    with pytest.raises(KeyboardInterrupt):
        run_local(job, StopAfterTwoParts())
    assert len(list((out / "parts").glob("*.parquet"))) == 2
    again = run_local(BatchJob([inputs], out, str(sample_model.folder), tmp_path, part_rows=64))
    assert again.parts_skipped == 2 and again.parts_written > 0
    whole = tmp_path / "whole"
    run_local(BatchJob([inputs], whole, str(sample_model.folder), tmp_path, part_rows=64))
    assert read_parts(out) == read_parts(whole) and read_rejects(out) == read_rejects(whole)
    assert not list(out.rglob("*.tmp"))


def test_another_model_in_the_same_folder_is_refused(sample_model: LoadedModel, inputs: Path, tmp_path: Path) -> None:
    from tests.service.helpers import clone_version

    out = tmp_path / "out"
    run_local(BatchJob([inputs], out, str(sample_model.folder), tmp_path, part_rows=500))
    other = clone_version(sample_model.folder, "20990101-000000")
    with pytest.raises(ConfigError, match="holds the parts of another job"):
        BatchJob([inputs], out, str(other), tmp_path, part_rows=500)
    redone = run_local(BatchJob([inputs], out, str(other), tmp_path, part_rows=500, overwrite=True))
    assert redone.parts_skipped == 0 and {r["model_version"] for r in read_parts(out)} == {"20990101-000000"}


def test_cli_summary_and_a_clear_error_without_ray(sample_model: LoadedModel, inputs: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    args = ["tag-batch", "--input", str(inputs), "--out", str(tmp_path / "out"), "--model", str(sample_model.folder),
            "-q"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "tagged 298 comments" in out and "rejected 3 row(s)" in out
    if importlib.util.find_spec("ray") is not None:  # an address where no cluster listens: one line, at once
        assert main([*args, "--engine", "ray", "--address", f"127.0.0.1:{free_port()}", "--out",
                     str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err
        assert "no Ray cluster answers at 127.0.0.1:" in err and "Traceback" not in err
    monkeypatch.setitem(sys.modules, "ray", None)  # as where Ray is not installed
    assert main([*args, "--engine", "ray", "--out", str(tmp_path / "out-ray")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'bazkhord[ray]'" in err and "Traceback" not in err
    assert main(["tag-batch", "--input", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    assert "no such file or folder" in capsys.readouterr().err



@pytest.mark.usefixtures("ray_sessions")
def test_ray_engine_gives_the_local_rows(sample_model: LoadedModel, inputs: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'bazkhord[ray]')")
    from bazkhord.service.batch import run_ray

    run_local(BatchJob([inputs], tmp_path / "local", str(sample_model.folder), tmp_path, part_rows=64))
    job = BatchJob([inputs], tmp_path / "ray", str(sample_model.folder), tmp_path, part_rows=64, batch_size=32)
    result = run_ray(job, cpus=2)
    assert result.parts_written == len(list((tmp_path / "local" / "parts").glob("*.parquet")))
    assert read_parts(tmp_path / "ray") == read_parts(tmp_path / "local")
    assert read_rejects(tmp_path / "ray") == read_rejects(tmp_path / "local")
    assert not (tmp_path / "ray" / "_staged").exists()
    again = run_ray(BatchJob([inputs], tmp_path / "ray", str(sample_model.folder), tmp_path, part_rows=64), cpus=2)
    assert again.parts_written == 0 and again.parts_skipped == result.parts_written


def test_actor_pool_follows_the_cluster() -> None:
    from bazkhord.service.batch import actor_plan

    assert actor_plan({"CPU": 3.0}, "tfidf-tagger", None, 2) == (2, 0)  # a local instance: one actor per core
    assert actor_plan({"CPU": 16.0, "GPU": 2.0}, "tfidf-tagger", None, None) == (15, 0)  # one CPU left to Ray Data
    assert actor_plan({"CPU": 16.0, "GPU": 2.0}, "ensemble-tagger", None, None) == (2, 1)  # the encoder: a GPU each
    assert actor_plan({"CPU": 16.0}, "transformer-tagger", None, None) == (15, 0)  # no GPU: on the CPUs
    assert actor_plan({"CPU": 16.0, "GPU": 2.0}, "transformer-tagger", 1, None) == (1, 1)
    assert actor_plan({"CPU": 1.0}, "tfidf-tagger", None, None) == (1, 0)
