"""The feedback store on SQLite and on a real PostgreSQL: migrations, idempotent ingestion, reports, re-tagging."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from bazkhord.model.base import AspectTag, Evidence, Tag
from bazkhord.service.db import Base, current_revision, make_engine, upgrade
from bazkhord.service.store import ConflictError, FeedbackStore, Filters, NewFeedback

NEGATIVE = Tag("negative", {"negative": 0.8, "positive": 0.2},
               (AspectTag("delivery", 0.9, "negative", 0.85, (Evidence("پیک دیر اومد", 0, 12),)),))
POSITIVE = Tag("positive", {"negative": 0.1, "positive": 0.9},
               (AspectTag("quality", 0.7, "positive", 0.9, ()),))


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path}/store.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    made = make_engine(url)
    with made.begin() as connection:  # the PostgreSQL database is shared by the session's tests: start empty
        Base.metadata.drop_all(connection)
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    upgrade(made)
    yield made
    made.dispose()


def test_migrations_create_exactly_the_models_tables(engine: Engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    assert current_revision(engine) == "0004"
    upgrade(engine)  # again: nothing to do, no error
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_ingest_is_idempotent_and_refuses_conflicts(engine: Engine) -> None:
    store = FeedbackStore(engine)
    when = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    first = store.add([NewFeedback("c1", "پیک دیر اومد", channel="sms", created_at=when),
                       NewFeedback("c2", "کیفیت عالی", rating=5)], [NEGATIVE, POSITIVE], "m", "v1")
    assert [(s.client_id, new) for s, new in first] == [("c1", True), ("c2", True)]
    assert first[0][0].created_at == when and first[0][0].aspects[0]["evidence"][0]["text"] == "پیک دیر اومد"
    again = store.add([NewFeedback("c1", "پیک دیر اومد")], [NEGATIVE], "m", "v2")
    assert [(s.client_id, new, s.model_version) for s, new in again] == [("c1", False, "v1")]
    with pytest.raises(ConflictError, match="c1"):
        store.add([NewFeedback("c3", "تازه"), NewFeedback("c1", "متن دیگر")], [POSITIVE, POSITIVE], "m", "v1")
    assert store.count() == 2  # the conflicting request stored nothing, c3 included
    found = store.find(["c1", "c2", "nope"])
    assert set(found) == {"c1", "c2"} and found["c2"].rating == 5


def test_summary_counts_and_filters(engine: Engine) -> None:
    store = FeedbackStore(engine)
    start = datetime(2026, 11, 2, 12, tzinfo=UTC)  # a Monday
    items = [NewFeedback(f"c{i}", f"متن {i}", channel="sms" if i % 2 else "app", nps=(10, 3, 8)[i % 3],
                         created_at=start + timedelta(days=3 * i), rating=float(i % 5)) for i in range(6)]
    tags = [NEGATIVE if i % 3 == 0 else POSITIVE for i in range(6)]
    store.add(items, tags, "m", "v1")
    summary = store.summary(Filters(), "week")
    assert summary["comments"] == 6 and summary["sentiment"] == {"negative": 2, "positive": 4}
    assert summary["negative_share"] == pytest.approx(2 / 6)
    assert summary["nps"] == {"responses": 6, "score": pytest.approx(100 * (2 - 2) / 6)}
    assert {a["aspect"]: a["polarity"] for a in summary["aspects"]} == {"quality": {"positive": 4},
                                                                        "delivery": {"negative": 2}}
    # Nov 2, 5 and 8 (a Sunday) fall in the week of Monday Nov 2; 11 and 14 in the next; 17 in the one after.
    assert [(s["period"], s["comments"]) for s in summary["series"]] == [
        ("2026-11-02", 3), ("2026-11-09", 2), ("2026-11-16", 1)]
    assert store.summary(Filters(), "month")["series"] == [{"period": "2026-11", "comments": 6, "negative": 2}]
    only_sms = store.summary(Filters(channel="sms", start=start + timedelta(days=1)), "day")
    assert only_sms["comments"] == 3 and [s["period"] for s in only_sms["series"]] == [
        "2026-11-05", "2026-11-11", "2026-11-17"]
    assert store.summary(Filters(end=start), "week")["comments"] == 0
    records, matched = store.records(Filters(channel="app"), limit=2)
    assert matched == 3 and [r.id for r in records] == ["c2", "c4"]  # the newest two, oldest first


def test_retag_moves_every_comment_to_the_new_version_and_resumes(engine: Engine) -> None:
    store = FeedbackStore(engine)
    store.add([NewFeedback(f"c{i}", f"متن {i}") for i in range(5)], [NEGATIVE] * 5, "m", "v1")
    calls: list[int] = []

    def tag(texts: list[str]) -> list[Tag]:
        calls.append(len(texts))
        return [POSITIVE] * len(texts)

    assert store.retag(tag, "m", "v2", batch_size=2) == 5 and calls == [2, 2, 1]
    summary = store.summary(Filters(), "week")
    assert summary["model_versions"] == [{"name": "m", "version": "v2", "comments": 5}]
    assert summary["aspects"] == [{"aspect": "quality", "mentions": 5, "polarity": {"positive": 5}, "negative_share": 0.0}]
    assert store.retag(tag, "m", "v2") == 0  # nothing left for this version
    assert store.retag(tag, "m", "v2", everything=True) == 5


def test_retag_and_db_commands(sample_model: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bazkhord.cli import main
    from bazkhord.model.folder import LoadedModel

    assert isinstance(sample_model, LoadedModel)
    url = f"sqlite:///{tmp_path}/cli.db"
    assert main(["db", "upgrade", "--database-url", url]) == 0
    assert "revision 0004" in capsys.readouterr().out
    engine = make_engine(url)
    store = FeedbackStore(engine)
    store.add([NewFeedback("a", "پیک دو روز دیر اومد"), NewFeedback("b", "کیفیتش عالیه", channel="sms")],
              [POSITIVE, POSITIVE], "old", "v0")
    assert main(["retag", "--model", str(sample_model.folder), "--database-url", url, "--channel", "sms", "-q"]) == 0
    assert "re-tagged 1 stored comment" in capsys.readouterr().out
    assert main(["retag", "--model", str(sample_model.folder), "--database-url", url, "-q"]) == 0
    assert "re-tagged 1 stored comment" in capsys.readouterr().out  # only the one left on the old version
    retagged = store.find(["a"])["a"]
    assert retagged.model_version == sample_model.version and retagged.sentiment == "negative"
    assert {a["aspect"] for a in retagged.aspects} >= {"delivery"}
    assert main(["retag", "--model", "nothing-here", "--database-url", url]) == 2
    assert main(["keys", "list", "--database-url", "mysql://nope"]) == 2
    assert "only sqlite and postgresql" in capsys.readouterr().err
