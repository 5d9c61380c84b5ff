"""Micro-batching: texts of concurrent requests are gathered into one model call.

Requests wait in a queue bounded in texts (a full queue answers at once, it never grows memory). The model runs
in one worker *process* (by default) or one worker thread, never on the event loop; while it tags one batch, the
next gathers. A process of its own lets tagging and HTTP work use two cores (a thread shares the GIL with the
event loop); the worker loads each model version from its folder once and keeps the two newest, so a rollback
is instant.
A batch is cut at `max_batch` texts or after `max_wait` seconds, whichever comes first; a request is never
split, so its texts are tagged by one model version even during a swap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context

from model.base import Tag
from model.folder import LoadedModel

log = logging.getLogger("bazkhord.batcher")


_WORKER_MODELS: dict[str, LoadedModel] = {}  # in the worker process: folder -> model, the newest last


def worker_tag(folder: str, texts: list[str]) -> list[Tag]:
    """Runs in the worker process: tag `texts` with the model in `folder` (loaded, and checked, on first use)."""
    loaded = _WORKER_MODELS.get(folder)
    if loaded is None:
        from model.folder import load_model

        loaded = load_model(folder)
        while len(_WORKER_MODELS) >= 2:
            _WORKER_MODELS.pop(next(iter(_WORKER_MODELS)))
        _WORKER_MODELS[folder] = loaded
    return loaded.tagger.tag(texts)


class QueueFull(Exception):
    def __init__(self, queued: int, limit: int) -> None:
        super().__init__(f"{queued} texts are waiting to be tagged; the queue holds {limit}")


class NoModel(Exception):
    pass


@dataclass
class _Job:
    texts: Sequence[str]
    future: asyncio.Future[tuple[LoadedModel, list[Tag]]]


class MicroBatcher:
    def __init__(self, active: Callable[[], LoadedModel | None], max_batch: int = 64, max_wait: float = 0.0,
                 max_queue: int = 2048, on_batch: Callable[[int], None] | None = None,
                 worker_process: bool = False) -> None:
        self.active = active
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.max_queue = max_queue
        self.on_batch = on_batch
        self.queued = 0  # texts waiting or being tagged
        self._jobs: deque[_Job] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.worker_process = worker_process
        self._executor = self._new_executor()

    def _new_executor(self) -> Executor:
        if self.worker_process:
            return ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
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
        for job in self._jobs:
            if not job.future.done():
                job.future.set_exception(NoModel("the service is shutting down"))
        self._executor.shutdown(wait=True)

    async def tag(self, texts: Sequence[str]) -> tuple[LoadedModel, list[Tag]]:
        """Tags for `texts` and the model that made them. Raises QueueFull at once when the queue is full."""
        if self._wakeup is None:
            raise RuntimeError("MicroBatcher.start() was not awaited")
        if self.queued + len(texts) > self.max_queue and self.queued > 0:
            raise QueueFull(self.queued, self.max_queue)
        future: asyncio.Future[tuple[LoadedModel, list[Tag]]] = asyncio.get_running_loop().create_future()
        self._jobs.append(_Job(texts, future))
        self.queued += len(texts)
        self._wakeup.set()
        return await future

    def _take_batch(self) -> list[_Job]:
        batch: list[_Job] = []
        size = 0
        while self._jobs:
            job = self._jobs[0]
            if job.future.done():  # its caller timed out or went away: drop it untagged
                self._jobs.popleft()
                self.queued -= len(job.texts)
                continue
            if batch and size + len(job.texts) > self.max_batch:
                break
            batch.append(self._jobs.popleft())
            size += len(job.texts)
        return batch

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            if not self._jobs:
                self._wakeup.clear()
                await self._wakeup.wait()
            if self.max_wait > 0 and sum(len(j.texts) for j in self._jobs) < self.max_batch:
                await asyncio.sleep(self.max_wait)  # let concurrent requests join this batch
            batch = self._take_batch()
            if not batch:
                continue
            texts = [t for job in batch for t in job.texts]
            loaded = self.active()
            try:
                if loaded is None:
                    raise NoModel("no model is loaded")
                tags = await self._submit(loaded, texts)
            except BrokenProcessPool:  # the worker died (killed, out of memory): start another, fail this batch
                log.error("the model worker process stopped unexpectedly; starting a new one")
                self._executor = self._new_executor()
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(NoModel("the model worker restarted; retry"))
            except Exception as error:  # handed to each waiting request, which answers it; the loop goes on
                if not isinstance(error, NoModel):
                    log.exception("tagging a batch of %d texts failed", len(texts))
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(error)
            else:
                if self.on_batch is not None:
                    self.on_batch(len(texts))
                start = 0
                for job in batch:
                    if not job.future.done():
                        job.future.set_result((loaded, tags[start : start + len(job.texts)]))
                    start += len(job.texts)
            finally:
                self.queued -= len(texts)
