"""Serving at the machine's limit: what this CPU's cores do on the encoder's own matrix shapes (the roofline), and
each profile (accurate: `sample-e5`; fast: `sample-distilled`) under each runtime (PyTorch at the folder's torch
precision; ONNX Runtime at the precision its training run or `bazkhord onnx` chose), for tag() alone and over HTTP,
side by side in one run; with the padding share of the length-grouped batches and the share of repeated comments.

    python -m benchmarks.serving [--accurate sample-e5] [--fast sample-distilled] [--seconds 15] [--no-write]

Make the models first: `make train` (accurate) and `make fast` (fast); a folder trained before the ONNX backend
existed gets one with `bazkhord onnx MODEL`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.baseline import REPO, machine, publish
from benchmarks.service_http import SAMPLE_TEST, scenario, serving

BEGIN, END = "<!-- serving:begin -->", "<!-- serving:end -->"
SHARED = Path(os.environ.get("BAZKHORD_SHARED_DATA", REPO.parent / "shared" / "data"))
BATCH = 16  # tag() batches: what the service's batcher gathers under load
ROUNDS = 5  # interleaved timing rounds; the best of each counts (with fewer, a neighbour's burst moved the ratios)
HTTP_ROUNDS = 3  # the same over HTTP, each round a scenario of --seconds per server and concurrency
SINGLES = 100  # comments tagged one at a time, for latency
STREAM_BATCH = 64  # a batch of a stream, for the share of repeats within one
REPEAT_ROWS = 20_000  # rows of a shared set (train, dev, test in that order) counted for repeats
GEMM_REPEATS = 20


# -- the roofline ------------------------------------------------------------------------------------------------
def layer_shapes(hidden: int, intermediate: int) -> list[tuple[int, int]]:
    """(K, N) of one encoder layer's matrix products with weights: Q, K and V, the attention output, the two FFN."""
    return [(hidden, 3 * hidden), (hidden, hidden), (hidden, intermediate), (intermediate, hidden)]


def torch_gemm_rate(rows: int, shapes: Sequence[tuple[int, int]]) -> float:
    """fp32 GFLOP/s of torch's matrix products on these shapes, `rows` token rows each (best of repeats)."""
    import torch

    pairs = [(torch.randn(rows, k), torch.randn(k, n)) for k, n in shapes]
    flops = sum(2 * rows * k * n for k, n in shapes)
    best = float("inf")
    with torch.inference_mode():
        for _ in range(GEMM_REPEATS):
            started = time.perf_counter()
            for a, b in pairs:
                torch.matmul(a, b)
            best = min(best, time.perf_counter() - started)
    return flops / best / 1e9


def ort_gemm_rate(rows: int, shapes: Sequence[tuple[int, int]], int8: bool, folder: Path) -> float:
    """GFLOP/s (GOP/s for int8) of ONNX Runtime's MatMul on these shapes: the fp32 kernel, or the dynamic int8 one
    the quantised encoder runs (per-channel weights, activations quantised per call)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from bazkhord.model.onnx_encoder import quantise, usable_cores

    rng = np.random.default_rng(0)
    nodes, inputs, outputs, weights = [], [], [], []
    for i, (k, n) in enumerate(shapes):
        inputs.append(helper.make_tensor_value_info(f"a{i}", TensorProto.FLOAT, ["rows", k]))
        outputs.append(helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, ["rows", n]))
        weights.append(numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32) * 0.05, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [f"a{i}", f"w{i}"], [f"y{i}"], name=f"/encoder/layer.0/m{i}"))
    graph = helper.make_graph(nodes, "gemms", inputs, outputs, weights)
    path = folder / "gemm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    if int8:
        quantise(path, folder / "gemm-int8.onnx")
        path = folder / "gemm-int8.onnx"
    options = ort.SessionOptions()
    options.intra_op_num_threads = usable_cores()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {f"a{i}": rng.standard_normal((rows, k)).astype(np.float32) for i, (k, _) in enumerate(shapes)}
    best = float("inf")
    for _ in range(GEMM_REPEATS):
        started = time.perf_counter()
        session.run(None, feed)
        best = min(best, time.perf_counter() - started)
    return sum(2 * rows * k * n for k, n in shapes) / best / 1e9


@dataclass
class Profile:
    name: str  # "accurate" | "fast"
    folder: Path
    layers: int
    hidden: int
    intermediate: int
    torch_precision: str
    onnx_precision: str | None  # None: the folder has no ONNX encoder
    torch_int8_from: int | None  # int8 above this many fp32 layers; None: fp32 throughout
    onnx_int8_from: int | None
    dev: dict[str, dict[str, float]] = field(default_factory=dict)


def ops_per_comment(lengths: np.ndarray, profile: Profile, group: Callable[[np.ndarray], list[np.ndarray]]
                    ) -> tuple[float, float]:
    """(matrix-product operations, attention operations) per comment, padding included, for texts of these token
    lengths tagged in the batches `group` makes."""
    h, i = profile.hidden, profile.intermediate
    dense = attention = 0.0
    for rows in group(lengths):
        width = int(lengths[rows].max())
        tokens = len(rows) * width
        dense += 2 * tokens * (4 * h * h + 2 * h * i) * profile.layers
        attention += 4 * len(rows) * width * width * h * profile.layers
    return dense / len(lengths), attention / len(lengths)


def bound(dense: float, attention: float, profile: Profile, int8_from: int | None, fp32_rate: float,
          int8_rate: float) -> float:
    """Comments/s the cores allow: dense products at the int8 rate in the int8 layers and at fp32's elsewhere,
    attention at fp32's."""
    int8_share = 0.0 if int8_from is None else (profile.layers - int8_from) / profile.layers
    seconds = dense * (1 - int8_share) / (fp32_rate * 1e9) + dense * int8_share / (int8_rate * 1e9) \
        + attention / (fp32_rate * 1e9)
    return 1.0 / seconds


# -- the data ----------------------------------------------------------------------------------------------------
def read_texts(path: Path, limit: int | None = None) -> list[str]:
    texts = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                texts.append(str(json.loads(line)["text"]))
                if limit and len(texts) >= limit:
                    break
    return texts


def repeat_shares(texts: Sequence[str]) -> tuple[float, float]:
    """(share of comments whose normalised text came earlier in their batch of STREAM_BATCH in file order, share
    whose text came earlier anywhere in the file)."""
    from bazkhord.data.normalise import DEFAULT_NORMALISER, normalise

    normalised = [normalise(t, DEFAULT_NORMALISER) for t in texts]
    within = sum(len(chunk) - len(set(chunk)) for chunk in
                 (normalised[s : s + STREAM_BATCH] for s in range(0, len(normalised), STREAM_BATCH)))
    return within / max(len(texts), 1), 1 - len(set(normalised)) / max(len(texts), 1)


def padding(lengths: np.ndarray, batch: int) -> tuple[float, float]:
    """Padding share of micro-batches of `batch` comments in arrival order: each padded to its longest (before),
    and cut into length groups (now)."""
    from bazkhord.model.network import length_groups, padding_share

    chunks = [np.arange(s, min(s + batch, len(lengths))) for s in range(0, len(lengths), batch)]
    grouped = [chunk[g] for chunk in chunks for g in length_groups(lengths[chunk], batch)]
    return padding_share(lengths, chunks), padding_share(lengths, grouped)


# -- the models --------------------------------------------------------------------------------------------------
def profile_of(name: str, reference: str) -> Profile | None:
    from bazkhord.model.folder import read_manifest, resolve
    from bazkhord.model.int8 import precision_name
    from bazkhord.model.onnx_encoder import ONNX_FILE
    from bazkhord.model.transformer import ENCODER_DIR, META_FILE

    try:
        folder = resolve(reference, REPO / "artifacts" / "models")
    except Exception as error:
        print(f"... {name} profile skipped: {error}", file=sys.stderr)
        return None
    meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    config = json.loads((folder / ENCODER_DIR / "config.json").read_text(encoding="utf-8"))
    has_onnx = (folder / ONNX_FILE).exists()

    def int8_from(quantize: str, from_layer: int) -> int | None:
        return from_layer if quantize == "int8" else None

    dev = read_manifest(folder).get("metrics", {}).get("dev_by_model", {})
    return Profile(name, folder, int(config["num_hidden_layers"]), int(config["hidden_size"]),
                   int(config["intermediate_size"]), precision_name(meta.get("quantize", "none"), meta.get("int8_from_layer", 0)),
                   precision_name(meta.get("onnx_quantize", "none"), meta.get("onnx_int8_from_layer", 0)) if has_onnx else None,
                   int8_from(meta.get("quantize", "none"), meta.get("int8_from_layer", 0)),
                   int8_from(meta.get("onnx_quantize", "none"), meta.get("onnx_int8_from_layer", 0)) if has_onnx else None,
                   dev)


def load(profile: Profile, backend: str) -> Any:
    """The profile's folder served by `backend`, as BAZKHORD_BACKEND would have it."""
    from unittest import mock

    from bazkhord.model.folder import load_model
    from bazkhord.model.onnx_encoder import BACKEND_ENV

    with mock.patch.dict(os.environ, {BACKEND_ENV: backend}):
        return load_model(profile.folder).tagger


@dataclass
class Measured:
    profile: str
    backend: str
    precision: str
    per_second: float = 0.0  # tag() in batches of BATCH
    encoder_per_second: float = 0.0  # the encoder's pass alone, same batches
    batch_dependence: float = 0.0  # share of comments tagged differently alone and in a batch
    single_p50: float = 0.0
    single_p99: float = 0.0
    test: dict[str, float] = field(default_factory=dict)
    dev: float | None = None
    http: dict[int, tuple[float, float, float]] = field(default_factory=dict)  # clients -> (comments/s, p50, p99)
    bound: float = 0.0


def time_tag(taggers: dict[tuple[str, str], Any], texts: list[str]
             ) -> dict[tuple[str, str], tuple[float, float, float, float]]:
    """tag() throughput in batches, single-comment latency, and the encoder's pass alone (tokens in, the heads' outputs
    out, no normalising, ensemble or evidence) in the same batches, of every tagger, rounds interleaved."""
    best = {key: float("inf") for key in taggers}
    encoder = {key: float("inf") for key in taggers}
    singles: dict[tuple[str, str], list[float]] = {key: [] for key in taggers}
    normalised = {key: tagger.normalise(texts) for key, tagger in taggers.items()}
    for tagger in taggers.values():
        tagger.tag(texts[:BATCH])  # warm-up
    for _ in range(ROUNDS):
        for key, tagger in taggers.items():
            started = time.perf_counter()
            for s in range(0, len(texts), BATCH):
                tagger.tag(texts[s : s + BATCH])
            best[key] = min(best[key], time.perf_counter() - started)
            started = time.perf_counter()
            for s in range(0, len(texts), BATCH):
                tagger.network_outputs(normalised[key][s : s + BATCH])
            encoder[key] = min(encoder[key], time.perf_counter() - started)
            for text in texts[:SINGLES // ROUNDS]:
                t0 = time.perf_counter()
                tagger.tag([text])
                singles[key].append(1000 * (time.perf_counter() - t0))
    return {key: (len(texts) / best[key], float(np.percentile(singles[key], 50)), float(np.percentile(singles[key], 99)),
                  len(texts) / encoder[key]) for key in taggers}


def evaluate_passes(tagger: Any, texts: list[str]) -> tuple[float, float]:
    """Seconds `bazkhord evaluate` spends tagging for its side by side: every variant tagged on its own (as before:
    one encoder pass each), and all of them from one pass (`variant_tags`, as now)."""
    started = time.perf_counter()
    for tag in tagger.variants().values():
        for s in range(0, len(texts), 256):
            tag(texts[s : s + 256])
    tagger.tag(texts)  # the saved model's own tags, a pass of its own before
    separately = time.perf_counter() - started
    started = time.perf_counter()
    for s in range(0, len(texts), 256):
        tagger.variant_tags(texts[s : s + 256])
    return separately, time.perf_counter() - started


def batch_dependence(tagger: Any, texts: list[str]) -> float:
    """The share of comments tagged differently alone and in batches of BATCH: int8 activations are quantised with a
    scale per batch, so a comment's tags can depend on the comments it shares a batch with (fp32 gives 0)."""
    from bazkhord.training.backend import changed_share

    alone = [tagger.tag([text])[0] for text in texts]
    batched = [tag for s in range(0, len(texts), BATCH) for tag in tagger.tag(texts[s : s + BATCH])]
    return changed_share(alone, batched)


def test_scores(tagger: Any, path: Path) -> dict[str, float]:
    from bazkhord.data.readers import read_records
    from bazkhord.model.metrics import headline, score_tags

    records = read_records(path).records
    tags = tagger.tag([r.text for r in records])
    return headline(score_tags(tags, [r.sentiment for r in records], [r.aspects for r in records], tagger.labels))


def dev_score(profile: Profile, backend: str) -> float | None:
    """The dev score (F1 with aspect micro-F1) the training run (or `bazkhord onnx`) recorded for what serves."""
    from bazkhord.training.backend import onnx_key
    from bazkhord.training.transformer import selection_score

    by = profile.dev
    if backend == "onnx" and profile.onnx_precision is not None:
        key = onnx_key(profile.onnx_precision)
    elif profile.torch_int8_from is None:
        key = "ensemble" if "ensemble" in by else "transformer"
    else:
        key = f"quantized_from_layer_{profile.torch_int8_from}" if profile.torch_int8_from else "quantized"
    return selection_score(by[key]) if key in by else None


# -- the run -----------------------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> list[str]:
    import torch

    from bazkhord.model.network import encode, length_groups
    from bazkhord.model.onnx_encoder import usable_cores

    torch.set_num_threads(usable_cores())
    started = time.perf_counter()
    texts = read_texts(SAMPLE_TEST)
    profiles = [p for p in (profile_of("accurate", args.accurate), profile_of("fast", args.fast)) if p is not None]
    if not profiles:
        raise SystemExit("no profile to measure: make train (and make fast) first")
    say = lambda message: print(f"... {message}", file=sys.stderr, flush=True)  # noqa: E731

    # The roofline on the accurate encoder's shapes: a batch of 16 comments of ~27 tokens, and one comment.
    first = profiles[0]
    shapes = layer_shapes(first.hidden, first.intermediate)
    roof: dict[str, dict[int, float]] = {"torch fp32": {}, "ONNX Runtime fp32": {}, "ONNX Runtime int8": {}}
    with tempfile.TemporaryDirectory(prefix="bazkhord-roofline-") as tmp:
        for rows in (BATCH * 27, 27):
            roof["torch fp32"][rows] = torch_gemm_rate(rows, shapes)
            roof["ONNX Runtime fp32"][rows] = ort_gemm_rate(rows, shapes, False, Path(tmp))
            roof["ONNX Runtime int8"][rows] = ort_gemm_rate(rows, shapes, True, Path(tmp))
    say(f"roofline: {roof}")
    fp32_rate = max(roof["torch fp32"][BATCH * 27], roof["ONNX Runtime fp32"][BATCH * 27])
    int8_rate = roof["ONNX Runtime int8"][BATCH * 27]

    taggers: dict[tuple[str, str], Any] = {}
    measured: dict[tuple[str, str], Measured] = {}
    lengths: dict[str, np.ndarray] = {}
    for p in profiles:
        for backend in ("torch", "onnx") if p.onnx_precision else ("torch",):
            tagger = load(p, backend)
            taggers[(p.name, backend)] = tagger
            precision = (p.onnx_precision or "") if backend == "onnx" else p.torch_precision
            measured[(p.name, backend)] = Measured(p.name, backend, precision, dev=dev_score(p, backend))
        tagger = taggers[(p.name, "torch")]
        lengths[p.name] = encode(tagger.tokenizer, tagger.normalise(texts), tagger.meta.max_length,
                                 tagger.meta.prompt).lengths()
    say("timing tag() of every profile and runtime, interleaved")
    for key, (rate, p50, p99, encoder_rate) in time_tag(taggers, texts).items():
        measured[key].per_second, measured[key].single_p50, measured[key].single_p99 = rate, p50, p99
        measured[key].encoder_per_second = encoder_rate
    for key, tagger in taggers.items():
        measured[key].test = test_scores(tagger, SAMPLE_TEST)
        measured[key].batch_dependence = batch_dependence(tagger, texts)
    evaluation = evaluate_passes(taggers[(profiles[0].name, "onnx" if profiles[0].onnx_precision else "torch")], texts)
    ops: dict[str, tuple[float, float]] = {}
    for p in profiles:
        ops[p.name] = ops_per_comment(lengths[p.name], p, lambda n: [chunk[g] for chunk in
                                      (np.arange(s, min(s + BATCH, len(n))) for s in range(0, len(n), BATCH))
                                      for g in length_groups(n[chunk], BATCH)])
        for backend in ("torch", "onnx"):
            if (p.name, backend) in measured:
                int8_from = p.onnx_int8_from if backend == "onnx" else p.torch_int8_from
                measured[(p.name, backend)].bound = bound(*ops[p.name], p, int8_from, fp32_rate, int8_rate)
    del taggers

    say(f"serving each over HTTP, one comment a request, at 1 and 16 clients, best of {HTTP_ROUNDS} interleaved rounds")
    context = get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="bazkhord-serving-bench-") as tmp, \
            ProcessPoolExecutor(max_workers=1, mp_context=context) as pool, contextlib.ExitStack() as servers:
        # Every server up at once, idle while another is measured, so that the rounds can alternate between them: a
        # neighbour's burst on this shared machine then costs one round of one server, not a server's only figure.
        running = {key: servers.enter_context(serving(next(p.folder for p in profiles if p.name == key[0]), Path(tmp),
                                                      max_queue_texts="4096", backend=key[1]))
                   for key in measured}
        for _ in range(HTTP_ROUNDS):
            for (profile_name, backend), m in measured.items():
                server, api_key = running[(profile_name, backend)]
                for clients in (1, 16):
                    r = scenario(pool, server, api_key, texts, f"{profile_name} {backend}", clients, 1, args.requests,
                                 args.seconds)
                    figures = (r.ok / r.seconds, r.percentile(50), r.percentile(99))
                    if clients not in m.http or figures[0] > m.http[clients][0]:
                        m.http[clients] = figures

    say("padding and repeats")
    pad = {name: padding(n, BATCH) for name, n in lengths.items()}
    sample = read_texts(REPO / "data" / "samples" / "feedback.jsonl") + texts
    repeats = [("shipped sample (train + test)", len(sample), *repeat_shares(sample))]
    if SHARED.is_dir():
        for folder in sorted(p for p in SHARED.iterdir() if p.is_dir()):
            found = [t for split in ("train", "dev", "test") if (folder / f"{split}.jsonl").exists()
                     for t in read_texts(folder / f"{split}.jsonl", limit=REPEAT_ROWS)][:REPEAT_ROWS]
            if found:
                repeats.append((folder.name, len(found), *repeat_shares(found)))
    return render(profiles, measured, roof, ops, pad, repeats, time.perf_counter() - started, args, evaluation)


def render(profiles: list[Profile], measured: dict[tuple[str, str], Measured], roof: dict[str, dict[int, float]],
           ops: dict[str, tuple[float, float]], pad: dict[str, tuple[float, float]],
           repeats: list[tuple[str, int, float, float]], seconds: float, args: argparse.Namespace,
           evaluation: tuple[float, float] | None = None) -> list[str]:
    from bazkhord.model.onnx_encoder import cpu_flags, usable_cores

    flags = cpu_flags()
    has = ", ".join(f for f, on in flags.items() if on) or "none of them"
    lacks = ", ".join(f for f, on in flags.items() if not on) or "none"
    lines = [
        "## Serving: roofline, runtimes and profiles",
        "",
        f"`python -m benchmarks.serving`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}, {usable_cores()} cores usable; "
        f"{seconds:.0f} s in all. CPU features: {has} (lacks: {lacks}). Every figure below comes from this one run; "
        "the machine is shared, so compare ratios within it.",
        "",
        "**Roofline**: the cores on one encoder layer's matrix products (Q/K/V, attention output, the FFN's two), "
        f"{profiles[0].hidden} wide, {profiles[0].intermediate} inner; the best of {GEMM_REPEATS} runs.",
        "",
        "| kernel | 432 token rows (16 comments) | 27 token rows (one comment) |",
        "|---|---:|---:|",
    ]
    for name, rates in roof.items():
        unit = "GOP/s" if "int8" in name else "GFLOP/s"
        lines.append(f"| {name} | {rates[BATCH * 27]:.0f} {unit} | {rates[27]:.0f} {unit} |")
    lines += ["", "**Operations per comment** at the sample test file's lengths (e5's tokens, prompt included), in "
              f"length-grouped batches of {BATCH}, padding included:", ""]
    for p in profiles:
        dense, attention = ops[p.name]
        lines.append(f"- {p.name} (`{p.folder.parent.name} {p.folder.name}`, {p.layers} layers x {p.hidden}): "
                     f"{dense / 1e9:.2f} G in matrix products + {attention / 1e9:.3f} G in attention")
    lines += ["", "**Each profile and runtime**: the encoder's pass alone (tokens to the heads' outputs) and tag() (normalising, "
              "the ensemble, aspects and evidence included) in batches of 16 over the sample test file (280 comments) and one "
              f"comment at a time ({SINGLES}), best of {ROUNDS} interleaved rounds; HTTP: `bazkhord serve` (its own process, "
              "the batcher on), one comment a request, closed loops, "
              f"{args.seconds:.0f} s a scenario, every server up at once and measured in turn, the best of {HTTP_ROUNDS} rounds "
              "(latencies from that round). *bound*: comments/s the measured kernels allow at these operations "
              "(int8 layers at the int8 rate, the rest and attention at fp32's). *dev*: the dev score recorded for what "
              "serves (F1 with aspect micro-F1); *test*: macro-F1 / aspect micro-F1 on the sample test file; *alone ≠ batched*: "
              "comments tagged differently one at a time and in batches of 16 (int8 quantises activations with one scale "
              "per batch, so a comment's tags can depend on its batch-mates; fp32 gives none).", "",
              "| profile | runtime | precision | dev | test | alone ≠ batched | encoder pass /s (share of bound) | "
              "tag() /s (share) | 1 comment p50 / p99 ms | HTTP 1 client /s, p50 / p99 ms | "
              "HTTP 16 clients /s, p50 / p99 ms (share) |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m in measured.values():
        one, many = m.http.get(1, (0, 0, 0)), m.http.get(16, (0, 0, 0))
        dev = f"{m.dev:.3f}" if m.dev is not None else "—"
        test = f"{m.test.get('macro_f1', float('nan')):.3f} / {m.test.get('aspect_micro_f1', float('nan')):.3f}"
        lines.append(f"| {m.profile} | {'ONNX Runtime' if m.backend == 'onnx' else 'PyTorch'} | {m.precision} | {dev} | "
                     f"{test} | {m.batch_dependence:.1%} | {m.encoder_per_second:.0f} ({m.encoder_per_second / m.bound:.0%}) | "
                     f"{m.per_second:.0f} "
                     f"({m.per_second / m.bound:.0%}) | {m.single_p50:.1f} / {m.single_p99:.1f} | "
                     f"{one[0]:.1f}, {one[1]:.1f} / {one[2]:.1f} | {many[0]:.1f}, {many[1]:.1f} / {many[2]:.1f} "
                     f"({max(one[0], many[0]) / m.bound:.0%}) |")
    lines += [""]
    torch_acc, onnx_acc = measured.get(("accurate", "torch")), measured.get(("accurate", "onnx"))
    fast = measured.get(("fast", "onnx")) or measured.get(("fast", "torch"))
    if torch_acc and onnx_acc:
        lines.append(f"Accurate profile, ONNX Runtime against PyTorch: tag() {onnx_acc.per_second / torch_acc.per_second:.2f}x, "
                     f"HTTP at 16 clients {onnx_acc.http[16][0] / max(torch_acc.http[16][0], 1e-9):.2f}x (target 1.5x, or "
                     f"70% of the bound: {onnx_acc.per_second / onnx_acc.bound:.0%} of it in tag()); dev "
                     f"{(onnx_acc.dev or 0) - (torch_acc.dev or 0):+.3f} (within 0.005 asked).")
    if fast and onnx_acc:
        best_acc = onnx_acc if onnx_acc.per_second >= (torch_acc.per_second if torch_acc else 0) else torch_acc
        assert best_acc is not None
        lines.append(f"Fast profile ({'ONNX Runtime' if fast.backend == 'onnx' else 'PyTorch'}) against the accurate one "
                     f"at its best runtime: tag() {fast.per_second / best_acc.per_second:.1f}x, HTTP at 16 clients "
                     f"{fast.http[16][0] / max(best_acc.http[16][0], 1e-9):.1f}x (target 5x); its test macro-F1 "
                     f"{fast.test.get('macro_f1', 0) - best_acc.test.get('macro_f1', 0):+.3f} and aspect micro-F1 "
                     f"{fast.test.get('aspect_micro_f1', 0) - best_acc.test.get('aspect_micro_f1', 0):+.3f} against it.")
    lines += ["", f"**Padding** in micro-batches of {BATCH} comments in arrival order (the sample test file): "
              + "; ".join(f"{name}: {before:.0%} of the tokens computed were padding with each batch padded to its "
                          f"longest, {after:.0%} with length groups" for name, (before, after) in pad.items()) + ".",
              "", f"**Repeats**: the share of comments whose normalised text already came in the same batch of "
              f"{STREAM_BATCH} (file order), and anywhere earlier (a shared set's train, dev and test files in that "
              f"order, at most {REPEAT_ROWS:,} rows); a repeat in a batch is encoded once.", "",
              "| data | comments | repeated within a batch | repeated in the file |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {n:,} | {within:.1%} | {anywhere:.1%} |" for name, n, within, anywhere in repeats]
    if evaluation is not None:
        before, after = evaluation
        lines += ["", f"**`bazkhord evaluate`** of the {profiles[0].name} profile over the sample test file: the model and "
                  f"its side-by-side variants tagged one by one took {before:.1f} s, from one encoder pass {after:.1f} s "
                  f"({before / after:.1f}x)."]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accurate", default="sample-e5", help="the accurate profile's model (name, name@version, folder)")
    parser.add_argument("--fast", default="sample-distilled", help="the fast profile's model")
    parser.add_argument("--seconds", type=float, default=15, help="most seconds an HTTP scenario runs")
    parser.add_argument("--requests", type=int, default=3000, help="most requests an HTTP scenario sends")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    publish(run(args), BEGIN, END, not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
