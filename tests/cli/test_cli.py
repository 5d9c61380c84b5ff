"""The `bazkhord` command: the ML engineer's path, and errors without stack traces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bazkhord.cli import main
from tests.conftest import SAMPLE_TEST


def test_train_evaluate_list_tag(tiny_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    models = str(tmp_path / "models")
    assert main(["train", "--data", str(tiny_file), "--name", "tiny", "--models-dir", models, "-q",
                 "--set", "data.dev_fraction=0.2"]) == 0
    out = capsys.readouterr().out
    assert "trained tiny" in out and "model folder:" in out
    assert main(["evaluate", "tiny", "--data", str(SAMPLE_TEST), "--models-dir", models]) == 0
    out = capsys.readouterr().out
    assert "macro_f1" in out and "metrics_test.json" in out
    assert main(["models", "--models-dir", models]) == 0
    out = capsys.readouterr().out
    assert "latest" in out and "    dev  (held out" in out
    assert f"    test ({SAMPLE_TEST}, " in out  # the figure evaluate wrote, named as such
    assert main(["tag", "tiny", "کیفیت عالی", "--models-dir", models]) == 0
    line = json.loads(capsys.readouterr().out.strip())
    assert line["text"] == "کیفیت عالی" and "sentiment" in line


@pytest.mark.parametrize("argv", [
    ["train", "--config", "no/such.toml"],
    ["train", "--set", "model.C=-3"],
    ["train", "--data", "no/such.jsonl", "-q"],
    ["evaluate", "nothing", "--data", "x.jsonl", "--models-dir", "/nonexistent"],
    ["serve", "--model", "nothing", "--models-dir", "/nonexistent"],
])
def test_errors_are_one_clear_line(argv: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # `serve` creates its default store (artifacts/bazkhord.db) before it finds no model
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: [E") and "Traceback" not in err


def test_tag_reads_jsonl_and_plain_lines(sample_model: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    import io

    folder = str(sample_model.folder)  # type: ignore[attr-defined]
    lines = ['{"id": "r-1", "text": "پیک دیر اومد\\nغذا هم سرد بود"}', "", "کیفیت عالی بود", "{not json}"]
    comments = tmp_path / "comments.txt"
    comments.write_text("\n".join(lines[:3]) + "\n", encoding="utf-8")
    assert main(["tag", folder, "--input", str(comments)]) == 0
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first["id"] == "r-1" and first["text"] == "پیک دیر اومد\nغذا هم سرد بود"  # the new line is kept
    assert "id" not in second and second["text"] == "کیفیت عالی بود"
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    assert main(["tag", folder]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: [E400] standard input line 4: not valid JSON") and "Traceback" not in err
    assert main(["tag", folder, "--input", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl" in capsys.readouterr().err


def test_commands_without_a_model_use_the_one_trained_last(tiny_file: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from bazkhord.service.registry import ModelRegistry

    models = str(tmp_path / "models")
    assert main(["serve", "--models-dir", models, "--database-url", f"sqlite:///{tmp_path / 'none.db'}"]) == 2
    assert "no model under" in capsys.readouterr().err
    for name in ("first", "second"):
        assert main(["train", "--data", str(tiny_file), "--name", name, "--models-dir", models, "-q",
                     "--set", "data.dev_fraction=0.2"]) == 0
    capsys.readouterr()
    assert main(["models", "--models-dir", models]) == 0
    assert "default: second (trained last" in capsys.readouterr().out
    assert main(["tag-batch", "--input", str(tiny_file), "--out", str(tmp_path / "tagged"), "--models-dir", models,
                 "-q"]) == 0
    assert "with second " in capsys.readouterr().err
    assert ModelRegistry(None, Path(models)).start().name == "second"  # `serve` and BAZKHORD_MODEL unset
