"""The result cache: what is reused and what never is, Redis with its in-memory fallback, and
the cache in front of the real sandbox (real Docker engine, real redis-server)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace

import pytest
import redis

from jupyter_exec_ext.sandbox import (
    CacheConfig,
    CachingSandbox,
    Check,
    CodePolicy,
    DataFile,
    DockerSandbox,
    ExecutionRequest,
    ExecutionResult,
    Limits,
    SandboxConfig,
    SandboxUnavailableError,
    Status,
)
from jupyter_exec_ext.sandbox.cache import (
    REDIS_KEY_PREFIX,
    MemoryStore,
    ResultStore,
    cache_key,
    redact_url,
)

#: The Redis outage and recovery messages come from the store.
STORE_LOGGER = "jupyter_exec_ext.sandbox.result_store"


# -- the key ------------------------------------------------------------------------------------------


def test_the_key_covers_everything_that_changes_a_result():
    request = ExecutionRequest(code="print(input())", stdin="a")
    config = SandboxConfig(owner="key-test")
    base = dict(request=request, limits=Limits(), image_id="sha256:aa", runner="r1", config=config)
    key = cache_key(**base)
    assert len(key) == 64 and key == cache_key(**base)
    variants = {
        "code": dict(base, request=replace(request, code="print(input()) ")),
        "stdin": dict(base, request=replace(request, stdin="b")),
        "policy": dict(
            base, request=replace(request, policy=CodePolicy.from_mapping({"profile": "safe"}))
        ),
        "limits": dict(base, limits=Limits(time_s=5)),
        "image id": dict(base, image_id="sha256:bb"),
        "runner": dict(base, runner="r2"),
        "output cap": dict(base, config=replace(config, output_limit_bytes=1000)),
        "tmpfs": dict(base, config=replace(config, tmpfs_mb=16)),
        "runtime": dict(base, config=replace(config, runtime="runsc")),
        "network": dict(base, config=replace(config, network="class-net")),
        "user": dict(base, config=replace(config, user="10005:10005")),
        "figures": dict(base, config=replace(config, display_limit=3)),
        "figure bytes": dict(base, config=replace(config, display_bytes=1024)),
        "a data file": dict(base, request=replace(request, files=(DataFile("d.csv", b"1,2"),))),
        "its content": dict(base, request=replace(request, files=(DataFile("d.csv", b"1,3"),))),
        "its name": dict(base, request=replace(request, files=(DataFile("e.csv", b"1,2"),))),
        # Code may hold a lone surrogate (JSON can spell one); the key is still made.
        "surrogate": dict(base, request=replace(request, code="print('\ud800')")),
    }
    keys = {name: cache_key(**kwargs) for name, kwargs in variants.items()}
    assert all(k != key for k in keys.values()), [n for n, k in keys.items() if k == key]
    assert len(set(keys.values())) == len(keys)
    # The owner label names a server instance; it does not change what a program prints.
    assert cache_key(**dict(base, config=replace(config, owner="another"))) == key


# -- settings ---------------------------------------------------------------------------------------


def test_settings_from_the_environment():
    config = CacheConfig.from_env(
        {
            "DOCKER_EXECUTOR_REDIS_URL": "redis://cache:6379/2",
            "DOCKER_EXECUTOR_CACHE_TTL": "90s",
            "DOCKER_EXECUTOR_CACHE_MAX_ENTRIES": "10",
            "DOCKER_EXECUTOR_CACHE_ENABLED": "false",
        }
    )
    assert (config.redis_url, config.ttl_s, config.max_entries, config.enabled) == (
        "redis://cache:6379/2",
        90.0,
        10,
        False,
    )
    assert CacheConfig.from_env({}) == CacheConfig()


def test_a_bad_setting_names_the_variable():
    with pytest.raises(ValueError, match="DOCKER_EXECUTOR_CACHE_TTL must be positive"):
        CacheConfig.from_env({"DOCKER_EXECUTOR_CACHE_TTL": "0"})
    with pytest.raises(ValueError, match="DOCKER_EXECUTOR_CACHE_ENABLED must be true or false"):
        CacheConfig.from_env({"DOCKER_EXECUTOR_CACHE_ENABLED": "maybe"})
    with pytest.raises(ValueError, match="DOCKER_EXECUTOR_REDIS_URL 'http://x' is not usable"):
        ResultStore(CacheConfig(redis_url="http://x"))


def test_the_redis_password_never_shows():
    assert redact_url("redis://:s3cret@cache:6380/1") == "redis://:***@cache:6380/1"
    assert redact_url("redis://admin:s3cret@cache/0") == "redis://admin:***@cache/0"
    assert redact_url("redis://cache:6379/0") == "redis://cache:6379/0"
    store = ResultStore(CacheConfig(redis_url="redis://:s3cret@127.0.0.1:1/0"))
    assert "s3cret" not in repr(store.status())
    store.close()


# -- the in-process LRU -----------------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_memory_entries_expire():
    clock = FakeClock()
    store = MemoryStore(max_entries=10, max_bytes=1000, clock=clock)
    store.set("a", b"1", ttl_s=60)
    clock.now += 59.9
    assert store.get("a") == b"1"
    clock.now += 0.1
    assert store.get("a") is None
    assert len(store) == 0


def test_memory_store_evicts_the_least_recently_used():
    store = MemoryStore(max_entries=2, max_bytes=1000)
    store.set("a", b"1", 60)
    store.set("b", b"2", 60)
    assert store.get("a") == b"1"  # now "b" is the least recently used
    store.set("c", b"3", 60)
    assert (store.get("a"), store.get("b"), store.get("c")) == (b"1", None, b"3")


def test_memory_store_is_bounded_in_bytes():
    store = MemoryStore(max_entries=100, max_bytes=10)
    store.set("big", b"x" * 11, 60)
    assert store.get("big") is None
    for name in "abcd":
        store.set(name, b"xxx", 60)
    assert len(store) == 3 and store.get("a") is None and store.get("d") == b"xxx"


def test_memory_store_holds_its_bound_under_threads():
    store = MemoryStore(max_entries=50, max_bytes=10_000)

    def writer(n: int) -> None:
        for i in range(500):
            store.set(f"{n}-{i}", b"v", 60)
            store.get(f"{n}-{i - 1}")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store) == 50
    # Byte accounting survived the races: exactly ten 1000-byte values fit in 10 000 bytes, and
    # every one-byte value left has to go to make room for them.
    for i in range(10):
        store.set(f"big-{i}", b"x" * 1000, 60)
    assert len(store) == 10 and all(store.get(f"big-{i}") for i in range(10))


def test_without_a_url_memory_serves():
    store = ResultStore(CacheConfig())
    store.set("k", b"v")
    assert store.get("k") == b"v"
    assert store.status()["backend"] == "memory" and store.status()["entries"] == 1


# -- Redis and its fallback (real redis-server, no Docker) ------------------------------------------


def outage_config(url: str, **changes) -> CacheConfig:
    return CacheConfig(
        redis_url=url, retry_initial_s=0.2, retry_max_s=0.4, redis_timeout_s=0.3, **changes
    )


@pytest.mark.redis
def test_values_live_in_redis_with_the_ttl(redis_server):
    store = ResultStore(outage_config(redis_server.url, ttl_s=1.0))
    store.set("k", b"v")
    direct = redis_server.client()
    assert direct.get(REDIS_KEY_PREFIX + "k") == b"v"
    assert 0 < direct.pttl(REDIS_KEY_PREFIX + "k") <= 1000
    assert store.get("k") == b"v" and len(store.memory) == 0
    assert store.status()["backend"] == "redis"
    time.sleep(1.1)
    assert store.get("k") is None
    direct.close()
    store.close()


@pytest.mark.redis
def test_redis_down_falls_back_to_memory_and_says_so_once(redis_server, caplog):
    caplog.set_level(logging.DEBUG, logger=STORE_LOGGER)
    # A long retry interval: during it, no call may touch Redis at all.
    store = ResultStore(CacheConfig(redis_url=redis_server.url, retry_initial_s=600))
    store.set("before", b"1")
    redis_server.kill()
    for i in range(50):
        store.set(f"k{i}", b"v")
        assert store.get(f"k{i}") == b"v"
    status = store.status()
    assert status["backend"] == "memory"
    assert status["errors"] == 1, "a down Redis was called again inside the retry interval"
    assert "ConnectionError" in status["redis_error"]
    assert status["entries"] == 50
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "in memory until Redis answers again" in warnings[0].getMessage()
    store.close()


@pytest.mark.redis
def test_a_down_redis_is_retried_with_a_doubling_backoff(redis_server):
    clock = FakeClock()
    store = ResultStore(
        CacheConfig(redis_url=redis_server.url, retry_initial_s=1, retry_max_s=4), clock=clock
    )
    start = clock.now
    redis_server.kill()
    tried = []
    # Requests every 0.25 s for 13 s: Redis is tried at 0 (the failure that starts the outage),
    # then 1, 2, 4, 8, 12 s later: waits of 1, 1, 2, 4, 4 (capped) seconds.
    for step in range(53):
        clock.now = start + step * 0.25
        before = store.errors
        store.get("k")
        if store.errors > before:
            tried.append(clock.now - start)
    assert tried == [0, 1, 2, 4, 8, 12]
    store.close()


@pytest.mark.redis
def test_redis_is_used_again_when_it_comes_back(redis_server, caplog):
    caplog.set_level(logging.INFO, logger=STORE_LOGGER)
    config = outage_config(redis_server.url)
    store = ResultStore(config)
    redis_server.kill()
    store.set("during", b"1")
    assert store.status()["backend"] == "memory"
    redis_server.start()  # same port, empty
    time.sleep(config.retry_max_s + 0.1)  # the longest the backoff can have grown to
    store.set("after", b"2")
    assert store.status()["backend"] == "redis"
    direct = redis_server.client()
    assert direct.get(REDIS_KEY_PREFIX + "after") == b"2"
    assert store.get("after") == b"2"
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.INFO]
    assert "answers again" in caplog.records[1].getMessage()
    direct.close()
    store.close()


@pytest.mark.redis
def test_a_frozen_redis_costs_one_timeout_not_a_stall(redis_server):
    store = ResultStore(outage_config(redis_server.url))
    store.set("k", b"v")
    redis_server.freeze()  # accepts connections, answers nothing
    try:
        assert store.get("k") is None  # the read timed out; memory has no entry
        store.set("k", b"w")
        assert store.get("k") == b"w"
        status = store.status()
        assert status["backend"] == "memory"
        assert "Timeout" in status["redis_error"]
    finally:
        redis_server.thaw()
    store.close()


@pytest.mark.redis
def test_status_check_notices_an_outage_and_a_recovery_without_runs(redis_server):
    config = outage_config(redis_server.url)
    store = ResultStore(config)
    store.check()
    assert store.status()["backend"] == "redis"
    redis_server.kill()
    store.check()
    assert store.status()["backend"] == "memory"
    redis_server.start()
    time.sleep(config.retry_max_s + 0.1)
    store.check()
    assert store.status()["backend"] == "redis" and store.status()["redis_error"] is None
    store.close()


@pytest.mark.redis
def test_nothing_listening_at_the_url_means_memory(redis_server, caplog):
    url = redis_server.url
    redis_server.kill()
    store = ResultStore(CacheConfig(redis_url=url, retry_initial_s=600))
    store.set("k", b"v")
    assert store.get("k") == b"v"
    assert store.status()["backend"] == "memory"
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    store.close()


# -- the cache in front of the real sandbox ---------------------------------------------------------


class CountingSandbox(DockerSandbox):
    """The real sandbox, counting the runs it is asked for (each a container, policy aside)."""

    def __init__(self, config: SandboxConfig):
        super().__init__(config)
        self.runs = 0
        self._runs_lock = threading.Lock()

    def run(self, request: ExecutionRequest) -> ExecutionResult:
        with self._runs_lock:
            self.runs += 1
        return super().run(request)


@pytest.fixture
def counting_sandbox(sandbox):
    box = CountingSandbox(sandbox.config)
    yield box
    box.close()


@pytest.fixture
def make_cache(counting_sandbox):
    made = []

    def make(**settings) -> CachingSandbox:
        cache = CachingSandbox(counting_sandbox, CacheConfig(**settings))
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.store.close()


def request(code: str, stdin: str = "", **limits) -> ExecutionRequest:
    return ExecutionRequest(code=code, stdin=stdin, limits=Limits.from_mapping(limits))


def our_keys(server) -> list:
    client = server.client()
    keys = list(client.scan_iter(match=REDIS_KEY_PREFIX + "*"))
    client.close()
    return keys


SQUARES = "n = int(input())\nprint([i * i for i in range(n)])\n"


@pytest.mark.docker
@pytest.mark.redis
def test_second_run_is_a_hit_from_redis(make_cache, counting_sandbox, redis_server, caplog):
    cache = make_cache(redis_url=redis_server.url)
    first = cache.run(request(SQUARES, stdin="4"))
    assert (first.status, first.stdout, first.cached) == (Status.OK, "[0, 1, 4, 9]\n", False)
    second = cache.run(request(SQUARES, stdin="4"))
    assert second.cached is True and counting_sandbox.runs == 1
    assert replace(second, cached=False) == first
    assert len(our_keys(redis_server)) == 1

    # A damaged entry (no key id of this cache) is a miss, never a wrong answer; the fresh
    # result replaces it.
    direct = redis_server.client()
    direct.set(our_keys(redis_server)[0], b"{not json")
    third = cache.run(request(SQUARES, stdin="4"))
    assert (third.cached, third.stdout, counting_sandbox.runs) == (False, "[0, 1, 4, 9]\n", 2)
    assert cache.run(request(SQUARES, stdin="4")).cached is True
    direct.close()

    # use_cache=False (grading) always runs and stores nothing new.
    forced = cache.run(request(SQUARES, stdin="4"), use_cache=False)
    assert (forced.cached, counting_sandbox.runs) == (False, 3)

    status = cache.status()
    assert status["reachable"] is True and status["image_id"].startswith("sha256:")
    assert {
        k: status["cache"][k]
        for k in ("backend", "hits", "misses", "bypassed", "foreign", "errors")
    } == {"backend": "redis", "hits": 2, "misses": 2, "bypassed": 1, "foreign": 1, "errors": 0}


FORGED = (
    b'{"status": "ok", "stdout": "POISONED by another kernel\\n", "stderr": "", "exit_code": 0}'
)


@pytest.mark.docker
@pytest.mark.redis
def test_an_entry_written_without_the_key_is_never_served(
    make_cache, counting_sandbox, protected_redis_server
):
    """What a student's kernel that reaches the cache's Redis can do: write entries. Through a
    password-protected Redis, with the password even (the worst case): forged values, a real
    entry moved under another key, an entry signed with another key are all misses, counted."""
    server = protected_redis_server
    anonymous = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=5)
    with pytest.raises(redis.AuthenticationError):
        anonymous.set(REDIS_KEY_PREFIX + "x", FORGED)  # no password: refused outright
    anonymous.close()

    cache = make_cache(redis_url=server.url, secret=b"the-service-key-0123456789")
    squares = cache.run(request(SQUARES, stdin="3"))
    assert squares.stdout == "[0, 1, 4]\n" and cache.run(request(SQUARES, stdin="3")).cached
    client = server.client()
    (key,) = client.scan_iter(match=REDIS_KEY_PREFIX + "*")
    genuine = client.get(key)

    sealed = 16 + 64  # key id, then the HMAC, in hex
    forgeries = [
        genuine[:sealed] + FORGED,  # the real key id and MAC in front of another value
        genuine[:16] + b"0" * 64 + FORGED,  # the real key id, a made-up MAC
    ]
    for forged in forgeries:
        client.set(key, forged)
        served = cache.run(request(SQUARES, stdin="3"))
        assert (served.stdout, served.cached) == ("[0, 1, 4]\n", False)
    # A bare result (the format before entries were signed) is another key's entry: a miss too.
    client.set(key, FORGED)
    assert cache.run(request(SQUARES, stdin="3")).stdout == "[0, 1, 4]\n"

    # A genuine entry of other code, moved under this code's key, fails too: the MAC covers
    # the key.
    cache.run(request("print('other')"))
    other_key = next(k for k in client.scan_iter(match=REDIS_KEY_PREFIX + "*") if k != key)
    client.set(key, client.get(other_key))
    assert cache.run(request(SQUARES, stdin="3")).stdout == "[0, 1, 4]\n"

    # A cache with the same key (a second service process) serves the entry; one with another
    # key (an earlier start, another deployment sharing the Redis) trusts none of it and counts
    # it as foreign, not as a forgery.
    sibling = make_cache(redis_url=server.url, secret=b"the-service-key-0123456789")
    assert sibling.run(request(SQUARES, stdin="3")).cached is True
    stranger = make_cache(redis_url=server.url, secret=b"another-key-0123456789")
    assert stranger.run(request(SQUARES, stdin="3")).cached is False

    assert cache.cache_status()["rejected"] == 3 and cache.cache_status()["foreign"] == 1
    assert stranger.cache_status()["rejected"] == 0 and stranger.cache_status()["foreign"] == 1
    assert cache.cache_status()["errors"] == 0
    client.close()


def test_a_short_cache_secret_is_refused_naming_it():
    with pytest.raises(ValueError, match="secret must be at least 16 bytes"):
        CacheConfig(secret=b"short")


@pytest.mark.docker
@pytest.mark.redis
def test_an_entry_expires_after_the_ttl(make_cache, counting_sandbox, redis_server):
    cache = make_cache(redis_url=redis_server.url, ttl_s=1.0)
    assert cache.run(request("print(6 * 7)")).cached is False
    assert cache.run(request("print(6 * 7)")).cached is True
    time.sleep(1.2)
    again = cache.run(request("print(6 * 7)"))
    assert (again.cached, again.stdout, counting_sandbox.runs) == (False, "42\n", 2)


@pytest.mark.docker
@pytest.mark.redis
def test_limits_are_part_of_the_key(make_cache, counting_sandbox, redis_server):
    cache = make_cache(redis_url=redis_server.url)
    assert cache.run(request("print('x')", time_limit=120)).cached is False
    # Above the admin maximum of 120 s, so clamped to it: the very same run.
    assert cache.run(request("print('x')", time_limit=999)).cached is True
    other = cache.run(request("print('x')", time_limit=5))
    assert (other.cached, other.limits.time_s, counting_sandbox.runs) == (False, 5.0, 2)
    assert len(our_keys(redis_server)) == 2


@pytest.mark.docker
@pytest.mark.redis
def test_a_timed_out_run_is_not_cached(make_cache, counting_sandbox, redis_server):
    cache = make_cache(redis_url=redis_server.url)
    for _ in range(2):
        result = cache.run(request("while True:\n    pass\n", time_limit=1))
        assert (result.status, result.cached) == (Status.TIMEOUT, False)
    assert counting_sandbox.runs == 2
    assert our_keys(redis_server) == []


@pytest.mark.docker
@pytest.mark.redis
def test_random_numbers_are_never_stale(make_cache, counting_sandbox, redis_server):
    cache = make_cache(redis_url=redis_server.url)
    code = "import random\nprint(random.random())\n"
    first, second = cache.run(request(code)), cache.run(request(code))
    assert (first.cached, second.cached, counting_sandbox.runs) == (False, False, 2)
    assert first.stdout != second.stdout
    assert our_keys(redis_server) == []
    assert cache.cache_status()["bypassed"] == 2


@pytest.mark.docker
@pytest.mark.redis
def test_runs_go_on_when_redis_dies_and_use_it_again_when_it_returns(
    make_cache, counting_sandbox, redis_server, caplog
):
    caplog.set_level(logging.INFO, logger=STORE_LOGGER)
    cache = make_cache(
        redis_url=redis_server.url, retry_initial_s=0.2, retry_max_s=0.4, redis_timeout_s=0.3
    )
    code = "print(sum(range(10)))"
    assert cache.run(request(code)).cached is False
    redis_server.kill()

    during = cache.run(request(code))  # Redis gone: a miss, run, kept in memory
    assert (during.status, during.stdout, during.cached) == (Status.OK, "45\n", False)
    assert cache.run(request(code)).cached is True  # from memory
    assert counting_sandbox.runs == 2
    assert cache.cache_status()["backend"] == "memory"
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1

    redis_server.start()  # same port, empty
    time.sleep(0.5)  # past the longest backoff (retry_max_s)
    assert cache.run(request(code)).cached is False  # the fresh Redis has no entry yet
    assert cache.cache_status()["backend"] == "redis"
    assert len(our_keys(redis_server)) == 1
    assert cache.run(request(code)).cached is True
    assert counting_sandbox.runs == 3
    assert [r.levelno for r in caplog.records if r.levelno >= logging.INFO] == [
        logging.WARNING,
        logging.INFO,
    ]


@pytest.mark.docker
def test_identical_concurrent_runs_share_one_container(make_cache, counting_sandbox):
    cache = make_cache()
    code = "print(sum(i * i for i in range(2_000_000)))"
    start = threading.Barrier(3)
    results = []

    def student() -> None:
        start.wait()
        results.append(cache.run(request(code)))

    threads = [threading.Thread(target=student) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counting_sandbox.runs == 1
    assert len({r.stdout for r in results}) == 1 and results[0].status is Status.OK
    assert sorted(r.cached for r in results) == [False, True, True]


@pytest.mark.docker
def test_without_redis_the_embedded_cache_serves(make_cache, counting_sandbox):
    cache = make_cache()
    code = "def f(x):\n    return 1 / x\nf(0)\n"
    first, second = cache.run(request(code)), cache.run(request(code))
    assert (first.status, second.status) == (Status.RUNTIME_ERROR, Status.RUNTIME_ERROR)
    assert "ZeroDivisionError" in second.stderr and second.cached is True
    assert counting_sandbox.runs == 1
    section = cache.status()["cache"]
    assert (section["backend"], section["entries"], section["redis_url"]) == ("memory", 1, None)

    # An admin turning the sandbox off gets "unavailable", not yesterday's answers.
    counting_sandbox.config = replace(counting_sandbox.config, enabled=False)
    with pytest.raises(SandboxUnavailableError, match="disabled"):
        cache.run(request(code))


@pytest.mark.docker
def test_grading_runs_are_never_cached(make_cache, counting_sandbox):
    cache = make_cache()
    graded = ExecutionRequest(code="def f():\n    return 2\n", checks=(Check("print(f())", 2),))
    first, second = cache.run(graded), cache.run(graded)
    assert [c.stdout for c in first.checks] == [c.stdout for c in second.checks] == ["2\n"]
    assert (first.cached, second.cached) == (False, False)
    assert counting_sandbox.runs == 2
