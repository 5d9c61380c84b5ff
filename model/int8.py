"""Dynamic int8 of the transformer's Linear layers, whole or above its lowest layers."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from bazkhord.model.network import MultiTaskNet, encoder_layers

# torch's eager int8 API warns that it moves to torchao; it is what torch 2.13 ships, and it is measured here.
warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated.*")
warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*deprecated.*")


def quantize_int8(net: MultiTaskNet, from_layer: int = 0) -> MultiTaskNet:
    """Dynamic int8 quantisation of the Linear layers (weights int8, activations quantised on the fly): every one,
    or with `from_layer` all but those of the encoder's lowest `from_layer` layers, which stay fp32.

    Where every layer was fine-tuned, int8's error in the lower layers is carried and grown by all the layers
    above them: that is why the lowest layers may stay fp32 (docs/BENCHMARKS.md, "Precision").
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
