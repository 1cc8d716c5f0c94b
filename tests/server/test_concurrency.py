"""Runs never block the event loop; the global cap queues, the per-user cap answers 429.

Each test waits for a state (a run admitted, in flight, queued), never for a fixed time.
"""

from __future__ import annotations

import asyncio

import pytest

from .conftest import wait_until

pytestmark = pytest.mark.docker

SLEEPER = "import time\nprint('started', flush=True)\ntime.sleep(60)\n"
#: How long a SLEEPER run holds its slot: the window in which a test checks what happens meanwhile.
#: Generous, so a loaded machine (other suites share the engine) cannot close it early.
HOLD_S = 5


@pytest.mark.parametrize("exec_ext_config", [{"max_runs_per_user": 20, "max_concurrent_runs": 4}])
async def test_twenty_concurrent_executes_are_all_answered_correctly(
    api, scheduler, executor_image, no_leaks
):
    async def square(n: int):
        return await api(
            "POST", "execute", {"code": "n = int(input())\nprint(n * n)", "stdin": str(n)}
        )

    replies = await asyncio.gather(*(square(n) for n in range(20)))
    for n, (status, body, _) in enumerate(replies):
        assert status == 200, body
        assert (body["status"], body["stdout"]) == ("ok", f"{n * n}\n")
    runs = scheduler.snapshot()
    assert runs["by_status"] == {"ok": 20} and runs["in_flight"] == runs["queued"] == 0


async def test_health_is_answered_while_a_long_run_is_in_flight(
    api, scheduler, executor_image, no_leaks
):
    run = asyncio.ensure_future(api("POST", "execute", {"code": SLEEPER, "time_limit": HOLD_S}))
    await wait_until(lambda: scheduler.snapshot()["in_flight"] == 1, "the run is in flight")

    status, body, _ = await api("GET", "health")
    assert status == 200 and body == {"status": "ok"}
    status, body, _ = await api("GET", "docker/status")
    assert status == 200 and body["runs"]["in_flight"] == 1
    # Both answers came while the run was still going: it was not on the event loop.
    assert not run.done() and scheduler.snapshot()["in_flight"] == 1

    status, body, _ = await run
    assert status == 200 and body["status"] == "timeout" and body["stdout"] == "started\n"


@pytest.mark.parametrize("exec_ext_config", [{"max_runs_per_user": 1}])
async def test_a_user_over_the_cap_gets_429_and_nothing_runs(
    api, scheduler, executor_image, no_leaks, caplog
):
    first = asyncio.ensure_future(api("POST", "execute", {"code": SLEEPER, "time_limit": HOLD_S}))
    await wait_until(
        lambda: scheduler.snapshot()["users_with_runs"] == 1, "the first run is admitted"
    )

    status, reply, response = await api("POST", "execute", {"code": "print('second')"})
    assert status == 429 and response.headers["Retry-After"] == "1"
    assert reply["message"] == "you already have 1 run(s) in progress; wait for one to finish"
    assert any(
        "refused a run" in r.getMessage()
        for r in caplog.records
        if r.name == "jupyter_exec_ext.security"
    )

    status, body, _ = await first
    assert body["status"] == "timeout"
    # The cap counts runs in progress only: once the first ended, the user may run again.
    status, body, _ = await api("POST", "execute", {"code": "print('third')"})
    assert status == 200 and body["stdout"] == "third\n"
    runs = scheduler.snapshot()
    assert runs["by_status"] == {"timeout": 1, "ok": 1} and runs["rate_limited"] == 1


@pytest.mark.parametrize("exec_ext_config", [{"max_concurrent_runs": 1, "max_runs_per_user": 5}])
async def test_runs_over_the_global_cap_wait_in_the_queue(api, scheduler, executor_image, no_leaks):
    first = asyncio.ensure_future(api("POST", "execute", {"code": SLEEPER, "time_limit": HOLD_S}))
    await wait_until(lambda: scheduler.snapshot()["in_flight"] == 1, "the first run is in flight")
    second = asyncio.ensure_future(api("POST", "execute", {"code": "print('queued one')"}))
    await wait_until(lambda: scheduler.snapshot()["queued"] == 1, "the second run is queued")

    status, body, _ = await api("GET", "health")
    assert body == {"status": "degraded"}  # every slot busy, runs waiting

    (_, one, _), (_, two, _) = await asyncio.gather(first, second)
    assert one["status"] == "timeout" and two["stdout"] == "queued one\n"
    status, body, _ = await api("GET", "health")
    assert body == {"status": "ok"}
