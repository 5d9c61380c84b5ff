"""Is the model reading comments like those it learned from? The domain profile and the out-of-domain check.

A model trained on e-commerce comments reads book reviews with words it never saw, and its sentiment there is a
guess (on taaghche_books the default model calls most reviews negative). Training keeps a profile of what the model
learned from (`domain_profile.json` in the model folder): the words of its training comments, their length, and
how sure the model is on its own dev split. A report (and `/v1/reports/summary`) measures the same on its comments:

- **unknown words**: the share of the comments' words (normalised, by occurrence) that no training comment had;
- **length**: the median comment length in words;
- **confidence**: the mean probability of the label the model chose.

The comments are out of the model's domain when their unknown-word share is at least `UNKNOWN_RATIO` times the dev
split's and `UNKNOWN_MARGIN` above it (new comments of the same business bring some new words; another business
brings many), when their median length is `LENGTH_RATIO` times the training comments' (or a third of it), or when
the model's mean confidence is `CONFIDENCE_DROP` below its dev split's. The thresholds were chosen on the shared
sets' dev splits with TF-IDF models trained on SnappFood and on Digikala comments, each read against its own dev split,
the other e-commerce and food sets, and hotel, movie and book reviews (docs/BENCHMARKS.md, "Themes").
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PROFILE_FILE = "domain_profile.json"
PROFILE_VERSION = 1
MAX_VOCABULARY = 60_000
UNKNOWN_RATIO = 2.5
UNKNOWN_MARGIN = 0.05
LENGTH_RATIO = 3.0
CONFIDENCE_DROP = 0.2
MIN_COMMENTS = 20  # fewer comments say too little about a domain to warn
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def words_of(normalised: str) -> list[str]:
    return _WORD.findall(normalised)


def build_profile(train_texts: Sequence[str], dev_texts: Sequence[str], dev_confidences: Sequence[float]) -> dict[str, Any]:
    """What the model learned from (normalised training texts) and how it fares on its dev split."""
    counts: Counter[str] = Counter()
    lengths = []
    for text in train_texts:
        found = words_of(text)
        counts.update(found)
        lengths.append(len(found))
    vocabulary = sorted(w for w, _ in counts.most_common(MAX_VOCABULARY))
    known = frozenset(vocabulary)
    dev = measure(dev_texts, dev_confidences, known)
    return {"version": PROFILE_VERSION, "vocabulary": vocabulary,
            "training": {"comments": len(train_texts), "median_words": float(np.median(lengths)) if lengths else 0.0},
            "dev": dev}


def measure(texts: Sequence[str], confidences: Sequence[float], known: frozenset[str]) -> dict[str, Any]:
    tokens = unknown = 0
    lengths = []
    for text in texts:
        found = words_of(text)
        lengths.append(len(found))
        tokens += len(found)
        unknown += sum(1 for w in found if w not in known)
    return {"comments": len(texts), "unknown_word_share": round(unknown / tokens, 4) if tokens else 0.0,
            "median_words": float(np.median(lengths)) if lengths else 0.0,
            "mean_confidence": round(float(np.mean(confidences)), 4) if len(confidences) else None}


def load_profile(folder: Path) -> dict[str, Any] | None:
    """The folder's profile, its vocabulary a frozenset (built once here, not at every check)."""
    path = folder / PROFILE_FILE
    if not path.exists():
        return None
    profile = dict(json.loads(path.read_text(encoding="utf-8")))
    profile["vocabulary"] = frozenset(profile["vocabulary"])
    return profile


@dataclass
class DomainShift:
    """How far the comments are from what the model learned from, with the figures that say so."""

    out_of_domain: bool
    comments: int  # the comments measured (a report measures a seeded sample of at most 5,000)
    unknown_word_share: float  # of their words, the share no training comment had
    training_unknown_word_share: float  # the same on the model's dev split
    median_words: float
    training_median_words: float
    mean_confidence: float | None  # the mean probability of the label the model chose
    training_mean_confidence: float | None  # the same on its dev split
    reasons: list[str] = field(default_factory=list)  # in English, with the figures
    message_fa: str = ""  # what the report's page says (Persian), empty when in domain


def domain_shift(profile: dict[str, Any] | None, texts: Sequence[str],
                 confidences: Sequence[float] = ()) -> DomainShift | None:
    """The check for these (normalised) comments; None without a profile (a model folder trained before it) or
    with fewer than MIN_COMMENTS comments."""
    if not profile or len(texts) < MIN_COMMENTS:
        return None
    here = measure(texts, confidences, frozenset(profile["vocabulary"]))  # a loaded profile's own set, not a copy
    dev = profile["dev"]
    reasons = []
    base = float(dev["unknown_word_share"])
    share = float(here["unknown_word_share"])
    if share >= UNKNOWN_RATIO * base and share >= base + UNKNOWN_MARGIN:
        reasons.append(f"{100 * share:.0f}% of the comments' words never occur in the model's training comments "
                       f"({100 * base:.0f}% on its own dev split)")
    trained_length = float(profile["training"]["median_words"])
    length = float(here["median_words"])
    if trained_length and (length >= LENGTH_RATIO * trained_length or length * LENGTH_RATIO <= trained_length):
        reasons.append(f"their median length is {length:g} words against {trained_length:g} in the training comments")
    confidence, dev_confidence = here["mean_confidence"], dev.get("mean_confidence")
    if confidence is not None and dev_confidence is not None and confidence <= dev_confidence - CONFIDENCE_DROP:
        reasons.append(f"the model's mean confidence is {confidence:.2f} against {dev_confidence:.2f} on its dev split")
    message = ""
    if reasons:
        message = (f"این نظرها با داده‌های آموزشی مدل فاصله دارند: {100 * share:.0f}٪ واژه‌هایشان در نظرهای آموزشی "
                   f"نبوده است (در داده ارزیابی خود مدل {100 * base:.0f}٪)، میانه طولشان {length:g} واژه است (در برابر "
                   f"{trained_length:g})"
                   + (f" و میانگین اطمینان مدل {confidence:.2f} است (در برابر {dev_confidence:.2f})"
                      if confidence is not None and dev_confidence is not None else "")
                   + ". برچسب احساس این گزارش را با احتیاط بخوانید و مدل را با نظرهای برچسب‌خورده خودتان آموزش دهید.")
    return DomainShift(bool(reasons), len(texts), share, base, length, trained_length, confidence, dev_confidence,
                       reasons, message)
