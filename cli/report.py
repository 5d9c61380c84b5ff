"""`bazkhord report`: root-cause themes of a file of comments (or of a tag-batch folder) as JSON, CSV and HTML."""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bazkhord.cli.common import COLUMNS_HELP, MODELS_DIR, columns
from bazkhord.data.errors import ConfigError

if TYPE_CHECKING:
    from bazkhord.data.taxonomy import Taxonomy
    from bazkhord.model.themes.analysis import ThemeSettings
    from bazkhord.model.themes.codebook import Curator
    from bazkhord.model.themes.report import ThemeReport


def cmd_report(args: argparse.Namespace) -> int:
    from bazkhord.cli.progress import Display
    from bazkhord.data.readers import read_records
    from bazkhord.model.folder import load_model
    from bazkhord.model.themes.analysis import ThemeAnalyzer, ThemeSettings
    from bazkhord.service.theme_report import write_report
    from bazkhord.service.themestore import settle

    try:
        settings = ThemeSettings(period=args.period, seed=args.seed, min_theme_size=args.min_theme_size,
                                 taxonomy=args.taxonomy, max_cluster_statements=args.max_cluster_statements,
                                 calendar=args.calendar)
    except ValueError as error:
        raise ConfigError(f"report settings: {error}") from None
    if args.tagged is not None:
        return report_tagged(args, settings)
    if args.engine != "local" or args.address:
        raise ConfigError("--engine and --address apply to --tagged: `report --input` tags and clusters here")
    loaded = load_model(args.model, args.models_dir)
    read = read_records(args.input, columns=columns(args), max_bad_fraction=args.max_bad_fraction)
    print(read.summary())
    with Display("report", args.quiet) as display:
        display.phase(f"themes of {len(read.records)} comments with {loaded.name} {loaded.version}")
        curator, accepted = codebook(args.database_url)
        if accepted is not None and args.taxonomy == "auto":  # the causes the store's analysts accepted
            settings = replace(settings, codebook=accepted)
        analyzer = ThemeAnalyzer(loaded.tagger, settings, curator=curator)
        report = analyzer.analyse(read.records, display)
        membership = analyzer.membership_
        if curator is not None:
            report = settle(report, {}, {})
            shown = {t.id for t in report.themes}  # a theme the codebook hides is left out of the files too
            membership = [m for m in membership if m.theme_id in shown]
        display.phase("writing the report")
        written = write_report(report, args.out, membership)
    print_report(report, written)
    return 0


def codebook(database_url: str | None) -> tuple[Curator | None, Taxonomy | None]:
    """The codebook of a store, where one is named: the report then names and groups themes as the workspace does,
    and assigns comments to the causes its analysts accepted (where they did)."""
    if database_url is None:
        return None, None
    from bazkhord.service.db import make_engine, upgrade
    from bazkhord.service.themestore import ThemeStore

    engine = make_engine(database_url)
    upgrade(engine)
    store = ThemeStore(engine)
    return store.curator(), store.domain_codebook()[0]


def report_tagged(args: argparse.Namespace, settings: ThemeSettings) -> int:
    """`report --tagged`: the themes of a tag-batch --statements folder; the tagging is done, so only the
    clustering (on samples, the rest assigned locally or as Ray tasks) and the statistics run here."""
    from bazkhord.cli.progress import Display
    from bazkhord.model.folder import load_model
    from bazkhord.model.themes.analysis import ThemeAnalyzer
    from bazkhord.model.themes.sampling import map_locally
    from bazkhord.service.batch import import_ray, ray_mapper, ray_session, read_tagged
    from bazkhord.service.theme_report import write_report

    if args.columns:
        raise ConfigError("--tagged reads a tag-batch folder: its --columns belong to that tag-batch run")
    ray = import_ray() if args.engine == "ray" else None
    with Display("report", args.quiet) as display:
        display.phase(f"reading {args.tagged}")
        job, tagged = read_tagged(args.tagged, display)
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


def register(commands: Any) -> None:
    report = commands.add_parser("report", help="root-cause themes of a file of comments: JSON, CSV and HTML")
    given = report.add_mutually_exclusive_group(required=True)
    given.add_argument("--input", help="comments (.jsonl, .csv, .parquet, dataset folder)")
    given.add_argument("--tagged", type=Path, help="the --out folder of `bazkhord tag-batch --statements`: the comments "
                                                   "are tagged already (on Ray, say); only the themes are found here")
    report.add_argument("--out", required=True, type=Path, help="folder for report.json, *.csv, report.html")
    report.add_argument("--period", choices=("day", "week", "month"), default="week", help="trend period")
    report.add_argument("--calendar", choices=("jalali", "gregorian"), default="jalali",
                        help="periods cut on Solar Hijri weeks (from Saturday) and months, or Gregorian ones; the "
                             "page and trends.csv read in it, with the Gregorian first day beside")
    report.add_argument("--database-url", help="a bazkhord store whose codebook (the workspace's theme names, merges, "
                                               "splits, hidden themes) this report applies")
    report.add_argument("--model", help="tagging model (name, name@version or folder); default: the model trained "
                                        "last, or with --tagged the model that tagged the folder")
    report.add_argument("--seed", type=int, default=13)
    report.add_argument("--min-theme-size", type=int, default=8, help="negative statements a theme needs")
    report.add_argument("--taxonomy", default="auto",
                        help="aspects of the themes: auto (the shipped taxonomy that fits the complaints, else causes "
                             "discovered from them), discover, model (the model's own), a shipped name (ecommerce, "
                             "food_delivery) or a taxonomy file (such as the codebook_draft.toml a discovery wrote)")
    report.add_argument("--columns", help=COLUMNS_HELP)
    report.add_argument("--max-bad-fraction", type=float, default=0.1)
    report.add_argument("--max-cluster-statements", type=int, default=20_000,
                        help="a theme with more statements is clustered on a sample this large, the rest assigned")
    report.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="with --tagged: where statements outside the clustered samples are assigned")
    report.add_argument("--address", help="with --engine ray: join this Ray cluster; else a local one starts")
    report.add_argument("--cpus", type=int, help="CPUs of the local Ray instance (default: all)")
    report.add_argument("--models-dir", **MODELS_DIR)
    report.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    report.set_defaults(run=cmd_report)
