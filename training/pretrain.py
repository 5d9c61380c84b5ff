"""Pre-training of the compact encoder on unlabelled comment text (labels ignored), by one of two objectives.

`bazkhord pretrain --data A.jsonl --data B.jsonl --out artifacts/pretrained/fa-compact` learns a WordPiece
vocabulary and a small BERT from every text given by masked-language modelling. With `--teacher FOLDER` (e.g. the
imported multilingual-e5-small) the compact encoder instead takes the teacher's tokenizer, starts from the
teacher's word and position embeddings projected onto their leading principal directions, and learns to reproduce
the teacher's last-layer token states through a linear map (general distillation, as TinyBERT's first stage): it
inherits what the teacher knows of Persian rather than what a few thousand comments teach by masked words. Either
way the output folder is a normal transformers checkpoint, so it can be a training config's
`transformer.base_model`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bazkhord.data.errors import ConfigError, DataError
from bazkhord.data.normalise import NormaliserConfig, normalise_many
from bazkhord.data.progress import QUIET, Progress
from bazkhord.data.readers import read_records
from bazkhord.model.backbone import PRETRAIN_REPORT, EncoderShape, encoder_prompt, quiet_transformers
from bazkhord.model.network import pad_batch
from bazkhord.model.tokenizer import train_tokenizer
from bazkhord.training.config import apply_override
from bazkhord.training.encoder_import import NOTICE_FILE
from bazkhord.training.transformer import epoch_batches

log = logging.getLogger(__name__)

# The teacher's states are kept for later epochs up to this size (fp16); beyond it they are computed again.
TEACHER_CACHE_MB = 3072



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
    # An encoder folder or hub id whose token states the compact encoder learns (its tokenizer replaces the learned
    # vocabulary, so vocab_size is unused); empty: masked words.
    teacher: str = ""
    # Put before every text ("auto": the teacher's own, "query: " for e5); recorded in the report, so fine-tuning on
    # the folder with `transformer.prompt = "auto"` reads the same. None by default: on the sample's dev split a
    # student taught e5's states after its prompt did worse than one taught them without and fine-tuned with the
    # prompt (the default pre-training, on which every benchmark section was measured).
    prompt: str = ""

    def __post_init__(self) -> None:
        for key in ("vocab_size", "hidden", "layers", "heads", "intermediate", "max_length", "epochs", "batch_size"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise ConfigError(f"pretrain {key} must be a positive whole number, not {getattr(self, key)!r}")
        if self.hidden % self.heads:
            raise ConfigError(f"pretrain hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        if not 0 < self.mask_probability < 1 or not 0 <= self.holdout_fraction < 0.5:
            raise ConfigError("pretrain mask_probability must be in (0, 1) and holdout_fraction in [0, 0.5)")
        if not isinstance(self.teacher, str):
            raise ConfigError(f"pretrain teacher must be an encoder folder or hub id (a string), not {self.teacher!r}")
        if not isinstance(self.prompt, str):
            raise ConfigError(f"pretrain prompt must be a string (\"auto\": the teacher's own), not {self.prompt!r}")

    def text_prompt(self) -> str:
        """What goes before every text: `prompt`, with "auto" resolved to the teacher's own (none without one)."""
        if self.prompt != "auto":
            return self.prompt
        return encoder_prompt(self.teacher) if self.teacher else ""

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
    measure: str = "masked-token loss"  # what heldout_loss is


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


class MaskedWords:
    """BERT's masked-language objective over a WordPiece vocabulary learned from the training texts."""

    measure = "masked-token loss"

    def __init__(self, train_texts: list[str], config: PretrainConfig, shape: EncoderShape,
                 say: Callable[[str], None]) -> None:
        from transformers import BertConfig, BertForMaskedLM

        say(f"learning a {config.vocab_size}-piece vocabulary from {len(train_texts)} texts")
        self.config = config
        self.tokenizer = train_tokenizer(train_texts, config.vocab_size)
        self.model = BertForMaskedLM(BertConfig(
            vocab_size=len(self.tokenizer), hidden_size=shape.hidden, num_hidden_layers=shape.layers,
            num_attention_heads=shape.heads, intermediate_size=shape.intermediate,
            max_position_embeddings=shape.max_positions,
        ))
        self.trainable: torch.nn.Module = self.model
        self.generator = torch.Generator().manual_seed(config.seed)

    def prepare(self, encoded: list[list[int]]) -> None:
        pass

    def loss(self, split: str, encoded: list[list[int]], rows: np.ndarray) -> torch.Tensor:
        ids, attention = pad_batch([encoded[i] for i in rows], self.tokenizer.pad_token_id)
        masked, labels = mask_tokens(ids, attention, self.tokenizer, self.config.mask_probability, self.generator)
        return self.model(input_ids=masked, attention_mask=attention, labels=labels).loss

    def heldout(self, held: list[list[int]]) -> float:
        return heldout_loss(self.model, held, self.tokenizer, self.config)

    def save(self, out: Path) -> dict[str, Any]:
        self.model.save_pretrained(out)
        self.tokenizer.save_pretrained(out)
        return {"objective": "masked words"}


class TeacherStates:
    """General distillation: the compact encoder, on the teacher's tokenizer and starting from its embeddings
    projected onto their leading principal directions, learns to reproduce the teacher's last-layer token states
    through a linear map. The states are standardised per dimension (multilingual-e5's last layer has a few
    dimensions hundreds of times wider than the rest), so the loss is the share of their variance left unexplained:
    1.0 for a student that outputs their mean, 0.0 for a perfect one."""

    measure = "unexplained share of the teacher's token states"

    def __init__(self, train_texts: list[str], config: PretrainConfig, shape: EncoderShape,
                 say: Callable[[str], None]) -> None:
        from transformers import BertConfig, BertModel

        from bazkhord.model.backbone import hidden_size, load_backbone

        say(f"loading the teacher {config.teacher}")
        self.config = config
        teacher, self.tokenizer = load_backbone(config.teacher)
        self.teacher = teacher.eval().requires_grad_(False)
        rows = self.teacher.get_input_embeddings().weight.shape[0]
        self.student = BertModel(BertConfig(
            vocab_size=rows, hidden_size=shape.hidden, num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
            intermediate_size=shape.intermediate, max_position_embeddings=shape.max_positions,
            pad_token_id=self.tokenizer.pad_token_id,
        ), add_pooling_layer=False)
        self.variance_kept = project_embeddings(self.teacher, self.student)
        say(f"the student's embeddings keep {self.variance_kept:.0%} of the teacher's word-embedding variance")
        self.projection = torch.nn.Linear(shape.hidden, hidden_size(self.teacher))
        self.trainable = torch.nn.ModuleDict({"student": self.student, "projection": self.projection})
        self.cache: dict[tuple[str, int], torch.Tensor] = {}
        self.cached_bytes = 0
        self.scale: tuple[torch.Tensor, torch.Tensor] | None = None

    def prepare(self, encoded: list[list[int]]) -> None:
        """The per-dimension mean and spread of the teacher's token states, from up to 512 training texts."""
        states = [self.teacher_states(encoded[i : i + 64], standardised=False) for i in range(0, min(len(encoded), 512), 64)]
        flat = torch.cat(states)
        self.scale = flat.mean(0), flat.std(0).clamp_min(1e-6)

    def teacher_states(self, rows: Sequence[Sequence[int]], standardised: bool = True) -> torch.Tensor:
        """The real tokens' states of `rows`, concatenated (padding dropped)."""
        ids, attention = pad_batch(rows, self.tokenizer.pad_token_id)
        with torch.inference_mode():
            states = self.teacher(input_ids=ids, attention_mask=attention).last_hidden_state[attention.bool()]
        if standardised and self.scale is not None:
            states = (states - self.scale[0]) / self.scale[1]
        return states.clone()

    def targets(self, split: str, encoded: list[list[int]], rows: np.ndarray) -> torch.Tensor:
        """The teacher's standardised states for `rows`, kept in fp16 (up to TEACHER_CACHE_MB) so later epochs need
        no teacher pass."""
        keys = [(split, int(i)) for i in rows]
        if not all(k in self.cache for k in keys):
            states = self.teacher_states([encoded[i] for i in rows])
            pieces = torch.split(states, [len(encoded[i]) for i in rows])
            for key, piece in zip(keys, pieces, strict=True):
                size = piece.numel() * 2
                if self.cached_bytes + size <= TEACHER_CACHE_MB * 2**20:
                    self.cache[key] = piece.half()
                    self.cached_bytes += size
            return states
        return torch.cat([self.cache[k] for k in keys]).float()

    def loss(self, split: str, encoded: list[list[int]], rows: np.ndarray) -> torch.Tensor:
        ids, attention = pad_batch([encoded[i] for i in rows], self.tokenizer.pad_token_id)
        states = self.student(input_ids=ids, attention_mask=attention).last_hidden_state[attention.bool()]
        return torch.nn.functional.mse_loss(self.projection(states), self.targets(split, encoded, rows))

    def heldout(self, held: list[list[int]]) -> float:
        if not held:
            return float("nan")
        total, count = 0.0, 0
        with torch.inference_mode():
            for start in range(0, len(held), self.config.batch_size):
                rows = np.arange(start, min(start + self.config.batch_size, len(held)))
                n = sum(len(held[i]) for i in rows)
                total += float(self.loss("held", held, rows)) * n
                count += n
        return round(total / max(count, 1), 4)

    def save(self, out: Path) -> dict[str, Any]:
        self.student.save_pretrained(out)
        self.tokenizer.save_pretrained(out)
        notice = Path(self.config.teacher) / NOTICE_FILE
        if notice.is_file():  # the student's embeddings derive from the teacher's: its licence notices travel along
            shutil.copyfile(notice, out / NOTICE_FILE)
        return {"objective": "teacher token states", "teacher": self.config.teacher,
                "embedding_variance_kept": round(self.variance_kept, 4),
                "teacher_states_cached_mb": round(self.cached_bytes / 2**20, 1)}


def project_embeddings(teacher: Any, student: Any) -> float:
    """Set the student's word (and, for a BERT teacher, position and token-type) embeddings to the teacher's projected
    onto the leading principal directions of its word embeddings; one map for all three, so their sum, which the
    embedding LayerNorm reads, is the projection of the teacher's sum. Returns the share of the word embeddings'
    variance those directions keep."""
    words = teacher.get_input_embeddings().weight.detach().float()
    _, singular, directions = torch.linalg.svd(words - words.mean(0), full_matrices=False)
    k = min(student.config.hidden_size, directions.shape[0])
    basis = directions[:k].T  # (teacher hidden, k)

    def copy(target: torch.Tensor, source: torch.Tensor) -> None:
        rows = min(target.shape[0], source.shape[0])
        target.zero_()
        target[:rows, :k] = source.detach().float()[:rows] @ basis

    with torch.no_grad():
        copy(student.get_input_embeddings().weight, words)
        if teacher.config.model_type == "bert":  # RoBERTa-like encoders count positions from the padding id + 1
            copy(student.embeddings.position_embeddings.weight, teacher.embeddings.position_embeddings.weight)
            copy(student.embeddings.token_type_embeddings.weight, teacher.embeddings.token_type_embeddings.weight)
    return float((singular[:k] ** 2).sum() / (singular**2).sum())


def pretrain(paths: Sequence[str | Path], out: Path, config: PretrainConfig, progress: Progress = QUIET) -> PretrainResult:
    say, on_event = progress.phase, progress.event
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
    say(f"{len(train_texts)} texts to learn from, {len(heldout)} held out")
    shape = EncoderShape(config.hidden, config.layers, config.heads, config.intermediate)
    objective: MaskedWords | TeacherStates = (TeacherStates if config.teacher else MaskedWords)(
        train_texts, config, shape, say)
    tokenizer = objective.tokenizer
    prompt = config.text_prompt()
    if prompt:
        say(f"every text read as {prompt!r} + text")
    encoded = tokenizer([prompt + t for t in train_texts], truncation=True, max_length=config.max_length)["input_ids"]
    held = tokenizer([prompt + t for t in heldout], truncation=True, max_length=config.max_length)["input_ids"]
    objective.prepare(encoded)
    lengths = np.array([len(ids) for ids in encoded])
    steps_per_epoch = math.ceil(len(encoded) / config.batch_size)
    total = steps_per_epoch * config.epochs
    warmup = max(1, int(config.warmup_fraction * total))
    model = objective.trainable
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (total - step) / max(1, total - warmup))))
    on_event({"kind": "start", "total_steps": total, "step": 0})
    history: list[dict[str, float]] = []
    step = 0
    for epoch in range(config.epochs):
        model.train()
        running = 0.0
        batches = epoch_batches(lengths, config.batch_size, config.seed, epoch)
        for n, batch in enumerate(batches, 1):
            loss = objective.loss("train", encoded, batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            running += float(loss.detach())
            step += 1
            on_event({"kind": "step", "step": step, "total_steps": total, "epoch": epoch + 1, "loss": running / n})
        model.eval()
        entry = {"epoch": epoch + 1, "train_loss": round(running / len(batches), 4),
                 "heldout_loss": objective.heldout(held),
                 "seconds": round(time.perf_counter() - started, 1)}
        history.append(entry)
        on_event({"kind": "epoch", **entry})
        if config.max_minutes and entry["seconds"] > 60 * config.max_minutes:
            say(f"stopping: time budget of {config.max_minutes} minutes")
            break
    out.mkdir(parents=True, exist_ok=True)
    quiet_transformers()
    described = objective.save(out)
    seconds = time.perf_counter() - started
    final = history[-1]["heldout_loss"] if history else None
    report = {"files": [str(p) for p in paths], "texts": len(texts), "train_texts": len(train_texts),
              "heldout_texts": len(heldout), "config": dataclasses.asdict(config), "prompt": prompt, **described,
              "heldout_measure": objective.measure, "epochs": history, "heldout_loss": final,
              "seconds": round(seconds, 1)}
    if isinstance(objective, MaskedWords):
        report["heldout_perplexity"] = round(math.exp(final), 2) if final is not None else None
    (out / PRETRAIN_REPORT).write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    return PretrainResult(out, len(texts), final, seconds, history, objective.measure)


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
