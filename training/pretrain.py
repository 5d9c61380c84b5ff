"""Masked-language-model pre-training of the compact encoder on unlabelled comment text (labels ignored).

`bazkhord pretrain --data A.jsonl --data B.jsonl --out artifacts/pretrained/fa-compact` learns a WordPiece
vocabulary and a small BERT from every text given; the output folder is a normal transformers checkpoint, so
it can be a training config's `transformer.base_model`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data.errors import ConfigError, DataError
from data.normalise import NormaliserConfig, normalise_many
from data.readers import read_records
from model.transformer import EncoderShape, pad_batch, quiet_transformers, train_tokenizer
from training.config import apply_override
from training.transformer import epoch_batches

log = logging.getLogger(__name__)

REPORT_FILE = "pretrain_report.json"
Event = Callable[[dict[str, Any]], None]


@dataclass
class PretrainConfig:
    seed: int = 13
    vocab_size: int = 16_000
    hidden: int = EncoderShape.hidden
    layers: int = EncoderShape.layers
    heads: int = EncoderShape.heads
    intermediate: int = EncoderShape.intermediate
    max_length: int = 128
    epochs: int = 12
    batch_size: int = 64
    learning_rate: float = 5e-4
    warmup_fraction: float = 0.06
    mask_probability: float = 0.15
    holdout_fraction: float = 0.05  # texts kept out of training to report the masked-token loss on
    max_minutes: float = 0.0  # stop after the epoch that passes this budget; 0: no budget
    threads: int = 0
    normaliser: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("vocab_size", "hidden", "layers", "heads", "intermediate", "max_length", "epochs", "batch_size"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise ConfigError(f"pretrain {key} must be a positive whole number, not {getattr(self, key)!r}")
        if self.hidden % self.heads:
            raise ConfigError(f"pretrain hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        if not 0 < self.mask_probability < 1 or not 0 <= self.holdout_fraction < 0.5:
            raise ConfigError("pretrain mask_probability must be in (0, 1) and holdout_fraction in [0, 0.5)")

    @classmethod
    def from_overrides(cls, overrides: Sequence[str]) -> PretrainConfig:
        values: dict[str, Any] = {}
        for assignment in overrides:
            apply_override(values, assignment)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"pretrain: unknown key(s) {unknown}; known: {sorted(known)}")
        return cls(**values)


@dataclass
class PretrainResult:
    folder: Path
    texts: int
    heldout_loss: float | None
    seconds: float
    epochs: list[dict[str, float]]


def read_texts(paths: Sequence[str | Path], normaliser: NormaliserConfig, say: Callable[[str], None]) -> list[str]:
    """Every distinct normalised text of the files, in file order (labels are not read)."""
    texts: list[str] = []
    for path in paths:
        result = read_records(path)
        say(result.summary())
        texts += normalise_many([r.text for r in result.records], normaliser)
    unique = list(dict.fromkeys(t for t in texts if t))
    if not unique:
        raise DataError(f"no text to pre-train on in {', '.join(map(str, paths))}")
    return unique


def mask_tokens(ids: torch.Tensor, attention: torch.Tensor, tokenizer: Any, probability: float,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: of the chosen tokens 80% become [MASK], 10% a random token, 10% stay; labels elsewhere -100."""
    special = torch.tensor([tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id])
    candidates = attention.bool() & ~torch.isin(ids, special)
    chosen = (torch.rand(ids.shape, generator=generator) < probability) & candidates
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    roll = torch.rand(ids.shape, generator=generator)
    masked = ids.clone()
    masked[chosen & (roll < 0.8)] = tokenizer.mask_token_id
    random_tokens = torch.randint(len(tokenizer), ids.shape, generator=generator)
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    masked[swap] = random_tokens[swap]
    return masked, labels


def pretrain(paths: Sequence[str | Path], out: Path, config: PretrainConfig, say: Callable[[str], None] | None = None,
             on_event: Event | None = None) -> PretrainResult:
    from transformers import BertConfig, BertForMaskedLM

    say = say or (lambda message: log.info(message))
    on_event = on_event or (lambda event: None)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty: choose a new --out folder")
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    torch.use_deterministic_algorithms(True)
    if config.threads:
        torch.set_num_threads(config.threads)
    normaliser = NormaliserConfig.from_dict(config.normaliser)
    texts = read_texts(paths, normaliser, say)
    order = np.random.default_rng(config.seed).permutation(len(texts))
    n_holdout = int(len(texts) * config.holdout_fraction)
    heldout = [texts[i] for i in order[:n_holdout]]
    train_texts = [texts[i] for i in order[n_holdout:]]
    say(f"learning a {config.vocab_size}-piece vocabulary from {len(train_texts)} texts ({len(heldout)} held out)")
    tokenizer = train_tokenizer(train_texts, config.vocab_size)
    shape = EncoderShape(config.hidden, config.layers, config.heads, config.intermediate)
    model = BertForMaskedLM(BertConfig(
        vocab_size=len(tokenizer), hidden_size=shape.hidden, num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads, intermediate_size=shape.intermediate, max_position_embeddings=shape.max_positions,
    ))
    encoded = tokenizer(train_texts, truncation=True, max_length=config.max_length)["input_ids"]
    held = tokenizer(heldout, truncation=True, max_length=config.max_length)["input_ids"]
    lengths = np.array([len(ids) for ids in encoded])
    steps_per_epoch = math.ceil(len(encoded) / config.batch_size)
    total = steps_per_epoch * config.epochs
    warmup = max(1, int(config.warmup_fraction * total))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (total - step) / max(1, total - warmup))))
    generator = torch.Generator().manual_seed(config.seed)
    on_event({"kind": "start", "total_steps": total, "step": 0})
    history: list[dict[str, float]] = []
    step = 0
    for epoch in range(config.epochs):
        model.train()
        running = 0.0
        batches = epoch_batches(lengths, config.batch_size, config.seed, epoch)
        for n, batch in enumerate(batches, 1):
            ids, attention = pad_batch([encoded[i] for i in batch], tokenizer.pad_token_id)
            masked, labels = mask_tokens(ids, attention, tokenizer, config.mask_probability, generator)
            loss = model(input_ids=masked, attention_mask=attention, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            running += float(loss.detach())
            step += 1
            on_event({"kind": "step", "step": step, "total_steps": total, "epoch": epoch + 1, "loss": running / n})
        entry = {"epoch": epoch + 1, "train_loss": round(running / len(batches), 4),
                 "heldout_loss": heldout_loss(model, held, tokenizer, config), "seconds": round(time.perf_counter() - started, 1)}
        history.append(entry)
        on_event({"kind": "epoch", **entry})
        if config.max_minutes and entry["seconds"] > 60 * config.max_minutes:
            say(f"stopping: time budget of {config.max_minutes} minutes")
            break
    out.mkdir(parents=True, exist_ok=True)
    quiet_transformers()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    seconds = time.perf_counter() - started
    final = history[-1]["heldout_loss"] if history else None
    report = {"files": [str(p) for p in paths], "texts": len(texts), "train_texts": len(train_texts),
              "heldout_texts": len(heldout), "config": dataclasses.asdict(config), "epochs": history,
              "heldout_loss": final, "heldout_perplexity": round(math.exp(final), 2) if final is not None else None,
              "seconds": round(seconds, 1)}
    (out / REPORT_FILE).write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    return PretrainResult(out, len(texts), final, seconds, history)


def heldout_loss(model: Any, held: list[list[int]], tokenizer: Any, config: PretrainConfig) -> float:
    """Masked-token loss on the held-out texts, with a fixed masking so epochs compare."""
    if not held:
        return float("nan")
    model.eval()
    generator = torch.Generator().manual_seed(config.seed + 1)
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(held), config.batch_size):
            ids, attention = pad_batch(held[start : start + config.batch_size], tokenizer.pad_token_id)
            masked, labels = mask_tokens(ids, attention, tokenizer, config.mask_probability, generator)
            n = int((labels != -100).sum())
            if n:
                total += float(model(input_ids=masked, attention_mask=attention, labels=labels).loss) * n
                count += n
    return round(total / max(count, 1), 4)
