"""Through the real server: a submission is graded in its student's own reset container, which
ends with the grading (tests/grading/test_own_container.py attacks the reset behind it)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from ..grading.notebooks import exercise_notebook, write_notebook

pytestmark = pytest.mark.docker

#: Prints the id of the container it runs in (as tests/sandbox/test_reuse.py does).
WHERE = (
    "print(open('/proc/self/cgroup').read().strip().split('/')[-1].replace('docker-', '')[:12])\n"
)
RIGHT = "def add(a, b):\n    return a + b\n"


@pytest.fixture
def exec_ext_config(tmp_path: Path) -> dict:
    write_notebook(tmp_path / "course" / "add.ipynb", exercise_notebook(limits={"time_limit": 5}))
    return {"exercises_dir": str(tmp_path / "course")}


async def kept(api) -> int:
    return (await api("GET", "docker/status"))[1]["docker"]["reuse"]["kept"]


async def wait_kept(api, count: int) -> None:
    deadline = time.monotonic() + 15
    while await kept(api) != count:
        assert time.monotonic() < deadline, "the container was not kept for the next run"
        await asyncio.sleep(0.05)


async def test_a_submission_is_graded_in_the_students_own_container_which_then_ends(api, no_leaks):
    status, ran, _ = await api("POST", "execute", {"code": WHERE, "use_cache": False})
    assert status == 200 and ran["status"] == "ok", ran
    await wait_kept(api, 1)
    status, graded, _ = await api("POST", "exercises/add/submit", {"code": WHERE + RIGHT})
    assert status == 200 and graded["score"] == graded["max_score"], graded
    assert graded["stdout"] == ran["stdout"], "not graded in the student's own container"
    assert await kept(api) == 0  # never kept after a grading
    status, again, _ = await api("POST", "execute", {"code": WHERE, "use_cache": False})
    assert status == 200 and again["stdout"] != ran["stdout"]
