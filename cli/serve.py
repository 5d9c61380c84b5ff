"""`bazkhord serve`: the HTTP service on one port, in one process or several (`--workers`)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bazkhord.cli.common import DATABASE, DEFAULT_MODEL_HELP, engine, settings

log = logging.getLogger("bazkhord")

EXAMPLE = "ارسال خیلی دیر انجام شد و جعبه له شده بود ولی کیفیت خود گوشی عالیه"


def cmd_serve(args: argparse.Namespace) -> int:
    from bazkhord.service.memory import limit_arenas

    limit_arenas()  # before any thread starts: two malloc arenas keep a long-running server's memory flat
    import uvicorn

    from bazkhord.model.device import DEVICE_ENV, resolve_device
    from bazkhord.service.app import create_app
    from bazkhord.service.auth import KeyStore
    from bazkhord.service.observability import setup_json_logging
    from bazkhord.service.registry import ModelRegistry
    from bazkhord.service.server import SUPERVISOR_VARIABLE, guarded_http_protocol

    if args.device:
        os.environ[DEVICE_ENV] = args.device  # the model worker and every --workers process load with it
    device = resolve_device()  # a GPU asked for and absent: a clear error before anything starts
    config = settings(args)
    store = engine(args)
    # Load here, so a missing or broken model fails clearly before the server starts.
    registry = ModelRegistry(config.model, config.models_dir, store)
    loaded = registry.start()
    url = f"http://{args.host}:{args.port}"
    body = json.dumps({"text": EXAMPLE}, ensure_ascii=False)
    key = "$BAZKHORD_KEY"
    if args.demo_key:
        key = KeyStore(store).create(f"demo-{datetime.now(UTC):%Y%m%d-%H%M%S-%f}", "tag,ingest,report").key
    runtime = getattr(loaded.tagger, "backend", None)
    on = f" ({'ONNX Runtime' if runtime == 'onnx' else 'PyTorch'} on the {'GPU' if device == 'cuda' else 'CPU'})" \
        if runtime else ""
    print(f"serving {loaded.name} {loaded.version}{on} on {url}   (API docs: {url}/docs)\n"
          f"store: {config.database_url}\n"
          + (f"a demo key with scopes tag, ingest, report: {key}\n" if args.demo_key else
             "create a key first (bazkhord is in .venv/bin/ after make install): "
             "bazkhord keys create --name me --scopes tag,ingest,report\n")
          + f"try, in another terminal:\n"
          f"  curl -s {url}/v1/tag -H \"Authorization: Bearer {key}\" -H 'Content-Type: application/json' "
          f"-d '{body}'\n",
          flush=True)
    if config.json_logs:
        setup_json_logging(config.log_level)
    # The model thread and the event loop share the GIL; a shorter switch interval than the default 5 ms lets
    # the loop answer requests while a batch is being tagged (benchmarks/service_http.py measures it).
    sys.setswitchinterval(config.switch_interval_ms / 1000)
    common: dict[str, Any] = dict(host=args.host, port=args.port, http=guarded_http_protocol(
                                      config.header_timeout_s, config.max_header_bytes, config.max_headers),
                                  log_level=config.log_level.lower(),
                                  log_config=None if config.json_logs else uvicorn.config.LOGGING_CONFIG,
                                  access_log=False, timeout_graceful_shutdown=config.shutdown_grace_s,
                                  # Forwarded headers only from the proxies named: uvicorn would believe any local client.
                                  proxy_headers=bool(config.trusted_proxies.strip()),
                                  forwarded_allow_ips=config.trusted_proxies.strip() or None)
    if args.workers > 1:
        # Several processes on one port: each builds the app from the environment (the same settings as here) and
        # loads the model itself; they share the store, and Redis when BAZKHORD_REDIS_URL is set.
        if not config.redis_url:
            log.warning("%d workers without BAZKHORD_REDIS_URL: each keeps its own rate limits (a key gets %d times "
                        "its limit) and notices a revoked key only when its cache expires", args.workers, args.workers)
        for name, value in (("MODEL", registry.reference), ("MODELS_DIR", str(config.models_dir)),
                            ("DATABASE_URL", config.database_url), ("MIGRATE_ON_START", "false")):
            os.environ[f"BAZKHORD_{name}"] = value
        os.environ[SUPERVISOR_VARIABLE] = str(os.getpid())  # each process ends with this one (die_with_supervisor)
        del loaded, registry
        store.dispose()
        uvicorn.run("bazkhord.service.app:create_app", factory=True, workers=args.workers, **common)
    else:
        # `engine` has migrated the store already: the app need not do it again.
        app = create_app(config.model_copy(update={"migrate_on_start": False, "model": registry.reference}),
                         model=loaded, engine=store)
        uvicorn.run(app, **common)
    # Shut down cleanly: requests answered or cut after the grace period, the model worker stopped, the store's
    # connections closed, logs flushed. What is left is the interpreter freeing a loaded model object by object
    # (seconds with a transformer) and threads still computing a report nobody will receive; neither holds
    # anything to save, so the process ends here.
    store.dispose()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def register(commands: Any) -> None:
    serve = commands.add_parser("serve", help="serve the API (tagging, feedback store, reports, model registry)")
    serve.add_argument("--model", help=f"model to serve: BAZKHORD_MODEL, else {DEFAULT_MODEL_HELP}")
    serve.add_argument("--models-dir", type=Path)
    serve.add_argument("--database-url", **DATABASE)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--demo-key", action="store_true", help="create a key (tag, ingest, report) and print it")
    serve.add_argument("--device", choices=("auto", "cpu", "cuda"),
                       help="where a transformer model runs: auto (a GPU when there is one; the default, or "
                            "BAZKHORD_DEVICE), cpu, or cuda (refused where there is no GPU)")
    serve.add_argument("--workers", type=int, default=1, help="service processes on this port (each loads the model; "
                                                              "set BAZKHORD_REDIS_URL so they share rate limits)")
    serve.set_defaults(run=cmd_serve)
