"""Service benchmark over HTTP on loopback: the real server (`bazkhord serve`, its own process, JSON logs on, a
SQLite store) and a load generator in another process. Closed loop: each client sends its next request when the
previous one is answered. Every request carries a distinct comment (a sample comment and a counter), so the
normaliser's memo cannot flatter the figures.

    python -m benchmarks.service_http [--requests 2000] [--seconds 20] [--no-write]
    python -m benchmarks.service_http --model artifacts/models/sample-e5 --latency-only

`--model` serves another model folder (name or folder); `--latency-only` runs just one comment a request at 1 and 16
clients, and writes its own section (one per model kind), leaving the baseline's full table alone.

Scenarios: one comment and 32 comments a request, at 1, 16 and 64 clients; at 16 clients, for comparison,
micro-batching off (a batch of one text) and the model in a thread of the server instead of its own process;
then overload: a key over its rate limit (429), and a
queue too small for the offered load (503). Targets (issue 5): p99 under 50 ms for one comment at 16 clients,
and no errors other than the deliberate 429/503.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.baseline import BENCHMARKS_MD, REPO, machine, write_section

BEGIN, END = "<!-- service:begin -->", "<!-- service:end -->"
SAMPLE_TEST = REPO / "data" / "samples" / "feedback_test.jsonl"
OVERLOAD_SECONDS = 5  # an overload scenario sends as fast as it is answered, for this long


@dataclass
class Result:
    scenario: str
    clients: int
    per_request: int
    requests: int
    seconds: float
    statuses: dict[int, int]
    transport_errors: int
    latencies_ms: list[float] = field(repr=False)

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


# -- the load generator (runs in its own process) ---------------------------------------------------------------
# Plain HTTP/1.1 keep-alive over asyncio streams: a general client (httpx) spends more CPU per request than the
# server at 64 connections, and on two cores it would measure itself.
class Connection:
    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port = host, port
        self.head = (f"POST /v1/tag HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
                     "Content-Type: application/json\r\nContent-Length: ")
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> int:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(f"{self.head}{len(body)}\r\n\r\n".encode() + body)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        close = False
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


async def _load(url: str, key: str, texts: list[str], clients: int, per_request: int, max_requests: int,
                max_seconds: float) -> dict[str, Any]:
    host, port = url.removeprefix("http://").split(":")
    counter = itertools.count()
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors = 0
    deadline = time.perf_counter() + max_seconds

    async def worker() -> None:
        nonlocal errors
        connection = Connection(host, int(port), key)
        while True:
            i = next(counter)
            if i >= max_requests or time.perf_counter() > deadline:
                return
            if per_request == 1:
                body: dict[str, Any] = {"text": f"{texts[i % len(texts)]} {i}"}
            else:
                body = {"items": [{"text": f"{texts[(i * per_request + j) % len(texts)]} {i}"}
                                  for j in range(per_request)]}
            payload = json.dumps(body, ensure_ascii=False).encode()
            started = time.perf_counter()
            try:
                status = await connection.post(payload)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors += 1
                connection = Connection(host, int(port), key)
                continue
            if status == 200:
                latencies.append(1000 * (time.perf_counter() - started))
            statuses[status] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return {"seconds": time.perf_counter() - started, "statuses": dict(statuses), "errors": errors,
            "latencies": latencies}


def run_load(url: str, key: str, texts: list[str], clients: int, per_request: int, max_requests: int,
             max_seconds: float) -> dict[str, Any]:
    return asyncio.run(_load(url, key, texts, clients, per_request, max_requests, max_seconds))


# -- the server ------------------------------------------------------------------------------------------------
class Server:
    """`bazkhord serve` in a process of its own (also used by tests/service/test_restart.py)."""

    def __init__(self, model: Path, workdir: Path, port: int, database_url: str | None = None, new_session: bool = False,
                 workers: int = 1, **settings: Any) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.database_url = database_url or f"sqlite:///{workdir}/store-{port}.db"
        env = {**os.environ, "BAZKHORD_JSON_LOGS": "true", **{f"BAZKHORD_{k.upper()}": v for k, v in settings.items()}}
        self.log = (workdir / f"server-{port}.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bazkhord.cli", "serve", "--model", str(model), "--database-url", self.database_url,
             "--port", str(port), "--workers", str(workers)], cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=new_session)  # a process group of its own: a test can Ctrl-C it as a terminal would

    def key(self, name: str, rate_per_minute: int | None, scopes: str = "tag") -> str:
        from bazkhord.service.auth import KeyStore
        from bazkhord.service.db import make_engine, upgrade

        engine = make_engine(self.database_url)
        upgrade(engine)
        try:
            return KeyStore(engine).create(name, scopes, rate_per_minute).key
        finally:
            engine.dispose()

    def wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}; see {self.log.name}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the server did not become ready")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)
        self.log.close()


def descendants(pid: int) -> set[int]:
    """Every living process below `pid` (children, their children, ...), from /proc; empty where there is none."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                # The command may hold spaces and parentheses: the fields after its closing parenthesis are fixed.
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    """Those of `pids` still running (a zombie, dead but not yet reaped, counts as gone)."""
    running = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            running.add(pid)
    return running


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def sample_model(workdir: Path) -> Path:
    """The baseline model of `make run` (artifacts/models/sample), trained into workdir when absent."""
    from bazkhord.model.folder import resolve

    try:
        return resolve("sample", REPO / "artifacts" / "models")
    except Exception:
        from bazkhord.training.config import load_config
        from bazkhord.training.train import train

        config = load_config(REPO / "training/configs/sample.toml",
                             [f"output.models_dir={json.dumps(str(workdir / 'models'))}"])
        return train(config).folder


def scenario(pool: ProcessPoolExecutor, server: Server, key: str, texts: list[str], name: str, clients: int,
             per_request: int, max_requests: int, max_seconds: float, warm: bool = True) -> Result:
    if warm:  # a short warm-up at the same concurrency (connections opened, the worker busy), not counted
        pool.submit(run_load, server.url, key, texts[::-1], clients, per_request, clients * 2, 5).result()
    raw = pool.submit(run_load, server.url, key, texts, clients, per_request, max_requests, max_seconds).result()
    result = Result(name, clients, per_request, sum(raw["statuses"].values()) + raw["errors"], raw["seconds"],
                    {int(k): v for k, v in raw["statuses"].items()}, raw["errors"], raw["latencies"])
    print(f"... {name:<28} {clients:>3} clients: {result.ok / result.seconds:7.1f} ok req/s, "
          f"p50 {result.percentile(50):6.1f} ms, p99 {result.percentile(99):6.1f} ms, {result.statuses}",
          file=sys.stderr, flush=True)
    return result


@contextmanager
def serving(model: Path, workdir: Path, **settings: Any) -> Iterator[tuple[Server, str]]:
    """A ready server with `settings` and a key with no practical rate limit; stopped afterwards."""
    server = Server(model, workdir, free_port(), **settings)
    try:
        key = server.key(f"bench-{server.url.rsplit(':', 1)[1]}", rate_per_minute=10_000_000)
        server.wait_ready()
        yield server, key
    finally:
        server.stop()


def describe(model: Path) -> str:
    """What a model folder serves with, for the section: its kind and, for a transformer, its runtime and precision."""
    from bazkhord.model.folder import read_manifest
    from bazkhord.model.int8 import precision_name
    from bazkhord.model.transformer import META_FILE

    kind = read_manifest(model)["kind"]
    meta = model / META_FILE
    if not meta.exists():
        return str(kind)
    values = json.loads(meta.read_text(encoding="utf-8"))
    if values.get("backend") == "onnx" and os.environ.get("BAZKHORD_BACKEND") != "torch":
        return f"{kind}, ONNX Runtime, {precision_name(values['onnx_quantize'], values.get('onnx_int8_from_layer', 0))}"
    return f"{kind}, {precision_name(values.get('quantize', 'none'), values.get('int8_from_layer', 0))}"


def collect(max_requests: int, max_seconds: float, model_ref: str | None = None,
            latency_only: bool = False) -> tuple[list[Result], str, str]:
    """The scenarios' results, the served folder's name and version, and what it is (`describe`)."""
    from bazkhord.model.folder import resolve

    texts = [json.loads(line)["text"] for line in SAMPLE_TEST.read_text(encoding="utf-8").splitlines()]
    results: list[Result] = []
    context = get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="bazkhord-service-bench-") as tmp, \
            ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        workdir = Path(tmp)
        model = resolve(model_ref, REPO / "artifacts" / "models") if model_ref else sample_model(workdir)
        model_name, detail = f"{model.parent.name} {model.name}", describe(model)
        if latency_only:
            with serving(model, workdir, max_queue_texts="4096") as (server, key):
                for clients in (1, 16):
                    results.append(scenario(pool, server, key, texts, "1 comment", clients, 1, max_requests, max_seconds))
            return results, model_name, detail

        def run(server: Server, key: str, name: str, clients: int, per_request: int, warm: bool = True) -> None:
            requests, seconds = (max_requests, max_seconds) if warm else (20_000, OVERLOAD_SECONDS)
            results.append(scenario(pool, server, key, texts, name, clients, per_request, requests, seconds, warm))

        with serving(model, workdir, max_queue_texts="4096") as (server, key):
            for per_request, name in ((1, "1 comment"), (32, "32 comments")):
                for clients in (1, 16, 64):
                    run(server, key, name, clients, per_request)
            slow_key = server.key("over-its-limit", rate_per_minute=1_200)  # 20 a second, bursts of 120
            run(server, slow_key, "overload: rate limit", 64, 1, warm=False)
        with serving(model, workdir, max_batch_texts="1") as (server, key):
            run(server, key, "1 comment, batching off", 16, 1)
        with serving(model, workdir, model_process="false") as (server, key):
            for per_request, name in ((1, "1 comment"), (32, "32 comments")):
                run(server, key, f"{name}, model in a thread", 16, per_request)
        with serving(model, workdir, max_queue_texts="128") as (server, key):
            run(server, key, "overload: queue of 128 texts", 64, 32, warm=False)
    return results, model_name, detail


def render(results: list[Result], model_name: str, seconds: float, begin: str = BEGIN, end: str = END,
           title: str = "## Service over HTTP", command: str = "python -m benchmarks.service_http",
           model_note: str = "the baseline", model_detail: str = "") -> str:
    detail = f" ({model_detail})" if model_detail else ""
    lines = [
        begin,
        title,
        "",
        f"`{command}`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}; "
        f"server and load generator share the machine, {seconds:.0f} s in all. Model: {model_note} `{model_name}`{detail}. "
        "`bazkhord serve` (one uvicorn process, JSON logs on, SQLite store) answers `POST /v1/tag`; "
        "the load generator (plain HTTP/1.1 keep-alive on asyncio, its own process) runs closed loops, each request "
        "a distinct comment. "
        "Latency is per request, over answered (200) requests.",
        "",
        "| scenario | clients | requests | answered/s | comments/s | p50 ms | p99 ms | statuses | other errors |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in results:
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(r.statuses.items()))
        unexpected = r.transport_errors + sum(n for s, n in r.statuses.items() if s not in (200, 429, 503))
        lines.append(f"| {r.scenario} | {r.clients} | {r.requests} | {r.ok / r.seconds:.1f} | "
                     f"{r.ok * r.per_request / r.seconds:.0f} | {r.percentile(50):.1f} | {r.percentile(99):.1f} | "
                     f"{statuses} | {unexpected} |")
    target = next((r for r in results if r.scenario == "1 comment" and r.clients == 16), None)
    unexpected_total = sum(r.transport_errors + sum(n for s, n in r.statuses.items() if s not in (200, 429, 503))
                           for r in results)
    lines.append("")
    if target is not None:
        verdict = "met" if target.percentile(99) < 50 else "**not met**"
        lines.append(f"Target p99 < 50 ms for one comment at 16 clients: {target.percentile(99):.1f} ms, {verdict}. "
                     f"Errors other than the deliberate 429/503: {unexpected_total}.")
    lines.append(end)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="most requests a scenario sends")
    parser.add_argument("--seconds", type=float, default=20, help="most seconds a scenario runs")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    parser.add_argument("--model", help="model to serve (name, name@version or folder); default: make run's baseline")
    parser.add_argument("--latency-only", action="store_true", help="only one comment a request at 1 and 16 clients")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results, model_name, detail = collect(args.requests, args.seconds, args.model, args.latency_only)
    begin, end, options = BEGIN, END, {"model_detail": detail}
    if args.latency_only:
        kind = model_name.split()[0]
        begin, end = f"<!-- service-{kind}:begin -->", f"<!-- service-{kind}:end -->"
        options = {"title": f"## Service over HTTP: `{kind}`, one comment a request",
                   "command": f"python -m benchmarks.service_http --model {args.model} --latency-only",
                   "model_note": "the model folder", "model_detail": detail}
    section = render(results, model_name, time.perf_counter() - started, begin, end, **options)
    print(section)
    if not args.no_write:
        write_section(section, BENCHMARKS_MD, begin, end)
        print(f"\nwrote {BENCHMARKS_MD}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
