"""A theme as clustering found it, before it is measured and ranked: what the analysis and the codebook share."""

from __future__ import annotations

from dataclasses import dataclass, field

from bazkhord.model.themes.report import Quote, SubTheme


@dataclass
class FoundTheme:
    kind: str  # "aspect" or "emerging"
    aspect: str | None
    members: list[int]  # statement indices
    subthemes: list[SubTheme]
    keyphrases: list[str]
    quotes: list[Quote] | None = None  # chosen by the clustering, for an emerging theme
    label: str | None = None  # an emerging theme's label ("" when nothing names a cause)
    sub_members: list[list[int]] = field(default_factory=list)  # each sub-theme's statement indices
    # Set by the codebook (model/themes/codebook.py): the theme's lasting id (negative: not in the codebook yet), its
    # sub-themes' ids, and the analyst's name for it.
    codebook_id: int | None = None
    sub_ids: list[int | None] = field(default_factory=list)
    label_override: str | None = None
    hidden: bool = False  # measured and stored (so the workspace can show it back), left out of the report
