from __future__ import annotations

import json
from pathlib import Path

import pytest

from bazkhord.data.errors import DataError
from bazkhord.model.folder import CONFIG_FILE, TRAINING_REPORT_FILE, load_model
from bazkhord.training.config import load_config
from bazkhord.training.train import train
from tests.conftest import write_jsonl


def config_for(tmp_path: Path, train_file: Path, *extra: str):  # type: ignore[no-untyped-def]
    return load_config(None, [f"data.train={json.dumps(str(train_file))}",
                              f"output.models_dir={json.dumps(str(tmp_path / 'models'))}",
                              "data.dev_fraction=0.2", "model.name=tiny", *extra])


def test_same_data_and_seed_give_the_same_model(tiny_file: Path, tmp_path: Path) -> None:
    first = train(config_for(tmp_path, tiny_file))
    second = train(config_for(tmp_path, tiny_file))
    assert first.folder != second.folder
    assert first.metrics == second.metrics
    files = json.loads((first.folder / "manifest.json").read_text())["files"]
    again = json.loads((second.folder / "manifest.json").read_text())["files"]
    assert {k: v["sha256"] for k, v in files.items()} == {k: v["sha256"] for k, v in again.items()}


def test_run_reports_every_skipped_row(tiny_file: Path, tmp_path: Path) -> None:
    rows = tiny_file.read_text(encoding="utf-8").splitlines()
    path = write_jsonl(tmp_path / "dirty.jsonl", [*rows, rows[0], '{"text": ""}', '{"text": "x", "sentiment": "meh"}'])
    result = train(config_for(tmp_path, path))
    reasons = {(r.row, r.field, r.reason[:15]) for r in result.rejected}
    assert reasons == {(25, "text", "exact duplicate"), (26, "text", "empty"), (27, "sentiment", "'meh' is not on")}
    report = json.loads((result.folder / TRAINING_REPORT_FILE).read_text())
    assert len(report["rejected"]) == 3
    assert (result.folder / CONFIG_FILE).exists()
    assert load_model(result.folder).manifest["training_rows"] == result.sizes["fitted"]
    assert result.sizes["fitted"] == result.sizes["train"] + result.sizes["dev"]  # refit on train + dev


def test_refit_can_be_switched_off(tiny_file: Path, tmp_path: Path) -> None:
    result = train(config_for(tmp_path, tiny_file, "data.refit_on_dev=false"))
    assert result.sizes["fitted"] == result.sizes["train"]
    assert "dev_scored_before_refit" not in result.metrics


def test_dev_file_rows_seen_in_training_are_dropped(tiny_file: Path, tmp_path: Path) -> None:
    rows = [json.loads(line) for line in tiny_file.read_text(encoding="utf-8").splitlines()]
    dev = write_jsonl(tmp_path / "dev.jsonl", [rows[0], {"text": "یک نظر تازه و خوب", "sentiment": "positive"}])
    result = train(config_for(tmp_path, tiny_file, f"data.dev={json.dumps(str(dev))}"))
    assert result.sizes["dev"] == 1
    assert any("also in the training file" in r.reason for r in result.rejected)


def test_no_labels_is_a_clear_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "unlabelled.jsonl", [{"text": f"نظر {i}"} for i in range(10)])
    with pytest.raises(DataError, match="no row has a 'sentiment' label"):
        train(config_for(tmp_path, path))


def test_taxonomy_aliases_rename_labels_and_unknown_names_are_reported(tmp_path: Path) -> None:
    rows = [{"text": f"ارسال دیر بود {i}", "sentiment": "negative", "aspects": {"ارسال": "negative"}} for i in range(6)]
    rows += [{"text": f"رنگش قشنگه {i}", "sentiment": "positive", "aspects": {"رنگ": "positive"}} for i in range(6)]
    path = write_jsonl(tmp_path / "aliases.jsonl", rows)
    result = train(config_for(tmp_path, path, 'data.taxonomy="default"'))
    assert any("not in the taxonomy" in s and "رنگ (" in s for s in result.summaries)
    assert load_model(result.folder).tagger.aspect_names == ["delivery", "رنگ"]
