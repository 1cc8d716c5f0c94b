"""A result cache in front of the sandbox: Redis when configured and reachable, else an in-process LRU.

Students press Run on the same code many times and a whole class runs an instructor's demo at once;
a result that is certain to come out the same again is served without starting a container.
Every entry carries an HMAC made with a key only this process holds, so whoever else can write to
the Redis (a student's kernel on the same host) can at worst cause misses, never serve an output.
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Callable, Mapping, Optional, cast
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .. import __version__
from .config import ENV_PREFIX, SandboxConfig, parse_env_bool
from .docker_sandbox import DockerSandbox
from .errors import ImageBuildError
from .image import executor_image_dir
from .limits import Limits, parse_positive_float, parse_positive_int
from .models import ExecutionRequest, ExecutionResult, Status
from .policy import parse as parse_python

log = logging.getLogger(__name__)
security_log = logging.getLogger("jupyter_exec_ext.security")

#: Part of every key: bump it when the key material or the stored value changes shape.
KEY_FORMAT = 1
#: Every Redis key this cache writes starts with this, so a shared Redis stays readable.
REDIS_KEY_PREFIX = "jupyter-exec-ext:result:"
#: Environment variable with the Redis URL (the seed's ``DOCKER_EXECUTOR_`` family).
REDIS_URL_ENV = ENV_PREFIX + "REDIS_URL"
#: Environment variable with the key that authenticates cache entries.
CACHE_SECRET_ENV = ENV_PREFIX + "CACHE_SECRET"
#: Every stored value is ``<key id><HMAC-SHA256><value>``, the first two in hex. The key id (a
#: one-way digest of the cache key) tells an entry signed with another key (an earlier start's, or
#: another deployment's: a plain miss) from one that claims this key and fails (a forgery).
_KEY_ID_HEX = 16
_MAC_HEX = 64

#: Modules whose use makes output change from run to run: randomness, clocks, process and host
#: state, concurrency (thread scheduling), dynamic imports. Conservative on purpose: a false alarm
#: only costs one container run, a miss shows a student a stale value.
NONDETERMINISTIC_MODULES = frozenset({
    "random", "secrets", "uuid", "time", "datetime", "os", "posix", "tempfile", "timeit", "resource",
    "gc", "tracemalloc", "cProfile", "profile", "threading", "_thread", "multiprocessing",
    "concurrent", "asyncio", "subprocess", "signal", "socket", "select", "selectors", "importlib",
    "ctypes", "mmap",
})
#: Builtins whose value differs between runs (addresses, salted string hashes) or that run code the
#: check cannot see.
NONDETERMINISTIC_CALLS = frozenset({"id", "hash", "__import__", "exec", "eval", "compile"})
#: Attribute names that read randomness or clocks through a module this check does not list
#: (``numpy.random``, ``pandas.Timestamp.now``), however the module was imported.
NONDETERMINISTIC_ATTRIBUTES = frozenset({
    "random", "urandom", "now", "today", "utcnow", "time", "time_ns", "perf_counter",
    "monotonic", "process_time", "getpid", "uuid1", "uuid4",
})
#: Paths whose contents change from run to run (``/dev/urandom``, ``/proc/uptime`` …).
_VOLATILE_PATHS = ("/dev/", "/proc/", "/sys/")


def nondeterminism_reason(code: str) -> Optional[str]:
    """Says why ``code`` may print something different on the next run, or None if it plainly won't.

    A static, conservative check (like the code policy, it can be got around; then the only one who
    sees a stale value is the author of the trick). Set iteration order and default object reprs
    (which show an address) are not flagged: any one of their outputs is a correct answer.

    Args:
        code: the Python source.

    Returns:
        A short reason such as ``"imports 'random'"``, or None when the result can be reused.
    """
    try:
        tree = parse_python(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        # The container's Python may accept what this one does not; without an AST, do not guess.
        return "the code could not be analysed"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".", 1)[0] in NONDETERMINISTIC_MODULES:
                    return f"imports '{alias.name}'"
        elif isinstance(node, ast.ImportFrom):
            if node.module and node.module.split(".", 1)[0] in NONDETERMINISTIC_MODULES:
                return f"imports from '{node.module}'"
        elif isinstance(node, ast.Name) and node.id in NONDETERMINISTIC_CALLS:
            return f"uses '{node.id}'"
        elif isinstance(node, ast.Attribute) and node.attr in NONDETERMINISTIC_ATTRIBUTES:
            return f"uses '.{node.attr}'"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and (
            node.value.startswith(_VOLATILE_PATHS)
        ):
            return f"reads '{node.value[:40]}'"
    return None


def reusable(result: ExecutionResult) -> bool:
    """Whether a result may be served again for the same key.

    Reused: ``ok`` (without a note), ``syntax_error``, and ``runtime_error`` from an ordinary exit
    (an uncaught exception or ``sys.exit(n)``, exit code > 0). Never reused: ``timeout``,
    ``memory_limit``, ``internal_error`` (they depend on load and the host), ``output_limit``
    (where the cut falls depends on when the kill lands, and the entry would be megabytes),
    ``policy_violation`` (decided on the host in microseconds, nothing to save), a run killed by a
    signal, and truncated output.
    """
    if result.truncated:
        return False
    if result.status is Status.OK:
        # A note on an ok run means something load-dependent happened (a child hit the memory limit).
        return not result.message
    if result.status is Status.SYNTAX_ERROR:
        return True
    if result.status is Status.RUNTIME_ERROR:
        return isinstance(result.exit_code, int) and result.exit_code > 0
    return False


@lru_cache(maxsize=1)
def runner_version() -> str:
    """Hash of the runner shipped with this package; a changed runner makes every old key unused."""
    try:
        return hashlib.sha256((executor_image_dir() / "runner.py").read_bytes()).hexdigest()
    except (ImageBuildError, OSError) as e:
        # The image id in the key still separates runners; this only loses a second safeguard.
        log.warning("runner source not found (%s); the cache key relies on the image id alone", e)
        return "unknown"


def cache_key(request: ExecutionRequest, limits: Limits, image_id: str, runner: str,
              config: SandboxConfig) -> str:
    """The sha256 of everything that can change a run's result.

    Args:
        request: the code, stdin and policy.
        limits: the limits the run will actually have (after clamping), so requests that clamp to
            the same limits share an entry.
        image_id: the executor image's id (not its tag: a rebuilt image gets a new id).
        runner: the runner version (``runner_version()``).
        config: the sandbox settings that shape a run: output cap, ``/tmp`` size, network,
            OCI runtime, user.

    Returns:
        64 hex digits.
    """
    material = {
        "format": KEY_FORMAT,
        # Host-side interpretation of a run (messages, statuses) changes with the package.
        "package": __version__,
        "image_id": image_id,
        "runner": runner,
        "code": request.code,
        "stdin": request.stdin,
        "limits": limits.to_dict(),
        "policy": request.policy.to_dict() if request.policy is not None else None,
        "files": [[f.name, hashlib.sha256(f.data).hexdigest()] for f in request.files],
        "display": [config.display_limit, config.display_bytes],
        "output_limit_bytes": config.output_limit_bytes,
        "tmpfs_mb": config.tmpfs_mb,
        "network": config.network,
        "runtime": config.runtime,
        "user": config.user,
    }
    # ensure_ascii: code may hold lone surrogates, which UTF-8 cannot encode.
    blob = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode("ascii")).hexdigest()


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


@dataclass(frozen=True)
class CacheConfig:
    """How results are cached. Admins set it through traits or environment variables.

    Args:
        enabled: when false, every run goes to the sandbox.
        redis_url: ``redis://[:password@]host:port/db`` (also ``rediss://``, ``unix://``); None
            keeps the cache in this process only.
        ttl_s: how long an entry lives, in seconds.
        max_entries: bound of the in-process LRU (embedded default and Redis fallback).
        max_bytes: bound of the in-process LRU's total size.
        max_entry_bytes: a result larger than this (serialized) is not cached.
        redis_timeout_s: connect and read timeout of every Redis call, so a dead or frozen Redis
            delays a run by at most this much once per retry interval.
        retry_initial_s: after a Redis failure, wait this long before trying Redis again.
        retry_max_s: the wait doubles per failed try up to this.
        image_id_ttl_s: how long the executor image id is trusted before it is read again
            (a rebuilt image is noticed within this time).
        secret: the key that authenticates entries (HMAC-SHA256 over key and value); None makes
            a random one per process, so entries written before a restart become misses. Set it
            when several servers share one Redis, or to keep entries across restarts.
    """

    enabled: bool = True
    redis_url: Optional[str] = None
    ttl_s: float = 3600.0
    max_entries: int = 1024
    max_bytes: int = 64 * 1024 * 1024
    max_entry_bytes: int = 256 * 1024
    redis_timeout_s: float = 0.5
    retry_initial_s: float = 1.0
    retry_max_s: float = 30.0
    image_id_ttl_s: float = 30.0
    secret: Optional[bytes] = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.secret is not None and len(self.secret) < 16:
            raise ValueError("the result cache secret must be at least 16 bytes (e.g. "
                             "`openssl rand -hex 32`)")
        for name in ("ttl_s", "redis_timeout_s", "retry_initial_s", "retry_max_s", "image_id_ttl_s"):
            parse_positive_float(getattr(self, name), name)
        for name in ("max_entries", "max_bytes", "max_entry_bytes"):
            parse_positive_int(getattr(self, name), name)

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None, **overrides: Any) -> CacheConfig:
        """Reads ``DOCKER_EXECUTOR_REDIS_URL``, ``_CACHE_ENABLED``, ``_CACHE_TTL`` (seconds),
        ``_CACHE_MAX_ENTRIES`` and ``_CACHE_SECRET``; ``overrides`` win.

        Raises:
            ValueError: a variable holds a value that makes no sense; the message names it.
        """
        env = os.environ if environ is None else environ
        changes: dict[str, Any] = {}
        url = (env.get(REDIS_URL_ENV) or "").strip()
        if url:
            changes["redis_url"] = url
        secret = (env.get(CACHE_SECRET_ENV) or "").strip()
        if secret:
            changes["secret"] = secret.encode()
        readers: dict[str, tuple[str, Callable[[str, str], Any]]] = {
            "CACHE_ENABLED": ("enabled", parse_env_bool),
            "CACHE_TTL": ("ttl_s", lambda v, n: parse_positive_float(v, n, seconds=True)),
            "CACHE_MAX_ENTRIES": ("max_entries", parse_positive_int),
        }
        for suffix, (attr, parse) in readers.items():
            value = env.get(ENV_PREFIX + suffix)
            if value:
                changes[attr] = parse(value, ENV_PREFIX + suffix)
        changes.update(overrides)
        return cls(**changes)


class MemoryStore:
    """A bounded LRU of serialized results with per-entry expiry. Thread-safe.

    Args:
        max_entries: most entries kept; the least recently used go first.
        max_bytes: most bytes of values kept.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, max_entries: int, max_bytes: int, clock: Callable[[], float] = time.monotonic):
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
                raise ValueError(f"{REDIS_URL_ENV} {redact_url(config.redis_url)!r} is not usable: {e}") from None
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
            assert self._redis is not None  # _redis_turn() is False without it
            try:
                # Bytes: the client is made without decode_responses.
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
            assert self._redis is not None  # as in get()
            try:
                self._redis.set(REDIS_KEY_PREFIX + key, value, px=max(1, int(self.config.ttl_s * 1000)))
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
            assert self._redis is not None  # as in get()
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
        log.info("Redis at %s answers again after %.0f s; the result cache uses it again",
                 redact_url(self.config.redis_url), outage)

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
            log.warning("Redis at %s failed (%s); the result cache is in memory until Redis answers "
                        "again (retried with a backoff of up to %g s)", redact_url(self.config.redis_url),
                        self._last_error, self.config.retry_max_s)
        else:
            log.debug("Redis still unavailable: %s", self._last_error)


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

    def __init__(self, sandbox: DockerSandbox, config: Optional[CacheConfig] = None,
                 clock: Callable[[], float] = time.monotonic):
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
        self._key_id = hashlib.sha256(b"jupyter-exec-ext cache key id\n" + self._secret
                                      ).hexdigest()[:_KEY_ID_HEX].encode("ascii")
        if self.cache_config.redis_url and self.cache_config.secret is None:
            log.debug("result cache entries are signed with a key made at start-up; set a cache "
                     "secret to keep Redis entries across restarts")

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
            counts = {"hits": self.hits, "misses": self.misses, "bypassed": self.bypassed,
                      "rejected": self.rejected, "foreign": self.foreign}
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
        return hmac.new(self._secret, key.encode("ascii") + b"\n" + value,
                        hashlib.sha256).hexdigest().encode("ascii")

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
        security_log.warning("security: ignored a result cache entry %s… that fails its "
                             "authentication check (written without the cache's key)", key[:12])
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
