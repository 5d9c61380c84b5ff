"""The corrections benchmark end to end on a small stand-in for the shared sets: the sample's comments split into a
"source" and a "target" domain. It checks the simulation's bookkeeping (every budget, both strategies, the floor and
the ceiling in the table), not the figures, which need the real sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import corrections

from ..conftest import SAMPLE, SAMPLE_TEST


def test_the_benchmark_prints_both_curves_with_floor_and_ceiling(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    for name, part in (("source", rows[:600]), ("target", rows[600:])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "train.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part),
                                                     encoding="utf-8")
    (tmp_path / "target" / "test.jsonl").write_text(SAMPLE_TEST.read_text(encoding="utf-8"), encoding="utf-8")
    assert corrections.main(["--shared-data", str(tmp_path), "--pairs", "target:source", "--seeds", "1",
                             "--budgets", "20", "40", "--no-write"]) == 0
    table = capsys.readouterr().out
    assert "## Corrections" in table and "**target** (pool 700 comments; source model trained on source" in table
    for row in ("| 0 (floor) |", "| 0, retrained with the pool's comments without labels |", "| 20 |", "| 40 |",
                "| all 700 (ceiling) |", "Targets: the queue reaches random's 40-correction"):
        assert row in table


def test_a_missing_shared_folder_is_said_not_a_crash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert corrections.main(["--shared-data", str(tmp_path / "absent"), "--no-write"]) == 2
    assert "needs the shared labelled sets" in capsys.readouterr().err
