"""The serving benchmark's arithmetic: operations per comment with padding, the bound they give, padding and repeats,
the kernels it times (small shapes here), and the section it writes (the runs are a benchmark)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from benchmarks import serving


def profile(layers: int = 2, int8_from: int | None = None) -> serving.Profile:
    return serving.Profile("accurate", Path("/models/m/v1"), layers, 4, 8, "fp32", "int8", int8_from, 0)


def test_operations_count_the_padding() -> None:
    lengths = np.array([3, 5])
    dense, attention = serving.ops_per_comment(lengths, profile(), lambda n: [np.arange(len(n))])
    # one batch of 2 rows padded to 5 tokens: 10 token rows through 2 layers of 4*16 + 2*32 weights, twice for FLOPs
    assert dense == 2 * 10 * (4 * 16 + 2 * 4 * 8) * 2 / 2
    assert attention == 4 * 2 * 5 * 5 * 4 * 2 / 2
    unpadded, _ = serving.ops_per_comment(lengths, profile(), lambda n: [np.array([0]), np.array([1])])
    assert unpadded < dense


def test_the_bound_uses_each_precision_s_rate() -> None:
    fp32 = serving.bound(1e9, 0.0, profile(4), None, 100.0, 400.0)
    half = serving.bound(1e9, 0.0, profile(4), 2, 100.0, 400.0)
    int8 = serving.bound(1e9, 0.0, profile(4), 0, 100.0, 400.0)
    assert fp32 == 100.0 and int8 == 400.0 and fp32 < half < int8


def test_repeats_and_padding() -> None:
    within, anywhere = serving.repeat_shares(["عالی بود", "عالي بود", "بد بود"])
    # Arabic ي normalised: the second is the first again
    assert within == pytest.approx(1 / 3) and anywhere == pytest.approx(1 / 3)
    before, after = serving.padding(np.array([4, 40, 5, 6, 41, 7, 4, 39]), 8)
    assert after < before / 2


def test_the_kernels_are_timed(tmp_path: Path) -> None:
    shapes = serving.layer_shapes(16, 32)
    assert shapes == [(16, 48), (16, 16), (16, 32), (32, 16)]
    assert serving.torch_gemm_rate(8, shapes) > 0
    assert serving.ort_gemm_rate(8, shapes, False, tmp_path) > 0
    assert serving.ort_gemm_rate(8, shapes, True, tmp_path) > 0


def test_the_section_reports_what_it_measured() -> None:
    accurate, fast = profile(12, 6), serving.Profile("fast", Path("/models/f/v2"), 3, 256, 1024, "int8", "int8", 0, 0)
    def m(name: str, backend: str, precision: str, rates: tuple[float, float], f1: float, http: tuple[float, float],
          bound: float) -> serving.Measured:
        return serving.Measured(name, backend, precision, per_second=rates[0], encoder_per_second=rates[1],
                                batch_dependence=0.05, single_p50=10, single_p99=20,
                                test={"macro_f1": f1, "aspect_micro_f1": 0.7}, dev=0.98,
                                http={1: (http[0], 15, 27), 16: (http[1], 110, 140)}, bound=bound)

    measured = {("accurate", "torch"): m("accurate", "torch", "int8, lowest 6 layers fp32", (100, 150), 0.7, (40, 80), 600),
                ("accurate", "onnx"): m("accurate", "onnx", "int8", (170, 300), 0.71, (64, 140), 1000),
                ("fast", "onnx"): m("fast", "onnx", "int8", (880, 2000), 0.7, (230, 440), 13000)}
    roof = {"torch fp32": {432: 285.0, 27: 149.0}, "ONNX Runtime fp32": {432: 290.0, 27: 218.0},
            "ONNX Runtime int8": {432: 1229.0, 27: 616.0}}
    lines = serving.render([accurate, fast], measured, roof, {"accurate": (1.13e9, 1.5e7), "fast": (8e7, 2e6)},
                           {"accurate": (0.43, 0.06)}, [("shipped sample", 1580, 0.0, 0.001)], 200.0,
                           argparse.Namespace(seconds=15))
    text = "\n".join(lines)
    assert "python -m benchmarks.serving" in text and "CPU features" in text
    assert "| ONNX Runtime int8 | 1229 GOP/s | 616 GOP/s |" in text
    assert "tag() 1.70x, HTTP at 16 clients 1.75x" in text
    assert "tag() 5.2x" in text  # the fast profile against the accurate one at its faster runtime
    assert "| 5.0% | 300 (30%) | 170 (17%) |" in text  # tags changed by batching; encoder and tag() against the bound
    assert "43% of the tokens computed were padding" in text and "| shipped sample | 1,580 | 0.0% | 0.1% |" in text
