"""The gradebook in Debian's chromium, end to end: real JupyterLab servers whose extension runs
code in the real Docker sandbox and records every graded submission in one SQLite gradebook.

A student's server submits the lists-average exercise twice, reloads, finds the history (progress,
score chart, attempts) and opens the first attempt's results. An instructor's server, on the same
gradebook, opens the Gradebook panel from the launcher and the palette, sorts it with the keyboard
and the mouse, filters it, downloads the CSV and reads the test statistics. The other students of
the class are recorded straight into the gradebook with the real store before the servers start.
axe-core checks both panels in the light and the dark theme. With ``E2E_DOCS_DIR`` set
(scripts/docs-screenshots.sh), the README's screenshots are written there. Under ``CI=true`` a
missing chromium, node or node package fails the test.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from jupyter_exec_ext.gradebook.store import GradebookStore, SubmissionRecord, sqlite_url
from jupyter_exec_ext.grading import load_exercise
from jupyter_exec_ext.grading.release import release

from ..conftest import TEST_OWNER
from ..live_server import start_server
from .test_e2e import CHROMIUM, EXERCISE, LABEXT, require_browser

SCRIPT = LABEXT / "ui-tests" / "gradebook.mjs"
ARTIFACTS = LABEXT / "ui-tests" / "artifacts-gradebook"
MAX_ATTEMPTS = 5
#: The rest of the class: (name, [(passed tests, late)...] per attempt, oldest first).
CLASSMATES = [
    ("alice", [(3, False), (7, False)]),
    ("bob", [(2, False), (4, False), (5, True)]),
    ("carol", [(1, False)]),
    ("student10", [(6, False), (7, False)]),
]
FAILURE = "expected [3, 4], got [2, 3, 4]"


def seed_class(url: str) -> None:
    """Records the classmates' submissions of the exercise: the first tests pass, the others fail
    with a visible failure message (hidden ones without)."""
    exercise = load_exercise(EXERCISE)
    store = GradebookStore(url)
    now = time.time()
    records = []
    for name, attempts in CLASSMATES:
        for i, (passed, late) in enumerate(attempts):
            tests = [
                {
                    "name": t.name,
                    "status": "passed" if k < passed else "failed",
                    "points": t.points if k < passed else 0.0,
                    "max_points": t.points,
                    "hidden": t.hidden,
                    "message": "" if k < passed or t.hidden else FAILURE,
                }
                for k, t in enumerate(exercise.tests)
            ]
            score = sum(t["points"] for t in tests)
            records.append(
                SubmissionRecord(
                    user=name,
                    exercise_id=exercise.id,
                    exercise_version=exercise.version,
                    code="def average(numbers): ...",
                    status="ok",
                    score=score,
                    max_score=sum(t.points for t in exercise.tests),
                    tests=tests,
                    duration_ms=90,
                    late=late,
                    submitted_at=now - 3600 * (len(attempts) - i),
                )
            )
    store.record_many(records)


@pytest.fixture
def servers(tmp_path, executor_image, no_leaks):
    """A student's JupyterLab (the released copy, a due time and an attempts limit) and an
    instructor's, recording into one gradebook that already holds the rest of the class."""
    db = sqlite_url(tmp_path / "gradebook.sqlite")
    seed_class(db)
    student_root, instructor_root = tmp_path / "student-root", tmp_path / "instructor-root"
    student_root.mkdir()
    instructor_root.mkdir()
    release(EXERCISE, student_root / "lists-average.ipynb")
    due = (datetime.now(timezone.utc) + timedelta(days=3)).isoformat(timespec="seconds")
    common = {
        "image": executor_image,
        "owner": TEST_OWNER,
        "pool_size": 0,
        "cache_enabled": False,
        "reap_interval": 0,
        "exercises_dir": str(EXERCISE.parent),
        "db_url": db,
    }
    token = secrets.token_hex(16)

    def start(name, root, traits):
        home = tmp_path / name
        settings = home / "settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True)
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false"})
        )
        return start_server(
            home,
            {**common, **traits},
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
            pool.submit(
                start,
                "student",
                student_root,
                {"instructor": False, "due": due, "max_attempts": MAX_ATTEMPTS},
            ),
            pool.submit(start, "instructor", instructor_root, {"instructor": True}),
        ]
    student, instructor = (f.result() for f in started)
    try:
        yield {"student": student, "instructor": instructor, "db": db}
    finally:
        student.stop()
        instructor.stop()


def test_student_history_and_instructor_gradebook(servers):
    node = require_browser()
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    env = {
        **os.environ,
        "E2E_STUDENT_URL": servers["student"].base,
        "E2E_INSTRUCTOR_URL": servers["instructor"].base,
        "E2E_TOKEN": servers["student"].token,
        "E2E_NOTEBOOK": "lists-average.ipynb",
        "E2E_EXERCISE": "lists-average",
        "E2E_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "E2E_ARTIFACTS": str(ARTIFACTS),
        "E2E_CHROMIUM": CHROMIUM,
    }
    run = subprocess.run(
        [node, str(SCRIPT)], capture_output=True, text=True, timeout=600, cwd=LABEXT, env=env
    )
    logs = "\n".join(
        f"{name} server log tail:\n{servers[name].log_path.read_text()[-2000:]}"
        for name in ("student", "instructor")
    )
    assert run.returncode == 0, (
        f"browser test failed (screenshots in {ARTIFACTS}):\n{run.stdout}\n{run.stderr}\n{logs}"
    )
    report = json.loads((ARTIFACTS / "report.json").read_text())
    assert report["result"] == "passed"
    steps = {s["name"]: s for s in report["steps"]}

    # The student: two attempts, the limit and the due time from the server's rules.
    second = steps["student: second submission, history of two"]
    assert second["facts"]["attempts"] == f"2 of {MAX_ATTEMPTS} used, {MAX_ATTEMPTS - 2} left"
    assert (
        second["facts"]["due"].endswith("(in 3 days)")
        or "(in 71 h)" in second["facts"]["due"]
        or "(in 72 h)" in second["facts"]["due"]
    ), second["facts"]["due"]
    assert second["facts"]["rule"] == "your best score"
    assert second["live"].startswith("Submission history loaded: 2 attempts")
    first = steps["student: first submission, history of one"]
    assert steps["student: a past attempt opened"]["score"] == first["score"] != second["score"]
    assert steps["student: a past attempt opened"]["note"].startswith("Attempt 1, submitted ")
    assert [line.split(":")[0] for line in steps["student: history after a reload"]["listed"]] == [
        "Attempt 2",
        "Attempt 1",
    ]

    # The instructor: the whole class (the student server's account too), sorted and filtered.
    opened = steps["instructor: gradebook from the launcher"]
    names = [name for name, _ in CLASSMATES]
    assert set(names) < set(opened["users"]) and len(opened["users"]) == len(names) + 1
    assert opened["users"].index("student10") > opened["users"].index("carol")  # numeric-aware
    sorted_ = steps["instructor: sorted"]
    assert sorted_["descending"] == sorted(sorted_["descending"], reverse=True)
    assert sorted_["ascending"] == sorted(sorted_["ascending"]) and sorted_["ascending"][0] == 1
    assert len(steps["instructor: filtered"]["filtered"]) >= 1
    csv = steps["instructor: CSV downloaded"]
    assert csv["lines"] == 1 + len(names) + 1, csv  # header + one row per student × exercise
    stats = steps["instructor: test statistics"]
    assert len(stats["rows"]) == len(load_exercise(EXERCISE).tests)
    assert any(FAILURE in failure for failure in stats["failures"])
    assert (
        stats["summary"]
        == f"{sum(len(a) for _, a in CLASSMATES) + 2} submissions by {len(names) + 1} students."
    )

    assert steps["instructor: gradebook restored after a reload"]["rows"] == opened["users"]

    # WCAG 2.1 AA in both themes, both panels.
    for name, theme in [
        ("results with history", "JupyterLab Light"),
        ("results with history (dark)", "JupyterLab Dark"),
        ("gradebook", "JupyterLab Light"),
        ("gradebook (dark)", "JupyterLab Dark"),
    ]:
        assert report["a11y"][name] == {"theme": theme, "violations": []}, name
    for name in ("results-history.png", "gradebook-panel.png"):
        assert (ARTIFACTS / name).stat().st_size > 1000
    if os.environ.get("E2E_DOCS_DIR"):
        for name in ("results-history.png", "gradebook-panel.png"):
            shutil.copyfile(ARTIFACTS / name, os.path.join(os.environ["E2E_DOCS_DIR"], name))
