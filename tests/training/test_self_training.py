"""Self-training of the TF-IDF model on comments without labels (model.self_training): the words of a domain its
labelled data lacks are learned from the comments it reads confidently; the texts it trains on are recorded as seen,
and none of them is a dev, training or corrected comment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bazkhord.data.errors import ConfigError
from bazkhord.data.normalise import normalise
from bazkhord.data.record import FeedbackRecord
from bazkhord.model.folder import FINGERPRINTS_FILE, TRAINING_REPORT_FILE, load_model, text_fingerprint
from bazkhord.training.config import load_config
from bazkhord.training.train import train, unlabelled_texts
from tests.conftest import write_jsonl

FILLERS = ["امروز", "دیروز", "این بار", "واقعا", "کلا", "همیشه", "اینجا", "باز هم", "الان", "راستش"]
PRAISE = ["عالی بود", "خیلی خوب بود", "دستتون درد نکنه", "ممنونم", "بی نظیر بود"]
BLAME = ["بد بود", "افتضاح بود", "خیلی بد بود", "ناراضی ام", "دیگه نمیخرم"]


def labelled_rows() -> list[dict[str, str]]:
    rows = []
    for i, filler in enumerate(FILLERS):
        for j in range(len(PRAISE)):
            rows.append({"id": f"p{i}-{j}", "text": f"{filler} {PRAISE[j]}", "sentiment": "positive"})
            rows.append({"id": f"n{i}-{j}", "text": f"{filler} {BLAME[j]}", "sentiment": "negative"})
    return rows


def comments_without_labels() -> list[str]:
    # Words the labelled rows never hold (دلستر, ترشی), always beside words they do.
    return ([f"دلستر {PRAISE[j]} {filler}" for filler in FILLERS for j in range(len(PRAISE))]
            + [f"ترشی {BLAME[j]} {filler}" for filler in FILLERS for j in range(len(BLAME))])


def trained(tmp_path: Path, threshold: float, name: str) -> Path:
    data = write_jsonl(tmp_path / "train.jsonl", labelled_rows())
    unlabelled = tmp_path / "unlabelled.jsonl"
    unlabelled.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n"
                                  for t in comments_without_labels()), encoding="utf-8")
    config = load_config(None, [f"data.train={json.dumps(str(data))}", 'data.taxonomy=""',
                                f"data.unlabelled={json.dumps(str(unlabelled))}", f"model.self_training={threshold}",
                                f'model.name="{name}"', f"output.models_dir={json.dumps(str(tmp_path / 'models'))}"])
    return train(config).folder


def positive_share(folder: Path, text: str) -> float:
    tagger = load_model(folder).tagger
    return float(tagger.predict_proba([text])[0][tagger.labels.index("positive")])


def test_self_training_learns_words_only_the_unlabelled_comments_hold(tmp_path: Path) -> None:
    taught, plain = trained(tmp_path, 0.6, "taught"), trained(tmp_path, 0, "plain")
    assert positive_share(taught, "دلستر") > positive_share(plain, "دلستر") + 0.1
    assert positive_share(taught, "ترشی") < positive_share(plain, "ترشی") - 0.1
    report = json.loads((taught / TRAINING_REPORT_FILE).read_text(encoding="utf-8"))["self_training"]
    assert report["threshold"] == 0.6 and report["unlabelled"] == len(comments_without_labels())
    assert 0 < report["used"] <= report["unlabelled"] and set(report["by_label"]) <= {"positive", "negative"}
    assert "self_training" not in json.loads((plain / TRAINING_REPORT_FILE).read_text(encoding="utf-8"))


def test_the_comments_trained_on_are_recorded_as_seen(tmp_path: Path) -> None:
    folder = trained(tmp_path, 0.6, "taught")
    seen = set((folder / FINGERPRINTS_FILE).read_text(encoding="utf-8").split())
    learned = [t for t in comments_without_labels() if text_fingerprint(normalise(t)) in seen]
    used = json.loads((folder / TRAINING_REPORT_FILE).read_text(encoding="utf-8"))["self_training"]["used"]
    assert len(learned) == used  # evaluate leaves exactly these out of a test file


def test_split_and_corrected_texts_are_never_self_trained_on_and_personal_data_is_masked() -> None:
    config = load_config(None, [])
    splits = {"train": [FeedbackRecord(text="غذا عالی بود")], "dev": [FeedbackRecord(text="پیک دیر رسید")]}
    corrections = [FeedbackRecord(text="برنج سرد بود", sentiment="negative")]
    given = ["غذا عالی بود", "پیک  دیر رسید", "برنج سرد بود", "با ۰۹۱۲۱۲۳۴۵۶۷ تماس بگیرید", "نوشابه نداشت",
             "نوشابه نداشت"]
    texts, unreadable = unlabelled_texts(config, given, splits, corrections, config.normaliser_config, lambda _: None)
    assert texts == ["با [PHONE] تماس بگیرید", "نوشابه نداشت"] and unreadable == []


def test_a_threshold_below_one_half_is_refused() -> None:
    with pytest.raises(ConfigError, match="self_training"):
        load_config(None, ["model.self_training=0.3"])
    assert load_config(None, ["model.self_training=0"]).model.self_training == 0


def test_a_store_with_no_uncorrected_comment_left_is_reported_as_such(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", labelled_rows())
    config = load_config(None, [f"data.train={json.dumps(str(data))}", 'data.taxonomy=""',
                                f"output.models_dir={json.dumps(str(tmp_path / 'models'))}"])
    result = train(config, unlabelled=[])
    report = json.loads((result.folder / TRAINING_REPORT_FILE).read_text(encoding="utf-8"))["self_training"]
    assert report["unlabelled"] == report["used"] == 0
    assert any(s.startswith("self-training: 0 of 0") for s in result.summaries)


def test_an_unreadable_row_of_an_unlabelled_file_is_reported_not_lost(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", labelled_rows())
    unlabelled = tmp_path / "unlabelled.jsonl"
    unlabelled.write_text(json.dumps({"text": "دلستر عالی بود"}, ensure_ascii=False) + "\n{not json\n",
                          encoding="utf-8")
    config = load_config(None, [f"data.train={json.dumps(str(data))}", 'data.taxonomy=""',
                                f"data.unlabelled={json.dumps(str(unlabelled))}",
                                f"output.models_dir={json.dumps(str(tmp_path / 'models'))}"])
    result = train(config)
    report = json.loads((result.folder / TRAINING_REPORT_FILE).read_text(encoding="utf-8"))
    assert [(r["file"], r["row"]) for r in report["rejected"]] == [(str(unlabelled), 2)]
    assert report["self_training"]["unlabelled"] == 1
