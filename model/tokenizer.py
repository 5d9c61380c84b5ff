"""A WordPiece tokenizer learned from the training texts, for the compact encoder built from scratch."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def wordpiece_vocabulary(texts: Sequence[str], vocab_size: int, min_frequency: int = 2) -> list[str]:
    """A WordPiece vocabulary by BPE merges over the texts' words, ties broken by the pieces themselves.

    `tokenizers`' own trainers break ties by hash order, so two runs on the same texts learn different
    vocabularies; this one is the same on every run, which keeps training deterministic.
    """
    import heapq
    from collections import Counter

    from tokenizers import pre_tokenizers

    pre = pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter(word for text in texts for word, _ in pre.pre_tokenize_str(text.lower()))
    splits = {word: [word[0], *(f"##{c}" for c in word[1:])] for word in words}
    alphabet = sorted({piece for pieces in splits.values() for piece in pieces})
    vocab = list(dict.fromkeys([*SPECIAL_TOKENS, *alphabet]))
    pairs: Counter[tuple[str, str]] = Counter()
    where: dict[tuple[str, str], set[str]] = {}
    for word, pieces in splits.items():
        for pair in itertools.pairwise(pieces):
            pairs[pair] += words[word]
            where.setdefault(pair, set()).add(word)
    heap = [(-count, pair) for pair, count in pairs.items()]
    heapq.heapify(heap)
    known = set(vocab)
    while len(vocab) < vocab_size and heap:
        negative, pair = heapq.heappop(heap)
        if pairs.get(pair, 0) != -negative:
            continue  # a stale entry: the count changed since it was pushed
        if -negative < min_frequency:
            break
        merged = pair[0] + pair[1].removeprefix("##")
        if merged not in known:
            vocab.append(merged)
            known.add(merged)
        touched: Counter[tuple[str, str]] = Counter()
        for word in sorted(where.pop(pair, set())):
            pieces, count = splits[word], words[word]
            for old in itertools.pairwise(pieces):
                pairs[old] -= count
                touched[old] -= count
            out, i = [], 0
            while i < len(pieces):
                if i + 1 < len(pieces) and (pieces[i], pieces[i + 1]) == pair:
                    out.append(merged)
                    i += 2
                else:
                    out.append(pieces[i])
                    i += 1
            splits[word] = out
            for new in itertools.pairwise(out):
                pairs[new] += count
                touched[new] += count
                where.setdefault(new, set()).add(word)
        for changed in touched:
            if pairs[changed] > 0:
                heapq.heappush(heap, (-pairs[changed], changed))
            else:
                pairs.pop(changed, None)
    return vocab


def train_tokenizer(texts: Sequence[str], vocab_size: int = 16_000, min_frequency: int = 2) -> Any:
    """A WordPiece tokenizer learned from (normalised) texts, wrapped as a transformers fast tokenizer.

    Only lower-casing is applied: the texts are normalised already, and BERT's accent stripping would
    remove the madda of «آ» and Persian diacritics.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = wordpiece_vocabulary(texts, vocab_size, min_frequency)
    tokenizer = Tokenizer(models.WordPiece({piece: i for i, piece in enumerate(vocab)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    cls_id, sep_id = vocab.index("[CLS]"), vocab.index("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=512)
