"""The submission limit through the real submit route: the submission over the limit is 429 with
Retry-After and a message saying when, and is not graded; other exercises, other users and
requests refused for other reasons are not affected; 0 turns it off."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any, Optional

import docker
import pytest
from jupyter_server.auth import IdentityProvider, User

from jupyter_exec_ext.grading import Grader
from jupyter_exec_ext.sandbox import DockerSandbox, SandboxConfig
from jupyter_exec_ext.server.context import CONTEXT_KEY
from jupyter_exec_ext.server.ratelimit import describe_seconds

from ..conftest import TEST_OWNER
from ..grading.notebooks import exercise_notebook, write_notebook
from .conftest import API

RIGHT = "def add(a, b):\n    return a + b\n"
SQUARE = "def square(x):\n    return x * x\n"


class TokenPerStudent(IdentityProvider):
    """Each student's token names them, as hub or other login would: the server sees two users
    (with the server's own token, every caller is one principal)."""

    students = {"alice-secret": "alice", "bob-secret": "bob"}

    async def get_user(self, handler: Any) -> Optional[User]:
        token = handler.request.headers.get("Authorization", "").removeprefix("token ")
        if token in self.students:
            handler._token_authenticated = True  # what jupyter_server sets for a token user
            return User(username=self.students[token])
        return await super().get_user(handler)


@pytest.fixture
def exercises_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "course"
    write_notebook(folder / "add.ipynb", exercise_notebook(limits={"time_limit": 5}))
    write_notebook(
        folder / "square.ipynb",
        exercise_notebook(
            "square",
            tests=[{"name": "four", "test_code": "print(square(2))", "expected_output": "4"}],
            solution=SQUARE,
            starter="def square(x):\n    pass\n",
        ),
    )
    return folder


@pytest.fixture
def limit() -> dict:
    """The limit traits of one test (parametrize this name)."""
    return {"submit_rate_limit": 2, "submit_rate_window": 600.0}


@pytest.fixture
def exec_ext_config(exercises_dir: Path, limit: dict) -> dict:
    return {"exercises_dir": str(exercises_dir), **limit}


@pytest.fixture
def jp_server_config(jp_server_config):
    jp_server_config.ServerApp.identity_provider_class = TokenPerStudent
    return jp_server_config


@pytest.fixture
def submit(jp_fetch):
    """Submits ``code`` (or a ``raw`` body) to ``exercise`` as ``user``; returns (status, json
    body, response)."""

    async def call(
        exercise: str, code: str = "", *, user: str = "alice", raw: Optional[str] = None
    ) -> tuple[int, Any, Any]:
        body = raw if raw is not None else json.dumps({"code": code})
        response = await jp_fetch(
            *API,
            "exercises",
            exercise,
            "submit",
            method="POST",
            body=body,
            headers={"Authorization": f"token {user}-secret"},
            raise_error=False,
            request_timeout=120,
        )
        return response.code, json.loads(response.body), response

    return call


async def status(jp_fetch) -> dict:
    response = await jp_fetch(
        *API, "docker", "status", headers={"Authorization": "token alice-secret"}
    )
    return json.loads(response.body)


@pytest.mark.docker
async def test_the_submission_over_the_limit_is_429_says_when_and_is_not_graded(
    submit, jp_fetch, scheduler, executor_image, no_leaks
):
    for _ in range(2):
        code, body, _ = await submit("add", RIGHT)
        assert code == 200 and body["score"] == 4, body
    graded = scheduler.snapshot()["completed"]

    code, body, response = await submit("add", RIGHT)
    assert code == 429, body
    retry = response.headers["Retry-After"]
    assert re.fullmatch(r"[0-9]+", retry) and 1 <= int(retry) <= 600
    assert body == {
        "message": f"you can submit 'add' again in {describe_seconds(int(retry))} "
        "(at most 2 submissions per 10 min)",
        "reason": "Too Many Requests",
    }
    assert scheduler.snapshot()["completed"] == graded  # nothing ran
    assert (await status(jp_fetch))["submissions"] == {
        "limit": 2,
        "window_s": 600.0,
        "refused": 1,
        "tracked": 1,
    }


@pytest.mark.docker
@pytest.mark.parametrize("limit", [{"submit_rate_limit": 1}])
async def test_another_exercise_and_another_user_are_not_affected(submit, executor_image, no_leaks):
    assert (await submit("add", RIGHT))[0] == 200
    assert (await submit("add", RIGHT))[0] == 429
    code, body, _ = await submit("square", SQUARE)
    assert code == 200 and body["score"] == 1, body
    code, body, _ = await submit("add", RIGHT, user="bob")
    assert code == 200 and body["score"] == 4, body
    code, body, _ = await submit("add", RIGHT, user="bob")
    assert code == 429 and body["message"].startswith("you can submit 'add' again in "), body


@pytest.mark.docker
@pytest.mark.parametrize("limit", [{"submit_rate_limit": 0, "submit_rate_window": 1.0}])
async def test_zero_turns_the_limit_off(submit, jp_fetch, executor_image, no_leaks):
    for _ in range(3):
        code, body, _ = await submit("square", SQUARE)
        assert code == 200 and body["score"] == 1, body
    assert (await status(jp_fetch))["submissions"]["refused"] == 0


@pytest.mark.docker
@pytest.mark.parametrize("limit", [{"submit_rate_limit": 1}])
async def test_requests_refused_for_another_reason_use_up_nothing(
    submit, settings, jp_fetch, executor_image, no_leaks
):
    # Refused before grading: a bad body, an unknown exercise.
    for _ in range(3):
        assert (await submit("add", raw="not json"))[0] == 400
        assert (await submit("nope", RIGHT))[0] == 404
    # Not graded: the engine is out of reach.
    working = settings[CONTEXT_KEY].grader
    settings[CONTEXT_KEY].grader = Grader(
        DockerSandbox(
            SandboxConfig(owner=TEST_OWNER),
            client_factory=lambda: docker.DockerClient(
                base_url="unix:///nonexistent/docker.sock", version="auto"
            ),
        )
    )
    for _ in range(2):
        code, body, _ = await submit("add", RIGHT)
        assert code == 503 and body["message"] == "Docker not available"
    settings[CONTEXT_KEY].grader = working
    assert (await status(jp_fetch))["submissions"]["tracked"] == 0

    code, body, _ = await submit("add", RIGHT)
    assert code == 200 and body["score"] == 4, body
    assert (await submit("add", RIGHT))[0] == 429


@pytest.mark.docker
@pytest.mark.parametrize("limit", [{"submit_rate_limit": 1}])
async def test_two_submissions_at_once_cannot_both_take_the_last_one(
    submit, executor_image, no_leaks
):
    answers = await asyncio.gather(submit("add", RIGHT), submit("add", RIGHT))
    assert sorted(code for code, _, _ in answers) == [200, 429], answers
