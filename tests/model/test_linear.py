"""Tiny models: overfit, save, reload, predict the same (spaCy's test_overfitting_IO)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bazkhord.model.base import Predictor
from bazkhord.model.linear import TfidfClassifier
from tests.conftest import TINY

TEXTS = [r["text"] for r in TINY] * 3
LABELS = [r["sentiment"] for r in TINY] * 3


def test_tfidf_classifier_overfits_and_is_a_predictor() -> None:
    model = TfidfClassifier(C=50).fit(TEXTS, LABELS)
    assert isinstance(model, Predictor)
    assert model.predict(TEXTS[:8]) == LABELS[:8]
    proba = model.predict_proba(TEXTS)
    assert proba.shape == (len(TEXTS), len(set(LABELS)))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)


def test_save_load_predicts_the_same(tmp_path: Path) -> None:
    model = TfidfClassifier().fit(TEXTS, LABELS)
    files = model.save(tmp_path / "m")
    assert set(files) == {"weights.safetensors", "meta.json"}
    assert not list(tmp_path.rglob("*.pkl"))
    loaded = TfidfClassifier.load(tmp_path / "m")
    unseen = ["یه متن تازه که مدل ندیده", "کیفیت بد"]
    np.testing.assert_array_equal(loaded.predict_proba(unseen), model.predict_proba(unseen))
    assert loaded.classes_ == model.classes_


def test_single_class_is_refused() -> None:
    with pytest.raises(ValueError, match="at least two classes"):
        TfidfClassifier().fit(["a b", "c d"], ["positive", "positive"])


def test_rare_class_falls_back_to_plain_logistic() -> None:
    model = TfidfClassifier().fit(["خوب", "خوب است", "بد"], ["positive", "positive", "negative"])
    assert model.predict(["بد"]) == ["negative"]


def test_direct_tfidf_equals_scikit_learns_transform(sample_model: object) -> None:
    from bazkhord.model.linear import _tfidf
    from tests.conftest import SAMPLE_TEST

    tagger = sample_model.tagger  # type: ignore[attr-defined]
    texts = tagger.normalise([line for line in SAMPLE_TEST.read_text(encoding="utf-8").splitlines()[:300]])
    texts += ["", "?!", "خ", "zzzz qqqq", "خوب خوب خوب خوب"]  # no known n-gram, one character, repeats
    vectorizers = [*tagger.sentiment_.features_.vectorizers_, *tagger.aspects_.features_.vectorizers_]
    for vectorizer in vectorizers:
        expected = vectorizer.transform(texts)
        found = _tfidf(vectorizer, texts)
        assert found.shape == expected.shape and found.has_sorted_indices
        assert np.array_equal(found.indptr, expected.indptr) and np.array_equal(found.indices, expected.indices)
        np.testing.assert_allclose(found.data, expected.data, rtol=0, atol=1e-12)
