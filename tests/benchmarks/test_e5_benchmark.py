"""The e5 benchmark's choices of what to run and where its section goes (the runs themselves are hours: benchmarks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks import e5


def test_only_takes_data_sets_and_single_tasks() -> None:
    five = next(t for t in e5.TASKS if t[2] == "5-class")
    three = next(t for t in e5.TASKS if t[0] == "deepsentipers" and t[2] == "3-class")
    movie = next(t for t in e5.TASKS if t[0] == "parsinlu_movie")
    assert e5.selected(five, set()) and e5.selected(three, set())
    assert e5.selected(five, {"deepsentipers"}) and e5.selected(three, {"deepsentipers"})
    assert e5.selected(five, {"deepsentipers:5-class"}) and not e5.selected(three, {"deepsentipers:5-class"})
    assert not e5.selected(movie, {"deepsentipers:5-class"})


def test_unknown_names_are_refused_before_anything_runs(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        e5.main(["--only", "deepsentipers:7-class", "--work", str(tmp_path / "work"), "--no-write"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--only: unknown deepsentipers:7-class" in err and "deepsentipers:5-class" in err
    assert not (tmp_path / "work").exists()
    with pytest.raises(SystemExit):
        e5.main(["--only", "parsinlu_movie", "--section", "a b", "--work", str(tmp_path / "work"), "--no-write"])
    assert "--section must be letters, digits and dashes" in capsys.readouterr().err


def figures(macro: float, weighted: float) -> dict[str, float]:
    return {"accuracy": macro, "macro_f1": macro, "weighted_f1": weighted}


def test_a_partial_run_has_its_own_markers_title_and_verdicts(monkeypatch: pytest.MonkeyPatch) -> None:
    train = {"device": "cpu", "train_seconds": 600.0, "seconds": 660.0, "peak_mb": 2000.0, "epochs": 3, "best_epoch": 2,
             "stopped_by": "epochs"}
    task = {"dataset": "deepsentipers", "task": "5-class", "config": "deepsentipers_5class", "train": train,
            "rows": [{"variant": "TF-IDF baseline", "task": "5-class", "rows": 1839, "figures": figures(0.50, 0.66)},
                     {"variant": "saved model (ensemble-tagger, weight 0.5, none)", "task": "5-class", "rows": 1839,
                      "figures": figures(0.55, 0.69)}],
            "compact": None, "distilled": None}
    result = {"tasks": [task], "skipped": [], "encoder": {}, "speed": [], "fast": None, "pretrain": None}
    section = e5.render(result, 60.0, "<!-- e5-added:begin -->", "<!-- e5-added:end -->",
                        "Pretrained encoder (multilingual-e5-small): deepsentipers:5-class")
    lines = section.splitlines()
    assert lines[0] == "<!-- e5-added:begin -->" and lines[-1] == "<!-- e5-added:end -->"
    assert lines[1] == "## Pretrained encoder (multilingual-e5-small): deepsentipers:5-class"
    assert "- deepsentipers 5-class: saved model macro-F1 0.550 against the baseline's 0.500 (+5.0 points): beaten" in lines
    assert "  - target weighted_f1 >= 0.71: 0.690, missed by 2.0 points" in lines
    assert "| e5, deepsentipers 5-class | cpu | 10.0 min | 11.0 min | 2000 MiB | 3 (2) | epochs |" in lines
    assert e5.BEGIN not in section
    # Only the variants the run measured have a column; no run had settings of its own.
    assert "| data set | task | TF-IDF | **saved e5 model** |" in lines
    assert "Only the accurate profile and the TF-IDF baseline were measured (`--accurate-only`)." in lines
    assert not any(line.startswith("`compact` is") for line in lines)
    assert "(this invocation 1.0 min; a step kept from an earlier run is not re-timed)." in lines[3]
    monkeypatch.setattr(e5, "CACHED_ONLY", True)
    again = e5.render(result, 0.1).splitlines()
    assert "(written again by `--cached-only`, which measures nothing" in again[3] and "invocation" not in again[3]
    assert not any("trained with its own" in line for line in lines)


def test_a_run_with_settings_of_its_own_says_so() -> None:
    recipe = [*e5.ACCURATE, "transformer.epochs=3", "transformer.freeze_layers=0"]
    task = {"dataset": "deepsentipers", "task": "3-class", "train": {"recipe": recipe}, "rows": []}
    assert e5.own_recipes({"tasks": [task]}) == [
        "deepsentipers 3-class was trained with its own `transformer.freeze_layers=0` (chosen on its dev split)."]
    task["train"]["recipe"] = [*e5.ACCURATE, "transformer.epochs=3"]
    assert e5.own_recipes({"tasks": [task]}) == []


def test_binary_drops_neutral_rows_and_compares_positive_with_negative() -> None:
    """As ParsBERT's SentiPers binary figure: a 3-class model answers by the larger of its two polar probabilities,
    even where neutral is its most probable label."""
    from types import SimpleNamespace

    import numpy as np

    from benchmarks.baseline import binary

    proba = {"a": [0.2, 0.7, 0.1], "b": [0.1, 0.3, 0.6], "c": [0.5, 0.1, 0.4], "d": [0.3, 0.4, 0.3]}
    tagger = SimpleNamespace(labels=["negative", "neutral", "positive"],
                             predict_proba=lambda texts: np.array([proba[t] for t in texts]))
    rows = [SimpleNamespace(text=t, sentiment=s) for t, s in (("a", "negative"), ("b", "positive"), ("c", "positive"),
                                                               ("d", "neutral"))]
    figures = binary(tagger, rows)
    assert figures["accuracy"] == round(2 / 3, 4)  # a -> negative (0.2 > 0.1), b right, c wrong; d dropped
    assert figures["macro_f1"] == round((2 / 3 + 2 / 3) / 2, 4)


def test_accurate_only_trains_each_set_with_its_own_settings_and_nothing_else(monkeypatch: pytest.MonkeyPatch,
                                                                               tmp_path) -> None:
    """The steps are replaced by stand-ins that record what they were asked; the real ones take hours."""
    shared = tmp_path / "shared"
    for name in ("deepsentipers", "parsinlu_movie"):
        (shared / name).mkdir(parents=True)
        (shared / name / "test.jsonl").write_text("", encoding="utf-8")
    calls: list[tuple[str, tuple]] = []

    def stand_in(function: Any, *args: Any) -> dict[str, Any]:
        calls.append((function.__name__, args))
        if function.__name__ == "step_finetune":
            return {"folder": "m", "recipe": args[6]}
        return {"folder": "e", "rows": []}

    monkeypatch.setattr(e5, "in_process", stand_in)
    monkeypatch.setitem(e5.ACCURATE_BY_SET, "deepsentipers", ["transformer.freeze_layers=0"])
    result = e5.collect(shared, tmp_path / "work", {"deepsentipers", "parsinlu_movie"}, "cpu", True, lambda m: None,
                        accurate_only=True)
    steps = [name for name, _ in calls]
    assert steps.count("step_finetune") == 3 and "step_pretrain" not in steps and "step_speed" not in steps
    assert result["fast"] is None and result["pretrain"] is None and result["speed"] == []
    recipes = {(t["dataset"], t["task"]): t["train"]["recipe"] for t in result["tasks"]}
    assert recipes[("deepsentipers", "3-class")][-1] == "transformer.freeze_layers=0"
    assert recipes[("deepsentipers", "5-class")][-1] == "transformer.freeze_layers=0"
    assert "transformer.freeze_layers=0" not in recipes[("parsinlu_movie", "3+mixed")]
    assert "transformer.freeze_layers=6" in recipes[("parsinlu_movie", "3+mixed")]


def test_a_larger_pool_and_budget_are_kept_beside_the_default_students(monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--pool-size` and `--student-minutes` reach the pool and the student's run, under keys of their own, so the
    students of the earlier setting kept in the same work folder (under the plain keys) are neither reused for them
    nor overwritten."""
    shared = tmp_path / "shared"
    (shared / "parsinlu_movie").mkdir(parents=True)
    (shared / "parsinlu_movie" / "test.jsonl").write_text("", encoding="utf-8")
    finetunes: dict[str, tuple] = {}
    pools: list[tuple] = []

    def stand_in(function: Any, *args: Any) -> dict[str, Any]:
        if function.__name__ == "step_finetune":
            finetunes[args[7]] = args
            return {"folder": f"models/{args[7]}", "recipe": args[6]}
        return {"folder": "e", "rows": [], "vocab_size": 1, "size_mb": 1.0}

    def pool_stand_in(shared_dir: str, dataset: str, out: str, size: int) -> dict[str, Any]:
        pools.append((dataset, Path(out).name, size))
        return {"path": out, "comments": size, "from": []}

    monkeypatch.setattr(e5, "in_process", stand_in)
    monkeypatch.setattr(e5, "step_pool", pool_stand_in)
    work = tmp_path / "work"
    e5.collect(shared, work, {"parsinlu_movie"}, "cpu", False, lambda m: None, pool_size=4000, student_minutes=6.0)
    default = "distilled-parsinlu_movie-3+mixed"
    assert finetunes[default][5] == 6.0 and pools == [("parsinlu_movie", "parsinlu_movie.jsonl", 4000)]
    finetunes.clear()
    result = e5.collect(shared, work, {"parsinlu_movie"}, "cpu", False, lambda m: None)
    # Only the new student ran: the teacher, the compact encoder and its pre-training were kept from the first run.
    larger = f"{default}-pool16000-20min"
    assert list(finetunes) == [larger] and finetunes[larger][5] == 20.0
    assert pools[-1] == ("parsinlu_movie", "parsinlu_movie-16000.jsonl", 16000)
    assert any("data.unlabelled=" in item and "parsinlu_movie-16000.jsonl" in item for item in finetunes[larger][6])
    assert (work / "results" / f"train-{default}.json").exists() and (work / "results" / f"train-{larger}.json").exists()
    assert result["tasks"][0]["distilled"]["train"]["folder"] == f"models/{larger}"
    described = " ".join(e5.tiers(result))
    assert "on 16,000 unlabelled training" in described and "a budget of 20 minutes" in described
    earlier = " ".join(e5.tiers({}))  # results kept before the pool and budget were recorded
    assert "on 4,000 unlabelled training" in earlier and "budget of 6 minutes" in earlier
    with pytest.raises(SystemExit):
        e5.main(["--pool-size", "0", "--work", str(tmp_path / "other"), "--no-write"])
    assert "--pool-size must be at least 1 (not 0)" in capsys.readouterr().err


def test_a_compact_encoder_taught_by_e5_is_kept_beside_the_masked_word_one(monkeypatch: pytest.MonkeyPatch,
                                                                           tmp_path) -> None:
    """`--compact-from e5` pre-trains the compact encoder with the pruned e5 folder as its teacher, and its compact and
    distilled runs start from that encoder under keys of their own; the masked-word runs in the same work folder are
    reused, not run again or overwritten."""
    shared = tmp_path / "shared"
    (shared / "parsinlu_movie").mkdir(parents=True)
    (shared / "parsinlu_movie" / "test.jsonl").write_text("", encoding="utf-8")
    calls: list[tuple[str, tuple]] = []

    def stand_in(function: Any, *args: Any) -> dict[str, Any]:
        calls.append((function.__name__, args))
        if function.__name__ == "step_finetune":
            return {"folder": f"models/{args[7]}", "recipe": args[6]}
        if function.__name__ == "step_pretrain":
            return {"seconds": 60.0, "texts": 10, "heldout_loss": 0.5, "epochs": 2, "peak_mb": 1.0,
                    "measure": "unexplained share of the teacher's token states" if args[3] else "masked-token loss"}
        return {"folder": "encoder-folder", "rows": [], "vocab_size": 1, "size_mb": 1.0}

    monkeypatch.setattr(e5, "in_process", stand_in)
    monkeypatch.setattr(e5, "step_pool", lambda *args: {"path": args[2], "comments": args[3], "from": []})
    work = tmp_path / "work"
    e5.collect(shared, work, {"parsinlu_movie"}, "cpu", False, lambda m: None)
    (masked,) = [args for name, args in calls if name == "step_pretrain"]
    assert masked[3] == "" and masked[1].endswith("compact-pretrained")
    calls.clear()
    result = e5.collect(shared, work, {"parsinlu_movie"}, "cpu", False, lambda m: None, compact_from="e5")
    (taught,) = [args for name, args in calls if name == "step_pretrain"]
    assert taught[3] == "encoder-folder" and taught[1].endswith("compact-pretrained-taught")
    runs = {args[7]: args for name, args in calls if name == "step_finetune"}
    assert set(runs) == {"compact-taught-parsinlu_movie-3+mixed", "distilled-taught-parsinlu_movie-3+mixed-pool16000-20min"}
    assert all(args[2] == taught[1] for args in runs.values())  # both start from the taught encoder
    assert (work / "results" / "score-compact-parsinlu_movie-3+mixed.json").exists()
    assert "taught e5's last-layer token states" in " ".join(e5.tiers(result))
    row = e5.pretrain_row(result)
    assert "compact pre-training (e5's token states, 10 texts)" in row
    assert "held-out unexplained share of the teacher's token states 0.500" in row
