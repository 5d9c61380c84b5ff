"""Which runtime serves a trained transformer: ONNX Runtime or PyTorch, chosen on dev agreement and measured speed.

The fp32 encoder is exported once; its int8 trials (the same layer splits as torch's `quantize = "auto"`) are
tried from the most int8 to fp32, and the first that keeps the dev score and the dev tags within the same limits as
torch's int8 is ONNX Runtime's candidate. Then both runtimes tag the same dev texts, interleaved, and the faster one
is saved (or the one the config forces).

Besides the training run's rule, ONNX Runtime's int8 must keep the dev comments' sentiment probabilities as near
fp32's as the PyTorch precision it would replace does, or within DRIFT_FLOOR where that is fp32: on a dev split cut
from the training file, flipped tags are too rare to tell precisions apart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bazkhord.model.base import Tag
from bazkhord.model.int8 import precision_name
from bazkhord.model.network import MultiTaskNet
from bazkhord.model.onnx_encoder import Built, Exporter, OnnxEncoder
from bazkhord.model.transformer import TransformerTagger

TIMED_TEXTS = 256  # dev comments each runtime tags to be timed
TIMING_BATCH = 16  # as the service's batcher gathers them under load
TIMING_ROUNDS = 3  # interleaved; the best round of each counts, so both see the same noise from the machine

# The drift allowed where PyTorch serves fp32. A dev split cut from the training file holds comments the model is sure
# of: two precisions that flip the same few dev tags can flip very different shares of another business's comments,
# while the mean change of the dev probabilities still tells them apart.
DRIFT_FLOOR = 0.002

Trial = Callable[[], tuple[dict[str, float], list[Tag]]]  # the dev scores and tags at one precision
Rule = Callable[[dict[str, float], float], tuple[bool, str]]  # dev scores, share of tags changed -> kept?, effect
Verdict = Callable[[dict[str, float], list[Tag]], tuple[bool, str]]


def changed_share(reference: Sequence[Tag], tags: Sequence[Tag]) -> float:
    """The share of comments tagged differently by two taggings of the same texts: another sentiment, another set of
    aspects or another polarity of one (confidences aside)."""
    def labels(tag: Tag) -> tuple[str, set[tuple[str, str]]]:
        return tag.sentiment, {(x.aspect, x.polarity) for x in tag.aspects}

    changed = sum(labels(a) != labels(b) for a, b in zip(reference, tags, strict=True))
    return changed / max(len(reference), 1)


def probability_drift(reference: Sequence[Tag], tags: Sequence[Tag]) -> float:
    """The mean absolute change of the sentiment probabilities between two taggings of the same texts."""
    moved = [abs(a.probabilities[k] - b.probabilities.get(k, 0.0)) for a, b in zip(reference, tags, strict=True)
             for k in a.probabilities]
    return float(sum(moved) / len(moved)) if moved else 0.0


def onnx_verdict(reference: Sequence[Tag], rule: Rule, limits: str, drift_limit: float) -> Verdict:
    """The training run's rule for a cheaper precision (`rule`, whose limits `limits` states), and the probability
    drift limit."""
    def verdict(scores: dict[str, float], tags: list[Tag]) -> tuple[bool, str]:
        kept, effect = rule(scores, changed_share(reference, tags))
        drift = probability_drift(reference, tags)
        effect += f"; sentiment probabilities moved by {drift:.4f} on average"
        if not kept:
            return False, f"{effect} {limits}"
        if drift > drift_limit:
            return False, f"{effect} (at most {drift_limit:.4f}: as PyTorch's precision, or {DRIFT_FLOOR})"
        return True, effect

    return verdict


@dataclass
class BackendChoice:
    backend: str  # "onnx" | "torch"
    chosen: dict[str, float] | None = None  # the dev scores of ONNX Runtime's candidate
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # every trial, for the manifest's dev_by_model
    notes: list[str] = field(default_factory=list)
    speed: dict[str, float] = field(default_factory=dict)  # comments/s on the dev texts, per runtime
    fused: dict[str, int] = field(default_factory=dict)  # ONNX Runtime's fused operators in the exported graph

    def report(self, tagger: TransformerTagger) -> dict[str, Any]:
        return {"backend": self.backend, "onnx_precision": tagger.meta.onnx_precision() if self.backend == "onnx" else None,
                "onnx_fused_operators": self.fused, "dev_comments_per_second": self.speed}


def onnx_key(precision: str) -> str:
    """The name of an ONNX Runtime trial's dev scores in the manifest's dev_by_model."""
    return "onnx_" + precision.replace(",", "").replace(" ", "_")


def onnx_trials(quantize: str, layers: int | None, forced_from: int, int8_trials: Callable[[int], list[int]]) -> list[int | None]:
    """The ONNX precisions to try, most int8 first (None: fp32), as the config's `quantize` allows."""
    if quantize == "none":
        return [None]
    if quantize == "int8":
        return [forced_from]
    return [*(int8_trials(layers) if layers else [0]), None]


def choose_backend(tagger: TransformerTagger, fp32: MultiTaskNet, torch_net: MultiTaskNet, trials: Sequence[int | None],
                   dev_trial: Trial, reference: Sequence[Tag], rule: Rule, limits: str, timed: Sequence[str],
                   forced: bool, precision_forced: bool = False) -> BackendChoice:
    """Leaves `tagger` serving the chosen runtime (its `net` set back to `fp32`); `torch_net` is the net at torch's
    chosen precision, timed against ONNX Runtime's candidate; `reference` the fp32 dev tags, `rule` the training
    run's rule for a cheaper precision and `limits` its limits in words. `forced` (backend = "onnx"): ONNX Runtime
    serves whatever the timing, at the first precision dev keeps (else the last tried); `precision_forced`
    (quantize = "int8"): the one trial is kept whatever dev says, as torch's is."""
    choice = BackendChoice("torch")
    candidate: OnnxEncoder | None = None
    built: Built | None = None
    tagger.use_runtime(None)
    tagger.net = torch_net
    limit = max(DRIFT_FLOOR, probability_drift(reference, dev_trial()[1]) if torch_net is not fp32 else 0.0)
    verdict = onnx_verdict(reference, rule, limits, limit)
    tagger.net = fp32  # served by ONNX Runtime, the heads run in fp32 (the folder's torch int8 is not applied)
    with Exporter(fp32.encoder) as exporter:
        choice.fused = exporter.fp32.fused
        for tried, from_layer in enumerate(trials, 1):
            built = exporter.fp32 if from_layer is None else exporter.int8(from_layer)
            runtime = OnnxEncoder(built.path.read_bytes())
            tagger.use_runtime(runtime, built.quantize, built.int8_from_layer)
            scores, tags = dev_trial()
            kept, effect = verdict(scores, tags)
            name = f"ONNX Runtime {precision_name(built.quantize, built.int8_from_layer)}"
            choice.scores[onnx_key(precision_name(built.quantize, built.int8_from_layer))] = scores
            if kept or precision_forced:
                candidate, choice.chosen = runtime, scores
                choice.notes.append(f"{name} {'kept' if kept else 'forced'}: {effect}")
                break
            choice.notes.append(f"{name} refused: {effect}")
            if forced and tried == len(trials):  # none kept, but ONNX Runtime was asked for: the last tried
                candidate, choice.chosen = runtime, scores
                choice.notes.append(f"{name} taken all the same (backend = \"onnx\")")
    tagger.use_runtime(None)
    if candidate is None or built is None:
        tagger.net = fp32
        return choice
    texts = list(timed[:TIMED_TEXTS])
    best = {"torch": float("inf"), "onnx": float("inf")}
    for _ in range(TIMING_ROUNDS if texts else 0):
        for backend in best:
            tagger.net = fp32 if backend == "onnx" else torch_net
            tagger.use_runtime(candidate if backend == "onnx" else None, built.quantize, built.int8_from_layer)
            started = time.perf_counter()
            for start in range(0, len(texts), TIMING_BATCH):
                tagger.tag(texts[start : start + TIMING_BATCH])
            best[backend] = min(best[backend], time.perf_counter() - started)
    choice.speed = {k: round(len(texts) / v, 1) for k, v in best.items() if texts and v > 0}
    faster = not texts or best["onnx"] < best["torch"]
    choice.backend = "onnx" if forced or faster else "torch"
    speeds = f"{choice.speed.get('onnx', 0):.1f} against torch's {choice.speed.get('torch', 0):.1f} dev comments/s"
    choice.notes.append(f"served by {'ONNX Runtime' if choice.backend == 'onnx' else 'PyTorch'}: ONNX Runtime tags {speeds}"
                        + (" (backend = \"onnx\")" if forced else ""))
    tagger.net = fp32
    tagger.use_runtime(candidate if choice.backend == "onnx" else None, built.quantize, built.int8_from_layer)
    return choice
