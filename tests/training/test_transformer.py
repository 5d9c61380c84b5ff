"""The transformer tagger with tiny encoders: overfit, save, reload, predict the same; determinism and resume;
every supported backbone from a local folder; pre-training; masking of missing label kinds; the ensemble and
int8 quantisation."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from bazkhord.cli import main
from bazkhord.data.errors import ConfigError, TrainingStopped
from bazkhord.data.record import FeedbackRecord
from bazkhord.evaluation.evaluate import evaluate
from bazkhord.model.aspects import EVIDENCE_SHARE, pick_evidence
from bazkhord.model.backbone import EncoderShape, load_backbone, scratch_encoder
from bazkhord.model.base import AspectTag, Tag
from bazkhord.model.folder import LoadedModel, list_models, load_model, save_model
from bazkhord.model.int8 import precision_name, quantize_int8
from bazkhord.model.metrics import sentiment_metrics
from bazkhord.model.network import MultiTaskNet, encode, pad_batch
from bazkhord.model.segments import locate_parts
from bazkhord.model.tokenizer import train_tokenizer
from bazkhord.model.transformer import ENCODER_DIR, HEADS_FILE, SPAN_EVIDENCE_SHARE, Blend, TransformerMeta, TransformerTagger
from bazkhord.training.config import load_config
from bazkhord.training.pretrain import PretrainConfig, pretrain
from bazkhord.training.train import train
from bazkhord.training.transformer import (
    IGNORE,
    STATE_FILE,
    Targets,
    TeacherAspects,
    Trainer,
    build_targets,
    changed_share,
    choose_max_length,
    choose_precision,
    class_weights,
    int8_trials,
    teacher_aspects,
)

from ..conftest import SAMPLE, TINY, write_jsonl

# A 2-layer, 32-wide encoder: seconds per run on 2 cores.
TINY_ENCODER = ["transformer.hidden=32", "transformer.layers=2", "transformer.heads=2", "transformer.intermediate=64",
                "transformer.vocab_size=600", "transformer.batch_size=16"]


def config_for(tmp_path: Path, data: Path | list[Path], *extra: str, name: str = "tiny") -> Any:
    train_value = json.dumps([str(d) for d in data]) if isinstance(data, list) else json.dumps(str(data))
    return load_config(None, [
        'model.kind="transformer"', f'model.name="{name}"', f"data.train={train_value}",
        f'output.models_dir="{tmp_path / "models"}"', f'transformer.checkpoint_dir="{tmp_path / "checkpoints"}"',
        "transformer.epochs=3", "transformer.max_length=48", *TINY_ENCODER, *extra,
    ])


@pytest.fixture(scope="module")
def trained(sample_subset: Path, tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    tmp = tmp_path_factory.mktemp("trained")
    result = train(config_for(tmp, sample_subset, "transformer.epochs=4", 'transformer.ensemble="never"',
                              'transformer.quantize="none"'))
    return load_model(result.folder)


def test_save_reload_predicts_the_same(trained: LoadedModel, sample_subset: Path) -> None:
    tagger = trained.tagger
    assert isinstance(tagger, TransformerTagger)
    assert trained.manifest["kind"] == "transformer-tagger"
    again = load_model(trained.folder).tagger
    texts = [json.loads(line)["text"] for line in sample_subset.read_text(encoding="utf-8").splitlines()[:20]]
    assert np.allclose(tagger.predict_proba(texts), again.predict_proba(texts), atol=1e-6)
    first, second = tagger.tag(texts), again.to("cpu").tag(texts)  # `to`: where a batch worker moves it to its GPU
    assert again.device.type == "cpu" and next(again.net.parameters()).device.type == "cpu"
    assert [t.sentiment for t in first] == [t.sentiment for t in second]
    assert [[a.aspect for a in t.aspects] for t in first] == [[a.aspect for a in t.aspects] for t in second]
    # The weights are safetensors and checksummed in the manifest, the training log is kept beside them.
    assert f"{ENCODER_DIR}/model.safetensors" in trained.manifest["files"]
    assert HEADS_FILE in trained.manifest["files"]
    log = [json.loads(line) for line in (trained.folder / "training_log.jsonl").read_text().splitlines()]
    assert [entry["epoch"] for entry in log] == [1, 2, 3, 4]
    assert all("macro_f1" in entry["dev"] for entry in log)


def test_the_tiny_model_learns_the_sample(trained: LoadedModel, sample_subset: Path) -> None:
    """Not a quality bar: the dev score must beat always answering the commonest class."""
    dev = trained.manifest["metrics"]["dev"]
    report = json.loads((trained.folder / "training_report.json").read_text())
    assert report["transformer"]["best_epoch"] >= 1
    assert dev["accuracy"] > 0.5, dev


def test_evidence_points_into_the_raw_text(trained: LoadedModel) -> None:
    raw = "ارسال خیلی دیر بود، ولی کیفیتش عالیه و قیمتش هم مناسبه"
    tagger = trained.tagger
    assert isinstance(tagger, TransformerTagger)
    tagger.meta.aspect_threshold = 0.01  # every aspect, so evidence is exercised
    try:
        tag = tagger.tag([raw])[0]
    finally:
        tagger.meta.aspect_threshold = load_model(trained.folder).tagger.meta.aspect_threshold  # type: ignore[attr-defined]
    assert tag.aspects
    for aspect in tag.aspects:
        assert aspect.evidence
        for span in aspect.evidence:
            assert raw[span.start : span.end] == span.text


MIXED = "ارسال خیلی دیر بود، ولی کیفیتش عالیه و قیمتش هم مناسبه"


def encoded_texts(tagger: TransformerTagger, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Records the texts of every call to `network_outputs` (the second pass over clauses goes through it)."""
    calls: list[list[str]] = []
    original = tagger.network_outputs

    def recording(texts: Any) -> Any:
        calls.append(list(texts))
        return original(texts)

    monkeypatch.setattr(tagger, "network_outputs", recording)
    return calls


def test_evidence_is_read_from_the_comments_own_pass(trained: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    """A clause's presence is the aspect head over the mean of its own tokens' states in the comment's pass."""
    tagger = trained.tagger
    assert isinstance(tagger, TransformerTagger) and tagger.meta.evidence == "spans"
    normalised = tagger.normalise([MIXED])
    parts = [text for text, _ in tagger._normalised_segments(MIXED, normalised[0])]
    spans = locate_parts(normalised[0], parts)
    assert spans is not None and len(spans) == 2
    out = tagger.forward_texts(normalised, {0: spans})
    assert np.allclose(out.logits, tagger.network_outputs(normalised)[0], atol=1e-6)
    encoded = encode(tagger.tokenizer, normalised, tagger.meta.max_length, tagger.meta.prompt, offsets=True)
    assert encoded.offsets is not None
    ids, mask = pad_batch(encoded.input_ids, tagger.tokenizer.pad_token_id)
    with torch.inference_mode():
        hidden = tagger.net.hidden_states(ids, mask)[0]
        for c, (start, end) in enumerate(spans):
            tokens = [t for t, (s, e) in enumerate(encoded.offsets[0]) if e > s and start <= s and e <= end]
            pieces = "".join(tagger.tokenizer.convert_ids_to_tokens([encoded.input_ids[0][t] for t in tokens]))
            assert pieces.replace("##", "") == parts[c].replace(" ", "").replace("،", "")
            expected = torch.sigmoid(tagger.net.heads(hidden[tokens].mean(0, keepdim=True))[1])[0].numpy()
            assert np.allclose(out.clause_presence[0][c], expected, atol=1e-5)
    # tag() encodes nothing again; "clauses" (the older way) encodes both clauses on their own.
    calls = encoded_texts(tagger, monkeypatch)
    tagger.meta.aspect_threshold, threshold = 0.0, tagger.meta.aspect_threshold
    try:
        tagger.tag([MIXED])
        assert not any(calls)
        tagger.meta.evidence = "clauses"
        tagger.tag([MIXED])
        assert calls[-1] == parts
    finally:
        tagger.meta.aspect_threshold, tagger.meta.evidence = threshold, "spans"


def test_offsets_drop_the_prompt_but_keep_the_first_word() -> None:
    """e5's SentencePiece gives "▁word" the space before it: the first word's space is the prompt's last character."""
    def tokenizer(texts: list[str], **_: Any) -> dict[str, Any]:
        assert texts == ["query: ارسال دیر"]
        return {"input_ids": [[0, 1, 2, 3, 4, 5, 6, 2]],
                "offset_mapping": [[(0, 0), (0, 3), (3, 5), (5, 6), (6, 12), (12, 16), (0, 0), (0, 0)]]}

    encoded = encode(tokenizer, ["ارسال دیر"], 16, "query: ", offsets=True)
    assert encoded.offsets == [[(0, 0), (0, 0), (0, 0), (0, 0), (0, 5), (5, 9), (0, 0), (0, 0)]]


def test_clauses_scored_from_the_one_pass_need_a_larger_share_of_the_best(trained: LoadedModel) -> None:
    """Clause scores from the comment's pass sit nearer each other: 0.6 of the best is evidence from a second pass
    (share 0.5), not from the one pass (share 0.8)."""
    tagger = trained.tagger
    assert isinstance(tagger, TransformerTagger)
    normalised = tagger.normalise([MIXED])
    segments = {0: tagger._normalised_segments(MIXED, normalised[0])}
    k = len(tagger.meta.aspects) - 1
    presence = np.zeros((1, len(tagger.meta.aspects)), dtype=np.float32)
    presence[0, k] = 0.99
    polarity = np.full((1, len(tagger.meta.aspects), len(tagger.meta.polarities)), 1 / len(tagger.meta.polarities))
    clauses = np.zeros((2, len(tagger.meta.aspects)), dtype=np.float32)
    clauses[:, k] = [0.6, 1.0]
    one_pass = tagger.aspect_tags([MIXED], normalised, presence, polarity, 1.0, segments, {0: clauses})[0]
    assert [e.text for e in one_pass[0].evidence] == [segments[0][1][1].text]
    assert SPAN_EVIDENCE_SHARE > 0.6 > EVIDENCE_SHARE
    assert pick_evidence(clauses[:, k]) == (0, 1) and pick_evidence(clauses[:, k], SPAN_EVIDENCE_SHARE) == (1,)


def test_clauses_cut_off_by_the_length_limit_are_encoded_on_their_own(trained: LoadedModel,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    tagger = trained.tagger
    assert isinstance(tagger, TransformerTagger)
    calls = encoded_texts(tagger, monkeypatch)
    short = "کیفیتش عالیه، ولی ارسال خیلی دیر بود"  # the first clause alone fills 6 tokens
    tagger.meta.aspect_threshold, threshold = 0.0, tagger.meta.aspect_threshold
    tagger.meta.max_length, length = 6, tagger.meta.max_length
    try:
        tags = tagger.tag([short, MIXED])
    finally:
        tagger.meta.aspect_threshold, tagger.meta.max_length = threshold, length
    assert len(calls[-1]) == 4  # both comments' clauses: each has one past the 6th token
    for tag, raw in zip(tags, [short, MIXED], strict=True):
        assert tag.aspects and all(a.evidence and raw[a.evidence[0].start : a.evidence[0].end] == a.evidence[0].text
                                   for a in tag.aspects)


def test_an_unknown_evidence_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="evidence is 'tokens'; expected one of spans, clauses"):
        TransformerMeta(["a"], [], [], 8, "scratch", "bert", evidence="tokens")


def test_batches_of_mixed_length_give_the_same_outputs_as_one_by_one(trained: LoadedModel) -> None:
    tagger = trained.tagger
    assert isinstance(tagger, TransformerTagger)
    texts = tagger.normalise(["عالی", "ارسال خیلی دیر بود و جعبه له شده بود و پشتیبانی جواب نداد", "بد بود", "قیمت مناسب"])
    batched = tagger.network_outputs(texts)[0]
    single = np.vstack([tagger.network_outputs([t])[0] for t in texts])
    assert np.allclose(batched, single, atol=1e-5)


def test_same_seed_same_weights(sample_subset: Path, tmp_path: Path) -> None:
    folders = [train(config_for(tmp_path / str(i), sample_subset, "transformer.epochs=1", 'transformer.ensemble="never"',
                                'transformer.quantize="none"')).folder for i in (1, 2)]
    first, second = (load_file(str(f / HEADS_FILE)) for f in folders)
    assert all(torch.equal(first[k], second[k]) for k in first)
    enc1, enc2 = (load_file(str(f / ENCODER_DIR / "model.safetensors")) for f in folders)
    assert all(torch.equal(enc1[k], enc2[k]) for k in enc1)


def test_an_interrupted_run_resumes_to_the_same_weights(sample_subset: Path, tmp_path: Path) -> None:
    args = ("transformer.epochs=2", 'transformer.ensemble="never"', 'transformer.quantize="none"')
    whole = train(config_for(tmp_path / "whole", sample_subset, *args)).folder
    config = config_for(tmp_path / "parts", sample_subset, *args)
    with pytest.raises(TrainingStopped, match="run the same command again"):
        train(config, interrupt_after=7)  # mid-way through the first epoch (12 steps each)
    assert list((tmp_path / "parts" / "checkpoints").glob(f"*/{STATE_FILE}"))
    resumed = train(config).folder
    a, b = load_file(str(whole / HEADS_FILE)), load_file(str(resumed / HEADS_FILE))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not (tmp_path / "parts" / "checkpoints").exists()  # finished: nothing left to resume, nothing kept


def test_checkpoints_live_with_the_models_and_go_once_the_model_is_saved(sample_subset: Path, tmp_path: Path) -> None:
    base = load_config(None, ['model.kind="transformer"', f"data.train={json.dumps(str(sample_subset))}",
                              f'output.models_dir="{tmp_path / "models"}"', "transformer.epochs=1",
                              "transformer.max_length=48", 'transformer.ensemble="never"', 'transformer.quantize="none"',
                              *TINY_ENCODER])
    with pytest.raises(TrainingStopped):
        train(base, interrupt_after=3)
    assert list((tmp_path / "models" / ".checkpoints").glob(f"*/{STATE_FILE}"))  # beside the models, not in the clone
    train(base)
    assert not (tmp_path / "models" / ".checkpoints").exists()
    assert [row["name"] for row in list_models(tmp_path / "models")] == [base.model.name]
    kept = load_config(None, ['model.kind="transformer"', f"data.train={json.dumps(str(sample_subset))}",
                              f'output.models_dir="{tmp_path / "kept"}"', "transformer.epochs=1",
                              "transformer.max_length=48", 'transformer.ensemble="never"', 'transformer.quantize="none"',
                              "transformer.keep_checkpoint=true", *TINY_ENCODER])
    train(kept)
    assert list((tmp_path / "kept" / ".checkpoints").glob(f"*/{STATE_FILE}"))


def tiny_backbone(kind: str, folder: Path) -> Path:
    from transformers import AutoConfig, AutoModel

    tokenizer = train_tokenizer([r["text"] for r in TINY] * 3, vocab_size=300, min_frequency=1)
    sizes = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
    if kind == "distilbert":
        sizes = {"dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64}
    if kind == "albert":
        sizes["embedding_size"] = 16
    config = AutoConfig.for_model(kind, vocab_size=len(tokenizer), max_position_embeddings=130,
                                  pad_token_id=tokenizer.pad_token_id, **sizes)
    AutoModel.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("kind", ["bert", "albert", "roberta", "distilbert", "electra"])
def test_every_supported_backbone_trains_from_a_local_folder(kind: str, tmp_path: Path, tiny_file: Path) -> None:
    backbone = tiny_backbone(kind, tmp_path / kind)
    result = train(config_for(tmp_path, tiny_file, f'transformer.base_model="{backbone}"', "transformer.epochs=1",
                              "transformer.max_length=32", 'transformer.quantize="int8"', name=kind))
    loaded = load_model(result.folder)
    assert loaded.tagger.meta.model_type == kind  # type: ignore[attr-defined]
    assert loaded.tagger.meta.quantize == "int8"  # type: ignore[attr-defined]
    tags = loaded.tagger.tag(["ارسال خیلی سریع بود"])
    assert tags[0].sentiment in loaded.tagger.labels


def test_unusable_base_models_are_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such folder"):
        load_backbone(str(tmp_path / "missing" / "model"))
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_embd=8, n_head=2).save_pretrained(tmp_path / "gpt2")
    with pytest.raises(ConfigError, match="supported: bert, albert, roberta, xlm-roberta, distilbert, electra"):
        load_backbone(str(tmp_path / "gpt2"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="cannot load its config"):
        load_backbone(str(tmp_path / "empty"))


def test_cli_reports_a_bad_base_model_without_a_stack_trace(tmp_path: Path, tiny_file: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--data", str(tiny_file), "--models-dir", str(tmp_path), "-q", "--set", 'model.kind="transformer"',
                 "--set", f'transformer.base_model="{tmp_path}/no/such/model"'])
    err = capsys.readouterr().err
    assert code == 2
    assert "error:" in err and "transformer.base_model" in err and "no such folder" in err and "Traceback" not in err


def test_pretrain_then_fine_tune_from_its_folder(tmp_path: Path, sample_subset: Path, tiny_file: Path) -> None:
    config = PretrainConfig(hidden=32, layers=2, heads=2, intermediate=64, vocab_size=600, epochs=2, batch_size=32,
                            max_length=48)
    result = pretrain([sample_subset, tiny_file], tmp_path / "encoder", config)
    report = json.loads((result.folder / "pretrain_report.json").read_text())
    assert report["texts"] == result.texts > 240
    assert report["epochs"][-1]["heldout_loss"] < report["epochs"][0]["train_loss"]  # it learned something
    with pytest.raises(ConfigError, match="not empty"):
        pretrain([tiny_file], tmp_path / "encoder", config)
    trained = train(config_for(tmp_path, tiny_file, f'transformer.base_model="{result.folder}"', "transformer.epochs=1"))
    assert load_model(trained.folder).tagger.meta.base_model == str(result.folder)  # type: ignore[attr-defined]


def test_cli_pretrain(tmp_path: Path, tiny_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "enc"
    code = main(["pretrain", "--data", str(tiny_file), "--out", str(out), "--epochs", "1", "-q",
                 "--set", "hidden=32", "--set", "layers=1", "--set", "heads=2", "--set", "intermediate=32",
                 "--vocab-size", "300"])
    assert code == 0
    assert "transformer.base_model" in capsys.readouterr().out
    assert (out / "config.json").exists() and (out / "tokenizer.json").exists()
    assert main(["pretrain", "--data", str(tiny_file), "--out", str(tmp_path / "x"), "--set", "colour=1"]) == 2


def test_rows_without_a_label_kind_are_masked_out() -> None:
    rows = [FeedbackRecord(text="a", sentiment="positive", aspects=None),
            FeedbackRecord(text="b", sentiment=None, aspects={"price": "negative"}),
            FeedbackRecord(text="c", sentiment="negative", aspects={})]
    targets = build_targets(rows, "sentiment", ["negative", "positive"], ["price", "quality"], ["negative", "positive"])
    assert targets.sentiment.tolist() == [1, IGNORE, 0]
    assert targets.aspect_mask.tolist() == [0, 1, 1]
    assert targets.aspects.tolist() == [[0, 0], [1, 0], [0, 0]]
    assert targets.polarity.tolist() == [[IGNORE, IGNORE], [0, IGNORE], [IGNORE, IGNORE]]
    weights = class_weights(torch.tensor([0, 0, 0, 1, IGNORE]), 2)
    assert weights.tolist() == pytest.approx([4 / 6, 4 / 2])


def test_each_aspect_weighs_in_the_loss_like_the_sentiment_does() -> None:
    """The presence loss is summed over the aspects, not averaged: with six aspects an average gave each a sixth of
    the sentiment's weight and the aspect head lagged behind."""
    rows = [FeedbackRecord(text="a", sentiment=None, aspects={"price": "negative"}),
            FeedbackRecord(text="b", sentiment=None, aspects={})]
    aspects = ["delivery", "price", "quality"]
    targets = build_targets(rows, "sentiment", ["negative", "positive"], aspects, ["negative", "positive"])
    a_logits = torch.tensor([[0.5, -1.0, 2.0], [0.0, 1.5, -0.5]])
    ignored = torch.nn.CrossEntropyLoss(ignore_index=IGNORE)
    presence = torch.nn.BCEWithLogitsLoss(reduction="none")
    total = Trainer.loss(targets, np.array([0, 1]), torch.zeros(2, 2), a_logits, torch.zeros(2, 3, 2), ignored, presence,
                         ignored, {"sentiment": 1.0, "aspects": 1.0, "polarity": 0.0, "distill": 0.0}, True, False)
    per_aspect = presence(a_logits, targets.aspects)
    assert float(total) == pytest.approx(float(per_aspect.sum(dim=1).mean()))
    assert float(total) > float(per_aspect.mean()) * 2


def test_two_files_with_different_label_kinds_train_one_model(tmp_path: Path, tiny_file: Path) -> None:
    sentiment_only = write_jsonl(tmp_path / "sentiment.jsonl", [
        {"text": f"{t} {i}", "sentiment": s} for i in range(6)
        for t, s in (("خیلی خوب بود", "positive"), ("خیلی بد بود", "negative"))])
    result = train(config_for(tmp_path, [tiny_file, sentiment_only], "transformer.epochs=1"))
    loaded = load_model(result.folder)
    assert set(loaded.tagger.aspect_names) >= {"delivery", "quality"}
    assert len(result.summaries) >= 2  # one line per file read


def test_max_length_follows_the_token_lengths() -> None:
    tokenizer = train_tokenizer(["یک دو سه"] * 10 + ["یک دو سه چهار پنج شش هفت هشت نه ده یازده دوازده"], 100, 1)
    chosen, stats = choose_max_length(tokenizer, ["یک دو سه"] * 19 + ["یک " * 40], 95, 256)
    assert chosen == 16  # 5 tokens at the 95th percentile, rounded up to 8, at least 16
    assert stats["max"] == 42 and stats["truncated_share"] == 0.05


def test_ensemble_and_int8_are_saved_loaded_and_scored_side_by_side(sample_subset: Path, tmp_path: Path) -> None:
    result = train(config_for(tmp_path, sample_subset, "transformer.epochs=2", 'transformer.ensemble="always"',
                              'transformer.quantize="int8"', "transformer.int8_fp32_layers=1", 'transformer.backend="torch"'))
    loaded = load_model(result.folder)
    tagger = loaded.tagger
    assert isinstance(tagger, TransformerTagger)
    assert loaded.manifest["kind"] == "ensemble-tagger" and tagger.backend == "torch"
    assert tagger.meta.blend.weight < 1.0 and tagger.baseline is not None
    # int8 above the lowest layer, as int8_fp32_layers asked: the lowest stays fp32.
    layers = tagger.net.encoder.encoder.layer
    assert tagger.meta.int8_from_layer == 1
    assert not any(dynamic_int8(m) for m in layers[0].modules()) and any(dynamic_int8(m) for m in layers[1].modules())
    texts = ["ارسال خیلی دیر بود", "کیفیت عالی بود"]
    normalised = tagger.normalise(texts)
    logits = tagger.network_outputs(normalised)[0]
    w = tagger.meta.blend.weight
    expected = w * tagger.transformer_proba(logits) + (1 - w) * tagger.baseline_proba(normalised)
    assert np.allclose(tagger.predict_proba(texts), expected)
    assert set(result.metrics["dev_by_model"]) >= {"baseline", "transformer", "ensemble", "quantized_from_layer_1"}
    metrics = evaluate(loaded, SAMPLE.parent / "feedback_test.jsonl", "test").metrics
    assert set(metrics["side_by_side"]) == {"baseline", "transformer", "ensemble"}
    assert metrics["side_by_side"]["ensemble"]["macro_f1"] == metrics["summary"]["macro_f1"]


def dynamic_int8(module: torch.nn.Module) -> bool:
    return type(module).__module__.startswith("torch.ao.nn.quantized.dynamic")


def four_layer_net() -> MultiTaskNet:
    torch.manual_seed(0)
    encoder = scratch_encoder(50, EncoderShape(hidden=16, layers=4, heads=2, intermediate=32, max_positions=32))
    return MultiTaskNet(encoder, 3, 2, 3).eval()


def test_int8_from_a_layer_keeps_the_layers_below_it_in_fp32() -> None:
    fp32 = four_layer_net()
    partly = quantize_int8(fp32, 2)
    layers = partly.encoder.encoder.layer
    for index, layer in enumerate(layers):
        linears = [m for m in layer.modules() if isinstance(m, torch.nn.Linear) or dynamic_int8(m)]
        assert linears and all(dynamic_int8(m) == (index >= 2) for m in linears)
    assert dynamic_int8(partly.sentiment) and dynamic_int8(partly.aspect) and dynamic_int8(partly.polarity)
    everywhere = quantize_int8(fp32)
    assert all(dynamic_int8(m) for m in everywhere.encoder.encoder.layer[0].modules()
               if isinstance(m, torch.nn.Linear) or dynamic_int8(m))
    assert not any(dynamic_int8(m) for m in fp32.modules())  # the fp32 net is left as it was
    ids, mask = torch.tensor([[2, 7, 9, 11, 3]]), torch.ones(1, 5, dtype=torch.long)
    with torch.no_grad():
        exact, part, full = (net(ids, mask)[0] for net in (fp32, partly, everywhere))
    assert not torch.equal(exact, part) and torch.allclose(exact, part, atol=0.1) and torch.allclose(exact, full, atol=0.1)
    assert precision_name("int8", 2) == "int8, lowest 2 layers fp32" and precision_name("none", 2) == "fp32"


def test_auto_precision_keeps_the_fewest_fp32_layers_that_dev_allows() -> None:
    fp32 = four_layer_net()
    best = {"macro_f1": 0.90, "aspect_micro_f1": 0.80}

    def lowest_layer_fp32(net: MultiTaskNet) -> tuple[dict[str, float], float]:
        """Dev scores of a net whose quality hangs on its lowest layer staying fp32 (and the share of tags changed)."""
        exact = not any(dynamic_int8(m) for m in net.encoder.encoder.layer[0].modules())
        return (dict(best), 0.01) if exact else ({"macro_f1": 0.80, "aspect_micro_f1": 0.80}, 0.2)

    assert int8_trials(12) == [0, 3, 6, 9] and int8_trials(2) == [0, 1]
    chosen = choose_precision(fp32, lowest_layer_fp32, best)
    assert chosen.from_layer == 1 and chosen.chosen == best
    assert set(chosen.scores) == {"quantized", "quantized_from_layer_1"}
    assert chosen.notes[0].startswith("int8 refused: the dev score moved by -5.00 points and 20.0% of the dev")
    assert chosen.notes[1].startswith("int8, lowest 1 layer fp32 kept: the dev score moved by +0.00 points and 1.0%")
    forced = choose_precision(fp32, lowest_layer_fp32, best, forced_from=0)
    assert forced.from_layer == 0 and forced.chosen["macro_f1"] == 0.80
    # quantize = "int8" with int8_fp32_layers: that precision, tried once, kept whatever dev says.
    above_two = choose_precision(fp32, lambda net: ({"macro_f1": 0.5}, 0.4), best, forced_from=2)
    assert above_two.from_layer == 2 and set(above_two.scores) == {"quantized_from_layer_2"}
    assert above_two.notes == ["int8, lowest 2 layers fp32 kept: the dev score moved by -35.00 points and 40.0% of "
                               "the dev comments' tags changed"]
    with pytest.raises(ConfigError, match="int8_fp32_layers is 4, but the encoder has 4 layers"):
        choose_precision(fp32, lowest_layer_fp32, best, forced_from=4)
    refused = choose_precision(fp32, lambda net: ({"macro_f1": 0.5}, 0.4), {"macro_f1": 0.9})
    assert refused.from_layer is None and refused.chosen == {"macro_f1": 0.9}
    assert set(refused.scores) == {"quantized", "quantized_from_layer_1", "quantized_from_layer_2", "quantized_from_layer_3"}
    assert len(refused.notes) == 4 and all("refused" in note for note in refused.notes)


def test_int8_that_changes_many_dev_tags_is_refused_whatever_its_dev_score() -> None:
    """Where int8 changes many tags, its dev score is mostly luck: a better score does not vouch for it."""
    fp32 = four_layer_net()
    best = {"macro_f1": 0.80}

    def lucky(net: MultiTaskNet) -> tuple[dict[str, float], float]:
        """Every int8 trial scores above fp32; int8 in the lowest layer changes 6% of the tags, above it 2%."""
        lowest_int8 = any(dynamic_int8(m) for m in net.encoder.encoder.layer[0].modules())
        return {"macro_f1": 0.81}, 0.06 if lowest_int8 else 0.02

    chosen = choose_precision(fp32, lucky, best)
    assert chosen.from_layer == 1
    assert chosen.notes[0] == ("int8 refused: the dev score moved by +1.00 points and 6.0% of the dev comments' tags "
                               "changed (at most -0.5 points and 3% allowed)")
    reference = [Tag("positive", {}, (AspectTag("price", 0.9, "negative", 0.9),)), Tag("negative", {}), Tag("neutral", {})]
    assert changed_share(reference, reference) == 0.0
    assert changed_share(reference, [reference[0], Tag("positive", {}), reference[2]]) == pytest.approx(1 / 3)
    assert changed_share(reference, [Tag("positive", {}), *reference[1:]]) == pytest.approx(1 / 3)  # an aspect lost
    polarity = [Tag("positive", {}, (AspectTag("price", 0.9, "positive", 0.9),)), *reference[1:]]
    assert changed_share(reference, polarity) == pytest.approx(1 / 3)
    # Confidences alone are not a changed tag: what a comment is tagged with is.
    assert changed_share(reference, [Tag("positive", {"x": 1.0}, (AspectTag("price", 0.6, "negative", 0.5),)),
                                     *reference[1:]]) == 0


def test_a_partly_int8_folder_is_saved_and_loaded_alike(trained: LoadedModel, tmp_path: Path) -> None:
    tagger = copy.deepcopy(trained.tagger)
    assert isinstance(tagger, TransformerTagger)
    tagger.use_runtime(None)  # PyTorch's own int8, whatever runtime the fixture's training chose
    tagger.meta.quantize, tagger.meta.int8_from_layer = "int8", 1
    loaded = load_model(save_model(tagger, tmp_path, "partly"))
    reloaded = loaded.tagger
    assert isinstance(reloaded, TransformerTagger) and reloaded.meta.precision() == "int8, lowest 1 layer fp32"
    layers = reloaded.net.encoder.encoder.layer
    assert not any(dynamic_int8(m) for m in layers[0].modules()) and any(dynamic_int8(m) for m in layers[1].modules())
    tagger.net = quantize_int8(tagger.net, 1)
    texts = ["ارسال خیلی دیر بود", "کیفیت عالی بود"]
    assert np.allclose(reloaded.predict_proba(texts), tagger.predict_proba(texts))
    with pytest.raises(ValueError, match="int8_from_layer is -1"):
        TransformerMeta.from_dict({**tagger.meta.to_dict(), "int8_from_layer": -1})


def test_aspects_blend_the_baseline_by_their_own_weight(sample_subset: Path, tmp_path: Path) -> None:
    result = train(config_for(tmp_path, sample_subset, "transformer.epochs=1", 'transformer.ensemble="always"',
                              'transformer.quantize="none"'))
    tagger = load_model(result.folder).tagger
    assert isinstance(tagger, TransformerTagger) and tagger.baseline is not None
    texts = ["ارسال خیلی دیر بود و بسته بندی پاره بود", "کیفیت عالی بود ولی قیمتش گرونه"]
    normalised = tagger.normalise(texts)
    _, ours, _ = tagger.network_outputs(normalised)
    theirs = tagger.baseline.aspects_.detect_proba(normalised)  # type: ignore[union-attr]
    columns = [tagger.baseline.aspect_names.index(name) for name in tagger.meta.aspects]
    tagger.meta.aspect_threshold = 0.0  # every aspect, so every blended confidence is checked
    tagger.meta.blend.aspect_weight = 0.3
    for i, tag in enumerate(tagger.tag(texts)):
        assert len(tag.aspects) == len(tagger.meta.aspects)
        for aspect in tag.aspects:
            k = tagger.meta.aspects.index(aspect.aspect)
            assert aspect.confidence == pytest.approx(0.3 * ours[i, k] + 0.7 * theirs[i, columns[k]], abs=1e-4)
            assert aspect.polarity in tagger.meta.polarities and aspect.evidence
    # Weight 0: the baseline's aspects exactly as it tags them alone.
    tagger.meta.blend.aspect_weight = 0.0
    assert [list(t.aspects) for t in tagger.tag(texts)] == tagger.baseline.tag_aspects(texts, normalised)


def test_the_aspect_blend_is_chosen_on_dev(sample_subset: Path, tmp_path: Path) -> None:
    from bazkhord.data.readers import read_records
    from bazkhord.training.transformer import choose_aspect_blend

    result = train(config_for(tmp_path, sample_subset, "transformer.epochs=1", 'transformer.ensemble="always"',
                              'transformer.quantize="none"'))
    tagger = load_model(result.folder).tagger
    assert isinstance(tagger, TransformerTagger)
    rows = [r for r in read_records(sample_subset).records[:120] if r.aspects is not None]
    texts = tagger.normalise([r.text for r in rows])
    perfect = np.array([[1.0 if name in (r.aspects or {}) else 0.0 for name in tagger.meta.aspects] for r in rows])
    assert choose_aspect_blend(tagger, rows, texts, perfect)[0] == 1.0
    weight, _ = choose_aspect_blend(tagger, rows, texts, np.zeros_like(perfect))
    assert weight < 1.0  # a transformer that detects nothing leaves the aspects to the baseline
    assert Blend.from_dict({"weight": 0.4, "temperature": 1.0, "aspects_from": "baseline"}).aspect_weight == 0.0
    assert Blend.from_dict({"weight": 0.4, "temperature": 1.0, "aspects_from": "transformer"}).aspect_weight == 1.0


class FixedParts:
    """A tagger stand-in whose two sentiment parts give fixed dev probabilities (choose_blend's inputs)."""

    def __init__(self, transformer: np.ndarray, baseline: np.ndarray) -> None:
        self.labels = ["a", "b", "c"]
        self.meta = type("Meta", (), {"blend": Blend()})()
        self.transformer, self.baseline = transformer, baseline

    def transformer_proba(self, logits: np.ndarray) -> np.ndarray:
        return self.transformer

    def baseline_proba(self, texts: list[str]) -> np.ndarray:
        return self.baseline


def test_the_sentiment_blend_keeps_dev_macro_f1_and_then_lowers_the_log_loss() -> None:
    from bazkhord.training.transformer import choose_blend, log_loss

    # 80 common "a", 10 "b", 10 "c": the transformer finds the rare classes (a quarter of the a's read as b);
    # the baseline says "a" for everything, confidently enough to have the lower log-loss.
    gold = ["a"] * 80 + ["b"] * 10 + ["c"] * 10
    transformer = np.array([[0.5, 0.25, 0.25]] * 60 + [[0.3, 0.4, 0.3]] * 20 + [[0.2, 0.6, 0.2]] * 10
                           + [[0.2, 0.2, 0.6]] * 10)
    baseline = np.array([[0.8, 0.1, 0.1]] * 100)
    parts = FixedParts(transformer, baseline)
    texts, logits, index = [""] * 100, np.zeros((100, 3)), np.array([["a", "b", "c"].index(g) for g in gold])

    def f1(weight: float) -> float:
        blended = weight * transformer + (1 - weight) * baseline
        return sentiment_metrics(gold, [parts.labels[k] for k in blended.argmax(axis=1)], parts.labels)["macro_f1"]

    weights = [w / 10 for w in range(11)]
    by_log_loss = min(weights, key=lambda w: log_loss(w * transformer + (1 - w) * baseline, index))
    assert f1(by_log_loss) < f1(1.0) - 0.2  # the fixture: log-loss alone would give away macro-F1
    chosen = choose_blend(parts, texts, logits, gold, always=False).weight  # type: ignore[arg-type]
    assert f1(chosen) >= max(f1(w) for w in weights) - 0.02
    forced = choose_blend(parts, texts, logits, gold, always=True).weight  # type: ignore[arg-type]
    assert forced < 1.0 and f1(forced) >= max(f1(w) for w in weights) - 0.02

    # Where blending changes no decision, every weight ties on macro-F1 and the log-loss decides: a blend.
    sharper = transformer ** 3 / (transformer ** 3).sum(axis=1, keepdims=True)
    chosen = choose_blend(FixedParts(transformer, sharper), texts, logits, gold, always=False).weight  # type: ignore[arg-type]
    assert chosen < 1.0
    assert chosen == min(weights, key=lambda w: (round(log_loss(w * transformer + (1 - w) * sharper, index), 6), -w))


def test_the_blend_follows_the_dev_measure_the_config_names() -> None:
    from bazkhord.training.transformer import choose_blend

    # 80 "a", 10 "b", 10 "c": the transformer finds the rare classes but calls half of the a's b or c; the baseline
    # says "a" for everything. Macro-F1 prefers the transformer, weighted-F1 (classes by their share) the baseline.
    gold = ["a"] * 80 + ["b"] * 10 + ["c"] * 10
    transformer = np.array([[0.6, 0.2, 0.2]] * 40 + [[0.1, 0.8, 0.1]] * 20 + [[0.1, 0.1, 0.8]] * 20
                           + [[0.4, 0.5, 0.1]] * 10 + [[0.4, 0.1, 0.5]] * 10)
    baseline = np.array([[0.8, 0.1, 0.1]] * 100)
    parts = FixedParts(transformer, baseline)
    texts, logits = [""] * 100, np.zeros((100, 3))

    def score(weight: float, measure: str) -> float:
        blended = weight * transformer + (1 - weight) * baseline
        return float(sentiment_metrics(gold, [parts.labels[k] for k in blended.argmax(axis=1)], parts.labels)[measure])

    weights = [w / 10 for w in range(11)]
    assert score(1.0, "macro_f1") > score(0.0, "macro_f1") and score(0.0, "weighted_f1") > score(1.0, "weighted_f1")
    by_macro = choose_blend(parts, texts, logits, gold, False).weight  # type: ignore[arg-type]
    by_weighted = choose_blend(parts, texts, logits, gold, False, "weighted_f1").weight  # type: ignore[arg-type]
    assert score(by_macro, "macro_f1") == max(score(w, "macro_f1") for w in weights)
    assert score(by_weighted, "weighted_f1") == max(score(w, "weighted_f1") for w in weights)
    assert by_weighted < by_macro


def test_early_stopping_scores_each_epoch_by_the_chosen_measure(sample_subset: Path, tmp_path: Path) -> None:
    result = train(config_for(tmp_path, sample_subset, "transformer.epochs=2", 'transformer.select_by="weighted_f1"',
                              'transformer.ensemble="never"', 'transformer.quantize="none"'))
    epochs = [json.loads(line) for line in (result.folder / "training_log.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(epochs) == 2
    for entry in epochs:
        dev = entry["dev"]
        assert dev["weighted_f1"] != dev["macro_f1"]  # the check below tells the two apart
        assert entry["dev_score"] == round((dev["weighted_f1"] + dev["aspect_micro_f1"]) / 2, 4)


def test_an_unknown_dev_measure_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"transformer.select_by must be one of \('macro_f1', 'weighted_f1'\), not 'f1'"):
        load_config(None, ['transformer.select_by="f1"'])


def test_heads_fit_the_encoder_they_were_trained_with() -> None:
    tokenizer = train_tokenizer(["یک دو سه"] * 5, 50, 1)
    net = MultiTaskNet(scratch_encoder(len(tokenizer), EncoderShape(16, 1, 2, 32)), 3, 2, 2)
    sentiment, aspects, polarity = net(torch.tensor([[2, 5, 3]]), torch.tensor([[1, 1, 1]]))
    assert sentiment.shape == (1, 3) and aspects.shape == (1, 2) and polarity.shape == (1, 2, 2)


def test_the_service_tags_with_a_transformer_folder_in_its_worker_process(trained: LoadedModel, tmp_path: Path) -> None:
    from ..service.helpers import api

    text = "ارسال خیلی دیر انجام شد ولی کیفیت خود گوشی عالیه"
    expected = trained.tagger.tag([text])[0]
    with api(tmp_path, trained, scopes="tag", model_process=True) as client:
        response = client.post("/v1/tag", json={"text": text})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"]["version"] == trained.version
    (result,) = body["results"]
    assert result["sentiment"] == expected.sentiment
    assert result["probabilities"] == pytest.approx(expected.probabilities, abs=1e-4)
    assert [a["aspect"] for a in result["aspects"]] == [a.aspect for a in expected.aspects]


def test_cli_trains_a_transformer_with_progress_and_gradient_accumulation(tmp_path: Path, tiny_file: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--config", str(Path(__file__).parents[2] / "training/configs/transformer.toml"),
                 "--data", str(tiny_file), "--models-dir", str(tmp_path / "models"), "--name", "cli",
                 "--set", f'transformer.checkpoint_dir="{tmp_path / "ckpt"}"', "--set", "transformer.epochs=2",
                 "--set", "transformer.grad_accum=2", *[arg for pair in (("--set", s) for s in TINY_ENCODER) for arg in pair]])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "epoch 1:" in captured.err and "epoch 2:" in captured.err  # one line per epoch with the dev scores
    assert "model folder:" in captured.out
    report = json.loads(next((tmp_path / "models" / "cli").glob("*/training_report.json")).read_text())
    assert report["transformer"]["steps"] == 2 * 1  # 24 rows, 16 a batch: 2 batches, one optimizer step an epoch


def test_the_configs_build_the_documented_compact_encoder() -> None:
    """TransformerConfig keeps literal defaults (reading a config must not import torch): they must not drift."""
    from bazkhord.training.config import TransformerConfig

    shape, config, pre = EncoderShape(), TransformerConfig(), PretrainConfig()
    for key in ("hidden", "layers", "heads", "intermediate"):
        assert getattr(config, key) == getattr(pre, key) == getattr(shape, key)


def test_distillation_learns_the_teachers_sentiment_on_unlabelled_comments(tmp_path: Path, tiny_file: Path,
                                                                            sample_model: LoadedModel) -> None:
    """A student that sees no sentiment label (its weight 0) follows the teacher through soft targets alone, on the
    training comments and on unlabelled ones; those comments count as seen, so evaluation leaves them out."""
    unlabelled = write_jsonl(tmp_path / "unlabelled.jsonl", [{"text": json.loads(line)["text"]}
                                                             for line in SAMPLE.read_text(encoding="utf-8").splitlines()[:120]])
    with unlabelled.open("a", encoding="utf-8") as out:
        out.write("not a JSON line\n")  # reported as skipped, not dropped in silence
    config = config_for(tmp_path, tiny_file, "transformer.epochs=12", "transformer.learning_rate=1e-3",
                        f"transformer.teacher={json.dumps(str(sample_model.folder))}",
                        f"data.unlabelled={json.dumps(str(unlabelled))}", 'data.taxonomy=""',
                        'transformer.loss_weights={sentiment = 0.0, aspects = 1.0, polarity = 1.0, distill = 1.0}',
                        'transformer.ensemble="never"', 'transformer.quantize="none"', "transformer.patience=12")
    result = train(config)
    full = json.loads((result.folder / "training_report.json").read_text(encoding="utf-8"))
    report = full["transformer"]
    assert report["teacher"]["unlabelled"] == 120
    assert any(r["file"].endswith("unlabelled.jsonl") and r["row"] == 121 for r in full["rejected"])
    student = load_model(result.folder).tagger
    texts = [json.loads(line)["text"] for line in SAMPLE.read_text(encoding="utf-8").splitlines()[:120]]
    teacher_says = sample_model.tagger.predict_proba(texts)
    shared = [label for label in student.labels if label in sample_model.tagger.labels]
    teacher_best = [sample_model.tagger.labels[i] for i in teacher_says.argmax(axis=1)]
    student_best = [student.labels[i] for i in student.predict_proba(texts).argmax(axis=1)]
    agreement = np.mean([s == t for s, t in zip(student_best, teacher_best, strict=True) if t in shared])
    majority = max(teacher_best.count(label) for label in set(teacher_best)) / len(teacher_best)
    assert agreement > max(0.6, majority)
    fingerprints = (result.folder / "train_fingerprints.txt").read_text(encoding="utf-8").split()
    assert len(fingerprints) >= 120


def test_a_teachers_aspects_are_moved_into_the_students_order(trained: LoadedModel) -> None:
    teacher = trained.tagger
    assert isinstance(teacher, TransformerTagger) and len(teacher.meta.aspects) >= 2
    aspects = [*reversed(teacher.meta.aspects), "not-the-teachers"]
    polarities = list(reversed(teacher.meta.polarities))
    normalised = teacher.normalise(["ارسال خیلی دیر بود", "کیفیت عالی بود ولی گران"])
    outputs = teacher.forward_texts(normalised)
    taught = teacher_aspects(teacher, outputs, normalised, aspects, polarities)
    presence = teacher.blended_presence(outputs.presence, normalised, teacher.meta.blend.aspect_weight)
    for j, aspect in enumerate(aspects[:-1]):
        k = teacher.meta.aspects.index(aspect)
        assert np.allclose(taught.presence[:, j].numpy(), presence[:, k])
        for q, name in enumerate(polarities):
            assert np.allclose(taught.polarity[:, j, q].numpy(), outputs.polarity[:, k, teacher.meta.polarities.index(name)],
                               atol=1e-6)
    assert taught.known.tolist() == [1.0] * (len(aspects) - 1) + [0.0]
    assert float(taught.presence[:, -1].abs().sum()) == 0.0


def test_the_teachers_aspects_pull_the_students_aspect_and_polarity_heads() -> None:
    """With no label of its own, a row's loss is smallest where the student's aspect and polarity outputs are the
    teacher's; an aspect the teacher lacks adds nothing."""
    presence = torch.tensor([[0.9, 0.2, 0.5]])
    polarity = torch.tensor([[[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]]])
    targets = Targets(torch.tensor([IGNORE]), torch.zeros(1, 3), torch.zeros(1), torch.full((1, 3), IGNORE),
                      teacher_aspects=TeacherAspects(presence, polarity, torch.tensor([1.0, 1.0, 0.0])))
    lw = {"sentiment": 1.0, "aspects": 1.0, "polarity": 1.0, "distill": 1.0, "distill_aspects": 1.0}
    bce, ce = torch.nn.BCEWithLogitsLoss(reduction="none"), torch.nn.CrossEntropyLoss(ignore_index=IGNORE)

    def loss(a_logits: torch.Tensor, p_logits: torch.Tensor) -> float:
        return float(Trainer.loss(targets, np.array([0]), torch.zeros(1, 3), a_logits, p_logits, ce, bce, ce, lw,
                                  has_aspects=True, has_polarities=True))

    own = torch.logit(presence)
    best = loss(own, polarity.log())
    assert best < loss(-own, polarity.log()) and best < loss(own, polarity.log().flip(-1))
    unknown = own.clone()
    unknown[0, 2] = 5.0  # the third aspect is not the teacher's: no target there
    assert loss(unknown, polarity.log()) == pytest.approx(best)
    assert loss(own, polarity.log()) > 0 and float(Trainer.loss(
        targets, np.array([0]), torch.zeros(1, 3), own, polarity.log(), ce, bce, ce, {**lw, "distill_aspects": 0.0},
        has_aspects=True, has_polarities=True)) == 0.0


def test_distillation_from_a_transformer_teaches_its_aspects(trained: LoadedModel, sample_subset: Path,
                                                             tmp_path: Path) -> None:
    """A student that sees no aspect label (its weights 0) learns to find the aspects the teacher finds."""
    config = config_for(tmp_path, sample_subset, "transformer.epochs=6", "transformer.learning_rate=1e-3",
                        f"transformer.teacher={json.dumps(str(trained.folder))}",
                        'transformer.loss_weights={sentiment = 1.0, aspects = 0.0, polarity = 0.0, distill = 1.0}',
                        'transformer.ensemble="never"', 'transformer.quantize="none"', "transformer.patience=6",
                        name="aspect-student")
    result = train(config)
    report = json.loads((result.folder / "training_report.json").read_text(encoding="utf-8"))["transformer"]
    teacher = trained.tagger
    assert isinstance(teacher, TransformerTagger)
    assert report["teacher"]["aspects"] == len(teacher.meta.aspects)
    student = load_model(result.folder).tagger
    assert isinstance(student, TransformerTagger)
    texts = [json.loads(line)["text"] for line in SAMPLE.read_text(encoding="utf-8").splitlines()[:240]]
    ours = student.network_outputs(student.normalise(texts))[1]
    normalised = teacher.normalise(texts)
    theirs = teacher.blended_presence(teacher.network_outputs(normalised)[1], normalised, teacher.meta.blend.aspect_weight)
    columns = [teacher.meta.aspects.index(a) for a in student.meta.aspects]
    correlation = np.corrcoef(ours.ravel(), theirs[:, columns].ravel())[0, 1]
    assert correlation > 0.85  # 0.96 here; 0.69 for a student taught no aspects


def test_the_teachers_sentence_vectors_are_read_from_the_pass_that_tags(trained: LoadedModel) -> None:
    tagger = trained.tagger
    assert isinstance(tagger, TransformerTagger)
    normalised = tagger.normalise(["ارسال خیلی دیر بود", "کیفیت عالی بود ولی گران", "ممنون"])
    plain, pooled = tagger.forward_texts(normalised), tagger.forward_texts(normalised, pooled=True)
    assert plain.pooled is None and pooled.pooled is not None and pooled.pooled.shape == (3, 32)
    assert np.allclose(pooled.logits, plain.logits)
    with torch.inference_mode():
        heads = tagger.net.heads(torch.from_numpy(pooled.pooled))[0].numpy()
    assert np.allclose(heads, plain.logits, atol=1e-5)  # the vectors the heads read, not some other layer's


def test_the_embedding_loss_is_the_cosine_distance_to_the_teachers_vectors() -> None:
    teacher = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    batch = np.array([2, 0])
    assert float(Trainer.embedding_loss(teacher, batch, torch.tensor([[0.5, 0.5], [4.0, 0.0]]))) == pytest.approx(0.0, abs=1e-6)
    assert float(Trainer.embedding_loss(teacher, batch, torch.tensor([[-1.0, -1.0], [4.0, 0.0]]))) == pytest.approx(1.0)
    assert float(Trainer.embedding_loss(teacher, batch, torch.tensor([[1.0, -1.0], [0.0, 1.0]]))) == pytest.approx(1.0)


def test_distillation_of_sentence_vectors_makes_the_student_see_comments_as_the_teacher_does(
        trained: LoadedModel, sample_subset: Path, tmp_path: Path) -> None:
    """A student taught only the teacher's sentence vectors (every other loss weight 0) comes to place comments as the
    teacher does: the similarities between pairs of comments agree, where a student taught the teacher's sentiment
    alone agrees less. One epoch each, so the checkpoint compared is the trained one (the dev split, which picks
    the best epoch, cannot judge a student taught no sentiment)."""
    teacher = trained.tagger
    assert isinstance(teacher, TransformerTagger)

    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    unlabelled = write_jsonl(tmp_path / "unlabelled.jsonl", [{"text": json.loads(line)["text"]} for line in lines[700:1200]])

    def student(name: str, weights: str) -> TransformerTagger:
        config = config_for(tmp_path, sample_subset, "transformer.epochs=1", "transformer.learning_rate=3e-3",
                            "transformer.batch_size=8", f"transformer.teacher={json.dumps(str(trained.folder))}",
                            f"data.unlabelled={json.dumps(str(unlabelled))}",
                            f"transformer.loss_weights={weights}", 'transformer.ensemble="never"',
                            'transformer.quantize="none"', name=name)
        result = train(config)
        report = json.loads((result.folder / "training_report.json").read_text(encoding="utf-8"))["transformer"]
        assert report["teacher"]["sentence_vectors"] is ("distill_embedding = 1.0" in weights)
        tagger = load_model(result.folder).tagger
        assert isinstance(tagger, TransformerTagger)
        return tagger

    zero = "sentiment = 0.0, aspects = 0.0, polarity = 0.0, distill_aspects = 0.0"
    texts = [json.loads(line)["text"] for line in lines[300:700]]

    def vectors(tagger: TransformerTagger) -> np.ndarray:
        pooled = tagger.forward_texts(tagger.normalise(texts), pooled=True).pooled
        assert pooled is not None
        return np.hstack([pooled, np.ones((len(texts), 1), dtype=np.float32)])

    theirs = vectors(teacher)[:, :-1]

    def agreement(tagger: TransformerTagger) -> float:
        """How much of the teacher's vectors the student's explain through a linear map (R squared), the map fitted
        on 300 comments (none the student trained on) and read on the other 100."""
        ours = vectors(tagger)
        mapping = np.linalg.lstsq(ours[:300], theirs[:300], rcond=None)[0]
        truth = theirs[300:]
        return float(1 - ((ours[300:] @ mapping - truth) ** 2).sum() / ((truth - theirs[:300].mean(0)) ** 2).sum())

    taught = agreement(student("vectors", f"{{{zero}, distill = 0.0, distill_embedding = 1.0}}"))
    untaught = agreement(student("labels", f"{{{zero}, distill = 1.0}}"))
    assert taught > untaught + 0.1, (taught, untaught)  # 0.43 against 0.25 here; 0.31 against 0.27 uncentred


def test_an_unknown_loss_weight_is_refused_with_the_known_ones() -> None:
    assert load_config(None, ["transformer.loss_weights={distill_aspects = 0.0}"]).transformer.loss_weights == {
        "distill_aspects": 0.0}
    with pytest.raises(ConfigError, match="takes sentiment, aspects, polarity, distill, distill_aspects, "
                                          "distill_embedding >= 0"):
        load_config(None, ["transformer.loss_weights={distill_aspect = 1.0}"])


def test_a_teacher_without_shared_labels_is_refused(tmp_path: Path, sample_model: LoadedModel) -> None:
    scores = write_jsonl(tmp_path / "scores.jsonl", [{"text": f"متن شماره {i} خوب", "sentiment_score": i % 3 - 1}
                                                     for i in range(12)])
    config = config_for(tmp_path, scores, f"transformer.teacher={json.dumps(str(sample_model.folder))}",
                        'data.label="sentiment_score"', 'data.taxonomy=""')
    with pytest.raises(ConfigError, match="none of this model's"):
        train(config)
