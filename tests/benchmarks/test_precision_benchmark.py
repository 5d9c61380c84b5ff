"""The precision benchmark on a tiny transformer: every precision quantize = "auto" tries, side by side with the dev
scores its training run recorded, and a clear refusal of what it cannot measure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bazkhord.model.folder import LoadedModel, load_model
from bazkhord.training.config import load_config
from bazkhord.training.train import train
from benchmarks import precision

from ..conftest import SAMPLE, write_jsonl


@pytest.fixture(scope="module")
def tiny_transformer(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    tmp = tmp_path_factory.mktemp("precision")
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()[:200]]
    data = write_jsonl(tmp / "subset.jsonl", rows)
    config = load_config(None, [
        'model.kind="transformer"', 'model.name="tiny"', f"data.train={json.dumps(str(data))}",
        f'output.models_dir="{tmp / "models"}"', f'transformer.checkpoint_dir="{tmp / "checkpoints"}"',
        "transformer.epochs=1", "transformer.max_length=32", "transformer.hidden=32", "transformer.layers=2",
        "transformer.heads=2", "transformer.intermediate=64", "transformer.vocab_size=600", "transformer.batch_size=16",
        'transformer.ensemble="never"', 'transformer.quantize="auto"'])
    return load_model(train(config).folder)


def test_every_precision_is_scored_and_timed_beside_the_saved_one(tiny_transformer: LoadedModel,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert precision.main(["--model", str(tiny_transformer.folder), "--repeats", "1", "--no-write"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("| ")][1:]  # the header row left out
    shown = [line.split(" | ")[0].lstrip("| ") for line in lines]
    rows = {name.replace("**", "").replace(" (saved)", ""): line for name, line in zip(shown, lines, strict=True)}
    assert list(rows) == ["fp32", "int8, lowest 1 layer fp32", "int8"]
    saved = tiny_transformer.tagger.meta.precision()  # type: ignore[attr-defined]
    assert [name for name in shown if "(saved)" in name] == [f"**{saved}** (saved)"]
    recorded = precision.dev_recorded(tiny_transformer)
    assert recorded["fp32"] is not None and recorded["int8"] is not None  # "auto" always tries int8 throughout
    assert f"| {recorded['int8']:.3f} |" in rows["int8"]
    assert rows["fp32"].endswith("| 1.00x / 1.00x |")


def test_a_model_without_a_transformer_is_refused(sample_model: LoadedModel, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        precision.main(["--model", str(sample_model.folder), "--no-write"])
    assert exit_info.value.code == 2
    assert "is not a transformer tagger" in capsys.readouterr().err


def test_a_missing_data_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        precision.main(["--data", str(tmp_path / "absent.jsonl"), "--no-write"])
    assert exit_info.value.code == 2
    assert "absent.jsonl: no such file" in capsys.readouterr().err
