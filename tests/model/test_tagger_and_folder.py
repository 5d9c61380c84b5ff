from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bazkhord.data.errors import ModelFolderError
from bazkhord.data.readers import read_records
from bazkhord.data.taxonomy import load_taxonomy
from bazkhord.model.aspects import pick_evidence
from bazkhord.model.folder import (
    LATEST_FILE,
    MANIFEST_FILE,
    default_model,
    list_models,
    load_model,
    resolve,
    save_model,
)
from bazkhord.model.tagger import Tagger


@pytest.fixture
def tiny_tagger(tiny_file: Path) -> Tagger:
    records = read_records(tiny_file).records
    return Tagger(C=20, taxonomy=load_taxonomy()).fit(
        [r.text for r in records], [r.sentiment for r in records], [r.aspects for r in records]
    )


def test_tagger_overfits_tiny_data(tiny_tagger: Tagger) -> None:
    tag = tiny_tagger.tag(["ارسال خیلی دیر بود و جعبه له شده بود"])[0]
    assert tag.sentiment == "negative"
    assert {a.aspect: a.polarity for a in tag.aspects} == {"delivery": "negative", "packaging": "negative"}
    assert abs(sum(tag.probabilities.values()) - 1) < 1e-3


def test_evidence_points_into_the_raw_text(tiny_tagger: Tagger) -> None:
    raw = "قيمتش خيلي گرونه ولي کیفیتش عالیه"  # Arabic letters: offsets are into this raw text
    tag = tiny_tagger.tag([raw])[0]
    for aspect in tag.aspects:
        for span in aspect.evidence:
            assert raw[span.start : span.end] == span.text
    assert tag.aspects and all(a.evidence for a in tag.aspects)


def test_pick_evidence() -> None:
    assert pick_evidence(np.array([0.9])) == (0,)
    assert pick_evidence(np.array([0.1, 0.9, 0.2])) == (1,)
    assert pick_evidence(np.array([0.8, 0.1, 0.7, 0.75])) == (0, 3)  # at most two, in text order


def test_save_load_and_latest(tiny_tagger: Tagger, tmp_path: Path) -> None:
    first = save_model(tiny_tagger, tmp_path, "tiny", config_text="seed = 1\n", data_hash="sha256:x")
    second = save_model(tiny_tagger, tmp_path, "tiny")
    assert first != second
    assert (tmp_path / "tiny" / LATEST_FILE).read_text().strip() == second.name
    assert resolve("tiny", tmp_path) == second
    assert resolve(f"tiny@{first.name}", tmp_path) == first
    manifest = json.loads((first / MANIFEST_FILE).read_text())
    for key in ("name", "version", "created_at", "git_commit", "data_hash", "labels", "taxonomy", "normaliser",
                "libraries", "metrics", "files"):
        assert key in manifest
    loaded = load_model(first)
    texts = ["کیفیت عالی ولی ارسال دیر", "بد بود"]
    assert loaded.tagger.tag(texts) == tiny_tagger.tag(texts)
    assert [r["latest"] for r in list_models(tmp_path)] == [False, True]


def test_the_default_model_is_the_one_trained_last(tiny_tagger: Tagger, tmp_path: Path) -> None:
    with pytest.raises(ModelFolderError, match=r"no model under .*: train one"):
        default_model(tmp_path)
    save_model(tiny_tagger, tmp_path, "older")
    newest = save_model(tiny_tagger, tmp_path, "newer")  # the same second: the file's time decides
    assert default_model(tmp_path) == "newer" and resolve(None, tmp_path) == newest
    again = save_model(tiny_tagger, tmp_path, "older")  # a new version of the other name is now the newest
    assert default_model(tmp_path) == "older" and load_model(None, tmp_path).folder == again
    (tmp_path / ".checkpoints" / "x").mkdir(parents=True)  # a training run's checkpoints are no model
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / LATEST_FILE).write_text("nothing\n")  # named when asked for, never chosen silently
    assert default_model(tmp_path) == "older"


def test_corrupt_incomplete_and_incompatible_folders_are_refused(tiny_tagger: Tagger, tmp_path: Path) -> None:
    folder = save_model(tiny_tagger, tmp_path, "tiny")
    weights = folder / "sentiment" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"corrupt!")
    with pytest.raises(ModelFolderError, match=r"sentiment/weights.safetensors is corrupt"):
        load_model(folder)
    weights.unlink()
    with pytest.raises(ModelFolderError, match="is missing"):
        load_model(folder)

    folder = save_model(tiny_tagger, tmp_path, "tiny")
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    (folder / MANIFEST_FILE).write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(ModelFolderError, match="newer than this bazkhord"):
        load_model(folder)
    (folder / MANIFEST_FILE).write_text(json.dumps({**manifest, "kind": "gpt"}))
    with pytest.raises(ModelFolderError, match="unknown model kind"):
        load_model(folder)
    (folder / MANIFEST_FILE).write_text("{")
    with pytest.raises(ModelFolderError, match="corrupt manifest"):
        load_model(folder)
    (folder / MANIFEST_FILE).unlink()
    with pytest.raises(ModelFolderError, match="neither a model version folder"):
        load_model(folder)
    with pytest.raises(ModelFolderError, match="no model at"):
        load_model("nothing-here", tmp_path)
    broken = [r for r in list_models(tmp_path) if "error" in r]
    assert len(broken) == 1  # listing reads manifests only; checksums are checked on load


def test_passing_normalised_texts_changes_nothing(tiny_tagger: Tagger) -> None:
    texts = ["قيمتش خيلي گرونه ولي کیفیتش عالیه", "ارسال دیر بود", "  عالی  "]
    assert tiny_tagger.tag(texts, tiny_tagger.normalise(texts)) == tiny_tagger.tag(texts)
