"""The warm pool against the real engine: refill, discard, drain, no leaks, same limits, isolation."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from jupyter_exec_ext.sandbox import DockerSandbox, ExecutionRequest, Limits, SandboxConfig, Status

from ..conftest import TEST_OWNER, our_containers

pytestmark = pytest.mark.docker


def wait_for(predicate, what, seconds=60.0):
    """Polls until ``predicate()`` holds; a bounded wait, not a timing assertion."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"gave up waiting for {what}")


@pytest.fixture
def pooled(executor_image, no_leaks):
    box = DockerSandbox(SandboxConfig(image=executor_image, owner=TEST_OWNER))
    box.start_pool(2)
    wait_for(lambda: box.pool.status()["idle"] == 2, "the pool to fill")
    yield box
    box.close()


def run(box, code, **limits):
    return box.run(ExecutionRequest(code=code, limits=Limits.from_mapping(limits)))


def test_pooled_run_is_served_and_the_pool_refills(pooled):
    result = run(pooled, "print('warm')")
    assert (result.status, result.stdout) == (Status.OK, "warm\n")
    assert pooled.pool.status()["served"] == 1
    wait_for(lambda: pooled.pool.status()["idle"] == 2, "the pool to refill")
    assert pooled.pool.status()["created"] >= 3


def test_a_dead_pooled_container_is_discarded_never_handed_out(pooled, docker_client):
    idle_ids = [live.container_id for live in pooled.pool.waiting()]
    for cid in idle_ids:
        docker_client.api.kill(cid)
    wait_for(
        lambda: all(
            not live.alive() for live in pooled.pool.waiting() if live.container_id in idle_ids
        ),
        "the kills to be seen",
    )
    result = run(pooled, "print('still answered')")
    assert (result.status, result.stdout) == (Status.OK, "still answered\n")
    assert pooled.pool.status()["discarded"] >= 1


def test_runs_with_other_limits_start_cold(pooled):
    result = run(pooled, "print('cold')", memory_limit="128m")
    assert result.stdout == "cold\n" and result.limits.memory_mb == 128
    assert pooled.pool.status()["served"] == 0


def test_drain_on_shutdown_leaves_nothing(executor_image, docker_client, no_leaks):
    box = DockerSandbox(SandboxConfig(image=executor_image, owner=TEST_OWNER))
    box.start_pool(3)
    wait_for(lambda: box.pool.status()["idle"] == 3, "the pool to fill")
    assert len(our_containers(docker_client)) >= 3
    box.close()
    assert our_containers(docker_client) == []


LIMITS_PROBE = (
    "import os, resource\n"
    "print('nofile', resource.getrlimit(resource.RLIMIT_NOFILE))\n"
    "print('core', resource.getrlimit(resource.RLIMIT_CORE))\n"
    "print('fsize', resource.getrlimit(resource.RLIMIT_FSIZE))\n"
    "print('cpu', resource.getrlimit(resource.RLIMIT_CPU))\n"
    "for p in ('memory/memory.limit_in_bytes', 'memory.max', 'pids/pids.max', 'pids.max',\n"
    "          'cpu/cpu.cfs_quota_us', 'cpu.max'):\n"
    "    try:\n"
    "        print(p, open('/sys/fs/cgroup/' + p).read().strip())\n"
    "    except OSError:\n"
    "        pass\n"
    "print('uid', os.getuid(), 'caps', [l for l in open('/proc/self/status') if l.startswith('CapEff')])\n"
    "print('ro', os.statvfs('/').f_flag & os.ST_RDONLY)\n"
)


def test_pooled_run_has_exactly_the_limits_of_a_cold_run(pooled):
    warm = run(pooled, LIMITS_PROBE)
    assert pooled.pool.status()["served"] == 1
    cold_box = DockerSandbox(SandboxConfig(image=pooled.config.image, owner=TEST_OWNER))
    try:
        cold = run(cold_box, LIMITS_PROBE)
    finally:
        cold_box.close()
    assert warm.status is Status.OK and cold.status is Status.OK
    assert warm.stdout == cold.stdout
    assert (
        "memory/memory.limit_in_bytes 268435456" in warm.stdout
        or "memory.max 268435456" in warm.stdout
    )


def test_no_state_survives_from_one_run_to_the_next(pooled):
    first = run(
        pooled,
        (
            "import os, subprocess\n"
            "open('/tmp/left-behind', 'w').write('secret')\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    import time\n"
            "    time.sleep(60)\n"
            "print('planted')\n"
        ),
    )
    assert first.stdout == "planted\n"
    second = run(
        pooled,
        (
            "import os\n"
            "print(os.path.exists('/tmp/left-behind'))\n"
            "mine = [p for p in os.listdir('/proc') if p.isdigit() and\n"
            "        open(f'/proc/{p}/status').read().split('Uid:')[1].split()[0] == str(os.getuid())]\n"
            "print(len(mine))\n"
        ),
    )
    assert pooled.pool.status()["served"] == 2
    lines = second.stdout.splitlines()
    assert lines[0] == "False"
    assert int(lines[1]) == 1  # of the student's uid, only this program: nothing of the first run


def test_no_leaks_after_200_pooled_runs(executor_image, docker_client, no_leaks):
    box = DockerSandbox(SandboxConfig(image=executor_image, owner=TEST_OWNER))
    box.start_pool(4)
    try:
        with ThreadPoolExecutor(max_workers=4) as workers:
            results = list(workers.map(lambda i: run(box, f"print({i} * {i})"), range(200)))
        assert [r.stdout for r in results] == [f"{i * i}\n" for i in range(200)]
        assert all(r.status is Status.OK for r in results)
        assert box.pool.status()["served"] > 0
    finally:
        box.close()
    assert our_containers(docker_client) == []


def test_ended_runs_wait_for_removal_while_runs_are_in_flight_then_go(
    executor_image, docker_client, no_leaks
):
    """During a busy moment an ended run's container is removed later, never reused, and with
    nothing of its program still running; once no run is in flight, it goes."""
    box = DockerSandbox(SandboxConfig(image=executor_image, owner=TEST_OWNER, reuse_runs=0))
    try:
        box.engine.begin_run()  # as if another run were in flight for the whole test
        left_behind = run(
            box,
            "import subprocess, sys\n"
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True)\n"
            "print(open('/proc/self/cgroup').read().strip().split('/')[-1][:12])\n",
        )
        assert left_behind.status is Status.OK, left_behind.stderr
        cid = left_behind.stdout.strip()
        waiting = box.engine.waiting_removal()
        assert [container_id[:12] for container_id in waiting] == [cid]
        top = docker_client.api.top(waiting[0])
        commands = [row[-1] for row in top["Processes"]]
        assert not any("sleep(600)" in c for c in commands), commands  # the program's are gone
        assert run(box, "print(2)").stdout == "2\n"  # another run gets another container
        assert len(box.engine.waiting_removal()) == 2
        box.engine.end_run()
        wait_for(lambda: not box.engine.waiting_removal(), "the waiting containers to be removed")
        wait_for(lambda: not our_containers(docker_client), "their removal by the engine")
    finally:
        box.close()


def test_a_process_that_ends_without_closing_the_sandbox_leaves_nothing(
    executor_image, docker_client, no_leaks
):
    script = (
        "from jupyter_exec_ext.sandbox import DockerSandbox, ExecutionRequest, SandboxConfig\n"
        f"box = DockerSandbox(SandboxConfig(image={executor_image!r}, owner={TEST_OWNER!r}))\n"
        "box.engine.begin_run()  # another run in flight: the container waits for its removal\n"
        "print(box.run(ExecutionRequest(code='print(1)')).stdout, end='')\n"
        "print(len(box.engine.waiting_removal()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.stdout == "1\n1\n", done.stderr
    assert our_containers(docker_client) == []


def test_misses_grow_the_pool_to_its_maximum_and_idleness_shrinks_it_back(
    executor_image, no_leaks, docker_client
):
    box = DockerSandbox(SandboxConfig(image=executor_image, owner=TEST_OWNER))
    try:
        box.start_pool(1, max_size=3, shrink_after_s=3.0)
        wait_for(lambda: box.pool.status()["idle"] == 1, "the pool to fill")
        with ThreadPoolExecutor(max_workers=5) as burst:
            results = list(burst.map(lambda i: run(box, f"print({i})"), range(5)))
        assert [r.stdout for r in results] == [f"{i}\n" for i in range(5)]
        status = box.pool.status()
        assert status["misses"] >= 2 and status["grown"] == 2, status
        # Grown to its maximum and filled to it, never beyond …
        wait_for(lambda: box.pool.status()["idle"] == 3, "the grown pool to fill")
        # … then, with no miss for a while, back to its configured size, its containers removed.
        wait_for(
            lambda: box.pool.status()["size"] == 1 and box.pool.status()["idle"] == 1,
            "the pool to shrink",
        )
        assert box.pool.status()["shrunk"] == 2  # 3 → 2 (half of the growth) → 1
        box.flush()
        wait_for(lambda: len(our_containers(docker_client)) == 1, "the shed containers to go")
    finally:
        box.close()


def test_the_memory_budget_caps_the_growth_and_a_fixed_pool_never_grows(executor_image, no_leaks):
    from jupyter_exec_ext.sandbox.pool import CONTAINER_MB

    box = DockerSandbox(SandboxConfig(image=executor_image, owner=TEST_OWNER))
    try:
        box.start_pool(1, max_size=10, memory_budget_mb=2 * CONTAINER_MB + 5)
        assert box.pool.status()["max_size"] == 2
        wait_for(lambda: box.pool.status()["idle"] == 1, "the pool to fill")
        with ThreadPoolExecutor(max_workers=4) as burst:
            list(burst.map(lambda i: run(box, "print(1)"), range(4)))
        assert box.pool.status()["size"] == 2
        wait_for(lambda: box.pool.status()["idle"] == 2, "the pool to fill to its budget")
        box.start_pool(1)  # no max_size: a fixed size
        wait_for(lambda: box.pool.status()["idle"] == 1, "the fixed pool to fill")
        with ThreadPoolExecutor(max_workers=4) as burst:
            list(burst.map(lambda i: run(box, "print(1)"), range(4)))
        assert box.pool.status()["size"] == box.pool.status()["max_size"] == 1
    finally:
        box.close()
