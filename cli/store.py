"""`bazkhord keys`, `retag` and `db`: the feedback store's API keys, re-tagging and schema."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from bazkhord.cli.common import DATABASE, engine, settings


def cmd_keys(args: argparse.Namespace) -> int:
    from bazkhord.service.auth import KeyStore

    keys = KeyStore(engine(args))
    if args.action == "create":
        new = keys.create(args.name, args.scopes, args.rate_per_minute)
        print(f"created key {new.caller.name!r} with scopes {','.join(sorted(new.caller.scopes))}; "
              "it is shown once, store it now:", file=sys.stderr)
        print(new.key)
    elif args.action == "revoke":
        name = keys.revoke(args.name)
        config = settings(args)
        if config.redis_url:  # running services drop their key caches now, not when they expire
            from bazkhord.service.shared import KeyRevocations, connect

            KeyRevocations(connect(config.redis_url), config.redis_prefix).bump()
        print(f"revoked key {name!r}")
    else:
        rows = keys.list()
        for row in rows:
            state = f"revoked {row['revoked_at']}" if row["revoked_at"] else "active"
            rate = f"{row['rate_per_minute']}/min" if row["rate_per_minute"] else "default rate"
            print(f"{row['name']:<24} bzk_{row['prefix']}_…  {row['scopes']:<24} {rate:<14} {state}")
        if not rows:
            print("no keys yet: bazkhord keys create --name NAME --scopes tag,ingest,report")
    return 0


def cmd_retag(args: argparse.Namespace) -> int:
    from bazkhord.cli.progress import Display
    from bazkhord.model.folder import load_model
    from bazkhord.service.store import FeedbackStore, Filters

    store = engine(args)
    loaded = load_model(args.model, settings(args).models_dir)
    filters = Filters(start=args.start, end=args.end, channel=args.channel, product=args.product, segment=args.segment)
    with Display(f"retag with {loaded.version}", args.quiet) as display:
        done = FeedbackStore(store).retag(loaded.tagger.tag, loaded.name, loaded.version, filters, args.batch_size,
                                          args.all, lambda n, total: display.count(n, total, "comments"))
    print(f"re-tagged {done} stored comment(s) with {loaded.name} {loaded.version}")
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from bazkhord.service.db import current_revision

    store = engine(args)  # upgrades
    print(f"{settings(args).database_url}: schema at revision {current_revision(store)}")
    return 0


def register(commands: Any) -> None:
    keys = commands.add_parser("keys", help="API keys: create, list, revoke")
    keys_actions = keys.add_subparsers(dest="action", required=True)
    create = keys_actions.add_parser("create", help="create a key; it is printed once and only its hash is kept")
    create.add_argument("--name", required=True, help="who or what uses the key")
    create.add_argument("--scopes", required=True, help="comma-separated: tag, ingest, report, curate, admin")
    create.add_argument("--rate-per-minute", type=int, help="this key's rate limit (default: the service's)")
    revoke = keys_actions.add_parser("revoke", help="revoke a key by name or prefix")
    revoke.add_argument("name")
    keys_actions.add_parser("list", help="list keys (never the keys themselves)")
    for sub in keys_actions.choices.values():
        sub.add_argument("--database-url", **DATABASE)
    keys.set_defaults(run=cmd_keys)

    retag = commands.add_parser("retag", help="tag stored feedback again with another model version")
    retag.add_argument("--model", required=True, help="name, name@version or folder")
    retag.add_argument("--models-dir", type=Path)
    retag.add_argument("--database-url", **DATABASE)
    retag.add_argument("--all", action="store_true", help="also comments this version tagged already")
    retag.add_argument("--start", type=datetime.fromisoformat, help="created_at from (ISO date/time, inclusive)")
    retag.add_argument("--end", type=datetime.fromisoformat, help="created_at until (exclusive)")
    retag.add_argument("--channel")
    retag.add_argument("--product")
    retag.add_argument("--segment")
    retag.add_argument("--batch-size", type=int, default=256, help="comments per transaction")
    retag.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    retag.set_defaults(run=cmd_retag)

    db = commands.add_parser("db", help="bring the feedback store's schema up to date (migrations)")
    db.add_argument("action", choices=["upgrade"])
    db.add_argument("--database-url", **DATABASE)
    db.set_defaults(run=cmd_db)
