"""The ONNX Runtime backend with a tiny encoder: export, precision and runtime chosen on dev, the folder recording
them, the same answers as PyTorch; length-grouped batches, repeats encoded once, one encoder pass for evaluation's
side by side; and a GPU asked for where there is none."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bazkhord.cli import main
from bazkhord.data.errors import ConfigError, ModelFolderError
from bazkhord.evaluation.evaluate import evaluate
from bazkhord.model.device import resolve_device
from bazkhord.model.folder import LoadedModel, load_model, read_manifest
from bazkhord.model.network import length_buckets, length_groups, padding_share
from bazkhord.model.onnx_encoder import ONNX_FILE, Exporter, OnnxEncoder, cpu_flags, layer_of, quantise
from bazkhord.model.transformer import META_FILE, TransformerTagger
from bazkhord.training.backend import changed_share, probability_drift
from bazkhord.training.train import train

from ..conftest import REPO, SAMPLE_TEST
from .test_transformer import config_for

# The fp32 ONNX graph computes what PyTorch computes, in another order of additions: probabilities agree this closely.
FP32_TOLERANCE = 1e-4


def sample_texts(n: int = 120) -> list[str]:
    lines = SAMPLE_TEST.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines[:n]]


def load_as(loaded: LoadedModel, backend: str, quantize: str | None = None) -> TransformerTagger:
    tagger = loaded.tagger
    return TransformerTagger.load_components(loaded.folder, tagger.normaliser, tagger.taxonomy, quantize=quantize,
                                             backend=backend)


def tiny_model(data: Path, factory: pytest.TempPathFactory, name: str, *settings: str) -> LoadedModel:
    """A tiny transformer trained for 3 epochs with these settings, in a folder of its own."""
    return load_model(train(config_for(factory.mktemp(name), data, "transformer.epochs=3", *settings)).folder)


@pytest.fixture(scope="module")
def onnx_fp32(sample_subset: Path, tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    """A tiny model served by ONNX Runtime at fp32 (backend forced, no int8)."""
    return tiny_model(sample_subset, tmp_path_factory, "onnx-fp32", 'transformer.ensemble="always"',
                      'transformer.quantize="none"', 'transformer.backend="onnx"')


@pytest.fixture(scope="module")
def torch_only(sample_subset: Path, tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    return tiny_model(sample_subset, tmp_path_factory, "torch-only", 'transformer.ensemble="never"',
                      'transformer.quantize="int8"', 'transformer.backend="torch"')


def test_the_folder_records_its_runtime_and_serves_with_it(onnx_fp32: LoadedModel) -> None:
    meta = json.loads((onnx_fp32.folder / META_FILE).read_text(encoding="utf-8"))
    assert meta["backend"] == "onnx" and meta["onnx_quantize"] == "none"
    assert ONNX_FILE in read_manifest(onnx_fp32.folder)["files"]  # checksummed like the weights
    tagger = onnx_fp32.tagger
    assert isinstance(tagger, TransformerTagger) and tagger.backend == "onnx" and tagger.runtime is not None
    report = json.loads((onnx_fp32.folder / "training_report.json").read_text(encoding="utf-8"))
    assert report["transformer"]["dev_choices"]["backend"] == "onnx"
    assert any("ONNX Runtime fp32" in note for note in report["transformer"]["dev_choices"]["notes"])


def test_both_runtimes_answer_the_same(onnx_fp32: LoadedModel) -> None:
    """The ensemble, aspects and evidence on top of either encoder: identical labels, probabilities within
    FP32_TOLERANCE, the same evidence spans."""
    texts = sample_texts()
    ours, theirs = load_as(onnx_fp32, "onnx").tag(texts), load_as(onnx_fp32, "torch").tag(texts)
    same = np.mean([a.sentiment == b.sentiment for a, b in zip(ours, theirs, strict=True)])
    assert same >= 0.99
    assert changed_share(theirs, ours) <= 0.01
    for a, b in zip(ours, theirs, strict=True):
        assert max(abs(a.probabilities[k] - b.probabilities[k]) for k in a.probabilities) <= FP32_TOLERANCE
        if [x.aspect for x in a.aspects] == [x.aspect for x in b.aspects]:
            assert [x.evidence for x in a.aspects] == [x.evidence for x in b.aspects]


def test_the_backend_can_be_overridden_and_refuses_a_missing_graph(onnx_fp32: LoadedModel, torch_only: LoadedModel,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAZKHORD_BACKEND", "torch")
    assert load_model(onnx_fp32.folder).tagger.backend == "torch"  # type: ignore[attr-defined]
    monkeypatch.setenv("BAZKHORD_BACKEND", "onnx")
    with pytest.raises(ModelFolderError, match=f"no {ONNX_FILE}.*bazkhord onnx"):
        load_model(torch_only.folder)
    monkeypatch.setenv("BAZKHORD_BACKEND", "tensorflow")
    with pytest.raises(ModelFolderError, match="not one of torch, onnx"):
        load_model(onnx_fp32.folder)


def test_a_torch_folder_keeps_working_and_the_command_adds_onnx(torch_only: LoadedModel,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert torch_only.tagger.backend == "torch"  # type: ignore[attr-defined]
    root = torch_only.folder.parent.parent
    code = main(["onnx", str(torch_only.folder), "--backend", "onnx", "--models-dir", str(root)])
    out = capsys.readouterr().out
    assert code == 0 and "new version" in out and "ONNX Runtime" in out
    newest = load_model(torch_only.name, root)
    assert newest.version != torch_only.version and newest.tagger.backend == "onnx"  # type: ignore[attr-defined]
    meta = newest.tagger.meta  # type: ignore[attr-defined]
    assert meta.quantize == "int8"  # the torch precision the folder was saved with stays its own
    record = json.loads((newest.folder / "training_report.json").read_text(encoding="utf-8"))
    assert record["transformer"]["onnx_export"]["from_version"] == torch_only.version
    assert (newest.folder / "train_fingerprints.txt").read_text() == (torch_only.folder / "train_fingerprints.txt").read_text()
    texts = sample_texts(60)
    assert changed_share(load_as(newest, "torch").tag(texts), torch_only.tagger.tag(texts)) == 0.0


def test_the_command_refuses_a_model_without_an_encoder(sample_model: LoadedModel,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["onnx", str(sample_model.folder)])
    assert code == 2 and "only a transformer folder has an encoder" in capsys.readouterr().err


def test_int8_trials_are_per_layer_and_judged_on_drift(onnx_fp32: LoadedModel) -> None:
    tagger = load_as(onnx_fp32, "torch", quantize="none")
    texts = sample_texts(60)
    reference = tagger.tag(texts, blend=tagger.alone())  # the transformer's own probabilities, no baseline blended in
    with Exporter(tagger.net.encoder) as exporter:
        import onnx

        lowest = exporter.int8(1)
        graph = onnx.load(str(lowest.path), load_external_data=False).graph
        integer = {layer_of(n) for n in graph.node if "Integer" in n.op_type or n.op_type.startswith("Q")} - {None}
        assert integer == {1}  # the lowest layer stays fp32, the other is int8
        tagger.use_runtime(OnnxEncoder(exporter.int8(0).path), "int8", 0)
        drifted = tagger.tag(texts, blend=tagger.alone())
    assert probability_drift(reference, reference) == 0.0
    assert probability_drift(reference, drifted) > 0.0  # int8 moves probabilities a little


def test_int8_for_a_cpu_without_vnni_runs_too(onnx_fp32: LoadedModel, tmp_path: Path) -> None:
    """7-bit weights (ONNX Runtime's reduce_range), what a CPU without VNNI gets, whatever this CPU has."""
    tagger = load_as(onnx_fp32, "torch", quantize="none")
    texts = sample_texts(40)
    reference = tagger.tag(texts, blend=tagger.alone())
    with Exporter(tagger.net.encoder) as exporter:
        quantise(exporter.fp32.path, tmp_path / "seven-bit.onnx", reduce_range=True)
        tagger.use_runtime(OnnxEncoder(tmp_path / "seven-bit.onnx"), "int8", 0)
        seven = tagger.tag(texts, blend=tagger.alone())
    assert 0.0 < probability_drift(reference, seven) < 0.05


def test_length_groups_cut_padding() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(6, 60, 64)
    groups = length_groups(lengths, 64)
    assert sorted(np.concatenate(groups).tolist()) == list(range(64))
    assert all(len(g) <= 64 for g in groups)
    assert padding_share(lengths, groups) < padding_share(lengths, list(length_buckets(lengths, 64))) / 3
    same = np.full(40, 20)
    assert len(length_groups(same, 64)) == 1  # nothing to gain from cutting equal lengths
    assert len(length_groups(same, 16)) == 3  # as few calls as the row limit allows


def test_repeats_are_encoded_once(onnx_fp32: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    tagger = load_as(onnx_fp32, "onnx")
    assert tagger.runtime is not None
    rows: list[int] = []
    inner = tagger.runtime.__call__

    class Counting:
        def __call__(self, ids: np.ndarray, mask: np.ndarray) -> Any:
            rows.append(len(ids))
            return inner(ids, mask)

    monkeypatch.setattr(tagger, "runtime", Counting())
    texts = ["عالی بود", "غذا سرد بود", "عالی بود", "عالی بود", "غذا سرد بود و پیک دیر رسید"]
    tags = tagger.tag(texts)
    assert sum(rows) == 3  # three distinct texts
    alone = load_as(onnx_fp32, "onnx").tag(["عالی بود"])[0]
    assert tags[0] == tags[2] == tags[3] and tags[0].probabilities == alone.probabilities


def test_torch_runs_on_one_thread_around_onnx_runtime(onnx_fp32: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where ONNX Runtime encodes, torch's pooling and heads run on one thread (their parallel regions would wait for
    a core ONNX Runtime or the server holds), and the process's thread count is restored after; PyTorch's own
    encoder keeps every thread."""
    import torch

    seen: dict[str, list[int]] = {"onnx": [], "torch": []}
    before = torch.get_num_threads()
    try:
        for backend in seen:
            tagger = load_as(onnx_fp32, backend)
            heads = tagger.net.heads

            def counting(pooled: torch.Tensor, heads: Any = heads, into: list[int] = seen[backend]) -> Any:
                into.append(torch.get_num_threads())
                return heads(pooled)

            monkeypatch.setattr(tagger.net, "heads", counting)
            torch.set_num_threads(2)
            tagger.tag(["غذا سرد بود", "پیک دیر رسید و غذا سرد بود"])
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert seen["onnx"] and set(seen["onnx"]) == {1}
    assert seen["torch"] and set(seen["torch"]) == {2}


def test_evaluation_runs_the_encoder_once(onnx_fp32: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    tagger = onnx_fp32.tagger
    assert isinstance(tagger, TransformerTagger)
    passes: list[int] = []
    forward = tagger._forward

    def counting(normalised: Any, clauses: Any, pooled: bool) -> Any:
        passes.append(len(normalised))
        return forward(normalised, clauses, pooled)

    monkeypatch.setattr(tagger, "_forward", counting)
    progress: list[tuple[int, int]] = []
    result = evaluate(onnx_fp32, SAMPLE_TEST, write=False, progress=lambda done, total: progress.append((done, total)))
    assert set(result.metrics["side_by_side"]) == {"baseline", "transformer", "ensemble"}
    rows = result.metrics["data"]["rows"]
    assert progress[-1] == (rows, rows)
    # One pass over the comments for the model and both variants (three before), and for each variant the clauses of
    # the few comments cut off at the length limit.
    assert rows <= sum(passes) < 1.5 * rows
    monkeypatch.undo()
    alone = tagger.variants()["transformer"](sample_texts(40))
    assert alone == tagger.variant_tags(sample_texts(40))["transformer"]


def test_a_gpu_asked_for_where_there_is_none_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    if torch.cuda.is_available():
        assert resolve_device("cuda") == "cuda"
        return
    assert resolve_device("auto") == "cpu"
    with pytest.raises(ConfigError, match="GPU was asked for"):
        resolve_device("cuda")
    monkeypatch.setenv("BAZKHORD_DEVICE", "cpu")  # what --device sets; the test must not leave it behind
    out = tmp_path / "parts"
    for command in (["serve", "--device", "cuda"], ["tag-batch", "--input", str(SAMPLE_TEST), "--out", str(out),
                                                     "--device", "cuda"]):
        assert main(command) == 2
        assert "GPU was asked for" in capsys.readouterr().err
        assert os.environ["BAZKHORD_DEVICE"] == "cuda"
    assert not out.exists()  # refused before anything was written


def test_cpu_features_are_read() -> None:
    flags = cpu_flags()
    assert set(flags) >= {"avx2", "avx512_vnni", "avx_vnni"}
    if Path("/proc/cpuinfo").exists() and "avx2" in Path("/proc/cpuinfo").read_text():
        assert flags["avx2"]


@pytest.mark.slow
def test_the_accurate_model_answers_alike_on_both_runtimes() -> None:
    """`make run`'s model (skipped where it is not trained): ONNX Runtime at fp32 against PyTorch at fp32 on the whole
    sample test file."""
    try:
        loaded = load_model("sample-e5", REPO / "artifacts" / "models")
    except ModelFolderError:
        pytest.skip("artifacts/models/sample-e5 is not trained (make train)")
    texts = sample_texts(400)
    reference = load_as(loaded, "torch", quantize="none")
    ours = load_as(loaded, "torch", quantize="none")
    with Exporter(ours.net.encoder) as exporter:
        ours.use_runtime(OnnxEncoder(exporter.fp32.path))
        a, b = ours.tag(texts), reference.tag(texts)
    assert np.mean([x.sentiment == y.sentiment for x, y in zip(a, b, strict=True)]) >= 0.99
    assert max(abs(x.probabilities[k] - y.probabilities[k]) for x, y in zip(a, b, strict=True)
               for k in x.probabilities) <= 1e-3
