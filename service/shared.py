"""State several service processes share through Redis (`BAZKHORD_REDIS_URL`): rate limits and key revocations.

Without Redis every process keeps its own (in-process) buckets and key cache, as one process needs. With it:
  - each key's token bucket lives in Redis and is updated by one Lua script (atomic, on Redis's clock), so N
    processes behind a balancer enforce one limit, not N;
  - a revocation bumps a counter every process watches (`KeyRevocations`), which drops its key cache at once:
    a revoked key stops working on every process within `poll_seconds`, whoever revoked it.
If Redis stops answering, a process falls back to its own buckets (logged once): requests go on being limited,
per process, rather than all refused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable
from typing import Any

from bazkhord.service.auth import RateLimiter

log = logging.getLogger("bazkhord.shared")

PREFIX = "bazkhord"
# KEYS[1] the bucket; ARGV: rate per second, burst. Tokens and the last refill time (Redis's clock) in a hash.
TOKEN_BUCKET = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'last')
local tokens = tonumber(state[1]) or burst
local last = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - last) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'last', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
return tostring(wait)
"""


def connect(url: str) -> Any:
    """A Redis client for `url`, checked now, so a wrong URL fails the start with one clear line."""
    from bazkhord.data.errors import ConfigError

    try:
        import redis
    except ImportError:
        raise ConfigError("BAZKHORD_REDIS_URL is set but the Redis client is not installed: "
                          "pip install 'bazkhord[redis]'") from None
    client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        raise ConfigError(f"BAZKHORD_REDIS_URL={url}: Redis does not answer ({error})") from None
    return client


class RedisRateLimiter(RateLimiter):
    """`RateLimiter` with its buckets in Redis, shared by every process that uses the same Redis and `name`."""

    def __init__(self, client: Any, name: str, per_minute: int, burst: int, prefix: str = PREFIX) -> None:
        super().__init__(per_minute, burst)
        self.client = client
        self.name = name
        self.prefix = prefix
        self._script = client.register_script(TOKEN_BUCKET)
        self._failing_since: float | None = None

    def acquire(self, key: Hashable, per_minute: int | None = None) -> float:
        rate, burst = self.shape(per_minute)
        try:
            wait = float(self._script(keys=[f"{self.prefix}:rate:{self.name}:{key}"], args=[rate, burst]))
        except Exception as error:  # redis-py raises several types; every one means "no shared answer now"
            if self._failing_since is None:
                log.error("Redis rate limit unavailable (%s): limiting in this process until it answers", error)
                self._failing_since = time.monotonic()
            return super().acquire(key, per_minute)
        if self._failing_since is not None:
            log.info("Redis rate limit answers again")
            self._failing_since = None
        return wait


class KeyRevocations:
    """A counter in Redis that every revocation bumps; a process that sees it move drops its key cache."""

    def __init__(self, client: Any, prefix: str = PREFIX) -> None:
        self.client = client
        self.key = f"{prefix}:keys:revocations"
        self.seen: int | None = None

    def bump(self) -> None:
        self.client.incr(self.key)

    def changed(self) -> bool:
        """Whether a revocation happened since the last call (the first call only reads)."""
        value = int(self.client.get(self.key) or 0)
        moved = self.seen is not None and value != self.seen
        self.seen = value
        return moved
