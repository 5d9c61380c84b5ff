"""What the workspace's pages show, as SQL aggregations over the newest theme run's stored statements and the
feedback table, under the analyst's filters. Nothing here clusters: that is the background run's work.

Counts by day come from SQL; folding days into Jalali (or Gregorian) weeks and months is done here, on at most a few
thousand rows, so one query serves every calendar.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, and_, case, distinct, func, literal, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bazkhord.data.calendar import gregorian_label, period_key, period_label, periods_between
from bazkhord.data.normalise import normalise
from bazkhord.data.pii import mask_pii
from bazkhord.model.base import NEGATIVE_SENTIMENTS
from bazkhord.model.themes.prevalence import adjusted_interval
from bazkhord.model.themes.report import Trend
from bazkhord.model.themes.trends import adjust_trends, trend_of_counts
from bazkhord.service.db import Feedback, FeedbackAspect, ThemeStatement
from bazkhord.service.store import ABSENT, Filters, effective_sentiment
from bazkhord.service.themestore import ThemeName, ThemeStore

PER_PAGE = 25
MAX_EXPORT = 100_000
BREAKDOWN_FIELDS = ("channel", "product", "segment")
OPTIONS_SECONDS = 60.0
EXCERPT = 140  # characters of the comment shown each side of a statement


@dataclass(frozen=True)
class Period:
    key: str
    label: str  # in the chosen calendar, Persian digits
    gregorian: str  # ISO, for the hover text
    comments: int
    negative: int
    share: float | None = None  # of a theme: the share of the period's comments that raise it


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


class WorkspaceQueries:
    def __init__(self, engine: Engine, themes: ThemeStore) -> None:
        self.engine, self.themes = engine, themes
        self._options: tuple[float, int, dict[str, list[str]]] | None = None  # when, newest comment id, lists
        self._options_lock = threading.Lock()
        self._refreshing = False

    # -- shared ---------------------------------------------------------------------------------------------
    def options(self) -> dict[str, list[str]]:
        """The values each filter can take (the most frequent 200 of each). Four scans of the store for a list that
        changes when a new channel or product first appears: kept, and refreshed in the background when a minute
        old or when comments were stored since; read while the page waits only the first time, and when the lists
        were read from an empty store."""
        with Session(self.engine) as session:
            newest = int(session.scalar(select(func.max(Feedback.id))) or 0)
        with self._options_lock:
            held = self._options
            inline = held is None or (held[1] == 0 and newest > 0)
            stale = not inline and held is not None and (
                time.monotonic() - held[0] >= OPTIONS_SECONDS or held[1] != newest)
            refresh = stale and not self._refreshing
            if refresh:
                self._refreshing = True
        if inline or held is None:
            return self._read_options(newest)
        if refresh:
            threading.Thread(target=self._read_options, args=(newest,), name="bazkhord-filter-options",
                             daemon=True).start()
        return held[2]

    def _read_options(self, newest: int) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        try:
            with Session(self.engine) as session:
                for name, column in (("channel", Feedback.channel), ("product", Feedback.product),
                                     ("segment", Feedback.segment), ("model_version", Feedback.model_version)):
                    rows = session.execute(select(column, func.count()).where(column.is_not(None)).group_by(column)
                                           .order_by(func.count().desc()).limit(200)).all()
                    found[name] = sorted(str(value) for value, _ in rows)
            with self._options_lock:
                self._options = (time.monotonic(), newest, found)
        finally:
            self._refreshing = False
        return found

    def _days(self, session: Session, filters: Filters, theme: int | None = None,
              run_id: int | None = None) -> list[tuple[date, int, int]]:
        """(day, comments, negative comments) under the filters; of one theme's comments (negative: 0) when given."""
        rows: Sequence[Any]
        if theme is not None:
            rows = session.execute(
                select(ThemeStatement.day, func.sum(case((ThemeStatement.lead, 1), else_=0)), literal(0))
                .where(ThemeStatement.run_id == run_id, ThemeStatement.theme_id == theme,
                       *filters.conditions(ThemeStatement)).group_by(ThemeStatement.day)).all()
        else:
            rows = [(d, n, n if label in NEGATIVE_SENTIMENTS else 0) for d, label, n in self._day_sentiments(session, filters)]
        return [(_day(d), int(n or 0), int(neg or 0)) for d, n, neg in rows]

    @staticmethod
    def _day_sentiments(session: Session, filters: Filters) -> list[tuple[Any, str, int]]:
        """(day, sentiment, comments): the series and the headline's counts from one scan of the store; an analyst's
        label counts where there is one."""
        day = func.date(Feedback.created_at)
        sentiment = effective_sentiment()
        return [tuple(row) for row in session.execute(  # type: ignore[misc]
            select(day, sentiment, func.count()).where(*filters.conditions()).group_by(day, sentiment))]

    @staticmethod
    def _fold(days: list[tuple[date, int, int]], period: str, calendar: str, keys: list[str] | None = None
              ) -> tuple[list[str], dict[str, list[int]]]:
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for day, n, negative in days:
            key = period_key(day, period, calendar)
            counts[key][0] += n
            counts[key][1] += negative
        if keys is None:
            keys = periods_between(min(counts), max(counts), period, calendar) if counts else []
        return keys, counts

    def _periods(self, keys: list[str], counts: dict[str, list[int]], period: str, calendar: str,
                 totals: dict[str, list[int]] | None = None) -> list[Period]:
        result = []
        for key in keys:
            n, negative = counts.get(key, [0, 0])
            total = totals.get(key, [0, 0])[0] if totals is not None else None
            result.append(Period(key, period_label(key, period, calendar), gregorian_label(key, period, calendar), n,
                                 negative, n / total if total else None))
        return result

    # -- the overview -------------------------------------------------------------------------------------------
    def overview(self, filters: Filters, period: str, calendar: str, confusion: dict[str, Any] | None,
                 names: dict[int, ThemeName]) -> dict[str, Any]:
        """The headline, the series and the drivers with their trends: two scans, the store's comments and the run's
        statements, each in its own connection and thread (SQLite and psycopg let go of the GIL while they read)."""
        run_id = self.themes.latest_run()
        with ThreadPoolExecutor(max_workers=1) as pool:
            themed = pool.submit(self._theme_days, filters, run_id)
            with Session(self.engine) as session:
                by_day = self._day_sentiments(session, filters)
            theme_days = themed.result()
        sentiments: dict[str, int] = defaultdict(int)
        days: dict[Any, list[int]] = defaultdict(lambda: [0, 0])
        for d, label, n in by_day:
            sentiments[label] += n
            days[d][0] += n
            days[d][1] += n if label in NEGATIVE_SENTIMENTS else 0
        total = sum(sentiments.values())
        keys, counts = self._fold([(_day(d), n, neg) for d, (n, neg) in days.items()], period, calendar)
        drivers = self._drivers(theme_days, total, names)
        trends = self._trends(theme_days, [d["id"] for d in drivers], keys, counts, period, calendar)
        for driver in drivers:
            driver["trend"] = trends.get(driver["id"])
        negative = sum(sentiments.get(label, 0) for label in NEGATIVE_SENTIMENTS)
        interval = _interval(tuple(sorted((str(k), int(v)) for k, v in sentiments.items())),
                             json.dumps(confusion, sort_keys=True) if confusion else None)
        return {
            "run_id": run_id,
            "comments": total,
            "sentiment": dict(sentiments),
            "negative_share": negative / total if total else None,
            "adjusted": interval,  # (share, low, high) or None
            "series": self._periods(keys, counts, period, calendar),
            "drivers": drivers,
            "rising": [d for d in drivers if d["trend"] is not None and d["trend"].direction == "rising"],
            "new": [d for d in drivers if d["new"]],
        }

    def _theme_days(self, filters: Filters, run_id: int | None) -> list[tuple[int, date, int, int, int]]:
        """(theme, day, comments, statements, comments whose every complaint is in the theme) of the run's statements
        under the filters: one scan, of a covering index where no metadata filter is set."""
        if run_id is None:
            return []
        lead = func.sum(case((ThemeStatement.lead, 1), else_=0))
        relieved = func.sum(case((and_(ThemeStatement.lead, ThemeStatement.sole), 1), else_=0))
        with Session(self.engine) as session:
            rows = session.execute(
                select(ThemeStatement.theme_id, ThemeStatement.day, lead, func.count(), relieved)
                .where(ThemeStatement.run_id == run_id, *filters.conditions(ThemeStatement))
                .group_by(ThemeStatement.theme_id, ThemeStatement.day)).all()
        return [(int(t), _day(d), int(c or 0), int(n), int(r or 0)) for t, d, c, n, r in rows]

    @staticmethod
    def _drivers(theme_days: list[tuple[int, date, int, int, int]], total: int,
                 names: dict[int, ThemeName]) -> list[dict[str, Any]]:
        sums: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
        for theme_id, _, comments, statements, sole in theme_days:
            row = sums[theme_id]
            row[0] += comments
            row[1] += statements
            row[2] += sole
        drivers: list[dict[str, Any]] = []
        for theme_id, (comments, statements, sole) in sums.items():
            name = names.get(theme_id)
            if name is None or name.hidden:
                continue
            drivers.append({"id": theme_id, "label": name.label or "—", "kind": name.kind, "new": name.new,
                            "keyphrases": name.keyphrases[:4], "comments": comments, "statements": statements,
                            "impact": 100 * sole / total if total else 0.0})
        drivers.sort(key=lambda d: (-d["impact"], -d["comments"], d["id"]))
        return drivers

    def _trends(self, theme_days: list[tuple[int, date, int, int, int]], themes: list[int], keys: list[str],
                totals: dict[str, list[int]], period: str, calendar: str) -> dict[int, Trend]:
        """Each theme's test of the latest period against the six before it, on the filtered comments, adjusted across
        the themes (as the report does)."""
        if not themes or not keys:
            return {}
        by_theme: dict[int, list[tuple[date, int, int]]] = defaultdict(list)
        for theme_id, d, comments, _, _ in theme_days:
            by_theme[theme_id].append((d, comments, 0))
        trends: dict[int, Trend] = {}
        for theme_id in themes:
            _, counts = self._fold(by_theme.get(theme_id, []), period, calendar, keys)
            trends[theme_id] = trend_of_counts([counts.get(k, [0, 0])[0] for k in keys],
                                               [totals.get(k, [0, 0])[0] for k in keys], keys, period)
        adjust_trends(list(trends.values()))
        return trends

    # -- a theme -----------------------------------------------------------------------------------------------
    def theme(self, theme_id: int, filters: Filters, period: str, calendar: str) -> dict[str, Any]:
        run_id = self.themes.latest_run()
        in_theme = (ThemeStatement.run_id == run_id, ThemeStatement.theme_id == theme_id,
                    *filters.conditions(ThemeStatement))
        lead = func.sum(case((ThemeStatement.lead, 1), else_=0))
        with Session(self.engine) as session:
            keys, totals = self._fold(self._days(session, filters), period, calendar)
            _, counts = self._fold(self._days(session, filters, theme_id, run_id), period, calendar, keys)
            comments, statements = session.execute(select(lead, func.count()).where(*in_theme)).one()
            subs = session.execute(
                select(ThemeStatement.subtheme_id, func.count(), func.count(distinct(ThemeStatement.feedback_id)))
                .where(*in_theme).group_by(ThemeStatement.subtheme_id)).all()
            breakdowns: dict[str, list[dict[str, Any]]] = {}
            for name in BREAKDOWN_FIELDS:
                column, copied = getattr(Feedback, name), getattr(ThemeStatement, name)
                hits = session.execute(select(copied, lead).where(*in_theme, copied.is_not(None)).group_by(copied)
                                       .order_by(lead.desc()).limit(12)).all()
                if not hits:
                    continue
                all_of: dict[Any, int] = dict(session.execute(
                    select(column, func.count()).where(*filters.conditions(), column.in_([v for v, _ in hits]))
                    .group_by(column)).all())
                breakdowns[name] = [{"value": v, "comments": int(n or 0),
                                     "rate": int(n or 0) / all_of[v] if all_of.get(v) else 0.0} for v, n in hits]
        sub_names = self.themes.sub_names()
        return {
            "run_id": run_id,
            "comments": int(comments or 0),
            "statements": int(statements),
            "series": self._periods(keys, counts, period, calendar, totals),
            "subthemes": sorted(({"id": s, "label": sub_names.get(s, (0, "سایر موارد"))[1] if s else "بی‌زیرموضوع",
                                  "statements": int(n), "comments": int(c)} for s, n, c in subs),
                                key=lambda row: -row["statements"]),
            "breakdowns": breakdowns,
        }

    def statements(self, theme_id: int, filters: Filters, search: str | None, page: int, per_page: int = PER_PAGE,
                   subtheme: int | None = None) -> tuple[list[dict[str, Any]], int]:
        """A page of the theme's statements, newest comments first, each with the text around it."""
        run_id = self.themes.latest_run()
        where: list[ColumnElement[bool]] = [ThemeStatement.run_id == run_id, ThemeStatement.theme_id == theme_id,
                                            *filters.conditions(ThemeStatement)]
        if subtheme is not None:
            where.append(ThemeStatement.subtheme_id == subtheme)
        if search:
            words = normalise(search).split()[:8]
            where.extend(ThemeStatement.search_text.contains(word, autoescape=True) for word in words)
        with Session(self.engine) as session:
            total = int(session.scalar(select(func.count()).select_from(ThemeStatement).where(*where)) or 0)
            rows = session.execute(
                select(ThemeStatement.id, ThemeStatement.start, ThemeStatement.end, ThemeStatement.text,
                       ThemeStatement.sentiment, ThemeStatement.subtheme_id, Feedback.client_id, Feedback.text,
                       ThemeStatement.created_at, ThemeStatement.channel, ThemeStatement.product,
                       ThemeStatement.segment)
                .join(Feedback, Feedback.id == ThemeStatement.feedback_id).where(*where)
                .order_by(ThemeStatement.created_at.desc(), ThemeStatement.id).limit(per_page).offset(page * per_page)).all()
        return [self._statement_row(row) for row in rows], total

    @staticmethod
    def _statement_row(row: Any) -> dict[str, Any]:
        text, start, end = row[7], row.start, row.end
        before = text[max(0, start - EXCERPT):start]
        after = text[end:end + EXCERPT]
        return {"row_id": row.id, "comment_id": row.client_id, "created_at": row.created_at, "sentiment": row.sentiment,
                "subtheme_id": row.subtheme_id, "statement": row[3],
                "before": ("…" if start > EXCERPT else "") + mask_pii(before), "after": mask_pii(after)
                + ("…" if end + EXCERPT < len(text) else ""),
                "channel": row.channel, "product": row.product, "segment": row.segment}

    def export(self, theme_id: int, filters: Filters, search: str | None) -> list[dict[str, Any]]:
        rows, _ = self.statements(theme_id, filters, search, 0, MAX_EXPORT)
        return rows

    # -- a comment ---------------------------------------------------------------------------------------------
    def comment(self, client_id: str) -> dict[str, Any] | None:
        run_id = self.themes.latest_run()
        with Session(self.engine) as session:
            row = session.scalars(select(Feedback).where(Feedback.client_id == client_id)).first()
            if row is None:
                return None
            aspects = session.scalars(select(FeedbackAspect).where(FeedbackAspect.feedback_id == row.id)
                                      .order_by(FeedbackAspect.id)).all()
            statements = session.execute(
                select(ThemeStatement.start, ThemeStatement.end, ThemeStatement.text, ThemeStatement.theme_id,
                       ThemeStatement.subtheme_id).where(ThemeStatement.run_id == run_id,
                                                         ThemeStatement.feedback_id == row.id)
                .order_by(ThemeStatement.start)).all() if run_id is not None else []
            return {
                "client_id": row.client_id, "created_at": row.created_at, "channel": row.channel,
                "product": row.product, "segment": row.segment, "rating": row.rating, "nps": row.nps,
                "sentiment": row.human_sentiment or row.sentiment, "model_sentiment": row.sentiment,
                "human": row.human_sentiment is not None, "probabilities": dict(row.probabilities),
                "corrected_by": row.corrected_by, "corrected_at": row.corrected_at,
                "model": f"{row.model_name} {row.model_version}",
                "pieces": _pieces(row.text, [(s.start, s.end, s.theme_id) for s in statements]),
                "aspects": [{"aspect": a.aspect, "polarity": a.human_polarity or a.polarity,
                             "model_polarity": a.polarity if a.origin == "model" else None,
                             "human": a.human_polarity is not None, "confidence": a.confidence,
                             "evidence": [mask_pii(str(e.get("text", ""))) for e in a.evidence]}
                            for a in aspects if a.human_polarity != ABSENT],
                "removed": [a.aspect for a in aspects if a.human_polarity == ABSENT],
                "themes": [{"theme_id": s.theme_id, "subtheme_id": s.subtheme_id, "statement": s.text,
                            "start": s.start} for s in statements],
            }


@lru_cache(maxsize=512)
def _interval(counts: tuple[tuple[str, int], ...], confusion: str | None) -> tuple[float, float, float] | None:
    """The headline's bootstrap is the page's one costly step (a tenth of a second): the same counts, the same
    answer, so a view reopened or shared is not computed again."""
    return adjusted_interval(dict(counts), NEGATIVE_SENTIMENTS, json.loads(confusion) if confusion else None)


def _pieces(text: str, marked: list[tuple[int, int, int]]) -> list[tuple[str, int | None]]:
    """The comment cut at its theme statements, each piece masked on its own: (text, theme or None)."""
    pieces: list[tuple[str, int | None]] = []
    at = 0
    for start, end, theme_id in sorted(marked):
        if start < at:
            continue
        if start > at:
            pieces.append((mask_pii(text[at:start]), None))
        pieces.append((mask_pii(text[start:end]), theme_id))
        at = end
    if at < len(text):
        pieces.append((mask_pii(text[at:]), None))
    return pieces

