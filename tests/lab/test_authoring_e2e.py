"""Authoring and the student's view, end to end in Debian's chromium: an instructor makes an
exercise from a blank notebook in JupyterLab (roles, a visible and a hidden test, validate,
preview, release) on an instructor-mode server; a student opens the released copy on a
student-mode server, as command 1 serves it, and submits a wrong then a right answer. axe-core
checks the extension's elements against WCAG 2.1 AA, in the light theme (instructor) and the
dark theme (student).

Both servers start at once (about 10 s); the browser flow takes about a minute. With
``E2E_DOCS_DIR`` set (scripts/docs-screenshots.sh does), the screenshots of the README are
written there. Under ``CI=true`` a missing chromium, node or node package fails the test.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import nbformat
import pytest

from jupyter_exec_ext.grading import load_exercise

from ..conftest import TEST_OWNER
from ..live_server import start_server
from .test_e2e import CHROMIUM, LABEXT, require_browser

SCRIPT = LABEXT / "ui-tests" / "authoring.mjs"
ARTIFACTS = LABEXT / "ui-tests" / "artifacts-authoring"


@pytest.fixture
def servers(tmp_path, executor_image, no_leaks):
    """An instructor's JupyterLab on exercises/ and a student's on workspace/, sharing them as
    command 1's two modes do."""
    exercises, workspace = tmp_path / "exercises", tmp_path / "workspace"
    exercises.mkdir()
    workspace.mkdir()
    common = {
        "image": executor_image,
        "owner": TEST_OWNER,
        "pool_size": 0,
        "cache_enabled": False,
        "reap_interval": 0,
        "exercises_dir": str(exercises),
        "workspace_dir": str(workspace),
    }
    token = secrets.token_hex(16)

    def start(name, root, instructor):
        home = tmp_path / name
        settings = home / "settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True)
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false"})
        )
        if name == "student":  # the accessibility checks then cover both themes
            (settings / "themes.jupyterlab-settings").write_text(
                json.dumps({"theme": "JupyterLab Dark"})
            )
        return start_server(
            home,
            {**common, "instructor": instructor},
            app="lab",
            token=token,
            root_dir=root,
            env={
                "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
                "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
            },
        )

    with ThreadPoolExecutor(2) as pool:
        started = [
            pool.submit(start, "instructor", exercises, True),
            pool.submit(start, "student", workspace, False),
        ]
    instructor, student = (f.result() for f in started)
    try:
        yield {
            "instructor": instructor,
            "student": student,
            "exercises": exercises,
            "workspace": workspace,
        }
    finally:
        instructor.stop()
        student.stop()


def test_instructor_authors_and_student_submits(servers):
    node = require_browser()
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    run = subprocess.run(
        [node, str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=420,
        cwd=LABEXT,
        env={
            **os.environ,
            "E2E_INSTRUCTOR_URL": servers["instructor"].base,
            "E2E_STUDENT_URL": servers["student"].base,
            "E2E_TOKEN": servers["instructor"].token,
            "E2E_ARTIFACTS": str(ARTIFACTS),
            "E2E_CHROMIUM": CHROMIUM,
        },
    )
    logs = "\n".join(
        f"{name} server log tail:\n{servers[name].log_path.read_text()[-2000:]}"
        for name in ("instructor", "student")
    )
    assert run.returncode == 0, (
        f"browser test failed (screenshots in {ARTIFACTS}):\n{run.stdout}\n{run.stderr}\n{logs}"
    )
    report = json.loads((ARTIFACTS / "report.json").read_text())
    assert report["result"] == "passed"

    # What the instructor made is stored as the exercise format, and the grader accepts it.
    [source] = servers["exercises"].glob("*.ipynb")
    exercise = load_exercise(source)
    assert exercise.id == "sum-list" and exercise.title == "Sum a list"
    assert [(t.name, t.hidden, t.expected_output) for t in exercise.tests] == [
        ("sums a short list", False, "6"),
        ("an empty list sums to 0", True, None),
    ]
    roles = [
        c.metadata.get("jupyter_exec", {}).get("role") for c in nbformat.read(str(source), 4).cells
    ]
    assert roles == ["prompt", "starter", "solution"]
    # The released copy: no solution, no hidden test.
    copy = servers["workspace"] / source.name
    assert load_exercise(copy).student_copy and "an empty list" not in copy.read_text()
    assert "return sum(numbers)" not in copy.read_text()
    steps = {s["name"]: s for s in report["steps"]}
    assert (
        steps["validate"]["solution"] == "2 / 2 points"
        and steps["validate"]["starter"] == "0 / 2 points"
    )
    assert steps["schema enforced as typed"]["error"]
    assert steps["tests added, reordered, deleted"]["reordered"][1] == "test 3"
    assert steps["student: wrong answer"]["score"] == "Score: 1 / 2"
    assert steps["student: right answer"]["score"] == "Score: 2 / 2"
    assert steps["student: wrong answer"]["graded"].startswith(
        "Graded 2 cells: cell 2 (def total(numbers):)"
    )
    assert report["a11y"]["authoring panel"] == {"theme": "JupyterLab Light", "violations": []}
    assert report["a11y"]["results and graded marks"] == {
        "theme": "JupyterLab Dark",
        "violations": [],
    }
    for name in ("authoring-panel.png", "student-view.png"):
        assert (ARTIFACTS / name).stat().st_size > 1000
