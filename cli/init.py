"""`bazkhord init`: check a labelled file, report what it holds, and write a training config that suits it."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from bazkhord.cli.common import COLUMNS_HELP
from bazkhord.data.errors import ConfigError


def cmd_init(args: argparse.Namespace) -> int:
    from bazkhord.data.readers import ColumnMap
    from bazkhord.model.themes.embeddings import encoder_folder
    from bazkhord.training.starter import config_text, describe, draft_config, inspect_data

    raw_columns = json.loads(args.columns) if args.columns else None
    columns = ColumnMap.from_dict(raw_columns) if raw_columns else None
    name = args.name or re.sub(r"[^A-Za-z0-9_-]+", "-", Path(args.data).stem).strip("-") or "model"
    out = args.out or Path("artifacts/configs") / f"{name}.toml"
    if out.exists() and not args.force:
        raise ConfigError(f"{out} exists: choose another --out, or --force to replace it")
    profile = inspect_data(args.data, columns, args.max_bad_fraction)
    for line in describe(profile):
        print(line)
    encoder = encoder_folder(args.encoder)
    values = draft_config(profile, name, encoder, str(args.models_dir), raw_columns)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(config_text(values, profile, encoder), encoding="utf-8")
    print(f"wrote {out}: profile {values['model']['kind']}, model name {name!r}, taxonomy "
          f"{values['data']['taxonomy'] or 'none (the file’s own aspect names)'}")
    print(f"next: bazkhord train --config {out}")
    return 0


def register(commands: Any) -> None:
    init = commands.add_parser("init", help="check a labelled file, say what it holds, and write a training config "
                                            "for it (then: bazkhord train --config FILE)")
    init.add_argument("--data", required=True, help="labelled file (.jsonl, .csv, .parquet, dataset folder)")
    init.add_argument("--out", type=Path, help="config file to write (default: artifacts/configs/NAME.toml)")
    init.add_argument("--name", help="model name (default: the file's name)")
    init.add_argument("--columns", help=COLUMNS_HELP)
    init.add_argument("--encoder", help="pretrained encoder folder, or 'none' for the TF-IDF profile (default: "
                                        "BAZKHORD_ENCODER, else artifacts/encoders/multilingual-e5-small if present)")
    init.add_argument("--models-dir", type=Path, default=Path("artifacts/models"), help="where train writes the model")
    init.add_argument("--max-bad-fraction", type=float, default=0.1, help="refuse the file if more rows are bad")
    init.add_argument("--force", action="store_true", help="replace an existing config file")
    init.set_defaults(run=cmd_init)
