"""Workspace benchmark: a store of N comments (the shipped samples' texts cycled with a suffix each, spread over a
year, tagged by the model), the background theme run's time and peak memory, and the server time of the overview
and theme pages under filters (p50/p95 of in-process requests, rendering included), on SQLite and PostgreSQL.
With --screenshots, Debian's Chromium photographs each page at 1400 and 420 px into artifacts/screenshots/.
Writes the "workspace" section of docs/BENCHMARKS.md.

    python -m benchmarks.workspace [--comments 100000] [--model sample] [--postgres URL] [--screenshots] [--no-write]
    python -m benchmarks.workspace --existing SQLite=sqlite:///... --existing PostgreSQL=postgresql+psycopg://...
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.baseline import REPO, machine, publish

BEGIN, END = "<!-- workspace:begin -->", "<!-- workspace:end -->"
PAGES_BEGIN, PAGES_END = "<!-- workspace-pages:begin -->", "<!-- workspace-pages:end -->"
SAMPLES = [REPO / "data" / "samples" / "feedback.jsonl", REPO / "data" / "samples" / "feedback_test.jsonl"]
SHOTS = REPO / "artifacts" / "screenshots"


def fill(store: Any, loaded: Any, comments: int) -> float:
    """Store `comments` comments; each distinct text is tagged once (tagging speed is another benchmark's)."""
    from bazkhord.service.store import NewFeedback

    rows = [json.loads(line) for path in SAMPLES for line in path.read_text(encoding="utf-8").splitlines()]
    tags = loaded.tagger.tag([r["text"] for r in rows])
    start = datetime(2025, 12, 1, tzinfo=UTC)
    began = time.perf_counter()
    for begin in range(0, comments, 2000):
        items, batch_tags = [], []
        for i in range(begin, min(comments, begin + 2000)):
            row = rows[i % len(rows)]
            items.append(NewFeedback(client_id=f"c{i}", text=f"{row['text']} #{i}", channel=row.get("channel"),
                                     product=row.get("product"), segment=row.get("segment"), rating=row.get("rating"),
                                     created_at=start + timedelta(minutes=(525_600 * i) // comments)))
            batch_tags.append(tags[i % len(rows)])
        store.add(items, batch_tags, loaded.name, loaded.version)
    return time.perf_counter() - began


class PeakRss:
    """This process's resident memory, sampled, from a start line (ru_maxrss never goes down)."""

    def __init__(self) -> None:
        self.peak, self._stop = 0, threading.Event()

    @staticmethod
    def now() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def __enter__(self) -> PeakRss:
        self.base = self.now()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, self.now())

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self.thread.join()


def timings(client: Any, urls: list[str], repeat: int) -> tuple[float, float]:
    took = []
    for _ in range(repeat):
        for url in urls:
            began = time.perf_counter()
            answer = client.get(url)
            took.append(1000 * (time.perf_counter() - began))
            assert answer.status_code == 200, (url, answer.status_code, answer.text[:300])
    took.sort()
    return statistics.median(took), took[int(0.95 * (len(took) - 1))]


def screenshots(base: str, key: str, theme: int, comment: str) -> list[Path]:
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    made = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        for width in (1400, 420):
            context = browser.new_context(viewport={"width": width, "height": 900}, locale="fa-IR")
            page = context.new_page()
            page.goto(f"{base}/app/login")
            made.append(SHOTS / f"login-{width}.png")
            page.screenshot(path=made[-1], full_page=True)
            page.fill("#key", key)
            page.keyboard.press("Enter")
            page.wait_for_url(f"{base}/app/")
            for name, path in (("overview", "/app/?period=month"), ("theme", f"/app/themes/{theme}"),
                               ("comment", f"/app/comments/{comment}"), ("runs", "/app/runs"),
                               ("codebook", "/app/codebook"), ("alerts", "/app/alerts"),
                               ("review", "/app/review"), ("retraining", "/app/retraining"), ("causes", "/app/causes")):
                page.goto(base + path)
                made.append(SHOTS / f"{name}-{width}.png")
                page.screenshot(path=made[-1], full_page=True)
            context.close()
        browser.close()
    return made


def pages(client: Any, services: Any, repeat: int, result: dict[str, Any]) -> tuple[str, int]:
    """The overview's and a theme page's server times under four filter sets; the key and theme it used."""
    from bazkhord.service.auth import KeyStore

    key = KeyStore(services.engine).create(f"bench-{time.time_ns()}", "report,curate").key
    client.post("/app/login", data={"key": key, "next": "/app/"})
    names = services.theme_store.names()
    theme = next(iter(sorted(names)))
    filters = ["", "?channel=support_chat", "?from=2026-03-01&to=2026-08-31&period=week",
               "?segment=returning&calendar=gregorian"]
    result["overview"] = timings(client, [f"/app/{f}" for f in filters], repeat)
    result["theme"] = timings(client, [f"/app/themes/{theme}{f}" for f in filters]
                              + [f"/app/themes/{theme}?q=%D8%AF%DB%8C%D8%B1&page=2"], repeat)
    result["themes"] = len(names)
    return key, theme


def measure_existing(url: str, loaded: Any, repeat: int) -> dict[str, Any]:
    """Page times only, on a store an earlier run of this benchmark filled and analysed."""
    from fastapi.testclient import TestClient

    from bazkhord.service.app import create_app
    from bazkhord.service.settings import Settings

    app = create_app(Settings(database_url=url, model_process=False, theme_run_minutes=0, sync_seconds=0,
                              json_logs=False, rate_limit_per_minute=100_000, rate_limit_burst=100_000), model=loaded)
    result: dict[str, Any] = {}
    with TestClient(app) as client:
        services = app.state.services
        assert services.theme_store.latest_run() is not None, f"{url} holds no finished theme run"
        result["comments"] = services.store.count()
        time.sleep(2)  # the filter lists are read in the background at start
        pages(client, services, repeat, result)
    return result


def measure(url: str, loaded: Any, comments: int, repeat: int, shots: bool) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from bazkhord.service.app import create_app
    from bazkhord.service.settings import Settings

    settings = Settings(database_url=url, model_process=False, theme_run_minutes=0, sync_seconds=0,
                        theme_run_items=comments, json_logs=False, rate_limit_per_minute=100_000,
                        rate_limit_burst=100_000)
    app = create_app(settings, model=loaded)
    result: dict[str, Any] = {}
    with TestClient(app) as client:
        services = app.state.services
        result["fill_s"] = fill(services.store, loaded, comments)
        with PeakRss() as rss:
            began = time.perf_counter()
            assert services.jobs.request("demand", "benchmark") is not None
            services.jobs.wait()
            result["run_s"] = time.perf_counter() - began
        run = services.theme_store.runs(1)[0]
        assert run.status == "done", run.error
        result["run_peak_mib"] = (rss.peak - rss.base) / 2**20
        key, theme = pages(client, services, repeat, result)
        if shots:
            from tests.service.helpers import live_server

            with live_server(app) as base:
                result["shots"] = screenshots(base, key, theme, "c7")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comments", type=int, default=100_000)
    parser.add_argument("--model", default="sample")
    parser.add_argument("--models-dir", type=Path, default=REPO / "artifacts" / "models")
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
                        help="a database the benchmark may fill and empty ('' to skip PostgreSQL)")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--screenshots", action="store_true", help="photograph each page into artifacts/screenshots/")
    parser.add_argument("--existing", action="append", default=[], metavar="NAME=URL",
                        help="time the pages only, on a store an earlier run filled (repeatable); writes the "
                             "'workspace pages' section")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    os.environ.setdefault("BAZKHORD_ENCODER", "none")
    if args.existing:
        return pages_only(args)
    from sqlalchemy import text

    from bazkhord.model.folder import load_model
    from bazkhord.service.db import Base, make_engine

    loaded = load_model(args.model, args.models_dir)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bazkhord-workspace-") as tmp:
        databases = [("SQLite", f"sqlite:///{tmp}/store.db")]
        if args.postgres:
            databases.append(("PostgreSQL", args.postgres))
        for name, url in databases:
            if name == "PostgreSQL":  # an empty database: drop what an earlier run left
                engine = make_engine(url)
                Base.metadata.drop_all(engine)
                with engine.begin() as connection:
                    connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
            found = measure(url, loaded, args.comments, args.repeat, args.screenshots and name == "SQLite")
            rows.append((name, found))
            print(name, {k: v for k, v in found.items() if k != "shots"}, flush=True)
    lines = ["## Workspace", "",
             f"{args.comments:,} stored comments ({loaded.name} {loaded.version}, TF-IDF clustering); {machine()}, "
             f"{datetime.now(UTC).date().isoformat()}. Command: `python -m benchmarks.workspace --comments "
             f"{args.comments}`. Page times are server times of in-process requests (rendering included) over 4-5 "
             f"filter sets x {args.repeat}; a repeated view reuses the headline's interval and the filter lists. The "
             "run's memory is the process's resident growth during it. Target: pages p95 under 300 ms.", "",
             "| store | fill (s) | theme run (s) | run peak RSS growth (MiB) | themes | overview p50 / p95 (ms) "
             "| theme page p50 / p95 (ms) |", "|---|---|---|---|---|---|---|"]
    for name, r in rows:
        lines.append(f"| {name} | {r['fill_s']:.0f} | {r['run_s']:.0f} | {r['run_peak_mib']:.0f} | {r['themes']} | "
                     f"{r['overview'][0]:.0f} / {r['overview'][1]:.0f} | {r['theme'][0]:.0f} / {r['theme'][1]:.0f} |")
    publish(lines, BEGIN, END, not args.no_write)
    print(f"peak RSS of the whole benchmark: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return 0


def pages_only(args: argparse.Namespace) -> int:
    from bazkhord.model.folder import load_model

    loaded = load_model(args.model, args.models_dir)
    lines = ["## Workspace pages", "",
             f"Page server times only, on stores the workspace benchmark filled and analysed; {machine()}, "
             f"{datetime.now(UTC).date().isoformat()}. Command: `python -m benchmarks.workspace --existing "
             f"NAME=URL ...` (4-5 filter sets x {args.repeat}). Target: p95 under 300 ms.", "",
             "| store | comments | themes | overview p50 / p95 (ms) | theme page p50 / p95 (ms) |", "|---|---|---|---|---|"]
    for given in args.existing:
        name, _, url = given.partition("=")
        r = measure_existing(url, loaded, args.repeat)
        print(name, r, flush=True)
        lines.append(f"| {name} | {r['comments']:,} | {r['themes']} | {r['overview'][0]:.0f} / {r['overview'][1]:.0f} "
                     f"| {r['theme'][0]:.0f} / {r['theme'][1]:.0f} |")
    publish(lines, PAGES_BEGIN, PAGES_END, not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
