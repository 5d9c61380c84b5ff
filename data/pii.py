"""Personal data in comments and metadata: e-mails, URLs, IBANs, bank cards, mobile numbers, national ids.

Built from the formats customers really type: digit groups with any separator (space, double space, no-break
space, ZWNJ, dash, dot, slash), an area code in parentheses, Persian and Arabic digits (mapped one to one to
Latin, so offsets hold for the raw text), a Sheba number without its `IR` after «شبا». What is not personal data
stays: order and tracking numbers, prices, dates, times (a national id must pass its check digit; a 16-digit card
and a 24-digit Sheba are taken whatever their digits, since a bank's own test numbers fail Luhn too).
`data/labels/pii_cases.jsonl` holds the variants and the near-misses the tests and `benchmarks/pii.py` score.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

PERSIAN_DIGITS = "۰۱۲۳۴۵۶۷۸۹"
ARABIC_DIGITS = "٠١٢٣٤٥٦٧٨٩"
TO_LATIN_DIGITS = str.maketrans(PERSIAN_DIGITS + ARABIC_DIGITS, "0123456789" * 2)
# Between two digit groups of one number: at most two of space, no-break space, ZWNJ and direction marks,
# dash, dot, slash or underscore.
SEP = r"[ \u00a0\u200c\u200e\u200f\u2009\-./_]{0,2}"
MOBILE = (r"(?<![\d\w])(?:(?:\+|00)?98" + SEP + r"\(?0?|\(?0)?9\d{2}\)?" + SEP
          + r"(?:\d" + SEP + r"){6}\d(?![\d])")
CARD = r"(?<![\d])\d{4}" + SEP + r"\d{4}" + SEP + r"\d{4}" + SEP + r"\d{4}(?![\d])"
# IR, then 24 digits in groups; without IR only right after «شبا» (a bare 24-digit number is rarer than a long id).
AFTER_SHEBA = "|".join(f"(?<=شبا{gap})" for gap in ("", " ", ":", ": ", " :", " : ", "  "))
IBAN = r"(?:\bIR" + SEP + "|" + AFTER_SHEBA + r")\d{2}" + SEP + r"(?:\d" + SEP + r"){21}\d(?![\d])"
NATIONAL_ID = r"(?<![\d])\d{3}" + r"[\-.]?" + r"\d{6}" + r"[\-.]?" + r"\d(?![\d])"

# Run in this order: a span found is blanked before the next pattern runs (an e-mail's domain is no URL).
PII_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("[EMAIL]", re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")),
    ("[URL]", re.compile(r"(?:https?://|www\.)[^\s]+|\b[\w-]+\.(?:com|ir|org|net|io|me)(?:/[^\s]*)?\b", re.I)),
    ("[IBAN]", re.compile(IBAN, re.I)),
    ("[CARD]", re.compile(CARD)),
    ("[PHONE]", re.compile(MOBILE)),
    ("[NATIONAL_ID]", re.compile(NATIONAL_ID)),
)


def national_id_valid(digits: str) -> bool:
    """The check digit of an Iranian national id (کد ملی); ten equal digits are no id."""
    if len(digits) != 10 or len(set(digits)) == 1:
        return False
    remainder = sum(int(digits[i]) * (10 - i) for i in range(9)) % 11
    return int(digits[9]) == (remainder if remainder < 2 else 11 - remainder)


@dataclass(frozen=True)
class PiiSpan:
    """Where a piece of personal data sits in a raw text, and the placeholder that stands for it."""

    start: int
    end: int
    placeholder: str


def find_pii(text: str) -> list[PiiSpan]:
    """The personal data in `text`, in order. The patterns run in PII_PATTERNS' order and a span already found is
    blanked, so an e-mail's domain is no URL; a later match over an earlier one takes both."""
    probe = text.translate(TO_LATIN_DIGITS)
    found: list[PiiSpan] = []
    for placeholder, pattern in PII_PATTERNS:
        for m in list(pattern.finditer(probe)):
            if placeholder == "[NATIONAL_ID]" and not national_id_valid(re.sub(r"\D", "", m.group())):
                continue
            span = PiiSpan(m.start(), m.end(), placeholder)
            kept = [f for f in found if f.end <= span.start or f.start >= span.end]
            covered = [f for f in found if f not in kept]
            found = [*kept, PiiSpan(min([span.start, *(f.start for f in covered)]),
                                    max([span.end, *(f.end for f in covered)]), placeholder)]
            probe = probe[:span.start] + "\x00" * (span.end - span.start) + probe[span.end:]
    return sorted(found, key=lambda f: f.start)


def mask_span(text: str, start: int, end: int, spans: Sequence[PiiSpan] | None = None) -> str:
    """`text[start:end]` with every piece of personal data in it (or cut by its edges) replaced by its placeholder."""
    spans = find_pii(text) if spans is None else spans
    out: list[str] = []
    at = start
    for span in spans:
        if span.end <= start or span.start >= end:
            continue
        out.append(text[at:max(at, span.start)])
        out.append(span.placeholder)
        at = min(end, span.end)
    out.append(text[at:end])
    return "".join(out)


def mask_pii(text: str) -> str:
    """Replace URLs, e-mails, IBANs, card, phone and national-id numbers with placeholders."""
    return mask_span(text, 0, len(text))


def mask_optional(value: str | None, mask: Callable[[str], str] = mask_pii) -> str | None:
    """A metadata value (channel, product, a report field) with its personal data masked; None stays None."""
    return None if value is None else mask(value)
