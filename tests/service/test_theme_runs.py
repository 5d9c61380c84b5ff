"""The background theme run and the codebook: lasting theme ids across runs, analysts' edits applied alike to the
stored statements (the workspace's pages) and to the next report, undo, and alerts sent to webhooks with retries."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from bazkhord.data.readers import read_records
from bazkhord.model.folder import LoadedModel
from bazkhord.model.themes.codebook import Edit, apply_edits
from bazkhord.service.alerts import AlertSender
from bazkhord.service.db import Alert, Base, CodebookTheme, ThemeRun, ThemeStatement, make_engine, upgrade
from bazkhord.service.jobs import ThemeJobs
from bazkhord.service.settings import Settings
from bazkhord.service.store import FeedbackStore, NewFeedback
from bazkhord.service.themestore import ThemeStore
from tests.conftest import SAMPLE


@pytest.fixture(autouse=True)
def tfidf_themes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAZKHORD_ENCODER", "none")


def fill(store: FeedbackStore, model: LoadedModel, limit: int | None = None) -> None:
    records = read_records(SAMPLE).records[:limit]
    start = datetime(2026, 3, 1, tzinfo=UTC)
    items = [NewFeedback(client_id=r.id or f"c{i}", text=r.text, channel=r.channel, product=r.product,
                         segment=r.segment, rating=r.rating,
                         created_at=r.created_at or start + timedelta(hours=5 * i)) for i, r in enumerate(records)]
    for begin in range(0, len(items), 500):
        chunk = items[begin:begin + 500]
        store.add(chunk, model.tagger.tag([i.text for i in chunk]), model.name, model.version)


class Posts:
    """A webhook that fails its first `failures` calls."""

    def __init__(self, failures: int) -> None:
        self.failures, self.calls = failures, []

    def __call__(self, url: str, payload: dict[str, Any], timeout: float) -> None:
        self.calls.append((url, payload))
        if len(self.calls) <= self.failures:
            raise OSError("connection refused")


@pytest.fixture
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite unless a test asks for PostgreSQL too (emptied first: the session's tests share its database)."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url = str(request.getfixturevalue("postgres_url"))
    engine = make_engine(url)
    with engine.begin() as connection:
        Base.metadata.drop_all(connection)
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()
    return url


@pytest.fixture
def workspace(database: str, sample_model: LoadedModel) -> Iterator[tuple[ThemeJobs, ThemeStore, Posts]]:
    engine = make_engine(database)
    upgrade(engine)
    store = FeedbackStore(engine)
    fill(store, sample_model)
    posts = Posts(failures=1)
    alerts = AlertSender(engine, attempts=3, backoff_s=0.01, post=posts)
    themes = ThemeStore(engine)
    settings = Settings(theme_run_minutes=0, alert_min_comments=1, theme_run_period="month")
    yield ThemeJobs(settings, store, themes, lambda: sample_model, alerts), themes, posts
    engine.dispose()


def run(jobs: ThemeJobs) -> int:
    run_id = jobs.request("demand", "analyst")
    assert run_id is not None
    assert jobs.wait(300)
    return run_id


def placed(themes: ThemeStore) -> Counter[int]:
    with Session(themes.engine) as session:
        return Counter(session.scalars(select(ThemeStatement.theme_id)))


@pytest.mark.parametrize("database", ["sqlite", "postgresql"], indirect=True)
def test_runs_keep_theme_ids_and_edits_reach_pages_and_reports(workspace: tuple[ThemeJobs, ThemeStore, Posts]) -> None:
    jobs, themes, _ = workspace
    first = run(jobs)
    with Session(themes.engine) as session:
        row = session.get(ThemeRun, first)
        assert row is not None and row.status == "done" and row.report is not None, row and row.error
        report = row.report
    ids = [t["codebook_id"] for t in report["themes"]]
    assert len(ids) >= 4 and all(isinstance(i, int) and i > 0 for i in ids)
    assert all(s["codebook_id"] is None or s["codebook_id"] > 0 for t in report["themes"] for s in t["subthemes"])
    assert dict(placed(themes)) == {t["codebook_id"]: t["statements"] for t in report["themes"]}
    assert not any(n.new for n in themes.names().values())  # the first run: nothing is new to the codebook

    second = run(jobs)  # the same comments: every theme keeps its id, none is new
    again = themes.run_report(second)
    assert again is not None and [t["codebook_id"] for t in again["themes"]] == ids
    assert not any(n.new for n in themes.names().values())

    # An analyst renames the first theme, merges the third into the second, hides the fourth.
    a, b, c, d = ids[:4]
    themes.edit("rename", "analyst", theme=a, label="تاخیر ارسال سفارش")
    themes.edit("merge", "analyst", theme=c, target=b)
    hide = themes.edit("hide", "analyst", theme=d)
    counts = placed(themes)
    assert c not in counts and counts[b] == sum(t["statements"] for t in again["themes"] if t["codebook_id"] in (b, c))
    names = themes.names()
    assert names[a].label == "تاخیر ارسال سفارش" and names[c].merged_into == b and names[d].hidden

    # The next run (and so GET /v1/reports/themes, `report --database-url`) applies the same codebook.
    third = themes.run_report(run(jobs))
    assert third is not None
    by_id = {t["codebook_id"]: t for t in third["themes"]}
    assert by_id[a]["label"] == "تاخیر ارسال سفارش" and c not in by_id and d not in by_id
    assert by_id[b]["statements"] == placed(themes)[b]
    assert any("hidden by the codebook" in note for note in third["notes"])

    themes.undo(hide, "analyst")
    assert not themes.names()[d].hidden and placed(themes)[d] > 0


def test_a_split_sub_theme_and_a_moved_statement(workspace: tuple[ThemeJobs, ThemeStore, Posts]) -> None:
    jobs, themes, _ = workspace
    run(jobs)
    subs = themes.sub_names()
    with Session(themes.engine) as session:
        sub_counts = Counter(session.scalars(select(ThemeStatement.subtheme_id).where(
            ThemeStatement.subtheme_id.is_not(None))))
        sub_id, size = sub_counts.most_common(1)[0]
        statement = session.scalars(select(ThemeStatement).where(ThemeStatement.subtheme_id.is_(None))).first()
        assert statement is not None
        row_id, from_theme = statement.id, statement.theme_id
    parent = subs[sub_id][0]
    themes.edit("split", "analyst", subtheme=sub_id, label="بسته‌بندی")
    split = max(themes.names())
    counts = placed(themes)
    assert counts[split] == size and themes.names()[split].label == "بسته‌بندی"
    target = next(t for t in counts if t not in (from_theme, split, parent))
    before = counts[target]
    themes.edit("move", "analyst", statement_row=row_id, target=target)
    assert placed(themes)[target] == before + 1
    report = themes.run_report(run(jobs))  # the split theme lives on in the next run, measured on its statements
    assert report is not None
    split_theme = next(t for t in report["themes"] if t["codebook_id"] == split)
    assert split_theme["label"] == "بسته‌بندی" and split_theme["statements"] == size


def test_alerts_are_recorded_and_retried_to_webhooks(workspace: tuple[ThemeJobs, ThemeStore, Posts],
                                                     sample_model: LoadedModel) -> None:
    jobs, themes, posts = workspace
    jobs.alerts.add_webhook("ops", "https://hooks.example.test/services/T000/SECRET", "admin")
    assert [w.host for w in jobs.alerts.webhooks()] == ["hooks.example.test"]  # the secret path is never shown
    run(jobs)
    # Make the next run meet the emerging themes as new: the codebook forgets them.
    with Session(themes.engine) as session, session.begin():
        emerging = list(session.scalars(select(CodebookTheme.id).where(CodebookTheme.kind == "emerging")))
        assert emerging
        session.execute(delete(ThemeStatement).where(ThemeStatement.found_theme_id.in_(emerging)))
        session.execute(delete(CodebookTheme).where(CodebookTheme.id.in_(emerging)))
    run(jobs)
    jobs.alerts.wait(30)
    with Session(themes.engine) as session:
        alerts = session.scalars(select(Alert)).all()
        assert alerts and {a.kind for a in alerts} >= {"new"}
        assert all(a.deliveries == {"ops": "delivered"} for a in alerts)
    assert posts.calls[0][1]["text"] and len(posts.calls) == len(alerts) + 1  # the first try failed, and was retried


def test_a_webhook_that_always_fails_does_not_hold_up_the_run(tmp_path: Path, sample_model: LoadedModel) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    upgrade(engine)
    store = FeedbackStore(engine)
    fill(store, sample_model, 400)
    posts = Posts(failures=10**6)
    alerts = AlertSender(engine, attempts=2, backoff_s=0.01, post=posts)
    themes = ThemeStore(engine)
    jobs = ThemeJobs(Settings(theme_run_minutes=0, alert_min_comments=1), store, themes, lambda: sample_model, alerts)
    alerts.add_webhook("down", "http://127.0.0.1:9/hook", "admin")
    run(jobs)
    alerts.wait(30)
    assert themes.runs()[0].status == "done"


def test_apply_edits_is_pure_and_ordered() -> None:
    places = {("a", 0): (1, 10), ("a", 5): (1, 11), ("b", 0): (2, None)}
    moved, names = apply_edits(places, [Edit("merge", theme=1, target=2), Edit("split", subtheme=11, target=3),
                                        Edit("move", statement=("b", 0), target=1), Edit("rename", theme=2, label="x")])
    assert moved == {("a", 0): (2, 10), ("a", 5): (3, None), ("b", 0): (1, None)}
    assert names.merged_into == {1: 2} and names.labels == {2: "x"} and places[("a", 0)] == (1, 10)
    with pytest.raises(ValueError, match="unknown codebook action"):
        Edit("delete", theme=1)


def test_the_schedule_starts_a_run_when_one_is_due(tmp_path: Path, sample_model: LoadedModel,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from bazkhord.service import jobs as jobs_module

    monkeypatch.setattr(jobs_module, "SCHEDULE_TICK_S", 0.05)
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    upgrade(engine)
    store = FeedbackStore(engine)
    fill(store, sample_model, 300)
    themes = ThemeStore(engine)
    jobs = ThemeJobs(Settings(theme_run_minutes=1), store, themes, lambda: sample_model, AlertSender(engine))
    jobs.start_schedule()
    try:
        time.sleep(0.5)
        assert themes.runs() == []  # none at start: the first is due a minute after it (or after the last run)
        with Session(engine) as session, session.begin():  # a run two minutes ago: the next is due
            session.add(ThemeRun(trigger="demand", status="done", phase="done", done=0, total=0, comments=0,
                                 started_at=datetime.now(UTC) - timedelta(minutes=2)))
        deadline = time.monotonic() + 120
        while not (themes.runs()[0].trigger == "schedule" and themes.runs()[0].status != "running") \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        runs = themes.runs()
        assert len(runs) == 2 and runs[0].trigger == "schedule" and runs[0].status == "done", runs
        time.sleep(0.5)  # not due again for a minute
        assert len(themes.runs()) == 2
    finally:
        jobs.stop()
        jobs.wait(60)


def test_one_run_at_a_time_and_a_dead_one_gives_way(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    upgrade(engine)
    themes = ThemeStore(engine)
    first = themes.start_run("demand", "a")
    assert first is not None and themes.start_run("schedule", None) is None
    with Session(engine) as session, session.begin():  # its process died six hours ago
        row = session.get(ThemeRun, first)
        assert row is not None
        row.started_at = started = row.started_at - timedelta(hours=7)
    second = themes.start_run("demand", "b")
    assert second is not None and {r.id: r.status for r in themes.runs()} == {first: "failed", second: "running"}
    with pytest.raises(Exception, match="UNIQUE"), Session(engine) as session, session.begin():
        session.add(ThemeRun(trigger="x", status="running", phase="", done=0, total=0, started_at=started,
                             comments=0))  # the index, not only the look before the insert, keeps it to one
