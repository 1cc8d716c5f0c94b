"""The sandbox when its Docker engine stops or restarts under it: on an engine of the tests' own
(``tests/second_engine.py``), never the system's."""

from __future__ import annotations

import threading
import time

import pytest

from jupyter_exec_ext.sandbox import ExecutionRequest, Limits, Status

from ..second_engine import SecondEngine, engine, our_containers_on, sandbox_on  # noqa: F401 (fixture)

pytestmark = pytest.mark.docker


def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    """Waits for a state, never a fixed time: ``timeout`` only ends a test that would hang."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)


def test_an_engine_restart_leaves_no_container_behind(engine, executor_image):
    box = sandbox_on(engine, executor_image)
    try:
        box.start_pool(2)
        wait_for(lambda: box.pool.status()["idle"] == 2, "the pool is full")
        first = box.run(ExecutionRequest(code="print('kept')", reuse_key="alice"))
        assert first.status is Status.OK and first.stdout == "kept\n"
        wait_for(lambda: box.reuse.status()["kept"] == 1, "alice's container is kept")
        wait_for(lambda: box.pool.status()["idle"] == 2, "the pool is full again")
        before = our_containers_on(engine)
        assert len(before) == 3  # two pooled, one kept

        engine.stop()  # stops every container, as a restart or an upgrade of the engine does
        # The sandbox notices the dead containers while the engine is away (so removing them
        # fails then) ...
        wait_for(
            lambda: box.pool.status()["discarded"] >= 2 and box.reuse.status()["retired"] >= 1,
            "the sandbox has found its pooled and kept containers dead",
        )
        engine.start()

        # ... and removes them once it is back, while it runs; the pool fills again with live ones.
        wait_for(lambda: not our_containers_on(engine) & before, "the dead containers are removed")
        wait_for(lambda: box.pool.status()["idle"] == 2, "the pool is full after the restart")
        again = box.run(ExecutionRequest(code="print('after')", reuse_key="alice"))
        assert again.status is Status.OK and again.stdout == "after\n"
    finally:
        box.close()
    assert our_containers_on(engine) == set()


def test_a_run_cut_short_by_the_engine_says_so_with_the_output_so_far(engine, executor_image):
    box = sandbox_on(engine, executor_image, reuse_runs=0)
    code = (
        "print('printed before', flush=True)\n"
        "open('/tmp/printed', 'w').close()\n"
        "import time\ntime.sleep(60)\nprint('never')\n"
    )
    answers = []
    run = threading.Thread(
        target=lambda: answers.append(
            box.run(ExecutionRequest(code=code, limits=Limits.from_mapping({"time_limit": 90})))
        )
    )
    try:
        run.start()
        wait_for(lambda: engine.a_container_has("/tmp/printed"), "the program printed")
        engine.stop()
        run.join(timeout=60)
        assert answers, "the run did not answer after the engine went away"
        result = answers[0]
        assert result.status is Status.INTERNAL_ERROR
        assert result.message.startswith("the Docker engine stopped or restarted during the run")
        assert result.stdout == "printed before\n"
        engine.start()
    finally:
        run.join(timeout=60)
        if engine.process is None:
            engine.start()
        box.close()  # removes the container the stopped engine could not remove then
    assert our_containers_on(engine) == set()
