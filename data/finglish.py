"""Finglish: Persian typed in Latin letters («kheili khub bud mamnoon»), found and written in Persian script.

Many Iranian customers type Persian with a Latin keyboard. A model trained on Persian script reads such a comment
as noise (or as English), so the normaliser transliterates it first. Only runs of Latin words that read as
Persian are changed: English («very good»), product codes («SM-A525F», «iPhone 13»), placeholders («[PHONE]»)
and brand acronyms stay as they are.

How a run is judged: its words are looked up in bazkhord's own table of feedback words (`finglish_fa.tsv`) and
in a list of common English words; a run is Finglish when it has more table words than English ones and either
two table words or nothing but table words. Words of a Finglish run that the table lacks go through the `finglish`
package (MIT: letter rules ranked by Persian word frequency).
"""

from __future__ import annotations

import contextlib
import io
import re
from functools import lru_cache
from importlib.resources import files
from typing import Any

TABLE_FILE = "finglish_fa.tsv"
# A word of Latin letters (apostrophes inside, as in «ma'loom»); a token with digits or an underscore is a code.
_WORD = re.compile(r"(?<![\w\[])[A-Za-z]+(?:'[A-Za-z]+)*(?![\w\]])")
# Latin words separated by spaces and light punctuation only: one run. Persian script or digits end it.
_RUN = re.compile(r"[A-Za-z][A-Za-z'\s,.!?؟،\-]*[A-Za-z]|[A-Za-z]")
_ACRONYM = re.compile(r"^[A-Z]{2,}$")
_LATIN = re.compile(r"[A-Za-z]")

# Common English words of reviews and chat; a run with as many of these as table words is left alone.
_ENGLISH_WORDS = """
a an the is are was were be been being am do does did done have has had not no yes very so too really quite just
and or but if then than because of to for from in on at by with without about after before into over under again
i me my we our you your he she it its they them their this that these those there here what which who when where why
how all any some more most much many few good great nice excellent perfect amazing awesome best better love like liked
bad worse worst poor terrible awful horrible hate late early fast slow quick delivery delivered deliver order ordered
product item items price cheap expensive quality service support customer app website site refund return returned
broken damaged wrong missing fake original thanks thank please ok okay cool fine happy sad angry disappointed
recommend recommended never ever always still only also even well bit lot little big small new old same other time
day days week hour hours minute minutes got get give gave came come went go send sent package box food cold hot
fresh taste tasty delicious driver courier call called answer answered problem issue issues help helpful staff
"""
ENGLISH = frozenset(_ENGLISH_WORDS.split())


@lru_cache(maxsize=1)
def table() -> dict[str, str]:
    """bazkhord's Finglish -> Persian table (lower-case keys)."""
    entries: dict[str, str] = {}
    for line in files("bazkhord.data").joinpath(TABLE_FILE).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            latin, persian = line.split("\t")
            entries.setdefault(latin.strip().lower(), persian.strip())
    return entries


@lru_cache(maxsize=1)
def _package() -> Any:
    """The `finglish` package's word converter; it prints while loading its word list, so stdout is kept clean."""
    import importlib

    with contextlib.redirect_stdout(io.StringIO()):
        return importlib.import_module("finglish.f2p")


@lru_cache(maxsize=16_384)
def transliterate_word(word: str) -> str:
    """One Finglish word in Persian script: the table first, else the package's most likely reading."""
    lower = word.lower()
    known = table().get(lower)
    if known is not None:
        return known
    try:
        candidates = _package().f2p_word(lower)
    except Exception:  # the package has no reading for some letter mixes: keep the word as typed
        return word
    return str(candidates[0][0]) if candidates else word


def _acronym(word: str) -> bool:
    """«SMS», «LG», «IR»: capitals that are no table word (a shouted «KHEILI» is still Finglish)."""
    return bool(_ACRONYM.match(word)) and word.lower() not in table()


def is_finglish(words: list[str]) -> bool:
    """Whether a run of Latin words reads as Persian (see the module's docstring)."""
    lower = [w.lower() for w in words if not _acronym(w)]
    if not lower:
        return False
    known = sum(1 for w in lower if w in table())
    english = sum(1 for w in lower if w in ENGLISH and w not in table())
    both = sum(1 for w in lower if w in ENGLISH and w in table())  # «bad», «to», «in»: they decide nothing
    decisive = known - both
    return decisive > english and (decisive >= 2 or known == len(lower))


def transliterate(text: str) -> str:
    """`text` with every Finglish run in Persian script; everything else untouched."""
    if not _LATIN.search(text):  # most comments: nothing to do (this runs inside every normalise)
        return text

    def run(match: re.Match[str]) -> str:
        chunk = match.group(0)
        words = _WORD.findall(chunk)
        if not words or not is_finglish(words):
            return chunk
        return _WORD.sub(lambda w: w.group(0) if _acronym(w.group(0)) else transliterate_word(w.group(0)), chunk)

    return _RUN.sub(run, text)
