"""The E5S1 reader, the Q4_0 decoder, the precompiled normalisation map and the tokenizer, on a tiny file."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from bazkhord.model.e5s1 import (
    EncoderError,
    bert_config,
    bert_state_dict,
    build_tokenizer,
    dequantize_q4_0,
    precompiled_charsmap,
    read_e5s1,
)

from ..tiny_e5 import TABLE, engine_forward, write_tiny_e5


@pytest.fixture
def tiny(tmp_path: Path):  # type: ignore[no-untyped-def]
    return write_tiny_e5(tmp_path / "tiny.bin")


def test_q4_0_block_decodes_as_documented() -> None:
    # scale 0.5; byte j holds weight j (low nibble) and weight j + 16 (high nibble); weight = (nibble - 8) * d
    low, high = np.arange(16, dtype=np.uint8), np.full(16, 15, dtype=np.uint8)
    block = struct.pack("<e", 0.5) + bytes((high << 4) | low)
    decoded = dequantize_q4_0(block, 32)
    assert decoded[:16].tolist() == [(n - 8) * 0.5 for n in range(16)]
    assert decoded[16:].tolist() == [3.5] * 16


def test_reader_returns_shape_vocabulary_table_and_tensors(tiny) -> None:  # type: ignore[no-untyped-def]
    e5 = read_e5s1(tiny.path)
    assert (e5.shape.hidden, e5.shape.layers, e5.shape.heads, e5.shape.ffn) == (32, 2, 2, 64)
    assert e5.pieces == tiny.pieces
    assert e5.specials == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    assert e5.normalisation == TABLE
    assert np.array_equal(e5.tensor("l1.fi.w").reshape(64, 32), tiny.weights["l1.fi.w"])
    assert np.array_equal(e5.tensor("emb.ln.b"), tiny.weights["emb.ln.b"])


@pytest.mark.parametrize("damage", ["magic", "truncate", "version"])
def test_a_damaged_file_is_one_clear_error(tiny, damage: str) -> None:  # type: ignore[no-untyped-def]
    data = bytearray(tiny.path.read_bytes())
    if damage == "magic":
        data[:4] = b"GGUF"
    elif damage == "truncate":
        data = data[:300]
    else:
        data[4:8] = struct.pack("<I", 7)
    tiny.path.write_bytes(bytes(data))
    with pytest.raises(EncoderError) as caught:
        read_e5s1(tiny.path)
    assert str(tiny.path) in str(caught.value) and "\n" not in str(caught.value)


def test_precompiled_charsmap_applies_the_table_and_nothing_else() -> None:
    from tokenizers import normalizers

    # The real table has 4,837 entries over 1-4 byte characters; this one mixes lengths too.
    table = {**TABLE, 0x1F600: (0x3A, 0x29), 0x00C5: (0x41, 0x030A)}
    normaliser = normalizers.Precompiled(precompiled_charsmap(table))
    for codepoint, out in table.items():
        assert normaliser.normalize_str(chr(codepoint)) == "".join(map(chr, out))
    assert normaliser.normalize_str("كتاب\u200cها ﻻ\u0007") == "کتاب ها لا"
    assert normaliser.normalize_str("سلام hello ۱۲۳") == "سلام hello ۱۲۳"


def test_tokenizer_folds_the_table_and_matches_unigram_choices(tiny) -> None:  # type: ignore[no-untyped-def]
    e5 = read_e5s1(tiny.path)
    tokenizer = build_tokenizer(e5.pieces, e5.scores, e5.specials, e5.normalisation, 64)
    assert tokenizer.tokenize("query: سلام غذا") == ["▁query", ":", "▁سلام", "▁غذا"]
    # Arabic kaf and yeh become Persian before the pieces are matched; ZWNJ becomes a space, as in the engine.
    assert tokenizer.tokenize("خيلي\u200cخوب") == ["▁خیلی", "▁خوب"]
    assert tokenizer.tokenize("كتاب") == ["▁کتاب"]
    # Runs of spaces collapse; an unknown character is <unk>; <s> ... </s> around every text.
    assert tokenizer.tokenize("سلام    غذا") == ["▁سلام", "▁غذا"]
    ids = tokenizer("سلام €")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2 and 3 in ids
    assert tokenizer.pad_token_id == 1 and tokenizer.mask_token == "<mask>"


def test_the_converted_bert_computes_what_the_engine_computes(tiny) -> None:  # type: ignore[no-untyped-def]
    from transformers import BertConfig, BertModel

    e5 = read_e5s1(tiny.path)
    model = BertModel(BertConfig(**bert_config(e5.shape, e5.shape.vocab_rows, 1)), add_pooling_layer=False).eval()
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in bert_state_dict(e5).items()}, strict=False)
    assert not unexpected and all("position_ids" in k for k in missing)
    tokenizer = build_tokenizer(e5.pieces, e5.scores, e5.specials, e5.normalisation, 64)
    for text in ("query: سلام غذا خیلی سرد بود", "query: hello world!", "query: پیک دیر رسید"):
        ids = tokenizer(text)["input_ids"]
        with torch.inference_mode():
            ours = model(input_ids=torch.tensor([ids])).last_hidden_state[0].mean(0).numpy()
        assert np.allclose(ours, engine_forward(tiny, ids), atol=2e-4)


def test_pruned_state_dict_keeps_the_chosen_rows_in_order(tiny) -> None:  # type: ignore[no-untyped-def]
    e5 = read_e5s1(tiny.path)
    keep = [0, 1, 2, 3, 7, 5]
    state = bert_state_dict(e5, keep)
    assert np.array_equal(state["embeddings.word_embeddings.weight"], tiny.weights["emb.word"][keep])
