"""Transformer benchmark: pre-train the compact encoder on every shared training text, fine-tune it on every
task, score baseline / transformer (fp32 and int8) / the saved model side by side on the test splits, time
them against a BERT-base-shaped reference, and write the tables into docs/BENCHMARKS.md.

    python -m benchmarks.transformer [--shared-data ../shared/data] [--no-write]

Every choice (epochs, thresholds, temperature, ensemble weight, int8) is made on dev splits by the training
run; each test split is read here once, for the figures. Each training runs in its own process, so its wall
time and peak memory are its own.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.baseline import REPO, binary, machine, speed, timings, write_section

BEGIN, END = "<!-- transformer:begin -->", "<!-- transformer:end -->"
PARSBERT = {"5-class": 0.7131, "binary": 0.9242}  # hooshvare/parsbert README, SentiPers

# data set, training config, task label
TASKS: list[tuple[str, str, str]] = [
    ("deepsentipers", "deepsentipers", "3-class"),
    ("deepsentipers", "deepsentipers_5class", "5-class"),
    ("parsinlu_food", "parsinlu_food", "3+mixed"),
    ("parsinlu_movie", "parsinlu_movie", "3+mixed"),
]
PRETRAIN_MINUTES = 10.0
FINETUNE_MINUTES = {"deepsentipers": 5.0, "deepsentipers_5class": 5.0, "parsinlu_food": 4.0, "parsinlu_movie": 2.0}


def own_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- steps, each run in a fresh process -------------------------------------------------------------------------
def step_pretrain(paths: list[str], out: str, minutes: float, teacher: str = "") -> dict[str, Any]:
    """The compact encoder pre-trained on `paths`: by masked words, or from `teacher`'s token states."""
    from bazkhord.training.pretrain import PretrainConfig, pretrain

    config = PretrainConfig(epochs=12, max_minutes=minutes, teacher=teacher)
    result = pretrain(paths, Path(out), config)
    return {"seconds": result.seconds, "texts": result.texts, "heldout_loss": result.heldout_loss,
            "epochs": len(result.epochs), "peak_mb": own_peak_mb(), "measure": result.measure}


def step_finetune(config_name: str, folder: str, encoder: str, models: str, checkpoints: str, minutes: float) -> dict[str, Any]:
    from bazkhord.training.config import load_config
    from bazkhord.training.train import train

    data = Path(folder)
    overrides = [f"data.train={json.dumps(str(data / 'train.jsonl'))}", f"data.dev={json.dumps(str(data / 'dev.jsonl'))}",
                 'model.kind="transformer"', f"transformer.base_model={json.dumps(encoder)}",
                 f"transformer.max_minutes={minutes}", f"output.models_dir={json.dumps(models)}",
                 f"transformer.checkpoint_dir={json.dumps(checkpoints)}", "transformer.resume=false"]
    config = load_config(REPO / "training" / "configs" / f"{config_name}.toml", overrides)
    started = time.perf_counter()
    result = train(config)
    report = json.loads((result.folder / "training_report.json").read_text(encoding="utf-8"))["transformer"]
    return {"folder": str(result.folder), "seconds": time.perf_counter() - started, "peak_mb": own_peak_mb(),
            "dev": result.metrics["dev_by_model"], "report": report}


def in_process(function: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(function, args)


# -- scoring -------------------------------------------------------------------------------------------------------
def variants(folder: Path) -> dict[str, Any]:
    """Taggers of one folder: the saved model as it is, and its transformer alone in fp32, in int8 (every Linear
    layer) and at the saved precision ("alone")."""
    from bazkhord.model.folder import load_model
    from bazkhord.model.transformer import Blend, TransformerTagger

    loaded = load_model(folder)
    saved = loaded.tagger
    assert isinstance(saved, TransformerTagger)
    fp32 = TransformerTagger.load_components(folder, saved.normaliser, saved.taxonomy, quantize="none")
    int8 = TransformerTagger.load_components(folder, saved.normaliser, saved.taxonomy, quantize="int8")
    alone = {"fp32": fp32, "int8": int8}.get(saved.meta.precision())
    if alone is None:  # int8 above fp32 lower layers
        alone = TransformerTagger.load_components(folder, saved.normaliser, saved.taxonomy)
    for tagger in (fp32, int8, alone):
        tagger.meta.blend = Blend(1.0, saved.meta.blend.temperature, 1.0)
    return {"loaded": loaded, "saved": saved, "fp32": fp32, "int8": int8, "alone": alone}


def score(tagger: Any, records: Sequence[Any], field: str) -> dict[str, float]:
    from bazkhord.evaluation.evaluate import gold_label, tag_all
    from bazkhord.model.metrics import headline, score_tags

    gold_aspects = [r.aspects for r in records]
    if tagger.taxonomy is not None:
        gold_aspects = [tagger.taxonomy.map_labels(a)[0] if a else a for a in gold_aspects]
    tags = tag_all(tagger.tag, [r.text for r in records])
    return headline(score_tags(tags, [gold_label(r, field) for r in records], gold_aspects, tagger.labels))


def unseen(loaded: Any, path: Path) -> list[Any]:
    from bazkhord.data.normalise import normalise
    from bazkhord.data.readers import read_records
    from bazkhord.model.folder import FINGERPRINTS_FILE, text_fingerprint

    known = set((loaded.folder / FINGERPRINTS_FILE).read_text(encoding="utf-8").split())
    return [r for r in read_records(path).records if text_fingerprint(normalise(r.text, loaded.tagger.normaliser)) not in known]


# -- speed ---------------------------------------------------------------------------------------------------------
def reference_tagger(like: Any) -> Any:
    """A BERT-base-shaped encoder (12 layers, 768 wide, 100k vocabulary, random weights: ParsBERT's size) behind
    the same tokenizer, heads, batching and length limit as ours."""
    import copy

    from transformers import BertConfig, BertModel

    from bazkhord.model.network import MultiTaskNet
    from bazkhord.model.transformer import TransformerTagger

    encoder = BertModel(BertConfig(vocab_size=100_000, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                   intermediate_size=3072), add_pooling_layer=False)
    meta = copy.deepcopy(like.meta)
    net = MultiTaskNet(encoder, len(meta.labels), len(meta.aspects), len(meta.polarities)).eval()
    return TransformerTagger(net, like.tokenizer, meta, like.normaliser, like.taxonomy)


def encoder_speed(tagger: Any, normalised: list[str], singles: int) -> dict[str, float]:
    tagger.network_outputs(normalised[:64])  # warm-up
    return timings(tagger.network_outputs, normalised, singles)


# -- the run ---------------------------------------------------------------------------------------------------------
def collect(shared: Path, work: Path, say: Callable[[str], None]) -> dict[str, Any]:
    from bazkhord.data.readers import read_records

    out: dict[str, Any] = {"quality": [], "training": [], "speed": [], "skipped": []}
    present = [name for name in ("deepsentipers", "parsinlu_food", "parsinlu_movie") if (shared / name / "test.jsonl").exists()]
    if not present:
        out["skipped"].append(f"{shared} is absent: nothing to benchmark the transformer on")
        return out
    texts = [str(shared / name / "train.jsonl") for name in present] + [str(REPO / "data/samples/feedback.jsonl")]
    say(f"pre-training on {len(texts)} files (budget {PRETRAIN_MINUTES} min)")
    encoder = work / "encoder"
    pre = in_process(step_pretrain, texts, str(encoder), PRETRAIN_MINUTES)
    out["training"].append({"model": "pre-training (MLM, all training texts)", **pre})
    speed_folder: Path | None = None
    for dataset, config_name, task in TASKS:
        if dataset not in present:
            continue
        say(f"fine-tuning {config_name}")
        run = in_process(step_finetune, config_name, str(shared / dataset), str(encoder), str(work / "models"),
                         str(work / "checkpoints"), FINETUNE_MINUTES[config_name])
        out["training"].append({"model": f"{dataset} {task}", "seconds": run["seconds"], "peak_mb": run["peak_mb"],
                                "epochs": run["report"]["epochs_run"], "best_epoch": run["report"]["best_epoch"],
                                "stopped_by": run["report"]["stopped_by"], "dev": run["dev"]})
        say(f"scoring {config_name} on its test split")
        parts = variants(Path(run["folder"]))
        loaded = parts["loaded"]
        field = loaded.manifest["labels"]["field"]
        records = unseen(loaded, shared / dataset / "test.jsonl")
        saved = parts["saved"]
        blend = saved.meta.blend
        choice = (f"{loaded.manifest['kind']}, weight {blend.weight}, aspect weight {blend.aspect_weight}, "
                  f"{saved.meta.precision()}")
        taggers = {"baseline": saved.baseline, "transformer fp32": parts["fp32"], "transformer int8": parts["int8"],
                   f"saved model ({choice})": saved}
        for variant, tagger in taggers.items():
            out["quality"].append({"dataset": dataset, "task": task, "variant": variant, "rows": len(records),
                                   "figures": score(tagger, records, field)})
            if task == "3-class" and dataset == "deepsentipers":
                out["quality"].append({"dataset": dataset, "task": "binary", "variant": variant, "rows": -1,
                                       "figures": binary(tagger, records)})
        if task == "3-class":
            speed_folder = Path(run["folder"])
    if speed_folder is not None:
        say("timing")
        parts = variants(speed_folder)
        texts_raw = list(dict.fromkeys(r.text for r in read_records(shared / "deepsentipers" / "test.jsonl").records))
        normalised = parts["fp32"].normalise(texts_raw)
        reference = reference_tagger(parts["fp32"])
        reference_name = "BERT-base-shaped reference (12 x 768, 100k vocab, random), fp32"
        rows = [(reference_name, encoder_speed(reference, normalised[:384], 60)),
                ("compact transformer, fp32", encoder_speed(parts["fp32"], normalised, 300)),
                ("compact transformer, int8", encoder_speed(parts["int8"], normalised, 300))]
        out["speed"] = [{"model": name, "scope": "encoder + heads on normalised text", **figures} for name, figures in rows]
        out["speed"] += [
            {"model": "TF-IDF baseline", "scope": "tag(): normalise, sentiment, aspects, evidence",
             **speed(parts["saved"].baseline, texts_raw)},
            {"model": "saved model", "scope": "tag(): normalise, sentiment, aspects, evidence",
             **speed(parts["saved"], texts_raw)},
        ]
        out["max_length"] = parts["fp32"].meta.max_length
    return out


def fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def render(result: dict[str, Any], seconds: float) -> str:
    lines = [BEGIN, "## Transformer tagger", "",
             f"Measured {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} on {machine()}; whole run {seconds / 60:.1f} min.",
             "Written by `python -m benchmarks.transformer`. The compact encoder (3 layers, 256 wide, WordPiece",
             "vocabulary learned here) is pre-trained with `bazkhord pretrain` on the training texts of every data set",
             "(labels ignored), then fine-tuned per task; every choice is made on dev, every figure is on the test split.",
             "`baseline` is the TF-IDF tagger trained in the same run on the same rows (train, then refit on train + dev),",
             "`saved model` is what the training run chose on dev (transformer alone or the ensemble; fp32 or int8).",
             ""]
    if result["quality"]:
        lines += ["| data set | task | variant | accuracy | macro-F1 | weighted-F1 | aspect micro-F1 | aspect polarity acc |",
                  "|---|---|---|---:|---:|---:|---:|---:|"]
        for row in result["quality"]:
            f = row["figures"]
            lines.append(f"| {row['dataset']} | {row['task']} | {row['variant']} | {fmt(f.get('accuracy'))} | "
                         f"{fmt(f.get('macro_f1'))} | {fmt(f.get('weighted_f1'))} | {fmt(f.get('aspect_micro_f1'))} | "
                         f"{fmt(f.get('aspect_polarity_accuracy'))} |")
        lines += ["", *targets(result)]
    if result["speed"]:
        reference = result["speed"][0]["comments_per_s"]
        lines += ["", f"Speed on the distinct DeepSentiPers test comments (max length {result.get('max_length')} tokens, "
                  "batches of 64 sorted by length; single-comment latency one at a time; torch threads: default):", "",
                  "| model | scope | comments/s (batch) | x reference | p50 ms (one) | p99 ms (one) |",
                  "|---|---|---:|---:|---:|---:|"]
        for row in result["speed"]:
            ratio = row["comments_per_s"] / reference if reference else float("nan")
            lines.append(f"| {row['model']} | {row['scope']} | {row['comments_per_s']} | {ratio:.1f} | {row['p50_ms']} | "
                         f"{row['p99_ms']} |")
    if result["training"]:
        lines += ["", "Training (each in its own process; peak memory is that process's maximum resident size):", "",
                  "| model | wall time | peak memory | epochs | stopped by |", "|---|---:|---:|---:|---|"]
        for row in result["training"]:
            stopped = row.get("stopped_by", f"held-out MLM loss {row.get('heldout_loss')}")
            lines.append(f"| {row['model']} | {row['seconds'] / 60:.1f} min | {row['peak_mb']:.0f} MiB | "
                         f"{row.get('epochs', '')} | {stopped} |")
        total = sum(row["seconds"] for row in result["training"]) / 60
        lines.append(f"| **all of the above** | **{total:.1f} min** | | | target < 30 min: {'met' if total < 30 else 'missed'} |")
    for message in result["skipped"]:
        lines.append(f"\nSkipped: {message}.")
    lines.append(END)
    return "\n".join(lines)


def targets(result: dict[str, Any]) -> list[str]:
    """The issue's targets, judged from the figures above."""
    by: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
    for row in result["quality"]:
        key = row["variant"].split(" (")[0]
        by.setdefault((row["dataset"], row["task"]), {})[key] = row["figures"]
    lines = ["Targets:", ""]
    for (dataset, task), figures in by.items():
        base = figures["baseline"].get("macro_f1")
        best = max(figures["transformer fp32"].get("macro_f1", 0), figures["saved model"].get("macro_f1", 0))
        if base is None:
            continue
        verdict = "beaten" if best > base else f"not beaten (short by {100 * (base - best):.1f} points)"
        drop = 100 * (figures["transformer fp32"].get("macro_f1", 0) - figures["transformer int8"].get("macro_f1", 0))
        lines.append(f"- {dataset} {task}: baseline macro-F1 {base:.3f}, best of transformer / saved model {best:.3f}: "
                     f"{verdict}; int8 vs fp32 macro-F1 {-drop:+.2f} points")
        if dataset == "deepsentipers" and task in PARSBERT:
            weighted, macro = figures["saved model"].get("weighted_f1", 0), figures["saved model"].get("macro_f1", 0)
            lines.append(f"  - gap to ParsBERT's published {task} F1 {PARSBERT[task]:.4f}: saved model weighted-F1 "
                         f"{weighted:.3f} ({100 * (weighted - PARSBERT[task]):+.1f} points), "
                         f"macro-F1 {macro:.3f} ({100 * (macro - PARSBERT[task]):+.1f})")
    if result["speed"]:
        reference = result["speed"][0]["comments_per_s"]
        for row in result["speed"][1:3]:
            ratio = row["comments_per_s"] / reference
            verdict = "met" if ratio >= 50 else "missed"
            lines.append(f"- throughput {row['model']}: {ratio:.0f}x the reference (target 50x: {verdict})")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path,
                        default=Path(os.environ.get("BAZKHORD_SHARED_DATA", REPO.parent / "shared" / "data")))
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument("--quick", action="store_true", help="one epoch each, to check the script (implies --no-write)")
    args = parser.parse_args(argv)
    if args.quick:
        global PRETRAIN_MINUTES
        PRETRAIN_MINUTES = 0.01
        FINETUNE_MINUTES.update(dict.fromkeys(FINETUNE_MINUTES, 0.01))
        args.no_write = True
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bazkhord-transformer-") as tmp:
        result = collect(args.shared_data, Path(tmp), lambda m: print(f"... {m}", file=sys.stderr, flush=True))
    if args.json:
        args.json.write_text(json.dumps(result, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    section = render(result, time.perf_counter() - started)
    print(section)
    if not args.no_write:
        write_section(section, begin=BEGIN, end=END)
        print("\nwrote docs/BENCHMARKS.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
