"""`bazkhord evaluate` and `bazkhord models`: test figures of a model folder, and the folders with theirs."""

from __future__ import annotations

import argparse
from typing import Any

from bazkhord.cli.common import COLUMNS_HELP, MODELS_DIR, columns, figures


def cmd_evaluate(args: argparse.Namespace) -> int:
    from bazkhord.cli.progress import Display
    from bazkhord.evaluation.evaluate import evaluate, format_table

    with Display("evaluate", lines=False) as display:
        display.phase(f"scoring {args.model} on {args.data}")
        result = evaluate(args.model, args.data, args.split, root=args.models_dir, columns=columns(args),
                          progress=lambda done, total: display.count(done, total, "comments"))
    info = result.metrics["model"]
    print(f"{info['name']} {info['version']} on {args.data} ({result.metrics['data']['rows']} rows, split {args.split})")
    if result.seen_in_training:
        print(f"  {result.seen_in_training} row(s) left out: the model trained on them")
    print(format_table(result.metrics))
    print(f"wrote {result.metrics_file}" + (f" and {result.confusion_png}" if result.confusion_png else ""))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from bazkhord.data.errors import ModelFolderError
    from bazkhord.model.folder import default_model, list_models

    rows = list_models(args.models_dir)
    if not rows:
        print(f"no models under {args.models_dir}")
        return 0
    try:
        default = default_model(args.models_dir)
    except ModelFolderError:
        default = None
    for row in rows:
        if "error" in row:
            print(f"{row['name']:<20} {row['version']:<20} BROKEN: {row['error']}")
            continue
        marks = " ".join(mark for mark, on in (("latest", row["latest"]), ("default", row["latest"] and row["name"] == default))
                         if on)
        print(f"{row['name']:<20} {row['version']:<20} {marks:<15} {row['kind']}")
        dev = row["metrics"].get("dev", {})
        if dev:
            print(f"    dev  (held out of the training file, used for the model's choices): {figures(dev)}")
        for split, found in row["evaluations"].items():
            data = found["data"]
            print(f"    {split} ({data.get('path', '?')}, {data.get('rows', '?')} rows; bazkhord evaluate): "
                  f"{figures(found['summary'])}")
        if not row["evaluations"]:
            print("    no test figures yet: bazkhord evaluate MODEL --data HELD_OUT_FILE")
    if default is not None:
        print(f"default: {default} (trained last; commands use it unless given --model)")
    return 0


def register(commands: Any) -> None:
    evaluate = commands.add_parser("evaluate", help="score a model on labelled data")
    evaluate.add_argument("model", help="model name, name@version, or folder")
    evaluate.add_argument("--data", required=True, help="labelled file (.jsonl, .csv, .parquet, dataset folder)")
    evaluate.add_argument("--split", default="test", help="name used in metrics_<split>.json")
    evaluate.add_argument("--columns", help=COLUMNS_HELP)
    evaluate.add_argument("--models-dir", **MODELS_DIR)
    evaluate.set_defaults(run=cmd_evaluate)

    models = commands.add_parser("models", help="list model folders and their figures; mark the default")
    models.add_argument("--models-dir", **MODELS_DIR)
    models.set_defaults(run=cmd_models)
