"""Sentence vectors for theme discovery: the pretrained encoder where its folder exists (`bazkhord encoder import`),
TF-IDF otherwise. Both are `Embedder`s (model/themes/steps.py), so clustering and zero-shot aspect assignment
take either.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# Where `bazkhord encoder import` (and `make encoder`) puts the encoder; BAZKHORD_ENCODER points elsewhere.
DEFAULT_ENCODER = Path("artifacts/encoders/multilingual-e5-small")
ENCODER_ENV = "BAZKHORD_ENCODER"


def encoder_folder(setting: str | None = None) -> Path | None:
    """The encoder folder to embed with: `setting` ("none" for none), else $BAZKHORD_ENCODER, else the default
    folder when it exists."""
    value = setting or os.environ.get(ENCODER_ENV, "")
    if value.lower() == "none":
        return None
    path = Path(value) if value else DEFAULT_ENCODER
    return path if (path / "config.json").exists() else None


class EncoderEmbedder:
    """Unit-length mean-pooled token states of a transformers encoder, with its prompt ("query: " for e5) before
    each text; batches of similar length. The same vectors e5 defines for similarity."""

    name = "e5"

    def __init__(self, folder: Path, batch_size: int = 64, max_length: int = 128) -> None:
        self.folder = folder
        self.batch_size = batch_size
        self.max_length = max_length
        self._loaded: tuple[Any, Any, str] | None = None

    def _load(self) -> tuple[Any, Any, str]:
        if self._loaded is None:
            from bazkhord.model.backbone import encoder_prompt, load_backbone
            from bazkhord.model.transformer import set_threads

            set_threads()
            encoder, tokenizer = load_backbone(str(self.folder))
            self._loaded = (encoder.eval(), tokenizer, encoder_prompt(str(self.folder)))
        return self._loaded

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        from bazkhord.model.network import length_buckets, pad_batch

        encoder, tokenizer, prompt = self._load()
        size = int(encoder.config.hidden_size)
        out = np.zeros((len(texts), size), dtype=np.float32)
        if not texts:
            return out
        limit = min(self.max_length, int(getattr(encoder.config, "max_position_embeddings", self.max_length)))
        ids = tokenizer([prompt + t for t in texts], truncation=True, max_length=limit)["input_ids"]
        lengths = np.array([len(row) for row in ids])
        with torch.inference_mode():
            for batch in length_buckets(lengths, self.batch_size):
                input_ids, mask = pad_batch([ids[i] for i in batch], tokenizer.pad_token_id)
                hidden = encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state
                weights = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
                out[batch] = torch.nn.functional.normalize(pooled, dim=1).numpy()
        return out


def default_embedder(setting: str | None = None) -> Any:
    """The encoder's embedder where its folder exists, else TF-IDF (which needs nothing)."""
    from bazkhord.model.themes.steps import TfidfEmbedder

    folder = encoder_folder(setting)
    if folder is None:
        return TfidfEmbedder()
    log.info("theme embeddings from %s", folder)
    return EncoderEmbedder(folder)
