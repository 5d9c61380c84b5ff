"""Theme benchmark: how well discovery recovers known aspects, beside BERTopic, and how its time grows.

    python -m evaluation.benchmarks.themes [--shared-data ../shared/data] [--sizes 10000 100000] [--no-write]

Recovery: the comments of ../shared/data/parsinlu_food (dev + test) that name at least one aspect; their gold
aspects are the hidden truth. Discovery runs on the comments with no taxonomy (embed -> reduce -> cluster).
Adjusted Rand and NMI are computed on the comments with exactly one gold aspect; each aspect's best-match F1
(the cluster that best matches the comments naming it) on all of them. BERTopic (the `bertopic` package, if
installed) clusters the same embeddings with its defaults (UMAP + HDBSCAN).

Speed: the full report (statement tagging with the sample model, clustering, trends, drivers) on comments
resampled from the shared texts, each made distinct by an order number, with dates spread over six months.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from data.normalise import normalise, normalise_many
from data.readers import read_records
from data.record import FeedbackRecord
from evaluation.benchmarks.baseline import REPO, machine, peak_rss_mb, write_section
from model.folder import load_model
from model.themes.analysis import ThemeAnalyzer, ThemeSettings
from model.themes.steps import KMeansClusterer, SvdReducer, TfidfEmbedder

BEGIN, END = "<!-- themes:begin -->", "<!-- themes:end -->"
SEED = 13


def best_match_f1(gold: list[set[str]], clusters: np.ndarray) -> dict[str, float]:
    scores = {}
    for aspect in sorted({a for g in gold for a in g}):
        members = {i for i, g in enumerate(gold) if aspect in g}
        best = 0.0
        for cluster in set(clusters.tolist()) - {-1}:
            found = set(np.flatnonzero(clusters == cluster).tolist())
            hits = len(members & found)
            if hits:
                best = max(best, 2 * hits / (len(members) + len(found)))
        scores[aspect] = round(best, 3)
    return scores


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


def _kmeans_fixed(vectors: np.ndarray, k: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    return KMeans(k, n_init=5, random_state=SEED).fit_predict(vectors)


def resampled(shared: Path, n: int) -> list[FeedbackRecord]:
    texts = [r.text for name in ("deepsentipers", "parsinlu_food", "parsinlu_movie")
             for r in read_records(shared / name / "train.jsonl").records]
    rng = random.Random(SEED)
    start = datetime(2026, 5, 1)
    # An order number makes every comment distinct, so the normaliser's memo cannot make a resampled text free.
    return [FeedbackRecord(text=f"{rng.choice(texts)} (سفارش {100000 + i})", id=str(i),
                           created_at=start + timedelta(minutes=rng.randrange(184 * 1440)),
                           channel=rng.choice(["app_review", "support_chat", "survey"]))
            for i in range(n)]


def speed(shared: Path, sizes: list[int]) -> list[dict[str, float]]:
    model = load_model("sample")
    rows = []
    for n in sizes:
        records = resampled(shared, n)
        normalise.cache_clear()
        started = time.perf_counter()
        report = ThemeAnalyzer(model.tagger, ThemeSettings(period="week")).analyse(records)
        seconds = time.perf_counter() - started
        rows.append({"comments": n, "statements": report.totals.statements, "themes": len(report.themes),
                     "seconds": round(seconds, 1), "per_1k": round(1000 * seconds / n, 2), "peak_mib": round(peak_rss_mb())})
        print(f"... {n} comments: {seconds:.0f} s", file=sys.stderr, flush=True)
    return rows


def _per_aspect(row: dict[str, object]) -> dict[str, float]:
    per = row.get("per_aspect")
    return per if isinstance(per, dict) else {}


def render(recovery_rows: list[dict[str, object]], n_all: int, n_single: int, speed_rows: list[dict[str, float]],
           skipped: list[str]) -> str:
    lines = [BEGIN, "## Themes", "",
             f"Measured {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} on {machine()}.",
             "Written by `python -m evaluation.benchmarks.themes`.", ""]
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
                  "number:", "",
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
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    skipped: list[str] = []
    recovery_rows: list[dict[str, object]] = []
    speed_rows: list[dict[str, float]] = []
    n_all = n_single = 0
    if (args.shared_data / "parsinlu_food").is_dir():
        recovery_rows, n_all, n_single = recovery(args.shared_data)
        speed_rows = speed(args.shared_data, args.sizes)
    else:
        skipped.append(f"{args.shared_data} is absent: recovery and speed need the shared texts")
    section = render(recovery_rows, n_all, n_single, speed_rows, skipped)
    print(section)
    if not args.no_write:
        text_file = REPO / "docs" / "BENCHMARKS.md"
        write_section(section, text_file, BEGIN, END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
