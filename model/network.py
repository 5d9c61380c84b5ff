"""The network of the transformer tagger: encoder, mean pooling and three heads; and how texts become its batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from bazkhord.model.backbone import hidden_size


class MultiTaskNet(nn.Module):
    """Encoder + masked mean pooling + three linear heads. Polarity logits are (batch, aspects, polarities)."""

    def __init__(self, encoder: Any, n_labels: int, n_aspects: int, n_polarities: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        size = hidden_size(encoder)
        self.dropout = nn.Dropout(dropout)
        self.sentiment = nn.Linear(size, max(n_labels, 1))
        self.aspect = nn.Linear(size, max(n_aspects, 1))
        self.polarity = nn.Linear(size, max(n_aspects * n_polarities, 1))
        self.n_aspects = n_aspects
        self.n_polarities = n_polarities

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.heads(mean_pool(self.hidden_states(input_ids, attention_mask), attention_mask))

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def heads(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pooled = self.dropout(pooled)
        polarity = self.polarity(pooled)
        if self.n_aspects and self.n_polarities:
            polarity = polarity.view(-1, self.n_aspects, self.n_polarities)
        return self.sentiment(pooled), self.aspect(pooled), polarity

    def heads_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().contiguous() for k, v in self.state_dict().items() if not k.startswith("encoder.")}


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token states where `mask` (batch, tokens) is 1."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def encoder_layers(encoder: Any) -> nn.ModuleList | None:
    """The encoder's stack of transformer layers (BERT's `encoder.layer`), or None for another architecture."""
    return getattr(getattr(encoder, "encoder", None), "layer", None)


@dataclass
class Encoded:
    input_ids: list[list[int]]
    # Per token, its (start, end) characters in the text without the prompt; (0, 0) for special tokens and the
    # prompt's own. A SentencePiece token's span starts at the space before its word: for the text's first word,
    # that space is the prompt's last character, so the span is cut at the prompt's end. Only when asked for.
    offsets: list[list[tuple[int, int]]] | None = None

    def lengths(self) -> np.ndarray:
        return np.array([len(ids) for ids in self.input_ids])


def encode(tokenizer: Any, texts: Sequence[str], max_length: int, prompt: str = "", offsets: bool = False) -> Encoded:
    """Token ids, `prompt` before every text (e5's "query: "), cut at `max_length` tokens."""
    texts = [prompt + text for text in texts] if prompt else list(texts)
    if not offsets:
        return Encoded(tokenizer(texts, truncation=True, max_length=max_length)["input_ids"])
    out = tokenizer(texts, truncation=True, max_length=max_length, return_offsets_mapping=True)
    shift = len(prompt)
    spans = [[(max(s, shift) - shift, e - shift) if e > max(s, shift) else (0, 0) for s, e in row]
             for row in out["offset_mapping"]]
    return Encoded(out["input_ids"], spans)


def token_groups(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> list[list[int]] | None:
    """For each character span, the tokens that overlap it; None when a span has none (cut off by truncation)."""
    groups = [[t for t, (s, e) in enumerate(offsets) if e > s and s < end and e > start] for start, end in spans]
    return groups if all(groups) else None


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask


def length_buckets(lengths: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Indices in batches of similar length, so little of each batch is padding."""
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


# What one more encoder call costs beside its tokens, in tokens: a call's fixed work (the runtime's dispatch, the
# heads, the tensors around it) and the lower efficiency of a smaller matrix product. Chosen by timing tag() in
# batches of 16 with the accurate and the fast profile: much less cuts too often for the small model, much more
# pads too much for the large one.
CALL_OVERHEAD_TOKENS = 48


def length_groups(lengths: np.ndarray, max_rows: int, overhead: float = CALL_OVERHEAD_TOKENS) -> list[np.ndarray]:
    """Indices in batches of at most `max_rows`, cut where padding would cost more than another call: the texts
    sorted by length and split to minimise the tokens computed (each batch's rows times its longest, padding
    included) plus `overhead` per batch, exactly (dynamic programming over the cuts)."""
    order = np.argsort(lengths, kind="stable")
    ordered = np.asarray(lengths, dtype=float)[order]
    n = len(order)
    cost = np.zeros(n + 1)
    cut = np.zeros(n + 1, dtype=int)
    for end in range(1, n + 1):
        starts = np.arange(max(0, end - max_rows), end)
        totals = cost[starts] + overhead + (end - starts) * ordered[end - 1]
        best = int(np.argmin(totals))
        cost[end], cut[end] = totals[best], starts[best]
    groups: list[np.ndarray] = []
    end = n
    while end > 0:
        groups.append(order[cut[end] : end])
        end = cut[end]
    return groups[::-1]


def padding_share(lengths: np.ndarray, groups: Sequence[np.ndarray]) -> float:
    """The share of the tokens computed that are padding, for texts of `lengths` in these batches."""
    computed = sum(len(g) * int(lengths[g].max()) for g in groups if len(g))
    return 1.0 - float(np.sum(lengths)) / computed if computed else 0.0
