"""The HTTP benchmark's section names what the served model folder is: its kind and, for a transformer, its
precision (fp32, int8, or int8 above fp32 lower layers), so a figure is read against the model that gave it."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.service_http import describe, render


def folder(tmp_path: Path, kind: str, quantize: str | None, from_layer: int = 0) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    manifest = {"format_version": 1, "kind": kind, "name": "m", "version": "1", "files": {}, "normaliser": {},
                "labels": {}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    if quantize is not None:
        meta = {"quantize": quantize, **({"int8_from_layer": from_layer} if from_layer else {})}
        (tmp_path / "transformer.json").write_text(json.dumps(meta), encoding="utf-8")
    return tmp_path


def test_the_section_says_what_kind_of_model_served_and_at_what_precision(tmp_path: Path) -> None:
    assert describe(folder(tmp_path / "a", "tfidf-tagger", None)) == "tfidf-tagger"
    assert describe(folder(tmp_path / "b", "ensemble-tagger", "int8")) == "ensemble-tagger, int8"
    assert describe(folder(tmp_path / "c", "transformer-tagger", "none")) == "transformer-tagger, fp32"
    partly = folder(tmp_path / "d", "ensemble-tagger", "int8", from_layer=6)
    assert describe(partly) == "ensemble-tagger, int8, lowest 6 layers fp32"
    section = render([], "sample-e5 20261203-144536", 64.0, model_note="the model folder",
                     model_detail="ensemble-tagger, fp32")
    assert "Model: the model folder `sample-e5 20261203-144536` (ensemble-tagger, fp32)." in section
    assert "(ensemble-tagger" not in render([], "sample 1", 1.0)
