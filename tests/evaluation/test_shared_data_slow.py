"""Slow: train the baseline on each public data set and check it learns more than the majority class.
Run with `pytest -m slow`; the benchmark script reports the real figures."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from bazkhord.data.readers import read_records
from bazkhord.training.config import load_config
from bazkhord.training.train import train

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["parsinlu_movie", "parsinlu_food", "deepsentipers"])
def test_baseline_beats_majority_on_dev(name: str, shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / name
    config = load_config(REPO / "training/configs" / f"{name}.toml", [
        f"data.train={json.dumps(str(folder / 'train.jsonl'))}", f"data.dev={json.dumps(str(folder / 'dev.jsonl'))}",
        f"output.models_dir={json.dumps(str(tmp_path))}"])
    result = train(config)
    dev = read_records(folder / "dev.jsonl").records
    majority = Counter(r.sentiment for r in dev).most_common(1)[0][1] / len(dev)
    assert result.metrics["dev"]["accuracy"] > majority
    if name != "deepsentipers":
        assert result.metrics["dev"]["aspect_micro_f1"] > 0.5
