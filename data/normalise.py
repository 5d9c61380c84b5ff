"""Persian feedback normalisation: one pure function, configured by a frozen dataclass.

The config is saved inside every model folder and the model calls `normalise` itself, so training and
serving always see the same text (STYLE.md, practice 2).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from bazkhord.data.finglish import transliterate
from bazkhord.data.pii import PERSIAN_DIGITS, TO_LATIN_DIGITS, mask_pii

NORMALISER_VERSION = 2  # 2: Finglish transliterated (configs saved by version 1 keep it off)

ZWNJ = "\u200c"

# Arabic code points that Persian writers get from Arabic keyboards.
_LETTER_MAP = str.maketrans({"ي": "ی", "ى": "ی", "ك": "ک", "ة": "ه", "ۀ": "ه\u200cی", "ؤ": "و", "إ": "ا", "أ": "ا"})
_TO_PERSIAN_DIGITS = str.maketrans("0123456789", PERSIAN_DIGITS)
_DIACRITICS = re.compile("[\u064b-\u065f\u0670\u06d6-\u06ed]")
_TATWEEL = re.compile("\u0640+")
# Three or more of the same letter is never Persian spelling (ناامید has two), so squeeze to one.
_ELONGATION = re.compile(r"([^\W\d_])\1{2,}")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
_ZWNJ_RUNS = re.compile(f"{ZWNJ}{{2,}}")
_ZWNJ_AT_EDGES = re.compile(f"(^|\\s){ZWNJ}+|{ZWNJ}+(\\s|$)")
# «می شه» / «نمی خوام»: a detached verb prefix is joined to its verb with a half-space.
_DETACHED_MI = re.compile(r"(?<![\w\u200c])(ن?می) +(?=[\u0600-\u06ff])")

@dataclass(frozen=True)
class NormaliserConfig:
    """What `normalise` does. Frozen and saved with every model (manifest key `normaliser`)."""

    version: int = NORMALISER_VERSION
    use_hazm: bool = True
    digits: Literal["latin", "persian"] = "latin"
    mask_pii: bool = True
    squeeze_elongation: bool = True
    fix_zwnj: bool = True
    remove_diacritics: bool = True
    lowercase_latin: bool = True
    finglish: bool = True  # Persian typed in Latin letters is written in Persian script (data/finglish.py)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> NormaliserConfig:
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown normaliser setting(s) {unknown}; known: {sorted(known)}")
        if "version" in values and int(values["version"]) < 2:
            # A saved config of a model trained before transliteration (saved configs always name their version):
            # the model keeps reading text as it was trained to.
            values = {"finglish": False, **values}
        config = cls(**values)
        if config.version > NORMALISER_VERSION:
            raise ValueError(
                f"normaliser version {config.version} is newer than this bazkhord ({NORMALISER_VERSION}); upgrade"
            )
        if config.digits not in ("latin", "persian"):
            raise ValueError(f"normaliser digits must be 'latin' or 'persian', not {config.digits!r}")
        return config


DEFAULT_NORMALISER = NormaliserConfig()


@lru_cache(maxsize=8)
def _hazm_normaliser(remove_diacritics: bool) -> Any:
    import hazm.normalizer
    from hazm import Normalizer  # hazm is slow to import; only pay for it when text is normalised

    # hazm 0.10 rebuilds the same translation table on every `normalize` call (a sixth of its time); the table
    # depends only on two constant strings, so build it once. Same output, tested by the golden pairs.
    if not hasattr(hazm.normalizer.maketrans, "cache_info"):
        hazm.normalizer.maketrans = lru_cache(maxsize=4)(hazm.normalizer.maketrans)
    # Digits and PII are handled here, before hazm, so hazm must leave digits alone.
    return Normalizer(persian_numbers=False, remove_diacritics=remove_diacritics)


# Pure and costly (hazm), and training asks for the same text several times (dedupe, split, leak check, fit,
# fingerprints): one bounded memo here serves every caller.
@lru_cache(maxsize=65_536)
def normalise(text: str, config: NormaliserConfig = DEFAULT_NORMALISER) -> str:
    """Normalise one raw comment. Pure: the same text and config always give the same string."""
    text = text.translate(_LETTER_MAP).translate(TO_LATIN_DIGITS)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if config.mask_pii:
        text = mask_pii(text)
    if config.finglish:
        text = transliterate(text)
    text = _TATWEEL.sub("", text)
    if config.remove_diacritics:
        text = _DIACRITICS.sub("", text)
    if config.squeeze_elongation:
        text = _ELONGATION.sub(r"\1", text)
    if config.use_hazm:
        text = _hazm_normaliser(config.remove_diacritics).normalize(text)
    if config.fix_zwnj:
        text = _DETACHED_MI.sub(r"\1" + ZWNJ, text)
        text = _ZWNJ_RUNS.sub(ZWNJ, text)
        text = _ZWNJ_AT_EDGES.sub(r"\1\2", text)
    if config.lowercase_latin:
        text = text.lower()
        # Placeholders stay upper-case so they never collide with a customer's own words.
        text = re.sub(r"\[(url|email|iban|card|phone|national_id)\]", lambda m: m.group(0).upper(), text)
    if config.digits == "persian":
        text = text.translate(_TO_PERSIAN_DIGITS)
    text = _SPACES.sub(" ", text)
    return "\n".join(line.strip() for line in text.split("\n") if line.strip())


def normalise_many(texts: Sequence[str], config: NormaliserConfig = DEFAULT_NORMALISER) -> list[str]:
    return [normalise(text, config) for text in texts]
