"""The evidence benchmark's judge: which clause of a sample comment carries which aspect, and how evidence is scored
(the runs themselves need a trained transformer: a benchmark)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from bazkhord.data.normalise import DEFAULT_NORMALISER
from bazkhord.model.base import AspectTag, Evidence
from benchmarks import evidence

from ..conftest import SAMPLE_TEST

TAGGER = SimpleNamespace(normaliser=DEFAULT_NORMALISER)


@pytest.fixture(scope="module")
def judged() -> list[evidence.Judged]:
    rows = [json.loads(line) for line in SAMPLE_TEST.read_text(encoding="utf-8").splitlines()]
    return evidence.judged_rows(rows, TAGGER)


def test_the_clauses_written_for_an_aspect_label_the_sample_comments(judged: list[evidence.Judged]) -> None:
    assert len(judged) >= 40
    for item in judged:
        assert len(item.clauses) >= 2 and len(item.carries) == len(item.clauses)
        assert set().union(*item.carries) == set(item.row["aspects"])
    # A comment of two aspects in two clauses: each clause carries its own.
    two = [j for j in judged if len(j.row["aspects"]) == 2 and all(len(c) == 1 for c in j.carries if c)]
    assert two and any(len({a for c in j.carries for a in c}) == 2 for j in two)


def tag_with(item: evidence.Judged, pick: str) -> SimpleNamespace:
    """Evidence per labelled aspect: its carrying clauses ("right") or the others ("wrong")."""
    aspects = []
    for aspect in item.row["aspects"]:
        chosen = [k for k, c in enumerate(item.carries) if (aspect in c) == (pick == "right")]
        spans = tuple(Evidence(item.row["text"][s:e], s, e) for s, e in (item.clauses[k] for k in chosen))
        aspects.append(AspectTag(aspect, 0.9, "negative", 0.9, spans))
    return SimpleNamespace(aspects=aspects)


def test_evidence_is_right_where_it_holds_the_clause_that_carries_the_aspect(judged: list[evidence.Judged]) -> None:
    right = evidence.judge(judged, [tag_with(j, "right") for j in judged])
    assert right["hit"] == 1.0 and right["precise"] == 1.0 and right["pairs"] >= len(judged)
    wrong = evidence.judge(judged, [tag_with(j, "wrong") for j in judged])
    assert wrong["hit"] == 0.0 and wrong["precise"] == 0.0


def test_a_model_without_a_transformer_is_refused(sample_model, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        evidence.main(["--model", str(sample_model.folder), "--no-write"])
    assert exit_info.value.code == 2
    assert "is not a transformer tagger with aspects" in capsys.readouterr().err


def test_other_files_are_named_model_equals_file(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        evidence.main(["--data", str(tmp_path / "dev.jsonl"), "--no-write"])
    assert exit_info.value.code == 2
    assert "expected MODEL=FILE with an existing file" in capsys.readouterr().err
