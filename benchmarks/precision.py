"""Precision benchmark: one transformer model folder served in fp32, in int8 above fp32 lower layers, and in int8
throughout, side by side: the dev scores its training run recorded for each (what `quantize = "auto"` chose from),
the test file's figures, and what a tag() costs.

    python -m benchmarks.precision [--model sample-e5] [--data data/samples/feedback_test.jsonl]
                                              [--repeats 3] [--no-write]

The training run made the choice on dev; the test figures here only report what each precision gives. Timings are
tag() calls in batches of 16 (as the service's batcher gathers them under load) and one comment at a time, the best
of `--repeats` interleaved runs, so every precision sees the same noise from the machine.
"""

from __future__ import annotations

import argparse
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.baseline import REPO, machine, publish

BEGIN, END = "<!-- precision:begin -->", "<!-- precision:end -->"
BATCH = 16
SINGLES = 100  # comments tagged one at a time per timed run


def variants(loaded: Any) -> dict[str, Any]:
    """precision name -> the saved model (its blend and baseline) loaded at that precision: fp32, every trial of
    quantize = "auto" (int8 with the lowest quarter, half, three quarters of the layers fp32) and int8 throughout."""
    from bazkhord.model.int8 import precision_name
    from bazkhord.model.network import encoder_layers
    from bazkhord.model.transformer import TransformerTagger
    from bazkhord.training.transformer import int8_trials

    saved = loaded.tagger
    layers = encoder_layers(saved.net.encoder)
    trials = int8_trials(len(layers)) if layers is not None else [0]
    out = {"fp32": TransformerTagger.load_components(loaded.folder, saved.normaliser, saved.taxonomy, quantize="none")}
    for from_layer in sorted(trials, reverse=True):  # from the most fp32 layers to none
        out[precision_name("int8", from_layer)] = TransformerTagger.load_components(
            loaded.folder, saved.normaliser, saved.taxonomy, quantize="int8", int8_from_layer=from_layer)
    return out


def dev_recorded(loaded: Any) -> dict[str, float | None]:
    """precision name -> the dev score (transformer.select_by's F1 with aspect micro-F1) the training run recorded."""
    from bazkhord.model.folder import CONFIG_FILE
    from bazkhord.model.int8 import precision_name
    from bazkhord.model.network import encoder_layers
    from bazkhord.training.transformer import int8_trials, quantized_key, selection_score

    config = loaded.folder / CONFIG_FILE
    settings = tomllib.loads(config.read_text(encoding="utf-8")) if config.exists() else {}
    measure = settings.get("transformer", {}).get("select_by", "macro_f1")
    by_model = loaded.manifest.get("metrics", {}).get("dev_by_model", {})
    out: dict[str, float | None] = {}
    fp32 = by_model.get("ensemble", by_model.get("transformer"))
    out["fp32"] = selection_score(fp32, measure) if fp32 else None
    layers = encoder_layers(loaded.tagger.net.encoder)
    for from_layer in int8_trials(len(layers)) if layers is not None else [0]:
        scores = by_model.get(quantized_key(from_layer))
        out[precision_name("int8", from_layer)] = selection_score(scores, measure) if scores else None
    return out


def compare(taggers: dict[str, Any], records: list[Any], field: str, repeats: int) -> dict[str, dict[str, float]]:
    from benchmarks.evidence import timed
    from benchmarks.transformer import score

    texts = [r.text for r in records]
    results = {name: {**score(tagger, records, field), "batch_ms": np.inf, "single_ms": np.inf}
               for name, tagger in taggers.items()}
    for _ in range(repeats):  # interleaved
        for name, tagger in taggers.items():
            results[name]["batch_ms"] = min(results[name]["batch_ms"], timed(tagger, texts, BATCH))
            results[name]["single_ms"] = min(results[name]["single_ms"], timed(tagger, texts[:SINGLES], 1))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sample-e5", help="model name or folder (a transformer tagger)")
    parser.add_argument("--models-dir", type=Path, default=REPO / "artifacts" / "models")
    parser.add_argument("--data", type=Path, default=REPO / "data" / "samples" / "feedback_test.jsonl",
                        help="labelled comments the model did not train on (default: the sample's test file)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per precision, interleaved; the best is kept")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if not args.data.is_file():
        parser.error(f"--data {args.data}: no such file")
    from bazkhord.model.folder import ModelFolderError, load_model
    from bazkhord.model.transformer import TransformerTagger
    from benchmarks.transformer import unseen

    try:
        loaded = load_model(args.model, args.models_dir)
    except ModelFolderError as error:
        parser.error(f"{error} (train it first: make train)")
    if not isinstance(loaded.tagger, TransformerTagger):
        parser.error(f"{args.model} is not a transformer tagger; precision applies to transformers only")
    records = unseen(loaded, args.data)
    if not records:
        parser.error(f"--data {args.data}: no comment the model did not train on")
    field = loaded.manifest["labels"]["field"]
    results = compare(variants(loaded), records, field, args.repeats)
    dev = dev_recorded(loaded)
    chosen = loaded.tagger.meta.precision()
    fp32 = results["fp32"]
    version = f"{loaded.manifest['name']} {loaded.manifest['version']}"
    lines = [f"## Precision: fp32 and int8 side by side (`{args.model}`)", "",
             f"Measured {datetime.now(UTC):%Y-%m-%d} on {machine()} by `python -m benchmarks.precision`, "
             f"model folder `{version}` (saved as {chosen}: chosen on dev by its training run, `quantize = \"auto\"`). "
             f"Each row is the saved model (its blend with the baseline included) at one precision. *dev*: the dev "
             f"score the training run recorded (F1 averaged with aspect micro-F1); the test figures are on "
             f"{args.data.name}'s {len(records)} comments; tag() in batches of {BATCH} and one comment at a time "
             f"({SINGLES} comments), best of {args.repeats} interleaved runs, and its speed against fp32.", "",
             "| precision | dev | test accuracy | test macro-F1 | test weighted-F1 | test aspect micro-F1 | "
             f"ms per comment (batch {BATCH}) | ms per comment (one) | speed vs fp32 (batch / one) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        shown = f"**{name}** (saved)" if name == chosen else name
        dev_score = dev.get(name)
        lines.append(f"| {shown} | {'' if dev_score is None else f'{dev_score:.3f}'} | {r['accuracy']:.3f} | "
                     f"{r['macro_f1']:.3f} | {r['weighted_f1']:.3f} | {r.get('aspect_micro_f1', float('nan')):.3f} | "
                     f"{r['batch_ms']:.1f} | {r['single_ms']:.1f} | "
                     f"{fp32['batch_ms'] / r['batch_ms']:.2f}x / {fp32['single_ms'] / r['single_ms']:.2f}x |")
    lines.append("")
    publish(lines, BEGIN, END, write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
