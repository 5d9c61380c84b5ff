"""Where a model folder's encoder runs when it is served or batch-tagged: a GPU when there is one (or when asked
for), else the CPU. Chosen by `--device` on `serve` and `tag-batch`, which set BAZKHORD_DEVICE for every process
that loads the model (the service's model worker, each of `--workers`)."""

from __future__ import annotations

import os
from typing import Any

from bazkhord.data.errors import ConfigError

DEVICE_ENV = "BAZKHORD_DEVICE"
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(wanted: str | None = None) -> str:
    """"cuda" or "cpu" for `wanted` (else BAZKHORD_DEVICE, else "auto": a GPU where torch sees one). Asking for a GPU
    that is absent is an error, never a silent fall back to the CPU."""
    wanted = wanted or os.environ.get(DEVICE_ENV) or "auto"
    if wanted not in DEVICES:
        raise ConfigError(f"device {wanted!r} ({DEVICE_ENV} or --device) is not one of {', '.join(DEVICES)}")
    if wanted == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if wanted == "cuda":
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise ConfigError(f"a GPU was asked for (--device cuda or {DEVICE_ENV}=cuda), but torch {torch.__version__} "
                          f"({build}) sees none; use --device auto or cpu")
    return "cpu"


def place(tagger: Any) -> None:
    """Move a tagger's encoder to the GPU where one is wanted and present; a model with no encoder stays put."""
    if hasattr(tagger, "to") and resolve_device() == "cuda":
        tagger.to("cuda")
