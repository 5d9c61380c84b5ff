"""`bazkhord init`: what it finds in a labelled file, and a config that `train --config` takes as it is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bazkhord.cli import main
from bazkhord.training.config import load_config
from bazkhord.training.starter import MIN_TRANSFORMER_ROWS, draft_config, inspect_data, language_of
from tests.conftest import TINY, write_jsonl


@pytest.mark.parametrize(("text", "language"), [
    ("پیک خیلی دیر اومد", "persian"),
    ("kheili khub bud mamnoon", "finglish"),
    ("the delivery was late", "latin"),
    ("گوشی Samsung خوبه", "persian"),
    ("👍 10/10", "other"),
])
def test_language_of_a_comment(text: str, language: str) -> None:
    assert language_of(text) == language


def test_inspect_reports_rows_labels_aspects_and_the_taxonomy(tmp_path: Path) -> None:
    rows: list[dict[str, object] | str] = [*TINY, TINY[0], {"text": "kheili bad bud", "sentiment": "negative"},
                                           {"text": "", "sentiment": "positive"}, {"text": "x", "sentiment": "great"}]
    path = write_jsonl(tmp_path / "mine.jsonl", rows)  # type: ignore[arg-type]
    profile = inspect_data(path, max_bad_fraction=0.5)
    assert (profile.rows, profile.kept) == (12, 10)
    assert sorted((r.row, r.field) for r in profile.rejected) == [(11, "text"), (12, "sentiment")]
    assert profile.duplicates == 1
    assert profile.sentiments["positive"] == 5 and profile.sentiments["negative"] == 4  # the duplicate counts once more
    assert profile.aspects["delivery"] == 4 and profile.taxonomy == "default"
    assert profile.languages["finglish"] == 1 and profile.languages["persian"] == 9


def test_unknown_aspect_names_get_no_shipped_taxonomy(tmp_path: Path) -> None:
    rows = [dict(r, aspects={"plot": "negative", "actors": "positive"}) for r in TINY]
    profile = inspect_data(write_jsonl(tmp_path / "films.jsonl", rows))  # type: ignore[arg-type]
    assert profile.taxonomy == "" and max(profile.taxonomy_fit.values()) == 0.0
    values = draft_config(profile, "films", encoder=None)
    assert values["data"]["taxonomy"] == "" and values["model"]["kind"] == "tfidf"


def test_the_accurate_profile_needs_the_encoder_and_enough_rows(tmp_path: Path) -> None:
    many = [dict(r, text=f"{r['text']} {i}") for i in range(MIN_TRANSFORMER_ROWS // len(TINY) + 1) for r in TINY]
    profile = inspect_data(write_jsonl(tmp_path / "many.jsonl", many))  # type: ignore[arg-type]
    encoder = tmp_path / "encoder"
    assert draft_config(profile, "m", encoder)["model"]["kind"] == "transformer"
    assert draft_config(profile, "m", encoder)["transformer"]["base_model"] == str(encoder)
    assert draft_config(profile, "m", None)["model"]["kind"] == "tfidf"
    few = inspect_data(write_jsonl(tmp_path / "few.jsonl", TINY))  # type: ignore[arg-type]
    assert draft_config(few, "m", encoder)["model"]["kind"] == "tfidf"


def test_init_writes_a_config_train_takes(tmp_path: Path, tiny_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "tiny.toml"
    models = tmp_path / "models"
    assert main(["init", "--data", str(tiny_file), "--out", str(config), "--encoder", "none",
                 "--models-dir", str(models)]) == 0
    out = capsys.readouterr().out
    assert "24 rows, 24 usable, 0 skipped" in out and "Finglish share 0.0%" in out and f"wrote {config}" in out
    loaded = load_config(config)
    assert (loaded.model.name, loaded.model.kind, loaded.data.taxonomy) == ("tiny", "tfidf", "default")
    assert main(["train", "--config", str(config), "-q"]) == 0
    assert "trained tiny" in capsys.readouterr().out
    assert main(["init", "--data", str(tiny_file), "--out", str(config)]) == 2  # never overwrites an edited config
    assert "exists" in capsys.readouterr().err


def test_init_names_the_bad_rows_and_refuses_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join([json.dumps(TINY[0], ensure_ascii=False), "{not json", '{"sentiment": "positive"}']) + "\n",
                    encoding="utf-8")
    assert main(["init", "--data", str(path), "--out", str(tmp_path / "c.toml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: [E") and "2 of 3 rows are bad" in err and f"{path}:2" in err
    assert not (tmp_path / "c.toml").exists()
