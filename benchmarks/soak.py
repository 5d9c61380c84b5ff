"""Soak benchmark: minutes of mixed traffic against one real server (`bazkhord serve`, its own process, a SQLite
store), as the hardening issue asks: single comments, oversized batches (within every limit), ingestion,
summaries, theme reports, a model swap every minute, requests without a key (malformed JSON, 1.5 MB bodies) and
hostile input with one. Then the server is killed with SIGKILL and its processes are counted.

    python -m benchmarks.soak [--seconds 600] [--clients 12] [--model sample] [--workers 2 --redis-url URL
                              --database-url URL] [--no-write]

Reports answered requests a second, p50/p99 per route, the status mix, the number of 5xx (target 0), the
resident memory of the server and its worker at the start and the end (target: within 10%), and the processes
left after the SIGKILL (target 0). Then, on the same server, single comments from one key while three other keys
send maximal batches (64 x 5,000 characters) without pause: the single comments' p50/p99 (target p99 under
250 ms with the TF-IDF model). Writes the "Soak" section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.baseline import BENCHMARKS_MD, REPO, machine, write_section
from benchmarks.service_http import SAMPLE_TEST, Server, alive, descendants, free_port, sample_model

BEGIN, END = "<!-- soak:begin -->", "<!-- soak:end -->"
SWAP_EVERY_S = 60.0
# (kind, weight): what each client picks next, at random with these weights.
MIX: list[tuple[str, int]] = [("tag: one comment", 40), ("tag: 64 x 5,000 characters", 2), ("feedback: 4 comments", 15),
                              ("summary", 10), ("themes: 100 comments", 1), ("stored themes", 1),
                              ("no key: junk", 10), ("hostile input, with a key", 6), ("read back", 5)]


# -- the load (runs in its own process) ---------------------------------------------------------------------------
class Client:
    """Plain HTTP/1.1 keep-alive over asyncio streams (a general client costs more CPU than the server here)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> int:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}",
                 *(f"{k}: {v}" for k, v in (headers or {}).items())]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, close = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
            elif name.lower() == b"connection" and value.strip().lower() == b"close":
                close = True
        await self.reader.readexactly(length)
        if close:
            self.writer.close()
            self.reader = self.writer = None
        return status


def make_request(kind: str, n: int, rng: random.Random, texts: list[str], keys: dict[str, str]
                 ) -> tuple[str, str, bytes, dict[str, str], str]:
    """(method, path, body, headers, route label) of request `n` of `kind`."""
    json_headers = {"Content-Type": "application/json"}

    def auth(name: str) -> dict[str, str]:
        return {**json_headers, "Authorization": f"Bearer {keys[name]}"}

    def body(value: object) -> bytes:
        return json.dumps(value, ensure_ascii=False).encode()

    text = f"{texts[n % len(texts)]} {n}"
    now = datetime.now(UTC)
    if kind == "tag: one comment":
        return "POST", "/v1/tag", body({"text": text}), auth("tag"), kind
    if kind == "tag: 64 x 5,000 characters":
        long = (texts[n % len(texts)] + " ") * 80
        return "POST", "/v1/tag", body({"items": [{"text": long[:5_000]}] * 64}), auth("heavy"), kind
    if kind == "feedback: 4 comments":
        items = [{"client_id": f"soak-{n}-{i}", "text": f"{texts[(n + i) % len(texts)]} {n}", "channel": "app",
                  "created_at": (now - timedelta(days=rng.randrange(60))).isoformat()} for i in range(4)]
        return "POST", "/v1/feedback", body({"items": items}), auth("tag"), kind
    if kind == "summary":
        return "GET", "/v1/reports/summary?period=week", b"", auth("tag"), kind
    if kind == "themes: 100 comments":
        items = [{"text": texts[(n + i) % len(texts)], "created_at": (now - timedelta(days=i % 50)).isoformat()}
                 for i in range(100)]
        return "POST", "/v1/themes", body({"items": items, "min_theme_size": 4}), auth("tag"), kind
    if kind == "stored themes":
        return "GET", "/v1/reports/themes?period=week", b"", auth("tag"), kind
    if kind == "read back":
        return "GET", f"/v1/feedback/soak-{rng.randrange(max(1, n))}-0", b"", auth("tag"), kind
    if kind == "no key: junk":
        junk = [b'{"text": "a"', b'{"items": [' + b'{"text": "x"},' * 100_000 + b'{"text": "x"}]}', b"\xff\xfe" * 100]
        return "POST", "/v1/tag", junk[n % len(junk)], json_headers, kind
    hostile = [("POST", "/v1/tag", body({"text": "ـــ..."})),
               ("POST", "/v1/feedback", body({"items": [{"client_id": "a\u0000b", "text": "خوب"}]})),
               ("POST", "/v1/feedback", body({"items": [{"client_id": f"h{n}", "text": "خوب",
                                                          "created_at": "9999-12-31T23:59:59-14:00"}]})),
               ("GET", "/v1/reports/summary?start=2026-01-01&end=2026-12-01T00:00:00Z&channel=a%00b", b""),
               ("POST", "/v1/tag", b"[" * 5_000 + b"]" * 5_000),
               ("POST", "/v1/themes", b'{"items": [{"text": "x", "rating": NaN}]}')]
    method, path, payload = hostile[n % len(hostile)]
    return method, path, payload, auth("tag"), kind


async def _soak(url: str, keys: dict[str, str], versions: list[str], texts: list[str], clients: int,
                seconds: float) -> dict[str, Any]:
    host, port = url.removeprefix("http://").split(":")
    latencies: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, Counter[int]] = defaultdict(Counter)
    errors: Counter[str] = Counter()
    deadline = time.perf_counter() + seconds
    counter = iter(range(10**9))
    kinds, weights = zip(*MIX, strict=True)

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        client = Client(host, int(port))
        while time.perf_counter() < deadline:
            n = next(counter)
            method, path, body, headers, route = make_request(rng.choices(kinds, weights)[0], n, rng, texts, keys)
            started = time.perf_counter()
            try:
                status = await client.request(method, path, body, headers)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                # A refused body may close the connection mid-send: that is the server protecting itself.
                errors[route] += 1
                client = Client(host, int(port))
                continue
            latencies[route].append(1000 * (time.perf_counter() - started))
            statuses[route][status] += 1

    async def swapper() -> None:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {keys['admin']}"}
        turn = 0
        while time.perf_counter() + SWAP_EVERY_S < deadline:
            await asyncio.sleep(SWAP_EVERY_S)
            turn += 1
            body = json.dumps({"version": versions[turn % len(versions)]}).encode()
            started = time.perf_counter()
            # A new connection each time: the server closes one left idle past its keep-alive timeout.
            status = await Client(host, int(port)).request("POST", "/v1/models/activate", body, headers)
            latencies["model swap"].append(1000 * (time.perf_counter() - started))
            statuses["model swap"][status] += 1

    started = time.perf_counter()
    await asyncio.gather(swapper(), *(worker(seed) for seed in range(clients)))
    return {"seconds": time.perf_counter() - started, "errors": dict(errors),
            "routes": {route: {"latencies": latencies[route], "statuses": dict(statuses[route])} for route in statuses}}


def run_soak(url: str, keys: dict[str, str], versions: list[str], texts: list[str], clients: int,
             seconds: float) -> dict[str, Any]:
    return asyncio.run(_soak(url, keys, versions, texts, clients, seconds))


HEAVY_KEYS = 3


async def _fairness(url: str, keys: dict[str, str], texts: list[str], seconds: float) -> dict[str, Any]:
    """Single comments, one at a time from their own key, while HEAVY_KEYS other keys send maximal batches."""
    host, port = url.removeprefix("http://").split(":")
    deadline = time.perf_counter() + seconds
    single: list[float] = []
    statuses: Counter[int] = Counter()
    heavy_statuses: Counter[int] = Counter()

    def headers(key: str) -> dict[str, str]:
        return {"Content-Type": "application/json", "Authorization": f"Bearer {keys[key]}"}

    async def heavy(k: int) -> None:
        client = Client(host, int(port))
        n = 0
        while time.perf_counter() < deadline:
            long = (texts[(k * 101 + n) % len(texts)] + " ") * 80
            body = json.dumps({"items": [{"text": f"{n} {long}"[:5_000]}] * 64}, ensure_ascii=False).encode()
            try:
                heavy_statuses[await client.request("POST", "/v1/tag", body, headers(f"heavy{k}"))] += 1
            except (OSError, asyncio.IncompleteReadError, ValueError):
                client = Client(host, int(port))
            n += 1

    async def light() -> None:
        client = Client(host, int(port))
        await asyncio.sleep(2)  # the heavy keys' queues are full first
        n = 0
        while time.perf_counter() < deadline:
            body = json.dumps({"text": f"{texts[n % len(texts)]} {n}"}, ensure_ascii=False).encode()
            started = time.perf_counter()
            status = await client.request("POST", "/v1/tag", body, headers("tag"))
            single.append(1000 * (time.perf_counter() - started))
            statuses[status] += 1
            n += 1
            await asyncio.sleep(0.05)

    await asyncio.gather(light(), *(heavy(k) for k in range(HEAVY_KEYS)))
    return {"single": single, "statuses": dict(statuses), "heavy_statuses": dict(heavy_statuses)}


def run_fairness(url: str, keys: dict[str, str], texts: list[str], seconds: float) -> dict[str, Any]:
    return asyncio.run(_fairness(url, keys, texts, seconds))


# -- the run ------------------------------------------------------------------------------------------------------
def rss_mb(pids: set[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def collect(seconds: float, clients: int, model_ref: str | None, say: Any, workers: int = 1,
            redis_url: str | None = None, database_url: str | None = None,
            fairness_seconds: float = 60.0) -> dict[str, Any]:
    from bazkhord.model.folder import resolve

    texts = [json.loads(line)["text"] for line in SAMPLE_TEST.read_text(encoding="utf-8").splitlines()]
    with tempfile.TemporaryDirectory(prefix="bazkhord-soak-") as tmp, \
            ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        workdir = Path(tmp)
        model = resolve(model_ref, REPO / "artifacts" / "models") if model_ref else sample_model(workdir)
        served, versions = two_versions(model, workdir)
        shared: dict[str, Any] = {"redis_url": redis_url, "redis_prefix": f"soak-{time.time_ns()}"} if redis_url else {}
        server = Server(served, workdir, free_port(), database_url, workers=workers, rate_limit_burst="100000", **shared)
        try:
            run_id = time.time_ns()  # a shared database keeps the keys of earlier runs
            keys = {"tag": server.key(f"soak-tag-{run_id}", 10_000_000, "tag,ingest,report"),
                    "heavy": server.key(f"soak-heavy-{run_id}", 10_000_000, "tag"),
                    "admin": server.key(f"soak-admin-{run_id}", 10_000_000, "admin"),
                    **{f"heavy{k}": server.key(f"soak-heavy{k}-{run_id}", 10_000_000, "tag") for k in range(HEAVY_KEYS)}}
            server.wait_ready()
            # A short warm-up of every kind of request, and one activation of each version (the worker keeps the
            # two newest loaded, for an instant rollback), not counted: the start's memory is the working one.
            pool.submit(run_soak, server.url, keys, versions, texts, clients, min(20.0, seconds / 10)).result()
            import httpx

            for version in [*versions[1:], versions[0]]:
                httpx.post(f"{server.url}/v1/models/activate", json={"version": version}, timeout=120,
                           headers={"Authorization": f"Bearer {keys['admin']}"}).raise_for_status()
            processes = {server.process.pid, *descendants(server.process.pid)}
            start_mb = rss_mb(processes)
            say(f"soaking for {seconds:.0f} s with {clients} clients; server and worker {start_mb:.0f} MiB")
            samples: list[tuple[float, float, float]] = []  # (seconds in, server MiB, its children MiB)
            stop = threading.Event()

            def sample() -> None:
                began = time.monotonic()
                while not stop.wait(seconds / 10):
                    below = descendants(server.process.pid)
                    samples.append((time.monotonic() - began, rss_mb({server.process.pid}), rss_mb(below)))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            raw = pool.submit(run_soak, server.url, keys, versions, texts, clients, seconds).result()
            stop.set()
            sampler.join()
            processes = {server.process.pid, *descendants(server.process.pid)}
            end_mb = rss_mb(processes)
            say(f"single comments beside {HEAVY_KEYS} keys sending maximal batches, {fairness_seconds:.0f} s")
            fairness = pool.submit(run_fairness, server.url, keys, texts, fairness_seconds).result()
            children = descendants(server.process.pid)
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(timeout=30)
            deadline = time.monotonic() + 15
            while alive(children) and time.monotonic() < deadline:
                time.sleep(0.1)
            left = sorted(alive(children))
        finally:
            server.stop()
    return {"model": f"{model.parent.name} {model.name}", "seconds": raw["seconds"], "clients": clients,
            "workers": workers, "redis": bool(redis_url), "database": (database_url or "sqlite").split(":")[0],
            "fairness": fairness, "fairness_seconds": fairness_seconds,
            "routes": raw["routes"], "errors": raw["errors"], "start_mb": start_mb, "end_mb": end_mb,
            "processes_before_kill": len(children), "left_after_kill": left, "samples": samples}


def markers(section: str) -> tuple[str, str]:
    return (BEGIN, END) if not section else (f"<!-- soak-{section}:begin -->", f"<!-- soak-{section}:end -->")


def render(result: dict[str, Any], seconds: float, section: str = "") -> str:
    begin, end = markers(section)
    title = "## Soak: mixed traffic against one server" + (f" ({section})" if section else "")
    lines = [begin, title, "",
             f"`python -m benchmarks.soak --seconds {result['seconds']:.0f}"
             + (f" --workers {result['workers']}" if result.get("workers", 1) > 1 else "")
             + (" --redis-url ..." if result.get("redis") else "")
             + (f" --database-url {result['database']}://..." if result.get("database", "sqlite") != "sqlite" else "")
             + f"`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}; {seconds / 60:.1f} min in all. "
             + (f"`serve --workers {result['workers']}`" if result.get("workers", 1) > 1 else "One server process")
             + (", sharing limits through Redis" if result.get("redis") else "")
             + f", store {result.get('database', 'sqlite')}. Model: "
             f"`{result['model']}`, served as two versions swapped every {SWAP_EVERY_S:.0f} s. {result['clients']} "
             "closed-loop clients (plain HTTP/1.1 keep-alive, their own process, sharing the 2 cores with the "
             "server) pick each request at random: " + ", ".join(f"{k} ({w})" for k, w in MIX) + " (weights). "
             "Latency is per answered request, whatever its status.", "",
             "| route | requests | answered/s | p50 ms | p99 ms | statuses |", "|---|---:|---:|---:|---:|---|"]
    total_5xx = 0
    for route, data in sorted(result["routes"].items()):
        statuses = {int(k): v for k, v in data["statuses"].items()}
        total_5xx += sum(v for k, v in statuses.items() if k >= 500 and k != 503)
        count = sum(statuses.values())
        p50, p99 = (np.percentile(data["latencies"], q) if data["latencies"] else float("nan") for q in (50, 99))
        mix = ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))
        lines.append(f"| {route} | {count} | {count / result['seconds']:.1f} | {p50:.1f} | {p99:.1f} | {mix} |")
    errors = sum(result["errors"].values())
    change = 100 * (result["end_mb"] - result["start_mb"]) / max(result["start_mb"], 1)
    shed = sum(v for data in result["routes"].values() for k, v in data["statuses"].items() if int(k) == 503)
    lines += ["",
              f"- 5xx other than the deliberate 503 (shed load): **{total_5xx}** (target 0); 503: {shed}; connections "
              f"the server closed on a refused body: {errors}",
              f"- resident memory of the server and its worker: {result['start_mb']:.0f} MiB after the warm-up, "
              f"{result['end_mb']:.0f} MiB at the end ({change:+.1f}%; target within 10%: "
              f"{'met' if abs(change) <= 10 else 'missed'}); along the way (minute: server + worker MiB): "
              + ", ".join(f"{t / 60:.0f}: {a:.0f} + {b:.0f}" for t, a, b in result.get("samples", [])),
              f"- processes of the server before SIGKILL: {result['processes_before_kill']} below it; left 15 s after: "
              f"**{len(result['left_after_kill'])}** (target 0)"]
    fair = result.get("fairness")
    if fair and fair["single"]:
        p50, p99 = (np.percentile(fair["single"], q) for q in (50, 99))
        lines.append(f"- single comments from one key while {HEAVY_KEYS} other keys send 64 x 5,000 characters without "
                     f"pause ({result['fairness_seconds']:.0f} s, before the SIGKILL): {len(fair['single'])} answered, "
                     f"p50 **{p50:.1f} ms**, p99 **{p99:.1f} ms** (target p99 under 250 ms with the TF-IDF model); "
                     f"statuses {fair['statuses']}; the heavy keys' statuses {fair['heavy_statuses']}")
    lines.append(end)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600, help="how long the mixed traffic runs")
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument("--model", help="model to serve (name, name@version or folder); default: make run's baseline")
    parser.add_argument("--workers", type=int, default=1, help="serve --workers N")
    parser.add_argument("--redis-url", help="share limits through this Redis (BAZKHORD_REDIS_URL)")
    parser.add_argument("--database-url", help="the store (default: a SQLite file in a temporary folder)")
    parser.add_argument("--fairness-seconds", type=float, default=60.0,
                        help="how long single comments are timed beside three keys sending maximal batches")
    parser.add_argument("--section", default="", help="write a section of this name beside the default one")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = collect(args.seconds, args.clients, args.model, lambda m: print(f"... {m}", file=sys.stderr, flush=True),
                     args.workers, args.redis_url, args.database_url, args.fairness_seconds)
    section = render(result, time.perf_counter() - started, args.section)
    print(section)
    if not args.no_write:
        write_section(section, BENCHMARKS_MD, *markers(args.section))
        print(f"\nwrote {BENCHMARKS_MD}", file=sys.stderr)
    return 0


def two_versions(model: Path, workdir: Path) -> tuple[Path, list[str]]:
    """A models folder with the model as two versions (the same weights under two names), to swap between."""
    name_dir = workdir / "served" / model.parent.name
    first = name_dir / model.name
    shutil.copytree(model, first)
    second = name_dir / f"{model.name}-b"
    shutil.copytree(model, second)
    manifest = json.loads((second / "manifest.json").read_text(encoding="utf-8"))
    manifest["version"] = second.name
    (second / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (name_dir / "LATEST").write_text(first.name, encoding="utf-8")
    return first, [first.name, second.name]


if __name__ == "__main__":
    sys.exit(main())
