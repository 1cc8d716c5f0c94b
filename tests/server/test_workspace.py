"""Student mode and instructor mode of a real server, as command 1 runs it.

Student mode: the root directory is a students' workspace of released copies, the authoritative
notebooks lie outside it, and no Jupyter API hands out a reference solution or a hidden test.
Instructor mode: the authoring routes validate (in the real sandbox), preview and release.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import quote

import pytest

from jupyter_exec_ext.grading import load_exercise, update_workspace

from ..grading.notebooks import exercise_notebook, write_notebook

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def exercises_dir(tmp_path: Path) -> Path:
    """A copy of the sample course beside the server's root directory (jp_root_dir), as
    exercises/ lies beside workspace/ in the repository."""
    folder = tmp_path / "exercises"
    shutil.copytree(REPO / "exercises", folder)
    return folder


@pytest.fixture
def instructor() -> bool:
    return False


@pytest.fixture
def exercises_inside_root() -> bool:
    return False


@pytest.fixture
def exec_ext_config(
    exercises_dir: Path, jp_root_dir: Path, instructor: bool, exercises_inside_root: bool
) -> dict:
    if exercises_inside_root:  # the old command 1: the root holds the exercise directory
        shutil.copytree(exercises_dir, jp_root_dir / "exercises")
        return {"exercises_dir": str(jp_root_dir / "exercises")}
    if instructor:  # the root is the exercise directory itself
        return {
            "exercises_dir": str(jp_root_dir),
            "instructor": True,
            "workspace_dir": str(jp_root_dir.parent / "workspace"),
        }
    changes = update_workspace(exercises_dir, jp_root_dir)  # what command 1 does before it starts
    assert {c.action for c in changes} == {"added"}, changes
    return {"exercises_dir": str(exercises_dir), "workspace_dir": str(jp_root_dir)}


def secrets_of(exercises_dir: Path) -> dict[str, list[str]]:
    """Per exercise, text only its reference solution, its hidden tests or its wrong solutions
    contain (and nothing a student may see of any exercise)."""
    found, public = {}, ""
    for path in sorted(exercises_dir.glob("*.ipynb")):
        exercise = load_exercise(path)
        nb = json.loads(path.read_text())
        public += "".join(
            "".join(c["source"])
            for c in nb["cells"]
            if c["metadata"].get("jupyter_exec", {}).get("role") != "solution"
        )
        public += json.dumps([t.public_dict() for t in exercise.visible_tests])
        public += "".join(
            t.test_code for t in exercise.visible_tests
        )  # a hidden test may share a line
        lines = [line.strip() for line in (exercise.solution_code or "").splitlines()]
        for test in exercise.tests:
            if test.hidden:
                lines += [test.name] + [line.strip() for line in test.test_code.splitlines()]
                lines += [test.expected_output or ""]
        for wrong in exercise.wrong_solutions:
            lines += [wrong.name, wrong.reason] + [line.strip() for line in wrong.code.splitlines()]
        found[exercise.id] = lines
    found = {
        i: sorted({s for s in lines if len(s) >= 12 and s not in public})
        for i, lines in found.items()
    }
    assert all(found.values()), f"nothing secret to look for in {found}"
    return found


async def get(jp_fetch, *parts: str, **params):
    response = await jp_fetch(*parts, params=params, raise_error=False)
    return response.code, response.body.decode("utf-8", "replace")


async def test_no_jupyter_api_reaches_a_solution_or_a_hidden_test(
    jp_fetch, api, exercises_dir, jp_root_dir
):
    secrets = secrets_of(exercises_dir)
    assert len(secrets) == len(list(exercises_dir.glob("*.ipynb"))) >= 12
    for path in exercises_dir.glob("*.ipynb"):  # the search finds them where they are
        text = path.read_text()
        assert all(
            s in text or json.dumps(s)[1:-1] in text for s in secrets[load_exercise(path).id]
        )
    status, listing = await get(jp_fetch, "api", "contents")
    assert status == 200
    listed = sorted(item["name"] for item in json.loads(listing)["content"])
    names = [n for n in listed if n.endswith(".ipynb")]
    assert names == sorted(p.name for p in exercises_dir.glob("*.ipynb"))  # the copies
    data_files = sorted(
        f for p in exercises_dir.glob("*.ipynb") for f in load_exercise(p).data_files
    )
    assert [
        n for n in listed if not n.endswith(".ipynb")
    ] == data_files  # and their data, nothing else

    seen = []
    for name in names:
        for parts, params in [
            (("api", "contents", name), {}),
            (("api", "contents", name), {"format": "text", "type": "file"}),
            (("files", name), {}),
            (("nbconvert", "script", name), {}),
            (("api", "contents", name, "checkpoints"), {}),
        ]:
            status, body = await get(jp_fetch, *parts, **params)
            seen.append((parts[0], status))
            for exercise_id, texts in secrets.items():
                leaked = [s for s in texts if s in body or json.dumps(s)[1:-1] in body]
                assert not leaked, f"{'/'.join(parts)} shows secrets of {exercise_id}: {leaked}"
        assert (
            json.loads((await get(jp_fetch, "api", "contents", name))[1])["content"]["metadata"][
                "jupyter_exec"
            ]["student_copy"]
            is True
        )
    assert {s for route, s in seen if route in ("api", "files")} == {200}

    # The exercise routes show the student's view only.
    for exercise_id, texts in secrets.items():
        status, body, _ = await api("GET", f"exercises/{exercise_id}")
        assert status == 200 and not [s for s in texts if s in json.dumps(body)]

    # The authoritative notebooks beside the root are out of reach, however the path is spelled.
    target = "01-strings-palindrome.ipynb"
    for spelled in (
        f"../exercises/{target}",
        f"..%2Fexercises%2F{target}",
        quote(str(exercises_dir / target)),
    ):
        for route in ("api/contents/", "files/"):
            response = await jp_fetch(*(route + spelled).split("/"), raise_error=False)
            assert response.code in (400, 403, 404), (route + spelled, response.code)
            assert not any(s in response.body.decode() for s in secrets["strings-palindrome"])


async def test_authoring_is_refused_in_student_mode(api):

    status, body, _ = await api("GET", "authoring/mode")
    assert (status, body) == (200, {"mode": "student", "instructor": False})
    for method, route in (
        ("GET", "authoring/schema"),
        ("POST", "authoring/validate"),
        ("POST", "authoring/preview"),
        ("POST", "authoring/release"),
    ):
        status, body, _ = await api(
            method, route, {"path": "01-strings-palindrome.ipynb"} if method == "POST" else None
        )
        assert status == 403 and "instructor mode" in body["message"], (route, body)


@pytest.mark.docker
async def test_student_copy_is_graded_against_the_authoritative_tests(
    api, jp_root_dir, executor_image, no_leaks
):
    """Submitting the starter of a student copy: the hidden tests count, and it fails them."""
    copy = load_exercise(jp_root_dir / "01-strings-palindrome.ipynb")
    status, body, _ = await api(
        "POST", "exercises/strings-palindrome/submit", {"code": copy.starter_code}
    )
    assert status == 200, body
    assert body["max_score"] == 7 and body["score"] < body["max_score"]
    assert sum(t["hidden"] for t in body["tests"]) == 3


@pytest.mark.parametrize("instructor", [True])
@pytest.mark.docker
async def test_instructor_validates_previews_and_releases(
    api, jp_root_dir, executor_image, no_leaks
):
    write_notebook(
        jp_root_dir / "week1" / "add.ipynb",
        exercise_notebook(
            "add",
            wrong_solutions=[
                {
                    "name": "small numbers only",
                    "code": "def add(a, b):\n    return a + b if abs(a) < 100 else 0\n",
                }
            ],
        ),
    )
    write_notebook(
        jp_root_dir / "wrong.ipynb",
        exercise_notebook("wrong", solution="def add(a, b):\n    return a - b\n"),
    )
    workspace = jp_root_dir.parent / "workspace"
    assert (await api("GET", "authoring/mode"))[:2] == (
        200,
        {"mode": "instructor", "instructor": True},
    )
    status, body, _ = await api("GET", "authoring/schema")
    assert status == 200 and body["required"] == ["exercise_id", "tests"]

    # Validate: every test of the reference solution, hidden ones in full, and the starter's score.
    status, body, _ = await api("POST", "authoring/validate", {"path": "week1/add.ipynb"})
    assert status == 200, body
    assert body["ok"] is True and body["problem"] == ""
    assert [(t["name"], t["status"]) for t in body["solution"]["tests"]] == [
        ("small numbers", "passed"),
        ("negatives", "passed"),
        ("big numbers", "passed"),
    ]
    hidden = body["solution"]["tests"][2]
    assert hidden["hidden"] and hidden["expected"] == "1000000000001"
    assert body["starter"]["score"] == 0 and body["solution"]["score"] == 4
    assert [
        (w["name"], w["score"], w["caught_by_visible"], [t["name"] for t in w["caught_by"]])
        for w in body["wrong_solutions"]
    ] == [("small numbers only", 3, False, ["big numbers"])]
    status, body, _ = await api("POST", "authoring/validate", {"path": "wrong.ipynb"})
    assert status == 200 and body["ok"] is False
    assert body["problem"] == "the reference solution fails 3 of 3 tests (status ok)"
    assert body["solution"]["tests"][2]["actual"].strip() == "999999999999"

    # Preview: the student copy, without the solution and the hidden test.
    status, body, _ = await api("POST", "authoring/preview", {"path": "week1/add.ipynb"})
    assert status == 200
    text = json.dumps(body["notebook"])
    assert "return a + b" not in text and "big numbers" not in text and "small numbers" in text
    assert "wrong_solutions" not in text and "small numbers only" not in text
    assert [c["metadata"]["jupyter_exec"]["role"] for c in body["notebook"]["cells"]] == [
        "prompt",
        "student",
    ]

    # Release: into the students' workspace, at the same place; again: nothing to do.
    status, body, _ = await api("POST", "authoring/release", {"path": "week1/add.ipynb"})
    assert (status, body) == (200, {"action": "added", "path": "week1/add.ipynb"})
    assert load_exercise(workspace / "week1" / "add.ipynb").student_copy
    status, body, _ = await api("POST", "authoring/release", {"path": "week1/add.ipynb"})
    assert (status, body["action"]) == (200, "unchanged")

    # Bad requests name the problem.
    for payload, code, words in [
        ({}, 400, "field 'path' is required"),
        ({"path": "../workspace/week1/add.ipynb"}, 400, "outside the server's root"),
        ({"path": "nope.ipynb"}, 404, "no notebook 'nope.ipynb'"),
        ({"path": "week1"}, 400, "not a notebook"),
        ({"path": "a\x00.ipynb"}, 400, "not a usable path"),
        ({"path": 7}, 400, "field 'path' is required"),
    ]:
        status, body, _ = await api("POST", "authoring/validate", payload)
        assert (status, words in body["message"]) == (code, True), body
    (jp_root_dir / "broken.ipynb").write_text(
        json.dumps(
            {
                "cells": [],
                "metadata": {"jupyter_exec": {"exercise_id": "b", "tests": []}},
                "nbformat": 4,
                "nbformat_minor": 5,
            }
        )
    )
    status, body, _ = await api("POST", "authoring/release", {"path": "broken.ipynb"})
    assert status == 400 and body["message"].startswith(
        "broken.ipynb: metadata jupyter_exec field 'tests'"
    ), body


@pytest.mark.parametrize("exercises_inside_root", [True])
async def test_a_student_mode_root_holding_the_exercises_is_reported(api, caplog):
    """The server still starts (an existing set-up keeps working), and says what is exposed."""
    assert (await api("GET", "authoring/mode"))[:2] == (
        200,
        {"mode": "student", "instructor": False},
    )
    warnings = [
        r.getMessage()
        for r in caplog.get_records("setup")
        if r.name == "jupyter_exec_ext.server.app" and r.levelname == "WARNING"
    ]
    assert (
        len(warnings) == 1
        and "students can open its reference solutions and hidden tests" in warnings[0]
    )
