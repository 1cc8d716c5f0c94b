"""The exercise routes, the result cache and the warm pool, through the real server and engine."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from jupyter_exec_ext.sandbox import DockerSandbox, SandboxConfig
from jupyter_exec_ext.server.context import CONTEXT_KEY

from ..conftest import TEST_OWNER, our_containers
from ..grading.notebooks import exercise_notebook, write_notebook
from .conftest import wait_until

docker_needed = pytest.mark.docker
HIDDEN_SECRETS = ("big numbers", "10**12", "1000000000001")
RIGHT = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return a - b\n"


@pytest.fixture
def exercises_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "course"
    write_notebook(folder / "add.ipynb", exercise_notebook(limits={"time_limit": 5}))
    write_notebook(
        folder / "week2" / "square.ipynb",
        exercise_notebook(
            "square",
            tests=[{"name": "four", "test_code": "print(square(2))", "expected_output": "4"}],
            solution="def square(x):\n    return x * x\n",
            starter="def square(x):\n    pass\n",
        ),
    )
    return folder


@pytest.fixture
def extra_config() -> dict:
    """More traits for one test (parametrize this name)."""
    return {}


@pytest.fixture
def exec_ext_config(exercises_dir: Path, extra_config: dict) -> dict:
    return {"exercises_dir": str(exercises_dir), **extra_config}


async def test_list_exercises(api):
    status, body, response = await api("GET", "exercises")
    assert status == 200, body
    assert response.headers["Content-Type"].startswith("application/json")
    assert body == [
        {"id": "add", "title": "Add", "max_score": 4.0},
        {"id": "square", "title": "Square", "max_score": 1.0},
    ]


async def test_exercise_view_has_visible_tests_only(api):
    status, body, _ = await api("GET", "exercises/add")
    assert status == 200, body
    assert body["id"] == "add" and body["starter_code"] == "def add(a, b):\n    pass\n"
    assert [t["name"] for t in body["tests"]] == ["small numbers", "negatives"]
    assert body["hidden_tests"] == 1 and body["max_score"] == 4.0
    # The limits a submission really gets: the exercise's time, the server's other defaults.
    assert body["limits"]["time_limit"] == 5.0 and body["limits"]["memory_limit"] == "256m"
    # 5 s for the code, then three tests of 5 s each (the hidden one too): clients wait that long.
    assert body["grading_time_limit"] == 20.0
    text = json.dumps(body)
    assert "return a + b" not in text
    assert not any(secret in text for secret in HIDDEN_SECRETS)


async def test_unknown_exercise_is_404(api):
    for method, route, body in (
        ("GET", "exercises/nope", None),
        ("POST", "exercises/nope/submit", {"code": RIGHT}),
    ):
        status, answer, _ = await api(method, route, body)
        assert status == 404, answer
        assert answer["message"] == "unknown exercise 'nope'"


async def answer_changes(api, route: str, status: int) -> dict:
    """Asks until the route answers ``status`` (the registry rescans at most once a second)."""
    deadline = time.monotonic() + 15
    while True:
        code, body, _ = await api("GET", route)
        if code == status or time.monotonic() > deadline:
            assert code == status, body
            return body
        await asyncio.sleep(0.2)


async def test_exercises_picked_up_without_a_restart(api, exercises_dir):
    assert (await api("GET", "exercises/late"))[0] == 404
    write_notebook(exercises_dir / "late.ipynb", exercise_notebook("late"))
    assert (await answer_changes(api, "exercises/late", 200))["id"] == "late"


async def test_duplicate_exercise_ids_are_409_without_server_paths(api, exercises_dir):
    write_notebook(exercises_dir / "copy.ipynb", exercise_notebook("square"))
    body = await answer_changes(api, "exercises/square", 409)
    assert "defined twice" in body["message"] and str(exercises_dir) not in body["message"]


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({}, 400, "code is required"),
        ({"code": 5}, 400, "code must be a string, got number"),
        ({"code": RIGHT, "time_limit": 1}, 400, "unknown field 'time_limit'"),
        ({"code": "x" * (64 * 1024 + 1)}, 413, "over the limit"),
        ("not json", 400, "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, 400, "nests JSON arrays or objects too deeply"),
        (
            '{"code": ' + '{"a": ' * 100_000 + "1" + "}" * 100_001,
            400,
            "nests JSON arrays or objects too deeply",
        ),
    ],
)
async def test_bad_submissions_are_named(api, body, status, words):
    code, answer, _ = await api("POST", "exercises/add/submit", body)
    assert code == status, answer
    assert words in answer["message"]


@docker_needed
async def test_submit_wrong_then_right(api, executor_image, no_leaks):
    status, body, _ = await api("POST", "exercises/add/submit", {"code": WRONG})
    assert status == 200, body
    assert body["exercise_id"] == "add" and body["status"] == "ok"
    assert body["score"] == 0 and body["max_score"] == 4
    tests = {t["name"]: t for t in body["tests"]}
    assert tests["small numbers"]["status"] == "failed"
    assert tests["small numbers"]["message"] == "expected '5' but got '-1'"
    assert tests["small numbers"]["expected"] == "5" and tests["small numbers"]["actual"] == "-1\n"
    assert tests["big numbers"] == {
        "name": "big numbers",
        "status": "failed",
        "points": 0.0,
        "max_points": 1.0,
        "hidden": True,
        "message": "hidden test failed",
    }
    assert not any(secret in json.dumps(body) for secret in HIDDEN_SECRETS[1:])

    status, body, _ = await api("POST", "exercises/add/submit", {"code": RIGHT})
    assert status == 200, body
    assert body["score"] == body["max_score"] == 4
    assert all(t["status"] == "passed" for t in body["tests"])
    assert not any(secret in json.dumps(body) for secret in HIDDEN_SECRETS[1:])


@docker_needed
async def test_submit_with_docker_down_is_503_and_the_exercises_still_answer(
    api, settings, swap_sandbox
):
    import docker

    from jupyter_exec_ext.grading import Grader

    unreachable = DockerSandbox(
        SandboxConfig(owner=TEST_OWNER),
        client_factory=lambda: docker.DockerClient(
            base_url="unix:///nonexistent/docker.sock", version="auto"
        ),
    )
    settings[CONTEXT_KEY].grader = Grader(unreachable)
    status, body, _ = await api("POST", "exercises/add/submit", {"code": RIGHT})
    assert status == 503 and body["message"] == "Docker not available"
    status, body, _ = await api("GET", "exercises")
    assert status == 200 and len(body) == 2


# -- the result cache and the warm pool behind the REST API ----------------------------------------


@docker_needed
@pytest.mark.parametrize("extra_config", [{"cache_enabled": True}])
async def test_execute_is_answered_from_the_cache_unless_asked_not_to(
    api, executor_image, no_leaks
):
    code = {"code": "print(sum(range(10)))"}
    first = (await api("POST", "execute", code))[1]
    second = (await api("POST", "execute", code))[1]
    fresh = (await api("POST", "execute", {**code, "use_cache": False}))[1]
    assert [r["stdout"] for r in (first, second, fresh)] == ["45\n"] * 3
    assert (first["cached"], second["cached"], fresh["cached"]) == (False, True, False)
    status, body, _ = await api("GET", "docker/status")
    assert body["docker"]["cache"]["backend"] == "memory" and body["docker"]["cache"]["hits"] == 1


@docker_needed
@pytest.mark.parametrize("extra_config", [{"cache_enabled": True}])
async def test_submissions_are_never_cached(api, executor_image, no_leaks, exercises_dir):
    for _ in range(2):
        status, body, _ = await api("POST", "exercises/add/submit", {"code": RIGHT})
        assert status == 200 and body["score"] == 4
    status, body, _ = await api("GET", "docker/status")
    assert body["docker"]["cache"]["hits"] == 0


@docker_needed
@pytest.mark.parametrize("extra_config", [{"pool_size": 1}])
async def test_warm_pool_serves_runs_and_is_drained(
    api, settings, docker_client, executor_image, no_leaks
):
    sandbox = settings[CONTEXT_KEY].runner.sandbox
    await wait_until(
        lambda: sandbox.pool is not None and sandbox.pool.status()["idle"] == 1,
        "the pool to fill",
        timeout=60,
    )
    status, body, _ = await api("POST", "execute", {"code": "print('warm')", "use_cache": False})
    assert status == 200 and body["stdout"] == "warm\n"
    status, body, _ = await api("GET", "docker/status")
    assert body["docker"]["pool"]["served"] == 1 and body["docker"]["pool"]["size"] == 1
    settings[CONTEXT_KEY].runner.close()  # what stopping the server does
    assert our_containers(docker_client) == []
