"""`bazkhord corrections export` and `bazkhord retrain`: the analysts' corrections as training data, and the
retraining on them that activates its model only when it beats the active one."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bazkhord.cli.common import DATABASE, MODELS_DIR, engine, settings
from bazkhord.data.record import FeedbackRecord


def store_corrections(database_url: str) -> tuple[list[FeedbackRecord], list[str], str]:
    """The store's corrections as records, the texts of its newest uncorrected comments (to self-train on), and the
    URL with its password hidden (it is saved in the config)."""
    from sqlalchemy.engine import make_url

    from bazkhord.service.corrections import CorrectionStore, as_records
    from bazkhord.service.db import make_engine, upgrade
    from bazkhord.service.themestore import ThemeStore

    made = make_engine(database_url)
    upgrade(made)
    store = CorrectionStore(made, ThemeStore(made))
    records = as_records(store.export().rows)
    return records, store.uncorrected(), make_url(database_url).render_as_string(hide_password=True)


def cmd_export(args: argparse.Namespace) -> int:
    from bazkhord.service.corrections import CorrectionStore
    from bazkhord.service.themestore import ThemeStore

    store = engine(args)
    exported = CorrectionStore(store, ThemeStore(store)).export()
    out = sys.stdout if str(args.out) == "-" else args.out.open("w", encoding="utf-8")
    try:
        for row in exported.rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    if exported.conflicts:
        print(f"{len(exported.conflicts)} field(s) were labelled differently by different people; the newest label "
              "is exported:", file=sys.stderr)
        for conflict in exported.conflicts:
            values = "; ".join(f"{v['value']} by {v['by']} at {v['at']}" for v in conflict["values"])
            field = conflict["field"] + (f" {conflict['aspect']}" if conflict["aspect"] else "")
            print(f"  {conflict['id']}: {field}: {values}", file=sys.stderr)
        if args.conflicts:
            args.conflicts.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in exported.conflicts),
                                      encoding="utf-8")
    where = "stdout" if str(args.out) == "-" else str(args.out)
    print(f"exported {len(exported.rows)} corrected comment(s) to {where} (personal data masked)", file=sys.stderr)
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    from bazkhord.service.retraining import new_job, retrain

    config = settings(args)
    store = engine(args)
    job_id = args.job
    if job_id is None:  # from the command line: a job of its own, listed in the workspace like the others
        from bazkhord.model.folder import default_model

        job_id = new_job(store, args.model or config.model or default_model(config.models_dir), "command line")
    verdict = retrain(store, config.models_dir, job_id, args.test_file if args.test_file is not None
                      else config.retrain_test_file, args.holdout if args.holdout is not None else config.retrain_holdout,
                      args.min_corrections if args.min_corrections is not None else config.retrain_min_corrections)
    print(f"retraining #{job_id}: challenger {verdict['challenger']} {verdict['decision']}: {verdict['figures']['why']}")
    print(json.dumps(verdict["figures"], ensure_ascii=False, indent=1))
    return 0


def register(commands: Any) -> None:
    corrections = commands.add_parser("corrections", help="analysts' corrections: export them as training data")
    actions = corrections.add_subparsers(dest="action", required=True)
    export = actions.add_parser("export", help="write the corrected comments in the training data format (JSONL)")
    export.add_argument("--out", type=Path, default=Path("-"), help="file to write (default: stdout)")
    export.add_argument("--conflicts", type=Path, help="also write the fields people disagreed on here (JSONL)")
    export.add_argument("--database-url", **DATABASE)
    export.set_defaults(run=cmd_export)

    retrain = commands.add_parser("retrain", help="train the active model again with the store's corrections; the "
                                                  "new version is activated only if it beats the active one")
    retrain.add_argument("--model", help="model name (default: BAZKHORD_MODEL, else the model trained last)")
    retrain.add_argument("--models-dir", **MODELS_DIR)
    retrain.add_argument("--database-url", **DATABASE)
    retrain.add_argument("--test-file", help="labelled file both models are scored on (default: "
                                             "BAZKHORD_RETRAIN_TEST_FILE)")
    retrain.add_argument("--holdout", type=float, help="share of corrections held out for the gate (default 0.2)")
    retrain.add_argument("--min-corrections", type=int, help="refuse with fewer corrected comments (default 20)")
    retrain.add_argument("--job", type=int, help=argparse.SUPPRESS)  # the service's job row
    retrain.set_defaults(run=cmd_retrain)
