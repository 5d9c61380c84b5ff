"""Split a raw comment into sentence and clause spans, keeping offsets into the raw text.

Sentences end where hazm's sentence tokenizer ends them (. ! ? ؟ and new lines); clauses also break at
contrastive and additive connectives (ولی, اما, ضمنا, همچنین, but ...) and semicolons, because one
Persian sentence often praises the product and blames the courier («... دیر رسید ولی کیفیتش عالیه»).
The patterns accept Arabic ي/ك so they work on raw, unnormalised text.
"""

from __future__ import annotations

import re

from bazkhord.model.base import Evidence

_Y = "[یيى]"
_K = "[کك]"
# As hazm's sentence tokenizer: punctuation ends a sentence only before white space, so «a.b@x.com» holds.
_SENTENCE_END = r"[.!?؟!⸮؛;]+(?=\s|$)|\n+"
# Additive «ضمنا / همچنین» also open a new clause; «تازه» does not split: it is also "fresh".
_CONNECTIVE = rf"(?:ول{_Y}(?:\s*خب)?|ام{_Y}?ا|اما|البته|در حال{_Y}\s*{_K}ه|هرچند|ضمنا|همچن{_Y}ن|but|vali|amma)"
_BREAK = re.compile(rf"{_SENTENCE_END}|[،,]?\s+(?={_CONNECTIVE}(?:\s|$))", re.IGNORECASE)
_WORDY = re.compile(r"\w", re.UNICODE)


def split_segments(raw: str) -> list[Evidence]:
    """Non-empty clause spans of `raw`, in order. A text with no break is one span."""
    spans: list[Evidence] = []
    start = 0
    for match in _BREAK.finditer(raw):
        _append(raw, start, match.start() if match.group(0).strip() in ("", "،", ",") else match.end(), spans)
        start = match.end()
    _append(raw, start, len(raw), spans)
    if not spans:  # emoji or punctuation only: the whole text is its own evidence
        left = len(raw) - len(raw.lstrip())
        spans.append(Evidence(raw.strip(), left, left + len(raw.strip())))
    return spans


def _append(raw: str, start: int, end: int, spans: list[Evidence]) -> None:
    piece = raw[start:end]
    left = len(piece) - len(piece.lstrip())
    right = len(piece.rstrip())
    if right <= left or not _WORDY.search(piece):
        return
    spans.append(Evidence(raw[start + left : start + right], start + left, start + right))


def locate_parts(whole: str, parts: list[str]) -> list[tuple[int, int]] | None:
    """Character spans of `parts` (in order, each normalised on its own) inside `whole` (normalised as one text), or
    None when one cannot be found. Spaces and half-spaces are ignored in the match, because the normaliser may place
    them differently at a clause's edges than inside the whole comment."""
    kept = [i for i, ch in enumerate(whole) if not _is_gap(ch)]
    skeleton = "".join(whole[i] for i in kept)
    spans: list[tuple[int, int]] = []
    cursor = 0
    for part in parts:
        key = without_gaps(part)
        at = skeleton.find(key, cursor) if key else -1
        if at < 0:
            return None
        spans.append((kept[at], kept[at + len(key) - 1] + 1))
        cursor = at + len(key)
    return spans


def without_gaps(text: str) -> str:
    """`text` without spaces and half-spaces (ZWNJ)."""
    return "".join(ch for ch in text if not _is_gap(ch))


def _is_gap(ch: str) -> bool:
    return ch.isspace() or ch == "\u200c"
