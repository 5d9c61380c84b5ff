"""The encoder under the transformer tagger: a pretrained folder or hub id (checked before use), or the compact
encoder built from scratch; and the prompt it was trained with."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bazkhord.data.errors import ConfigError
from bazkhord.model.e5s1 import ENCODER_MANIFEST, EncoderError, verify_encoder_folder

SUPPORTED_BACKBONES = ("bert", "albert", "roberta", "xlm-roberta", "distilbert", "electra")
# `base_model` value that builds the compact encoder from scratch (no download, no pre-trained weights).
SCRATCH = "scratch"
PRETRAIN_REPORT = "pretrain_report.json"  # written by `bazkhord pretrain` (training/pretrain.py)


@dataclass(frozen=True)
class EncoderShape:
    """The compact encoder built from scratch. Defaults chosen on the dev splits for speed and quality on 2 cores."""

    hidden: int = 256
    layers: int = 3
    heads: int = 4
    intermediate: int = 512
    max_positions: int = 512
    dropout: float = 0.1


def scratch_encoder(vocab_size: int, shape: EncoderShape) -> Any:
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=vocab_size, hidden_size=shape.hidden, num_hidden_layers=shape.layers,
                        num_attention_heads=shape.heads, intermediate_size=shape.intermediate,
                        max_position_embeddings=shape.max_positions, hidden_dropout_prob=shape.dropout,
                        attention_probs_dropout_prob=shape.dropout)
    return BertModel(config, add_pooling_layer=False)


def quiet_transformers() -> None:
    """transformers draws its own "Loading weights" / "Writing model shards" bars into ours: bazkhord shows one. Its
    load report lists the masked-word head that `bazkhord pretrain` saves and fine-tuning does not use, as a warning
    table on every load: only its errors are shown."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def load_backbone(base_model: str) -> tuple[Any, Any]:
    """(encoder, tokenizer) from a local folder or a hub id. Nothing is downloaded when the id is a folder."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    quiet_transformers()
    local = Path(base_model).is_dir()
    if not local and (base_model.startswith((".", "/", "~", "artifacts")) or base_model.count("/") > 1):
        hint = " (run `bazkhord encoder import` or `make encoder` first)" if "encoders" in base_model else ""
        raise ConfigError(f"transformer.base_model {base_model!r}: no such folder{hint}")
    if local and (Path(base_model) / ENCODER_MANIFEST).exists():
        verify_encoder_folder(Path(base_model))
    try:
        config = AutoConfig.from_pretrained(base_model, local_files_only=local)
    except (OSError, ValueError) as error:
        where = "the folder has no usable config.json" if local else "it is not a local folder and the hub cannot be reached"
        raise ConfigError(f"transformer.base_model {base_model!r}: cannot load its config ({where}): {error}") from None
    if config.model_type not in SUPPORTED_BACKBONES:
        raise ConfigError(f"transformer.base_model {base_model!r} is a {config.model_type!r} model; "
                          f"supported: {', '.join(SUPPORTED_BACKBONES)}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(base_model, local_files_only=local)
        encoder = AutoModel.from_pretrained(base_model, local_files_only=local, **no_pooler(config.model_type))
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise EncoderError(f"transformer.base_model {base_model!r}: cannot load its tokenizer or weights: {first}") from None
    check_vocabulary(base_model, encoder, tokenizer)
    if not getattr(tokenizer, "is_fast", False):
        found = type(tokenizer).__name__
        raise ConfigError(f"transformer.base_model {base_model!r}: needs a fast (Rust) tokenizer, found {found}")
    if tokenizer.pad_token is None:
        raise ConfigError(f"transformer.base_model {base_model!r}: its tokenizer has no padding token")
    return encoder, tokenizer


def no_pooler(model_type: str) -> dict[str, Any]:
    """The heads pool the token states themselves; BERT-like classes would otherwise add an unused pooler."""
    return {"add_pooling_layer": False} if model_type in ("bert", "roberta", "xlm-roberta", "albert") else {}


def check_vocabulary(where: str | Path, encoder: Any, tokenizer: Any) -> None:
    """A tokenizer that can produce ids past the embedding matrix would crash inside torch on some comment."""
    from bazkhord.model.e5s1 import EncoderError

    rows = int(encoder.get_input_embeddings().num_embeddings)
    if len(tokenizer) > rows:
        raise EncoderError(f"{where}: the tokenizer has {len(tokenizer)} pieces but the encoder's embedding matrix "
                           f"{rows} rows (tokenizer and weights are from different encoders)")


def encoder_prompt(base_model: str) -> str:
    """The prompt the encoder was trained with: e5 models embed "query: " + text (its model card). A folder of ours
    records it (`bazkhord encoder import`'s manifest; `bazkhord pretrain`'s report, none before it recorded one);
    only a hub id, or a folder saved elsewhere, is judged by its name."""
    for name in (ENCODER_MANIFEST, PRETRAIN_REPORT):
        path = Path(base_model) / name
        if path.exists():
            try:
                return str(json.loads(path.read_text(encoding="utf-8")).get("prompt", ""))
            except (ValueError, AttributeError):  # not JSON, or not an object
                return ""
    return "query: " if "e5" in Path(base_model).name.lower() else ""


def hidden_size(encoder: Any) -> int:
    config = encoder.config
    return int(getattr(config, "hidden_size", None) or config.dim)
