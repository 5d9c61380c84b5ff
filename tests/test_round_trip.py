"""Train on the shipped sample -> save -> load -> identical predictions -> the HTTP API returns the same."""

from __future__ import annotations

from pathlib import Path

from bazkhord.model.folder import LoadedModel, load_model
from tests.conftest import SAMPLE_TEST
from tests.service.helpers import api

DONE_WHEN = "ارسال خیلی دیر انجام شد و جعبه له شده بود ولی کیفیت خود گوشی عالیه"


def test_round_trip(sample_model: LoadedModel, tmp_path: Path) -> None:
    texts = [line for line in SAMPLE_TEST.read_text(encoding="utf-8").splitlines()[:40]]
    reloaded = load_model(sample_model.folder)
    assert reloaded.tagger.tag(texts) == sample_model.tagger.tag(texts)
    with api(tmp_path, reloaded, "tag", max_texts_per_request=64) as client:
        over_http = client.post("/v1/tag", json={"items": [{"text": t} for t in texts]}).json()["results"]
    direct = sample_model.tagger.tag(texts)
    assert [r["sentiment"] for r in over_http] == [t.sentiment for t in direct]
    assert [r["probabilities"] for r in over_http] == [t.probabilities for t in direct]


def test_the_issue_example(sample_model: LoadedModel) -> None:
    tag = sample_model.tagger.tag([DONE_WHEN])[0]
    assert tag.sentiment in ("mixed", "negative")
    polarity = {a.aspect: a.polarity for a in tag.aspects}
    assert polarity.get("delivery") == "negative"
    assert polarity.get("packaging") == "negative"
    assert polarity.get("quality") == "positive"
    quality = next(a for a in tag.aspects if a.aspect == "quality")
    assert "کیفیت" in quality.evidence[0].text
