"""The server while its Docker engine is away or frozen: on an engine of the tests' own
(``tests/second_engine.py``), never the system's."""

from __future__ import annotations

import asyncio
import time

import pytest

from jupyter_exec_ext.grading import Grader
from jupyter_exec_ext.server.context import CONTEXT_KEY
from jupyter_exec_ext.server.health import HEALTH_DEADLINE_S, EngineSnapshot

from ..grading.notebooks import exercise_notebook, write_notebook
from ..second_engine import engine, sandbox_on  # noqa: F401 (fixture)

pytestmark = pytest.mark.docker

#: A correctness bound, asserted generously (the server's own deadline is HEALTH_DEADLINE_S): a
#: load balancer's probe gives up after a few seconds and must get its answer before that.
PROBE_PATIENCE_S = 5.0


async def timed_health(api) -> tuple[dict, float]:
    started = time.monotonic()
    status, body, _ = await api("GET", "health", token=False, timeout=120)
    assert status == 200
    return body, time.monotonic() - started


async def test_health_answers_quickly_while_the_engine_is_stopped_or_frozen(
    api, settings, swap_sandbox, engine, executor_image
):
    box = sandbox_on(engine, executor_image)
    swap_sandbox(box)
    try:
        body, _ = await timed_health(api)
        assert body == {"status": "ok"}

        engine.freeze()  # accepts connections, answers nothing: the slowest kind of outage
        settings[
            CONTEXT_KEY
        ].health = EngineSnapshot()  # as if the last answer were older than its 2 s: ask again
        for _ in range(3):
            body, took = await timed_health(api)
            assert body == {"status": "down"}
            assert took < PROBE_PATIENCE_S, f"health took {took:.1f} s with the engine frozen"
        engine.thaw()

        engine.stop()
        settings[CONTEXT_KEY].health = EngineSnapshot()
        body, took = await timed_health(api)
        assert body == {"status": "down"}
        assert took < PROBE_PATIENCE_S, f"health took {took:.1f} s with the engine stopped"

        engine.start()
        deadline = time.monotonic() + 30
        while (await timed_health(api))[0] != {"status": "ok"}:
            assert time.monotonic() < deadline, "health did not come back to ok with the engine"
    finally:
        if engine.frozen:
            engine.thaw()
        box.close()
    assert HEALTH_DEADLINE_S < PROBE_PATIENCE_S


async def test_a_run_cut_short_by_the_engine_answers_so_with_the_output_so_far(
    api, swap_sandbox, engine, executor_image
):
    box = sandbox_on(engine, executor_image, reuse_runs=0)
    swap_sandbox(box)
    code = (
        "print('printed before', flush=True)\n"
        "open('/tmp/printed', 'w').close()\n"
        "import time\ntime.sleep(60)\n"
    )
    try:
        answer = asyncio.ensure_future(api("POST", "execute", {"code": code}))
        deadline = time.monotonic() + 60
        while not await asyncio.to_thread(engine.a_container_has, "/tmp/printed"):
            assert time.monotonic() < deadline and not answer.done(), "the program never printed"
        await asyncio.to_thread(engine.stop)
        status, body, _ = await answer
        assert status == 200, body
        assert body["status"] == "internal_error"
        assert body["message"].startswith("the Docker engine stopped or restarted during the run")
        assert body["stdout"] == "printed before\n"
        await asyncio.to_thread(engine.start)
    finally:
        if engine.process is None:
            await asyncio.to_thread(engine.start)
        await asyncio.to_thread(box.close)


@pytest.fixture
def exec_ext_config(tmp_path):
    folder = tmp_path / "course"
    # One graded submission allowed, by the rate limit and by the exercise's attempts: one the
    # engine cut short must use up neither.
    write_notebook(
        folder / "add.ipynb", exercise_notebook(limits={"time_limit": 20}, max_attempts=1)
    )
    return {"exercises_dir": str(folder), "submit_rate_limit": 1}


async def test_a_submission_cut_short_by_the_engine_is_no_grade_and_says_so(
    api, settings, engine, executor_image
):
    box = sandbox_on(engine, executor_image, reuse_runs=0)
    settings[CONTEXT_KEY].grader = Grader(box)
    code = (
        "print('printed before', flush=True)\n"
        "open('/tmp/printed', 'w').close()\n"
        "import time\ntime.sleep(60)\n"
        "def add(a, b):\n    return a + b\n"
    )
    try:
        answer = asyncio.ensure_future(api("POST", "exercises/add/submit", {"code": code}))
        deadline = time.monotonic() + 60
        while not await asyncio.to_thread(engine.a_container_has, "/tmp/printed"):
            assert time.monotonic() < deadline and not answer.done(), "the program never ran"
        await asyncio.to_thread(engine.stop)
        status, body, _ = await answer
        await asyncio.to_thread(engine.start)
        again, graded, _ = await api(
            "POST",
            "exercises/add/submit",
            {"code": "def add(a, b):\n    return a + b\n"},
            timeout=120,
        )
        listed, record, _ = await api("GET", "submissions")
    finally:
        if engine.process is None:
            await asyncio.to_thread(engine.start)
        await asyncio.to_thread(box.close)
    assert (again, graded.get("score")) == (200, 4.0), (again, graded)
    # The gradebook holds the graded submission only: the cut one was not a grade.
    assert listed == 200 and record["total"] == 1, record
    assert record["submissions"][0]["score"] == 4.0, record
    assert status == 200, body
    assert body["status"] == "internal_error", body
    assert body["message"].startswith("the Docker engine stopped or restarted"), body["message"]
    assert body["score"] == 0 and body["tests"], body
    assert all(t["status"] != "passed" for t in body["tests"]), body["tests"]
    assert body["stdout"] == "printed before\n"
    assert body["submission_id"] is None, body
