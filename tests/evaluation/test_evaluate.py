from __future__ import annotations

import json
from pathlib import Path

import pytest

from bazkhord.data.errors import DataError
from bazkhord.evaluation.evaluate import evaluate
from bazkhord.model.folder import LoadedModel
from bazkhord.model.metrics import aspect_metrics, sentiment_metrics
from tests.conftest import SAMPLE, SAMPLE_TEST


def test_sentiment_metrics_by_hand() -> None:
    m = sentiment_metrics(["pos", "pos", "neg", "neg"], ["pos", "neg", "neg", "neg"], ["neg", "pos"])
    assert m["accuracy"] == 0.75
    assert m["per_class"]["pos"] == {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2}
    assert m["confusion_matrix"] == [[2, 0], [1, 1]]
    assert abs(m["macro_f1"] - (0.8 + 2 / 3) / 2) < 1e-9


def test_macro_f1_is_over_the_gold_classes() -> None:
    # A 4-class model on binary data: "neutral" predicted once is an error, not a class averaged in at F1 0.
    m = sentiment_metrics(["pos", "pos", "neg", "neg"], ["pos", "neutral", "neg", "neg"],
                          ["mixed", "neg", "neutral", "pos"])
    assert m["scored_classes"] == ["neg", "pos"] and m["predicted_outside_gold"] == {"neutral": 1}
    assert abs(m["macro_f1"] - (1.0 + 2 / 3) / 2) < 1e-9  # neg 2/2 right; pos recall 1/2, precision 1
    assert m["labels"] == ["neg", "neutral", "pos"] and m["per_class"]["neutral"]["support"] == 0


def test_aspect_metrics_by_hand() -> None:
    gold = [{"delivery": "negative", "price": "positive"}, {}, None, {"quality": "positive"}]
    pred = [{"delivery": "positive"}, {"price": "negative"}, {"delivery": "negative"}, {"quality": "positive"}]
    m = aspect_metrics(gold, pred)
    assert m is not None
    assert m["n"] == 3  # the unlabelled row does not count
    assert abs(m["detection_micro_f1"] - 2 / 3) < 1e-9  # TP 2, FP 1 (price), FN 1 (price)
    assert m["polarity_accuracy"] == 0.5 and m["polarity_n"] == 2
    assert aspect_metrics([None], [{}]) is None


def test_evaluate_writes_metrics_and_plot(sample_model: LoadedModel) -> None:
    result = evaluate(sample_model, SAMPLE_TEST, "test")
    saved = json.loads(result.metrics_file.read_text(encoding="utf-8"))
    assert saved["summary"] == result.metrics["summary"]
    assert saved["data"]["left_out_seen_in_training"] == 0
    assert result.confusion_png is not None and result.confusion_png.read_bytes()[:4] == b"\x89PNG"
    assert 0.5 < saved["summary"]["accuracy"] <= 1


def test_rows_the_model_trained_on_are_left_out(sample_model: LoadedModel, tmp_path: Path) -> None:
    seen = SAMPLE.read_text(encoding="utf-8").splitlines()[:5]
    fresh = SAMPLE_TEST.read_text(encoding="utf-8").splitlines()[:5]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(seen + fresh) + "\n", encoding="utf-8")
    result = evaluate(sample_model, path, "mixed", write=False)
    # Some of the first five sample rows may sit in the dev split, which the model never trained on.
    assert 1 <= result.seen_in_training <= 5
    assert result.metrics["data"]["rows"] == 10 - result.seen_in_training


def test_unlabelled_data_cannot_be_scored(sample_model: LoadedModel, tmp_path: Path) -> None:
    path = tmp_path / "plain.jsonl"
    path.write_text('{"text": "یک نظر بدون برچسب"}\n', encoding="utf-8")
    with pytest.raises(DataError, match="no row has a 'sentiment' or an aspects label"):
        evaluate(sample_model, path, "plain", write=False)


def test_gold_aspect_names_are_mapped_like_training(tmp_path: Path) -> None:
    from bazkhord.training.config import load_config
    from bazkhord.training.train import train
    from tests.conftest import write_jsonl

    rows = [{"text": f"ارسال خیلی دیر بود {i}", "sentiment": "negative", "aspects": {"ارسال": "negative"}} for i in range(8)]
    rows += [{"text": f"طعمش عالی بود {i}", "sentiment": "positive", "aspects": {"طعم": "positive"}} for i in range(8)]
    path = write_jsonl(tmp_path / "food.jsonl", rows)
    config = load_config(None, [f"data.train={json.dumps(str(path))}", f"output.models_dir={json.dumps(str(tmp_path / 'm'))}",
                                "data.refit_on_dev=false"])
    folder = train(config).folder
    test = write_jsonl(tmp_path / "test.jsonl", [
        {"text": "ارسال یک هفته دیر بود", "sentiment": "negative", "aspects": {"ارسال": "negative"}},
        {"text": "طعمش خیلی عالی بود", "sentiment": "positive", "aspects": {"طعم": "positive"}}])
    aspects = evaluate(folder, test, "test", write=False).metrics["aspects"]
    assert set(aspects["per_aspect"]) == {"delivery", "quality"}  # not «ارسال» and «طعم» beside them
    assert aspects["detection_micro_f1"] == 1.0
