"""The `bazkhord` command: one module per command group, each thin (parse, call the library, print).

Errors bazkhord expects (bad data, bad config, bad model folder) print one clear message and exit 2; never a
stack trace. Nothing in the package imports this room.
"""

from __future__ import annotations

import argparse
import sys

from sqlalchemy.exc import SQLAlchemyError

from bazkhord.cli import corrections, evaluate, init, onnx, report, serve, store, tag, train
from bazkhord.cli.common import setup_logging
from bazkhord.cli.progress import quiet_libraries
from bazkhord.data.errors import BazkhordError, TrainingStopped

GROUPS = (init, train, evaluate, onnx, serve, store, report, tag, corrections)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bazkhord", description="Persian customer-feedback tagging")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    quiet_libraries()
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        return int(args.run(args))
    except TrainingStopped as error:  # Ctrl-C during training: the checkpoint is saved, the same command resumes
        print(f"stopped: {error}", file=sys.stderr)
        return 130
    except BazkhordError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except SQLAlchemyError as error:  # the store is unreachable or refuses: say which, no stack trace
        print(f"error: the feedback store failed ({type(error).__name__}): {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
