"""Corrections as training data: they go to train only, replace the rows they correct, are repeated, and a share is
held out (by hash) for the retraining gate; the training report counts what was used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bazkhord.data.errors import ConfigError
from bazkhord.data.normalise import DEFAULT_NORMALISER, normalise
from bazkhord.data.record import FeedbackRecord
from bazkhord.model.folder import FINGERPRINTS_FILE, TRAINING_REPORT_FILE, text_fingerprint
from bazkhord.training.config import load_config
from bazkhord.training.corrections import add_corrections, held_out
from bazkhord.training.train import train
from tests.conftest import SAMPLE, write_jsonl


def record(text: str, sentiment: str | None, aspects: dict[str, str] | None = None) -> FeedbackRecord:
    return FeedbackRecord(text=text, sentiment=sentiment, aspects=aspects)


def test_corrections_join_train_only_and_replace_the_rows_they_correct() -> None:
    splits = {"train": [record("غذا سرد بود", "positive"), record("عالی بود", "positive")],
              "dev": [record("پیک دیر آمد", "neutral"), record("بد نبود", "neutral")]}
    corrections = [record("غذا سرد بود", "negative"), record("پیک  دیر آمد", "negative"),
                   record("بسته بندی پاره بود", None, {"packaging": "negative"}), record("هیچ برچسبی ندارد", None)]
    out, used = add_corrections(splits, corrections, DEFAULT_NORMALISER, repeat=2)
    assert [r.text for r in out["dev"]] == ["بد نبود"]  # the corrected dev row left dev (its text is trained on now)
    train_texts = [r.text for r in out["train"]]
    assert train_texts.count("غذا سرد بود") == 2 and "عالی بود" in train_texts
    assert {r.sentiment for r in out["train"] if r.text == "غذا سرد بود"} == {"negative"}  # the human label won
    assert used.rows == 3 and used.used == 3 and used.replaced == {"train": 1, "dev": 1} and len(used.rejected) == 1
    assert "3 corrected comments" in used.summary()


def test_a_later_correction_of_the_same_text_wins() -> None:
    out, used = add_corrections({"train": [], "dev": []}, [record("خوب بود", "positive"), record("خوب  بود", "mixed")],
                                DEFAULT_NORMALISER)
    assert used.rows == 1 and [r.sentiment for r in out["train"]] == ["mixed"]


def test_the_held_out_share_is_stable_and_never_trained_on() -> None:
    corrections = [record(f"نظر شماره {i} درباره ارسال", "negative") for i in range(200)]
    kept = held_out(corrections, 0.2, DEFAULT_NORMALISER)
    assert 20 < len(kept) < 60 and kept == held_out(list(reversed(corrections))[::-1], 0.2, DEFAULT_NORMALISER)
    out, used = add_corrections({"train": [], "dev": []}, corrections, DEFAULT_NORMALISER, holdout=0.2)
    assert used.held_out == len(kept) and not {r.text for r in kept} & {r.text for r in out["train"]}


@pytest.mark.parametrize("override, message", [
    ("corrections.repeat=0", "repeat"), ("corrections.holdout=1.5", "holdout")])
def test_bad_corrections_settings_are_refused(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])
    with pytest.raises(ConfigError, match="two sources"):
        load_config(None, ['corrections.file="a.jsonl"', 'corrections.database_url="sqlite:///x.db"'])


def test_training_with_a_corrections_file_reports_what_it_used(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()[:40]]
    corrections = write_jsonl(tmp_path / "corrections.jsonl", [
        {"id": r["id"], "text": r["text"], "sentiment": "mixed", "aspects": None} for r in rows])
    config = load_config(REPO_CONFIG, [f"data.train={json.dumps(str(SAMPLE))}",
                                       f"output.models_dir={json.dumps(str(tmp_path / 'models'))}",
                                       f"corrections.file={json.dumps(str(corrections))}", "corrections.holdout=0.25"])
    result = train(config)
    report = json.loads((result.folder / TRAINING_REPORT_FILE).read_text(encoding="utf-8"))
    used = report["corrections"]
    assert used["rows"] == 40 and used["used"] + used["held_out"] == 40 and used["held_out"] > 0
    assert used["repeat"] == config.corrections.repeat and sum(used["replaced"].values()) == 40
    seen = set((result.folder / FINGERPRINTS_FILE).read_text(encoding="utf-8").split())
    kept = held_out([record(r["text"], "mixed") for r in rows], 0.25, config.normaliser_config)
    assert kept and all(text_fingerprint(normalise(r.text, config.normaliser_config)) not in seen for r in kept)
    assert "[corrections]" in (result.folder / "config.toml").read_text(encoding="utf-8")


REPO_CONFIG = SAMPLE.parents[2] / "training" / "configs" / "sample.toml"
