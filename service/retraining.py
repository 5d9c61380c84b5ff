"""Retraining on the analysts' corrections, with a champion / challenger gate.

The challenger is trained with the active model's own training config plus the store's corrections (a share of
them held out by hash). It enters the registry as a new version, but goes live only if it beats the champion (the
version active when the job started) on the held-out corrections and is not worse on the configured test file;
otherwise it is kept inactive, `LATEST` points back at the champion, and the job keeps the figures that refused it.

The work runs in a process of its own (`bazkhord retrain --job N`), started by `RetrainJobs`: training holds the
GIL for minutes and must not slow the service's requests. Progress and the verdict are written to the job's row,
so every service process shows them; serving processes pick up an activation as any other (the registry follows
the store).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import select, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bazkhord.data.errors import BazkhordError, DataError
from bazkhord.data.normalise import normalise
from bazkhord.data.readers import read_records
from bazkhord.data.record import FeedbackRecord
from bazkhord.model.folder import (
    CONFIG_FILE,
    FINGERPRINTS_FILE,
    LATEST_FILE,
    TRAINING_REPORT_FILE,
    LoadedModel,
    load_model,
    text_fingerprint,
    write_latest,
)
from bazkhord.model.metrics import headline, score_tags
from bazkhord.service.corrections import CorrectionStore, as_records
from bazkhord.service.db import ModelActivation, RetrainJob, utcnow
from bazkhord.service.themestore import ThemeStore

log = logging.getLogger("bazkhord.retraining")
STALE = timedelta(hours=12)  # a running job whose process is gone (another host's, say) gives way after this


class RetrainBusy(BazkhordError):
    code = "E420"


@dataclass(frozen=True)
class Score:
    rows: int
    figures: dict[str, float]

    @property
    def value(self) -> float | None:
        """The gate's measure: sentiment macro-F1, averaged with aspect micro-F1 where the rows have aspects."""
        parts = [self.figures[k] for k in ("macro_f1", "aspect_micro_f1") if k in self.figures]
        return sum(parts) / len(parts) if parts else None


def score(loaded: LoadedModel, records: Sequence[FeedbackRecord]) -> Score:
    if not records:
        return Score(0, {})
    tagger = loaded.tagger
    gold_aspects = [r.aspects for r in records]
    if tagger.taxonomy is not None:
        gold_aspects = [tagger.taxonomy.map_labels(a)[0] if a else a for a in gold_aspects]
    metrics = score_tags(tagger.tag([r.text for r in records]), [r.sentiment for r in records], gold_aspects,
                         tagger.labels)
    return Score(len(records), headline(metrics))


def unseen_by(models: Sequence[LoadedModel], records: Sequence[FeedbackRecord]) -> list[FeedbackRecord]:
    """The rows none of the models trained on: both are scored on the same unseen rows."""
    known: set[str] = set()
    for loaded in models:
        path = loaded.folder / FINGERPRINTS_FILE
        if path.exists():
            known |= set(path.read_text(encoding="utf-8").split())
    return [r for r in records if not any(text_fingerprint(normalise(r.text, m.tagger.normaliser)) in known
                                          for m in models)]


def active_version(engine: Engine, models_dir: Path, name: str) -> str:
    with Session(engine) as session:
        recorded = session.scalars(select(ModelActivation.model_version).where(ModelActivation.model_name == name)
                                   .order_by(ModelActivation.id.desc()).limit(1)).first()
    if recorded:
        return recorded
    latest = models_dir / name / LATEST_FILE
    if not latest.exists():
        raise DataError(f"model {name!r} has no version under {models_dir}")
    return latest.read_text(encoding="utf-8").strip()


class JobProgress:
    """Training's progress, written to the job's row (at most every few seconds of phases)."""

    def __init__(self, engine: Engine, job_id: int) -> None:
        self.engine, self.job_id = engine, job_id

    def write(self, **values: Any) -> None:
        with Session(self.engine) as session, session.begin():
            session.execute(update(RetrainJob).where(RetrainJob.id == self.job_id).values(**values))

    def phase(self, message: str) -> None:
        self.write(phase=message[:500])

    def count(self, done: int, total: int | None, unit: str) -> None:
        self.write(done=done, total=total or 0)

    def event(self, event: dict[str, Any]) -> None:
        if event.get("kind") in ("step", "epoch") and event.get("total_steps"):
            self.write(done=int(event.get("step", 0)), total=int(event["total_steps"]))


def retrain(engine: Engine, models_dir: Path, job_id: int, test_file: str = "", holdout: float = 0.2,
            min_corrections: int = 20) -> dict[str, Any]:
    """The job's work: export, train, score both, decide. Writes the verdict to the job's row and returns it."""
    from bazkhord.training.config import load_config
    from bazkhord.training.corrections import held_out
    from bazkhord.training.train import train

    progress = JobProgress(engine, job_id)
    with Session(engine) as session:
        job = session.get(RetrainJob, job_id)
        if job is None:
            raise DataError(f"no retraining job {job_id}")
        name = job.model_name
    try:
        champion_version = active_version(engine, models_dir, name)
        champion = load_model(f"{name}@{champion_version}", models_dir)
        progress.write(champion=champion_version)
        progress.phase("exporting the corrections")
        store = CorrectionStore(engine, ThemeStore(engine))
        exported = store.export()
        corrections = as_records(exported.rows)
        if len(corrections) < min_corrections:
            raise DataError(f"{len(corrections)} corrected comment(s); a retraining needs at least {min_corrections}")
        uncorrected = store.uncorrected()  # self-trained on (model.self_training)
        config_path = champion.folder / CONFIG_FILE
        if not config_path.exists():
            raise DataError(f"{champion.folder} keeps no training config ({CONFIG_FILE}) to train the challenger with")
        url = make_url(str(engine.url)).render_as_string(hide_password=True)
        config = load_config(config_path, [f"corrections.holdout={holdout}", f'output.models_dir="{models_dir}"'])
        config.corrections.file, config.corrections.database_url = "", url
        result = train(config, progress, corrections=corrections, unlabelled=uncorrected)
        challenger = load_model(result.folder)
        progress.write(challenger=challenger.version)

        progress.phase("scoring champion and challenger")
        kept = held_out(corrections, holdout, config.normaliser_config)
        # Scored even where the champion trained on the text: the analyst's label is the newer truth, and a champion
        # that learnt the same label before only makes the gate stricter.
        held = [score(m, kept) for m in (champion, challenger)]
        test: list[Score] = []
        if test_file:
            rows = unseen_by([champion, challenger], read_records(test_file).records)
            test = [score(m, rows) for m in (champion, challenger)]
        decision, reason, why = decide(held, test)
        trained = _report(result)
        figures = {"held_out_corrections": {"rows": held[0].rows, "champion": held[0].figures,
                                            "challenger": held[1].figures},
                   "test_file": {"path": test_file, "rows": test[0].rows, "champion": test[0].figures,
                                 "challenger": test[1].figures} if test else None,
                   "corrections": trained.get("corrections", {}), "self_training": trained.get("self_training"),
                   "conflicts": len(exported.conflicts),
                   "reason": reason, "why": why}
        if decision == "activated":
            with Session(engine) as session, session.begin():
                requested = session.get(RetrainJob, job_id)
                session.add(ModelActivation(model_name=name, model_version=challenger.version, action="activate",
                                            activated_at=utcnow(), activated_by=f"retraining #{job_id}"
                                            + (f" ({requested.requested_by})" if requested else "")))
        else:
            write_latest(models_dir / name, champion_version)  # the registry's newest stays the one serving
        progress.write(status="done", decision=decision, figures=figures, finished_at=utcnow(), phase=why[:500])
        return {"decision": decision, "figures": figures, "challenger": challenger.version}
    except Exception as error:
        progress.write(status="failed", error=f"{type(error).__name__}: {error}"[:4000], finished_at=utcnow(),
                        phase="failed")
        raise


def _report(result: Any) -> dict[str, Any]:
    """The challenger's training report (what it used of the corrections and of the uncorrected comments)."""
    path = result.folder / TRAINING_REPORT_FILE
    return dict(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else {}


class Verdict(NamedTuple):
    decision: str  # "activated" or "refused"
    reason: str  # one of REASONS: the workspace says it in Persian from this
    why: str  # the same in English, with the figures (the API's and the command's answer)


REASONS = ("no_held_out", "held_out_not_higher", "test_lower", "better")


def decide(held: Sequence[Score], test: Sequence[Score]) -> Verdict:
    """activated or refused, and why. The challenger must score higher on the held-out corrections (the company's
    own comments) and at least as high on the test file (a tie there is common when a few hundred corrections barely
    move a model on another domain's data, and is no loss)."""
    champion, challenger = held[0].value, held[1].value
    if champion is None or challenger is None or not held[0].rows:
        return Verdict("refused", "no_held_out", "no held-out correction to score the two models on")
    if challenger <= champion:
        return Verdict("refused", "held_out_not_higher", f"on {held[0].rows} held-out corrections the challenger "
                       f"scores {challenger:.4f}, the champion {champion:.4f}")
    if test:
        a, b = test[0].value, test[1].value
        if a is not None and b is not None and b < a:
            return Verdict("refused", "test_lower",
                           f"on the test file ({test[0].rows} rows) the challenger scores {b:.4f} < {a:.4f}")
        return Verdict("activated", "better", f"held-out corrections {challenger:.4f} > {champion:.4f}; test file "
                       f"{b if b is not None else float('nan'):.4f} >= {a if a is not None else float('nan'):.4f}")
    return Verdict("activated", "better", f"held-out corrections {challenger:.4f} > {champion:.4f} (no test file "
                   "configured)")


def new_job(engine: Engine, model_name: str, requested_by: str) -> int:
    """A running job's row; RetrainBusy while another runs (the partial unique index, across processes)."""
    with Session(engine) as session:
        try:
            with session.begin():
                job = RetrainJob(requested_by=requested_by, status="running", phase="starting", done=0, total=0,
                                 started_at=utcnow(), model_name=model_name)
                session.add(job)
                session.flush()
                return job.id
        except IntegrityError:
            raise RetrainBusy("a retraining is running already; its progress is on the retraining page") from None


class RetrainJobs:
    """Starts retraining processes and lists their jobs. One runs at a time, across processes (a partial unique
    index); a process that died leaves a job marked failed by the next look."""

    def __init__(self, engine: Engine, database_url: str, models_dir: Path, test_file: str, holdout: float,
                 min_corrections: int) -> None:
        self.engine, self.database_url, self.models_dir = engine, database_url, models_dir
        self.test_file, self.holdout, self.min_corrections = test_file, holdout, min_corrections
        self._children: list[tuple[subprocess.Popen[bytes], int]] = []  # (process, its job)

    def start(self, model_name: str, requested_by: str) -> int:
        self.settle()
        job_id = new_job(self.engine, model_name, requested_by)
        command = [sys.executable, "-m", "bazkhord.cli", "retrain", "--job", str(job_id), "--database-url",
                   self.database_url, "--models-dir", str(self.models_dir), "--holdout", str(self.holdout),
                   "--min-corrections", str(self.min_corrections)]
        if self.test_file:
            command += ["--test-file", self.test_file]
        log_path = self.models_dir / model_name / ".retraining" / f"job-{job_id}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as out:
            child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        with Session(self.engine) as session, session.begin():
            session.execute(update(RetrainJob).where(RetrainJob.id == job_id).values(pid=child.pid))
        self._children.append((child, job_id))
        threading.Thread(target=self._reap, args=(child, job_id), name=f"bazkhord-retrain-{job_id}",
                         daemon=True).start()
        return job_id

    def _reap(self, child: subprocess.Popen[bytes], job_id: int) -> None:
        code = child.wait()
        if code != 0:  # the process wrote its own failure unless it was killed first
            with Session(self.engine) as session, session.begin():
                session.execute(update(RetrainJob).where(RetrainJob.id == job_id, RetrainJob.status == "running")
                                .values(status="failed", error=f"the retraining process exited with {code}",
                                        finished_at=utcnow(), phase="failed"))

    def settle(self) -> None:
        """Mark failed a running job whose process, started here, is gone, or that has run past STALE (a process
        of another host or of a service that died)."""
        ended = {c.pid for c, _ in self._children if c.poll() is not None}
        with Session(self.engine) as session, session.begin():
            for job in session.scalars(select(RetrainJob).where(RetrainJob.status == "running")):
                if utcnow() - job.started_at > STALE or job.pid in ended:
                    job.status, job.finished_at, job.phase = "failed", utcnow(), "failed"
                    job.error = job.error or "its process ended without a verdict"

    def jobs(self, limit: int = 20) -> list[RetrainJob]:
        with Session(self.engine) as session:
            return list(session.scalars(select(RetrainJob).order_by(RetrainJob.id.desc()).limit(limit)))

    def job(self, job_id: int) -> RetrainJob | None:
        with Session(self.engine) as session:
            return session.get(RetrainJob, job_id)

    def stop(self, timeout: float = 10.0) -> None:
        """At shutdown: a running retraining is ended and its job marked failed (so it does not block the next one
        until it goes stale), never left behind."""
        for child, job_id in self._children:
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(timeout)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
                with Session(self.engine) as session, session.begin():
                    session.execute(update(RetrainJob).where(RetrainJob.id == job_id, RetrainJob.status == "running")
                                    .values(status="failed", error="the service stopped while it ran",
                                            finished_at=utcnow(), phase="failed"))
