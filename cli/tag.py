"""`bazkhord tag` (a few texts, JSON lines out) and `bazkhord tag-batch` (files or folders into Parquet parts)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bazkhord.cli.common import DEFAULT_MODEL_HELP, MODELS_DIR, columns
from bazkhord.data.errors import InputError


def read_comments(lines: Iterable[str], where: str) -> list[tuple[str | None, str]]:
    """(id, text) per non-blank line: a JSON object with "text" (and optionally "id"), so a comment may hold new
    lines, or else the line itself as one comment. A line that looks like JSON but is not usable is an error
    naming `where` and the line."""
    comments: list[tuple[str | None, str]] = []
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        if not (line.lstrip().startswith("{") and line.rstrip().endswith("}")):
            comments.append((None, line))
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{where} line {number}: not valid JSON ({error.msg} at column {error.colno}); give one "
                             'JSON object per line like {"text": "..."} or plain text that does not start with "{"') from None
        text, ident = row.get("text"), row.get("id")
        if not isinstance(text, str) or not text.strip():
            raise InputError(f'{where} line {number}: field "text" is missing or not a non-empty string')
        comments.append((None if ident is None else str(ident), text))
    return comments


def cmd_tag(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from bazkhord.model.folder import load_model

    if args.input is not None:
        try:
            with args.input.open(encoding="utf-8") as handle:
                comments = read_comments(handle, str(args.input))
        except (OSError, UnicodeDecodeError) as error:
            raise InputError(f"cannot read {args.input}: {error}") from None
    elif args.texts:
        comments = [(None, text) for text in args.texts]
    else:
        comments = read_comments(sys.stdin, "standard input")
    loaded = load_model(args.model, args.models_dir)
    tags = loaded.tagger.tag([text for _, text in comments])
    for (ident, text), tag in zip(comments, tags, strict=True):
        print(json.dumps({**({"id": ident} if ident is not None else {}), "text": text, **asdict(tag)},
                         ensure_ascii=False))
    return 0


def cmd_tag_batch(args: argparse.Namespace) -> int:
    from bazkhord.cli.progress import Display
    from bazkhord.model.device import DEVICE_ENV, resolve_device
    from bazkhord.service.batch import BatchJob, run_local, run_ray

    if args.device:
        os.environ[DEVICE_ENV] = args.device
    device = resolve_device()  # a GPU asked for and absent: a clear error before any part is staged
    job = BatchJob(args.input, args.out, args.model, args.models_dir, columns=columns(args), part_rows=args.part_rows,
                   batch_size=args.batch_size, overwrite=args.overwrite, statements=args.statements)
    print(f"tagging {len(job.inputs)} input(s) with {job.model_name} {job.model_version} ({args.engine} engine"
          f"{', the GPU' if device == 'cuda' and args.engine == 'local' else ''}) "
          f"into {job.out}", file=sys.stderr)
    with Display("tag-batch", args.quiet) as display:
        if args.engine == "ray":
            result = run_ray(job, address=args.address, cpus=args.cpus, actors=args.actors, progress=display)
        else:
            result = run_local(job, display)
    rate = result.rows / result.seconds if result.seconds else 0.0
    print(f"tagged {result.rows:,} comments into {result.parts_written} part(s) in {result.seconds:.1f}s "
          f"({rate:,.0f} comments/s, {args.engine}); {result.parts_skipped} part(s) ({result.skipped_rows:,} rows) "
          f"were finished by an earlier run")
    if result.rejected:
        reasons = ", ".join(f"{n} {reason}" for reason, n in result.rejects_by_reason.items())
        print(f"rejected {result.rejected:,} row(s): {reasons}; each with file, row and reason in {job.out / 'rejects'}")
    print(f"parts: {job.out / 'parts'}")
    return 0


def register(commands: Any) -> None:
    batch = commands.add_parser("tag-batch", help="tag files or folders of comments into Parquet parts "
                                                  "(resumable; locally or on a Ray cluster)")
    batch.add_argument("--input", action="append", required=True,
                       help="a .jsonl/.csv/.parquet file, a folder of them or a datasets folder (repeat for several)")
    batch.add_argument("--out", type=Path, required=True, help="folder for parts/, rejects/ and _job.json")
    batch.add_argument("--model", help=DEFAULT_MODEL_HELP)
    batch.add_argument("--models-dir", **MODELS_DIR)
    batch.add_argument("--engine", choices=("local", "ray"), default="local")
    batch.add_argument("--device", choices=("auto", "cpu", "cuda"),
                       help="local engine: where a transformer model runs (auto: a GPU when there is one; cuda is "
                            "refused where there is none); Ray gives each actor a GPU where the cluster has them")
    batch.add_argument("--address", help="join this Ray cluster (ray start --head prints it); else a local one starts")
    batch.add_argument("--cpus", type=int, help="CPUs of the local Ray instance (default: all)")
    batch.add_argument("--actors", type=int, help="tagging actors (default: one per CPU of the cluster)")
    batch.add_argument("--part-rows", type=int, default=50_000, help="rows per output part")
    batch.add_argument("--batch-size", type=int, default=512, help="comments per model call")
    batch.add_argument("--columns", help='column map as JSON, e.g. {"text": "comment", "id": ["ticket_id"]}')
    batch.add_argument("--overwrite", action="store_true", help="start again in a folder that holds another job")
    batch.add_argument("--statements", action="store_true",
                       help="also each comment's metadata and tagged statements, for `bazkhord report --tagged`")
    batch.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    batch.set_defaults(run=cmd_tag_batch)

    tag = commands.add_parser("tag", help="tag texts given as arguments, in a file or on standard input: one "
                                          'comment per line, plain or as JSON {"text": ..., "id": ...}; JSON lines out')
    tag.add_argument("model", help="name, name@version or folder")
    tag.add_argument("texts", nargs="*")
    tag.add_argument("--input", type=Path, help='a file: one comment per line, plain or JSON {"text": ...} (a comment '
                                                "with new lines must be JSON); default: the arguments, else standard input")
    tag.add_argument("--models-dir", **MODELS_DIR)
    tag.set_defaults(run=cmd_tag)
