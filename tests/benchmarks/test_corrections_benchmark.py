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
    # Text and sentiment only, as the shared sets have: the benchmark scores sentiment alone, and fitting the sample's
    # aspects in each of its retrainings would only cost time.
    rows = [{"text": row["text"], "sentiment": row["sentiment"]}
            for row in map(json.loads, SAMPLE.read_text(encoding="utf-8").splitlines())]
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


def test_the_accurate_profile_prints_its_one_round_in_its_own_section() -> None:
    result = {"target": "target", "source": "sample", "pool": 700, "scored": 280, "floor": 0.70, "ceiling": 0.80,
              "budgets": [200], "curves": {"queue": [{200: 0.76}], "random": [{200: 0.74}]}}
    lines = corrections.render([result], "test", 1, 6, 600.0, 0.0, "accurate")
    table = "\n".join(lines)
    assert lines[0] == "## Corrections: accurate profile"
    assert "`python -m benchmarks.corrections --profile accurate`" in table and "no self-training" in table
    assert "| 200 | 0.760 ± 0.000 | 0.740 ± 0.000 | 60% | 40% |" in table
    assert "| all 700 (ceiling) | 0.800 | 0.800 | 100% | 100% |" in table
    assert "Targets:" not in table  # one budget: no 400 to reach, no half of it to measure

    without = "\n".join(corrections.render([{**result, "ceiling": None}], "test", 1, 6, 600.0, 0.0, "accurate"))
    assert "| 200 | 0.760 ± 0.000 | 0.740 ± 0.000 | — | — |" in without
    assert "| all 700 (ceiling) | not trained here (`--ceiling`) | | | |" in without


def test_the_accurate_profile_without_its_encoder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "e5.toml"
    config.write_text(corrections.ACCURATE_CONFIG.read_text(encoding="utf-8").replace(
        'base_model = "artifacts/encoders/multilingual-e5-small"', f'base_model = "{tmp_path / "absent"}"'),
        encoding="utf-8")
    monkeypatch.setattr(corrections, "ACCURATE_CONFIG", config)
    (tmp_path / "shared").mkdir()
    assert corrections.main(["--profile", "accurate", "--shared-data", str(tmp_path / "shared"), "--no-write"]) == 2
    assert "the accurate profile fine-tunes it (`make encoder` makes it)" in capsys.readouterr().err
