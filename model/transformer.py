"""The transformer tagger: one encoder, three heads (sentence sentiment, aspect presence, per-aspect polarity).

The encoder is the pretrained multilingual-e5-small converted by `bazkhord encoder import` (the product's
default), any BERT-family checkpoint (a local folder or a hub id: BERT, ALBERT, RoBERTa, XLM-R, DistilBERT,
ELECTRA), or a compact BERT built from scratch over a WordPiece vocabulary trained on the training texts.
The folder may also hold the TF-IDF baseline, blended in (a calibrated ensemble) when that scored better on dev.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from data.errors import ConfigError
from data.normalise import DEFAULT_NORMALISER, NormaliserConfig
from data.taxonomy import Taxonomy
from model.aspects import EVIDENCE_SHARE, pick_evidence
from model.base import AspectTag, Evidence, Tag
from model.e5s1 import ENCODER_MANIFEST, EncoderError, verify_encoder_folder
from model.segments import locate_parts
from model.tagger import BaseTagger, Tagger, make_tags

log = logging.getLogger(__name__)

ENCODER_DIR = "encoder"
HEADS_FILE = "heads.safetensors"
META_FILE = "transformer.json"
BASELINE_DIR = "baseline"
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SUPPORTED_BACKBONES = ("bert", "albert", "roberta", "xlm-roberta", "distilbert", "electra")
# `base_model` value that builds the compact encoder from scratch (no download, no pre-trained weights).
SCRATCH = "scratch"
THREADS_ENV = "BAZKHORD_TORCH_THREADS"
EVIDENCE_MODES = ("spans", "clauses")  # see TransformerMeta.evidence
# A clause scored from the comment's own pass also hears the rest of the comment, so its score sits nearer the best
# clause's: evidence then needs 0.8 of the best, not 0.5. Chosen on parsinlu_food's dev split, where it picks 1.10
# clauses an aspect as the second pass picks 1.11 (1.32 at 0.5; polarity 0.932 at 0.5 and 0.8, 0.937 at 0.7 and
# with the second pass: one aspect apart), and on the sample's training file (evidence precision 0.977 at 0.5,
# 0.986 at 0.8; 0.982 with the second pass).
SPAN_EVIDENCE_SHARE = 0.8
PRETRAIN_REPORT = "pretrain_report.json"  # written by `bazkhord pretrain` (training/pretrain.py)

# torch's eager int8 API warns that it moves to torchao; it is what torch 2.13 ships, and it is measured here.
warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated.*")
warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*deprecated.*")


# -- tokenizer and encoder --------------------------------------------------------------------------------
def wordpiece_vocabulary(texts: Sequence[str], vocab_size: int, min_frequency: int = 2) -> list[str]:
    """A WordPiece vocabulary by BPE merges over the texts' words, ties broken by the pieces themselves.

    `tokenizers`' own trainers break ties by hash order, so two runs on the same texts learn different
    vocabularies; this one is the same on every run, which keeps training deterministic.
    """
    import heapq
    from collections import Counter

    from tokenizers import pre_tokenizers

    pre = pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter(word for text in texts for word, _ in pre.pre_tokenize_str(text.lower()))
    splits = {word: [word[0], *(f"##{c}" for c in word[1:])] for word in words}
    alphabet = sorted({piece for pieces in splits.values() for piece in pieces})
    vocab = list(dict.fromkeys([*SPECIAL_TOKENS, *alphabet]))
    pairs: Counter[tuple[str, str]] = Counter()
    where: dict[tuple[str, str], set[str]] = {}
    for word, pieces in splits.items():
        for pair in itertools.pairwise(pieces):
            pairs[pair] += words[word]
            where.setdefault(pair, set()).add(word)
    heap = [(-count, pair) for pair, count in pairs.items()]
    heapq.heapify(heap)
    known = set(vocab)
    while len(vocab) < vocab_size and heap:
        negative, pair = heapq.heappop(heap)
        if pairs.get(pair, 0) != -negative:
            continue  # a stale entry: the count changed since it was pushed
        if -negative < min_frequency:
            break
        merged = pair[0] + pair[1].removeprefix("##")
        if merged not in known:
            vocab.append(merged)
            known.add(merged)
        touched: Counter[tuple[str, str]] = Counter()
        for word in sorted(where.pop(pair, set())):
            pieces, count = splits[word], words[word]
            for old in itertools.pairwise(pieces):
                pairs[old] -= count
                touched[old] -= count
            out, i = [], 0
            while i < len(pieces):
                if i + 1 < len(pieces) and (pieces[i], pieces[i + 1]) == pair:
                    out.append(merged)
                    i += 2
                else:
                    out.append(pieces[i])
                    i += 1
            splits[word] = out
            for new in itertools.pairwise(out):
                pairs[new] += count
                touched[new] += count
                where.setdefault(new, set()).add(word)
        for changed in touched:
            if pairs[changed] > 0:
                heapq.heappush(heap, (-pairs[changed], changed))
            else:
                pairs.pop(changed, None)
    return vocab


def train_tokenizer(texts: Sequence[str], vocab_size: int = 16_000, min_frequency: int = 2) -> Any:
    """A WordPiece tokenizer learned from (normalised) texts, wrapped as a transformers fast tokenizer.

    Only lower-casing is applied: the texts are normalised already, and BERT's accent stripping would
    remove the madda of «آ» and Persian diacritics.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = wordpiece_vocabulary(texts, vocab_size, min_frequency)
    tokenizer = Tokenizer(models.WordPiece({piece: i for i, piece in enumerate(vocab)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    cls_id, sep_id = vocab.index("[CLS]"), vocab.index("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=512)


@dataclass(frozen=True)
class EncoderShape:
    """The compact encoder built from scratch. Defaults chosen on the dev splits for speed and quality on 2 cores."""

    hidden: int = 256
    layers: int = 3
    heads: int = 4
    intermediate: int = 512
    max_positions: int = 512
    dropout: float = 0.1


def scratch_encoder(vocab_size: int, shape: EncoderShape) -> Any:
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=vocab_size, hidden_size=shape.hidden, num_hidden_layers=shape.layers,
                        num_attention_heads=shape.heads, intermediate_size=shape.intermediate,
                        max_position_embeddings=shape.max_positions, hidden_dropout_prob=shape.dropout,
                        attention_probs_dropout_prob=shape.dropout)
    return BertModel(config, add_pooling_layer=False)


def quiet_transformers() -> None:
    """transformers draws its own "Loading weights" / "Writing model shards" bars into ours: bazkhord shows one. Its
    load report lists the masked-word head that `bazkhord pretrain` saves and fine-tuning does not use, as a warning
    table on every load: only its errors are shown."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def load_backbone(base_model: str) -> tuple[Any, Any]:
    """(encoder, tokenizer) from a local folder or a hub id. Nothing is downloaded when the id is a folder."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    quiet_transformers()
    local = Path(base_model).is_dir()
    if not local and (base_model.startswith((".", "/", "~", "artifacts")) or base_model.count("/") > 1):
        hint = " (run `bazkhord encoder import` or `make encoder` first)" if "encoders" in base_model else ""
        raise ConfigError(f"transformer.base_model {base_model!r}: no such folder{hint}")
    if local and (Path(base_model) / ENCODER_MANIFEST).exists():
        verify_encoder_folder(Path(base_model))
    try:
        config = AutoConfig.from_pretrained(base_model, local_files_only=local)
    except (OSError, ValueError) as error:
        where = "the folder has no usable config.json" if local else "it is not a local folder and the hub cannot be reached"
        raise ConfigError(f"transformer.base_model {base_model!r}: cannot load its config ({where}): {error}") from None
    if config.model_type not in SUPPORTED_BACKBONES:
        raise ConfigError(f"transformer.base_model {base_model!r} is a {config.model_type!r} model; "
                          f"supported: {', '.join(SUPPORTED_BACKBONES)}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(base_model, local_files_only=local)
        encoder = AutoModel.from_pretrained(base_model, local_files_only=local, **no_pooler(config.model_type))
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise EncoderError(f"transformer.base_model {base_model!r}: cannot load its tokenizer or weights: {first}") from None
    check_vocabulary(base_model, encoder, tokenizer)
    if not getattr(tokenizer, "is_fast", False):
        found = type(tokenizer).__name__
        raise ConfigError(f"transformer.base_model {base_model!r}: needs a fast (Rust) tokenizer, found {found}")
    if tokenizer.pad_token is None:
        raise ConfigError(f"transformer.base_model {base_model!r}: its tokenizer has no padding token")
    return encoder, tokenizer


def no_pooler(model_type: str) -> dict[str, Any]:
    """The heads pool the token states themselves; BERT-like classes would otherwise add an unused pooler."""
    return {"add_pooling_layer": False} if model_type in ("bert", "roberta", "xlm-roberta", "albert") else {}


def check_vocabulary(where: str | Path, encoder: Any, tokenizer: Any) -> None:
    """A tokenizer that can produce ids past the embedding matrix would crash inside torch on some comment."""
    from model.e5s1 import EncoderError

    rows = int(encoder.get_input_embeddings().num_embeddings)
    if len(tokenizer) > rows:
        raise EncoderError(f"{where}: the tokenizer has {len(tokenizer)} pieces but the encoder's embedding matrix "
                           f"{rows} rows (tokenizer and weights are from different encoders)")


def encoder_prompt(base_model: str) -> str:
    """The prompt the encoder was trained with: e5 models embed "query: " + text (its model card). A folder of ours
    records it (`bazkhord encoder import`'s manifest; `bazkhord pretrain`'s report, none before it recorded one);
    only a hub id, or a folder saved elsewhere, is judged by its name."""
    for name in (ENCODER_MANIFEST, PRETRAIN_REPORT):
        path = Path(base_model) / name
        if path.exists():
            try:
                return str(json.loads(path.read_text(encoding="utf-8")).get("prompt", ""))
            except (ValueError, AttributeError):  # not JSON, or not an object
                return ""
    return "query: " if "e5" in Path(base_model).name.lower() else ""


def hidden_size(encoder: Any) -> int:
    config = encoder.config
    return int(getattr(config, "hidden_size", None) or config.dim)


# -- the network ------------------------------------------------------------------------------------------
class MultiTaskNet(nn.Module):
    """Encoder + masked mean pooling + three linear heads. Polarity logits are (batch, aspects, polarities)."""

    def __init__(self, encoder: Any, n_labels: int, n_aspects: int, n_polarities: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        size = hidden_size(encoder)
        self.dropout = nn.Dropout(dropout)
        self.sentiment = nn.Linear(size, max(n_labels, 1))
        self.aspect = nn.Linear(size, max(n_aspects, 1))
        self.polarity = nn.Linear(size, max(n_aspects * n_polarities, 1))
        self.n_aspects = n_aspects
        self.n_polarities = n_polarities

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.heads(mean_pool(self.hidden_states(input_ids, attention_mask), attention_mask))

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def heads(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pooled = self.dropout(pooled)
        polarity = self.polarity(pooled)
        if self.n_aspects and self.n_polarities:
            polarity = polarity.view(-1, self.n_aspects, self.n_polarities)
        return self.sentiment(pooled), self.aspect(pooled), polarity

    def heads_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().contiguous() for k, v in self.state_dict().items() if not k.startswith("encoder.")}


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token states where `mask` (batch, tokens) is 1."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def encoder_layers(encoder: Any) -> nn.ModuleList | None:
    """The encoder's stack of transformer layers (BERT's `encoder.layer`), or None for another architecture."""
    return getattr(getattr(encoder, "encoder", None), "layer", None)


def quantize_int8(net: MultiTaskNet, from_layer: int = 0) -> MultiTaskNet:
    """Dynamic int8 quantisation of the Linear layers (weights int8, activations quantised on the fly): every one,
    or with `from_layer` all but those of the encoder's lowest `from_layer` layers, which stay fp32.

    Where every layer was fine-tuned, int8's error in the lower layers is carried and grown by all the layers
    above them: on the sample model's dev split (2026-12-03) int8 throughout cost 2.05 points of the dev score
    (2.7 of macro-F1), int8 in the upper half none.
    """
    from torch.ao.quantization import quantize_dynamic

    if not from_layer:
        return quantize_dynamic(net, {nn.Linear}, dtype=torch.qint8)
    stack = encoder_layers(net.encoder)
    if stack is None:
        raise ValueError("int8 from a layer needs a BERT-like encoder (encoder.layer); this one has no such stack")
    kept = {id(module) for layer in list(stack)[:from_layer] for module in layer.modules()}
    names = {name for name, module in net.named_modules() if isinstance(module, nn.Linear) and id(module) not in kept}
    return quantize_dynamic(net, names, dtype=torch.qint8)


def precision_name(quantize: str, int8_from_layer: int = 0) -> str:
    """How a model folder's transformer runs, for logs and benchmark tables."""
    if quantize != "int8":
        return "fp32"
    if not int8_from_layer:
        return "int8"
    return f"int8, lowest {int8_from_layer} layer{'s' if int8_from_layer > 1 else ''} fp32"


@dataclass
class Encoded:
    input_ids: list[list[int]]
    # Per token, its (start, end) characters in the text without the prompt; (0, 0) for special tokens and the
    # prompt's own. A SentencePiece token's span starts at the space before its word: for the text's first word,
    # that space is the prompt's last character, so the span is cut at the prompt's end. Only when asked for.
    offsets: list[list[tuple[int, int]]] | None = None

    def lengths(self) -> np.ndarray:
        return np.array([len(ids) for ids in self.input_ids])


def encode(tokenizer: Any, texts: Sequence[str], max_length: int, prompt: str = "", offsets: bool = False) -> Encoded:
    """Token ids, `prompt` before every text (e5's "query: "), cut at `max_length` tokens."""
    texts = [prompt + text for text in texts] if prompt else list(texts)
    if not offsets:
        return Encoded(tokenizer(texts, truncation=True, max_length=max_length)["input_ids"])
    out = tokenizer(texts, truncation=True, max_length=max_length, return_offsets_mapping=True)
    shift = len(prompt)
    spans = [[(max(s, shift) - shift, e - shift) if e > max(s, shift) else (0, 0) for s, e in row]
             for row in out["offset_mapping"]]
    return Encoded(out["input_ids"], spans)


def token_groups(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> list[list[int]] | None:
    """For each character span, the tokens that overlap it; None when a span has none (cut off by truncation)."""
    groups = [[t for t, (s, e) in enumerate(offsets) if e > s and s < end and e > start] for start, end in spans]
    return groups if all(groups) else None


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask


def length_buckets(lengths: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Indices in batches of similar length, so little of each batch is padding."""
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


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

    def __post_init__(self) -> None:
        if self.evidence not in EVIDENCE_MODES:
            raise ValueError(f"evidence is {self.evidence!r}; expected one of {', '.join(EVIDENCE_MODES)}")
        if not isinstance(self.int8_from_layer, int) or self.int8_from_layer < 0:
            raise ValueError(f"int8_from_layer is {self.int8_from_layer!r}; expected a whole number >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def precision(self) -> str:
        return precision_name(self.quantize, self.int8_from_layer)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TransformerMeta:
        values = dict(values)
        values["blend"] = Blend.from_dict(values.get("blend", {}))
        return cls(**values)


def set_threads() -> None:
    threads = os.environ.get(THREADS_ENV)
    if threads:
        torch.set_num_threads(max(1, int(threads)))


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

    @property
    def kind(self) -> str:  # type: ignore[override]
        return "ensemble-tagger" if self.meta.blend.uses_baseline else "transformer-tagger"

    def to(self, device: str) -> TransformerTagger:
        """The encoder on another device (a GPU a batch worker was given); the TF-IDF part stays on the CPU."""
        self.device = torch.device(device)
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
        With `pooled`, the sentence vectors the heads read too (a teacher's, for distillation)."""
        n = len(normalised)
        out = Outputs(np.zeros((n, len(self.meta.labels)), dtype=np.float32),
                      np.zeros((n, len(self.meta.aspects)), dtype=np.float32),
                      np.zeros((n, len(self.meta.aspects), len(self.meta.polarities)), dtype=np.float32))
        if pooled:
            out.pooled = np.zeros((n, hidden_size(self.net.encoder)), dtype=np.float32)
        if n == 0:
            return out
        clauses = clauses if clauses and self.meta.aspects and getattr(self.tokenizer, "is_fast", False) else {}
        encoded = encode(self.tokenizer, normalised, self.meta.max_length, self.meta.prompt, offsets=bool(clauses))
        offsets = encoded.offsets or []
        groups = {i: g for i, spans in clauses.items() if (g := token_groups(offsets[i], spans))}
        pad_id = self.tokenizer.pad_token_id
        with torch.inference_mode():
            for batch in length_buckets(encoded.lengths(), self.meta.batch_size):
                ids, mask = pad_batch([encoded.input_ids[i] for i in batch], pad_id)
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
        blend = blend or self.meta.blend
        normalised = list(normalised) if normalised is not None else self.normalise(texts)
        ours = self.meta.aspects and not (self.baseline_aspects() is not None and blend.aspect_weight <= 0.0)
        segments, clauses = self.clause_spans(texts, normalised) if ours and self.meta.evidence == "spans" else (None, {})
        out = self.forward_texts(normalised, clauses)
        proba = self.blend_proba(out.logits, normalised, blend)
        if ours:
            aspects = self.aspect_tags(texts, normalised, out.presence, out.polarity, blend.aspect_weight,
                                       segments, out.clause_presence)
        elif self.meta.aspects:
            aspects = self.baseline.tag_aspects(texts, normalised)  # type: ignore[union-attr]
        else:
            aspects = [[] for _ in texts]
        return make_tags(self.labels, proba, aspects)

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
        alone = Blend(1.0, self.meta.blend.temperature, 1.0)
        out["transformer"] = lambda texts: self.tag(texts, blend=alone)
        if self.baseline is not None and self.meta.blend.uses_baseline:
            out["ensemble"] = self.tag
        return out

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
        roles[META_FILE] = "labels, lengths, threshold, blend"
        if self.baseline is not None:  # also when not blended in: evaluation scores it beside the transformer
            saved = self.baseline.save_components(folder / BASELINE_DIR)
            roles.update({f"{BASELINE_DIR}/{k}": f"baseline {v}" for k, v in saved.items()})
        return roles

    @classmethod
    def load_components(cls, folder: Path, normaliser: NormaliserConfig, taxonomy: Taxonomy | None,
                        quantize: str | None = None, int8_from_layer: int = 0) -> TransformerTagger:
        """Load the folder's parts; `quantize` ("none" / "int8", with the encoder's lowest `int8_from_layer` layers
        in fp32) overrides the saved precision (benchmarks)."""
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
        if meta.quantize == "int8":
            net = quantize_int8(net, meta.int8_from_layer)
        baseline = None
        if (folder / BASELINE_DIR).exists():
            baseline = Tagger.load_components(folder / BASELINE_DIR, normaliser, taxonomy)
        return cls(net, tokenizer, meta, normaliser, taxonomy, baseline)
