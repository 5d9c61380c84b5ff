"""Corrections of stored comments over the API and in the workspace: stored beside the model's tags, answered and
counted as human labels, refused clearly when wrong; the review queue; the export; retraining behind the gate."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bazkhord.cli import main
from bazkhord.data.normalise import normalise
from bazkhord.data.readers import read_records
from bazkhord.model.folder import LATEST_FILE, LoadedModel
from bazkhord.service import retraining
from bazkhord.service.app import create_app
from bazkhord.service.auth import KeyStore
from bazkhord.service.db import Correction, Feedback, ModelActivation, RetrainJob, ThemeStatement, utcnow
from bazkhord.service.retraining import REASONS, Score, decide, retrain
from bazkhord.service.routes.workspace import RETRAIN_REASONS
from bazkhord.service.settings import Settings
from bazkhord.service.store import NewFeedback
from tests.conftest import SAMPLE, SAMPLE_TEST
from tests.service.test_theme_runs import fill

FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, sample_model: LoadedModel) -> Iterator[tuple[Any, Path, dict[str, str]]]:
    folder = tmp_path_factory.mktemp("corrections")
    models = folder / "models"
    shutil.copytree(sample_model.folder, models / sample_model.name / sample_model.version)
    (models / sample_model.name / LATEST_FILE).write_text(sample_model.version + "\n", encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BAZKHORD_ENCODER", "none")
        app = create_app(Settings(database_url=f"sqlite:///{folder / 'store.db'}", model_process=False, json_logs=False,
                                  theme_run_minutes=0, auth_cache_seconds=0, sync_seconds=0.2, models_dir=models,
                                  model=sample_model.name, review_size=40, retrain_test_file=str(SAMPLE_TEST),
                                  retrain_min_corrections=20))
        with TestClient(app):
            services = app.state.services
            fill(services.store, sample_model, limit=400)
            phone = "سلام شماره من 09121234567 است، غذا سرد رسید"
            services.store.add([NewFeedback("with-phone", phone, channel="sms")], sample_model.tagger.tag([phone]),
                               sample_model.name, sample_model.version)
            assert services.jobs.request("demand", "test") is not None and services.jobs.wait(300)
            keys = KeyStore(services.engine)
            made = {scopes: keys.create(f"k-{scopes}", scopes).key
                    for scopes in ("report", "report,curate", "admin", "ingest")}
            yield app, folder, made


def api(app: Any, key: str) -> TestClient:
    return TestClient(app, headers={"Authorization": f"Bearer {key}"})


def stored_ids(app: Any, n: int, offset: int = 0) -> list[str]:
    with Session(app.state.services.engine) as session:
        return list(session.scalars(select(Feedback.client_id).where(Feedback.client_id != "with-phone")
                                    .order_by(Feedback.id).offset(offset).limit(n)))


def test_a_correction_is_kept_beside_the_model_tags_and_answered_as_human(served: tuple[Any, Path, dict[str, str]]) -> None:
    app, _, keys = served
    client = api(app, keys["report,curate"])
    cid = stored_ids(app, 1, offset=300)[0]
    before = client.get(f"/v1/feedback/{cid}").json()
    other = next(label for label in ("negative", "positive", "neutral", "mixed") if label != before["sentiment"])
    summary_before = client.get("/v1/reports/summary").json()
    answer = client.post("/v1/corrections", json={"items": [{"client_id": cid, "sentiment": other,
                                                            "aspects": {"delivery": "negative", "price": "absent"}}]})
    assert answer.status_code == 200, answer.text
    result = answer.json()["results"][0]
    assert result["sentiment"] == other and result["sentiment_source"] == "human"
    assert result["model_sentiment"] == before["sentiment"] and result["corrected_by"] == "k-report,curate"
    delivery = next(a for a in result["aspects"] if a["aspect"] == "delivery")
    assert delivery["polarity"] == "negative" and delivery["source"] == "human"
    assert all(a["aspect"] != "price" for a in result["aspects"])
    if any(a["aspect"] == "price" for a in before["aspects"]):
        assert result["removed_aspects"] == ["price"]
    assert client.get(f"/v1/feedback/{cid}").json()["sentiment_source"] == "human"
    with Session(app.state.services.engine) as session:  # the model's reading is still there
        row = session.scalars(select(Feedback).where(Feedback.client_id == cid)).one()
        assert row.sentiment == before["sentiment"] and row.human_sentiment == other
        assert {c.field for c in session.scalars(select(Correction).where(Correction.feedback_id == row.id))} == {
            "sentiment", "aspect"}
    summary = client.get("/v1/reports/summary").json()
    assert summary["corrected"] == summary_before["corrected"] + 1
    assert summary["sentiment"].get(other, 0) == summary_before["sentiment"].get(other, 0) + 1
    history = client.get("/v1/corrections", params={"client_id": cid}).json()
    assert {c["field"] for c in history["corrections"]} == {"sentiment", "aspect"}
    assert history["corrections"][0]["made_by"] == "k-report,curate"


def test_retagging_keeps_the_human_labels(served: tuple[Any, Path, dict[str, str]], sample_model: LoadedModel) -> None:
    app, _, keys = served
    client = api(app, keys["report,curate"])
    cid = stored_ids(app, 1, offset=301)[0]
    client.post("/v1/corrections", json={"items": [{"client_id": cid, "sentiment": "mixed",
                                                     "aspects": {"support": "positive"}}]}).raise_for_status()
    from bazkhord.service.store import Filters

    app.state.services.store.retag(sample_model.tagger.tag, sample_model.name, "v-next", Filters(), everything=True)
    again = client.get(f"/v1/feedback/{cid}").json()
    assert again["model"]["version"] == "v-next" and again["sentiment"] == "mixed"
    assert any(a["aspect"] == "support" and a["source"] == "human" for a in again["aspects"])


@pytest.mark.parametrize("item, status, where", [
    ({"client_id": "no-such-comment", "sentiment": "negative"}, 404, ["items", 0, "client_id"]),
    ({"client_id": "FIRST", "aspects": {"teleportation": "negative"}}, 422, ["items", 0, "aspects", "teleportation"]),
    ({"client_id": "FIRST", "sentiment": "furious"}, 422, ["items", 0, "sentiment"]),
    ({"client_id": "FIRST", "aspects": {"delivery": "so-so"}}, 422, ["items", 0, "aspects", "delivery"]),
    ({"client_id": "FIRST"}, 422, ["items", 0]),
    ({"client_id": "FIRST", "statement": {"start": 99999, "theme_id": 1}}, 422, ["items", 0, "statement", "start"]),
])
def test_bad_corrections_are_refused_and_store_nothing(served: tuple[Any, Path, dict[str, str]], item: dict[str, Any],
                                                       status: int, where: list[Any]) -> None:
    app, _, keys = served
    client = api(app, keys["report,curate"])
    first, second = stored_ids(app, 2, offset=310)
    item = {k: (first if v == "FIRST" else v) for k, v in item.items()}
    good = {"client_id": second, "sentiment": "negative"}
    answer = client.post("/v1/corrections", json={"items": [item, good]})
    assert answer.status_code == status, answer.text
    assert any(d["location"] == where for d in answer.json()["error"]["details"]), answer.json()
    assert client.get(f"/v1/feedback/{second}").json()["sentiment_source"] == "model"  # all or nothing


def test_only_a_curate_key_corrects(served: tuple[Any, Path, dict[str, str]]) -> None:
    app, _, keys = served
    body = {"items": [{"client_id": stored_ids(app, 1)[0], "sentiment": "negative"}]}
    assert api(app, keys["report"]).post("/v1/corrections", json=body).status_code == 403
    assert api(app, keys["report"]).get("/v1/review").status_code == 403
    assert api(app, keys["report,curate"]).post("/v1/retraining").status_code == 403


def test_a_statement_theme_correction_moves_it_in_the_codebook(served: tuple[Any, Path, dict[str, str]]) -> None:
    app, _, keys = served
    services = app.state.services
    run_id = services.theme_store.latest_run()
    with Session(services.engine) as session:
        statement = session.scalars(select(ThemeStatement).where(ThemeStatement.run_id == run_id)).first()
        assert statement is not None
        cid = session.scalar(select(Feedback.client_id).where(Feedback.id == statement.feedback_id))
        start, theme = statement.start, statement.theme_id
    target = next(t for t in services.theme_store.names() if t != theme)
    answer = api(app, keys["report,curate"]).post("/v1/corrections", json={"items": [
        {"client_id": cid, "statement": {"start": start, "theme_id": target}}]})
    assert answer.status_code == 200, answer.text
    with Session(services.engine) as session:
        moved = session.scalars(select(ThemeStatement).where(ThemeStatement.run_id == run_id,
                                                             ThemeStatement.feedback_id == statement.feedback_id,
                                                             ThemeStatement.start == start)).one()
        assert moved.theme_id == target
    assert services.theme_store.history()[0].action == "move"


def test_the_review_queue_asks_for_uncorrected_comments_and_counts_progress(
        served: tuple[Any, Path, dict[str, str]]) -> None:
    app, _, keys = served
    client = api(app, keys["report,curate"])
    queue = client.get("/v1/review", params={"limit": 5, "rebuild": True}).json()
    assert queue["queued"] == 40 and len(queue["items"]) == 5
    assert all(0 <= i["reason"]["uncertainty"] <= 1 and i["reason"]["worth"] > 0 for i in queue["items"])
    corrected = app.state.services.corrections.corrected_among([i["client_id"] for i in queue["items"]])
    assert not corrected  # nothing already corrected is asked
    first = queue["items"][0]
    client.post("/v1/corrections", json={"items": [{"client_id": first["client_id"], "confirm": True}]}
                ).raise_for_status()
    after = client.get("/v1/review", params={"limit": 5}).json()
    assert after["corrected"] == queue["corrected"] + 1
    assert first["client_id"] not in [i["client_id"] for i in after["items"]]
    confirmed = client.get(f"/v1/feedback/{first['client_id']}").json()
    assert confirmed["sentiment_source"] == "human" and confirmed["sentiment"] == first["sentiment"]


def test_export_writes_training_rows_with_the_newest_label_and_lists_conflicts(
        served: tuple[Any, Path, dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app, folder, keys = served
    services = app.state.services
    other = KeyStore(services.engine).create("second-analyst", "report,curate").key
    first, sentiment_only = stored_ids(app, 2, offset=320)
    api(app, keys["report,curate"]).post("/v1/corrections", json={"items": [
        {"client_id": "with-phone", "sentiment": "negative", "aspects": {"delivery": "negative"}},
        {"client_id": first, "sentiment": "positive"}]}).raise_for_status()
    api(app, other).post("/v1/corrections", json={"items": [{"client_id": first, "sentiment": "negative"},
                                                            {"client_id": sentiment_only, "sentiment": "neutral"}]}
                         ).raise_for_status()
    out, conflicts = tmp_path / "corrections.jsonl", tmp_path / "conflicts.jsonl"
    assert main(["corrections", "export", "--database-url", f"sqlite:///{folder / 'store.db'}", "--out", str(out),
                 "--conflicts", str(conflicts)]) == 0
    rows = {r["id"]: r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    assert rows[first]["sentiment"] == "negative" and rows[first]["corrected_by"] == "second-analyst"
    assert rows[sentiment_only]["aspects"] is None  # no aspect was reviewed: none is claimed
    assert "09121234567" not in out.read_text(encoding="utf-8") and "[PHONE]" in rows["with-phone"]["text"]
    assert rows["with-phone"]["aspects"]["delivery"] == "negative"
    listed = [json.loads(line) for line in conflicts.read_text(encoding="utf-8").splitlines()]
    assert any(c["id"] == first and c["newest"] == "negative" and len(c["values"]) == 2 for c in listed)
    assert "labelled differently by different people" in capsys.readouterr().err
    records = read_records(out).records  # the file reads back as training data
    assert len(records) == len(rows)


def test_the_gate_activates_only_a_challenger_that_beats_the_champion() -> None:
    def s(value: float, rows: int = 10) -> Score:
        return Score(rows, {"macro_f1": value})

    assert decide([s(0.5), s(0.6)], [s(0.8), s(0.8)])[0] == "activated"  # a tie on the test file is no loss
    assert decide([s(0.5), s(0.6)], [])[0] == "activated"
    assert decide([s(0.5), s(0.5)], [s(0.8), s(0.9)])[0] == "refused"  # no gain where the company's comments are
    decision, reason, why = decide([s(0.5), s(0.6)], [s(0.8), s(0.79)])
    assert decision == "refused" and reason == "test_lower" and "test file" in why
    assert decide([Score(0, {}), Score(0, {})], []).reason == "no_held_out"
    assert decide([s(0.5), s(0.5)], []).reason == "held_out_not_higher"
    assert set(RETRAIN_REASONS) == set(REASONS)  # every reason has its sentence on the workspace's page


def correct_against_gold(app: Any, key: str, n: int) -> None:
    gold = {r.id: r for r in read_records(SAMPLE).records}
    ids = stored_ids(app, n, offset=0)
    items = [{"client_id": cid, "sentiment": gold[cid].sentiment} for cid in ids if gold[cid].sentiment]
    api(app, key).post("/v1/corrections", json={"items": items[:100]}).raise_for_status()


@pytest.mark.parametrize("verdict", ["activated", "refused"])
def test_retraining_records_the_verdict_and_leaves_the_champion_serving_when_refused(
        served: tuple[Any, Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch, verdict: str) -> None:
    app, folder, keys = served
    services = app.state.services
    correct_against_gold(app, keys["report,curate"], 60)
    reason = "better" if verdict == "activated" else "held_out_not_higher"
    monkeypatch.setattr(retraining, "decide", lambda held, test: retraining.Verdict(verdict, reason, f"forced {verdict}"))
    name = services.registry.active.name
    champion = retraining.active_version(services.engine, folder / "models", name)
    with Session(services.engine) as session, session.begin():
        job = RetrainJob(requested_by="test", status="running", phase="", done=0, total=0, started_at=utcnow(),
                         model_name=name)
        session.add(job)
        session.flush()
        job_id = job.id
    result = retrain(services.engine, folder / "models", job_id, str(SAMPLE_TEST), 0.2)
    job = services.retraining.job(job_id)
    assert job.status == "done" and job.decision == verdict and job.challenger == result["challenger"]
    assert job.figures["held_out_corrections"]["rows"] > 0 and job.figures["test_file"]["rows"] > 0
    assert job.figures["corrections"]["used"] > 0
    report = json.loads((folder / "models" / name / result["challenger"] / "training_report.json").read_text(
        encoding="utf-8"))
    assert report["self_training"]["unlabelled"] == len(not_in_sample(services.corrections.uncorrected()))
    assert job.figures["self_training"] == report["self_training"]  # the workspace and the API show it
    assert job.figures["reason"] == reason and job.figures["why"] == f"forced {verdict}"
    client = TestClient(app, follow_redirects=False)
    client.post("/app/login", content=f"key={keys['report,curate']}&next=/app/", headers=FORM)
    assert RETRAIN_REASONS[reason] in client.get("/app/retraining").text  # the page says why in Persian
    latest = (folder / "models" / name / LATEST_FILE).read_text(encoding="utf-8").strip()
    with Session(services.engine) as session:
        newest = session.scalars(select(ModelActivation).where(ModelActivation.model_name == name)
                                 .order_by(ModelActivation.id.desc())).first()
    if verdict == "refused":
        assert latest == champion and (newest is None or newest.model_version == champion)
    else:
        assert newest is not None and newest.model_version == result["challenger"]
        deadline = time.monotonic() + 30  # the serving process follows the store's activation
        while services.registry.active.version != result["challenger"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert services.registry.active.version == result["challenger"]
        services.registry.activate(champion, "test")  # the next test starts from the champion again


def test_an_admin_starts_a_retraining_process_and_sees_its_verdict(served: tuple[Any, Path, dict[str, str]]) -> None:
    app, _, keys = served
    correct_against_gold(app, keys["report,curate"], 60)
    admin = api(app, keys["admin"])
    started = admin.post("/v1/retraining")
    assert started.status_code == 202, started.text
    job_id = started.json()["id"]
    assert admin.post("/v1/retraining").status_code == 409  # one at a time
    deadline = time.monotonic() + 240
    job = started.json()
    while job["status"] == "running" and time.monotonic() < deadline:
        time.sleep(1)
        job = admin.get(f"/v1/retraining/{job_id}").json()
    assert job["status"] == "done", job
    assert job["decision"] in ("activated", "refused") and job["figures"]["why"]
    held = job["figures"]["held_out_corrections"]
    assert held["rows"] > 0 and "macro_f1" in held["champion"] and "macro_f1" in held["challenger"]
    assert admin.get("/v1/retraining").json()[0]["id"] == job_id
    assert admin.get("/v1/retraining/999999").status_code == 404


def test_workspace_corrects_a_comment_and_shows_the_review_queue(served: tuple[Any, Path, dict[str, str]]) -> None:
    app, _, keys = served
    client = TestClient(app, follow_redirects=False)
    assert client.post("/app/login", content=f"key={keys['report,curate']}&next=/app/review", headers=FORM
                       ).status_code == 303
    page = client.get("/app/review").text
    assert "صف بازبینی" in page and 'data-key="1"' in page and "/app/static/review.js" in page
    token = page.split('name="csrf" value="')[1].split('"')[0]
    cid = page.split('action="/app/comments/')[1].split("/correct")[0]
    answer = client.post(f"/app/comments/{cid}/correct", content=f"csrf={token}&back=/app/review&sentiment=negative"
                         "&aspect%3Adelivery=", headers=FORM)
    assert answer.status_code == 303 and answer.headers["location"] == "/app/review"
    comment = client.get(f"/app/comments/{cid}").text
    assert "برچسب تحلیلگر" in comment or "negative" in client.get(f"/app/comments/{cid}").text
    assert "تاریخچه اصلاح‌ها" in comment
    bad = client.post(f"/app/comments/{cid}/correct", content=f"csrf={token}&sentiment=furious", headers=FORM)
    assert bad.status_code == 422 and "furious" in bad.text
    assert client.get("/app/retraining").status_code == 200
    assert client.post("/app/retraining", content=f"csrf={token}", headers=FORM).status_code == 403  # admin only
    reader = TestClient(app, follow_redirects=False)
    reader.post("/app/login", content=f"key={keys['report']}&next=/app/", headers=FORM)
    assert reader.get("/app/review").status_code == 403
    assert 'action="/app/comments/' not in reader.get(f"/app/comments/{cid}").text


def test_a_retraining_with_too_few_corrections_fails_with_the_reason(served: tuple[Any, Path, dict[str, str]]) -> None:
    app, folder, _ = served
    services = app.state.services
    with Session(services.engine) as session, session.begin():
        job = RetrainJob(requested_by="test", status="running", phase="", done=0, total=0, started_at=utcnow(),
                         model_name=services.registry.active.name)
        session.add(job)
        session.flush()
        job_id = job.id
    from bazkhord.data.errors import DataError

    with pytest.raises(DataError, match="needs at least 100000"):
        retrain(services.engine, folder / "models", job_id, "", 0.2, min_corrections=100_000)
    failed = services.retraining.job(job_id)
    assert failed.status == "failed" and "needs at least 100000" in failed.error and failed.finished_at is not None


def test_train_reads_the_store_corrections_named_in_its_config(served: tuple[Any, Path, dict[str, str]],
                                                                tmp_path: Path) -> None:
    app, folder, keys = served
    correct_against_gold(app, keys["report,curate"], 30)
    url = f"sqlite:///{folder / 'store.db'}"
    assert main(["train", "--config", str(SAMPLE.parents[2] / "training/configs/sample.toml"), "--data", str(SAMPLE),
                 "--models-dir", str(tmp_path), "--set", f'corrections.database_url="{url}"', "-q"]) == 0
    version = (tmp_path / "sample" / LATEST_FILE).read_text(encoding="utf-8").strip()
    report = json.loads((tmp_path / "sample" / version / "training_report.json").read_text(encoding="utf-8"))
    exported = app.state.services.corrections.export().rows
    assert report["corrections"]["rows"] == len(exported) > 0 and report["corrections"]["source"] == url
    # The store's uncorrected comments the training file lacks are self-trained on.
    assert report["self_training"]["unlabelled"] == len(not_in_sample(app.state.services.corrections.uncorrected()))


def not_in_sample(texts: list[str]) -> list[str]:
    known = {normalise(r.text) for r in read_records(SAMPLE).records}
    return sorted({normalise(t) for t in texts} - known)  # as training reads them: each text once


def test_a_retraining_self_trains_on_the_newest_uncorrected_comments_masked(
        served: tuple[Any, Path, dict[str, str]]) -> None:
    app, _, keys = served
    correct_against_gold(app, keys["report,curate"], 10)
    store = app.state.services.corrections
    texts = store.uncorrected()
    with Session(app.state.services.engine) as session:
        corrected = set(session.scalars(select(Feedback.text).where(Feedback.corrected_at.is_not(None))))
        total = session.scalar(select(func.count()).select_from(Feedback))
    assert corrected and len(texts) == total - len(corrected) and not corrected & set(texts)
    assert any("[PHONE]" in t for t in texts) and not any("09121234567" in t for t in texts)
    assert store.uncorrected(limit=5) == texts[:5]


def test_the_theme_report_over_the_store_counts_the_human_labels(served: tuple[Any, Path, dict[str, str]]) -> None:
    app, _, keys = served
    client = api(app, keys["report,curate"])
    positive = [cid for cid in stored_ids(app, 120, offset=200)
                if client.get(f"/v1/feedback/{cid}").json()["sentiment"] == "positive"][:20]
    client.post("/v1/corrections", json={"items": [{"client_id": c, "sentiment": "negative"} for c in positive]}
                ).raise_for_status()
    summary = client.get("/v1/reports/summary").json()
    totals = client.get("/v1/reports/themes", params={"min_theme_size": 2}).json()["totals"]
    assert totals["negative_share"] == pytest.approx(summary["negative_share"], abs=1e-4)
    assert totals["negative_share_definition"] == summary["negative_share_definition"]
    assert "analyst" in summary["negative_share_definition"]


def test_stopping_the_service_ends_a_running_retraining_and_fails_its_job(
        served: tuple[Any, Path, dict[str, str]]) -> None:
    app, _, _ = served
    jobs = app.state.services.retraining
    name = app.state.services.registry.active.name
    job_id = jobs.start(name, "test")
    child = jobs._children[-1][0]
    jobs.stop(timeout=10)
    assert child.poll() is not None  # no process left behind
    job = jobs.job(job_id)
    assert job.status == "failed" and job.error
