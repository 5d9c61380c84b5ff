"""`bazkhord` command line: train, evaluate, serve, list models, tag a few texts.

Errors bazkhord expects (bad data, bad config, bad model folder) print one clear message and exit 2;
never a stack trace.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from data.errors import BazkhordError

log = logging.getLogger("bazkhord")

EXAMPLE = "ارسال خیلی دیر انجام شد و جعبه له شده بود ولی کیفیت خود گوشی عالیه"


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("gensim", "matplotlib", "httpx"):  # hazm imports gensim, which logs every import
        logging.getLogger(noisy).setLevel(logging.WARNING)


def cmd_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

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
    steps = 5 + int(config.data.refit_on_dev)
    bar_format = "{desc}: {n}/{total} steps |{bar:20}| {elapsed} {postfix}"
    with logging_redirect_tqdm(), tqdm(total=steps, desc="train", file=sys.stderr, disable=args.quiet,
                                       bar_format=bar_format) as bar:
        def progress(message: str) -> None:
            bar.set_postfix_str(message)
            bar.update(1)

        result = train(config, progress)
        bar.n = bar.total
        bar.refresh()
    print(f"trained {config.model.name}: {result.sizes} in {result.seconds:.1f}s")
    for summary in result.summaries:
        print(f"  {summary}")
    if result.rejected:
        print(f"  {len(result.rejected)} row(s) skipped; each is listed above and in training_report.json")
    if result.metrics.get("dev"):
        refit = " (before the final refit on train + dev)" if result.metrics.get("dev_scored_before_refit") else ""
        print(f"  dev{refit}: " + ", ".join(f"{k}={v:.3f}" for k, v in result.metrics["dev"].items()))
    print(f"model folder: {result.folder}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from data.readers import ColumnMap
    from evaluation.evaluate import evaluate, format_table

    columns = ColumnMap.from_dict(json.loads(args.columns)) if args.columns else None
    result = evaluate(args.model, args.data, args.split, root=args.models_dir, columns=columns)
    info = result.metrics["model"]
    print(f"{info['name']} {info['version']} on {args.data} ({result.metrics['data']['rows']} rows, split {args.split})")
    if result.seen_in_training:
        print(f"  {result.seen_in_training} row(s) left out: the model trained on them")
    print(format_table(result.metrics))
    print(f"wrote {result.metrics_file}" + (f" and {result.confusion_png}" if result.confusion_png else ""))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from data.readers import ColumnMap, read_records
    from model.folder import load_model
    from model.themes.analysis import ThemeAnalyzer, ThemeSettings
    from service.theme_report import write_report

    loaded = load_model(args.model, args.models_dir)
    columns = ColumnMap.from_dict(json.loads(args.columns)) if args.columns else None
    read = read_records(args.input, columns=columns, max_bad_fraction=args.max_bad_fraction)
    print(read.summary())
    settings = ThemeSettings(period=args.period, seed=args.seed, min_theme_size=args.min_theme_size)
    with tqdm(total=None, desc="tagging statements", unit="stmt", file=sys.stderr, disable=args.quiet) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        report = ThemeAnalyzer(loaded.tagger, settings).analyse(read.records, progress)
    written = write_report(report, args.out)
    t = report.totals
    print(f"{t.comments} comments, {t.statements} statements, {100 * t.negative_share:.1f}% negative; "
          f"{len(report.themes)} themes")
    for rank, theme in enumerate(report.themes[:10], start=1):
        trend = theme.trend.direction if theme.trend else "no dates"
        print(f"  {rank:>2}. {theme.label} ({theme.kind}): {theme.comments} comments, "
              f"-{theme.impact.negative_share_change_pts:.2f} pts negative share if fixed, {trend}")
    for note in report.notes:
        print(f"  note: {note}")
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from model.folder import load_model
    from service.app import create_app
    from service.settings import Settings

    overrides: dict[str, object] = {}
    if args.model:
        overrides["model"] = args.model
    if args.models_dir:
        overrides["models_dir"] = args.models_dir
    settings = Settings(**overrides)  # type: ignore[arg-type]
    loaded = load_model(settings.model, settings.models_dir)  # fail here, clearly, not inside the server
    url = f"http://{args.host}:{args.port}"
    body = json.dumps({"text": EXAMPLE}, ensure_ascii=False)
    print(f"serving {loaded.name} {loaded.version} on {url}   (API docs: {url}/docs)\n"
          f"try, in another terminal:\n"
          f"  curl -s {url}/v1/tag -H 'Content-Type: application/json' -d '{body}'\n", flush=True)
    uvicorn.run(create_app(settings, model=loaded), host=args.host, port=args.port, log_level="info")
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
        metrics = ", ".join(f"{k}={v}" for k, v in row["metrics"].get("dev", {}).items())
        print(f"{row['name']:<20} {row['version']:<20} {'latest' if row['latest'] else '':<7} {metrics}")
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from model.folder import load_model

    loaded = load_model(args.model, args.models_dir)
    texts = args.texts or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    for text, tag in zip(texts, loaded.tagger.tag(texts), strict=True):
        print(json.dumps({"text": text, **asdict(tag)}, ensure_ascii=False))
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

    evaluate = commands.add_parser("evaluate", help="score a model on labelled data")
    evaluate.add_argument("model", help="model name, name@version, or folder")
    evaluate.add_argument("--data", required=True, help="labelled file (.jsonl, .csv, .parquet, dataset folder)")
    evaluate.add_argument("--split", default="test", help="name used in metrics_<split>.json")
    evaluate.add_argument("--columns", help='column map as JSON, e.g. {"text": "comment"}')
    evaluate.add_argument("--models-dir", **models_dir)  # type: ignore[arg-type]
    evaluate.set_defaults(run=cmd_evaluate)

    serve = commands.add_parser("serve", help="serve the tagging API")
    serve.add_argument("--model", help="model to serve (default: BAZKHORD_MODEL or 'sample')")
    serve.add_argument("--models-dir", type=Path)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(run=cmd_serve)

    report = commands.add_parser("report", help="root-cause themes of a file of comments: JSON, CSV and HTML")
    report.add_argument("--input", required=True, help="comments (.jsonl, .csv, .parquet, dataset folder)")
    report.add_argument("--out", required=True, type=Path, help="folder for report.json, *.csv, report.html")
    report.add_argument("--period", choices=("day", "week", "month"), default="week", help="trend period")
    report.add_argument("--model", default="sample", help="tagging model (name, name@version or folder)")
    report.add_argument("--seed", type=int, default=13)
    report.add_argument("--min-theme-size", type=int, default=8, help="negative statements a theme needs")
    report.add_argument("--columns", help='column map as JSON, e.g. {"text": "comment"}')
    report.add_argument("--max-bad-fraction", type=float, default=0.1)
    report.add_argument("--models-dir", **models_dir)  # type: ignore[arg-type]
    report.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    report.set_defaults(run=cmd_report)

    models = commands.add_parser("models", help="list model folders")
    models.add_argument("--models-dir", **models_dir)  # type: ignore[arg-type]
    models.set_defaults(run=cmd_models)

    tag = commands.add_parser("tag", help="tag texts given as arguments or on standard input (one per line)")
    tag.add_argument("model")
    tag.add_argument("texts", nargs="*")
    tag.add_argument("--models-dir", **models_dir)  # type: ignore[arg-type]
    tag.set_defaults(run=cmd_tag)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return int(args.run(args))
    except BazkhordError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
