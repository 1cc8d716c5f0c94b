"""The gradebook's database killed in the middle of a submission: the student still gets the
result, reads of the gradebook answer 503 meanwhile, and once PostgreSQL is back every record
lands. A real server, the real engine and a real PostgreSQL cluster of the test's own."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from jupyter_exec_ext.server.context import CONTEXT_KEY

from ..grading.notebooks import exercise_notebook, write_notebook
from .conftest import wait_until

pytestmark = [pytest.mark.docker, pytest.mark.postgres]

SLOW_RIGHT = "import time\ntime.sleep(3)\n\ndef add(a, b):\n    return a + b\n"
RIGHT = "def add(a, b):\n    return a + b\n"


@pytest.fixture
def exec_ext_config(tmp_path: Path, postgres_server) -> dict:
    folder = tmp_path / "course"
    write_notebook(folder / "add.ipynb", exercise_notebook(limits={"time_limit": 10}))
    return {
        "exercises_dir": str(folder),
        "db_url": postgres_server.new_database(),
        "instructor": True,
    }


async def test_a_submission_while_postgresql_dies_is_answered_and_recorded_after(
    api, settings, postgres_server, executor_image, no_leaks, caplog
):
    caplog.set_level(logging.INFO, logger="jupyter_exec_ext.gradebook")
    status, first, _ = await api("POST", "exercises/add/submit", {"code": RIGHT})
    assert status == 200 and first["submission_id"] is not None

    # Killed while the next submission is being graded in the sandbox.
    slow = asyncio.ensure_future(api("POST", "exercises/add/submit", {"code": SLOW_RIGHT}))
    await wait_until(
        lambda: settings[CONTEXT_KEY].scheduler.snapshot()["in_flight"] >= 1,
        "the slow submission started",
    )
    await asyncio.get_running_loop().run_in_executor(None, postgres_server.kill)
    status, during, _ = await slow
    assert status == 200, during
    assert during["score"] == during["max_score"] == 4.0 and during["submission_id"] is None
    # And one more while it is down.
    status, after, _ = await api("POST", "exercises/add/submit", {"code": RIGHT})
    assert status == 200 and after["score"] == 4.0 and after["submission_id"] is None
    assert len(settings[CONTEXT_KEY].gradebook.backlog) == 2

    status, body, _ = await api("GET", "submissions")
    assert status == 503 and body["reason"] == "gradebook_unavailable", body
    assert "kept in the backlog and retried" in caplog.text

    await asyncio.get_running_loop().run_in_executor(None, postgres_server.start)
    await wait_until(
        lambda: not settings[CONTEXT_KEY].gradebook.backlog, "the backlog was written", timeout=90
    )
    status, page, _ = await api("GET", "submissions")
    assert status == 200 and page["total"] == 3, page
    assert [s["score"] for s in page["submissions"]] == [4.0, 4.0, 4.0]
    status, book, _ = await api("GET", "gradebook")
    assert book["rows"][0]["attempts"] == 3
