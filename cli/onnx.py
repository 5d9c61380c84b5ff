"""`bazkhord onnx`: serve a saved transformer folder with ONNX Runtime where that is faster and agrees on dev."""

from __future__ import annotations

import argparse
from typing import Any

from bazkhord.cli.common import MODELS_DIR


def cmd_onnx(args: argparse.Namespace) -> int:
    from bazkhord.cli.progress import Display
    from bazkhord.training.export import export_onnx

    with Display("onnx", lines=True) as display:
        result = export_onnx(args.model, args.data, args.backend, root=args.models_dir, progress=display)
    if result.saved:
        print(f"new version {result.folder}: served by ONNX Runtime, {result.precision}; chosen on {result.dev_rows} "
              "dev rows")
    else:
        print(f"{result.folder} left as it was: PyTorch ({result.precision}) stays, ONNX Runtime was not faster or "
              f"not close enough on {result.dev_rows} dev rows")
    for note in result.choice.notes:
        print(f"  {note}")
    return 0


def register(commands: Any) -> None:
    onnx = commands.add_parser(
        "onnx", help="export a transformer folder's encoder to ONNX Runtime (a new version of the model)",
        description="Export the encoder, choose ONNX Runtime's precision on dev by the training run's rule (within "
                    "0.5 dev points and 3%% of dev tags changed), time it against PyTorch, and save a new version "
                    "of the model that records which runtime serves it. New training runs do this themselves "
                    "(transformer.backend = \"auto\").")
    onnx.add_argument("model", nargs="?", help="model name, name@version or folder (default: the model trained last)")
    onnx.add_argument("--data", help="labelled rows to choose on (default: the dev split of the folder's training config)")
    onnx.add_argument("--backend", choices=("auto", "onnx"), default="auto",
                      help="auto: ONNX Runtime only where faster than PyTorch; onnx: ONNX Runtime in any case")
    onnx.add_argument("--models-dir", **MODELS_DIR)
    onnx.set_defaults(run=cmd_onnx)
