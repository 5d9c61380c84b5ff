"""The company's codebook: theme ids that last across runs, and analysts' edits applied to every later report.

A new run's themes are matched to the earlier run's: an aspect theme by its aspect, an emerging one by the
statements the two share and, when the data has moved on, by the words they use (the centroid of their words, which
needs no fitted vocabulary and so compares across runs). The edits (rename, merge, split, hide, move) then act on
where each statement sits, one pure function (`apply_edits`) that both the report (`Curator`, a step of the
analysis) and the workspace's stored membership use, so the two cannot disagree.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from bazkhord.data.record import FeedbackRecord
from bazkhord.model.themes.found import FoundTheme
from bazkhord.model.themes.report import SubTheme
from bazkhord.model.themes.statements import Statement

ACTIONS = ("rename", "rename_sub", "merge", "split", "hide", "move")
SIGNATURE_WORDS = 200  # the centroid keeps its heaviest words: enough to compare, small enough to store
MIN_SHARED = 0.3  # Jaccard of statements for two runs' themes to be one
MIN_SIMILAR = 0.6  # cosine of the centroids, when they share too few statements
_WORDS = re.compile(r"[^\W\d_]{2,}")

Key = tuple[str, int]  # a statement: its comment's id and its start in the comment
Place = tuple[int, int | None]  # its theme and sub-theme


@dataclass(frozen=True)
class Edit:
    action: str  # one of ACTIONS
    theme: int | None = None  # rename, merge (the one merged away), split (the sub-theme's theme), hide
    target: int | None = None  # merge and move: the theme that receives; split: the theme made of the sub-theme
    subtheme: int | None = None  # rename_sub, split
    statement: Key | None = None  # move
    label: str | None = None  # rename, rename_sub

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown codebook action {self.action!r}: one of {', '.join(ACTIONS)}")


@dataclass
class Names:
    """What the edits say of names and visibility, beside where the statements sit."""

    labels: dict[int, str] = field(default_factory=dict)
    sub_labels: dict[int, str] = field(default_factory=dict)
    hidden: set[int] = field(default_factory=set)
    merged_into: dict[int, int] = field(default_factory=dict)
    split_from: dict[int, int] = field(default_factory=dict)  # theme made of a sub-theme -> that sub-theme


def apply_edits(places: Mapping[Key, Place], edits: Iterable[Edit]) -> tuple[dict[Key, Place], Names]:
    """Where each statement sits after the edits, oldest edit first, and the names they give."""
    placed = dict(places)
    names = Names()
    for edit in edits:
        if edit.action == "rename" and edit.theme is not None and edit.label:
            names.labels[edit.theme] = edit.label
        elif edit.action == "rename_sub" and edit.subtheme is not None and edit.label:
            names.sub_labels[edit.subtheme] = edit.label
        elif edit.action == "hide" and edit.theme is not None:
            names.hidden.add(edit.theme)
        elif edit.action == "merge" and edit.theme is not None and edit.target is not None and edit.theme != edit.target:
            names.merged_into[edit.theme] = edit.target
            placed = {k: (edit.target, sub) if theme == edit.theme else (theme, sub) for k, (theme, sub) in placed.items()}
        elif edit.action == "split" and edit.subtheme is not None and edit.target is not None:
            names.split_from[edit.target] = edit.subtheme
            placed = {k: (edit.target, None) if sub == edit.subtheme else (theme, sub) for k, (theme, sub) in placed.items()}
        elif edit.action == "move" and edit.statement is not None and edit.target is not None and edit.statement in placed:
            placed[edit.statement] = (edit.target, None)
    return placed, names


# -- matching across runs ---------------------------------------------------------------------------------------
def signature(texts: Iterable[str]) -> dict[str, float]:
    """The centroid of the texts' word counts, unit length, its heaviest words only."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(set(_WORDS.findall(text)))
    top = counts.most_common(SIGNATURE_WORDS)
    norm = math.sqrt(sum(n * n for _, n in top)) or 1.0
    return {word: round(n / norm, 5) for word, n in top}


def cosine(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    return sum(v * b.get(w, 0.0) for w, v in a.items())


def jaccard(a: set[Key], b: set[Key]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


@dataclass
class KnownTheme:
    """A theme of the codebook as the last run left it."""

    id: int
    kind: str
    aspect: str | None
    signature: dict[str, float]
    statements: set[Key] = field(default_factory=set)
    subthemes: dict[int, set[Key]] = field(default_factory=dict)


@dataclass
class Group:
    """A theme (or sub-theme) of the new run, to be matched."""

    kind: str
    aspect: str | None
    statements: set[Key]
    signature: dict[str, float]


def match(groups: Sequence[Group], known: Sequence[KnownTheme]) -> list[int | None]:
    """The known theme each group continues, or None for a new one; each known theme continues at most once. An
    aspect theme continues its aspect's; the others the pair that shares most statements, else the most similar
    words, best pairs first."""
    result: list[int | None] = [None] * len(groups)
    taken: set[int] = set()
    for i, group in enumerate(groups):
        if group.kind == "aspect":
            same = next((t for t in known if t.kind == "aspect" and t.aspect == group.aspect), None)
            if same is not None:
                result[i] = same.id
                taken.add(same.id)
    pairs = []
    for i, group in enumerate(groups):
        if result[i] is not None or group.kind == "aspect":
            continue
        for theme in known:
            if theme.kind == "aspect":
                continue
            shared, similar = jaccard(group.statements, theme.statements), cosine(group.signature, theme.signature)
            if shared >= MIN_SHARED or similar >= MIN_SIMILAR:
                pairs.append((shared >= MIN_SHARED, shared, similar, i, theme.id))
    for _, _, _, i, theme_id in sorted(pairs, reverse=True):
        if result[i] is None and theme_id not in taken:
            result[i] = theme_id
            taken.add(theme_id)
    return result


def match_subthemes(groups: Sequence[set[Key]], known: Mapping[int, set[Key]]) -> list[int | None]:
    """Sub-themes of one theme: each continues the earlier one it shares most statements with."""
    pairs = sorted(((jaccard(g, members), i, sub) for i, g in enumerate(groups) for sub, members in known.items()
                    if jaccard(g, members) >= MIN_SHARED), reverse=True)
    result: list[int | None] = [None] * len(groups)
    taken: set[int] = set()
    for _, i, sub in pairs:
        if result[i] is None and sub not in taken:
            result[i] = sub
            taken.add(sub)
    return result


def statement_key(statement: Statement, records: Sequence[FeedbackRecord]) -> Key:
    record_id = records[statement.comment].id
    return (record_id if record_id is not None else f"#{statement.comment}", statement.start)


# -- the analysis step ------------------------------------------------------------------------------------------
@dataclass
class Curator:
    """The codebook as a step of the theme analysis: gives the found themes their lasting ids, applies the edits to
    them before they are measured (so a merged theme's impact and trend are those of its statements), and keeps
    where the run put each statement before the edits (`found_places`), for the store."""

    known: list[KnownTheme] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)
    labels: dict[int, str] = field(default_factory=dict)  # labels of themes the edits make (split) or keep (merge)
    found_places: dict[Key, Place] = field(default_factory=dict)
    subthemes: dict[int, SubTheme] = field(default_factory=dict)  # as the run found them, by (stand-in) id
    signatures: dict[int, dict[str, float]] = field(default_factory=dict)  # the found themes' word centroids, by id
    names: Names = field(default_factory=Names)
    _next_new: int = -1

    def new_id(self) -> int:
        """A stand-in id for a theme or sub-theme the codebook has not met (negative: the store gives it a real one)."""
        self._next_new -= 1
        return self._next_new + 1

    def apply(self, found: Sequence[FoundTheme], statements: Sequence[Statement], records: Sequence[FeedbackRecord]
              ) -> list[FoundTheme]:
        keys = [statement_key(st, records) for st in statements]
        groups = [Group(f.kind, f.aspect, {keys[k] for k in f.members},
                        signature(statements[k].normalised for k in f.members)) for f in found]
        ids = [theme_id if theme_id is not None else self.new_id() for theme_id in match(groups, self.known)]
        self.signatures = {theme_id: group.signature for group, theme_id in zip(groups, ids, strict=True)}
        known = {t.id: t for t in self.known}
        places: dict[Key, Place] = {}
        subs_of: dict[int, SubTheme] = {}
        base: dict[int, FoundTheme] = {}
        for f, theme_id in zip(found, ids, strict=True):
            f.codebook_id = theme_id
            base[theme_id] = f
            sub_groups = [{keys[k] for k in rows} for rows in f.sub_members]
            earlier = known[theme_id].subthemes if theme_id in known else {}
            sub_ids = [s if s is not None else self.new_id() for s in match_subthemes(sub_groups, earlier)]
            f.sub_ids = list[int | None](sub_ids)
            for sub, sub_id in zip(f.subthemes, sub_ids, strict=False):
                subs_of[sub_id] = sub
            sub_of = {k: sub_id for rows, sub_id in zip(f.sub_members, sub_ids, strict=False) for k in rows}
            for k in f.members:
                places[keys[k]] = (theme_id, sub_of.get(k))
        self.found_places, self.subthemes = places, subs_of
        placed, self.names = apply_edits(places, self.edits)
        index = {key: k for k, key in enumerate(keys)}
        members: dict[int, list[int]] = defaultdict(list)
        sub_rows: dict[int, dict[int | None, list[int]]] = defaultdict(lambda: defaultdict(list))
        for key, (placed_theme, placed_sub) in placed.items():
            members[placed_theme].append(index[key])
            sub_rows[placed_theme][placed_sub].append(index[key])
        result: list[FoundTheme] = []
        order = [t for t in ids if t in members] + [t for t in members if t not in ids]
        for theme_id in order:
            rows = sorted(members[theme_id])
            template = base.get(theme_id)
            if template is None:  # made by a split, or the receiver of a merge that this run did not find
                origin = next(f for f in found if set(rows) & set(f.members))
                template = replace(origin, kind="emerging" if origin.kind == "aspect" else origin.kind, aspect=None,
                                   quotes=None, label=self.labels.get(theme_id, ""), subthemes=[], sub_members=[],
                                   sub_ids=[])
                split = self.names.split_from.get(theme_id)
                if split is not None and split in subs_of:
                    template.label = self.labels.get(theme_id) or self.names.sub_labels.get(split, subs_of[split].label)
                    template.keyphrases = subs_of[split].keyphrases
            kept = [(s, sub_rows[theme_id][s]) for s in sub_rows[theme_id] if s is not None and s in subs_of]
            kept.sort(key=lambda pair: -len(pair[1]))
            subthemes = [replace(subs_of[s], label=self.names.sub_labels.get(s, subs_of[s].label),
                                 statements=len(r), comments=len({statements[k].comment for k in r}),
                                 codebook_id=s)
                         for s, r in kept]
            label = self.names.labels.get(theme_id)
            result.append(replace(template, members=rows, subthemes=subthemes, sub_members=[r for _, r in kept],
                                  sub_ids=[s for s, _ in kept], codebook_id=theme_id, hidden=theme_id in self.names.hidden,
                                  label_override=label if label is not None else template.label_override))
        return result
