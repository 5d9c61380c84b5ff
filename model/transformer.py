"""The transformer tagger: one encoder, three heads (sentence sentiment, aspect presence, per-aspect polarity).

The encoder is the pretrained multilingual-e5-small converted by `bazkhord encoder import` (the product's
default), any BERT-family checkpoint (a local folder or a hub id: BERT, ALBERT, RoBERTa, XLM-R, DistilBERT,
ELECTRA), or a compact BERT built from scratch over a WordPiece vocabulary trained on the training texts.
The folder may also hold the TF-IDF baseline, blended in (a calibrated ensemble) when that scored better on dev.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from bazkhord.data.errors import ModelFolderError
from bazkhord.data.normalise import DEFAULT_NORMALISER, NormaliserConfig
from bazkhord.data.taxonomy import Taxonomy
from bazkhord.model.aspects import EVIDENCE_SHARE, pick_evidence
from bazkhord.model.backbone import check_vocabulary, hidden_size, no_pooler, quiet_transformers
from bazkhord.model.base import AspectTag, Evidence, Tag
from bazkhord.model.int8 import precision_name, quantize_int8
from bazkhord.model.network import MultiTaskNet, encode, length_groups, mean_pool, pad_batch, token_groups
from bazkhord.model.onnx_encoder import BACKEND_ENV, BACKENDS, ONNX_FILE, THREADS_ENV, OnnxEncoder
from bazkhord.model.segments import locate_parts
from bazkhord.model.tagger import BaseTagger, Tagger, make_tags

log = logging.getLogger(__name__)

ENCODER_DIR = "encoder"
HEADS_FILE = "heads.safetensors"
META_FILE = "transformer.json"
BASELINE_DIR = "baseline"
EVIDENCE_MODES = ("spans", "clauses")  # see TransformerMeta.evidence
# A clause scored from the comment's own pass also hears the rest of the comment, so its score sits nearer the best
# clause's: evidence then needs 0.8 of the best, not 0.5. Chosen on parsinlu_food's dev split, where it picks as many
# clauses an aspect as the second pass does (0.5 picks more), and on the sample's training file.
SPAN_EVIDENCE_SHARE = 0.8




# -- the tagger -------------------------------------------------------------------------------------------
@dataclass
class Blend:
    """How the saved model combines its parts. Both weights 1.0: the transformer alone, no ensemble."""

    weight: float = 1.0  # share of the transformer in sentence sentiment; the rest is the TF-IDF baseline's
    temperature: float = 1.0  # the transformer's sentiment logits are divided by it (calibrated on dev)
    # Share of the transformer in aspect presence, evidence and polarity; the rest is the baseline's. 0.0: the
    # baseline's aspects exactly as it tags them alone (its own threshold).
    aspect_weight: float = 1.0

    @property
    def uses_baseline(self) -> bool:
        return self.weight < 1.0 or self.aspect_weight < 1.0

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Blend:
        values = dict(values)
        # Folders saved before aspects could be blended name one source: "transformer" or "baseline".
        if values.pop("aspects_from", "transformer") == "baseline" and "aspect_weight" not in values:
            values["aspect_weight"] = 0.0
        return cls(**values)


@dataclass
class Outputs:
    logits: np.ndarray  # (texts, labels) sentiment logits
    presence: np.ndarray  # (texts, aspects) probabilities
    polarity: np.ndarray  # (texts, aspects, polarities) probabilities
    clause_presence: dict[int, np.ndarray] = field(default_factory=dict)  # text -> (clauses, aspects)
    pooled: np.ndarray | None = None  # (texts, hidden) the mean-pooled sentence vectors, where asked for


@dataclass
class TransformerMeta:
    labels: list[str]
    aspects: list[str]
    polarities: list[str]
    max_length: int
    base_model: str
    model_type: str
    aspect_threshold: float = 0.5
    dropout: float = 0.1
    batch_size: int = 64
    quantize: str = "none"  # "int8": Linear layers are quantised when the folder is loaded
    int8_from_layer: int = 0  # with "int8": the encoder's lowest layers that stay fp32 (0: none, every Linear int8)
    blend: Blend = field(default_factory=Blend)
    token_length_stats: dict[str, float] = field(default_factory=dict)
    prompt: str = ""  # put before every text: "query: " for e5 encoders
    # How the clauses that speak of an aspect (the evidence) are scored: "spans" reads each clause's tokens from the
    # comment's own pass; "clauses" encodes every clause again on its own (a second pass: a third of tag()'s time on
    # the sample's test comments).
    evidence: str = "spans"
    # Which runtime tags: "torch", or "onnx" (ONNX Runtime over the folder's encoder.onnx, at its own precision:
    # onnx_quantize / onnx_int8_from_layer, chosen on dev as the torch precision is; quantize stays torch's).
    backend: str = "torch"
    onnx_quantize: str = "none"
    onnx_int8_from_layer: int = 0

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend is {self.backend!r}; expected one of {', '.join(BACKENDS)}")
        if self.evidence not in EVIDENCE_MODES:
            raise ValueError(f"evidence is {self.evidence!r}; expected one of {', '.join(EVIDENCE_MODES)}")
        if not isinstance(self.int8_from_layer, int) or self.int8_from_layer < 0:
            raise ValueError(f"int8_from_layer is {self.int8_from_layer!r}; expected a whole number >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def precision(self) -> str:
        """The torch encoder's precision (what it runs at when the folder is served by PyTorch)."""
        return precision_name(self.quantize, self.int8_from_layer)

    def onnx_precision(self) -> str:
        return precision_name(self.onnx_quantize, self.onnx_int8_from_layer)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TransformerMeta:
        values = dict(values)
        values["blend"] = Blend.from_dict(values.get("blend", {}))
        return cls(**values)


def set_threads() -> None:
    threads = os.environ.get(THREADS_ENV)
    if threads:
        torch.set_num_threads(max(1, int(threads)))


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's ops inside run on `n` threads, the process's count restored after.

    Where ONNX Runtime runs the encoder, torch is left with the pooling and the heads: tensors far too small to
    gain from a second thread, whose parallel regions would wait for a core that ONNX Runtime's pool or the server's
    event loop holds.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class TransformerTagger(BaseTagger):
    """Tags raw texts with a `MultiTaskNet`; optionally blends in the TF-IDF baseline saved beside it."""

    def __init__(
        self,
        net: MultiTaskNet,
        tokenizer: Any,
        meta: TransformerMeta,
        normaliser: NormaliserConfig = DEFAULT_NORMALISER,
        taxonomy: Taxonomy | None = None,
        baseline: Tagger | None = None,
    ) -> None:
        self.net = net.eval()
        self.tokenizer = tokenizer
        self.meta = meta
        self.normaliser = normaliser
        self.taxonomy = taxonomy
        self.baseline = baseline
        self.manifest: dict[str, Any] = {}
        self.device = next(net.parameters()).device if any(True for _ in net.parameters()) else torch.device("cpu")
        self.runtime: OnnxEncoder | None = None  # set where the encoder runs in ONNX Runtime (backend "onnx")
        self.fp32_net: MultiTaskNet | None = None  # the unquantised net, where `net` was quantised at load

    @property
    def kind(self) -> str:  # type: ignore[override]
        return "ensemble-tagger" if self.meta.blend.uses_baseline else "transformer-tagger"

    @property
    def backend(self) -> str:
        return "onnx" if self.runtime is not None else "torch"

    def serving_precision(self) -> str:
        return self.meta.onnx_precision() if self.runtime is not None else self.meta.precision()

    def use_runtime(self, runtime: OnnxEncoder | None, quantize: str = "none", int8_from_layer: int = 0) -> None:
        """Tag with an ONNX Runtime encoder at the given precision (None: back to the PyTorch encoder)."""
        self.runtime = runtime
        self.meta.backend = "torch" if runtime is None else "onnx"
        self.meta.onnx_quantize, self.meta.onnx_int8_from_layer = (quantize, int8_from_layer) if runtime else ("none", 0)

    def to(self, device: str) -> TransformerTagger:
        """The encoder on another device (a GPU): PyTorch at fp32 there, since ONNX Runtime's CPU build and torch's
        dynamic int8 run on the CPU only; the TF-IDF part stays on the CPU."""
        self.device = torch.device(device)
        if self.device.type != "cpu":
            self.use_runtime(None)
            if self.fp32_net is not None:
                self.net = self.fp32_net
        self.net.to(self.device)
        return self

    @property
    def labels(self) -> list[str]:
        return list(self.meta.labels)

    @property
    def aspect_names(self) -> list[str]:
        return list(self.meta.aspects)

    @property
    def polarity_names(self) -> list[str]:
        return list(self.meta.polarities)

    # -- raw network outputs -----------------------------------------------------------------------------
    def network_outputs(self, normalised: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sentiment logits, aspect presence probabilities and polarity probabilities for normalised texts,
        in batches of similar length."""
        out = self.forward_texts(normalised)
        return out.logits, out.presence, out.polarity

    def forward_texts(self, normalised: Sequence[str], clauses: dict[int, list[tuple[int, int]]] | None = None,
                      pooled: bool = False) -> Outputs:
        """`network_outputs`, and for text i in `clauses` (character spans of its clauses in normalised[i]) each
        clause's aspect presence, read from the same pass: the mean of the clause's token states through the aspect
        head. A text whose clauses the tokenizer cannot place (no offsets, or cut off at `max_length`) is left out.
        With `pooled`, the sentence vectors the heads read too (a teacher's, for distillation).

        Identical texts (with the same clauses) are encoded once: a batch of the same short praise («عالی بود») or of
        a client's retries costs one comment's pass."""
        clauses = clauses if clauses and self.meta.aspects and getattr(self.tokenizer, "is_fast", False) else {}
        rows: list[int] = []  # the first text of each distinct (text, clauses)
        slot: dict[tuple[str, tuple[tuple[int, int], ...]], int] = {}
        inverse = np.zeros(len(normalised), dtype=int)
        for i, text in enumerate(normalised):
            key = (text, tuple(clauses.get(i, ())))
            if key not in slot:
                slot[key] = len(rows)
                rows.append(i)
            inverse[i] = slot[key]
        if len(rows) == len(normalised):
            return self._forward(normalised, clauses, pooled)
        inner = self._forward([normalised[i] for i in rows], {j: clauses[i] for j, i in enumerate(rows) if i in clauses},
                              pooled)
        return Outputs(inner.logits[inverse], inner.presence[inverse], inner.polarity[inverse],
                       {i: inner.clause_presence[j] for i, j in enumerate(inverse) if j in inner.clause_presence},
                       None if inner.pooled is None else inner.pooled[inverse])

    def _forward(self, normalised: Sequence[str], clauses: dict[int, list[tuple[int, int]]], pooled: bool) -> Outputs:
        n = len(normalised)
        out = Outputs(np.zeros((n, len(self.meta.labels)), dtype=np.float32),
                      np.zeros((n, len(self.meta.aspects)), dtype=np.float32),
                      np.zeros((n, len(self.meta.aspects), len(self.meta.polarities)), dtype=np.float32))
        if pooled:
            out.pooled = np.zeros((n, hidden_size(self.net.encoder)), dtype=np.float32)
        if n == 0:
            return out
        encoded = encode(self.tokenizer, normalised, self.meta.max_length, self.meta.prompt, offsets=bool(clauses))
        offsets = encoded.offsets or []
        groups = {i: g for i, spans in clauses.items() if (g := token_groups(offsets[i], spans))}
        pad_id = self.tokenizer.pad_token_id
        with torch.inference_mode(), torch_threads(1) if self.runtime is not None else nullcontext():
            for batch in length_groups(encoded.lengths(), self.meta.batch_size):
                ids, mask = pad_batch([encoded.input_ids[i] for i in batch], pad_id)
                if self.runtime is not None:
                    hidden = torch.from_numpy(self.runtime(ids.numpy(), mask.numpy()))
                else:
                    mask = mask.to(self.device)
                    hidden = self.net.hidden_states(ids.to(self.device), mask)
                sentence = mean_pool(hidden, mask)
                if out.pooled is not None:
                    out.pooled[batch] = sentence.float().cpu().numpy()
                s, a, p = self.net.heads(sentence)
                out.logits[batch] = s[:, : out.logits.shape[1]].float().cpu().numpy()
                if self.meta.aspects:
                    out.presence[batch] = torch.sigmoid(a).float().cpu().numpy()
                    if self.meta.polarities:
                        out.polarity[batch] = torch.softmax(p, dim=-1).float().cpu().numpy()
                    self._clause_presence(hidden, batch, groups, out.clause_presence)
        return out

    def _clause_presence(self, hidden: torch.Tensor, batch: np.ndarray, groups: dict[int, list[list[int]]],
                         into: dict[int, np.ndarray]) -> None:
        rows = [(b, int(i)) for b, i in enumerate(batch) if int(i) in groups]
        if not rows:
            return
        owners = [b for b, i in rows for _ in groups[i]]
        mask = torch.zeros((len(owners), hidden.shape[1]), device=hidden.device)
        at = 0
        for _, i in rows:
            for tokens in groups[i]:
                mask[at, tokens] = 1.0
                at += 1
        _, a, _ = self.net.heads(mean_pool(hidden[owners], mask))
        presence = torch.sigmoid(a).float().cpu().numpy()
        at = 0
        for _, i in rows:
            into[i] = presence[at : at + len(groups[i])]
            at += len(groups[i])

    def transformer_proba(self, logits: np.ndarray) -> np.ndarray:
        scaled = logits / self.meta.blend.temperature
        scaled = scaled - scaled.max(axis=1, keepdims=True)
        exp = np.exp(scaled)
        return exp / exp.sum(axis=1, keepdims=True)

    def baseline_proba(self, normalised: Sequence[str]) -> np.ndarray:
        """The baseline's probabilities in this model's label order (a label it lacks gets 0)."""
        assert self.baseline is not None
        raw = self.baseline.sentiment_.predict_proba(list(normalised))
        out = np.zeros((len(normalised), len(self.labels)))
        for j, label in enumerate(self.baseline.labels):
            if label in self.labels:
                out[:, self.labels.index(label)] = raw[:, j]
        return out

    def blend_proba(self, logits: np.ndarray, normalised: Sequence[str], blend: Blend | None = None) -> np.ndarray:
        proba = self.transformer_proba(logits)
        weight = (blend or self.meta.blend).weight
        if self.baseline is None or weight >= 1.0:
            return proba
        return weight * proba + (1 - weight) * self.baseline_proba(normalised)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        normalised = self.normalise(texts)
        logits, _, _ = self.network_outputs(normalised)
        return self.blend_proba(logits, normalised)

    # -- tagging -----------------------------------------------------------------------------------------
    def tag(self, texts: Sequence[str], normalised: Sequence[str] | None = None, blend: Blend | None = None) -> list[Tag]:
        """Tag raw texts; `blend` overrides the saved one (evaluation uses it to score the parts alone)."""
        return self.tag_blends(texts, [blend or self.meta.blend], normalised)[0]

    def tag_blends(self, texts: Sequence[str], blends: Sequence[Blend], normalised: Sequence[str] | None = None
                   ) -> list[list[Tag]]:
        """The texts' tags under each blend, from one encoder pass (the blends differ only after the encoder)."""
        normalised = list(normalised) if normalised is not None else self.normalise(texts)
        baseline_only = self.baseline_aspects() is not None
        ours = [bool(self.meta.aspects) and not (baseline_only and b.aspect_weight <= 0.0) for b in blends]
        spans = any(ours) and self.meta.evidence == "spans"
        segments, clauses = self.clause_spans(texts, normalised) if spans else (None, {})
        out = self.forward_texts(normalised, clauses)
        results: list[list[Tag]] = []
        for blend, own in zip(blends, ours, strict=True):
            proba = self.blend_proba(out.logits, normalised, blend)
            if own:
                aspects = self.aspect_tags(texts, normalised, out.presence, out.polarity, blend.aspect_weight,
                                           segments, out.clause_presence)
            elif self.meta.aspects:
                aspects = self.baseline.tag_aspects(texts, normalised)  # type: ignore[union-attr]
            else:
                aspects = [[] for _ in texts]
            results.append(make_tags(self.labels, proba, aspects))
        return results

    def clause_spans(self, texts: Sequence[str], normalised: Sequence[str]
                     ) -> tuple[dict[int, list[tuple[str, Evidence]]], dict[int, list[tuple[int, int]]]]:
        """Every text's clauses, and for each text of two clauses or more their character spans in its normalised
        text: evidence read from the comment's own pass needs them before the pass."""
        segments = {i: self._normalised_segments(t, normalised[i]) for i, t in enumerate(texts)}
        clauses = {i: found for i, parts in segments.items()
                   if len(parts) > 1 and (found := locate_parts(normalised[i], [text for text, _ in parts]))}
        return segments, clauses

    def baseline_aspects(self) -> Any:
        """The baseline's aspect model when it has one over this model's aspects, else None."""
        model = getattr(self.baseline, "aspects_", None)
        return model if model is not None and self.meta.aspects else None

    def blended_presence(self, presence: np.ndarray, normalised: Sequence[str], weight: float) -> np.ndarray:
        """Aspect presence with the baseline's detectors blended in (columns in this model's aspect order)."""
        model = self.baseline_aspects()
        if model is None or weight >= 1.0 or not len(normalised):
            return presence
        raw = model.detect_proba(list(normalised))
        theirs = np.zeros_like(presence)
        for j, name in enumerate(model.aspects_):
            if name in self.meta.aspects:
                theirs[:, self.meta.aspects.index(name)] = raw[:, j]
        return weight * presence + (1 - weight) * theirs

    def blended_polarity(self, ours: np.ndarray, evidence: Sequence[str], aspects: Sequence[str], weight: float) -> np.ndarray:
        """Polarity probabilities (one row per (comment, aspect) job) with the baseline's polarity model, which reads
        the evidence clauses, blended in."""
        model = self.baseline_aspects()
        if model is None or weight >= 1.0 or not len(evidence):
            return ours
        known = [a in model.aspects_ for a in aspects]
        theirs = ours.copy()  # an aspect the baseline does not know keeps the transformer's polarity
        rows = [i for i, k in enumerate(known) if k]
        if rows:
            raw = model.polarity_.predict_proba(model._polarity_matrix([evidence[i] for i in rows], [aspects[i] for i in rows]))
            aligned = np.zeros((len(rows), ours.shape[1]))
            for j, name in enumerate(model.polarities_):
                if name in self.meta.polarities:
                    aligned[:, self.meta.polarities.index(name)] = raw[:, j]
            theirs[rows] = aligned
        return weight * ours + (1 - weight) * theirs

    def aspect_tags(
        self, texts: Sequence[str], normalised: Sequence[str], presence: np.ndarray, polarity: np.ndarray,
        weight: float = 1.0, segments: dict[int, list[tuple[str, Evidence]]] | None = None,
        scored: dict[int, np.ndarray] | None = None,
    ) -> list[list[AspectTag]]:
        """Aspects over the threshold, each with its polarity and the clauses that speak of it (evidence); `weight` is
        the transformer's share where the baseline's aspect model is blended in. `segments` are the texts' clauses
        when already split; `scored` the transformer's presence per clause where the comment's pass gave it."""
        results: list[list[AspectTag]] = [[] for _ in texts]
        if not self.meta.aspects:
            return results
        presence = self.blended_presence(presence, normalised, weight)
        hits = [[int(k) for k in np.argsort(-row, kind="stable") if row[k] >= self.meta.aspect_threshold] for row in presence]
        with_hits = [i for i, found in enumerate(hits) if found]
        segments = segments if segments is not None else {}
        segments = {i: segments[i] if i in segments else self._normalised_segments(texts[i], normalised[i]) for i in with_hits}
        scored = scored or {}
        # Clauses of comments with more than one clause, to find the evidence: the ones the comment's pass did not
        # score are encoded on their own, in one call.
        several = [i for i in with_hits if len(segments[i]) > 1]
        from_pass = {i for i in several if i in scored}
        again = [i for i in several if i not in scored]
        _, encoded, _ = self.network_outputs([s for i in again for s, _ in segments[i]])
        bounds = np.cumsum([0] + [len(segments[i]) for i in again])
        scored = {**scored, **{i: encoded[bounds[j] : bounds[j + 1]] for j, i in enumerate(again)}}
        clause_texts = [s for i in several for s, _ in segments[i]]
        clause_presence = np.vstack([scored[i] for i in several]) if several else np.zeros((0, len(self.meta.aspects)))
        clause_presence = self.blended_presence(clause_presence, clause_texts, weight)
        bounds = np.cumsum([0] + [len(segments[i]) for i in several])
        scores = {i: clause_presence[bounds[j] : bounds[j + 1]] for j, i in enumerate(several)}
        share = {i: SPAN_EVIDENCE_SHARE if i in from_pass else EVIDENCE_SHARE for i in several}
        jobs = [(i, k, pick_evidence(scores[i][:, k], share[i]) if i in scores else tuple(range(len(segments[i]))))
                for i in with_hits for k in hits[i]]
        evidence = [" ".join(segments[i][j][0] for j in chosen) or normalised[i] for i, _, chosen in jobs]
        ours = np.array([polarity[i, k] for i, k, _ in jobs]).reshape(len(jobs), len(self.meta.polarities))
        mixed = self.blended_polarity(ours, evidence, [self.meta.aspects[k] for _, k, _ in jobs], weight)
        for (i, k, chosen), p in zip(jobs, mixed, strict=True):
            best = int(p.argmax())
            results[i].append(AspectTag(self.meta.aspects[k], round(float(presence[i, k]), 4), self.meta.polarities[best],
                                        round(float(p[best]), 4), tuple(segments[i][j][1] for j in chosen)))
        return results

    def variants(self) -> dict[str, Callable[[Sequence[str]], list[Tag]]]:
        """The ways this folder can tag, for side-by-side scores: the baseline, the transformer alone, and the
        saved ensemble when there is one."""
        out: dict[str, Callable[[Sequence[str]], list[Tag]]] = {}
        if self.baseline is not None:
            out["baseline"] = self.baseline.tag
        out["transformer"] = lambda texts: self.tag(texts, blend=self.alone())
        if self.baseline is not None and self.meta.blend.uses_baseline:
            out["ensemble"] = self.tag
        return out

    def alone(self) -> Blend:
        return Blend(1.0, self.meta.blend.temperature, 1.0)

    def variant_tags(self, texts: Sequence[str]) -> dict[str, list[Tag]]:
        """`variants`' tags of the same texts, the encoder run once for all of them (evaluation's side by side);
        "model" holds the saved model's own tags (the ensemble's where there is one)."""
        normalised = self.normalise(texts)
        blends = {"transformer": self.alone()}
        if self.baseline is not None and self.meta.blend.uses_baseline:
            blends["ensemble"] = self.meta.blend
        out = dict(zip(blends, self.tag_blends(texts, list(blends.values()), normalised), strict=True))
        if self.baseline is not None:
            out = {"baseline": self.baseline.tag(texts, normalised), **out}
        return {**out, "model": out.get("ensemble", out["transformer"])}

    # -- persistence -------------------------------------------------------------------------------------
    def save_components(self, folder: Path) -> dict[str, str]:
        quiet_transformers()
        encoder_dir = folder / ENCODER_DIR
        self.net.encoder.save_pretrained(encoder_dir, safe_serialization=True)
        self.tokenizer.save_pretrained(encoder_dir)
        roles = {f"{ENCODER_DIR}/{p.name}": "encoder" for p in sorted(encoder_dir.iterdir()) if p.is_file()}
        save_file(self.net.heads_state(), str(folder / HEADS_FILE))
        roles[HEADS_FILE] = "heads"
        (folder / META_FILE).write_text(json.dumps(self.meta.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
        roles[META_FILE] = "labels, lengths, threshold, blend, backend"
        if self.runtime is not None:
            self.runtime.save(folder / ONNX_FILE)
            roles[ONNX_FILE] = f"encoder for ONNX Runtime ({self.meta.onnx_precision()})"
        if self.baseline is not None:  # also when not blended in: evaluation scores it beside the transformer
            saved = self.baseline.save_components(folder / BASELINE_DIR)
            roles.update({f"{BASELINE_DIR}/{k}": f"baseline {v}" for k, v in saved.items()})
        return roles

    @classmethod
    def load_components(cls, folder: Path, normaliser: NormaliserConfig, taxonomy: Taxonomy | None,
                        quantize: str | None = None, int8_from_layer: int = 0, backend: str | None = None
                        ) -> TransformerTagger:
        """Load the folder's parts; `quantize` ("none" / "int8", with the encoder's lowest `int8_from_layer` layers
        in fp32) overrides the saved torch precision (benchmarks); `backend` (else BAZKHORD_BACKEND, else the
        folder's choice) picks the runtime: "onnx" needs the folder's encoder.onnx."""
        from transformers import AutoModel, AutoTokenizer

        set_threads()
        quiet_transformers()
        meta = TransformerMeta.from_dict(json.loads((folder / META_FILE).read_text(encoding="utf-8")))
        if quantize is not None:
            meta.quantize, meta.int8_from_layer = quantize, int8_from_layer
        model_type = json.loads((folder / ENCODER_DIR / "config.json").read_text(encoding="utf-8")).get("model_type", "")
        encoder = AutoModel.from_pretrained(folder / ENCODER_DIR, local_files_only=True, **no_pooler(model_type))
        tokenizer = AutoTokenizer.from_pretrained(folder / ENCODER_DIR, local_files_only=True)
        check_vocabulary(folder / ENCODER_DIR, encoder, tokenizer)
        net = MultiTaskNet(encoder, len(meta.labels), len(meta.aspects), len(meta.polarities), meta.dropout)
        missing, unexpected = net.load_state_dict(load_file(str(folder / HEADS_FILE)), strict=False)
        missing = [k for k in missing if not k.startswith("encoder.")]
        if missing or unexpected:
            raise ValueError(f"heads do not fit the encoder (missing {missing}, unexpected {unexpected})")
        net.eval()
        backend = backend or os.environ.get(BACKEND_ENV) or meta.backend
        if backend not in BACKENDS:
            raise ValueError(f"backend {backend!r} ({BACKEND_ENV} or the caller) is not one of {', '.join(BACKENDS)}")
        if backend == "onnx" and not (folder / ONNX_FILE).exists():
            raise ModelFolderError(f"{folder}: backend onnx asked for, but the folder has no {ONNX_FILE}; make one with "
                                   f"`bazkhord onnx --model {folder}`, or serve it with {BACKEND_ENV}=torch")
        fp32 = net
        if meta.quantize == "int8" and backend == "torch":
            net = quantize_int8(net, meta.int8_from_layer)
        baseline = None
        if (folder / BASELINE_DIR).exists():
            baseline = Tagger.load_components(folder / BASELINE_DIR, normaliser, taxonomy)
        tagger = cls(net, tokenizer, meta, normaliser, taxonomy, baseline)
        tagger.fp32_net = fp32 if fp32 is not net else None
        if backend == "onnx":
            tagger.use_runtime(OnnxEncoder(folder / ONNX_FILE), meta.onnx_quantize, meta.onnx_int8_from_layer)
        else:
            tagger.use_runtime(None)
        return tagger
