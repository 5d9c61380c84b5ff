"""What several commands share: logging, the service settings and store from the flags, common arguments."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from bazkhord.data.readers import ColumnMap
    from bazkhord.service.settings import Settings

# Keyword arguments of add_argument, shared by the commands that take them.
MODELS_DIR: dict[str, Any] = {"type": Path, "default": Path("artifacts/models"), "help": "where model folders live"}
DATABASE: dict[str, Any] = {"dest": "database_url", "help": "the feedback store (default: BAZKHORD_DATABASE_URL or "
                                                            "sqlite:///artifacts/bazkhord.db)"}
DEFAULT_MODEL_HELP = "name, name@version or folder (default: the model trained last)"
COLUMNS_HELP = 'column map as JSON, e.g. {"text": "comment"}'


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("gensim", "matplotlib", "httpx", "alembic"):  # hazm imports gensim, which logs every import
        logging.getLogger(noisy).setLevel(logging.WARNING)


def columns(args: argparse.Namespace) -> ColumnMap | None:
    from bazkhord.data.readers import ColumnMap

    return ColumnMap.from_dict(json.loads(args.columns)) if args.columns else None


def settings(args: argparse.Namespace) -> Settings:
    from bazkhord.service.settings import Settings

    overrides: dict[str, object] = {}
    for name in ("model", "models_dir", "database_url"):
        value = getattr(args, name, None)
        if value:
            overrides[name] = value
    return Settings(**overrides)  # type: ignore[arg-type]


def engine(args: argparse.Namespace) -> Engine:
    """The store's engine, its schema brought up to date."""
    from bazkhord.service.db import make_engine, upgrade

    made = make_engine(settings(args).database_url)
    upgrade(made)
    return made


def figures(scores: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in scores.items())
