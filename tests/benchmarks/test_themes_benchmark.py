"""The theme benchmark's judges for a domain without a taxonomy: the hand labels it reads, the mood and filler list
labels are judged against, the analyst's edited codebook, and the section it writes (the runs are a benchmark)."""

from __future__ import annotations

import json

from bazkhord.data.taxonomy import load_taxonomy
from benchmarks import themes


def test_the_hotel_labels_hold_ids_and_codes_only() -> None:
    rows = [json.loads(line) for line in themes.HOTEL_CAUSES.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 257 and sum(1 for r in rows if r["causes"]) == 251
    assert all(set(r) == {"split", "source_id", "causes"} and r["split"] in ("train", "dev") for r in rows)
    assert len({(r["split"], r["source_id"]) for r in rows}) == len(rows)


def test_labels_are_judged_against_our_mood_and_filler_list() -> None:
    filler = themes.filler_words()
    for label in ("نمیدونم", "کد تخفیف", "دوست نداشتم", "خیلی بد بود", "در حد سه ستاره", "اقامت داشتیم"):
        assert not themes.names_a_cause(label, filler), label
    for label in ("ترجمه کتاب", "صبحانه", "اینترنت اتاق", "برخورد پرسنل", "قیمت"):
        assert themes.names_a_cause(label, filler), label


def test_the_edited_codebook_only_regroups_the_draft() -> None:
    edited = load_taxonomy(themes.HOTEL_EDITED)
    assert edited.domain == "discovered" and 8 <= len(edited.aspects) <= 15
    assert all(a.seeds for a in edited.aspects)


def test_the_section_reports_what_it_measured() -> None:
    lines = themes.render_domains(
        [{"set": "taaghche_books", "domain": "books (unseen)", "fits": {"ecommerce": 0.01, "food_delivery": 0.02},
          "chosen": "none: discovered"}],
        [{"model": "sample model", "variant": "discovery alone", "themes": 3, "macro_f1": 0.5,
          "per_cause": {"staff": 0.5}, "covered": 0.9, "labels": 4, "cause_labels": 3, "filler_labels": ["هیچی"],
          "seconds": 1.0}], 10, None, [])
    text = "\n".join(lines)
    assert "none: discovered" in text and "| discovery alone | 3 | **0.5** | 0.5 | 90% | 3 of 4 |" in text
    assert "«هیچی»" in text
