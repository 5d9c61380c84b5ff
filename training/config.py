"""Typed training config: a TOML file defines an experiment; `--set section.key=value` only overrides it."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bazkhord.data.errors import ConfigError
from bazkhord.data.normalise import NormaliserConfig


@dataclass
class ModelConfig:
    name: str = "sample"
    kind: Literal["tfidf", "transformer"] = "tfidf"  # "transformer": see [transformer]; the TF-IDF keys then
    C: float = 0.5  # configure the baseline trained beside it  # sentiment; chosen on the dev splits of ../shared/data
    class_weight: str = "balanced"  # or "none"
    aspect_C: float = 4.0
    aspect_threshold: float = 0.3  # chosen on the dev splits of parsinlu_food and parsinlu_movie
    word_ngrams: list[int] = field(default_factory=lambda: [1, 2])
    char_ngrams: list[int] = field(default_factory=lambda: [2, 5])
    min_df: int = 2
    max_features: int = 200_000
    # Self-training: where comments without labels are given (data.unlabelled, or the store's uncorrected comments
    # in a retraining on corrections), those the fitted model labels with at least this probability are trained on
    # with that label, and the model is fitted again. It teaches the TF-IDF model the words of a domain its labelled
    # data lacks. 0 turns it off; 0.9 is the one value tried (the corrections benchmark, snappfood's dev split).
    self_training: float = 0.9

    def __post_init__(self) -> None:
        if self.kind not in ("tfidf", "transformer"):
            raise ConfigError(f"model.kind {self.kind!r} is not known; use 'tfidf' or 'transformer'")
        for key in ("C", "aspect_C"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"model.{key} must be positive, not {getattr(self, key)}")
        if self.class_weight not in ("balanced", "none"):
            raise ConfigError(f"model.class_weight must be 'balanced' or 'none', not {self.class_weight!r}")
        if not 0 < self.aspect_threshold < 1:
            raise ConfigError(f"model.aspect_threshold must be between 0 and 1, not {self.aspect_threshold}")
        if not (self.self_training == 0 or 0.5 <= self.self_training < 1):
            raise ConfigError(f"model.self_training must be 0 (off) or a probability in [0.5, 1), not "
                              f"{self.self_training}")
        for key in ("word_ngrams", "char_ngrams"):
            value = getattr(self, key)
            if len(value) != 2 or not 1 <= value[0] <= value[1]:
                raise ConfigError(f"model.{key} must be [low, high] with 1 <= low <= high, not {value}")


# The losses' weights. distill: the teacher's sentiment probabilities (soft targets); distill_aspects: its aspect
# presence and polarity, where the teacher is a transformer with aspects in common: below full weight because the
# aspect loss is summed over the aspects, so at full weight it cost the sentiment more than it gave the aspects
# (parsinlu_food's dev split chose 0.3). distill_embedding: the cosine distance between the teacher's centred
# sentence vectors and the student's, mapped; off, as DeepSentiPers 3-class's dev split showed no gain beyond noise.
DEFAULT_LOSS_WEIGHTS = {"sentiment": 1.0, "aspects": 1.0, "polarity": 1.0, "distill": 1.0, "distill_aspects": 0.3,
                        "distill_embedding": 0.0}


@dataclass
class TransformerConfig:
    """The transformer tagger (model.kind = "transformer"). Defaults chosen on the dev splits of ../shared/data."""

    # The pretrained multilingual-e5-small made by `bazkhord encoder import` (artifacts/encoders/...); or
    # "scratch": a compact BERT built here with a WordPiece vocabulary learned from the training texts; or another
    # folder (e.g. `bazkhord pretrain` output) or hub id of a BERT / ALBERT / RoBERTa / XLM-R / DistilBERT / ELECTRA
    # (e.g. "intfloat/multilingual-e5-small" where there is internet).
    base_model: str = "scratch"
    prompt: str = "auto"  # put before every text; "auto": the encoder's own ("query: " for e5), else none
    freeze_embeddings: str = "auto"  # "auto": frozen for a pretrained encoder, trained for scratch; "yes" / "no"
    freeze_layers: int = 0  # the lowest N transformer layers are not trained (faster backward pass on a CPU)
    keep_layers: int = 0  # keep only the lowest N layers of a pretrained encoder (a faster, smaller model); 0: all
    head_learning_rate: float = 0.0  # the heads' learning rate; 0: transformer.learning_rate
    # Distillation: a trained model (name, name@version or folder) whose sentiment probabilities on the training
    # comments and on data.unlabelled become soft targets, weighted by loss_weights.distill; a transformer teacher's
    # aspect presence and polarity too, by loss_weights.distill_aspects.
    teacher: str = ""
    vocab_size: int = 16_000  # scratch only
    hidden: int = 256  # scratch only: the encoder's shape (model.transformer.EncoderShape's defaults; literal here,
    # so reading a config does not import torch)
    layers: int = 3
    heads: int = 4
    intermediate: int = 512
    dropout: float = 0.1
    max_length: int = 0  # 0: the `length_percentile` of the training texts' token counts, rounded up to 8
    length_percentile: float = 95.0
    max_length_cap: int = 256
    epochs: int = 20
    patience: int = 4  # epochs without a better dev score before stopping
    batch_size: int = 32
    grad_accum: int = 1  # optimizer step every `grad_accum` batches
    learning_rate: float = 3e-4  # compact encoders; use about 3e-5 for a BERT-base checkpoint
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    class_weight: str = "balanced"  # sentiment loss weights: "balanced" or "none"
    # A key left out takes its DEFAULT_LOSS_WEIGHTS value.
    loss_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_LOSS_WEIGHTS))
    aspect_threshold: float = 0.0  # 0: chosen on dev
    # The dev measure that early stopping, the ensemble weight and the int8 check maximise: "macro_f1" (every class
    # counts the same) or "weighted_f1" (classes by their share, e.g. SentiPers 5-class); averaged with aspect
    # micro-F1 where the dev data has aspects.
    select_by: str = "macro_f1"
    # "int8" (every Linear layer), "none", or "auto": int8 for as many of the encoder's layers as dev allows (all,
    # or all but the lowest quarter, half or three quarters, which stay fp32) with the dev score at most 0.5 points
    # below fp32's; fp32 where none is within it.
    quantize: str = "auto"
    # With quantize = "int8": the encoder's lowest this many layers stay fp32 (0: int8 throughout), e.g. what "auto"
    # chose for the same data before (its notes say), without the dev trials.
    int8_fp32_layers: int = 0
    # Which runtime serves the saved model: "onnx" (ONNX Runtime over an exported, fused encoder, at the precision
    # `quantize` allows, chosen on dev by the same rule), "torch", or "auto": ONNX Runtime where it tags the dev
    # texts faster than torch at its chosen precision. The PyTorch weights are saved either way (training, GPUs).
    backend: str = "auto"
    ensemble: str = "auto"  # blend in the TF-IDF baseline: "auto" (dev log-loss, select_by's F1 kept), "never", "always"
    # How tag() scores clauses to find the evidence: "spans", from the comment's own pass (about a third faster),
    # or "clauses", each clause encoded again on its own (its evidence holds the clause that carries the aspect a
    # little more often); docs/BENCHMARKS.md "Evidence".
    evidence: str = "spans"
    device: str = "auto"  # "auto" (a GPU when there is one), "cpu", "cuda"
    threads: int = 0  # torch threads for training; 0: torch's default
    max_minutes: float = 0.0  # stop after the epoch that passes this budget; 0: no budget
    # Where an unfinished run's checkpoint lives; "": `.checkpoints/` inside output.models_dir. It is removed once the
    # model folder is written (keep_checkpoint keeps it), so only an interrupted run leaves one, to resume from.
    checkpoint_dir: str = ""
    keep_checkpoint: bool = False
    resume: bool = True  # continue from this run's checkpoint when one exists (same config and data)

    def __post_init__(self) -> None:
        for key in ("vocab_size", "hidden", "layers", "heads", "intermediate", "epochs", "patience", "batch_size",
                    "grad_accum", "max_length_cap"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise ConfigError(f"transformer.{key} must be a positive whole number, not {getattr(self, key)!r}")
        if self.hidden % self.heads:
            raise ConfigError(f"transformer.hidden ({self.hidden}) must be a multiple of transformer.heads ({self.heads})")
        for key in ("freeze_layers", "keep_layers", "int8_fp32_layers"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 0:
                raise ConfigError(f"transformer.{key} must be a whole number >= 0, not {getattr(self, key)!r}")
        if self.head_learning_rate < 0:
            raise ConfigError(f"transformer.head_learning_rate must be >= 0, not {self.head_learning_rate}")
        if self.max_length < 0 or not 50 <= self.length_percentile <= 100:
            raise ConfigError("transformer.max_length must be >= 0 and transformer.length_percentile in [50, 100]")
        if not 0 <= self.dropout < 1 or self.learning_rate <= 0 or not 0 <= self.warmup_fraction < 1:
            raise ConfigError("transformer.dropout and warmup_fraction must be in [0, 1), learning_rate positive")
        if not 0 <= self.aspect_threshold < 1:
            raise ConfigError(f"transformer.aspect_threshold must be in [0, 1), not {self.aspect_threshold}")
        choices = {"class_weight": ("balanced", "none"), "quantize": ("auto", "int8", "none"),
                   "backend": ("auto", "torch", "onnx"),
                   "ensemble": ("auto", "never", "always"), "device": ("auto", "cpu", "cuda"),
                   "freeze_embeddings": ("auto", "yes", "no"), "evidence": ("spans", "clauses"),
                   "select_by": ("macro_f1", "weighted_f1")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"transformer.{key} must be one of {allowed}, not {getattr(self, key)!r}")
        if self.int8_fp32_layers and self.quantize != "int8":
            raise ConfigError(f"transformer.int8_fp32_layers ({self.int8_fp32_layers}) applies to quantize = \"int8\" "
                              f"only, not {self.quantize!r} (\"auto\" chooses the fp32 layers on dev)")
        unknown = sorted(set(self.loss_weights) - set(DEFAULT_LOSS_WEIGHTS))
        if unknown or any(v < 0 for v in self.loss_weights.values()):
            raise ConfigError(f"transformer.loss_weights takes {', '.join(DEFAULT_LOSS_WEIGHTS)} >= 0; "
                              f"got {self.loss_weights}")


@dataclass
class DataConfig:
    # One file, or a list of files that train one model together (their labels may differ in kind: a file
    # without aspect labels trains sentiment only, and so on).
    train: str | list[str] = "data/samples/feedback.jsonl"
    dev: str | list[str] = ""
    # Comments without labels: a transformer learns from them through its teacher (transformer.teacher); a TF-IDF
    # model from its own confident labels (model.self_training).
    unlabelled: str | list[str] = ""
    dev_fraction: float = 0.15
    # After the dev score is taken, fit the saved model on train + dev (scikit-learn's `refit`).
    refit_on_dev: bool = True
    label: Literal["sentiment", "sentiment_score"] = "sentiment"
    max_bad_fraction: float = 0.1
    taxonomy: str = "default"  # the shipped data/taxonomy.toml; a path; or "" for none
    columns: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.train or (isinstance(self.train, list) and not all(isinstance(t, str) and t for t in self.train)):
            raise ConfigError("data.train must name a training file or a list of them")
        if not 0 < self.dev_fraction < 0.5:
            raise ConfigError(f"data.dev_fraction must be between 0 and 0.5, not {self.dev_fraction}")
        if self.label not in ("sentiment", "sentiment_score"):
            raise ConfigError(f"data.label must be 'sentiment' or 'sentiment_score', not {self.label!r}")
        if not 0 <= self.max_bad_fraction <= 1:
            raise ConfigError(f"data.max_bad_fraction must be between 0 and 1, not {self.max_bad_fraction}")

    @property
    def unlabelled_files(self) -> list[str]:
        """data.unlabelled as a list of files (one may be named alone; none: empty)."""
        return [self.unlabelled] if isinstance(self.unlabelled, str) and self.unlabelled else list(self.unlabelled or [])


@dataclass
class CorrectionsConfig:
    """Analysts' corrections added to the training data (training/corrections.py)."""

    file: str = ""  # a `bazkhord corrections export` file (the training data format)
    # Or the store's corrections, read by `bazkhord train` at the start of the run (a database URL).
    database_url: str = ""
    # Each corrected comment is trained on this many times, so a few hundred keep their weight beside self-training's
    # thousands of rows (chosen on the corrections benchmark's dev splits, docs/BENCHMARKS.md).
    repeat: int = 6
    holdout: float = 0.0  # share of corrected comments kept out of training, by hash: the retraining gate scores them

    def __post_init__(self) -> None:
        if self.file and self.database_url:
            raise ConfigError("corrections.file and corrections.database_url are two sources: set one")
        if not isinstance(self.repeat, int) or not 1 <= self.repeat <= 20:
            raise ConfigError(f"corrections.repeat must be a whole number from 1 to 20, not {self.repeat!r}")
        if not 0 <= self.holdout < 1:
            raise ConfigError(f"corrections.holdout must be in [0, 1), not {self.holdout}")


@dataclass
class OutputConfig:
    models_dir: str = "artifacts/models"


@dataclass
class TrainConfig:
    seed: int = 13
    model: ModelConfig = field(default_factory=ModelConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    corrections: CorrectionsConfig = field(default_factory=CorrectionsConfig)
    normaliser: dict[str, Any] = field(default_factory=dict)
    output: OutputConfig = field(default_factory=OutputConfig)

    @property
    def normaliser_config(self) -> NormaliserConfig:
        try:
            return NormaliserConfig.from_dict(self.normaliser)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"[normaliser]: {error}") from None

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        if self.model.kind != "transformer":
            del values["transformer"]  # unused: keep the saved config to what shaped the model
        if not (self.corrections.file or self.corrections.database_url):
            del values["corrections"]  # unused: keep the saved config to what shaped the model
        return values

    def to_toml(self) -> str:
        return dump_toml(self.to_dict())


SECTIONS = {"model": ModelConfig, "transformer": TransformerConfig, "data": DataConfig,
            "corrections": CorrectionsConfig, "output": OutputConfig}


def _parse_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw  # a bare word such as a path: take it as a string


def apply_override(values: dict[str, Any], assignment: str) -> None:
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected section.key=value, e.g. model.C=2.0")
    dotted, raw = assignment.split("=", 1)
    keys = dotted.strip().split(".")
    node = values
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {assignment!r}: {key} is not a section")
    node[keys[-1]] = _parse_value(raw.strip())


def config_from_dict(values: dict[str, Any], where: str = "config") -> TrainConfig:
    values = dict(values)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    built: dict[str, Any] = {}
    for key, value in values.items():
        section = SECTIONS.get(key)
        if section is None:
            built[key] = value
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: [{key}] must be a table")
        fields = {f.name for f in dataclasses.fields(section)}
        bad = sorted(set(value) - fields)
        if bad:
            raise ConfigError(f"{where}: unknown key(s) {bad} in [{key}]; known: {sorted(fields)}")
        try:
            built[key] = section(**value)
        except TypeError as error:
            raise ConfigError(f"{where}: [{key}]: {error}") from None
    config = TrainConfig(**built)
    config.normaliser_config  # noqa: B018 -- validates the [normaliser] table now, not mid-run
    return config


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    values: dict[str, Any] = {}
    where = "defaults"
    if path is not None:
        where = str(path)
        try:
            values = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path}: not valid TOML ({error})") from None
    for assignment in overrides or []:
        apply_override(values, assignment)
    return config_from_dict(values, where)


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k), ensure_ascii=False)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)  # JSON strings, numbers and booleans are valid TOML


def dump_toml(values: dict[str, Any]) -> str:
    """Enough TOML for a config: top-level scalars, then one table per section (None values left out)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in values.items() if not isinstance(v, dict) and v is not None]
    for name, table in values.items():
        if isinstance(table, dict):
            lines.append(f"\n[{name}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in table.items() if v is not None)
    return "\n".join(lines) + "\n"
