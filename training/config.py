"""Typed training config: a TOML file defines an experiment; `--set section.key=value` only overrides it."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from data.errors import ConfigError
from data.normalise import NormaliserConfig


@dataclass
class ModelConfig:
    name: str = "sample"
    kind: Literal["tfidf"] = "tfidf"
    C: float = 0.5  # sentiment; chosen on the dev splits of ../shared/data
    class_weight: str = "balanced"  # or "none"
    aspect_C: float = 4.0
    aspect_threshold: float = 0.3  # chosen on the dev splits of parsinlu_food and parsinlu_movie
    word_ngrams: list[int] = field(default_factory=lambda: [1, 2])
    char_ngrams: list[int] = field(default_factory=lambda: [2, 5])
    min_df: int = 2
    max_features: int = 200_000

    def __post_init__(self) -> None:
        if self.kind != "tfidf":
            raise ConfigError(f"model.kind {self.kind!r} is not known; use 'tfidf'")
        for key in ("C", "aspect_C"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"model.{key} must be positive, not {getattr(self, key)}")
        if self.class_weight not in ("balanced", "none"):
            raise ConfigError(f"model.class_weight must be 'balanced' or 'none', not {self.class_weight!r}")
        if not 0 < self.aspect_threshold < 1:
            raise ConfigError(f"model.aspect_threshold must be between 0 and 1, not {self.aspect_threshold}")
        for key in ("word_ngrams", "char_ngrams"):
            value = getattr(self, key)
            if len(value) != 2 or not 1 <= value[0] <= value[1]:
                raise ConfigError(f"model.{key} must be [low, high] with 1 <= low <= high, not {value}")


@dataclass
class DataConfig:
    train: str = "data/samples/feedback.jsonl"
    dev: str = ""
    dev_fraction: float = 0.15
    # After the dev score is taken, fit the saved model on train + dev (scikit-learn's `refit`).
    refit_on_dev: bool = True
    label: Literal["sentiment", "sentiment_score"] = "sentiment"
    max_bad_fraction: float = 0.1
    taxonomy: str = "default"  # the shipped data/taxonomy.toml; a path; or "" for none
    columns: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.train:
            raise ConfigError("data.train must name a training file")
        if not 0 < self.dev_fraction < 0.5:
            raise ConfigError(f"data.dev_fraction must be between 0 and 0.5, not {self.dev_fraction}")
        if self.label not in ("sentiment", "sentiment_score"):
            raise ConfigError(f"data.label must be 'sentiment' or 'sentiment_score', not {self.label!r}")
        if not 0 <= self.max_bad_fraction <= 1:
            raise ConfigError(f"data.max_bad_fraction must be between 0 and 1, not {self.max_bad_fraction}")


@dataclass
class OutputConfig:
    models_dir: str = "artifacts/models"


@dataclass
class TrainConfig:
    seed: int = 13
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    normaliser: dict[str, Any] = field(default_factory=dict)
    output: OutputConfig = field(default_factory=OutputConfig)

    @property
    def normaliser_config(self) -> NormaliserConfig:
        try:
            return NormaliserConfig.from_dict(self.normaliser)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"[normaliser]: {error}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        return dump_toml(self.to_dict())


SECTIONS = {"model": ModelConfig, "data": DataConfig, "output": OutputConfig}


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
