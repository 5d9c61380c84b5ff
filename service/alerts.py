"""Alerts: a run's rising themes (the report's trend test, Benjamini-Hochberg across its themes) and its new themes
above a size, kept in the store and POSTed to the webhooks an admin configured, as Slack-compatible JSON
(`{"text": ...}`). Delivery happens in a thread of its own, retried with back-off: a failing webhook never holds up a
run. A webhook's URL carries its secret, so it is stored but never shown back (only its host).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bazkhord.data.calendar import persian_digits
from bazkhord.data.errors import InputError
from bazkhord.model.themes.report import ThemeReport
from bazkhord.service.db import Alert, Webhook, utcnow

log = logging.getLogger("bazkhord.service.alerts")


@dataclass(frozen=True)
class WebhookInfo:
    id: int
    name: str
    host: str  # all that is shown of the URL
    created_by: str
    created_at: Any


def _host(url: str) -> str:
    return urlsplit(url).hostname or "?"


def check_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2000:
        raise InputError("a webhook needs an http:// or https:// URL (at most 2,000 characters)")
    return url


def post_json(url: str, payload: dict[str, Any], timeout: float) -> None:
    """POST JSON; raises on a network error or an answer other than 2xx."""
    request = urllib.request.Request(url, data=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
                                     headers={"Content-Type": "application/json; charset=utf-8"}, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        if not 200 <= answer.status < 300:
            raise OSError(f"answered {answer.status}")


class AlertSender:
    def __init__(self, engine: Engine, attempts: int = 4, backoff_s: float = 2.0, timeout_s: float = 5.0,
                 post: Callable[[str, dict[str, Any], float], None] = post_json) -> None:
        self.engine, self.attempts, self.backoff_s, self.timeout_s, self.post = engine, attempts, backoff_s, timeout_s, post
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    # -- webhooks ---------------------------------------------------------------------------------------------
    def add_webhook(self, name: str, url: str, created_by: str) -> WebhookInfo:
        name = name.strip()
        if not name or len(name) > 100:
            raise InputError("a webhook needs a name of 1 to 100 characters")
        row = Webhook(name=name, url=check_url(url), created_by=created_by, created_at=utcnow())
        try:
            with Session(self.engine) as session, session.begin():
                session.add(row)
                session.flush()
                return WebhookInfo(row.id, row.name, _host(row.url), row.created_by, row.created_at)
        except IntegrityError:
            raise InputError(f"a webhook named {name!r} exists already") from None

    def webhooks(self) -> list[WebhookInfo]:
        with Session(self.engine) as session:
            return [WebhookInfo(r.id, r.name, _host(r.url), r.created_by, r.created_at)
                    for r in session.scalars(select(Webhook).order_by(Webhook.id))]

    def remove_webhook(self, webhook_id: int) -> None:
        with Session(self.engine) as session, session.begin():
            session.execute(delete(Webhook).where(Webhook.id == webhook_id))

    def alerts(self, limit: int = 100) -> list[Alert]:
        with Session(self.engine) as session:
            rows = list(session.scalars(select(Alert).order_by(Alert.id.desc()).limit(limit)))
            session.expunge_all()
            return rows

    # -- a run's alerts -------------------------------------------------------------------------------------------
    def after_run(self, run_id: int, report: ThemeReport, names: Mapping[int, Any], min_comments: int) -> list[int]:
        """Record the run's alerts and send them; returns their ids. Hidden themes raise none."""
        made: list[tuple[int, str, str]] = []
        for theme in report.themes:
            if theme.codebook_id is None:
                continue
            name = names.get(theme.codebook_id)
            label = name.label if name is not None else theme.label
            if theme.trend is not None and theme.trend.direction == "rising":
                share, base = theme.trend.latest_share or 0.0, theme.trend.baseline_share or 0.0
                made.append((theme.codebook_id, "rising",
                             f"موضوع «{label}» رو به افزایش است: "
                             f"{persian_digits(f'{100 * share:.1f}')}٪ نظرها در آخرین دوره در برابر "
                             f"{persian_digits(f'{100 * base:.1f}')}٪ پیش از آن (q = {theme.trend.q_value})"))
            if name is not None and name.new and theme.comments >= min_comments:
                made.append((theme.codebook_id, "new",
                             f"موضوع تازه «{label}»: {persian_digits(theme.comments)} نظر"))
        ids: list[int] = []
        with Session(self.engine) as session, session.begin():
            for theme_id, kind, message in made:
                row = Alert(run_id=run_id, theme_id=theme_id, kind=kind, message=message, created_at=utcnow(),
                            deliveries={})
                session.add(row)
                session.flush()
                ids.append(row.id)
            hooks = [(h.name, h.url) for h in session.scalars(select(Webhook))]
        if ids and hooks:
            thread = threading.Thread(target=self._deliver, args=(ids, hooks), name=f"bazkhord-alerts-{run_id}",
                                      daemon=True)
            self._threads.append(thread)
            thread.start()
        return ids

    def _deliver(self, ids: list[int], hooks: list[tuple[str, str]]) -> None:
        with Session(self.engine) as session:
            alerts = [(a.id, a.message) for a in session.scalars(select(Alert).where(Alert.id.in_(ids)))]
        for alert_id, message in alerts:
            results: dict[str, str] = {}
            for name, url in hooks:
                results[name] = self._send(url, {"text": message})
            with Session(self.engine) as session, session.begin():
                row = session.get(Alert, alert_id)
                if row is not None:
                    row.deliveries = results

    def _send(self, url: str, payload: dict[str, Any]) -> str:
        wait, error = self.backoff_s, ""
        for attempt in range(self.attempts):
            try:
                self.post(url, payload, self.timeout_s)
                return "delivered"
            except (OSError, urllib.error.URLError, ValueError) as failure:
                # The URL is a secret: the error names the host only.
                error = f"{type(failure).__name__} from {_host(url)}"
                log.warning("webhook to %s failed (attempt %d of %d): %s", _host(url), attempt + 1, self.attempts,
                            type(failure).__name__)
            if attempt + 1 < self.attempts and self._stop.wait(wait):
                break
            wait *= 2
        return f"failed after {self.attempts} tries: {error}"

    def wait(self, timeout: float | None = None) -> None:
        for thread in list(self._threads):
            thread.join(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
