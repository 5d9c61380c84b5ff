"""The command line's one progress display: a single tqdm line on standard error, with log lines and finished
phases written above it, its clock kept moving while a long phase runs, and nothing drawn where standard error
is not a terminal (there the phases and log lines come out as plain lines, and `-q` silences the phases).

Training reports two kinds of progress: phases ("reading FILE", "fitting on N comments", "saving model folder"),
which have no count worth showing, and optimizer steps (transformer runs), which have a total and an ETA.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from types import TracebackType
from typing import Any, Self

PHASE_FORMAT = "{desc} [{elapsed}]"
COUNT_FORMAT = "{desc}: {percentage:3.0f}%|{bar:20}| {n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}]{postfix}"
OPEN_FORMAT = "{desc}: {n_fmt} {unit} [{elapsed}, {rate_fmt}]{postfix}"
TICK_SECONDS = 0.5


def quiet_libraries() -> None:
    """No progress bars of transformers or the hub ("Loading weights", "Writing model shards"): ours is the one.
    Must run before transformers is imported (it reads the setting once)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class Display:
    """Use as a context manager; `phase(message)` and `event(dict)` are the callbacks training takes."""

    def __init__(self, desc: str, quiet: bool = False, stream: Any = None, lines: bool = True) -> None:
        self.desc = desc
        self.quiet = quiet or not lines  # `lines=False`: the moving line on a terminal, no line per finished phase
        self.stream = stream or sys.stderr
        self.live = not quiet and bool(getattr(self.stream, "isatty", lambda: False)())
        self.bar: Any = None
        self._phase: tuple[str, float] | None = None
        self._dev = ""
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._redirect: Any = None

    def __enter__(self) -> Self:
        if self.live:
            from tqdm import tqdm

            self.bar = tqdm(total=None, desc=self.desc, file=self.stream, bar_format=PHASE_FORMAT, dynamic_ncols=True,
                            leave=False)
            self._redirect = _LogsAbove(self)
            self._redirect.__enter__()
            self._ticker = threading.Thread(target=self._tick, name="bazkhord-progress", daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._finish_phase(failed=error is not None)
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2)
        if self.bar is not None:
            self.bar.close()
        if self._redirect is not None:
            self._redirect.__exit__(kind, error, trace)

    def _tick(self) -> None:
        # tqdm redraws only when told: without this a 79-second phase shows a clock stopped at its start.
        while not self._stop.wait(TICK_SECONDS):
            bar = self.bar
            if bar is not None:
                bar.refresh()

    def write(self, line: str) -> None:
        """A line above the bar (or a plain line where nothing is drawn)."""
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    # -- phases ---------------------------------------------------------------------------------------------
    def phase(self, message: str) -> None:
        self._finish_phase()
        self._phase = (message, time.perf_counter())
        if self.bar is not None:  # a line of its own, its clock from zero
            self.bar.bar_format = PHASE_FORMAT
            self.bar.set_description_str(f"{self.desc}: {message}", refresh=False)
            self.bar.reset(total=None)

    def _finish_phase(self, failed: bool = False) -> None:
        if self._phase is None:
            return
        message, started = self._phase
        self._phase = None
        if not self.quiet:
            took = time.perf_counter() - started
            # A phase that took no time is a statement ("ensemble kept: ..."): no timing to show.
            timing = f" ({'stopped' if failed else 'done'} in {_seconds(took)})" if took >= 0.1 or failed else ""
            self.write(f"{self.desc}: {message}{timing}")

    # -- counted work ---------------------------------------------------------------------------------------
    def count(self, done: int, total: int | None, unit: str) -> None:
        """`done` of `total` (comments tagged, optimizer steps): a bar with an ETA; without a total, the count and
        its rate."""
        if self.bar is None:
            return
        wanted = max(1, total) if total else None
        if self.bar.total != wanted or self.bar.unit != unit or (wanted is None and self.bar.bar_format != OPEN_FORMAT):
            self._finish_phase()
            self.bar.set_description_str(self.desc, refresh=False)
            self.bar.bar_format = COUNT_FORMAT if wanted else OPEN_FORMAT
            self.bar.unit = unit
            self.bar.reset(total=wanted)
        self.bar.update(done - self.bar.n)

    def event(self, event: dict[str, Any]) -> None:
        kind = event["kind"]
        if kind == "start":
            self._finish_phase()
            self.count(int(event["step"]), int(event["total_steps"]), "steps")
        elif kind == "step":
            if self.bar is not None:
                self.bar.update(int(event["step"]) - self.bar.n)
                self.bar.set_postfix_str(f"epoch {event['epoch']} loss {event['loss']:.3f}{self._dev}", refresh=False)
        elif kind == "epoch":
            score = event.get("dev_score", event.get("heldout_loss"))
            self._dev = f" dev {score:.3f}" if isinstance(score, float) else ""
            if not self.quiet:
                shown = {k: v for k, v in event.items() if k != "kind"}
                self.write(f"{self.desc}: epoch {event['epoch']}: " + json.dumps(shown, ensure_ascii=False))


def _seconds(value: float) -> str:
    return f"{value:.1f}s" if value < 60 else f"{int(value // 60)}m{int(value % 60):02d}s"


class _LogsAbove(logging.Handler):
    """Stands in for the root logger's console handlers while a bar is drawn: each record, formatted as they would
    have, is written above the bar instead of into it."""

    def __init__(self, display: Display) -> None:
        super().__init__()
        self.display = display
        self.replaced: list[logging.Handler] = []

    def __enter__(self) -> Self:
        root = logging.getLogger()
        consoles = (self.display.stream, sys.stderr, sys.stdout)
        self.replaced = [h for h in root.handlers if type(h) is logging.StreamHandler and h.stream in consoles]
        if self.replaced:
            self.setFormatter(self.replaced[0].formatter)
            self.setLevel(self.replaced[0].level)
            for handler in self.replaced:
                root.removeHandler(handler)
            root.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        root = logging.getLogger()
        if self.replaced:
            root.removeHandler(self)
            for handler in self.replaced:
                root.addHandler(handler)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.display.write(self.format(record))
        except Exception:  # logging must never break the command
            self.handleError(record)
