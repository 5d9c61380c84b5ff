"""The background theme run: over the store's newest comments, on a schedule and on demand, one at a time, its
progress in the store (so every process of `serve --workers` shows it), its themes kept with their lasting ids, and
the alerts it raises sent to the webhooks.

The run works in a thread of its own: it reads and tags for minutes, and neither the event loop nor the request
threads may wait for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from bazkhord.data.errors import BazkhordError
from bazkhord.model.folder import LoadedModel
from bazkhord.model.themes.analysis import ThemeAnalyzer, ThemeSettings
from bazkhord.service.alerts import AlertSender
from bazkhord.service.memory import release_memory
from bazkhord.service.settings import Settings
from bazkhord.service.store import FeedbackStore, Filters
from bazkhord.service.themestore import ThemeStore

log = logging.getLogger("bazkhord.service.jobs")
PROGRESS_EVERY_S = 1.0  # writes of a run's progress to the store at most this often
SCHEDULE_TICK_S = 60.0  # how often the schedule looks whether a run is due


class RunProgress:
    """The analysis' `Progress`, written to the run's row (throttled)."""

    def __init__(self, themes: ThemeStore, run_id: int) -> None:
        self.themes, self.run_id = themes, run_id
        self.current, self.last = "starting", 0.0

    def phase(self, message: str) -> None:
        self.current = message[:100]
        self.themes.progress(self.run_id, self.current, 0, 0)

    def count(self, done: int, total: int | None, unit: str) -> None:
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S or (total is not None and done >= total):
            self.last = now
            self.themes.progress(self.run_id, f"{self.current} ({unit})"[:100], done, total or 0)

    def event(self, event: dict[str, Any]) -> None:
        pass


class ThemeJobs:
    def __init__(self, settings: Settings, store: FeedbackStore, themes: ThemeStore,
                 active: Callable[[], LoadedModel | None], alerts: AlertSender) -> None:
        self.settings, self.store, self.themes, self.active, self.alerts = settings, store, themes, active, alerts
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._scheduler: threading.Thread | None = None

    def request(self, trigger: str, requested_by: str | None) -> int | None:
        """Start a run now; None while one is running (here or in another process)."""
        if self.active() is None:
            raise BazkhordError("no model is loaded: a theme run needs one")
        run_id = self.themes.start_run(trigger, requested_by)
        if run_id is None:
            return None
        self._thread = threading.Thread(target=self._run, args=(run_id,), name=f"bazkhord-theme-run-{run_id}",
                                        daemon=True)
        self._thread.start()
        return run_id

    def wait(self, timeout: float | None = None) -> bool:
        """Until the run started here ends (tests, and a clean shutdown); whether it ended."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _run(self, run_id: int) -> None:
        try:
            loaded = self.active()
            if loaded is None:
                raise BazkhordError("the model was unloaded before the run began")
            progress = RunProgress(self.themes, run_id)
            progress.phase("reading the store")
            records, _ = self.store.records(Filters(), self.settings.theme_run_items)
            first_run = self.themes.latest_run() is None
            curator = self.themes.curator()
            codebook, _ = self.themes.domain_codebook()  # the causes analysts accepted, where they did
            settings = ThemeSettings(period=self.settings.theme_run_period, calendar="jalali", codebook=codebook)
            analyzer = ThemeAnalyzer(loaded.tagger, settings, encoder=self.settings.theme_encoder, curator=curator)
            report = analyzer.analyse(records, progress)
            progress.phase("saving the themes")
            settled = self.themes.finish(run_id, report, analyzer.membership_, curator, first_run)
            del analyzer
            self.alerts.after_run(run_id, settled, self.themes.names(), self.settings.alert_min_comments)
            log.info("theme run %d: %d comments, %d themes", run_id, settled.totals.comments, len(settled.themes))
        except Exception as error:  # the run is a background job: it records its failure, never kills the process
            log.exception("theme run %d failed", run_id)
            self.themes.fail(run_id, f"{type(error).__name__}: {error}")
        finally:
            release_memory()

    # -- the schedule ---------------------------------------------------------------------------------------
    def start_schedule(self) -> None:
        if self.settings.theme_run_minutes <= 0 or self._scheduler is not None:
            return
        self._scheduler = threading.Thread(target=self._schedule, name="bazkhord-theme-schedule", daemon=True)
        self._scheduler.start()

    def _schedule(self) -> None:
        """A run when the newest is `theme_run_minutes` old; with none yet, that long after this process started (a
        fresh server does not start minutes of analysis at boot: «اجرای تحلیل اکنون» is there for that)."""
        interval = self.settings.theme_run_minutes * 60
        started = time.time()
        while not self._stop.wait(min(SCHEDULE_TICK_S, interval)):
            try:
                runs = self.themes.runs(limit=1)
                last = runs[0].started_at.timestamp() if runs else started
                if time.time() - last < interval:
                    continue
                if self.active() is not None and self.store.count() > 0:
                    self.request("schedule", None)
            except Exception:  # a database away for a minute: try at the next tick
                log.exception("the theme schedule could not start a run")

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._scheduler is not None:
            self._scheduler.join(timeout)
        self.alerts.stop(timeout)
