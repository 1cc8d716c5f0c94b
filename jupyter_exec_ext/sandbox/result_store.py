"""Where the result cache keeps its entries: Redis while it answers, an in-process LRU otherwise.

The stores hold opaque bytes under string keys; what goes in (a signed, serialized result) and
when is the caching sandbox's business (``cache.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Optional, cast
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .config import REDIS_URL_ENV, CacheConfig

log = logging.getLogger(__name__)

#: Every Redis key this cache writes starts with this, so a shared Redis stays readable.
REDIS_KEY_PREFIX = "jupyter-exec-ext:result:"


def redact_url(url: Optional[str]) -> Optional[str]:
    """The URL with its password replaced by ``***``, fit for a status page or a log line."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class MemoryStore:
    """A bounded LRU of serialized results with per-entry expiry. Thread-safe.

    Args:
        max_entries: most entries kept; the least recently used go first.
        max_bytes: most bytes of values kept.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self, max_entries: int, max_bytes: int, clock: Callable[[], float] = time.monotonic
    ):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> Optional[bytes]:
        """The value under ``key``, or None if absent or expired."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires, value = entry
            if self._clock() >= expires:
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return value

    def set(self, key: str, value: bytes, ttl_s: float) -> None:
        """Stores ``value`` for ``ttl_s`` seconds, evicting the least recently used beyond the bounds."""
        if len(value) > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:
                self._drop(key)
            self._entries[key] = (self._clock() + ttl_s, value)
            self._bytes += len(value)
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        _, value = self._entries.pop(key)
        self._bytes -= len(value)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


class ResultStore:
    """Stores serialized results in Redis while it answers, in a ``MemoryStore`` otherwise.

    No Redis URL: memory only. A Redis error never propagates: the call falls back to memory, the
    outage is logged once (a warning) and Redis is tried again after a backoff (doubling up to
    ``retry_max_s``), by one caller at a time, so a dead Redis is not hammered per request. When a
    try succeeds, Redis is used again (logged once, at info). Every call blocks for at most
    ``redis_timeout_s`` on Redis.

    Args:
        config: TTL, bounds, Redis URL and timeouts.
        clock: monotonic seconds, for the memory store's expiry and the retry schedule.

    Raises:
        ValueError: the Redis URL is not one redis-py understands (a configuration error, raised
            at start-up rather than hidden behind the fallback).
    """

    def __init__(self, config: CacheConfig, clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.memory = MemoryStore(config.max_entries, config.max_bytes, clock)
        self._clock = clock
        self._redis: Optional[redis.Redis] = None
        if config.redis_url:
            try:
                self._redis = redis.Redis.from_url(
                    config.redis_url,
                    socket_timeout=config.redis_timeout_s,
                    socket_connect_timeout=config.redis_timeout_s,
                    # No retries inside redis-py: recent versions retry three times with backoff by
                    # default, which would stall a run; the backoff lives here, across requests.
                    retry=Retry(NoBackoff(), 0),
                )
            except ValueError as e:
                raise ValueError(
                    f"{REDIS_URL_ENV} {redact_url(config.redis_url)!r} is not usable: {e}"
                ) from None
        self._lock = threading.Lock()
        self._down_since: Optional[float] = None
        self._retry_at = 0.0
        self._backoff = config.retry_initial_s
        self._last_error: Optional[str] = None
        self.errors = 0

    @property
    def backend(self) -> str:
        """``redis`` while Redis is configured and answering, else ``memory``."""
        return "redis" if self._redis is not None and self._down_since is None else "memory"

    def get(self, key: str) -> Optional[bytes]:
        """The value under ``key`` or None (absent, expired, or Redis failing and memory has none)."""
        if self._redis_turn():
            assert self._redis is not None  # a turn is only given with Redis configured
            try:
                value = cast(Optional[bytes], self._redis.get(REDIS_KEY_PREFIX + key))
            except Exception as e:  # whatever Redis does, the student's run goes on
                self._failed(e)
            else:
                self._answered()
                return value
        return self.memory.get(key)

    def set(self, key: str, value: bytes) -> None:
        """Stores ``value`` for the configured TTL, in Redis if it answers, else in memory."""
        if self._redis_turn():
            assert self._redis is not None  # a turn is only given with Redis configured
            try:
                self._redis.set(
                    REDIS_KEY_PREFIX + key, value, px=max(1, int(self.config.ttl_s * 1000))
                )
            except Exception as e:  # whatever Redis does, the student's run goes on
                self._failed(e)
            else:
                self._answered()
                return
        self.memory.set(key, value, self.config.ttl_s)

    def check(self) -> None:
        """Pings Redis when it is in use or a retry is due, so a status page sees an outage or a
        recovery even when no run happens."""
        if self._redis_turn():
            assert self._redis is not None  # a turn is only given with Redis configured
            try:
                self._redis.ping()
            except Exception as e:  # reported through status(), never raised
                self._failed(e)
            else:
                self._answered()

    def status(self) -> dict[str, Any]:
        """Backend in use, the Redis URL (password hidden), the last Redis error while it is down,
        the error count, and the memory store's size."""
        with self._lock:
            down = self._down_since is not None
            return {
                "backend": self.backend,
                "redis_url": redact_url(self.config.redis_url),
                "redis_error": self._last_error if down else None,
                "errors": self.errors,
                "ttl_s": self.config.ttl_s,
                # Counting our keys in Redis takes a SCAN: only the memory store's size is cheap.
                "entries": len(self.memory) if self.backend == "memory" else None,
                "max_entries": self.config.max_entries,
            }

    def count_error(self) -> None:
        """Counts an error found outside the store, such as an entry that cannot be read back."""
        with self._lock:
            self.errors += 1

    def close(self) -> None:
        """Closes the Redis connections (the memory store needs nothing)."""
        if self._redis is not None:
            self._redis.close()

    # -- outage bookkeeping ------------------------------------------------------------------------

    def _redis_turn(self) -> bool:
        """Whether this call should use Redis: always while it answers; during an outage, only
        the first caller after the retry time (the others keep to memory meanwhile)."""
        if self._redis is None:
            return False
        with self._lock:
            if self._down_since is None:
                return True
            now = self._clock()
            if now < self._retry_at:
                return False
            # Claim this try, and schedule the next one further out should this one fail too.
            # Doubling here, per try, rather than per failure: requests that were already talking
            # to Redis when it died all fail at once and must not inflate the backoff.
            self._retry_at = now + self._backoff
            self._backoff = min(self._backoff * 2, self.config.retry_max_s)
            return True

    def _answered(self) -> None:
        if self._down_since is None:  # the common case, without taking the lock
            return
        with self._lock:
            if self._down_since is None:
                return
            outage = self._clock() - self._down_since
            self._down_since, self._last_error = None, None
            self._backoff = self.config.retry_initial_s
        log.info(
            "Redis at %s answers again after %.0f s; the result cache uses it again",
            redact_url(self.config.redis_url),
            outage,
        )

    def _failed(self, error: Exception) -> None:
        with self._lock:
            self.errors += 1
            self._last_error = f"{type(error).__name__}: {error}"[:300]
            first = self._down_since is None
            if first:
                self._down_since = self._clock()
                self._backoff = self.config.retry_initial_s
                self._retry_at = self._down_since + self._backoff
        if first:
            log.warning(
                "Redis at %s failed (%s); the result cache is in memory until Redis answers "
                "again (retried with a backoff of up to %g s)",
                redact_url(self.config.redis_url),
                self._last_error,
                self.config.retry_max_s,
            )
        else:
            log.debug("Redis still unavailable: %s", self._last_error)
