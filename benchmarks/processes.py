"""Shared rate limit benchmark: `bazkhord serve --workers 2` behind one port with Redis, one key hammered by
several client threads for a while; the answers let through against what the key's limit allows.

A key of `rate` requests a minute with a burst of `burst` may get `burst + rate * seconds / 60` requests in
`seconds`; with each process keeping its own buckets it would get about twice that. Writes the "processes"
section of docs/BENCHMARKS.md.

    python -m benchmarks.processes [--seconds 30] [--rate 600] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.baseline import REPO, machine, publish
from benchmarks.service_http import Server, free_port

BEGIN, END = "<!-- processes:begin -->", "<!-- processes:end -->"


def hammer(url: str, key: str, seconds: float, threads: int) -> tuple[int, int, set[str]]:
    """(answered 200, answered 429, process labels seen) of `threads` clients posting for `seconds`."""
    import httpx

    counts = {"ok": 0, "limited": 0}
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client() -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            while time.monotonic() < stop:
                status = http.post("/v1/tag", json={"text": "پیک دیر اومد"}).status_code
                with lock:
                    counts["ok" if status == 200 else "limited"] += status in (200, 429)

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    labels = set()
    for _ in range(20):
        text = httpx.get(f"{url}/metrics", timeout=5).text
        labels.add(text.split('bazkhord_model_info{process="', 1)[1].split('"', 1)[0])
    return counts["ok"], counts["limited"], labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "artifacts" / "models" / "sample"))
    parser.add_argument("--redis-url", default=os.environ.get("BAZKHORD_REDIS_URL", "redis://127.0.0.1:6379/15"))
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=int, default=600, help="the key's requests a minute")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    burst = 120  # the service's default rate_limit_burst; a key's burst is the smaller of it and its rate
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    rows = []
    with tempfile.TemporaryDirectory(prefix="bazkhord-processes-") as tmp:
        for redis in (True, False):
            settings = {"redis_url": args.redis_url, "redis_prefix": prefix} if redis else {}
            server = Server(Path(args.model), Path(tmp), free_port(), workers=2, model_process="false",
                            rate_limit_burst=str(burst), **settings)
            try:
                key = server.key(f"hammer-{redis}", args.rate)
                server.wait_ready()
                time.sleep(3)  # both processes up
                ok, limited, labels = hammer(server.url, key, args.seconds, args.threads)
            finally:
                server.stop()
            allowed = min(burst, args.rate) + args.rate * args.seconds / 60
            rows.append((redis, ok, limited, len(labels), allowed))
    lines = ["## Several service processes: one rate limit", "",
             f"Measured {datetime.now(UTC):%Y-%m-%d} on {machine()} by `python -m benchmarks.processes`: "
             f"`bazkhord serve --workers 2` (one port), one key of {args.rate} requests a minute (burst "
             f"{min(burst, args.rate)}), {args.threads} client threads posting one comment each for "
             f"{args.seconds:.0f} s. *Allowed* is what the key's limit lets through in that time.", "",
             "| rate limits | processes answering | answered 200 | answered 429 | allowed | 200 / allowed |",
             "|---|---:|---:|---:|---:|---:|"]
    for redis, ok, limited, processes, allowed in rows:
        lines.append(f"| {'shared in Redis' if redis else 'per process'} | {processes} | {ok:,} | {limited:,} | "
                     f"{allowed:,.0f} | {ok / allowed:.2f} |")
    lines.append("")
    publish(lines, BEGIN, END, write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
