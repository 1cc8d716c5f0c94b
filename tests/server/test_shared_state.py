"""The run cap and the submission limit that replicas share in a real Redis (a redis-server of each
test's own): two ``SharedState`` objects stand for two replicas. Counts hold across them, at once
and atomically; a replica that stops renewing its leases stops counting; while Redis is out each
replica counts alone, and goes back to Redis when it answers."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from traitlets import TraitError

from jupyter_exec_ext.server.errors import RateLimitedError
from jupyter_exec_ext.server.ratelimit import SubmissionLimitedError
from jupyter_exec_ext.server.scheduler import RunScheduler
from jupyter_exec_ext.server.service import ExecServiceApp
from jupyter_exec_ext.server.shared_state import (
    SharedRunCap,
    SharedState,
    SharedStateDown,
    SharedSubmissionLimiter,
)

pytestmark = pytest.mark.redis

LEASE_S = 1.0


def replicas(url: str, n: int = 2, **options) -> list[SharedState]:
    # A patient timeout unless the test says otherwise: on a busy machine a slow answer would
    # make a replica count alone, which only the outage test is about.
    options.setdefault("timeout_s", 5.0)
    return [SharedState(url, prefix="test:", lease_s=LEASE_S, **options) for _ in range(n)]


async def eventually(condition, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.05)


def test_the_run_cap_holds_across_replicas(redis_server) -> None:
    async def scenario() -> None:
        a, b = (SharedRunCap(shared, max_per_user=2) for shared in replicas(redis_server.url))
        first, second = await a.acquire("ada"), await b.acquire("ada")
        assert first is not None and second is not None
        assert await a.acquire("ada") is None and await b.acquire("ada") is None
        assert await b.acquire("bob") is not None  # another user is not held back
        await a.release(first)
        assert await b.acquire("ada") is not None

    asyncio.run(scenario())


def test_many_replicas_at_once_admit_exactly_the_cap(redis_server) -> None:
    async def scenario() -> None:
        caps = [SharedRunCap(shared, max_per_user=3) for shared in replicas(redis_server.url, 4)]
        tickets = await asyncio.gather(*[caps[i % 4].acquire("ada") for i in range(40)])
        assert sum(t is not None for t in tickets) == 3

    asyncio.run(scenario())


def test_a_live_replica_keeps_its_runs_counted_and_a_dead_ones_lapse(redis_server) -> None:
    async def scenario() -> None:
        live, dead, other = replicas(redis_server.url, 3)
        held = await SharedRunCap(live, 1).acquire("ada")
        assert held is not None
        assert await SharedRunCap(dead, 1).acquire("bob") is not None
        dead._renewer.cancel()  # the replica is gone: nothing renews bob's run any more
        cap = SharedRunCap(other, 1)
        started = time.monotonic()
        assert await cap.acquire("bob") is None
        await eventually(lambda: cap.acquire("bob"), "the dead replica's run no longer counts")
        assert time.monotonic() - started < LEASE_S + 2  # a lease, and a busy machine's slack
        # Three leases later ada's run, renewed by its live replica, still counts.
        await asyncio.sleep(3 * LEASE_S)
        assert await cap.acquire("ada") is None

    asyncio.run(scenario())


def test_the_scheduler_refuses_a_run_another_replica_holds_the_slot_for(redis_server) -> None:
    a, b = (RunScheduler(2, 1, SharedRunCap(shared, 1)) for shared in replicas(redis_server.url))
    release = threading.Event()

    async def scenario() -> None:
        held = asyncio.ensure_future(a.run("ada", release.wait))
        while a.snapshot()["in_flight"] < 1:
            await asyncio.sleep(0.01)
        with pytest.raises(RateLimitedError, match="you already have 1 run"):
            await b.run("ada", lambda: "never runs")
        release.set()
        assert await held is True
        assert await b.run("ada", lambda: "ran") == "ran"

    try:
        asyncio.run(scenario())
    finally:
        a.shutdown()
        b.shutdown()
    assert b.snapshot()["rate_limited"] == 1 and a.snapshot()["users_with_runs"] == 0


def test_the_submission_limit_holds_across_replicas_with_the_wait(redis_server) -> None:
    async def scenario() -> None:
        a, b = (SharedSubmissionLimiter(shared, 2, 600) for shared in replicas(redis_server.url))
        await a.graded(await a.admit("ada", "add"))
        await b.graded(await b.admit("ada", "add"))
        with pytest.raises(SubmissionLimitedError) as refused:
            await a.admit("ada", "add")
        assert refused.value.status == 429 and 598 <= refused.value.retry_after_s <= 600
        assert "at most 2 submissions per 10 min" in str(refused.value)
        await b.graded(await b.admit("ada", "other"))  # counted per exercise
        await a.graded(await a.admit("bob", "add"))  # and per user
        assert a.snapshot()["refused"] == 1 and a.snapshot()["shared"] is True

    asyncio.run(scenario())


def test_a_submission_not_graded_uses_up_nothing_even_when_its_replica_died(redis_server) -> None:
    async def scenario() -> None:
        live, dead = replicas(redis_server.url)
        limiter = SharedSubmissionLimiter(live, 1, 600)
        await limiter.cancel(await limiter.admit("ada", "add"))  # the sandbox was down
        crashed = SharedSubmissionLimiter(dead, 1, 600)
        await crashed.admit("ada", "add")
        dead._renewer.cancel()  # the replica died while grading it
        with pytest.raises(SubmissionLimitedError):
            await limiter.admit("ada", "add")
        await asyncio.sleep(LEASE_S + 0.2)
        graded = await limiter.admit("ada", "add")
        await limiter.graded(graded)
        # A graded submission counts for the whole window, long after any lease.
        await asyncio.sleep(LEASE_S + 0.2)
        with pytest.raises(SubmissionLimitedError):
            await limiter.admit("ada", "add")

    asyncio.run(scenario())


def test_while_redis_is_out_each_replica_counts_alone_then_shares_again(
    redis_server, caplog
) -> None:
    async def scenario() -> None:
        shared_a, shared_b = replicas(redis_server.url, timeout_s=0.3, retry_s=0.5)
        a, b = SharedRunCap(shared_a, 1), SharedRunCap(shared_b, 1)
        submits = SharedSubmissionLimiter(shared_a, 1, 600)
        held = await a.acquire("ada")
        assert held is not None and held.lease is not None
        redis_server.kill()
        # a still counts ada's run; b, which has none of hers, lets her run there.
        assert await a.acquire("ada") is None
        alone = await b.acquire("ada")
        assert alone is not None and alone.lease is None
        admitted = await submits.admit("ada", "add")
        assert admitted.lease is None
        await submits.graded(admitted)
        with pytest.raises(SubmissionLimitedError):
            await submits.admit("ada", "add")
        await a.release(held)
        await b.release(alone)
        redis_server.start()
        await asyncio.sleep(0.6)  # retry_s
        await eventually(lambda: _shared_ticket(a, "bob"), "the replica shares its counts again")
        assert await b.acquire("bob") is None

    asyncio.run(scenario())
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        "each replica counts run caps and submission limits on its own" in m for m in messages
    )
    assert any("answers again" in m for m in messages)


async def _shared_ticket(cap: SharedRunCap, user: str) -> bool:
    ticket = await cap.acquire(user)
    if ticket is not None and ticket.lease is None:
        await cap.release(ticket)
        return False
    return ticket is not None


def test_the_service_builds_shared_counters_only_when_told_to(redis_server) -> None:
    app = ExecServiceApp(shared_state_url=redis_server.url, shared_state_prefix="svc:")
    cap, limiter = app.build_limits(2, 5, 60.0)
    assert isinstance(cap, SharedRunCap) and isinstance(limiter, SharedSubmissionLimiter)
    cap, limiter = ExecServiceApp().build_limits(2, 5, 60.0)
    assert cap is None and type(limiter).__name__ == "SubmissionRateLimiter"
    with pytest.raises(
        TraitError, match="ExecServiceApp.shared_state_url 'http://x' is not usable"
    ):
        ExecServiceApp(shared_state_url="http://x").build_limits(2, 5, 60.0)
    with pytest.raises(TraitError, match="shared_state_lease must be at least 1 second"):
        ExecServiceApp(shared_state_lease=0.1)


def test_a_cancel_the_redis_client_turns_into_an_error_still_ends_the_renewer() -> None:
    """A cancel that lands in the Redis client's read can come back as a connection error; the
    renewer must end anyway, or the event loop holding it never closes (a server's shutdown)."""
    shared = SharedState("redis://127.0.0.1:1", prefix="test:", lease_s=0.03)
    calls = []

    async def script(name, keys, args):  # Redis answers slowly, and loses the cancel
        calls.append(name)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            raise SharedStateDown("connection closed") from None

    shared.script = script

    async def scenario() -> None:
        shared.hold("k", "m")
        while not calls:
            await asyncio.sleep(0.01)
        renewer = shared._renewer
        renewer.cancel()
        await asyncio.wait_for(asyncio.shield(renewer), 5)  # ends, rather than renews forever
        assert calls == ["renew"]
        await shared.redis.aclose()

    asyncio.run(scenario())
