"""The micro-batcher bounds work by characters and takes turns between callers: a caller sending many large
batches is shed (QueueFull, 503) before it can starve one who sends single comments."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

from bazkhord.model.base import Tag
from bazkhord.model.folder import LoadedModel
from bazkhord.service.batcher import MicroBatcher, QueueFull
from tests.service.helpers import api


class CharTimedTagger:
    """Takes 1 ms per 100 characters, and remembers each batch's owners' texts."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def tag(self, texts: Sequence[str]) -> list[Tag]:
        self.batches.append(list(texts))
        time.sleep(sum(len(t) for t in texts) / 100_000)
        return [Tag("neutral", {"neutral": 1.0}, ()) for _ in texts]


def batcher(tagger: CharTimedTagger, **limits: Any) -> MicroBatcher:
    loaded = LoadedModel(tagger, Path("."), {"name": "fake", "version": "1", "kind": "fake"})  # type: ignore[arg-type]
    return MicroBatcher(lambda: loaded, max_batch=64, **limits)


def test_a_single_comment_is_not_starved_by_large_batches() -> None:
    tagger = CharTimedTagger()

    async def scenario() -> int:
        b = batcher(tagger, max_queue_chars=10_000_000, max_batch_chars=64 * 5_000)
        await b.start()
        heavy = [asyncio.create_task(b.tag([f"{k}-" + "x" * 5_000] * 64, owner=k % 4)) for k in range(16)]
        await asyncio.sleep(0.01)  # the heavy requests are queued first
        await b.tag(["تک"], owner="light")
        served = next(i for i, batch in enumerate(tagger.batches) if "تک" in batch)
        await asyncio.gather(*heavy)
        await b.stop()
        return served

    served = asyncio.run(scenario())
    # In arrival order it would wait behind 16 batches; taking turns, behind the one running and one more at most.
    assert served <= 2, [len(batch) for batch in tagger.batches]


def test_batches_are_cut_by_characters_and_a_text_longer_than_a_batch_goes_alone() -> None:
    tagger = CharTimedTagger()

    async def scenario() -> None:
        b = batcher(tagger, max_batch_chars=10_000)
        await b.start()
        await asyncio.gather(*(b.tag(["y" * 4_000] * 2, owner=i) for i in range(3)), b.tag(["z" * 30_000], owner=9))
        await b.stop()

    asyncio.run(scenario())
    for batch in tagger.batches:
        assert sum(len(t) for t in batch) <= 10_000 or len(batch) == 1
    assert ["z" * 30_000] in tagger.batches  # larger than a batch: it went alone


def test_one_caller_may_hold_only_its_share_of_the_queue() -> None:
    tagger = CharTimedTagger()

    async def scenario() -> tuple[int, bool]:
        b = batcher(tagger, max_queue_chars=100_000, max_owner_share=0.5, max_batch_chars=5_000)
        await b.start()
        accepted: list[asyncio.Task[Any]] = []
        shed = 0
        for _ in range(20):
            task = asyncio.create_task(b.tag(["h" * 5_000], owner="heavy"))
            await asyncio.sleep(0)
            if task.done() and isinstance(task.exception(), QueueFull):
                shed += 1
            else:
                accepted.append(task)
        light = await b.tag(["تک"], owner="light")
        await asyncio.gather(*accepted)
        await b.stop()
        return shed, bool(light)

    shed, light_served = asyncio.run(scenario())
    assert shed >= 8 and light_served  # about half the queue (10 of 20) for the heavy caller, the rest refused


def test_a_heavy_key_is_shed_with_503_and_retry_after(sample_model: LoadedModel, tmp_path: Path) -> None:
    from tests.service.test_bad_input import concurrently, slow

    # Each request holds 11,700 characters: two fit in the key's share (24,000 of 60,000), the rest are shed.
    with api(tmp_path, slow(sample_model, 0.3), "tag", max_queue_chars=60_000, max_key_queue_share=0.4,
             max_batch_chars=5_000) as client:
        client.post("/v1/tag", json={"text": "گرم"})  # the warm-up delay
        responses = concurrently(client, 8, {"items": [{"text": "پیک دیر اومد " * 300}] * 3})
        refused = [r for r in responses if r.status_code == 503]
        assert refused and all(r.json()["error"]["code"] == "overloaded" and r.headers["retry-after"] for r in refused)
        assert all("one caller may hold" in r.json()["error"]["message"] for r in refused)


class EchoTagger(CharTimedTagger):
    """Tags each text with its own text as the label, so a caller can check it got its own texts' tags in order."""

    def __init__(self, name: str = "") -> None:
        super().__init__()
        self.name = name

    def tag(self, texts: Sequence[str]) -> list[Tag]:
        self.batches.append(list(texts))
        time.sleep(sum(len(t) for t in texts) / 1_000_000)  # 1 ms per 1,000 characters
        return [Tag(f"{self.name}{text[:12]}", {}, ()) for text in texts]


def test_a_large_request_is_cut_into_chunks_that_take_turns() -> None:
    """Three keys send maximal batches (64 comments of 5,000 characters); a single comment waits behind at most one
    chunk of them, not behind a whole 320,000-character request, and every caller gets its own tags in order."""
    tagger = EchoTagger()

    async def scenario() -> tuple[int, list[list[Tag]]]:
        b = batcher(tagger, max_queue_chars=10_000_000, max_batch_chars=32_000)
        await b.start()
        heavy = [asyncio.create_task(b.tag([f"{k}-{i:02d}-" + "x" * 4_994 for i in range(64)], owner=k))
                 for k in range(3)]
        await asyncio.sleep(0.005)  # the heavy requests are queued first, and one chunk is being tagged
        await b.tag(["تک"], owner="light")
        served = next(i for i, batch in enumerate(tagger.batches) if "تک" in batch)
        answers = [tags for _, tags in await asyncio.gather(*heavy)]
        await b.stop()
        return served, answers

    served, answers = asyncio.run(scenario())
    assert max(sum(len(t) for t in batch) for batch in tagger.batches) <= 32_000
    assert served <= 1, [len(batch) for batch in tagger.batches]  # behind the chunk running at most
    for k, tags in enumerate(answers):
        assert [tag.sentiment for tag in tags] == [f"{k}-{i:02d}-" + "x" * 7 for i in range(64)]


def test_every_chunk_of_a_request_is_tagged_by_the_version_it_arrived_under() -> None:
    old, new = EchoTagger("old:"), EchoTagger("new:")
    versions = {"active": LoadedModel(old, Path("."), {"name": "m", "version": "1", "kind": "fake"})}  # type: ignore[arg-type]

    async def scenario() -> tuple[list[Tag], list[Tag]]:
        b = MicroBatcher(lambda: versions["active"], max_batch=4, max_batch_chars=100_000)
        await b.start()
        early = asyncio.create_task(b.tag([f"e{i}" for i in range(40)], owner="a"))  # ten chunks
        await asyncio.sleep(0)
        versions["active"] = LoadedModel(new, Path("."), {"name": "m", "version": "2", "kind": "fake"})  # type: ignore[arg-type]
        late = await b.tag(["l0"], owner="b")
        loaded, tags = await early
        await b.stop()
        assert loaded.version == "1"
        return tags, late[1]

    early_tags, late_tags = asyncio.run(scenario())
    assert {tag.sentiment.split(":")[0] for tag in early_tags} == {"old"}
    assert [tag.sentiment for tag in late_tags] == ["new:l0"]


def test_a_single_comment_gets_a_batch_of_its_own_kind_and_large_ones_are_not_starved() -> None:
    tagger = CharTimedTagger()

    async def scenario() -> tuple[list[str], int]:
        b = batcher(tagger, max_queue_chars=10_000_000, max_batch_chars=32_000, small_chars=2_000)
        await b.start()
        heavy = [asyncio.create_task(b.tag([f"{k}-" + "x" * 5_000] * 16, owner=k % 3)) for k in range(3)]
        await asyncio.sleep(0.01)  # a heavy chunk is being tagged
        singles = [asyncio.create_task(b.tag([f"تک {i}"], owner=f"light-{i}")) for i in range(3)]
        await asyncio.gather(*singles)
        # A stream of single comments: mixed batches still go every other time.
        stream = [asyncio.create_task(b.tag([f"جریان {i}"], owner=f"s-{i % 5}")) for i in range(40)]
        await asyncio.gather(*heavy, *stream)
        await b.stop()
        first = next(i for i, batch in enumerate(tagger.batches) if any(t.startswith("تک") for t in batch))
        return [("small" if all(len(t) < 100 for t in batch) else "mixed") for batch in tagger.batches], first

    kinds, first = asyncio.run(scenario())
    assert first == 1 and kinds[1] == "small"  # straight after the batch being tagged, with no long text beside it
    assert all(not (a == b == "small") for a, b in pairwise(kinds)), kinds
