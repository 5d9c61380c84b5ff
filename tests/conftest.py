"""Shared fixtures: tiny data sets, one model trained on the shipped sample, and the shared data folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from model.folder import LoadedModel, load_model
from training.config import load_config
from training.train import train

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "samples" / "feedback.jsonl"
SAMPLE_TEST = REPO / "data" / "samples" / "feedback_test.jsonl"

# Eight comments a linear model can overfit: sentiment plus aspects with their own polarity.
TINY = [
    {"text": "ارسال خیلی سریع بود و کیفیت عالیه", "sentiment": "positive",
     "aspects": {"delivery": "positive", "quality": "positive"}},
    {"text": "ارسال خیلی دیر بود و جعبه له شده بود", "sentiment": "negative",
     "aspects": {"delivery": "negative", "packaging": "negative"}},
    {"text": "قیمتش مناسبه و کیفیتش خوبه", "sentiment": "positive", "aspects": {"price": "positive", "quality": "positive"}},
    {"text": "قیمتش خیلی گرونه ولی کیفیتش عالیه", "sentiment": "mixed", "aspects": {"price": "negative", "quality": "positive"}},
    {"text": "بسته‌بندی محکم و شیک بود", "sentiment": "positive", "aspects": {"packaging": "positive"}},
    {"text": "پیک دیر اومد و بسته‌بندی پاره بود", "sentiment": "negative",
     "aspects": {"delivery": "negative", "packaging": "negative"}},
    {"text": "کیفیت افتضاح بود و خراب شد", "sentiment": "negative", "aspects": {"quality": "negative"}},
    {"text": "همه چیز عالی بود ممنون", "sentiment": "positive", "aspects": {}},
]


def write_jsonl(path: Path, rows: list[dict[str, object]] | list[str]) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write((row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n")
    return path


@pytest.fixture
def tiny_file(tmp_path: Path) -> Path:
    # Repeated with small variations so calibration folds see every class.
    rows = [dict(r, text=r["text"] + suffix) for suffix in ("", "!", " واقعا") for r in TINY]
    return write_jsonl(tmp_path / "tiny.jsonl", rows)


@pytest.fixture(scope="session")
def sample_model(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    """The embedded default, trained once per test session on the shipped sample."""
    models = tmp_path_factory.mktemp("models")
    config = load_config(REPO / "training/configs/sample.toml",
                         [f"data.train={json.dumps(str(SAMPLE))}", f"output.models_dir={json.dumps(str(models))}"])
    result = train(config)
    return load_model(result.folder)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = Path(os.environ.get("BAZKHORD_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(f"shared data folder {path} is absent (set BAZKHORD_SHARED_DATA)")
    return path
