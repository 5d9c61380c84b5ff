"""`bazkhord onnx`: a saved transformer folder, served by ONNX Runtime where that is faster and agrees on dev.

A folder trained before the ONNX backend existed (or with `backend = "torch"`) gets the same choice a training run
makes (training/backend.py) on the dev rows its training config splits off again (or a labelled file), and is saved
as a new version of the same model, with everything else copied: the PyTorch weights stay, the version before stays.
Where PyTorch stays faster, nothing is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bazkhord.data.errors import ConfigError, DataError, ModelFolderError
from bazkhord.data.progress import QUIET, Progress
from bazkhord.data.readers import read_records
from bazkhord.data.record import FeedbackRecord
from bazkhord.model.folder import CONFIG_FILE, DEFAULT_MODELS_DIR, TRAINING_REPORT_FILE, load_model, save_model
from bazkhord.model.network import encoder_layers
from bazkhord.model.transformer import TransformerTagger
from bazkhord.training.backend import BackendChoice, choose_backend, onnx_trials
from bazkhord.training.config import TrainConfig, load_config
from bazkhord.training.transformer import TOLERANCE_NOTE, int8_trials, label_of, within_tolerance

RECORD_ROLE = "training record"


@dataclass
class Exported:
    folder: Path
    choice: BackendChoice
    dev_rows: int
    precision: str
    saved: bool  # False: PyTorch stays faster, and the folder is left as it was


def dev_rows(folder: Path, config: TrainConfig | None, data: str | Path | None, progress: Progress) -> list[FeedbackRecord]:
    """The labelled rows the choice is made on: `data`, else the dev split the folder's training `config` makes
    again (the same files and seed give the same split)."""
    if data is not None:
        return read_records(data).records
    if config is None:
        raise ConfigError(f"{folder} has no {CONFIG_FILE} to split its dev rows again: give a labelled file with --data")
    from bazkhord.training.train import load_training_data

    try:
        return load_training_data(config, config.normaliser_config, progress.phase)[0]["dev"]
    except (OSError, DataError) as error:
        raise ConfigError(f"the training data named in {folder / CONFIG_FILE} cannot be read again ({error}): give a "
                          "labelled file with --data") from None


def export_onnx(reference: str | Path | None, data: str | Path | None = None, backend: str = "auto",
                root: Path = DEFAULT_MODELS_DIR, progress: Progress = QUIET) -> Exported:
    """Choose the runtime for a transformer folder on dev; where ONNX Runtime is chosen, save it as the model's new
    version (where PyTorch stays, nothing is written)."""
    if backend not in ("auto", "onnx"):
        raise ConfigError(f"backend must be auto or onnx, not {backend!r}")
    say = progress.phase
    loaded = load_model(reference, root)
    source = loaded.tagger
    if not isinstance(source, TransformerTagger):
        raise ModelFolderError(f"{loaded.folder} is a {loaded.manifest['kind']}: only a transformer folder has an "
                               "encoder to export")
    from bazkhord.model.int8 import quantize_int8

    tagger = TransformerTagger.load_components(loaded.folder, source.normaliser, source.taxonomy, quantize="none",
                                               backend="torch")
    meta = tagger.meta
    config_path = loaded.folder / CONFIG_FILE
    config = load_config(config_path) if config_path.exists() else None
    field, measure = (config.data.label, config.transformer.select_by) if config else ("sentiment", "macro_f1")
    rows = dev_rows(loaded.folder, config, data, progress)
    if not rows:
        raise DataError(f"no dev rows to choose on{f' in {data}' if data else ''}")
    texts = [r.text for r in rows]
    normalised = tagger.normalise(texts)
    from bazkhord.model.metrics import headline, score_tags

    def scored() -> tuple[dict[str, float], list[Any]]:
        tags = tagger.tag(texts, normalised)
        return headline(score_tags(tags, [label_of(r, field) for r in rows], [r.aspects for r in rows], tagger.labels)), tags

    say(f"tagging {len(rows)} dev rows with the fp32 PyTorch encoder")
    fp32_scores, reference_tags = scored()

    def rule(scores: dict[str, float], changed: float) -> tuple[bool, str]:
        return within_tolerance(fp32_scores, scores, changed, measure)

    fp32 = tagger.net
    # The torch precision the folder was saved with stays its own (loading fp32 above overrode it).
    meta.quantize, meta.int8_from_layer = source.meta.quantize, source.meta.int8_from_layer
    torch_net = quantize_int8(fp32, meta.int8_from_layer) if meta.quantize == "int8" else fp32
    stack = encoder_layers(fp32.encoder)
    trials = onnx_trials("auto", len(stack) if stack is not None else None, 0, int8_trials)
    say("exporting the encoder to ONNX Runtime, then trying its precisions on dev and timing both runtimes")
    choice = choose_backend(tagger, fp32, torch_net, trials, scored, reference_tags, rule, TOLERANCE_NOTE, texts,
                            backend == "onnx")
    for note in choice.notes:
        say(note)
    if choice.backend == "torch":  # nothing to save: the folder already serves this way
        return Exported(loaded.folder, choice, len(rows), source.serving_precision(), saved=False)
    manifest = loaded.manifest
    records = {path: (loaded.folder / path).read_text(encoding="utf-8")
               for path, info in manifest["files"].items() if info.get("role") == RECORD_ROLE}
    if TRAINING_REPORT_FILE in records:
        report = json.loads(records[TRAINING_REPORT_FILE])
        report.setdefault("transformer", {})["onnx_export"] = {"from_version": manifest["version"], "dev_rows": len(rows),
                                                               "notes": choice.notes, **choice.report(tagger)}
        records[TRAINING_REPORT_FILE] = json.dumps(report, ensure_ascii=False, indent=1)
    metrics = dict(manifest.get("metrics", {}))
    metrics["dev_by_model"] = {**metrics.get("dev_by_model", {}), **choice.scores}
    say("saving the new version")
    folder = save_model(tagger, root, loaded.name,
                        config_text=config_path.read_text(encoding="utf-8") if config_path.exists() else None,
                        data_hash=manifest.get("data_hash"), training_rows=manifest.get("training_rows"), metrics=metrics,
                        label_field=manifest["labels"].get("field", "sentiment"), extra_files=records)
    return Exported(folder, choice, len(rows), tagger.serving_precision(), saved=True)
