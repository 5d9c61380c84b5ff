"""Theme runs and the codebook in the store: a run's themes, sub-themes and statements persisted (so the workspace's
pages are SQL aggregations, not a clustering per click), their ids kept across runs, and analysts' edits.

The edits are applied by the same function for the report (the analysis' `Curator`) and for the stored statements
(`rematerialise`), so a page and `GET /v1/reports/themes` agree on where a statement belongs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from bazkhord.data.errors import InputError
from bazkhord.data.normalise import normalise
from bazkhord.data.taxonomy import Taxonomy
from bazkhord.model.themes.analysis import Membership
from bazkhord.model.themes.codebook import ACTIONS, Curator, Edit, KnownTheme, Names, apply_edits
from bazkhord.model.themes.report import ThemeReport
from bazkhord.service.db import (
    CodebookEdit,
    CodebookSubtheme,
    CodebookTheme,
    DomainCodebook,
    Feedback,
    ThemeRun,
    ThemeStatement,
    utcnow,
)

STALE_RUN = timedelta(hours=6)  # a run "running" this long died with its process: another may start


@dataclass(frozen=True)
class ThemeName:
    """A codebook theme as the workspace shows it: the edits' name over the analysis', and where it went."""

    id: int
    label: str
    found_label: str
    kind: str
    aspect: str | None
    keyphrases: list[str]
    new: bool
    direction: str | None
    hidden: bool
    merged_into: int | None


@dataclass(frozen=True)
class RunInfo:
    id: int
    trigger: str
    requested_by: str | None
    status: str
    phase: str
    done: int
    total: int
    started_at: Any
    finished_at: Any
    comments: int
    error: str | None


def _run_info(row: ThemeRun) -> RunInfo:
    return RunInfo(row.id, row.trigger, row.requested_by, row.status, row.phase, row.done, row.total, row.started_at,
                   row.finished_at, row.comments, row.error)


class ThemeStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._warnings: dict[int, tuple[dict[str, Any] | None, bool]] = {}  # finished run -> run_warnings

    # -- runs -------------------------------------------------------------------------------------------------
    def start_run(self, trigger: str, requested_by: str | None) -> int | None:
        """A new run's id, or None while another is running (one that has run for STALE_RUN is taken as dead)."""
        now = utcnow()
        try:
            with Session(self.engine) as session, session.begin():
                running = session.scalars(select(ThemeRun).where(ThemeRun.status == "running")).all()
                for row in running:
                    if now - row.started_at < STALE_RUN:
                        return None
                    row.status, row.error, row.finished_at = "failed", "its process stopped before it finished", now
                session.flush()
                row = ThemeRun(trigger=trigger, requested_by=requested_by, status="running", phase="starting", done=0,
                               total=0, started_at=now, comments=0)
                session.add(row)
                session.flush()
                return row.id
        except IntegrityError:  # another process started one between the look and the insert
            return None

    def progress(self, run_id: int, phase: str, done: int, total: int) -> None:
        with Session(self.engine) as session, session.begin():
            session.execute(update(ThemeRun).where(ThemeRun.id == run_id).values(phase=phase, done=done, total=total))

    def fail(self, run_id: int, error: str) -> None:
        with Session(self.engine) as session, session.begin():
            session.execute(update(ThemeRun).where(ThemeRun.id == run_id).values(
                status="failed", error=error[:2000], finished_at=utcnow()))

    def runs(self, limit: int = 20) -> list[RunInfo]:
        with Session(self.engine) as session:
            return [_run_info(r) for r in session.scalars(select(ThemeRun).order_by(ThemeRun.id.desc()).limit(limit))]

    def latest_run(self) -> int | None:
        """The newest finished run: what the pages show."""
        with Session(self.engine) as session:
            return session.scalar(select(func.max(ThemeRun.id)).where(ThemeRun.status == "done"))

    def run_warnings(self, run_id: int) -> tuple[dict[str, Any] | None, bool]:
        """A finished run's out-of-domain check (None when in domain) and whether it discovered causes: what the
        overview shows on every view, read from the run's report once (edits rename themes, never these)."""
        if run_id not in self._warnings:
            report = self.run_report(run_id) or {}
            shift = report.get("domain_shift") or {}
            self._warnings[run_id] = (shift if shift.get("out_of_domain") else None, bool(report.get("codebook_draft")))
        return self._warnings[run_id]

    def run_report(self, run_id: int) -> dict[str, Any] | None:
        with Session(self.engine) as session:
            return session.scalar(select(ThemeRun.report).where(ThemeRun.id == run_id))

    # -- the causes of a domain without a taxonomy -------------------------------------------------------------
    def domain_codebook(self) -> tuple[Taxonomy | None, DomainCodebook | None]:
        """The causes accepted for this store's reports (None: reports choose a taxonomy, or discover), and the
        row that says who accepted them and when."""
        with Session(self.engine) as session:
            row = session.scalars(select(DomainCodebook).order_by(DomainCodebook.id.desc()).limit(1)).first()
            if row is not None:
                session.expunge(row)
        if row is None or row.taxonomy is None:
            return None, row
        return Taxonomy.from_dict(row.taxonomy, "the accepted codebook"), row

    def accept_codebook(self, taxonomy: Taxonomy | None, accepted_by: str, run_id: int | None = None) -> None:
        """Accept an (edited) draft codebook for the reports from now on; None goes back to choosing."""
        with Session(self.engine) as session, session.begin():
            session.add(DomainCodebook(taxonomy=taxonomy.to_dict() if taxonomy is not None else None, run_id=run_id,
                                       accepted_by=accepted_by, accepted_at=utcnow()))

    # -- the codebook -----------------------------------------------------------------------------------------
    def edits(self, session: Session | None = None) -> list[Edit]:
        """The edits in force, oldest first."""
        def read(s: Session) -> list[Edit]:
            rows = s.scalars(select(CodebookEdit).where(CodebookEdit.undone_at.is_(None)).order_by(CodebookEdit.id))
            return [Edit(r.action, r.theme_id, r.target_id, r.subtheme_id,
                         (r.comment_id, r.start) if r.comment_id is not None and r.start is not None else None, r.label)
                    for r in rows]
        if session is not None:
            return read(session)
        with Session(self.engine) as own:
            return read(own)

    def curator(self) -> Curator:
        """The codebook as the analysis' step: the last run's themes (where it put their statements) and the edits."""
        run_id = self.latest_run()
        with Session(self.engine) as session:
            known: dict[int, KnownTheme] = {}
            if run_id is not None:
                rows = session.execute(
                    select(ThemeStatement.found_theme_id, ThemeStatement.found_subtheme_id, Feedback.client_id,
                           ThemeStatement.start)
                    .join(Feedback, Feedback.id == ThemeStatement.feedback_id).where(ThemeStatement.run_id == run_id))
                for theme_id, sub_id, client_id, start in rows:
                    known.setdefault(theme_id, KnownTheme(theme_id, "", None, {})).statements.add((client_id, start))
                    if sub_id is not None:
                        known[theme_id].subthemes.setdefault(sub_id, set()).add((client_id, start))
            themes = session.scalars(select(CodebookTheme)).all()
            labels = {t.id: t.label for t in themes}
            for theme in themes:
                if theme.id in known or (run_id is not None and theme.last_run_id == run_id):
                    entry = known.setdefault(theme.id, KnownTheme(theme.id, "", None, {}))
                    entry.kind, entry.aspect, entry.signature = theme.kind, theme.aspect, dict(theme.signature)
            return Curator(known=list(known.values()), edits=self.edits(session), labels=labels)

    def names(self) -> dict[int, ThemeName]:
        with Session(self.engine) as session:
            themes = session.scalars(select(CodebookTheme).order_by(CodebookTheme.id)).all()
            _, names = apply_edits({}, self.edits(session))
            return {t.id: ThemeName(t.id, names.labels.get(t.id, t.label), t.label, t.kind, t.aspect, list(t.keyphrases),
                                    t.new, t.direction, t.id in names.hidden, names.merged_into.get(t.id))
                    for t in themes}

    def sub_names(self, theme_ids: Sequence[int] | None = None) -> dict[int, tuple[int, str]]:
        """Sub-theme id -> (its theme, its name after the edits)."""
        with Session(self.engine) as session:
            query = select(CodebookSubtheme)
            if theme_ids is not None:
                query = query.where(CodebookSubtheme.theme_id.in_(list(theme_ids)))
            _, names = apply_edits({}, self.edits(session))
            return {s.id: (s.theme_id, names.sub_labels.get(s.id, s.label)) for s in session.scalars(query)}

    def edit(self, action: str, made_by: str, theme: int | None = None, target: int | None = None,
             subtheme: int | None = None, statement_row: int | None = None, label: str | None = None) -> int:
        """Record an edit (checked against the store) and apply it to the newest run's statements."""
        if action not in ACTIONS:
            raise InputError(f"unknown codebook action {action!r}: one of {', '.join(ACTIONS)}")
        if label is not None:
            label = " ".join(label.split())
            if not label or len(label) > 120:
                raise InputError("a name needs 1 to 120 characters")
        with Session(self.engine) as session, session.begin():
            comment_id = start = None
            if theme is not None and session.get(CodebookTheme, theme) is None:
                raise InputError(f"no theme {theme}")
            if target is not None and session.get(CodebookTheme, target) is None:
                raise InputError(f"no theme {target} to move into")
            if action in ("rename", "rename_sub") and not label:
                raise InputError("a rename needs the new name")
            if action == "merge" and (theme is None or target is None or theme == target):
                raise InputError("a merge needs two different themes")
            if action in ("rename_sub", "split"):
                sub = session.get(CodebookSubtheme, subtheme) if subtheme is not None else None
                if sub is None:
                    raise InputError(f"no sub-theme {subtheme}")
                theme = sub.theme_id
                if action == "split":  # the sub-theme becomes a theme of its own, with a lasting id of its own
                    made = CodebookTheme(kind="split", aspect=None, label=label or sub.label, label_en=None,
                                         keyphrases=list(sub.keyphrases), signature={}, first_run_id=None,
                                         last_run_id=None, new=False, direction=None, q_value=None)
                    session.add(made)
                    session.flush()
                    target = made.id
            if action == "move":
                row = session.get(ThemeStatement, statement_row) if statement_row is not None else None
                if row is None or target is None:
                    raise InputError("a move needs a statement and the theme to move it to")
                comment_id = session.scalar(select(Feedback.client_id).where(Feedback.id == row.feedback_id))
                start, theme = row.start, row.theme_id
            made_edit = CodebookEdit(action=action, theme_id=theme, target_id=target, subtheme_id=subtheme,
                                     comment_id=comment_id, start=start, label=label, made_by=made_by, made_at=utcnow())
            session.add(made_edit)
            session.flush()
            edit_id = made_edit.id
        self.rematerialise()
        return edit_id

    def undo(self, edit_id: int, undone_by: str) -> None:
        with Session(self.engine) as session, session.begin():
            row = session.get(CodebookEdit, edit_id)
            if row is None or row.undone_at is not None:
                raise InputError(f"no edit {edit_id} in force")
            row.undone_at, row.undone_by = utcnow(), undone_by
        self.rematerialise()

    def history(self, limit: int = 200) -> list[CodebookEdit]:
        with Session(self.engine) as session:
            rows = session.scalars(select(CodebookEdit).order_by(CodebookEdit.id.desc()).limit(limit)).all()
            session.expunge_all()
            return list(rows)

    def rematerialise(self, run_id: int | None = None) -> None:
        """Put the run's statements where the edits in force say (from where the run found them), and mark which
        comments have all their complaints in one theme (what a theme's impact counts) and each comment's first
        statement in a theme (what counts comments)."""
        run_id = run_id or self.latest_run()
        if run_id is None:
            return
        with Session(self.engine) as session, session.begin():
            rows = session.execute(
                select(ThemeStatement.id, Feedback.client_id, ThemeStatement.start, ThemeStatement.found_theme_id,
                       ThemeStatement.found_subtheme_id, ThemeStatement.theme_id, ThemeStatement.subtheme_id)
                .join(Feedback, Feedback.id == ThemeStatement.feedback_id).where(ThemeStatement.run_id == run_id)).all()
            found = {(r.client_id, r.start): (r.found_theme_id, r.found_subtheme_id) for r in rows}
            placed, _ = apply_edits(found, self.edits(session))
            changed = [{"row_id": r.id, "theme": placed[(r.client_id, r.start)][0],
                        "sub": placed[(r.client_id, r.start)][1]}
                       for r in rows if placed[(r.client_id, r.start)] != (r.theme_id, r.subtheme_id)]
            if changed:
                table = ThemeStatement.__table__
                session.connection().execute(
                    update(table).where(table.c.id == bindparam("row_id"))  # type: ignore[arg-type]
                    .values(theme_id=bindparam("theme"), subtheme_id=bindparam("sub")), changed)
            other = aliased(ThemeStatement)
            same_theme = (select(func.count()).where(other.run_id == ThemeStatement.run_id,
                                                     other.feedback_id == ThemeStatement.feedback_id,
                                                     other.theme_id == ThemeStatement.theme_id)
                          .correlate(ThemeStatement).scalar_subquery())
            first_in_theme = (select(func.min(other.id)).where(other.run_id == ThemeStatement.run_id,
                                                               other.feedback_id == ThemeStatement.feedback_id,
                                                               other.theme_id == ThemeStatement.theme_id)
                              .correlate(ThemeStatement).scalar_subquery())
            session.execute(update(ThemeStatement).where(ThemeStatement.run_id == run_id)
                            .values(sole=same_theme == ThemeStatement.complaints,
                                    lead=ThemeStatement.id == first_in_theme))

    # -- a finished run ---------------------------------------------------------------------------------------
    def finish(self, run_id: int, report: ThemeReport, membership: Sequence[Membership], curator: Curator,
               first_run: bool) -> ThemeReport:
        """Persist a run: new themes and sub-themes get their lasting ids, known ones their new figures, every
        complaint statement its row. Returns the report with the lasting ids in place of the stand-ins."""
        with Session(self.engine) as session, session.begin():
            ids: dict[int, int] = {}
            held = {t.codebook_id: t for t in report.themes if t.codebook_id is not None}
            # The themes the report holds, and those its statements were found in (a reaction cluster the report
            # left out holds none of them, and gets no row).
            found_of = {(m.comment_id, m.start): curator.found_places.get((m.comment_id or "", m.start)) for m in membership}
            wanted = set(held) | {m.codebook_id for m in membership if m.codebook_id is not None}
            wanted |= {place[0] for place in found_of.values() if place is not None}
            for stand_in in sorted(wanted):
                theme = held.get(stand_in)
                if stand_in > 0:
                    row = session.get(CodebookTheme, stand_in)
                    if row is None:
                        continue
                else:
                    row = CodebookTheme(kind=theme.kind if theme else "emerging", aspect=theme.aspect if theme else None,
                                        label=theme.label if theme else "", label_en=theme.label_en if theme else None,
                                        keyphrases=[], signature={}, first_run_id=run_id, last_run_id=run_id,
                                        new=not first_run, direction=None, q_value=None)
                    session.add(row)
                    session.flush()
                ids[stand_in] = row.id
                row.last_run_id = run_id
                if stand_in > 0 and row.first_run_id is not None and row.first_run_id != run_id:
                    row.new = False
                if theme is not None:
                    if theme.label and theme.id.startswith(("aspect:", "emerging:")) and row.kind != "split":
                        row.label = row.label if stand_in > 0 and curator.names.labels.get(stand_in) else theme.label
                    row.keyphrases = list(theme.keyphrases)
                    row.direction = theme.trend.direction if theme.trend else None
                    row.q_value = theme.trend.q_value if theme.trend else None
                if stand_in in curator.signatures:  # computed by the matching, on the statements as the model read them
                    row.signature = curator.signatures[stand_in]
            # Sub-themes the stored statements name (where the run found them, and where the edits put them): a new
            # one gets its lasting id, named as the clustering named it.
            sub_ids: dict[int, int] = {}
            theme_of_sub: dict[int, int] = {}
            for m in membership:
                if m.codebook_sub is not None and m.codebook_id is not None:
                    theme_of_sub.setdefault(m.codebook_sub, m.codebook_id)
            for place in found_of.values():
                if place is not None and place[1] is not None:
                    theme_of_sub[place[1]] = place[0]
            for sub_id, theme_id in sorted(theme_of_sub.items()):
                if sub_id > 0:
                    sub_ids[sub_id] = sub_id
                    continue
                clustered = curator.subthemes.get(sub_id)
                made = CodebookSubtheme(theme_id=ids.get(theme_id, theme_id),
                                        label=clustered.label if clustered else "",
                                        keyphrases=list(clustered.keyphrases) if clustered else [])
                session.add(made)
                session.flush()
                sub_ids[sub_id] = made.id
            client_ids = sorted({m.comment_id for m in membership if m.comment_id is not None})
            feedback_of: dict[str, Any] = {}
            for start in range(0, len(client_ids), 1000):
                chunk = client_ids[start:start + 1000]
                feedback_of.update((row.client_id, row) for row in session.execute(
                    select(Feedback.client_id, Feedback.id, Feedback.created_at, Feedback.channel, Feedback.product,
                           Feedback.segment, Feedback.model_version).where(Feedback.client_id.in_(chunk))))
            rows = []
            for m in membership:
                if m.comment_id not in feedback_of or m.codebook_id is None:
                    continue
                found_theme, found_sub = curator.found_places.get((m.comment_id, m.start), (m.codebook_id, m.codebook_sub))
                comment = feedback_of[m.comment_id]
                rows.append({"run_id": run_id, "feedback_id": comment.id, "start": m.start, "end": m.end,
                             "created_at": comment.created_at, "day": comment.created_at.date().isoformat(),
                             "channel": comment.channel, "product": comment.product, "segment": comment.segment,
                             "model_version": comment.model_version, "lead": False,
                             "text": m.text, "search_text": normalise(m.text), "sentiment": m.sentiment,
                             "complaints": m.complaints,
                             "found_theme_id": ids.get(found_theme, found_theme),
                             "found_subtheme_id": sub_ids.get(found_sub, found_sub) if found_sub is not None else None,
                             "theme_id": ids.get(m.codebook_id, m.codebook_id),
                             "subtheme_id": sub_ids.get(m.codebook_sub, m.codebook_sub) if m.codebook_sub else None,
                             "sole": False})
            for start in range(0, len(rows), 5000):
                session.execute(insert(ThemeStatement), rows[start:start + 5000])
            settled = settle(report, ids, sub_ids)
            session.execute(update(ThemeRun).where(ThemeRun.id == run_id).values(
                status="done", phase="done", finished_at=utcnow(), comments=report.totals.comments,
                model_name=report.model.get("name"), model_version=report.model.get("version"),
                report=_jsonable(settled)))
            # Only the newest run's statements are read by the pages; older runs keep their report, not their rows.
            session.execute(delete(ThemeStatement).where(ThemeStatement.run_id < run_id))
        self.rematerialise(run_id)
        return settled


def settle(report: ThemeReport, ids: dict[int, int], sub_ids: dict[int, int]) -> ThemeReport:
    """The report with lasting ids for the codebook's stand-ins; a stand-in with none (a report not stored) none."""
    def lasting(value: int | None, table: dict[int, int]) -> int | None:
        if value is None:
            return None
        return table.get(value, value if value > 0 else None)

    themes = [dataclasses.replace(t, codebook_id=lasting(t.codebook_id, ids),
                                  subthemes=[dataclasses.replace(s, codebook_id=lasting(s.codebook_id, sub_ids))
                                             for s in t.subthemes]) for t in report.themes]
    return dataclasses.replace(report, themes=themes)


def _jsonable(report: ThemeReport) -> dict[str, Any]:
    return dataclasses.asdict(report)


__all__ = ["Names", "RunInfo", "ThemeName", "ThemeStore", "settle"]
