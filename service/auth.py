"""API keys (kept only as SHA-256, with scopes) and per-key rate limits (token buckets).

A key reads `bzk_<prefix>_<secret>`: the prefix finds the row, the hash of the whole key proves it. SHA-256
without salt or stretching is right here, unlike for passwords: the secret is 192 random bits, so there is
nothing to guess, and a per-request check must stay cheap.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bazkhord.data.errors import InputError
from bazkhord.service.db import ApiKey, utcnow

SCOPES = ("tag", "ingest", "report", "curate", "admin")  # curate: change the workspace's themes (codebook)
NOT_CACHED = object()
KEY_PREFIX = "bzk_"
MAX_CACHED_KEYS = 10_000  # key lookups remembered (a few seconds each); past it, the expired are forgotten


@dataclass(frozen=True)
class Caller:
    """A verified key, as the routes see it."""

    id: int
    name: str
    scopes: frozenset[str]
    rate_per_minute: int | None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


@dataclass(frozen=True)
class NewKey:
    caller: Caller
    key: str  # shown once, never stored


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def parse_scopes(text: str) -> frozenset[str]:
    scopes = frozenset(s.strip() for s in text.split(",") if s.strip())
    unknown = sorted(scopes - set(SCOPES))
    if unknown or not scopes:
        raise InputError(f"scopes {text!r}: unknown {unknown}; choose from {', '.join(SCOPES)}" if unknown
                         else f"give at least one scope: {', '.join(SCOPES)}")
    return scopes


def _caller(row: ApiKey) -> Caller:
    return Caller(row.id, row.name, parse_scopes(row.scopes), row.rate_per_minute)


class KeyStore:
    """Creates, lists, revokes and verifies keys. Verified keys are cached for `cache_seconds`, so a revocation
    made by another process (the CLI) takes effect within that time; one made through this store at once."""

    def __init__(self, engine: Engine, cache_seconds: float = 5.0) -> None:
        self.engine = engine
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, tuple[Caller, str] | None]] = {}
        self._lock = threading.Lock()

    def create(self, name: str, scopes: str, rate_per_minute: int | None = None) -> NewKey:
        parsed = parse_scopes(scopes)
        if not name.strip() or len(name) > 100:
            raise InputError("a key needs a name of 1 to 100 characters (who or what uses it)")
        if rate_per_minute is not None and rate_per_minute < 1:
            raise InputError(f"rate_per_minute must be at least 1, not {rate_per_minute}")
        prefix = secrets.token_hex(4)
        key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(24)}"
        row = ApiKey(name=name.strip(), prefix=prefix, key_sha256=hash_key(key), scopes=",".join(sorted(parsed)),
                     rate_per_minute=rate_per_minute, created_at=utcnow())
        try:
            with Session(self.engine) as session, session.begin():
                session.add(row)
                session.flush()
                caller = _caller(row)
        except IntegrityError:
            raise InputError(f"a key named {name!r} exists already; revoke it or choose another name") from None
        return NewKey(caller, key)

    def list(self) -> list[dict[str, object]]:
        with Session(self.engine) as session:
            rows = session.scalars(select(ApiKey).order_by(ApiKey.id)).all()
            return [{"id": r.id, "name": r.name, "prefix": r.prefix, "scopes": r.scopes,
                     "rate_per_minute": r.rate_per_minute, "created_at": r.created_at.isoformat(),
                     "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None} for r in rows]

    def clear_cache(self) -> None:
        """Forget every verified key (another process revoked one): the next request of each key reads the store."""
        with self._lock:
            self._cache.clear()

    def revoke(self, name_or_prefix: str) -> str:
        with Session(self.engine) as session, session.begin():
            row = session.scalars(select(ApiKey).where(
                (ApiKey.name == name_or_prefix) | (ApiKey.prefix == name_or_prefix))).first()
            if row is None:
                raise InputError(f"no key named {name_or_prefix!r} (nor with that prefix): see `bazkhord keys list`")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            prefix, name = row.prefix, row.name
        with self._lock:
            self._cache.pop(prefix, None)
        return name

    def verify(self, key: str) -> Caller | None:
        """The caller behind `key`, or None for an unknown, malformed or revoked key. May read the database."""
        found = self.verify_cached(key)
        if found is not NOT_CACHED:
            return found  # type: ignore[return-value]
        prefix = key.split("_")[1]
        loaded = (time.monotonic(), self._load(prefix))
        with self._lock:
            if len(self._cache) >= MAX_CACHED_KEYS:  # made-up prefixes must not grow memory without end
                now = time.monotonic()
                self._cache = {p: c for p, c in self._cache.items() if now - c[0] <= self.cache_seconds}
                if len(self._cache) >= MAX_CACHED_KEYS:
                    self._cache.clear()
            self._cache[prefix] = loaded
        return self._check(loaded[1], key)

    def verify_cached(self, key: str) -> Caller | object | None:
        """As `verify`, from the cache only: NOT_CACHED when the database must be read (so the event loop can
        answer most requests without a thread hop, and hand the rest to a thread)."""
        parts = key.split("_")
        if not key.startswith(KEY_PREFIX) or len(parts) < 3 or len(key) > 200:
            return None
        with self._lock:
            cached = self._cache.get(parts[1])
        if cached is None or time.monotonic() - cached[0] > self.cache_seconds:
            return NOT_CACHED
        return self._check(cached[1], key)

    @staticmethod
    def _check(found: tuple[Caller, str] | None, key: str) -> Caller | None:
        if found is None or not hmac.compare_digest(found[1], hash_key(key)):
            return None
        return found[0]

    def _load(self, prefix: str) -> tuple[Caller, str] | None:
        with Session(self.engine) as session:
            row = session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).first()
            if row is None or row.revoked_at is not None:
                return None
            return _caller(row), row.key_sha256


class RateLimiter:
    """One token bucket per key id (or client address): `per_minute` requests a minute on average, bursts of up to
    `burst`."""

    def __init__(self, per_minute: int, burst: int, max_buckets: int = 100_000) -> None:
        self.per_minute = per_minute
        self.burst = burst
        self.max_buckets = max_buckets
        self._buckets: dict[Hashable, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def shape(self, per_minute: int | None) -> tuple[float, float]:
        """(tokens a second, bucket size) for a key with its own `per_minute`, or the service's."""
        rate = (per_minute or self.per_minute) / 60.0
        return rate, max(1.0, float(self.burst if per_minute is None else min(self.burst, per_minute)))

    def acquire(self, key: Hashable, per_minute: int | None = None) -> float:
        """0 when the request may go ahead, else the seconds to wait before trying again."""
        rate, burst = self.shape(per_minute)
        now = time.monotonic()
        with self._lock:
            if len(self._buckets) >= self.max_buckets:
                self._forget_full(now)
            tokens, last = self._buckets.get(key, (burst, now))
            tokens = min(burst, tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / rate

    def _forget_full(self, now: float) -> None:
        """Buckets untouched long enough to have refilled are as good as new: many client addresses must not grow
        memory without end."""
        refill = 60.0 * self.burst / self.per_minute
        for key in [k for k, (_, last) in self._buckets.items() if now - last >= refill]:
            del self._buckets[key]


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
