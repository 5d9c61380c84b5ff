"""Pre-training the compact encoder from a teacher's token states (`bazkhord pretrain --teacher`): the embeddings it
starts from, what it learns, the folder it writes and its refusals. Masked-word pre-training is tested in
test_transformer.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from bazkhord.cli import main
from bazkhord.data.errors import ConfigError
from bazkhord.model.backbone import PRETRAIN_REPORT, encoder_prompt, load_backbone
from bazkhord.model.e5s1 import ENCODER_MANIFEST
from bazkhord.model.folder import load_model
from bazkhord.training.encoder_import import NOTICE_FILE
from bazkhord.training.pretrain import PretrainConfig, pretrain, project_embeddings
from bazkhord.training.train import train

from .test_transformer import config_for, tiny_backbone

SMALL: dict[str, Any] = {"hidden": 16, "layers": 1, "heads": 2, "intermediate": 32, "batch_size": 32, "max_length": 48}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tiny_backbone("bert", tmp_path_factory.mktemp("teacher") / "bert")
    (folder / NOTICE_FILE).write_text("MIT licence notices\n", encoding="utf-8")
    return folder


def test_the_embeddings_start_as_the_teachers_projected(teacher: Path) -> None:
    from transformers import BertConfig, BertModel

    encoder, _ = load_backbone(str(teacher))
    words = encoder.get_input_embeddings().weight.detach()

    def student(hidden: int) -> BertModel:
        return BertModel(BertConfig(vocab_size=words.shape[0], hidden_size=hidden, num_hidden_layers=1,
                                    num_attention_heads=2, intermediate_size=32, max_position_embeddings=64))

    # As wide as the teacher: a rotation, so every dot product between two pieces' embeddings is kept.
    same = student(32)
    assert project_embeddings(encoder, same) == pytest.approx(1.0)
    kept = same.get_input_embeddings().weight.detach()
    assert torch.allclose(kept @ kept.T, words @ words.T, atol=1e-4)
    # The positions go through the same map, so a piece at a position sums as the teacher's sum, projected.
    positions = same.embeddings.position_embeddings.weight.detach()
    assert torch.allclose((kept[5] + positions[3]).norm(),
                          (words[5] + encoder.embeddings.position_embeddings.weight[3].detach()).norm(), atol=1e-4)
    # Narrower: the leading directions, which keep more of the variance than any other 8 would.
    narrow = student(8)
    share = project_embeddings(encoder, narrow)
    assert 0.25 < share < 1.0  # 8 of 32 directions keep more than their even share
    assert narrow.get_input_embeddings().weight.shape == (words.shape[0], 8)


def test_the_student_learns_the_teachers_token_states(tmp_path: Path, teacher: Path, sample_subset: Path,
                                                      tiny_file: Path) -> None:
    config = PretrainConfig(teacher=str(teacher), epochs=6, learning_rate=3e-3, **SMALL)
    result = pretrain([sample_subset, tiny_file], tmp_path / "student", config)
    report = json.loads((result.folder / "pretrain_report.json").read_text(encoding="utf-8"))
    assert report["objective"] == "teacher token states" and report["teacher"] == str(teacher)
    assert result.measure == report["heldout_measure"] == "unexplained share of the teacher's token states"
    # The share left unexplained on held-out texts falls well below that of a student answering the mean (1.0).
    held = [epoch["heldout_loss"] for epoch in report["epochs"]]
    assert held[-1] < 0.6 and held[-1] < held[0]
    assert report["teacher_states_cached_mb"] > 0  # later epochs read the cache, not the teacher
    assert report["prompt"] == ""  # the teacher records no prompt, and its name ("bert") suggests none
    # The folder: the teacher's tokenizer and licence notices, a fresh 1-layer encoder, no masked-word head.
    student, tokenizer = load_backbone(str(result.folder))
    _, teacher_tokenizer = load_backbone(str(teacher))
    assert tokenizer.tokenize("غذا سرد بود") == teacher_tokenizer.tokenize("غذا سرد بود")
    assert student.config.num_hidden_layers == 1 and student.config.hidden_size == 16
    assert (result.folder / NOTICE_FILE).read_text(encoding="utf-8") == "MIT licence notices\n"
    # It fine-tunes like any other base model.
    trained = train(config_for(tmp_path, tiny_file, f'transformer.base_model="{result.folder}"', "transformer.epochs=1"))
    meta = load_model(trained.folder).tagger.meta  # type: ignore[attr-defined]
    assert meta.base_model == str(result.folder) and meta.prompt == ""


def test_a_bad_teacher_is_refused_in_one_line(tmp_path: Path, tiny_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="teacher must be"):
        PretrainConfig(teacher=3)  # type: ignore[arg-type]
    code = main(["pretrain", "--data", str(tiny_file), "--out", str(tmp_path / "out"), "-q",
                 "--teacher", str(tmp_path / "no" / "such" / "encoder")])
    err = capsys.readouterr().err
    assert code == 2
    assert "no such folder" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_cli_pretrain_from_a_teacher(tmp_path: Path, teacher: Path, tiny_file: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "enc"
    code = main(["pretrain", "--data", str(tiny_file), "--out", str(out), "--epochs", "1", "-q", "--teacher", str(teacher),
                 "--set", 'prompt="query: "', *[arg for key, value in SMALL.items() for arg in ("--set", f"{key}={value}")]])
    printed = capsys.readouterr().out
    assert code == 0
    assert "unexplained share of the teacher's token states" in printed and "transformer.base_model" in printed
    assert (out / "config.json").exists() and (out / "tokenizer.json").exists()
    # The prompt the texts were read with is recorded, and fine-tuning on the folder reads it ("auto").
    assert json.loads((out / PRETRAIN_REPORT).read_text(encoding="utf-8"))["prompt"] == "query: "
    assert encoder_prompt(str(out)) == "query: "


def test_the_prompt_is_none_unless_asked_for_and_auto_is_the_teachers(tmp_path: Path) -> None:
    e5 = tmp_path / "encoders" / "some-encoder"
    e5.mkdir(parents=True)
    (e5 / ENCODER_MANIFEST).write_text(json.dumps({"prompt": "query: "}), encoding="utf-8")
    assert PretrainConfig(teacher=str(e5), prompt="auto").text_prompt() == "query: "
    assert PretrainConfig(teacher=str(e5)).text_prompt() == ""  # none unless asked for
    assert PretrainConfig(teacher=str(e5), prompt="passage: ").text_prompt() == "passage: "
    assert PretrainConfig(prompt="auto").text_prompt() == ""  # masked words: no teacher, no prompt of its own
    with pytest.raises(ConfigError, match="prompt must be a string"):
        PretrainConfig(prompt=1)  # type: ignore[arg-type]


def test_a_folder_of_ours_says_its_prompt_and_only_others_are_judged_by_name(tmp_path: Path) -> None:
    # A pre-trained folder named like e5 but taught without a prompt (as before the report recorded one) reads none.
    older = tmp_path / "sample-compact-e5"
    older.mkdir()
    (older / PRETRAIN_REPORT).write_text(json.dumps({"objective": "teacher token states"}), encoding="utf-8")
    assert encoder_prompt(str(older)) == ""
    (older / PRETRAIN_REPORT).write_text(json.dumps({"prompt": "query: "}), encoding="utf-8")
    assert encoder_prompt(str(older)) == "query: "
    (older / PRETRAIN_REPORT).write_text("{not json", encoding="utf-8")
    assert encoder_prompt(str(older)) == ""
    # The import's manifest speaks first; a hub id, or a folder of someone else's, is judged by its name.
    (older / ENCODER_MANIFEST).write_text(json.dumps({"prompt": "passage: "}), encoding="utf-8")
    assert encoder_prompt(str(older)) == "passage: "
    assert encoder_prompt("intfloat/multilingual-e5-small") == "query: "
    assert encoder_prompt(str(tmp_path / "downloaded" / "multilingual-e5-small")) == "query: "
    assert encoder_prompt("HooshvareLab/bert-fa-base-uncased") == ""
