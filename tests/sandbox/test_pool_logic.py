"""The warm pool's logic without Docker: what it hands out, discards, grows to, sheds, refills and
leaves behind, with a fake launcher whose containers are real socket pairs. (tests/sandbox/
test_pool.py proves the same pool against the real engine, with isolation.)"""

from __future__ import annotations

import threading
import time

import pytest

from jupyter_exec_ext.sandbox.limits import Limits
from jupyter_exec_ext.sandbox.pool import CONTAINER_MB, WarmPool

from .fakes import FakeLauncher, wait_for

PROFILE = Limits(memory_mb=128, cpus=0.5, time_s=10.0, pids=40, nofile=256)


@pytest.fixture
def make_pool(launcher):
    """Pools on the fake launcher, drained at the end of the test."""
    pools: list[WarmPool] = []

    def make(size: int = 2, start: bool = True, **options) -> WarmPool:
        options.setdefault("refill_delay_s", 0.0)
        pool = WarmPool(launcher, size, PROFILE, **options)
        pools.append(pool)
        if start:
            pool.start()
        return pool

    yield make
    for pool in pools:
        pool.drain()


def full(pool: WarmPool, idle: int) -> None:
    wait_for(lambda: pool.status()["idle"] == idle, f"{idle} container(s) wait in the pool")


def test_a_run_the_profile_cannot_serve_gets_nothing_and_is_no_miss(make_pool, launcher):
    pool = make_pool(size=1, max_size=3)
    full(pool, 1)
    for other in (
        Limits(memory_mb=256, cpus=0.5, time_s=10.0, pids=40, nofile=256),
        Limits(memory_mb=128, cpus=1.0, time_s=10.0, pids=40, nofile=256),
        Limits(memory_mb=128, cpus=0.5, time_s=11.0, pids=40, nofile=256),  # longer than served
    ):
        assert pool.take(other) is None
    status = pool.status()
    assert (status["misses"], status["served"], status["size"], status["grown"]) == (0, 0, 1, 0)
    assert pool.waiting() == launcher.launched  # the waiting one is still there, untouched


def test_a_run_that_fits_gets_a_live_waiting_container_and_the_pool_refills(make_pool, launcher):
    pool = make_pool(size=2)
    full(pool, 2)
    oldest = pool.waiting()[0]
    # A shorter time limit fits: the runner enforces the run's own.
    taken = pool.take(Limits(memory_mb=128, cpus=0.5, time_s=2.0, pids=40, nofile=256))
    assert taken is oldest and taken.alive()
    assert pool.status()["served"] == 1
    assert launcher.removed(taken) == []  # the run owns it now; the pool never removes it
    full(pool, 2)
    assert taken not in pool.waiting()
    assert len(launcher.launched) == 3 and pool.status()["created"] == 3


def test_refill_launches_up_to_size_with_the_pools_idle_time(make_pool, launcher):
    pool = make_pool(size=3, max_idle_s=42.0, workers=2)
    full(pool, 3)
    assert launcher.launches == [(PROFILE, 42.0)] * 3
    assert pool.waiting() == launcher.launched  # the oldest first
    status = pool.status()
    assert (status["created"], status["starting"], status["errors"]) == (3, 0, 0)


def test_a_dead_waiting_container_is_removed_soon_and_never_handed_out(make_pool, launcher):
    pool = make_pool(size=2, workers=1)
    full(pool, 2)
    dead, live = pool.waiting()
    launcher.kill(dead)
    assert not dead.alive()
    assert pool.take(PROFILE) is live
    assert launcher.removed(dead) == ["soon"]
    assert launcher.removed(live) == []
    assert pool.status()["discarded"] == 1 and pool.status()["served"] == 1


def test_a_container_waiting_too_long_is_removed_soon_and_never_handed_out(make_pool, launcher):
    pool = make_pool(size=2, workers=1, max_idle_s=60.0)
    full(pool, 2)
    old, young = pool.waiting()
    old.started -= 61.0  # as if it had waited a minute
    assert pool.take(PROFILE) is young
    assert launcher.removed(old) == ["soon"]
    assert pool.status()["discarded"] == 1


def test_the_refill_thread_replaces_containers_that_died_or_waited_too_long(make_pool, launcher):
    pool = make_pool(size=1, workers=1, max_idle_s=0.3)
    full(pool, 1)
    first = pool.waiting()[0]
    wait_for(lambda: launcher.removed(first) == ["soon"], "the idle container is replaced")
    wait_for(lambda: len(pool.waiting()) == 1 and first not in pool.waiting(), "a new one waits")
    second = pool.waiting()[0]
    launcher.kill(second)
    wait_for(lambda: launcher.removed(second) == ["soon"], "the dead container is replaced")
    assert pool.status()["served"] == 0 and pool.status()["discarded"] >= 2


def test_each_miss_grows_the_pool_by_one_up_to_max_size(make_pool):
    pool = make_pool(size=1, max_size=3, start=False)
    sizes = []
    for _ in range(4):
        assert pool.take(PROFILE) is None
        sizes.append(pool.size)
    assert sizes == [2, 3, 3, 3]
    status = pool.status()
    assert (status["misses"], status["grown"], status["max_size"]) == (4, 2, 3)


def test_the_memory_budget_caps_the_growth(make_pool):
    pool = make_pool(
        size=1, max_size=10, memory_budget_mb=3 * CONTAINER_MB + CONTAINER_MB - 1, start=False
    )
    assert pool.max_size == 3
    for _ in range(5):
        assert pool.take(PROFILE) is None
    assert pool.size == 3 and pool.status()["grown"] == 2
    pool.start()
    full(pool, 3)


def test_the_configured_size_is_kept_even_when_the_budget_or_maximum_is_below_it(make_pool):
    pool = make_pool(size=2, max_size=1, memory_budget_mb=CONTAINER_MB - 1, start=False)
    assert (pool.min_size, pool.max_size, pool.size) == (2, 2, 2)
    assert pool.take(PROFILE) is None
    assert pool.size == 2 and pool.status()["grown"] == 0 and pool.status()["misses"] == 1
    fixed = make_pool(size=2, start=False)  # no max_size: a fixed size
    fixed.take(PROFILE)
    assert (fixed.size, fixed.max_size) == (2, 2)


def test_without_misses_the_pool_sheds_half_its_growth_the_oldest_first_down_to_its_size(
    make_pool, launcher
):
    pool = make_pool(size=1, max_size=5, shrink_after_s=0.2, start=False)
    for _ in range(4):
        pool.take(PROFILE)
    assert pool.size == 5
    pool.start()
    full(pool, 5)
    waiting = pool.waiting()
    wait_for(lambda: pool.status()["shrunk"] == 3, "the pool is back at its size")
    # 5 -> 3 (half of 4), 3 -> 2 (half of 2), 2 -> 1 (at least one); never below 1.
    assert pool.size == 1 and pool.status()["size"] == 1
    assert launcher.removals == [(c.container_id, "soon") for c in waiting[:4]]
    assert pool.waiting() == waiting[4:]
    assert pool.status()["discarded"] == 4 and len(launcher.launched) == 5


def test_after_a_miss_the_pool_stays_grown_for_shrink_after_s(make_pool, launcher):
    """A lower bound that holds (the shrink compares the time since the last miss or refill with
    shrink_after_s), not a timing: how much later it comes is not asserted."""
    pool = make_pool(size=1, max_size=3, shrink_after_s=0.3, start=False)
    pool.take(PROFILE)
    pool.take(PROFILE)
    pool.start()
    full(pool, 3)
    # Runs take every waiting container (none is started meanwhile) and one more misses.
    launcher.hold_launches()
    for _ in range(3):
        assert pool.take(PROFILE) is not None
    assert pool.take(PROFILE) is None
    missed = time.monotonic()
    assert pool.size == 3 and pool.status()["shrunk"] == 0
    launcher.release_launches()
    full(pool, 3)
    wait_for(lambda: pool.size == 2, "the idle pool sheds one")
    assert time.monotonic() - missed >= 0.3
    wait_for(lambda: pool.size == 1, "the idle pool is back at its size")
    assert pool.status()["shrunk"] == 2 and pool.status()["misses"] == 3


def test_launch_errors_are_counted_backed_off_and_filling_resumes(make_pool, launcher):
    """The backoff is a wait on the pool's condition (1 s, then twice that); nothing notifies it
    here, so an attempt cannot come earlier. A lower bound that holds, not a timing."""
    launcher.fail_next(2)
    pool = make_pool(size=1, workers=1)
    full(pool, 1)
    status = pool.status()
    assert (status["errors"], status["created"]) == (2, 1)
    assert len(launcher.launches) == 3
    first, second, third = launcher.launch_times
    assert second - first >= 1.0 and third - second >= 2.0
    assert pool.waiting() == launcher.launched


def test_drain_while_launches_fail_returns_at_once_and_leaves_no_thread(launcher):
    launcher.fail_next(1000)
    pool = WarmPool(launcher, 2, PROFILE, workers=2, refill_delay_s=0.0)
    pool.start()
    wait_for(lambda: pool.status()["errors"] >= 2, "both threads have failed once")
    threads = [t for t in threading.enumerate() if t.name.startswith("sandbox-pool-")]
    assert len(threads) == 2
    pool.drain()  # wakes the threads out of their backoff
    assert not any(t.is_alive() for t in threads)
    assert launcher.launched == [] and launcher.removals == []


def test_drain_stops_refilling_and_removes_every_waiting_container_now(make_pool, launcher):
    pool = make_pool(size=3)
    full(pool, 3)
    threads = [t for t in threading.enumerate() if t.name.startswith("sandbox-pool-")]
    waiting = pool.waiting()
    pool.drain()
    assert not any(t.is_alive() for t in threads)
    assert launcher.removals == [(c.container_id, "now") for c in waiting]
    assert all(c.closed for c in waiting)
    assert pool.waiting() == [] and pool.status()["idle"] == 0
    assert len(launcher.launched) == 3  # nothing started after the drain
    assert pool.take(PROFILE) is None


def test_a_container_launched_while_the_pool_drains_is_removed_not_kept(launcher):
    launcher.hold_launches()
    pool = WarmPool(launcher, 1, PROFILE, workers=1, refill_delay_s=0.0)
    pool.start()
    assert launcher.held.wait(timeout=10), "the refill thread started a launch"
    draining = threading.Thread(target=pool.drain)
    draining.start()
    wait_for(lambda: pool._stopping, "the drain has begun")
    assert draining.is_alive()  # it waits for the thread, which waits for its launch
    launcher.release_launches()
    draining.join(timeout=10)
    assert not draining.is_alive()
    (late,) = launcher.launched
    assert late.closed and pool.waiting() == []
    # Removed on the refill thread as a container that will not serve; the engine's close()
    # waits for such background removals before it returns.
    assert launcher.removed(late) == ["soon"]
    assert pool.status()["discarded"] == 1


def test_status_reports_the_pool(make_pool, launcher):
    pool = make_pool(size=1, max_size=2, workers=1, max_idle_s=120.0)
    full(pool, 1)
    launcher.hold_launches()  # no refill between the two takes
    assert pool.take(PROFILE) is not None
    assert pool.take(PROFILE) is None  # a miss: grows to 2
    launcher.release_launches()
    full(pool, 2)
    assert pool.status() == {
        "size": 2,
        "min_size": 1,
        "max_size": 2,
        "idle": 2,
        "starting": 0,
        "profile": PROFILE.to_dict(),
        "served": 1,
        "created": 3,
        "discarded": 0,
        "misses": 1,
        "errors": 0,
        "grown": 1,
        "shrunk": 0,
    }
    assert pool.waiting() == launcher.launched[1:]


def test_the_fake_closes_every_socket_it_made():
    fake = FakeLauncher()
    containers = [fake.launch(PROFILE) for _ in range(3)]
    fake.kill(containers[0])
    fake.remove(containers[1], "now")
    fake.close()
    assert len(fake.sockets()) == 6
    assert all(s.fileno() == -1 for s in fake.sockets())
    assert not any(c.alive() for c in containers)
