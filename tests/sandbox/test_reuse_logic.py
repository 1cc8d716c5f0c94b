"""The per-user store's logic without Docker: which container it keeps, for whom, how many, and
when it retires them, with a fake launcher whose containers are real socket pairs. The runner's
words ("ready", "retired") are written into the peer as the engine's attach stream carries them.
(tests/sandbox/test_reuse.py proves the same store against the real engine, with isolation.)"""

from __future__ import annotations

import threading
import time

import pytest

from jupyter_exec_ext.sandbox import reuse
from jupyter_exec_ext.sandbox.containers import Container
from jupyter_exec_ext.sandbox.limits import Limits
from jupyter_exec_ext.sandbox.protocol import Exchange, FrameReader, converse
from jupyter_exec_ext.sandbox.reuse import ReuseStore

from .fakes import FakeLauncher, wait_for

LIMITS = Limits(memory_mb=128, cpus=0.5, time_s=10.0, pids=40, nofile=256)
NONCE = "5f0c1d2e3a4b59687766554433221100"


@pytest.fixture
def make_store(launcher):
    """Stores on the fake launcher, drained at the end of the test."""
    stores: list[ReuseStore] = []

    def make(**options) -> ReuseStore:
        options.setdefault("max_runs", 10)
        store = ReuseStore(launcher, **options)
        stores.append(store)
        return store

    yield make
    launcher.close()  # runners still resetting end (EOF): the drain need not wait them out
    for store in stores:
        store.drain()


def served(launcher: FakeLauncher, live: Container, *, ready: bool = False) -> Exchange:
    """One job of ``live``, as ``DockerSandbox.run`` serves it: the job goes to the runner, its
    result frame comes back through ``converse`` (which leaves the reader on the container, to
    read on for "ready"). With ``ready``, the runner's "ready" follows the result at once."""
    launcher.say(live, NONCE, type="result", status="ok", exit_code=0, duration_ms=3)
    if ready:
        launcher.say(live, NONCE, type="ready")
    reader = FrameReader(NONCE, Exchange(), output_cap=1024)
    exchange = converse(live, b'{"keep": true}\n', reader, time.monotonic() + 5)
    live.runs += 1
    assert exchange.result is not None and exchange.result["status"] == "ok"
    assert live.reader is reader and exchange.after == ""
    return exchange


def kept(store: ReuseStore, key: str) -> list[Container]:
    """``key``'s containers waiting in the store, the least recently used first."""
    with store._cond:
        return list(store._idle.get(key, ()))


def keep(store: ReuseStore, launcher: FakeLauncher, key: str, limits: Limits = LIMITS):
    """A container that served ``key``, was reset (the runner said "ready") and now waits."""
    live = launcher.launch(limits)
    store.recycle(live, key, served(launcher, live))
    launcher.say(live, NONCE, type="ready")
    wait_for(lambda: live in kept(store, key), f"{key}'s container is kept")
    return live


def settled(store: ReuseStore, launcher: FakeLauncher, live: Container, key: str) -> None:
    """Waits until the store has decided on ``live`` (kept or removed), then asserts it removed
    it without ever keeping it (the sweeper starts with the first container kept)."""
    wait_for(lambda: launcher.removed(live) or kept(store, key), "the store has decided")
    assert launcher.removed(live) == ["soon"] and live.closed
    assert kept(store, key) == [] and store._sweeper is None
    assert store.status()["resetting"] == 0 and store.status()["retired"] == 1


# -- may_keep ------------------------------------------------------------------------------------


def test_a_container_may_stay_for_fewer_than_max_runs(make_store, launcher):
    store = make_store(max_runs=3)
    live = launcher.launch(LIMITS)
    answers = []
    for runs in range(4):
        live.runs = runs
        answers.append(store.may_keep(live, LIMITS))
    # The run about to end is its runs + 1st: the third would be its last.
    assert answers == [True, True, False, False]


def test_a_container_may_stay_only_while_a_run_started_now_ends_well_before_its_expiry(
    make_store, launcher
):
    strict, lenient = make_store(grace_s=30.0), make_store(grace_s=0.0)
    live = launcher.launch(LIMITS)
    margin = 2 * LIMITS.time_s + 30.0 + 60  # twice the time limit, the grace, a minute
    live.expires_at = time.time() + margin + 5
    assert strict.may_keep(live, LIMITS)
    live.expires_at = time.time() + margin - 5
    assert not strict.may_keep(live, LIMITS)
    assert lenient.may_keep(live, LIMITS)  # without the grace the same container is fresh enough
    longer = Limits(memory_mb=128, cpus=0.5, time_s=40.0, pids=40, nofile=256)
    assert not lenient.may_keep(live, longer)


def test_a_closed_store_keeps_nothing(make_store, launcher):
    store = make_store()
    live = launcher.launch(LIMITS)
    assert store.may_keep(live, LIMITS)
    store.drain()
    assert not store.may_keep(live, LIMITS)


# -- take ----------------------------------------------------------------------------------------


def test_with_nothing_kept_take_gives_nothing_and_asks_no_spare(make_store):
    store = make_store()
    asked = []
    assert store.take("alice", LIMITS) is None
    assert store.take("alice", LIMITS, spare=lambda: asked.append(1)) is None
    assert asked == []
    assert store.status()["served"] == 0


def test_a_reset_container_is_kept_for_its_user_and_served_to_that_user_only(make_store, launcher):
    store = make_store()
    live = keep(store, launcher, "alice")
    assert store.status()["kept"] == 1 and store.status()["users"] == 1
    assert store.take("bob", LIMITS) is None
    assert store.take("alicE", LIMITS) is None
    assert kept(store, "alice") == [live]
    assert store.take("alice", LIMITS) is live
    assert live.alive() and launcher.removed(live) == []
    assert store.take("alice", LIMITS) is None  # one run at a time per container
    assert store.status()["served"] == 1 and store.counters["reused"] == 1


def test_a_ready_that_came_with_the_result_is_read_from_what_was_left(make_store, launcher):
    store = make_store()
    live = launcher.launch(LIMITS)
    exchange = served(launcher, live, ready=True)
    assert live.mux  # the "ready" chunk, unread by the run
    store.recycle(live, "alice", exchange)
    wait_for(lambda: kept(store, "alice") == [live], "alice's container is kept")
    assert exchange.after == "ready"


def test_a_kept_container_that_cannot_serve_the_limits_is_not_handed_out_but_kept(
    make_store, launcher
):
    store = make_store()
    live = keep(store, launcher, "alice")
    bigger = Limits(memory_mb=256, cpus=0.5, time_s=10.0, pids=40, nofile=256)
    longer = Limits(memory_mb=128, cpus=0.5, time_s=20.0, pids=40, nofile=256)
    assert store.take("alice", bigger) is None
    assert store.take("alice", longer) is None
    assert kept(store, "alice") == [live] and launcher.removals == []
    shorter = Limits(memory_mb=128, cpus=0.5, time_s=5.0, pids=40, nofile=256)
    assert store.take("alice", shorter) is live


def _idle_too_long(store, launcher, live):
    live.last_used -= store.idle_s + 1


def _dead(store, launcher, live):
    launcher.kill(live)


def _near_expiry(store, launcher, live):
    live.expires_at = time.time() + 2 * LIMITS.time_s + store.grace_s + 30


@pytest.mark.parametrize("spoil", [_idle_too_long, _dead, _near_expiry])
def test_a_stale_kept_container_is_removed_never_handed_out(make_store, launcher, spoil):
    store = make_store(idle_s=60.0)
    fresh = keep(store, launcher, "alice")
    stale = keep(store, launcher, "alice")  # the most recently used: take looks at it first
    assert kept(store, "alice") == [fresh, stale]
    spoil(store, launcher, stale)
    assert store.take("alice", LIMITS) is fresh
    assert launcher.removed(stale) == ["soon"] and stale.closed
    assert store.status()["retired"] == 1 and store.status()["kept"] == 0
    assert store.take("alice", LIMITS) is None


def test_a_user_keeps_at_most_per_key_containers_the_oldest_goes(make_store, launcher):
    store = make_store(per_key=2)
    first, second, third = (keep(store, launcher, "alice") for _ in range(3))
    assert launcher.removals == [(first.container_id, "soon")]
    assert kept(store, "alice") == [second, third]
    # The most recently used first: its caches are warm.
    assert store.take("alice", LIMITS) is third
    assert store.take("alice", LIMITS) is second
    assert store.status()["retired"] == 1


def test_beyond_max_total_the_least_recently_kept_users_container_goes(make_store, launcher):
    store = make_store(per_key=2, max_total=2)
    alice = keep(store, launcher, "alice")
    bob = keep(store, launcher, "bob")
    alice_again = keep(store, launcher, "alice")  # alice is now the most recent user
    assert launcher.removals == [(bob.container_id, "soon")]
    assert store.take("bob", LIMITS) is None
    carol = keep(store, launcher, "carol")  # alice's oldest goes, not her newest
    assert launcher.removals[1:] == [(alice.container_id, "soon")]
    assert kept(store, "alice") == [alice_again] and kept(store, "carol") == [carol]
    assert store.status()["kept"] == 2 and store.status()["users"] == 2


def test_a_retired_runner_is_removed_not_kept(make_store, launcher):
    store = make_store()
    live = launcher.launch(LIMITS)
    store.recycle(live, "alice", served(launcher, live))
    launcher.say(live, NONCE, type="retired", reason="a process of the program survived")
    settled(store, launcher, live, "alice")


def test_a_runner_with_no_word_within_the_reset_timeout_is_removed(
    make_store, launcher, monkeypatch
):
    monkeypatch.setattr(reuse, "RESET_TIMEOUT_S", 0.2)
    store = make_store()
    live = launcher.launch(LIMITS)
    store.recycle(live, "alice", served(launcher, live))
    assert store.status()["resetting"] == 1
    settled(store, launcher, live, "alice")


def test_a_runner_that_ends_instead_of_resetting_is_removed(make_store, launcher):
    store = make_store()
    live = launcher.launch(LIMITS)
    store.recycle(live, "alice", served(launcher, live))
    launcher.kill(live)
    settled(store, launcher, live, "alice")


def test_a_ready_frame_with_another_nonce_does_not_count(make_store, launcher, monkeypatch):
    """The program cannot forge the runner's word: it does not know the job's nonce."""
    monkeypatch.setattr(reuse, "RESET_TIMEOUT_S", 0.3)
    store = make_store()
    live = launcher.launch(LIMITS)
    store.recycle(live, "alice", served(launcher, live))
    launcher.say(live, "0" * 32, type="ready")
    settled(store, launcher, live, "alice")


# -- the spare (a pooled container) while the user's own is being reset ---------------------------


def test_while_the_users_container_resets_the_spare_is_asked_once_and_served(make_store, launcher):
    store = make_store(per_key=2)
    resetting = launcher.launch(LIMITS)
    store.recycle(resetting, "alice", served(launcher, resetting))
    pooled = launcher.launch(LIMITS)
    asked = []

    def spare():
        asked.append(1)
        return pooled

    assert store.take("alice", LIMITS, spare=spare) is pooled
    assert asked == [1]
    assert store.status()["spares"] == 1 and store.status()["resetting"] == 1
    launcher.say(resetting, NONCE, type="ready")
    wait_for(lambda: kept(store, "alice") == [resetting], "the reset one is kept")


def test_with_no_spare_ready_the_run_waits_for_the_reset(make_store, launcher, monkeypatch):
    monkeypatch.setattr(reuse, "WAIT_FOR_RESET_S", 0.2)
    store = make_store(per_key=2)
    resetting = launcher.launch(LIMITS)
    store.recycle(resetting, "alice", served(launcher, resetting))
    asked = []
    assert store.take("alice", LIMITS, spare=lambda: asked.append(1)) is None
    assert asked == [1]  # once, not again while waiting
    assert store.status()["spares"] == 0


def test_with_per_key_containers_resetting_no_spare_is_asked(make_store, launcher, monkeypatch):
    monkeypatch.setattr(reuse, "WAIT_FOR_RESET_S", 0.2)
    store = make_store(per_key=2)
    both = [launcher.launch(LIMITS) for _ in range(2)]
    for live in both:
        store.recycle(live, "alice", served(launcher, live))
    asked = []
    assert store.take("alice", LIMITS, spare=lambda: asked.append(1)) is None
    assert asked == [] and store.status()["resetting"] == 2


def test_at_the_cap_the_run_gets_its_users_container_once_reset(make_store, launcher, monkeypatch):
    monkeypatch.setattr(reuse, "WAIT_FOR_RESET_S", 10.0)
    store = make_store(per_key=1)
    live = launcher.launch(LIMITS)
    store.recycle(live, "alice", served(launcher, live))
    asked: list[int] = []
    got: list = []
    taking = threading.Thread(
        target=lambda: got.append(store.take("alice", LIMITS, spare=lambda: asked.append(1)))
    )
    taking.start()
    launcher.say(live, NONCE, type="ready")
    taking.join(timeout=10)
    assert got == [live] and asked == []


def test_a_spare_is_never_asked_for_another_users_reset(make_store, launcher):
    store = make_store(per_key=2)
    resetting = launcher.launch(LIMITS)
    store.recycle(resetting, "alice", served(launcher, resetting))
    asked = []
    assert store.take("bob", LIMITS, spare=lambda: asked.append(1)) is None
    assert asked == []


# -- housekeeping --------------------------------------------------------------------------------


def test_the_sweeper_retires_a_container_unused_for_idle_s_unasked(make_store, launcher):
    store = make_store(idle_s=0.4)
    idle = keep(store, launcher, "alice")
    wait_for(lambda: launcher.removed(idle) == ["soon"], "the idle container is retired")
    assert store.status()["kept"] == 0 and store.status()["retired"] == 1


def test_the_sweeper_retires_an_ended_container_as_soon_as_it_looks(make_store, launcher):
    store = make_store(idle_s=60.0)
    ended = keep(store, launcher, "alice")
    launcher.kill(ended)  # an engine restart stops every container
    # Any change in the store wakes the sweeper (else it looks every 5 s): here bob's container.
    bob = keep(store, launcher, "bob")
    wait_for(lambda: launcher.removed(ended) == ["soon"], "the ended container is retired")
    assert kept(store, "bob") == [bob] and store.status()["retired"] == 1


def test_drain_removes_everything_now_and_stops_the_sweeper(make_store, launcher):
    store = make_store()
    alice, bob = keep(store, launcher, "alice"), keep(store, launcher, "bob")
    sweeper = store._sweeper
    assert sweeper is not None and sweeper.is_alive()
    store.drain()
    assert not sweeper.is_alive()
    assert sorted(launcher.removals) == sorted(
        [(alice.container_id, "now"), (bob.container_id, "now")]
    )
    assert alice.closed and bob.closed
    assert store.status()["kept"] == 0
    # A run ending after the drain is not kept either.
    late = launcher.launch(LIMITS)
    store.recycle(late, "alice", served(launcher, late))
    assert launcher.removed(late) == ["soon"]
    assert store.status()["resetting"] == 0


def test_a_drain_just_as_the_sweeper_starts_stops_it_at_once(make_store):
    """The sweeper starts under the store's lock (when a first container is kept); a drain that
    comes before it first looks must not leave it waiting out its 5 s nap."""
    store = make_store(idle_s=60.0)
    with store._cond:  # as when the first container is kept
        store._start_sweeper()
        store._closed = True  # the drain's first step, before the sweeper runs
        store._cond.notify_all()
    sweeper = store._sweeper
    assert sweeper is not None
    sweeper.join(timeout=2)  # it has nothing to wait for: bounded, far above what it needs
    assert not sweeper.is_alive()


def test_drain_waits_for_a_reset_in_progress_and_keeps_nothing(make_store, launcher):
    store = make_store()
    live = launcher.launch(LIMITS)
    store.recycle(live, "alice", served(launcher, live))
    draining = threading.Thread(target=store.drain)
    draining.start()
    wait_for(lambda: store._closed, "the drain has begun")
    assert draining.is_alive()  # it waits for the reset
    launcher.say(live, NONCE, type="ready")
    draining.join(timeout=10)
    assert not draining.is_alive()
    assert launcher.removed(live) == ["soon"] and live.closed
    assert kept(store, "alice") == [] and store.status()["resetting"] == 0


def test_status_reports_the_store(make_store, launcher):
    store = make_store(max_runs=5, idle_s=30.0, max_total=8)
    keep(store, launcher, "alice")
    keep(store, launcher, "bob")
    store.take("bob", LIMITS)
    resetting = launcher.launch(LIMITS)
    store.recycle(resetting, "carol", served(launcher, resetting))
    assert store.status() == {
        "max_runs": 5,
        "idle_s": 30.0,
        "max_kept": 8,
        "kept": 1,
        "users": 1,
        "resetting": 1,
        "served": 1,
        "retired": 0,
        "spares": 0,
    }
