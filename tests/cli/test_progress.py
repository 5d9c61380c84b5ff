"""The command line's one progress display: log lines above the bar, never inside it; a clock that moves during
a long phase; counts with a real total; plain lines (no bar, no carriage returns) where stderr is not a terminal."""

from __future__ import annotations

import io
import logging
import re
import time

import pytest

from bazkhord.cli import progress
from bazkhord.cli.progress import Display


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_where_stderr_is_not_a_terminal() -> None:
    stream = io.StringIO()
    with Display("train", stream=stream) as display:
        display.phase("reading data.jsonl")
        time.sleep(0.15)
        display.phase("fitting on 10 comments")
        time.sleep(0.15)
        display.event({"kind": "start", "step": 0, "total_steps": 4})
        display.event({"kind": "epoch", "epoch": 1, "dev_score": 0.5})
    out = stream.getvalue()
    assert "\r" not in out and "|" not in out
    assert re.findall(r"^train: (.+) \(done in [\d.]+s\)$", out, re.M) == ["reading data.jsonl",
                                                                        "fitting on 10 comments"]
    assert 'train: epoch 1: {"epoch": 1, "dev_score": 0.5}' in out
    quiet = io.StringIO()
    with Display("train", quiet=True, stream=quiet) as display:
        display.phase("reading")
    assert quiet.getvalue() == ""


def test_logs_go_above_the_bar_and_the_clock_moves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "TICK_SECONDS", 0.05)
    stream = Terminal()
    root = logging.getLogger()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    try:
        with Display("train", stream=stream) as display:
            display.phase("fitting on 1106 comments")
            time.sleep(1.2)  # no call from the caller: only the ticker redraws
            logging.getLogger("bazkhord.data.readers").warning("a log line")
            display.event({"kind": "start", "step": 0, "total_steps": 10})
            display.event({"kind": "step", "step": 5, "epoch": 1, "loss": 0.25})
            time.sleep(0.3)
    finally:
        root.removeHandler(handler)
    out = stream.getvalue()
    # Every redraw starts with a carriage return; a log line is a line of its own, never a bar's tail.
    screens = [part for line in out.split("\n") for part in line.split("\r")]
    assert "WARNING bazkhord.data.readers: a log line" in screens
    assert not [s for s in screens if "a log line" in s and s != "WARNING bazkhord.data.readers: a log line"]
    assert any(s.startswith("train: fitting on 1106 comments [00:01]") for s in screens), screens
    assert any("5/10 steps" in s and "epoch 1 loss 0.250" in s for s in screens)
    assert not [s for s in screens if "None" in s]
