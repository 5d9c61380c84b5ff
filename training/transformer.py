"""Fine-tune the multi-task transformer tagger: the training loop, checkpoints, and the choices made on dev
(aspect threshold, temperature, ensemble with the TF-IDF baseline, int8 quantisation).

Seeded and deterministic on CPU: the same config and data give the same weights, also across an interruption
and a resume (the batch order of each epoch comes from the seed, the dropout RNG is saved in the checkpoint).
"""

from __future__ import annotations

import hashlib
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
from safetensors.torch import load_file, save_file
from torch import nn

from bazkhord.data.errors import ConfigError, TrainingStopped
from bazkhord.data.normalise import NormaliserConfig, normalise_many
from bazkhord.data.record import FeedbackRecord, RejectedRow
from bazkhord.data.taxonomy import Taxonomy
from bazkhord.model.backbone import EncoderShape, encoder_prompt, hidden_size, load_backbone, scratch_encoder
from bazkhord.model.base import Tag
from bazkhord.model.int8 import precision_name, quantize_int8
from bazkhord.model.metrics import aspect_metrics, headline, score_tags, sentiment_metrics
from bazkhord.model.network import MultiTaskNet, encode, encoder_layers, mean_pool, pad_batch
from bazkhord.model.tokenizer import train_tokenizer
from bazkhord.model.transformer import Blend, Outputs, TransformerMeta, TransformerTagger
from bazkhord.training.backend import changed_share, choose_backend, onnx_trials
from bazkhord.training.config import DEFAULT_LOSS_WEIGHTS, TrainConfig
from bazkhord.training.tfidf import dev_confusion, fit_rows, tfidf_tagger

log = logging.getLogger(__name__)

IGNORE = -100
STATE_FILE = "state.pt"
BEST_FILE = "best.safetensors"
LOG_FILE = "training_log.jsonl"
CHECKPOINTS_DIR = ".checkpoints"
TOKENIZER_DIR = "tokenizer"
# Quantised int8 is kept only when the dev score (transformer.select_by) drops by at most this much (0.5 points),
QUANTIZE_TOLERANCE = 0.005
# and when it changes at most this share of the dev comments' tags (sentiment, aspects, their polarity) against fp32.
# Each changed tag is right or wrong by close to a coin's toss, so a precision that changes many has a dev score that
# is mostly luck: on DeepSentiPers 3-class, a precision that changed many dev tags gained on dev and lost on test,
# while one that changed few matched fp32 on test too (docs/BENCHMARKS.md).
QUANTIZE_CHANGE_LIMIT = 0.03
TOLERANCE_NOTE = f"(at most -{QUANTIZE_TOLERANCE * 100:.1f} points and {QUANTIZE_CHANGE_LIMIT:.0%} allowed)"
# The sentiment blend's candidates: weights whose (smoothed) dev F1 (transformer.select_by) is within a point of the best.
BLEND_F1_TOLERANCE = 0.01

Event = Callable[[dict[str, Any]], None]


@dataclass
class Targets:
    """Per-row training targets; IGNORE / mask 0 where a row lacks that kind of label."""

    sentiment: torch.Tensor  # (n,) class index or IGNORE
    aspects: torch.Tensor  # (n, A) 0/1
    aspect_mask: torch.Tensor  # (n,) 1 where the row has aspect labels
    polarity: torch.Tensor  # (n, A) polarity index or IGNORE
    soft: torch.Tensor | None = None  # (n, labels) a teacher's sentiment probabilities; rows of zeros: none
    teacher_aspects: TeacherAspects | None = None  # a teacher's aspect presence and polarity, where it has aspects
    teacher_pooled: torch.Tensor | None = None  # (n, teacher hidden) a transformer teacher's sentence vectors


@dataclass
class TeacherAspects:
    """A teacher's aspect outputs as soft targets, in the student's aspect and polarity order."""

    presence: torch.Tensor  # (n, A) probability that the comment speaks of the aspect (as the teacher tags: blended)
    polarity: torch.Tensor  # (n, A, P) polarity probabilities per aspect
    known: torch.Tensor  # (A,) 1 for the aspects the teacher has, 0 for the others (no target there)


@dataclass
class TeacherTargets:
    """What a teacher gives its student: the rows to learn from (the training rows, then the unlabelled comments) and
    the teacher's outputs for each of them."""

    rows: list[FeedbackRecord]
    sentiment: np.ndarray | None  # (n, labels) sentiment probabilities in the student's label order; None: no teacher
    aspects: TeacherAspects | None  # where the teacher is a transformer with aspects in common
    pooled: np.ndarray | None  # its sentence vectors, where asked for and it is a transformer
    unreadable: list[RejectedRow] = field(default_factory=list)  # rows of data.unlabelled's files skipped, and why


def label_of(record: FeedbackRecord, field_name: str) -> str | None:
    if field_name == "sentiment_score":
        return None if record.sentiment_score is None else str(record.sentiment_score)
    return record.sentiment


def build_targets(records: Sequence[FeedbackRecord], field_name: str, labels: list[str], aspects: list[str],
                  polarities: list[str]) -> Targets:
    n, a = len(records), len(aspects)
    sentiment = torch.full((n,), IGNORE, dtype=torch.long)
    presence = torch.zeros((n, max(a, 1)))
    mask = torch.zeros(n)
    polarity = torch.full((n, max(a, 1)), IGNORE, dtype=torch.long)
    for i, record in enumerate(records):
        label = label_of(record, field_name)
        if label is not None and label in labels:
            sentiment[i] = labels.index(label)
        if record.aspects is not None and a:
            mask[i] = 1
            for name, value in record.aspects.items():
                k = aspects.index(name)
                presence[i, k] = 1
                if value in polarities:
                    polarity[i, k] = polarities.index(value)
    return Targets(sentiment, presence, mask, polarity)


def class_weights(targets: torch.Tensor, n_labels: int) -> torch.Tensor:
    """scikit-learn's "balanced" weights: n / (classes * count), so rare classes count as much as common ones."""
    valid = targets[targets != IGNORE]
    counts = torch.bincount(valid, minlength=n_labels).float()
    weights = torch.where(counts > 0, len(valid) / (n_labels * counts.clamp(min=1)), torch.zeros_like(counts))
    return weights


def choose_max_length(tokenizer: Any, texts: Sequence[str], percentile: float, cap: int,
                      prompt: str = "") -> tuple[int, dict[str, float]]:
    # verbose=False: counting the whole length of a long comment is the point here, not a mistake to warn about.
    encoded = tokenizer([prompt + t for t in texts], truncation=False, verbose=False)["input_ids"]
    lengths = np.array([len(ids) for ids in encoded])
    at = float(np.percentile(lengths, percentile))
    chosen = int(min(cap, max(16, math.ceil(at / 8) * 8)))
    stats = {"mean": round(float(lengths.mean()), 1), "p50": float(np.percentile(lengths, 50)),
             f"p{percentile:g}": at, "max": float(lengths.max()), "chosen": chosen,
             "truncated_share": round(float((lengths > chosen).mean()), 4)}
    return chosen, stats


def epoch_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """A seeded shuffle in which each batch holds texts of similar length (sorted within windows of 50 batches)."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    window = batch_size * 50
    batches: list[np.ndarray] = []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def checkpoint_root(config: TrainConfig) -> Path:
    """The folder of unfinished runs' checkpoints: transformer.checkpoint_dir, else `.checkpoints` in models_dir."""
    return Path(config.transformer.checkpoint_dir or Path(config.output.models_dir) / CHECKPOINTS_DIR)


def remove_checkpoint(folder: Path, config: TrainConfig) -> None:
    """Drop a finished run's checkpoint (and the checkpoints folder once it is empty)."""
    shutil.rmtree(folder, ignore_errors=True)
    root = checkpoint_root(config)
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()


def run_key(config: TrainConfig, data_hash: str) -> str:
    """Names the checkpoint folder: the same config (but where outputs go) and data resume the same run."""
    values = config.to_dict()
    values.pop("output", None)
    values.get("transformer", {}).pop("resume", None)
    for key in ("max_minutes", "checkpoint_dir", "keep_checkpoint"):
        values.get("transformer", {}).pop(key, None)
    text = json.dumps(values, sort_keys=True, ensure_ascii=False) + data_hash
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def keep_lowest_layers(encoder: Any, layers: int) -> Any:
    """The encoder with only its lowest `layers` transformer layers (0: all): a smaller, faster model that keeps
    the pretrained lower layers as they are."""
    stack = encoder_layers(encoder)
    if not layers or stack is None or layers >= len(stack):
        return encoder
    encoder.encoder.layer = stack[:layers]
    encoder.config.num_hidden_layers = layers
    return encoder


def freeze(net: MultiTaskNet, embeddings: bool, layers: int) -> list[str]:
    """Stop training the word embeddings and the lowest `layers` layers; returns what was frozen, for the log.

    With word embeddings frozen, a pruned 19k-piece vocabulary and the full 250k one train alike, and no
    gradient is kept for tens of millions of embedding weights; frozen lower layers build no backward graph.
    """
    frozen: list[str] = []
    encoder = net.encoder
    if embeddings:
        encoder.get_input_embeddings().weight.requires_grad_(False)
        frozen.append("word embeddings")
    stack = encoder_layers(encoder)
    if layers and stack is not None:
        modules = [getattr(encoder, "embeddings", None), *list(stack)[:layers]]
        for module in modules:
            if module is not None:
                for parameter in module.parameters():
                    parameter.requires_grad_(False)
        frozen.append(f"embeddings and the lowest {min(layers, len(stack))} layers")
    return frozen


@dataclass
class Fitted:
    tagger: TransformerTagger
    dev_scores: dict[str, dict[str, float]]
    report: dict[str, Any]
    log_text: str
    baseline_refit: Callable[[list[FeedbackRecord]], None] | None = None
    notes: list[str] = field(default_factory=list)
    extra_texts: list[str] = field(default_factory=list)  # unlabelled comments learned from through a teacher
    unreadable: list[RejectedRow] = field(default_factory=list)  # rows of data.unlabelled's files skipped, and why
    confusion: dict[str, Any] = field(default_factory=dict)  # the saved model's dev confusion matrix


@dataclass
class Run:
    """What one fine-tuning run works on: the network, its tagger, and the rows and texts it reads."""

    net: MultiTaskNet
    tokenizer: Any
    tagger: TransformerTagger
    train_rows: list[FeedbackRecord]
    train_texts: list[str]
    dev_rows: list[FeedbackRecord]
    dev_texts: list[str]
    labels: list[str]
    aspects: list[str]
    polarities: list[str]
    max_length: int
    length_stats: dict[str, float]
    prompt: str


@dataclass
class Losses:
    targets: Targets
    weights: dict[str, float]
    sentiment: nn.Module
    presence: nn.Module
    polarity: nn.Module
    projection: nn.Linear | None  # maps the student's sentence vector onto the teacher's (distill_embedding)


@dataclass
class Checkpoint:
    """A run's folder under .checkpoints/: weights, optimiser, scheduler, random state and position, saved after
    every epoch and on Ctrl-C, so the same command resumes to the same weights as an uninterrupted run."""

    folder: Path
    resuming: bool

    @classmethod
    def open(cls, folder: Path, resume: bool) -> Checkpoint:
        folder.mkdir(parents=True, exist_ok=True)
        resuming = resume and (folder / STATE_FILE).exists()
        if not resuming:
            for stale in (folder / LOG_FILE, folder / BEST_FILE):
                stale.unlink(missing_ok=True)
        return cls(folder, resuming)

    def resume(self, run: Run, losses: Losses, optimiser: torch.optim.Optimizer, scheduler: Any, device: torch.device,
               say: Callable[[str], None]) -> dict[str, Any]:
        """The run's progress: a fresh one, or the saved one with every state restored."""
        if not self.resuming:
            return {"epoch": 0, "batch": 0, "step": 0, "best": -1.0, "best_epoch": -1, "bad_epochs": 0, "seconds": 0.0}
        saved = torch.load(self.folder / STATE_FILE, weights_only=True, map_location=device)
        run.net.load_state_dict(saved["net"])
        if losses.projection is not None and "projection" in saved:
            losses.projection.load_state_dict(saved["projection"])
        optimiser.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["rng"])
        state: dict[str, Any] = saved["progress"]
        say(f"resuming {self.folder} at epoch {state['epoch'] + 1}, batch {state['batch']}")
        return state

    def save(self, run: Run, losses: Losses, optimiser: torch.optim.Optimizer, scheduler: Any,
             state: dict[str, Any]) -> None:
        path = self.folder / STATE_FILE
        tmp = path.with_suffix(".tmp")
        torch.save({"net": run.net.state_dict(), "optimizer": optimiser.state_dict(), "scheduler": scheduler.state_dict(),
                    "rng": torch.get_rng_state(), "progress": dict(state),
                    **({"projection": losses.projection.state_dict()} if losses.projection is not None else {})}, tmp)
        tmp.replace(path)

    def log(self, entry: dict[str, Any]) -> None:
        with (self.folder / LOG_FILE).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, ensure_ascii=False) + "\n")


class Trainer:
    """One fine-tuning run. `fit` returns the tagger with the dev choices made; the caller saves the folder."""

    def __init__(self, config: TrainConfig, normaliser: NormaliserConfig, taxonomy: Taxonomy | None,
                 say: Callable[[str], None], on_event: Event | None = None, interrupt_after: int | None = None) -> None:
        self.config = config
        self.t = config.transformer
        self.normaliser = normaliser
        self.taxonomy = taxonomy
        self.say = say
        self.on_event = on_event or (lambda event: None)
        self.interrupt_after = interrupt_after  # tests: raise KeyboardInterrupt after this many optimizer steps
        wanted = self.t.device
        if wanted == "cuda" and not torch.cuda.is_available():
            raise ConfigError("transformer.device is 'cuda' but torch sees no GPU; use 'auto' or 'cpu'")
        self.device = torch.device("cuda" if wanted != "cpu" and torch.cuda.is_available() else "cpu")

    # -- set-up ------------------------------------------------------------------------------------------
    def label_space(self, train: Sequence[FeedbackRecord]) -> tuple[list[str], list[str], list[str]]:
        field_name = self.config.data.label
        labels = sorted({lab for r in train if (lab := label_of(r, field_name)) is not None})
        aspects = sorted({name for r in train if r.aspects for name in r.aspects})
        polarities = sorted({value for r in train if r.aspects for value in r.aspects.values()})
        return labels, aspects, polarities

    def backbone(self, texts: Sequence[str], folder: Path) -> tuple[Any, Any]:
        t = self.t
        if t.base_model != "scratch":
            self.say(f"loading {t.base_model}")
            encoder, tokenizer = load_backbone(t.base_model)
            return keep_lowest_layers(encoder, t.keep_layers), tokenizer
        tokenizer_dir = folder / TOKENIZER_DIR
        if tokenizer_dir.exists():  # resuming: the vocabulary must be the one the checkpoint learned
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
        else:
            self.say(f"learning a {t.vocab_size}-piece vocabulary from {len(texts)} texts")
            tokenizer = train_tokenizer(texts, t.vocab_size)
            tokenizer.save_pretrained(tokenizer_dir)
        shape = EncoderShape(t.hidden, t.layers, t.heads, t.intermediate, dropout=t.dropout,
                             max_positions=max(t.max_length_cap, t.max_length) + 2)
        return scratch_encoder(len(tokenizer), shape), tokenizer

    # -- the loop ----------------------------------------------------------------------------------------
    def fit(self, splits: dict[str, list[FeedbackRecord]], data_hash: str) -> Fitted:
        """Fine-tune on splits["train"], keep the epoch with the best dev score, and return the tagger."""
        t = self.t
        torch.manual_seed(self.config.seed)
        if self.device.type == "cpu":
            torch.use_deterministic_algorithms(True)
        if t.threads:
            torch.set_num_threads(t.threads)
        if not splits["dev"]:
            raise ConfigError("the transformer needs dev comments for early stopping: give data.dev or keep dev_fraction > 0")
        space = self.label_space(splits["train"])
        weights = {**DEFAULT_LOSS_WEIGHTS, **t.loss_weights}
        given = (self.teacher_targets(splits["train"], splits["dev"], *space, with_pooled=weights["distill_embedding"] > 0)
                 if t.teacher else TeacherTargets(splits["train"], None, None, None))
        checkpoint = Checkpoint.open(checkpoint_root(self.config) / f"{self.config.model.name}-{run_key(self.config, data_hash)}",
                                     t.resume)
        run = self._network(given.rows, splits["dev"], space, checkpoint)
        losses = self._losses(run, given, weights)
        optimiser, scheduler, total_steps = self._optimiser(run, losses)
        state = checkpoint.resume(run, losses, optimiser, scheduler, self.device, self.say)
        stopped_by = self._train(run, losses, optimiser, scheduler, total_steps, state, checkpoint)
        self.say(f"best dev score {state['best']:.4f} at epoch {state['best_epoch']} ({stopped_by})")
        return self._fitted(run, given, splits, state, stopped_by, checkpoint)

    def _network(self, train_rows: list[FeedbackRecord], dev_rows: list[FeedbackRecord],
                 space: tuple[list[str], list[str], list[str]], checkpoint: Checkpoint) -> Run:
        """The backbone, its tokenizer, the length limit, the heads on top (some layers frozen) and the tagger."""
        t = self.t
        labels, aspects, polarities = space
        train_texts = normalise_many([r.text for r in train_rows], self.normaliser)
        dev_texts = normalise_many([r.text for r in dev_rows], self.normaliser)
        encoder, tokenizer = self.backbone(train_texts, checkpoint.folder)
        prompt = encoder_prompt(t.base_model) if t.prompt == "auto" else t.prompt
        limit = int(getattr(encoder.config, "max_position_embeddings", 512)) - 2
        length_stats: dict[str, float]
        if t.max_length:
            max_length, length_stats = min(t.max_length, limit), {"chosen": min(t.max_length, limit)}
        else:
            cap = min(t.max_length_cap, limit)
            max_length, length_stats = choose_max_length(tokenizer, train_texts, t.length_percentile, cap, prompt)
        self.say(f"max length {max_length} tokens ({length_stats})")

        torch.manual_seed(self.config.seed)  # heads start the same whether or not the tokenizer was learned here
        net = MultiTaskNet(encoder, len(labels), len(aspects), len(polarities), t.dropout).to(self.device)
        frozen = freeze(net, t.freeze_embeddings == "yes" or (t.freeze_embeddings == "auto" and t.base_model != "scratch"),
                        t.freeze_layers)
        if frozen:
            self.say(f"frozen: {', '.join(frozen)}")
        meta = TransformerMeta(labels, aspects, polarities, max_length, t.base_model, str(encoder.config.model_type),
                               dropout=t.dropout, token_length_stats=length_stats, prompt=prompt, evidence=t.evidence)
        tagger = TransformerTagger(net, tokenizer, meta, self.normaliser, self.taxonomy)
        return Run(net, tokenizer, tagger, train_rows, train_texts, dev_rows, dev_texts, labels, aspects, polarities,
                   max_length, length_stats, prompt)

    def _losses(self, run: Run, given: TeacherTargets, weights: dict[str, float]) -> Losses:
        """The targets of every row (labels, and the teacher's where there is one) and the loss of each head."""
        t = self.t
        targets = build_targets(run.train_rows, self.config.data.label, run.labels, run.aspects, run.polarities)
        if given.sentiment is not None:
            targets.soft = torch.from_numpy(given.sentiment).float()
        targets.teacher_aspects = given.aspects
        # The teacher's sentence vectors, matched by a linear map of the student's (trained here, not saved): a richer
        # target than its few output probabilities (DEFAULT_LOSS_WEIGHTS says how much it counts). Centred first: a
        # teacher's vectors share a common direction, which the map's bias alone would match; centred, the student
        # learns what tells comments apart.
        projection: nn.Linear | None = None
        if given.pooled is not None:
            targets.teacher_pooled = torch.from_numpy(given.pooled - given.pooled.mean(axis=0)).float()
            projection = nn.Linear(hidden_size(run.net.encoder), given.pooled.shape[1]).to(self.device)
        class_weight = class_weights(targets.sentiment, len(run.labels)) if t.class_weight == "balanced" else None
        sentiment = nn.CrossEntropyLoss(weight=class_weight.to(self.device) if class_weight is not None else None,
                                        ignore_index=IGNORE)
        # Aspects are rare (most comments name one or two of many): positives weigh sqrt(negatives / positives).
        labelled = targets.aspects[targets.aspect_mask.bool()]
        positives = labelled.sum(0)
        pos_weight = ((len(labelled) - positives) / positives.clamp(min=1)).clamp(min=1.0).sqrt()
        return Losses(targets, weights, sentiment, nn.BCEWithLogitsLoss(reduction="none", pos_weight=pos_weight.to(self.device)),
                      nn.CrossEntropyLoss(ignore_index=IGNORE), projection)

    def _optimiser(self, run: Run, losses: Losses) -> tuple[torch.optim.Optimizer, Any, int]:
        """AdamW (no decay on biases and norms; the new heads at their own learning rate), warm-up, linear decay."""
        t = self.t
        batches_per_epoch = math.ceil(len(run.train_rows) / t.batch_size)
        total_steps = math.ceil(batches_per_epoch / t.grad_accum) * t.epochs
        no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
        trained = [(n, p) for n, p in run.net.named_parameters() if p.requires_grad]
        head_lr = t.head_learning_rate or t.learning_rate
        projection = losses.projection
        groups = [
            {"params": [p for n, p in trained if n.startswith("encoder.") and not n.endswith(no_decay)],
             "weight_decay": t.weight_decay, "lr": t.learning_rate},
            {"params": [p for n, p in trained if n.startswith("encoder.") and n.endswith(no_decay)], "weight_decay": 0.0,
             "lr": t.learning_rate},
            {"params": [p for n, p in trained if not n.startswith("encoder.")], "weight_decay": t.weight_decay, "lr": head_lr},
            {"params": list(projection.parameters()) if projection is not None else [], "weight_decay": t.weight_decay,
             "lr": head_lr},
        ]
        optimiser = torch.optim.AdamW([g for g in groups if g["params"]], lr=t.learning_rate)
        warmup = max(1, int(t.warmup_fraction * total_steps))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimiser, lambda step: min((step + 1) / warmup, max(0.0, (total_steps - step) / max(1, total_steps - warmup)))
        )
        return optimiser, scheduler, total_steps

    def _train(self, run: Run, losses: Losses, optimiser: torch.optim.Optimizer, scheduler: Any, total_steps: int,
               state: dict[str, Any], checkpoint: Checkpoint) -> str:
        """Epochs until early stopping, the time budget or the last; returns why it stopped. Ctrl-C saves the
        checkpoint, so the same command resumes."""
        t = self.t
        encoded = encode(run.tokenizer, run.train_texts, run.max_length, run.prompt)
        lengths = encoded.lengths()
        steps_per_epoch = math.ceil(math.ceil(len(run.train_rows) / t.batch_size) / t.grad_accum)
        self.say(f"training on {self.device.type}: {len(run.train_rows)} comments, {t.epochs} epochs of "
                 f"{steps_per_epoch} steps")
        started = time.perf_counter() - state["seconds"]
        self.on_event({"kind": "start", "total_steps": total_steps, "step": state["step"]})
        try:
            while state["epoch"] < t.epochs:
                epoch = state["epoch"]
                running, seen_batches = self._epoch(run, losses, optimiser, scheduler, total_steps, state, encoded,
                                                    epoch_batches(lengths, t.batch_size, self.config.seed, epoch))
                entry = self._end_of_epoch(run, state, checkpoint, running, seen_batches, started, optimiser)
                self.on_event({"kind": "epoch", **entry})
                checkpoint.save(run, losses, optimiser, scheduler, state)
                if state["bad_epochs"] >= t.patience:
                    return f"early stop: no better dev score for {t.patience} epochs"
                if t.max_minutes and state["seconds"] > 60 * t.max_minutes:
                    return f"time budget of {t.max_minutes} minutes"
        except KeyboardInterrupt:
            checkpoint.save(run, losses, optimiser, scheduler, state)
            raise TrainingStopped(
                f"interrupted at epoch {state['epoch'] + 1}, step {state['step']}; the checkpoint is in "
                f"{checkpoint.folder}: run the same command again to resume"
            ) from None
        return "epochs"

    def _epoch(self, run: Run, losses: Losses, optimiser: torch.optim.Optimizer, scheduler: Any, total_steps: int,
               state: dict[str, Any], encoded: Any, order: list[np.ndarray]) -> tuple[float, int]:
        """The batches of one epoch from where the state says (mid-epoch after a resume); (summed loss, batches)."""
        t, net, targets = self.t, run.net, losses.targets
        net.train()
        running, seen_batches = 0.0, 0
        for b in range(state["batch"], len(order)):
            batch = order[b]
            ids, mask = pad_batch([encoded.input_ids[i] for i in batch], run.tokenizer.pad_token_id)
            ids, mask = ids.to(self.device), mask.to(self.device)
            pooled = mean_pool(net.hidden_states(ids, mask), mask)
            s_logits, a_logits, p_logits = net.heads(pooled)
            loss = self.loss(targets, batch, s_logits, a_logits, p_logits, losses.sentiment, losses.presence,
                             losses.polarity, losses.weights, bool(run.aspects), bool(run.polarities))
            if losses.projection is not None and targets.teacher_pooled is not None:
                loss = loss + losses.weights["distill_embedding"] * self.embedding_loss(
                    targets.teacher_pooled, batch, losses.projection(pooled))
            (loss / t.grad_accum).backward()
            running += float(loss.detach())
            seen_batches += 1
            if (b + 1) % t.grad_accum == 0 or b + 1 == len(order):
                torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                optimiser.step()
                scheduler.step()
                optimiser.zero_grad(set_to_none=True)
                state["step"] += 1
                state["batch"] = b + 1
                self.on_event({"kind": "step", "step": state["step"], "total_steps": total_steps,
                               "epoch": state["epoch"] + 1, "loss": running / seen_batches})
                if self.interrupt_after is not None and state["step"] >= self.interrupt_after:
                    raise KeyboardInterrupt
        return running, seen_batches

    def _end_of_epoch(self, run: Run, state: dict[str, Any], checkpoint: Checkpoint, running: float, seen_batches: int,
                      started: float, optimiser: torch.optim.Optimizer) -> dict[str, Any]:
        """Score dev, keep the weights when they are the best so far, and log the epoch."""
        run.net.eval()
        scores = self.dev_scores(run.tagger, run.dev_rows, run.dev_texts, 0.5)
        score = selection_score(scores, self.t.select_by)
        epoch = state["epoch"]
        state["epoch"], state["batch"] = epoch + 1, 0
        state["seconds"] = time.perf_counter() - started
        improved = score > state["best"]
        if improved:
            state["best"], state["best_epoch"], state["bad_epochs"] = score, epoch + 1, 0
            save_file({k: v.detach().cpu().contiguous() for k, v in run.net.state_dict().items()},
                      str(checkpoint.folder / BEST_FILE))
        else:
            state["bad_epochs"] += 1
        entry = {"epoch": epoch + 1, "step": state["step"], "train_loss": round(running / max(seen_batches, 1), 4),
                 "dev": scores, "dev_score": round(score, 4), "best": improved,
                 "lr": optimiser.param_groups[0]["lr"], "seconds": round(state["seconds"], 1)}
        checkpoint.log(entry)
        return entry

    def _fitted(self, run: Run, given: TeacherTargets, splits: dict[str, list[FeedbackRecord]], state: dict[str, Any],
                stopped_by: str, checkpoint: Checkpoint) -> Fitted:
        """The best epoch's weights in the tagger, on the CPU, with the run's report."""
        net = run.net
        net.load_state_dict(load_file(str(checkpoint.folder / BEST_FILE), device=str(self.device)))
        net.eval()
        run.tagger.net = net.to("cpu")
        run.tagger.device = torch.device("cpu")
        report = {"checkpoint": str(checkpoint.folder), "device": self.device.type, "best_epoch": state["best_epoch"],
                  "epochs_run": state["epoch"], "stopped_by": stopped_by, "steps": state["step"],
                  "train_seconds": round(state["seconds"], 1), "max_length": run.max_length,
                  "token_lengths": run.length_stats, "labels": run.labels, "aspects": run.aspects,
                  "polarities": run.polarities}
        if self.t.teacher:
            report["teacher"] = {"model": self.t.teacher, "comments": len(run.train_rows),
                                 "unlabelled": len(run.train_rows) - len(splits["train"]),
                                 "aspects": int(given.aspects.known.sum()) if given.aspects is not None else 0,
                                 "sentence_vectors": given.pooled is not None}
        fitted = Fitted(run.tagger, {}, report, (checkpoint.folder / LOG_FILE).read_text(encoding="utf-8"))
        fitted.extra_texts = [r.text for r in run.train_rows[len(splits["train"]):]]
        fitted.unreadable = given.unreadable
        return fitted

    def teacher_targets(self, train_rows: list[FeedbackRecord], dev_rows: Sequence[FeedbackRecord], labels: list[str],
                        aspects: list[str], polarities: list[str], with_pooled: bool = False) -> TeacherTargets:
        """The training rows plus the unlabelled comments (none that dev holds, no repeats), and the teacher's
        sentiment probabilities for every one of them, in this model's label order; its aspect outputs too where it
        is a transformer with aspects in common with this model, and `with_pooled` its sentence vectors where it is a
        transformer."""
        from bazkhord.data.readers import read_records
        from bazkhord.model.folder import load_model

        paths = self.config.data.unlabelled_files
        seen = set(normalise_many([r.text for r in [*train_rows, *dev_rows]], self.normaliser))
        extra: list[FeedbackRecord] = []
        unreadable: list[RejectedRow] = []
        for path in paths:
            read = read_records(path, max_bad_fraction=1.0)
            unreadable += read.rejected
            records = read.records
            for record, key in zip(records, normalise_many([r.text for r in records], self.normaliser), strict=True):
                if key not in seen:
                    seen.add(key)
                    extra.append(FeedbackRecord(text=record.text, origin=record.origin))
        teacher = load_model(self.t.teacher).tagger
        shared = [label for label in labels if label in teacher.labels]
        if not shared:
            raise ConfigError(f"transformer.teacher {self.t.teacher!r} has labels {teacher.labels}, "
                              f"none of this model's {labels}")
        rows = [*train_rows, *extra]
        self.say(f"teacher {self.t.teacher}: soft labels for {len(train_rows)} training and {len(extra)} unlabelled comments")
        texts = [r.text for r in rows]
        taught, pooled = None, None
        common = isinstance(teacher, TransformerTagger) and set(aspects) & set(teacher.meta.aspects)
        if with_pooled and not isinstance(teacher, TransformerTagger):
            self.say(f"teacher {self.t.teacher!r} is not a transformer: it has no sentence vectors to distil "
                     "(loss_weights.distill_embedding is not used)")
        if isinstance(teacher, TransformerTagger) and (common or with_pooled):
            # predict_proba's steps, so one pass over the comments gives the sentiment, the aspects and the sentence
            # vectors alike.
            normalised = teacher.normalise(texts)
            outputs = teacher.forward_texts(normalised, pooled=with_pooled)
            proba = teacher.blend_proba(outputs.logits, normalised)
            if common:
                taught = teacher_aspects(teacher, outputs, normalised, aspects, polarities)
            pooled = outputs.pooled
        else:
            proba = teacher.predict_proba(texts)
        soft = np.zeros((len(rows), len(labels)), dtype=np.float32)
        for label in shared:
            soft[:, labels.index(label)] = proba[:, teacher.labels.index(label)]
        soft /= np.clip(soft.sum(axis=1, keepdims=True), 1e-9, None)
        return TeacherTargets(rows, soft, taught, pooled, unreadable)

    @staticmethod
    def embedding_loss(teacher_pooled: torch.Tensor, batch: np.ndarray, projected: torch.Tensor) -> torch.Tensor:
        """Mean cosine distance between the student's projected sentence vectors and the teacher's: the direction
        is what a sentence embedding carries (e5's are compared by cosine), its length little."""
        teacher = teacher_pooled[torch.as_tensor(batch)].to(projected.device)
        return (1.0 - nn.functional.cosine_similarity(projected, teacher, dim=-1)).mean()

    @staticmethod
    def loss(targets: Targets, batch: np.ndarray, s_logits: torch.Tensor, a_logits: torch.Tensor, p_logits: torch.Tensor,
             sentiment_loss: nn.Module, presence_loss: nn.Module, polarity_loss: nn.Module, lw: dict[str, float],
             has_aspects: bool, has_polarities: bool) -> torch.Tensor:
        """Weighted sum of the three losses; each is masked to the rows that carry that kind of label."""
        device = s_logits.device
        index = torch.as_tensor(batch)
        total = s_logits.sum() * 0.0
        if targets.soft is not None and lw["distill"]:
            # Cross-entropy against the teacher's probabilities (KL divergence up to the teacher's own entropy).
            soft = targets.soft[index].to(device)
            total = total - lw["distill"] * (soft * torch.log_softmax(s_logits, dim=-1)).sum(dim=1).mean()
        taught = targets.teacher_aspects
        if taught is not None and has_aspects and lw["distill_aspects"]:
            # The teacher's aspect presence, summed over the aspects it has as the labelled presence loss is; its
            # polarity wherever it sees the aspect, weighed by how surely it sees it.
            known = taught.known.to(device)
            presence = taught.presence[index].to(device)
            per_row = nn.functional.binary_cross_entropy_with_logits(a_logits, presence, reduction="none")
            total = total + lw["distill_aspects"] * (per_row * known).sum(dim=1).mean()
            if has_polarities:
                cross = -(taught.polarity[index].to(device) * torch.log_softmax(p_logits, dim=-1)).sum(dim=-1)
                weight = presence * known
                total = total + lw["distill_aspects"] * (cross * weight).sum() / weight.sum().clamp(min=1e-6)
        sentiment = targets.sentiment[index].to(device)
        if (sentiment != IGNORE).any():
            total = total + lw["sentiment"] * sentiment_loss(s_logits, sentiment)
        if has_aspects:
            mask = targets.aspect_mask[index].to(device)
            if mask.any():
                # Summed over the aspects: each aspect's yes/no weighs as much as the sentence's sentiment. Averaged
                # (a sixth each on parsinlu_food's six aspects), the aspect head lagged far behind on dev.
                per_row = presence_loss(a_logits, targets.aspects[index].to(device)).sum(dim=1)
                total = total + lw["aspects"] * (per_row * mask).sum() / mask.sum()
            polarity = targets.polarity[index].to(device)
            if has_polarities and (polarity != IGNORE).any():
                total = total + lw["polarity"] * polarity_loss(p_logits.reshape(-1, p_logits.shape[-1]), polarity.reshape(-1))
        return total

    def dev_scores(self, tagger: TransformerTagger, rows: Sequence[FeedbackRecord], texts: Sequence[str],
                   threshold: float) -> dict[str, float]:
        return self.dev_tagged(tagger, rows, texts, threshold)[0]

    def dev_tagged(self, tagger: TransformerTagger, rows: Sequence[FeedbackRecord], texts: Sequence[str],
                   threshold: float) -> tuple[dict[str, float], list[Tag]]:
        """The dev scores, and the tags they were computed from."""
        tagger.meta.aspect_threshold = threshold
        tags = tagger.tag([r.text for r in rows], texts)
        scores = headline(score_tags(tags, [label_of(r, self.config.data.label) for r in rows],
                                     [r.aspects for r in rows], tagger.labels))
        return scores, tags


def teacher_aspects(teacher: TransformerTagger, outputs: Outputs, normalised: Sequence[str], aspects: list[str],
                    polarities: list[str]) -> TeacherAspects:
    """The teacher's aspect presence (blended with its baseline's detectors as it tags) and polarity probabilities,
    moved into the student's `aspects` and `polarities` order; aspects the teacher lacks are masked out."""
    n = len(normalised)
    presence = teacher.blended_presence(outputs.presence, normalised, teacher.meta.blend.aspect_weight)
    soft_presence = np.zeros((n, len(aspects)), dtype=np.float32)
    soft_polarity = np.zeros((n, len(aspects), max(len(polarities), 1)), dtype=np.float32)
    known = np.zeros(len(aspects), dtype=np.float32)
    for j, aspect in enumerate(aspects):
        if aspect not in teacher.meta.aspects:
            continue
        k = teacher.meta.aspects.index(aspect)
        known[j] = 1.0
        soft_presence[:, j] = presence[:, k]
        for q, name in enumerate(polarities):
            if name in teacher.meta.polarities:
                soft_polarity[:, j, q] = outputs.polarity[:, k, teacher.meta.polarities.index(name)]
    soft_polarity /= np.clip(soft_polarity.sum(axis=-1, keepdims=True), 1e-9, None)
    return TeacherAspects(torch.from_numpy(soft_presence), torch.from_numpy(soft_polarity), torch.from_numpy(known))


def selection_score(scores: dict[str, float], measure: str = "macro_f1") -> float:
    """What early stopping and the dev choices maximise: the sentiment `measure` (transformer.select_by: macro-F1
    or weighted-F1), averaged with aspect micro-F1 where the dev data has aspects."""
    parts = [scores[k] for k in (measure, "aspect_micro_f1") if k in scores]
    return float(np.mean(parts)) if parts else 0.0


# -- choices made on dev after training ----------------------------------------------------------------------
def choose_threshold(tagger: TransformerTagger, rows: Sequence[FeedbackRecord], presence: np.ndarray) -> float:
    gold = [r.aspects for r in rows]
    if not tagger.meta.aspects or all(g is None for g in gold):
        return 0.5
    best, best_f1 = 0.5, -1.0
    for threshold in np.arange(0.1, 0.85, 0.05):
        predicted = [{tagger.meta.aspects[k] for k in np.flatnonzero(row >= threshold)} for row in presence]
        scores = aspect_metrics(gold, [dict.fromkeys(p, "") for p in predicted])
        f1 = scores["detection_micro_f1"] if scores else 0.0
        if f1 > best_f1 + 1e-9:
            best, best_f1 = round(float(threshold), 2), f1
    return best


def fit_temperature(logits: np.ndarray, gold: np.ndarray) -> float:
    """The temperature that minimises the dev log-loss (calibration; the argmax is unchanged)."""
    def proba(temperature: float) -> np.ndarray:
        scaled = logits / temperature
        exp = np.exp(scaled - scaled.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

    candidates = [float(t) for t in np.exp(np.linspace(np.log(0.25), np.log(8.0), 41))]
    best: float = min(candidates, key=lambda t: log_loss(proba(t), gold))
    return round(best, 4)


def log_loss(proba: np.ndarray, gold: np.ndarray) -> float:
    return -float(np.log(np.clip(proba[np.arange(len(gold)), gold], 1e-12, 1.0)).mean())


def fit_transformer(config: TrainConfig, splits: dict[str, list[FeedbackRecord]], normaliser: NormaliserConfig,
                    taxonomy: Taxonomy | None, data_hash: str, say: Callable[[str], None],
                    on_event: Event | None = None, interrupt_after: int | None = None) -> Fitted:
    """Train the transformer, then make the dev choices: aspect threshold, temperature, the ensemble with the
    TF-IDF baseline (trained on the same training rows), and int8 quantisation."""
    t = config.transformer
    trainer = Trainer(config, normaliser, taxonomy, say, on_event, interrupt_after)
    fitted = trainer.fit(splits, data_hash)
    tagger, dev = fitted.tagger, splits["dev"]
    dev_texts = tagger.normalise([r.text for r in dev])
    logits, presence, _ = tagger.network_outputs(dev_texts)
    tagger.meta.aspect_threshold = t.aspect_threshold or choose_threshold(tagger, dev, presence)
    field_name = config.data.label
    gold = [label_of(r, field_name) for r in dev]
    with_label = [i for i, g in enumerate(gold) if g is not None and g in tagger.labels]
    if with_label:
        gold_index = np.array([tagger.labels.index(str(gold[i])) for i in with_label])
        tagger.meta.blend.temperature = fit_temperature(logits[with_label], gold_index)

    threshold = tagger.meta.aspect_threshold
    scores: dict[str, dict[str, float]] = {"transformer": trainer.dev_scores(tagger, dev, dev_texts, threshold)}
    notes: list[str] = []
    baseline_fit: Callable[[list[FeedbackRecord]], None] | None = None
    if t.ensemble != "never":
        baseline = tfidf_tagger(config, taxonomy)
        has_aspects = any(r.aspects is not None for r in splits["train"])

        def baseline_fit(rows: list[FeedbackRecord]) -> None:
            fit_rows(baseline, rows, field_name, has_aspects)

        say("fitting the TF-IDF baseline on the same training rows")
        baseline_fit(splits["train"])
        tagger.baseline = baseline
        base_tags = baseline.tag([r.text for r in dev], dev_texts)
        scores["baseline"] = headline(score_tags(base_tags, gold, [r.aspects for r in dev], baseline.labels))
        blend = choose_blend(tagger, dev_texts, logits, gold, t.ensemble == "always", t.select_by)
        if tagger.baseline_aspects() is not None:
            blend.aspect_weight, threshold = choose_aspect_blend(tagger, dev, dev_texts, presence)
            tagger.meta.aspect_threshold = t.aspect_threshold or threshold
        tagger.meta.blend = blend
        # The baseline is saved in the folder either way, so evaluation can always score it beside the transformer.
        if blend.uses_baseline:
            scores["ensemble"] = trainer.dev_scores(tagger, dev, dev_texts, tagger.meta.aspect_threshold)
            notes.append(f"ensemble kept: transformer weight {blend.weight} in sentiment, {blend.aspect_weight} in aspects")
        else:
            notes.append("ensemble not better on dev: the transformer alone tags (the baseline is kept for comparison)")

    chosen = fp32_chosen = scores.get("ensemble", scores["transformer"])
    fp32 = tagger.net
    reference = trainer.dev_tagged(tagger, dev, dev_texts, tagger.meta.aspect_threshold)[1] \
        if t.quantize != "none" or t.backend != "torch" else []

    def dev_tagged() -> tuple[dict[str, float], list[Tag]]:
        return trainer.dev_tagged(tagger, dev, dev_texts, tagger.meta.aspect_threshold)

    if t.quantize != "none":
        def dev_trial(net: MultiTaskNet) -> tuple[dict[str, float], float]:
            tagger.net = net
            scores, tags = dev_tagged()
            return scores, changed_share(reference, tags)

        precision = choose_precision(fp32, dev_trial, chosen, t.int8_fp32_layers if t.quantize == "int8" else None,
                                     t.select_by)
        tagger.net = fp32  # the folder keeps fp32 weights; loading quantises them again when meta says int8
        scores.update(precision.scores)
        notes.extend(precision.notes)
        if precision.from_layer is not None:
            tagger.meta.quantize, tagger.meta.int8_from_layer = "int8", precision.from_layer
            chosen = precision.chosen
    if tagger.meta.quantize == "int8":
        tagger.net = quantize_int8(fp32, tagger.meta.int8_from_layer)  # as the folder will tag once loaded
    backend = None
    if t.backend != "torch":
        stack = encoder_layers(fp32.encoder)

        def rule(trial: dict[str, float], changed: float) -> tuple[bool, str]:
            return within_tolerance(fp32_chosen, trial, changed, t.select_by)

        say("exporting the encoder to ONNX Runtime and choosing its precision on dev")
        backend = choose_backend(tagger, fp32, tagger.net, onnx_trials(t.quantize, len(stack) if stack is not None else None,
                                                                       t.int8_fp32_layers, int8_trials),
                                 dev_tagged, reference, rule, TOLERANCE_NOTE, [r.text for r in dev], t.backend == "onnx",
                                 t.quantize == "int8")
        scores.update(backend.scores)
        notes.extend(backend.notes)
        if backend.backend == "onnx" and backend.chosen is not None:
            chosen = backend.chosen
        if tagger.meta.quantize == "int8" and tagger.runtime is None:
            tagger.net = quantize_int8(fp32, tagger.meta.int8_from_layer)
    fitted.dev_scores = {"chosen": chosen, **scores}
    fitted.confusion = dev_confusion(score_tags(tagger.tag([r.text for r in dev], dev_texts), gold,
                                                [r.aspects for r in dev], tagger.labels))
    tagger.net = fp32
    fitted.notes = notes
    fitted.baseline_refit = baseline_fit
    fitted.report["dev_choices"] = {"aspect_threshold": tagger.meta.aspect_threshold,
                                    "temperature": tagger.meta.blend.temperature, "blend": tagger.meta.blend.__dict__,
                                    "quantize": tagger.meta.quantize, "int8_from_layer": tagger.meta.int8_from_layer,
                                    **(backend.report(tagger) if backend is not None else {"backend": "torch"}),
                                    "notes": notes}
    for note in notes:
        say(note)
    return fitted


@dataclass
class Precision:
    from_layer: int | None  # int8 with the encoder's lowest `from_layer` layers in fp32; None: fp32 throughout
    chosen: dict[str, float]  # the dev scores at that precision
    scores: dict[str, dict[str, float]]  # every trial's dev scores, for the manifest's dev_by_model
    notes: list[str]


def int8_trials(layers: int) -> list[int]:
    """quantize = "auto"'s trials, fastest first: int8 everywhere, then the lowest quarter, half and three quarters
    of the encoder's layers kept in fp32."""
    return sorted({0, *(layers * k // 4 for k in (1, 2, 3))})


def quantized_key(from_layer: int) -> str:
    """The name of an int8 trial's dev scores in the manifest's dev_by_model."""
    return f"quantized_from_layer_{from_layer}" if from_layer else "quantized"


def choose_precision(fp32: MultiTaskNet, dev_trial: Callable[[MultiTaskNet], tuple[dict[str, float], float]],
                     chosen: dict[str, float], forced_from: int | None = None, measure: str = "macro_f1") -> Precision:
    """int8 for the most layers whose dev score (`measure`, transformer.select_by) is at most QUANTIZE_TOLERANCE
    below fp32's `chosen` and which change at most QUANTIZE_CHANGE_LIMIT of the dev comments' tags against fp32
    (`dev_trial` gives both); `forced_from` (quantize = "int8"): int8 above that many fp32 layers, whatever dev says.

    A fine-tuned lower layer's int8 error is carried through every layer above it, so where int8 everywhere costs
    too much, int8 in the upper layers alone often costs nothing and still saves part of the time.
    """
    stack = encoder_layers(fp32.encoder)
    if forced_from and (stack is None or forced_from >= len(stack)):
        raise ConfigError(f"transformer.int8_fp32_layers is {forced_from}, but the encoder has "
                          f"{'no layer stack to split' if stack is None else f'{len(stack)} layers'}: "
                          "keep it below that, or 0 for int8 throughout")
    forced = forced_from is not None
    trials = [forced_from or 0] if forced or stack is None else int8_trials(len(stack))
    result = Precision(None, chosen, {}, [])
    for from_layer in trials:
        scores, changed = dev_trial(quantize_int8(fp32, from_layer))
        result.scores[quantized_key(from_layer)] = scores
        kept, effect = within_tolerance(chosen, scores, changed, measure)
        name = precision_name("int8", from_layer)
        if forced or kept:
            result.from_layer, result.chosen = from_layer, scores
            result.notes.append(f"{name} kept: {effect}")
            break
        result.notes.append(f"{name} refused: {effect} {TOLERANCE_NOTE}")
    return result


def within_tolerance(reference: dict[str, float], scores: dict[str, float], changed: float, measure: str
                     ) -> tuple[bool, str]:
    """Whether a cheaper way to run the model (a precision, a runtime) may replace fp32: its dev score (`measure`) at
    most QUANTIZE_TOLERANCE below `reference`'s and at most QUANTIZE_CHANGE_LIMIT of the dev tags changed; and the
    effect in words (TOLERANCE_NOTE says the limits)."""
    drop = selection_score(reference, measure) - selection_score(scores, measure)
    moved = round(-drop * 100, 2) + 0.0  # + 0.0: "+0.00", not "-0.00"
    effect = f"the dev score moved by {moved:+.2f} points and {changed:.1%} of the dev comments' tags changed"
    return drop <= QUANTIZE_TOLERANCE and changed <= QUANTIZE_CHANGE_LIMIT, effect


def choose_blend(tagger: TransformerTagger, dev_texts: Sequence[str], logits: np.ndarray,
                 gold: Sequence[str | None], always: bool, measure: str = "macro_f1") -> Blend:
    """The transformer's weight in sentence sentiment (0.0-1.0 in steps of 0.1): the lowest dev log-loss among the
    weights whose dev macro-F1 (or `measure`, transformer.select_by) is within a point of the best.

    Log-loss alone is smooth in the weight (on a few hundred dev rows macro-F1 moves by points between
    neighbouring weights, so picking its maximum picks noise), but it also rewards the calibrated baseline's lean
    toward the common classes, which macro-F1, what every choice is for, pays for: on DeepSentiPers 5-class its
    pick cost 7 points of dev macro-F1 against the transformer alone. So macro-F1, each weight's averaged with its
    neighbours' as in the aspect blend, bounds the candidates, and log-loss picks among them.
    """
    blend = Blend(temperature=tagger.meta.blend.temperature)
    with_label = [i for i, g in enumerate(gold) if g is not None and g in tagger.labels]
    if with_label:
        transformer = tagger.transformer_proba(logits)[with_label]
        baseline = tagger.baseline_proba([dev_texts[i] for i in with_label])
        gold_index = np.array([tagger.labels.index(str(gold[i])) for i in with_label])
        weights = [float(w) for w in np.round(np.arange(1.0, -0.01, -0.1), 2)]
        if always:
            weights = weights[1:]  # a blend, whatever dev says
        blends = {w: w * transformer + (1 - w) * baseline for w in weights}
        losses = {w: log_loss(blends[w], gold_index) for w in weights}
        labels = [str(gold[i]) for i in with_label]
        f1 = {w: sentiment_metrics(labels, [tagger.labels[k] for k in blends[w].argmax(axis=1)], tagger.labels)[measure]
              for w in weights}
        smoothed = over_neighbours(f1)
        top = max(smoothed.values())
        candidates = [w for w in weights if smoothed[w] >= top - BLEND_F1_TOLERANCE]
        blend.weight = min(candidates, key=lambda w: (round(losses[w], 6), -w))
    return blend


def over_neighbours(scores: dict[float, float]) -> dict[float, float]:
    """Each weight's dev score averaged with its neighbours' (0.1 either side): a lone peak on a few hundred dev
    comments is noise, a plateau is not."""
    return {w: float(np.mean([v for u, v in scores.items() if abs(u - w) <= 0.1 + 1e-9])) for w in scores}


def choose_aspect_blend(tagger: TransformerTagger, rows: Sequence[FeedbackRecord], dev_texts: Sequence[str],
                        presence: np.ndarray) -> tuple[float, float]:
    """The transformer's share in aspect detection (0.0-1.0 in steps of 0.1) and the presence threshold, by dev
    detection micro-F1.

    Each weight is scored at its best threshold, then averaged with its neighbours: a lone peak on a few hundred
    dev comments is noise, a plateau is not. Weight 0.0 is the baseline exactly as it tags alone (its own
    threshold), so the blend is kept only where it beats both parts.
    """
    gold = [r.aspects for r in rows]
    if all(g is None for g in gold):
        return 1.0, tagger.meta.aspect_threshold
    baseline_threshold = float(tagger.baseline.aspects_.threshold)  # type: ignore[union-attr]

    def f1(blended: np.ndarray, threshold: float) -> float:
        predicted = [dict.fromkeys((tagger.meta.aspects[k] for k in np.flatnonzero(row >= threshold)), "") for row in blended]
        return float((aspect_metrics(gold, predicted) or {}).get("detection_micro_f1", 0.0))

    weights = [float(w) for w in np.round(np.arange(0.0, 1.01, 0.1), 2)]
    thresholds = [round(float(t), 2) for t in np.arange(0.1, 0.85, 0.05)]
    best: dict[float, tuple[float, float]] = {}  # weight -> (F1, threshold)
    for w in weights:
        blended = tagger.blended_presence(presence, dev_texts, w)
        candidates = [baseline_threshold] if w == 0.0 else thresholds
        best[w] = max(((f1(blended, th), th) for th in candidates), key=lambda pair: (round(pair[0], 9), -abs(pair[1] - 0.5)))
    smoothed = over_neighbours({w: f1_at for w, (f1_at, _) in best.items()})
    chosen = max(weights, key=lambda w: (round(smoothed[w], 9), w))
    if best[0.0][0] >= best[chosen][0]:
        chosen = 0.0  # the blend must beat the baseline's own aspects at its own weight, not only on average
    if best[1.0][0] >= best[chosen][0]:
        chosen = 1.0
    return chosen, best[chosen][1]
