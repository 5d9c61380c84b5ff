"""Micro-batching: texts of concurrent requests are gathered into one model call, fairly between callers.

Requests wait in a queue bounded in texts and in characters (work, not requests: one request of 64 long
comments costs the model as much as thousands of short ones); one key may hold only a share of it, so a heavy
caller is shed (503) before it starves the others. A full queue answers at once, it never grows memory. Batches
are filled round-robin across keys, one request of each in turn, and a key with nothing waiting joins at the
front, so a single comment waits behind at most the batch being tagged, not behind every large request queued
before it. The model runs in one worker *process* (by default) or
one worker thread, never on the event loop; while it tags one batch, the next gathers. A process of its own lets
tagging and HTTP work use two cores (a thread shares the GIL with the event loop); the worker loads each model
version from its folder once and keeps the two newest, so a rollback is instant.
A batch is cut at `max_batch` texts or `max_batch_chars` characters or after `max_wait` seconds, whichever comes
first. A request larger than that is cut into chunks of that size, which take their turns like requests: so one
key's single comment waits behind at most one chunk of another key's maximal batch, not behind all of it. Every
chunk of a request is tagged by the model version active when the request arrived, so its texts are tagged by one
version even during a swap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context

from bazkhord.model.base import Tag
from bazkhord.model.folder import LoadedModel

log = logging.getLogger("bazkhord.batcher")


_WORKER_MODELS: dict[str, LoadedModel] = {}  # in the worker process: folder -> model, the newest last
PARENT_CHECK_SECONDS = 0.5


def watch_parent(parent: int) -> None:
    """Runs in the worker process, first thing: exit as soon as the server that started it is gone.

    A server killed with SIGKILL runs no clean-up, and its worker (hundreds of MB with a model loaded) would be
    re-parented and live on. Linux's parent-death signal fires when the *thread* that forked exits, which in a
    pool is not the server's life, so the worker watches its parent id instead.
    """
    import os
    import signal
    import threading
    import time

    # Ctrl-C in a terminal reaches the whole process group: the server decides when its worker stops (it shuts the
    # pool down), so the worker must not die mid-batch with a KeyboardInterrupt trace of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(0)  # no clean-up to wait for: the worker holds nothing but models and a pipe to a dead server

    if os.getppid() != parent:
        os._exit(0)
    threading.Thread(target=watch, name="bazkhord-parent-watch", daemon=True).start()


def worker_tag(folder: str, texts: list[str]) -> list[Tag]:
    """Runs in the worker process: tag `texts` with the model in `folder` (loaded, and checked, on first use)."""
    loaded = _WORKER_MODELS.get(folder)
    if loaded is None:
        from bazkhord.model.folder import load_model

        loaded = load_model(folder)
        while len(_WORKER_MODELS) >= 2:
            _WORKER_MODELS.pop(next(iter(_WORKER_MODELS)))
        _WORKER_MODELS[folder] = loaded
    return loaded.tagger.tag(texts)


class QueueFull(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)


class NoModel(Exception):
    pass


@dataclass
class _Job:
    """A request, or one chunk of a large one."""

    texts: Sequence[str]
    future: asyncio.Future[list[Tag]]
    owner: Hashable  # whose request (an API key id): batches take turns between owners
    chars: int
    loaded: LoadedModel  # the version that tags it: the one active when the request arrived


def chunks(texts: Sequence[str], max_texts: int, max_chars: int) -> list[Sequence[str]]:
    """`texts` cut, in order, into pieces of at most `max_texts` texts and `max_chars` characters (a text longer
    than that is a piece of its own)."""
    pieces: list[Sequence[str]] = []
    start = chars = 0
    for end, text in enumerate(texts):
        if end > start and (end - start >= max_texts or chars + len(text) > max_chars):
            pieces.append(texts[start:end])
            start, chars = end, 0
        chars += len(text)
    if start < len(texts):
        pieces.append(texts[start:])
    return pieces


class MicroBatcher:
    def __init__(self, active: Callable[[], LoadedModel | None], max_batch: int = 64, max_wait: float = 0.0,
                 max_queue: int = 2048, on_batch: Callable[[int], None] | None = None,
                 worker_process: bool = False, max_queue_chars: int = 1_000_000, max_owner_share: float = 1.0,
                 max_batch_chars: int = 1_000_000, small_chars: int = 0) -> None:
        self.active = active
        # A request of at most `small_chars` characters (a comment or a few) may go in a batch of small requests only,
        # taken before the next mixed batch: it then waits for the batch being tagged and its own short one, not for
        # a mixed batch full of other keys' long texts as well. Mixed and small-only batches alternate, so a stream of
        # small requests cannot starve the large ones. 0: no such batches.
        self.small_chars = small_chars
        self._small_turn = True
        self.max_batch = max_batch
        self.max_batch_chars = max_batch_chars
        self.max_wait = max_wait
        self.max_queue = max_queue
        self.max_queue_chars = max_queue_chars
        self.max_owner_chars = max(1, int(max_owner_share * max_queue_chars))
        self.on_batch = on_batch
        self.queued = 0  # texts waiting or being tagged
        self.queued_chars = 0
        self._owner_chars: dict[Hashable, int] = {}
        # Waiting jobs by owner, the owner to serve next first.
        self._queues: OrderedDict[Hashable, deque[_Job]] = OrderedDict()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.worker_process = worker_process
        self._executor = self._new_executor()

    def _new_executor(self) -> Executor:
        if self.worker_process:
            return ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"), initializer=watch_parent,
                                       initargs=(os.getpid(),))
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="bazkhord-model")

    def prepare(self, loaded: LoadedModel) -> None:
        """Load and warm `loaded` where it will tag, before it serves (blocking; called from a thread)."""
        if self.worker_process:
            self._executor.submit(worker_tag, str(loaded.folder), ["سلام، ارسال دیر بود"]).result(timeout=600)

    async def start(self) -> None:
        self._wakeup = asyncio.Event()
        active = self.active()
        if active is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.prepare, active)
        self._task = asyncio.create_task(self._run(), name="bazkhord-batcher")

    def _submit(self, loaded: LoadedModel, texts: list[str]) -> asyncio.Future[list[Tag]]:
        loop = asyncio.get_running_loop()
        if self.worker_process:
            return loop.run_in_executor(self._executor, worker_tag, str(loaded.folder), texts)
        return loop.run_in_executor(self._executor, loaded.tagger.tag, texts)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for jobs in self._queues.values():
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(NoModel("the service is shutting down"))
        if isinstance(self._executor, ProcessPoolExecutor):
            # The worker holds a model and nothing to save; an orderly exit would spend seconds freeing torch's
            # objects one by one (2.3 s measured with the e5 model), so it is stopped rather than waited for.
            workers = list(getattr(self._executor, "_processes", {}).values())
            self._executor.shutdown(wait=False, cancel_futures=True)
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.join(timeout=10)
        else:
            self._executor.shutdown(wait=True)

    async def tag(self, texts: Sequence[str], owner: Hashable = None) -> tuple[LoadedModel, list[Tag]]:
        """Tags for `texts` and the model that made them. Raises QueueFull at once when the queue, or `owner`'s
        share of it, is full."""
        if self._wakeup is None:
            raise RuntimeError("MicroBatcher.start() was not awaited")
        chars = sum(len(t) for t in texts)
        if self.queued > 0:  # an idle service takes any one request, however large, or it could never run
            if self.queued + len(texts) > self.max_queue:
                raise QueueFull(f"{self.queued} texts are waiting to be tagged; the queue holds {self.max_queue}")
            if self.queued_chars + chars > self.max_queue_chars:
                raise QueueFull(f"{self.queued_chars} characters are waiting to be tagged; the queue holds "
                                f"{self.max_queue_chars}")
            held = self._owner_chars.get(owner, 0)
            if held and held + chars > self.max_owner_chars:
                raise QueueFull(f"this caller has {held} characters waiting; one caller may hold "
                                f"{self.max_owner_chars} so that others are served too")
        loaded = self.active()
        if loaded is None:
            raise NoModel("no model is loaded")
        loop = asyncio.get_running_loop()
        if owner not in self._queues:
            # A caller with nothing waiting goes to the front: one sending now and then is served next, however long
            # the backlog of those who keep the queue full.
            self._queues[owner] = deque()
            self._queues.move_to_end(owner, last=False)
        jobs = [_Job(piece, loop.create_future(), owner, sum(len(t) for t in piece), loaded)
                for piece in chunks(texts, self.max_batch, self.max_batch_chars)]
        self._queues[owner].extend(jobs)
        self._count(owner, len(texts), chars)
        self._wakeup.set()
        try:
            tagged = await asyncio.gather(*(job.future for job in jobs))
        except BaseException:
            for job in jobs:  # the rest is dropped untagged (a failed chunk, or the caller gone)
                if not job.future.done():
                    job.future.cancel()
            raise
        return loaded, [tag for piece in tagged for tag in piece]

    def _count(self, owner: Hashable, texts: int, chars: int) -> None:
        self.queued += texts
        self.queued_chars += chars
        held = self._owner_chars.get(owner, 0) + chars
        if held > 0:
            self._owner_chars[owner] = held
        else:
            self._owner_chars.pop(owner, None)

    def _take_batch(self) -> list[_Job]:
        """Up to `max_batch` texts and `max_batch_chars` characters, one request of each owner in turn; the owners
        served go to the back of the line. A request larger than a batch goes alone. Every other batch, where small
        requests wait, a batch of small requests only."""
        small_only = self._small_turn and self.small_chars > 0 and any(
            jobs and not jobs[0].future.done() and jobs[0].chars <= self.small_chars for jobs in self._queues.values())
        self._small_turn = not small_only
        batch: list[_Job] = []
        texts = chars = 0
        progress = True
        while progress and self._queues:
            progress = False
            for owner in list(self._queues):
                jobs = self._queues[owner]
                while jobs and jobs[0].future.done():  # its caller timed out or went away: drop it untagged
                    dropped = jobs.popleft()
                    self._count(owner, -len(dropped.texts), -dropped.chars)
                if not jobs:
                    del self._queues[owner]
                    continue
                job = jobs[0]
                if small_only and job.chars > self.small_chars:
                    continue
                if batch and (texts + len(job.texts) > self.max_batch or chars + job.chars > self.max_batch_chars):
                    continue
                batch.append(jobs.popleft())
                texts, chars = texts + len(job.texts), chars + job.chars
                self._queues.move_to_end(owner)
                if not jobs:
                    del self._queues[owner]
                progress = True
        return batch

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            if not self._queues:
                self._wakeup.clear()
                await self._wakeup.wait()
            if self.max_wait > 0 and self.waiting() < self.max_batch:
                await asyncio.sleep(self.max_wait)  # let concurrent requests join this batch
            batch = self._take_batch()
            if not batch:
                continue
            # Usually one group: a batch holds requests that arrived under different versions only around a swap.
            groups: dict[int, list[_Job]] = {}
            for job in batch:
                groups.setdefault(id(job.loaded), []).append(job)
            for jobs in groups.values():
                await self._tag_group(jobs)

    async def _tag_group(self, jobs: list[_Job]) -> None:
        """Tag the texts of `jobs` (all for one model version) in one call and hand each job its tags."""
        texts = [t for job in jobs for t in job.texts]
        try:
            tags = await self._submit(jobs[0].loaded, texts)
        except BrokenProcessPool:  # the worker died (killed, out of memory): start another, fail this batch
            log.error("the model worker process stopped unexpectedly; starting a new one")
            self._executor = self._new_executor()
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(NoModel("the model worker restarted; retry"))
        except Exception as error:  # handed to each waiting request, which answers it; the loop goes on
            if not isinstance(error, NoModel):
                log.exception("tagging a batch of %d texts failed", len(texts))
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(error)
        else:
            if self.on_batch is not None:
                self.on_batch(len(texts))
            start = 0
            for job in jobs:
                if not job.future.done():
                    job.future.set_result(tags[start : start + len(job.texts)])
                start += len(job.texts)
        finally:
            for job in jobs:
                self._count(job.owner, -len(job.texts), -job.chars)

    def waiting(self) -> int:
        """Texts waiting for a batch (not those being tagged)."""
        return sum(len(job.texts) for jobs in self._queues.values() for job in jobs)
