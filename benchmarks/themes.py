"""Theme benchmark: how well reports recover root causes a person labelled, how honest their headline is, and how
their time grows.

    python -m benchmarks.themes [--shared-data ../shared/data] [--sizes 17000 100000] [--no-write]

Causes: the first 330 negative comments of ../shared/data/snappfood/dev.jsonl, their causes labelled by hand
(data/labels/snappfood_dev_causes.jsonl: ids and labels only). The report runs on the whole dev split (1,361
comments, the labels hidden) with the sample model and with a TF-IDF model trained here on the SnappFood train split
alone (it never sees dev). Per cause: the F1 of the theme whose comments best match the comments labelled with it;
the share of labelled complaints that fall in some theme; quotes taken from comments the customer marked happy
(an upper bound on praise quoted as complaint: such comments often complain too). BERTopic (if installed) clusters
the same complaint statements, multilingual, for comparison.

Headline: the share of negative comments the report leads with, on samples of the SnappFood *test* split
re-balanced to 10, 25, 50 and 75% negative, with the model trained on the (50/50) train split; the customers' own
labels are the truth. Read once, for this figure.

Recovery (parsinlu_food): the earlier check of unsupervised discovery against labelled aspects.

Speed: the full report (statement tagging with the sample model, clustering, trends, drivers) on comments
resampled from the shared texts, each made distinct by an order number, with dates spread over six months.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from bazkhord.data.normalise import normalise, normalise_many
from bazkhord.data.readers import read_records
from bazkhord.data.record import FeedbackRecord
from bazkhord.model.folder import load_model
from bazkhord.model.themes.analysis import ThemeAnalyzer, ThemeSettings
from bazkhord.model.themes.steps import KMeansClusterer, SvdReducer, TfidfEmbedder
from benchmarks.baseline import REPO, machine, peak_rss_mb, write_section

BEGIN, END = "<!-- themes:begin -->", "<!-- themes:end -->"
SEED = 13


def best_match(gold: dict[str, set[Any]], groups: list[set[Any]]) -> dict[str, float]:
    """Per gold label, the best F1 of any found group against the items carrying that label."""
    scores = {}
    for name in sorted(gold):
        best = 0.0
        for found in groups:
            hits = len(gold[name] & found)
            if hits:
                best = max(best, 2 * hits / (len(gold[name]) + len(found)))
        scores[name] = round(best, 3)
    return scores


def best_match_f1(gold: list[set[str]], clusters: np.ndarray) -> dict[str, float]:
    by_aspect = {a: {i for i, g in enumerate(gold) if a in g} for a in {a for g in gold for a in g}}
    groups = [set(np.flatnonzero(clusters == c).tolist()) for c in set(clusters.tolist()) - {-1}]
    return best_match(by_aspect, groups)


def recovery(shared: Path) -> tuple[list[dict[str, object]], int, int]:
    records = [r for split in ("dev", "test") for r in read_records(shared / "parsinlu_food" / f"{split}.jsonl").records
               if r.aspects]
    texts = normalise_many([r.text for r in records])
    gold = [set(r.aspects or {}) for r in records]
    single = [i for i, g in enumerate(gold) if len(g) == 1]
    single_gold = [next(iter(gold[i])) for i in single]
    n_aspects = len({a for g in gold for a in g})
    vectors = SvdReducer(seed=SEED).reduce(TfidfEmbedder().embed(texts))

    rows: list[dict[str, object]] = []

    def score(name: str, labels: np.ndarray, seconds: float) -> None:
        per_aspect = best_match_f1(gold, labels)
        rows.append({
            "method": name, "clusters": len(set(labels.tolist()) - {-1}),
            "outliers": int((labels == -1).sum()),
            "ari": round(adjusted_rand_score(single_gold, labels[single]), 3),
            "nmi": round(normalized_mutual_info_score(single_gold, labels[single]), 3),
            "mean_best_f1": round(float(np.mean(list(per_aspect.values()))), 3),
            "per_aspect": per_aspect, "seconds": round(seconds, 2),
        })

    started = time.perf_counter()
    score("bazkhord: k-means, k by silhouette", KMeansClusterer(max_k=12, min_size=5, seed=SEED).cluster(vectors),
          time.perf_counter() - started)
    started = time.perf_counter()
    score(f"bazkhord: k-means, k = {n_aspects} (the number of gold aspects, for reference)",
          _kmeans_fixed(vectors, n_aspects), time.perf_counter() - started)
    try:
        from bertopic import BERTopic
        from sklearn.feature_extraction.text import CountVectorizer
        from umap import UMAP
    except ImportError:
        rows.append({"method": "BERTopic", "skipped": "the bertopic package is not installed (pip install bertopic)"})
    else:
        started = time.perf_counter()
        topic_model = BERTopic(umap_model=UMAP(n_neighbors=15, n_components=5, metric="cosine", random_state=SEED),
                               vectorizer_model=CountVectorizer(token_pattern=r"(?u)[^\s]+"), calculate_probabilities=False)
        topics, _ = topic_model.fit_transform(texts, embeddings=vectors)
        score("BERTopic (same embeddings; UMAP + HDBSCAN defaults)", np.asarray(topics), time.perf_counter() - started)
    return rows, len(records), len(single)


CAUSES_FILE = REPO / "data" / "labels" / "snappfood_dev_causes.jsonl"


def snappfood_model(shared: Path, workdir: Path) -> Any:
    """A TF-IDF model of the SnappFood train split alone (no refit on dev, which the causes come from)."""
    from bazkhord.training.config import load_config
    from bazkhord.training.train import train

    config = load_config(REPO / "training/configs/sample.toml", [
        'model.name="snappfood-train"', f"data.train={json.dumps(str(shared / 'snappfood' / 'train.jsonl'))}",
        f"data.dev={json.dumps(str(shared / 'snappfood' / 'dev.jsonl'))}", 'data.taxonomy=""', "data.refit_on_dev=false",
        f"output.models_dir={json.dumps(str(workdir))}"])
    return load_model(train(config).folder)


def cause_scores(labels: dict[str, set[str]], members: dict[str, set[str]]) -> dict[str, float]:
    """Per cause, the best F1 of any theme's comments against the comments labelled with that cause (over the
    labelled comments)."""
    by_cause = {c: {i for i, causes in labels.items() if c in causes} for c in {c for cs in labels.values() for c in cs}}
    return best_match(by_cause, [found & set(labels) for found in members.values()])


def causes(shared: Path, workdir: Path) -> tuple[list[dict[str, Any]], int]:
    rows_raw = [json.loads(line) for line in (shared / "snappfood" / "dev.jsonl").read_text(encoding="utf-8").splitlines()]
    labels = {(row := json.loads(line))["source_id"]: set(row["causes"])
              for line in CAUSES_FILE.read_text(encoding="utf-8").splitlines()}
    customer = {r["source_id"]: r["sentiment"] for r in rows_raw}
    records = [FeedbackRecord(text=r["text"], id=r["source_id"]) for r in rows_raw]
    complaints = {i for i, c in labels.items() if c}
    models = {"sample model": load_model("sample") if _has_sample() else None,
              "SnappFood train model": snappfood_model(shared, workdir)}
    variants: list[tuple[str, dict[str, Any]]] = [("zero-shot aspects, food delivery detected (the default)", {}),
                ("the model's own aspects only (the earlier report)", {"taxonomy": "model"}),
                ("zero-shot by the encoder's similarity (e5)", {"zero_shot": "e5"})]
    rows: list[dict[str, Any]] = []
    for model_name, loaded in models.items():
        if loaded is None:
            rows.append({"model": model_name, "variant": "", "skipped": "no sample model: run `make train` or "
                         "`bazkhord train --config training/configs/sample.toml`"})
            continue
        for variant, options in variants:
            if model_name == "sample model" and options.get("zero_shot") == "e5":
                continue
            started = time.perf_counter()
            analyzer = ThemeAnalyzer(loaded.tagger, ThemeSettings(period="week", **options))
            if options.get("zero_shot") == "e5" and getattr(analyzer.encoder, "name", "") != "e5":
                rows.append({"model": model_name, "variant": variant, "skipped": "no encoder folder"})
                continue
            report = analyzer.analyse(records)
            seconds = time.perf_counter() - started
            members: dict[str, set[str]] = {}
            for m in analyzer.membership_:
                members.setdefault(m.theme_id, set()).add(str(m.comment_id))
            per_cause = cause_scores(labels, members)
            covered = {c for found in members.values() for c in found}
            quotes = [q.comment_id for t in report.themes for q in [*t.quotes, *(q for s in t.subthemes for q in s.quotes)]]
            rows.append({"model": model_name, "variant": variant, "themes": len(report.themes),
                         "taxonomy": report.settings.get("taxonomy"),
                         "macro_f1": round(float(np.mean(list(per_cause.values()))), 3),
                         "per_cause": per_cause, "covered": round(len(complaints & covered) / len(complaints), 3),
                         "quotes": len(quotes), "happy_quotes": sum(1 for q in quotes if customer.get(str(q)) == "positive"),
                         "seconds": round(seconds, 1)})
            print(f"... causes: {model_name}, {variant}: macro F1 {rows[-1]['macro_f1']}", file=sys.stderr, flush=True)
    rows += bertopic_causes(records, labels, complaints, models["SnappFood train model"])
    return rows, len(labels)


def bertopic_causes(records: list[FeedbackRecord], labels: dict[str, set[str]], complaints: set[str],
                    loaded: Any) -> list[dict[str, Any]]:
    """BERTopic on the same complaint statements (the report's own, from the SnappFood model), with the encoder's
    vectors where its folder exists, language "multilingual" (its default "english" strips Persian keywords)."""
    try:
        from bertopic import BERTopic
        from sklearn.feature_extraction.text import CountVectorizer
        from umap import UMAP
    except ImportError:
        return [{"model": "BERTopic", "variant": "", "skipped": "the bertopic package is not installed "
                 "(pip install 'bazkhord[bench]')"}]
    analyzer = ThemeAnalyzer(loaded.tagger, ThemeSettings(period="week", taxonomy="model"))
    statements = analyzer.statements(records)
    analyzer.mark_complaints(statements, analyzer.comment_sentiment(records, statements))
    chosen = [st for st in statements if st.complaint]
    texts = [st.normalised for st in chosen]
    embedder: Any = analyzer.encoder
    vectors = np.asarray(embedder.embed(texts)) if getattr(embedder, "name", "") == "e5" else \
        SvdReducer(seed=SEED).reduce(TfidfEmbedder().embed(texts))
    started = time.perf_counter()
    model = BERTopic(language="multilingual", calculate_probabilities=False,
                     umap_model=UMAP(n_neighbors=15, n_components=5, metric="cosine", random_state=SEED),
                     vectorizer_model=CountVectorizer(token_pattern=r"(?u)[^\s]+"))
    topics, _ = model.fit_transform(texts, embeddings=vectors)
    members: dict[str, set[str]] = {}
    for st, topic in zip(chosen, topics, strict=True):
        if topic != -1:
            members.setdefault(str(topic), set()).add(str(records[st.comment].id))
    per_cause = cause_scores(labels, members)
    covered = {c for found in members.values() for c in found}
    return [{"model": "BERTopic", "variant": f"on the report's complaint statements, {getattr(embedder, 'name', 'tfidf')} "
             "vectors, language multilingual", "themes": len(members), "taxonomy": "—",
             "macro_f1": round(float(np.mean(list(per_cause.values()))), 3), "per_cause": per_cause,
             "covered": round(len(complaints & covered) / len(complaints), 3), "quotes": 0, "happy_quotes": 0,
             "seconds": round(time.perf_counter() - started, 1)}]


def _has_sample() -> bool:
    try:
        load_model("sample")
    except Exception:
        return False
    return True


def headline(shared: Path, workdir: Path) -> list[dict[str, Any]]:
    loaded = snappfood_model(shared, workdir)
    rows_raw = [json.loads(line) for line in (shared / "snappfood" / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    negative = [r for r in rows_raw if r["sentiment"] == "negative"]
    positive = [r for r in rows_raw if r["sentiment"] == "positive"]
    rng = random.Random(SEED)
    out = []
    for share in (0.10, 0.25, 0.50, 0.75):
        n = 2000
        k = round(n * share)
        sample = rng.sample(negative, k) + rng.sample(positive, n - k)
        records = [FeedbackRecord(text=r["text"], id=r["source_id"]) for r in sample]
        t = ThemeAnalyzer(loaded.tagger, ThemeSettings(period="week"), encoder="none").analyse(records).totals
        out.append({"true": share, "counted": t.negative_share, "adjusted": t.negative_share_adjusted,
                    "complaining": t.complaint_share, "headline": t.headline})
    return out


def _kmeans_fixed(vectors: np.ndarray, k: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    return KMeans(k, n_init=5, random_state=SEED).fit_predict(vectors)


def resampled(shared: Path, n: int) -> list[FeedbackRecord]:
    texts = [r.text for name in ("snappfood", "deepsentipers", "parsinlu_food", "parsinlu_movie")
             if (shared / name / "train.jsonl").exists() for r in read_records(shared / name / "train.jsonl").records]
    rng = random.Random(SEED)
    start = datetime(2026, 5, 1)
    # An order number makes every comment distinct, so the normaliser's memo cannot make a resampled text free.
    return [FeedbackRecord(text=f"{rng.choice(texts)} (سفارش {100000 + i})", id=str(i),
                           created_at=start + timedelta(minutes=rng.randrange(184 * 1440)),
                           channel=rng.choice(["app_review", "support_chat", "survey"]))
            for i in range(n)]


def speed(shared: Path, sizes: list[int]) -> list[dict[str, float]]:
    """Each size in a fresh process, so its peak memory is that report's (the sample model and the comments
    included), not what earlier parts of the benchmark loaded."""
    from benchmarks.transformer import in_process

    rows = []
    for n in sizes:
        rows.append(in_process(step_speed, str(shared), n))
        print(f"... {n} comments: {rows[-1]['seconds']:.0f} s, peak {rows[-1]['peak_mib']} MiB", file=sys.stderr, flush=True)
    return rows


def step_speed(shared: str, n: int) -> dict[str, float]:
    model = load_model("sample")
    records = resampled(Path(shared), n)
    normalise.cache_clear()
    started = time.perf_counter()
    report = ThemeAnalyzer(model.tagger, ThemeSettings(period="week")).analyse(records)
    seconds = time.perf_counter() - started
    return {"comments": n, "statements": report.totals.statements, "themes": len(report.themes),
            "seconds": round(seconds, 1), "per_1k": round(1000 * seconds / n, 2), "peak_mib": round(peak_rss_mb())}


def _per_aspect(row: dict[str, object]) -> dict[str, float]:
    per = row.get("per_aspect")
    return per if isinstance(per, dict) else {}


def render(recovery_rows: list[dict[str, object]], n_all: int, n_single: int, speed_rows: list[dict[str, float]],
           skipped: list[str], cause_rows: list[dict[str, Any]] | None = None, n_labelled: int = 0,
           headline_rows: list[dict[str, Any]] | None = None) -> str:
    lines = [BEGIN, "## Themes", "",
             f"Measured {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} on {machine()}.",
             "Written by `python -m benchmarks.themes`.", ""]
    if cause_rows:
        names = sorted({c for r in cause_rows for c in r.get("per_cause", {})})
        lines += [f"**Root causes** of real complaints: {n_labelled} negative SnappFood dev comments labelled by hand "
                  "(data/labels/snappfood_dev_causes.jsonl); the report runs on all 1,361 dev comments, labels hidden. "
                  "Per cause, the F1 of the best-matching theme; `covered`: labelled complaints in some theme; `happy "
                  "quotes`: quotes from comments the customer marked happy (an upper bound on praise quoted as "
                  "complaint). The seeds, the zero-shot threshold and `strong_negative` were chosen on these same "
                  "labels, so the figures are optimistic for other data. Where the encoder folder exists, complaints "
                  "are clustered on its vectors (the default).", "",
                  "| model | report | themes | macro F1 | " + " | ".join(names) + " | covered | happy quotes | s |",
                  "|---|---|---:|---:|" + "---:|" * len(names) + "---:|---:|---:|"]
        for r in cause_rows:
            if "skipped" in r:
                lines.append(f"| {r['model']} | {r['variant']} | skipped: {r['skipped']} |")
                continue
            per = r["per_cause"]
            lines.append(f"| {r['model']} | {r['variant']} | {r['themes']} | **{r['macro_f1']}** | "
                         + " | ".join(str(per.get(n, "")) for n in names)
                         + f" | {100 * r['covered']:.0f}% | {r['happy_quotes']} of {r['quotes']} | {r['seconds']} |")
        lines.append("")
    if headline_rows:
        lines += ["**Headline** negative share on SnappFood test samples of 2,000 comments re-balanced by the customers' "
                  "labels, the report of a TF-IDF model trained on the 50/50 train split (target: within 3 points):", "",
                  "| true share | counted (classify and count) | adjusted (label shift) | within 3 points | "
                  "comments with a complaint |", "|---:|---:|---:|---|---:|"]
        for r in headline_rows:
            adjusted = r["adjusted"]
            ok = "yes" if adjusted is not None and abs(adjusted - r["true"]) <= 0.03 else "no"
            lines.append(f"| {100 * r['true']:.0f}% | {100 * r['counted']:.1f}% | "
                         f"{'' if adjusted is None else f'{100 * adjusted:.1f}%'} | {ok} | {100 * r['complaining']:.1f}% |")
        lines.append("")
    if recovery_rows:
        aspects = sorted({a for r in recovery_rows for a in _per_aspect(r)})
        lines += [f"**Theme recovery** on parsinlu_food dev + test: {n_all} comments naming an aspect ({n_single} "
                  "name exactly one: ARI and NMI use those). Discovery sees the comments only; the 6 gold aspects "
                  "are hidden. Best-match F1 per aspect: the cluster that best matches the comments naming it.", "",
                  "| method | clusters | outliers | ARI | NMI | mean best-match F1 | " + " | ".join(aspects) + " | s |",
                  "|---|---:|---:|---:|---:|---:|" + "---:|" * len(aspects) + "---:|"]
        for r in recovery_rows:
            if "skipped" in r:
                lines.append(f"| {r['method']} | skipped: {r['skipped']} |")
                continue
            per = _per_aspect(r)
            lines.append(f"| {r['method']} | {r['clusters']} | {r['outliers']} | {r['ari']} | {r['nmi']} | "
                         f"{r['mean_best_f1']} | " + " | ".join(str(per.get(a, "")) for a in aspects)
                         + f" | {r['seconds']} |")
    if speed_rows:
        lines += ["", "**Speed** of the whole report (statement tagging with the sample model, clustering, trends, "
                  "drivers) on comments resampled from the shared training texts, each made distinct by an order "
                  "number; each size in a fresh process, so the peak memory is that report's (targets: 17k comments "
                  "< 90 s, 100k < 5 min and < 2 GiB):", "",
                  "| comments | statements | themes | seconds | seconds per 1k comments | peak memory MiB |",
                  "|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['comments']} | {r['statements']} | {r['themes']} | {r['seconds']} | {r['per_1k']} | "
                  f"{r['peak_mib']} |" for r in speed_rows]
    lines += [f"\nSkipped: {s}." for s in skipped]
    lines.append(END)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path,
                        default=Path(os.environ.get("BAZKHORD_SHARED_DATA", REPO.parent / "shared" / "data")))
    parser.add_argument("--sizes", type=int, nargs="*", default=[17_000, 100_000])
    parser.add_argument("--only", choices=("causes", "headline", "recovery", "speed"), nargs="*",
                        help="parts to run (default: all)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    skipped: list[str] = []
    recovery_rows: list[dict[str, object]] = []
    speed_rows: list[dict[str, float]] = []
    n_all = n_single = n_labelled = 0
    cause_rows: list[dict[str, Any]] = []
    headline_rows: list[dict[str, Any]] = []
    parts = set(args.only or ("causes", "headline", "recovery", "speed"))
    if (args.shared_data / "snappfood").is_dir() and (args.shared_data / "parsinlu_food").is_dir():
        with tempfile.TemporaryDirectory(prefix="bazkhord-themes-bench-") as tmp:
            if "causes" in parts:
                cause_rows, n_labelled = causes(args.shared_data, Path(tmp))
            if "headline" in parts:
                headline_rows = headline(args.shared_data, Path(tmp))
        if "recovery" in parts:
            recovery_rows, n_all, n_single = recovery(args.shared_data)
        if "speed" in parts:
            speed_rows = speed(args.shared_data, args.sizes)
    else:
        skipped.append(f"{args.shared_data} is absent: the benchmark needs the shared texts")
    section = render(recovery_rows, n_all, n_single, speed_rows, skipped, cause_rows, n_labelled, headline_rows)
    print(section)
    if not args.no_write:
        text_file = REPO / "docs" / "BENCHMARKS.md"
        write_section(section, text_file, BEGIN, END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
