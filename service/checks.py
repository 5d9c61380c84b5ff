"""What a request carries that its schema cannot judge alone: limits from the settings, the accepted range of
times, text that normalises to nothing, NUL characters in values that reach the store. Each check raises an
`ApiError` (4xx) that says what is wrong and where in the request."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from bazkhord.service.errors import ApiError
from bazkhord.service.schemas import ErrorDetail
from bazkhord.service.settings import Settings

Where = list[str | int]


def check_limits(texts: list[str], as_items: bool, settings: Settings, max_texts: int | None = None,
                 normalise: Callable[[list[str]], list[str]] | None = None) -> None:
    """Count and size limits, then emptiness: blank text, and (with the model's `normalise`) text that
    normalises to nothing, such as diacritics, tatweel or dots alone."""
    limit = max_texts or settings.max_texts_per_request
    if len(texts) > limit:
        raise ApiError(413, "too_many_texts", f"{len(texts)} texts in one call; the limit is {limit}",
                       [ErrorDetail(location=["items"], message="split the batch (or, for themes, use `bazkhord report`)")])

    def where(index: int) -> Where:
        return ["items", index, "text"] if as_items else ["text"]

    for index, text in enumerate(texts):
        if len(text) > settings.max_chars_per_text:
            raise ApiError(413, "text_too_long",
                           f"text has {len(text)} characters; the limit is {settings.max_chars_per_text}",
                           [ErrorDetail(location=where(index), message="shorten or split the text")])
        if is_blank(text):
            raise ApiError(422, "empty_text", "a text is empty or only whitespace and invisible marks",
                           [ErrorDetail(location=where(index), message="send the comment's words")])
        if "\x00" in text:
            raise ApiError(422, "nul_in_text", "a text contains a NUL character",
                           [ErrorDetail(location=where(index), message="remove NUL (\\u0000) characters")])
    # A text with no letter, digit or symbol is normalised with the model's own normaliser (which may turn a
    # smiley into a word); when there is still none, the model would read only punctuation or nothing at all.
    doubtful = [i for i, text in enumerate(texts) if not has_content(text)]
    if doubtful and normalise is not None:
        for index, normalised in zip(doubtful, normalise([texts[i] for i in doubtful]), strict=True):
            if not has_content(normalised):
                raise ApiError(422, "empty_text", "a text has nothing left once normalised (only diacritics, "
                               "tatweel, punctuation or marks): there is no comment to tag",
                               [ErrorDetail(location=where(index), message="send the comment's words")])


# Letters and symbols that render as nothing (Hangul fillers, the blank Braille pattern): Unicode calls them letters
# or symbols, but a comment of them alone says nothing, and spam and placeholder texts use them to look non-empty.
BLANK_LOOKING = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def is_blank(text: str) -> bool:
    """Nothing but white space, invisible format marks (ZWNJ, ZWJ, BOM, direction marks) and blank-looking letters."""
    return all(c.isspace() or c in BLANK_LOOKING or unicodedata.category(c) == "Cf" for c in text)


def has_content(text: str) -> bool:
    """A letter (not a modifier such as tatweel), a digit or a symbol such as an emoji: the normaliser keeps these."""
    for c in text:
        if c in BLANK_LOOKING:
            continue
        category = unicodedata.category(c)
        if (category[0] in "LN" and category != "Lm") or category == "So":
            return True
    return False


def utc_time(moment: datetime, where: Where) -> datetime:
    """`moment` as aware UTC (a time without a zone is taken as UTC); 422 when it cannot be expressed in UTC."""
    try:
        return moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    except (OverflowError, ValueError):
        raise ApiError(422, "date_out_of_range", f"{moment.isoformat()} is outside the times UTC can express",
                       [ErrorDetail(location=where, message="give a time between years 1 and 9999 in UTC")]) from None


def check_created_at(moment: datetime | None, where: Where, settings: Settings) -> datetime | None:
    """A comment's time in UTC, within the accepted range (`min_created_at` to now + `max_future_hours`)."""
    if moment is None:
        return None
    value = utc_time(moment, where)
    latest = datetime.now(UTC) + timedelta(hours=settings.max_future_hours)
    if not settings.min_created_at <= value <= latest:
        raise ApiError(422, "date_out_of_range",
                       f"created_at {moment.isoformat()} is outside the accepted range "
                       f"{settings.min_created_at.isoformat()} to {latest.isoformat(timespec='seconds')}",
                       [ErrorDetail(location=where, message="a comment's time must fall in the accepted range "
                                    "(BAZKHORD_MIN_CREATED_AT, BAZKHORD_MAX_FUTURE_HOURS)")])
    return value


def check_no_nul(values: Sequence[tuple[Where, str | None]]) -> None:
    """NUL cannot be stored in PostgreSQL text and has no place in an id or a filter value."""
    for where, value in values:
        if value is not None and "\x00" in value:
            raise ApiError(422, "nul_in_value", f"{'.'.join(str(w) for w in where)} contains a NUL character",
                           [ErrorDetail(location=where, message="remove NUL (\\u0000) characters")])
