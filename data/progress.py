"""How long work tells its caller how far it is: one protocol for training, theme reports and batch tagging.

Library code calls a `Progress` and never prints; the command line's `Display` draws it, and without one the
phases go to the log. Methods may be called from worker threads.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

log = logging.getLogger("bazkhord")


class Progress(Protocol):
    def phase(self, message: str) -> None:
        """A step with no count worth showing: "reading FILE", "saving model folder"."""

    def count(self, done: int, total: int | None, unit: str) -> None:
        """`done` of `total` `unit` (rows, statements); total None where it is not known yet."""

    def event(self, event: dict[str, Any]) -> None:
        """A training event: {"kind": "start" | "step" | "epoch", ...} with its step, totals, loss or scores."""


class LogProgress:
    """The default: phases as log lines; counts and events are for a display, so they are left out."""

    def phase(self, message: str) -> None:
        log.info(message)

    def count(self, done: int, total: int | None, unit: str) -> None:
        pass

    def event(self, event: dict[str, Any]) -> None:
        pass


QUIET: Progress = LogProgress()
