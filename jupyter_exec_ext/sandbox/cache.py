"""A result cache in front of the sandbox: Redis when configured and reachable, else an in-process LRU.

Students press Run on the same code many times and a whole class runs an instructor's demo at once;
a result that is certain to come out the same again is served without starting a container.
Every entry carries an HMAC made with a key only this process holds, so whoever else can write to
the Redis (a student's kernel on the same host) can at worst cause misses, never serve an output.

What is reused is decided in ``determinism.py``, the key is ``cache_key.py``'s, the entries live in
``result_store.py`` and the settings in ``config.py`` (``CacheConfig``); this module is the caching
sandbox that puts them together.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional

from .cache_key import KEY_FORMAT, cache_key
from .config import CACHE_SECRET_ENV, REDIS_URL_ENV, CacheConfig, SandboxConfig
from .determinism import (
    NONDETERMINISTIC_ATTRIBUTES,
    NONDETERMINISTIC_CALLS,
    NONDETERMINISTIC_MODULES,
    nondeterminism_reason,
    reusable,
)
from .docker_sandbox import DockerSandbox
from .image import runner_version
from .models import ExecutionRequest, ExecutionResult
from .result_store import REDIS_KEY_PREFIX, MemoryStore, ResultStore, redact_url

log = logging.getLogger(__name__)
security_log = logging.getLogger("jupyter_exec_ext.security")

#: The caching sandbox, and the names that lived here before the cache was split up (importable
#: from here as before).
__all__ = [
    "CACHE_SECRET_ENV",
    "KEY_FORMAT",
    "NONDETERMINISTIC_ATTRIBUTES",
    "NONDETERMINISTIC_CALLS",
    "NONDETERMINISTIC_MODULES",
    "REDIS_KEY_PREFIX",
    "REDIS_URL_ENV",
    "CacheConfig",
    "CachingSandbox",
    "MemoryStore",
    "ResultStore",
    "cache_key",
    "nondeterminism_reason",
    "redact_url",
    "reusable",
    "runner_version",
]

#: Every stored value is ``<key id><HMAC-SHA256><value>``, the first two in hex. The key id (a
#: one-way digest of the cache key) tells an entry signed with another key (an earlier start's, or
#: another deployment's: a plain miss) from one that claims this key and fails (a forgery).
_KEY_ID_HEX = 16
_MAC_HEX = 64


@dataclass
class _Flight:
    """One run in progress whose result identical concurrent requests wait for."""

    done: threading.Event
    result: Optional[ExecutionResult] = None


class CachingSandbox:
    """A ``DockerSandbox`` with a result cache in front: the same ``run``/``status``/``reap``/``close``.

    A request is served from the cache when ``use_cache`` is true, the cache and the sandbox are
    enabled, the code is plainly deterministic (``nondeterminism_reason``), and an entry exists for
    its key (``cache_key``). A served result has ``cached=True`` and the ``duration_ms`` of the run
    that produced it. Identical requests arriving while the first still runs wait for it instead of
    starting containers of their own (a class running the instructor's demo at once).

    Every call blocks (Docker, Redis): callers on an event loop run it in a thread pool.

    Args:
        sandbox: the sandbox that runs what the cache cannot answer.
        config: cache settings; read from the environment (``CacheConfig.from_env``) when omitted.
        clock: monotonic seconds (tests pass their own).

    Raises:
        ValueError: the Redis URL is not usable.
    """

    def __init__(
        self,
        sandbox: DockerSandbox,
        config: Optional[CacheConfig] = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.sandbox = sandbox
        self.cache_config = config or CacheConfig.from_env()
        self.store = ResultStore(self.cache_config, clock)
        self._clock = clock
        self._runner = runner_version()
        self._image_lock = threading.Lock()
        self._image_id: Optional[str] = None
        self._image_id_until = 0.0
        self._flights: dict[str, _Flight] = {}
        self._flights_lock = threading.Lock()
        self._counts_lock = threading.Lock()
        self.hits = self.misses = self.bypassed = self.rejected = self.foreign = 0
        self._secret = self.cache_config.secret or os.urandom(32)
        self._key_id = (
            hashlib.sha256(b"jupyter-exec-ext cache key id\n" + self._secret)
            .hexdigest()[:_KEY_ID_HEX]
            .encode("ascii")
        )
        if self.cache_config.redis_url and self.cache_config.secret is None:
            log.debug(
                "result cache entries are signed with a key made at start-up; set a cache "
                "secret to keep Redis entries across restarts"
            )

    @property
    def config(self) -> SandboxConfig:
        """The wrapped sandbox's settings, so this object stands in for the sandbox."""
        return self.sandbox.config

    def run(self, request: ExecutionRequest, use_cache: bool = True) -> ExecutionResult:
        """Answers from the cache when it safely can, else runs the request in the sandbox.

        Args:
            request: what to run.
            use_cache: false forces a fresh run and stores nothing (grading uses this).

        Returns:
            The result; ``cached`` says whether it came from the cache.

        Raises:
            DockerUnavailableError, ExecutorImageMissingError, SandboxUnavailableError: as
                ``DockerSandbox.run``, when a run is needed and the sandbox cannot do it. Cache
                failures never raise.
        """
        key = self._key_if_cacheable(request) if use_cache else None
        if key is None:
            self._count("bypassed")
            return self.sandbox.run(request)
        found = self._lookup(key)
        if found is not None:
            self._count("hits")
            return found
        with self._flights_lock:
            flight = self._flights.get(key)
            leading = flight is None
            if leading:
                flight = self._flights[key] = _Flight(threading.Event())
        assert flight is not None  # found, or made just now
        if not leading:
            flight.done.wait()
            if flight.result is not None:
                self._count("hits")
                return replace(flight.result, cached=True)
            # The first run's result was not reusable (a timeout, say): this one runs on its own.
            self._count("misses")
            return self._run_and_store(request, key)
        self._count("misses")
        try:
            result = self._run_and_store(request, key)
            if reusable(result):
                flight.result = result
            return result
        finally:
            with self._flights_lock:
                del self._flights[key]
            flight.done.set()

    def status(self) -> dict[str, Any]:
        """The wrapped sandbox's status plus a ``cache`` section (see ``cache_status``). Never raises."""
        info = self.sandbox.status()
        # status() just read the image id: keep it for the keys (or forget it if the image is gone).
        with self._image_lock:
            self._image_id = info.get("image_id")
            self._image_id_until = self._clock() + self.cache_config.image_id_ttl_s
        self.store.check()
        info["cache"] = self.cache_status()
        return info

    def cache_status(self) -> dict[str, Any]:
        """``enabled``, ``backend`` (``redis`` | ``memory``), ``hits`` (with requests that waited
        for an identical run in progress), ``misses``, ``bypassed``
        (not looked up: ``use_cache`` off or non-deterministic code), ``rejected`` (entries that
        claim this cache's key and fail its check: written by someone without the key, ignored),
        ``foreign`` (entries signed with another key, e.g. before a restart: misses), ``errors`` (failed
        Redis calls and unreadable entries), ``entries`` (memory backend only), ``max_entries``,
        ``ttl_s``, ``redis_url`` (password hidden), ``redis_error`` (while Redis is down)."""
        with self._counts_lock:
            counts = {
                "hits": self.hits,
                "misses": self.misses,
                "bypassed": self.bypassed,
                "rejected": self.rejected,
                "foreign": self.foreign,
            }
        return {"enabled": self.cache_config.enabled, **counts, **self.store.status()}

    def reap(self, *, everything: bool = False) -> list[str]:
        """``DockerSandbox.reap``: removes abandoned sandbox containers.

        Raises:
            DockerUnavailableError: the engine cannot be reached.
        """
        return self.sandbox.reap(everything=everything)

    def flush(self) -> None:
        """``DockerSandbox.flush``: waits until containers of finished runs are removed."""
        self.sandbox.flush()

    def close(self) -> None:
        """Closes the sandbox (drains its pool, finishes removals) and the Redis connections."""
        self.sandbox.close()
        self.store.close()

    # -- internals ---------------------------------------------------------------------------------

    def _key_if_cacheable(self, request: ExecutionRequest) -> Optional[str]:
        if not self.cache_config.enabled or not self.sandbox.config.enabled:
            # A disabled sandbox must answer "unavailable", not serve old results.
            return None
        if request.checks:
            # Grading runs tests in forked copies; their verdicts are never served from a cache.
            return None
        reason = nondeterminism_reason(request.code)
        if reason is not None:
            log.debug("not caching: the code %s", reason)
            return None
        image_id = self._current_image_id()
        if image_id is None:
            return None  # the sandbox's own run says why (engine down, image missing)
        limits, _ = request.limits.clamped(self.sandbox.config.max_limits)
        return cache_key(request, limits, image_id, self._runner, self.sandbox.config)

    def _current_image_id(self) -> Optional[str]:
        """The executor image id, read from the engine at most once per ``image_id_ttl_s``."""
        with self._image_lock:
            if self._image_id is not None and self._clock() < self._image_id_until:
                return self._image_id
            self._image_id = self.sandbox.status().get("image_id")
            self._image_id_until = self._clock() + self.cache_config.image_id_ttl_s
            return self._image_id

    def _mac(self, key: str, value: bytes) -> bytes:
        """HMAC-SHA256 of the key and the value (the key binds an entry to its request: an entry
        copied under another key fails too)."""
        return (
            hmac.new(self._secret, key.encode("ascii") + b"\n" + value, hashlib.sha256)
            .hexdigest()
            .encode("ascii")
        )

    def _seal(self, key: str, value: bytes) -> bytes:
        return self._key_id + self._mac(key, value) + value

    def _unseal(self, key: str, raw: bytes) -> Optional[bytes]:
        """The value of an entry this process's key signed, else None. An entry of another key
        counts as ``foreign``; one that claims this key and fails the check as ``rejected``
        (someone without the key wrote it), logged as a security event."""
        head = _KEY_ID_HEX + _MAC_HEX
        if raw[:_KEY_ID_HEX] != self._key_id:
            self._count("foreign")
            log.debug("result cache entry %s… was signed with another key: a miss", key[:12])
            return None
        mac, value = raw[_KEY_ID_HEX:head], raw[head:]
        if len(raw) > head and hmac.compare_digest(mac, self._mac(key, value)):
            return value
        self._count("rejected")
        security_log.warning(
            "security: ignored a result cache entry %s… that fails its "
            "authentication check (written without the cache's key)",
            key[:12],
        )
        return None

    def _lookup(self, key: str) -> Optional[ExecutionResult]:
        raw = self.store.get(key)
        if raw is None:
            return None
        raw = self._unseal(key, raw)
        if raw is None:
            return None
        try:
            result = ExecutionResult.from_dict(json.loads(raw))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            # Written by another version or damaged: a miss; the fresh result overwrites it.
            log.warning("ignoring an unreadable result cache entry %s…: %s", key[:12], e)
            self.store.count_error()
            return None
        if not reusable(result):
            return None
        result.cached = True
        return result

    def _run_and_store(self, request: ExecutionRequest, key: str) -> ExecutionResult:
        result = self.sandbox.run(request)
        if reusable(result):
            value = json.dumps(result.to_dict(), ensure_ascii=True).encode("ascii")
            if len(value) <= self.cache_config.max_entry_bytes:
                self.store.set(key, self._seal(key, value))
        return result

    def _count(self, counter: str) -> None:
        with self._counts_lock:
            setattr(self, counter, getattr(self, counter) + 1)
