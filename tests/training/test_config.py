from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bazkhord.data.errors import ConfigError
from bazkhord.training.config import config_from_dict, load_config

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted((REPO / "training/configs").glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_configs_load(path: Path) -> None:
    load_config(path)


def test_overrides_and_round_trip() -> None:
    config = load_config(REPO / "training/configs/sample.toml",
                         ["model.C=0.5", "data.train=other.csv", 'data.columns={text = "comment"}',
                          'normaliser.digits="persian"'])
    assert (config.model.C, config.data.train, config.data.columns) == (0.5, "other.csv", {"text": "comment"})
    assert config.normaliser_config.digits == "persian"
    assert config_from_dict(tomllib.loads(config.to_toml())) == config


@pytest.mark.parametrize(("overrides", "message"), [
    (["model.C=-1"], "model.C must be positive"),
    (["model.colour=red"], r"unknown key\(s\) \['colour'\] in \[model\]"),
    (["sead=1"], r"unknown key\(s\) \['sead'\]"),
    (["model.kind=gpt"], "model.kind 'gpt' is not known"),
    (["data.label=stars"], "data.label must be"),
    (["normaliser.lowercase=true"], "unknown normaliser setting"),
    (["model.word_ngrams=[2, 1]"], "word_ngrams must be"),
    (["no-equals-sign"], "expected section.key=value"),
    (["transformer.int8_fp32_layers=-1"], "int8_fp32_layers must be a whole number >= 0"),
    (["transformer.int8_fp32_layers=6"], "int8_fp32_layers \\(6\\) applies to quantize = \"int8\" only, not 'auto'"),
])
def test_bad_config_says_what_is_wrong(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.toml")
    (tmp_path / "bad.toml").write_text("[model\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")
