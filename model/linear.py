"""The TF-IDF baseline: word and character n-grams, calibrated logistic regression.

scikit-learn fits; prediction uses the learned arrays directly, so what is saved (safetensors for arrays,
JSON for vocabularies and label order; never a pickle) is exactly what predicts, in memory or reloaded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from safetensors.numpy import load_file, save_file
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

WEIGHTS_FILE = "weights.safetensors"
META_FILE = "meta.json"


@dataclass(frozen=True)
class TfidfParams:
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (2, 5)
    min_df: int = 2
    max_features: int = 200_000


class TfidfFeatures:
    """Word n-grams plus character n-grams inside word boundaries (robust to typos and missing half-spaces)."""

    def __init__(self, params: TfidfParams | None = None) -> None:
        self.params = params or TfidfParams()

    def _vectorizers(self, vocabularies: tuple[dict[str, int], dict[str, int]] | None = None) -> list[TfidfVectorizer]:
        p = self.params
        word_vocab, char_vocab = vocabularies or (None, None)
        return [
            TfidfVectorizer(analyzer="word", token_pattern=r"(?u)[^\s]+", ngram_range=p.word_ngrams, min_df=p.min_df,
                            max_features=p.max_features, sublinear_tf=True, lowercase=False, vocabulary=word_vocab),
            TfidfVectorizer(analyzer="char_wb", ngram_range=p.char_ngrams, min_df=p.min_df,
                            max_features=p.max_features, sublinear_tf=True, lowercase=False, vocabulary=char_vocab),
        ]

    def fit(self, texts: Sequence[str]) -> Self:
        vectorizers = self._vectorizers()
        for vectorizer in vectorizers:
            try:
                vectorizer.fit(texts)
            except ValueError:  # too few texts for min_df (tiny data sets): keep every n-gram instead
                vectorizer.set_params(min_df=1).fit(texts)
        self.vectorizers_ = vectorizers
        return self

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        return sp.hstack([_tfidf(v, texts) for v in self.vectorizers_], format="csr")

    def state(self, prefix: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {f"{prefix}idf_{i}": v.idf_.astype(np.float64) for i, v in enumerate(self.vectorizers_)}
        meta = {
            "params": asdict(self.params),
            "vocabularies": [{k: int(i) for k, i in v.vocabulary_.items()} for v in self.vectorizers_],
        }
        return arrays, meta

    @classmethod
    def from_state(cls, prefix: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> TfidfFeatures:
        params = meta["params"]
        features = cls(TfidfParams(tuple(params["word_ngrams"]), tuple(params["char_ngrams"]), params["min_df"],
                                   params["max_features"]))
        vocabularies = meta["vocabularies"]
        vectorizers = features._vectorizers((vocabularies[0], vocabularies[1]))
        for i, vectorizer in enumerate(vectorizers):
            vectorizer.idf_ = arrays[f"{prefix}idf_{i}"]
        features.vectorizers_ = vectorizers
        return features


def _tfidf(vectorizer: TfidfVectorizer, texts: Sequence[str]) -> sp.csr_matrix:
    """`vectorizer.transform(texts)` for a fitted vectorizer with sublinear tf and l2 norm, computed directly.

    scikit-learn's own transform re-validates its parameters and input on every call, a few milliseconds each
    time: most of the cost of tagging one comment. The arithmetic is the same (counts over the fixed
    vocabulary, 1 + log tf, times idf, rows scaled to unit length); `tests/model/test_linear.py` holds the two
    equal.
    """
    analyse = vectorizer.build_analyzer()
    vocabulary: dict[str, int] = vectorizer.vocabulary_
    indices: list[int] = []
    counts: list[int] = []
    indptr = [0]
    for text in texts:
        row: dict[int, int] = {}
        for feature in analyse(text):
            j = vocabulary.get(feature)
            if j is not None:
                row[j] = row.get(j, 0) + 1
        indices.extend(row)
        counts.extend(row.values())
        indptr.append(len(indices))
    matrix = sp.csr_matrix((np.asarray(counts, dtype=np.float64), np.asarray(indices, dtype=np.int32),
                            np.asarray(indptr, dtype=np.int64)), shape=(len(texts), len(vocabulary)))
    matrix.sort_indices()
    if vectorizer.sublinear_tf:
        np.log(matrix.data, out=matrix.data)
        matrix.data += 1.0
    matrix.data *= vectorizer.idf_[matrix.indices]
    rows = np.repeat(np.arange(len(texts)), np.diff(matrix.indptr))
    lengths = np.sqrt(np.bincount(rows, weights=matrix.data**2, minlength=len(texts)))
    matrix.data /= lengths[rows]  # a row with no known n-gram has no entries, so nothing divides by zero
    return matrix


class CalibratedLinear:
    """Logistic regression whose scores are Platt-calibrated on cross-validated predictions."""

    def __init__(self, C: float = 1.0, class_weight: str | None = "balanced", calibration_folds: int = 3) -> None:
        self.C = C
        self.class_weight = class_weight
        self.calibration_folds = calibration_folds

    def fit(self, X: sp.csr_matrix, labels: Sequence[str]) -> Self:
        classes, counts = np.unique(np.asarray(labels), return_counts=True)
        if len(classes) < 2:
            raise ValueError(f"need at least two classes to train, found only {list(classes)}")
        base = LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=2000)
        folds = min(self.calibration_folds, int(counts.min()))
        if folds >= 2:
            fitted = CalibratedClassifierCV(base, method="sigmoid", cv=folds, ensemble=False).fit(X, labels)
            calibrated = fitted.calibrated_classifiers_[0]
            estimator = calibrated.estimator
            self.calib_a_ = np.array([c.a_ for c in calibrated.calibrators], dtype=np.float64)
            self.calib_b_ = np.array([c.b_ for c in calibrated.calibrators], dtype=np.float64)
        else:  # a class with one example cannot be cross-validated: plain logistic probabilities
            estimator = base.fit(X, labels)
            self.calib_a_ = np.zeros(0)
            self.calib_b_ = np.zeros(0)
        self.classes_ = [str(c) for c in estimator.classes_]
        self.coef_ = np.asarray(estimator.coef_, dtype=np.float64)
        self.intercept_ = np.asarray(estimator.intercept_, dtype=np.float64)
        return self

    def predict_proba(self, X: sp.csr_matrix) -> np.ndarray:
        scores = np.asarray(X @ self.coef_.T) + self.intercept_
        if self.calib_a_.size == 0:
            if len(self.classes_) == 2:
                p1 = 1.0 / (1.0 + np.exp(-scores[:, 0]))
                return np.column_stack([1 - p1, p1])
            scores = scores - scores.max(axis=1, keepdims=True)
            exp = np.exp(scores)
            return exp / exp.sum(axis=1, keepdims=True)
        calibrated = 1.0 / (1.0 + np.exp(scores * self.calib_a_ + self.calib_b_))
        if len(self.classes_) == 2:
            return np.column_stack([1 - calibrated[:, 0], calibrated[:, 0]])
        total = calibrated.sum(axis=1, keepdims=True)
        uniform = np.full_like(calibrated, 1.0 / len(self.classes_))
        return np.where(total > 0, calibrated / np.where(total > 0, total, 1), uniform)

    def state(self, prefix: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {f"{prefix}coef": self.coef_, f"{prefix}intercept": self.intercept_,
                  f"{prefix}calib_a": self.calib_a_, f"{prefix}calib_b": self.calib_b_}
        return arrays, {"classes": self.classes_, "C": self.C, "class_weight": self.class_weight}

    @classmethod
    def from_state(cls, prefix: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> CalibratedLinear:
        model = cls(C=meta["C"], class_weight=meta["class_weight"])
        model.classes_ = list(meta["classes"])
        model.coef_ = arrays[f"{prefix}coef"]
        model.intercept_ = arrays[f"{prefix}intercept"]
        model.calib_a_ = arrays[f"{prefix}calib_a"]
        model.calib_b_ = arrays[f"{prefix}calib_b"]
        return model


def write_component(folder: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(folder / WEIGHTS_FILE))
    (folder / META_FILE).write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    return {WEIGHTS_FILE: "weights", META_FILE: "vocabulary, labels and settings"}


def read_component(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    return load_file(str(folder / WEIGHTS_FILE)), json.loads((folder / META_FILE).read_text(encoding="utf-8"))


class TfidfClassifier:
    """Single-label text classifier: TF-IDF features + calibrated logistic regression. A `Predictor`."""

    def __init__(self, C: float = 0.5, class_weight: str | None = "balanced", features: TfidfParams | None = None) -> None:
        self.C = C
        self.class_weight = class_weight
        self.features = features or TfidfParams()

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> Self:
        self.features_ = TfidfFeatures(self.features).fit(texts)
        self.linear_ = CalibratedLinear(self.C, self.class_weight).fit(self.features_.transform(texts), labels)
        self.classes_ = self.linear_.classes_
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.linear_.predict_proba(self.features_.transform(texts))

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [self.classes_[i] for i in self.predict_proba(texts).argmax(axis=1)]

    def save(self, folder: Path) -> dict[str, str]:
        feature_arrays, feature_meta = self.features_.state("features.")
        linear_arrays, linear_meta = self.linear_.state("linear.")
        return write_component(folder, {**feature_arrays, **linear_arrays},
                               {"kind": "tfidf-classifier", "features": feature_meta, "linear": linear_meta})

    @classmethod
    def load(cls, folder: Path) -> TfidfClassifier:
        arrays, meta = read_component(folder)
        linear = CalibratedLinear.from_state("linear.", arrays, meta["linear"])
        model = cls(C=linear.C, class_weight=linear.class_weight)
        model.features_ = TfidfFeatures.from_state("features.", arrays, meta["features"])
        model.features = model.features_.params
        model.linear_ = linear
        model.classes_ = linear.classes_
        return model
