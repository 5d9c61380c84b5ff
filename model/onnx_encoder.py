"""The transformer's encoder served by ONNX Runtime (PyTorch stays for training).

The fine-tuned encoder is exported once to ONNX, its graph fused by ONNX Runtime's transformer optimiser (attention,
skip + LayerNorm, bias + GELU, embeddings + LayerNorm), and optionally made int8: dynamic quantisation of the MatMul
and attention weights, above the encoder's lowest layers where dev asks for it, with 7-bit weights ("reduce range")
on a CPU without VNNI, where 8-bit products can saturate. The three heads stay in torch and read the encoder's token
states, so clause evidence and the ensemble work exactly as with the PyTorch encoder.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ONNX_FILE = "encoder.onnx"
BACKENDS = ("torch", "onnx")
BACKEND_ENV = "BAZKHORD_BACKEND"  # "torch" serves a folder's PyTorch encoder even where it has an ONNX one
THREADS_ENV = "BAZKHORD_TORCH_THREADS"  # threads of either runtime (the name predates ONNX Runtime)
OPSET = 17
# ONNX Runtime's optimiser knows these encoders' graphs as "bert" (RoBERTa and XLM-R, e5's family, included).
BERT_LIKE = ("bert", "roberta", "xlm-roberta", "electra", "camembert")
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")


def cpu_flags() -> dict[str, bool]:
    """The CPU's vector features that decide which int8 kernels run (Linux's /proc/cpuinfo; all False elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        text = ""
    line = re.search(r"^flags\s*:(.*)$", text, re.M)
    found = set(line.group(1).split()) if line else set()
    return {flag: flag in found for flag in CPU_FLAGS}


def has_vnni() -> bool:
    flags = cpu_flags()
    return flags["avx512_vnni"] or flags["avx_vnni"]


def usable_cores() -> int:
    """The cores this process may run on (a container's or taskset's limit, not the machine's count)."""
    threads = os.environ.get(THREADS_ENV)
    if threads:
        return max(1, int(threads))
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class OnnxEncoder:
    """An ONNX Runtime session over an exported encoder: token ids and mask in, token states out. Made from a
    model folder's file, or from a graph in memory (a training run's choice, until the folder is saved)."""

    def __init__(self, source: Path | bytes, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # As many threads as cores this process may use (not the machine's count, which a container may exceed).
        self.threads = threads or usable_cores()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        # No busy-waiting between runs: a spinning pool thread takes a core from the Python thread that tokenises and
        # tags around the encoder, which on two cores costs a small model more than the spinning saves.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.source = source
        model = source if isinstance(source, bytes) else str(source)
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}

    def __reduce__(self) -> tuple[Any, tuple[Path | bytes, int]]:
        # A session cannot be copied or pickled: a copy (a tagger deep-copied, sent to a worker) opens its own.
        return OnnxEncoder, (self.source, self.threads)

    def save(self, target: Path) -> None:
        if isinstance(self.source, bytes):
            target.write_bytes(self.source)
        else:
            shutil.copyfile(self.source, target)

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": input_ids.astype(np.int64), "attention_mask": attention_mask.astype(np.int64)}
        return self.session.run(["hidden"], {k: v for k, v in feed.items() if k in self.inputs})[0]  # type: ignore[no-any-return]


# -- export -------------------------------------------------------------------------------------------------
def export(encoder: Any, path: Path) -> None:
    """The PyTorch encoder as an ONNX graph with batch and length dynamic; attention written out (eager), which is
    the form ONNX Runtime's optimiser recognises and fuses."""
    import torch

    class Hidden(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # type: ignore[no-any-return]

    was = getattr(encoder.config, "_attn_implementation", None)
    if hasattr(encoder, "set_attn_implementation"):
        encoder.set_attn_implementation("eager")
    ids = torch.tensor([[0, 5, 6, 7, 2], [0, 8, 2, 1, 1]], dtype=torch.long)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.long)
    axes = {0: "batch", 1: "tokens"}
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            # The tracer's notes on shapes it keeps as constants (none of them varies with the batch or its length:
            # the tests compare the graph's outputs with PyTorch's at other shapes) and on its own deprecation.
            warnings.simplefilter("ignore")
            torch.onnx.export(Hidden(encoder.eval()), (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
                              output_names=["hidden"], opset_version=OPSET, dynamo=False,
                              dynamic_axes={"input_ids": axes, "attention_mask": axes, "hidden": axes})
    finally:
        if was and hasattr(encoder, "set_attn_implementation"):
            encoder.set_attn_implementation(was)


def optimise(source: Path, target: Path, config: Any) -> dict[str, int]:
    """ONNX Runtime's transformer fusions; returns how many of each fused operator the graph now has (none for an
    encoder the optimiser does not know: the exported graph is kept as it is)."""
    from onnxruntime.transformers.optimizer import optimize_model

    model_type = getattr(config, "model_type", "")
    if model_type not in BERT_LIKE:
        target.write_bytes(source.read_bytes())
        return {}
    heads, hidden = int(config.num_attention_heads), int(config.hidden_size)
    with quiet_logs():  # the optimiser logs every fusion at INFO on the root logger
        optimised = optimize_model(str(source), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0)
        optimised.save_model_to_file(str(target))
    return {k: v for k, v in optimised.get_fused_operator_statistics().items() if v}


@contextmanager
def quiet_logs() -> Iterator[None]:
    """ONNX Runtime's Python tools log through the root logger: INFO and WARNING lines off while they run."""
    before = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(before)


def layer_of(node: Any) -> int | None:
    """The encoder layer a node belongs to: "/…/layer.3/…" in an exported name, or "Attention_3" once fused."""
    found = re.search(r"layer\.(\d+)/", node.name) or re.fullmatch(r"Attention_(\d+)", node.name)
    return int(found.group(1)) if found else None


def quantise(source: Path, target: Path, fp32_layers: int = 0, reduce_range: bool | None = None) -> None:
    """Dynamic int8 of the MatMul and attention weights (activations quantised as each batch runs, so no calibration
    set is needed); the lowest `fp32_layers` layers and, with them, the embeddings stay fp32.

    Weights get a scale per output channel: one scale per matrix changed far more tags of comments from outside the
    training domain, at the same speed. Activations are not calibrated: static quantisation of this graph leaves
    them in fp32 (weights alone in int8), and the 8-bit block kernel that quantises them finely (MatMulNBits) is
    slower than fp32 on CPU, so one range per batch is the fast path and dev decides how many layers take it."""
    import onnx
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source), load_external_data=False).graph
    kept = [n.name for n in graph.node if (layer := layer_of(n)) is not None and layer < fp32_layers]
    types = ["MatMul", "Attention"] + ([] if fp32_layers else ["EmbedLayerNormalization"])
    reduce_range = not has_vnni() if reduce_range is None else reduce_range
    with quiet_logs():  # its advice to pre-process the graph is for static quantisation
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=types,
                         nodes_to_exclude=kept, per_channel=True, reduce_range=reduce_range,
                         extra_options={"DefaultTensorType": TensorProto.FLOAT})


@dataclass
class Built:
    """An exported encoder at one precision, ready to serve, in a temporary folder until the model is saved."""

    path: Path
    quantize: str  # "none" | "int8"
    int8_from_layer: int
    fused: dict[str, int]


class Exporter:
    """Exports a PyTorch encoder once, then makes the precisions a choice tries, in its own temporary folder."""

    def __init__(self, encoder: Any) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="bazkhord-onnx-"))
        raw = self.folder / "exported.onnx"
        export(encoder, raw)
        self.fp32 = Built(self.folder / "fp32.onnx", "none", 0, optimise(raw, self.folder / "fp32.onnx", encoder.config))
        raw.unlink()

    def int8(self, fp32_layers: int) -> Built:
        path = self.folder / f"int8-{fp32_layers}.onnx"
        if not path.exists():
            quantise(self.fp32.path, path, fp32_layers)
        return Built(path, "int8", fp32_layers, self.fp32.fused)

    def close(self) -> None:
        for path in self.folder.iterdir():
            path.unlink()
        self.folder.rmdir()

    def __enter__(self) -> Exporter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
