"""The gradebook's routes on a real single-user server grading on the real engine: a student's
own history and progress, hidden tests' details kept from students, the instructor's gradebook
(JSON and CSV) and statistics, and the course rules (due time, late policy, attempts)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from ..grading.notebooks import exercise_notebook, write_notebook

pytestmark = pytest.mark.docker

RIGHT = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return a - b\n"
#: What the hidden test of the sample exercise holds; never in a student's answer.
HIDDEN_SECRETS = ("10**12", "1000000000001")


@pytest.fixture
def exercises_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "course"
    write_notebook(folder / "add.ipynb", exercise_notebook(limits={"time_limit": 5}))
    write_notebook(
        folder / "capped.ipynb",
        exercise_notebook("capped", max_attempts=2, score_rule="last", limits={"time_limit": 5}),
    )
    write_notebook(
        folder / "closed.ipynb",
        exercise_notebook("closed", due="2020-01-01T00:00:00Z", late="refuse"),
    )
    write_notebook(
        folder / "overdue.ipynb", exercise_notebook("overdue", due="2020-01-01T00:00:00+01:00")
    )
    return folder


@pytest.fixture
def extra_config() -> dict:
    return {}


@pytest.fixture
def exec_ext_config(exercises_dir: Path, extra_config: dict) -> dict:
    return {"exercises_dir": str(exercises_dir), **extra_config}


STUDENT = {"instructor": False}
INSTRUCTOR = {"instructor": True}


async def submit(api, exercise: str, code: str) -> dict:
    status, body, _ = await api("POST", f"exercises/{exercise}/submit", {"code": code})
    assert status == 200, body
    return body


@pytest.mark.parametrize("extra_config", [STUDENT])
async def test_a_student_reads_their_own_history_without_hidden_details(
    api, executor_image, no_leaks
):
    wrong = await submit(api, "add", WRONG)
    right = await submit(api, "add", RIGHT)
    assert wrong["submission_id"] and right["submission_id"] and wrong["late"] is False
    for answer in (wrong, right):
        assert not any(secret in str(answer) for secret in HIDDEN_SECRETS)

    status, page, _ = await api("GET", "submissions?exercise=add")
    assert status == 200, page
    assert page["total"] == 2 and page["limit"] == 50 and page["offset"] == 0
    assert [s["id"] for s in page["submissions"]] == [
        right["submission_id"],
        wrong["submission_id"],
    ]
    newest = page["submissions"][0]
    assert newest["score"] == right["score"] == newest["max_score"]
    assert newest["submitted_at"].endswith("Z") and len(newest["exercise_version"]) == 16
    assert set(newest) == {
        "id",
        "user",
        "exercise_id",
        "exercise_version",
        "submitted_at",
        "score",
        "max_score",
        "status",
        "late",
        "duration_ms",
    }
    status, second, _ = await api("GET", "submissions?exercise=add&limit=1&offset=1")
    assert (
        second["submissions"][0]["id"] == wrong["submission_id"] and second["next_offset"] is None
    )

    status, full, _ = await api("GET", f"submissions/{wrong['submission_id']}")
    assert status == 200, full
    assert full["code"] == {"code": WRONG}
    hidden = [t for t in full["tests"] if t["hidden"]]
    assert hidden == [
        {
            "name": "big numbers",
            "status": "failed",
            "points": 0.0,
            "max_points": 1.0,
            "hidden": True,
            "message": "hidden test failed",
        }
    ]
    assert not any(secret in str(full) for secret in HIDDEN_SECRETS)
    assert full["tests"] == wrong["tests"]  # what the student saw then, and nothing more

    # Reloading the page (a new request) finds the same history: it is in the database.
    status, progress, _ = await api("GET", "exercises/add/progress")
    assert status == 200, progress
    assert progress == {
        "exercise_id": "add",
        "due": None,
        "late_policy": "accept",
        "max_attempts": None,
        "attempts": 2,
        "attempts_left": None,
        "score_rule": "best",
        "best": 4.0,
        "last": 4.0,
        "max_score": 4.0,
        "late": False,
    }


@pytest.mark.parametrize("extra_config", [STUDENT])
async def test_a_student_is_refused_everything_of_instructors(api, executor_image, no_leaks):
    await submit(api, "add", WRONG)
    for route in (
        "gradebook",
        "gradebook?format=csv",
        "exercises/add/stats",
        "submissions?user=someone-else",
        "submissions?user=*",
    ):
        status, body, _ = await api("GET", route)
        assert status == 403, (route, body)
        assert body["message"].startswith(
            ("only instructors may read", "you may only list your own")
        )
    status, body, _ = await api("GET", "authoring/mode")
    assert body == {"mode": "student", "instructor": False}
    for missing in ("999999", "abc", "-1", "1" * 40, str(2**31), "١٢"):
        status, body, _ = await api("GET", f"submissions/{missing}")
        assert status == 404 and "no submission" in body["message"], missing


@pytest.mark.parametrize("extra_config", [INSTRUCTOR])
async def test_the_instructor_reads_the_gradebook_stats_and_hidden_details(
    api, executor_image, no_leaks
):
    wrong = await submit(api, "add", WRONG)
    await submit(api, "add", RIGHT)
    await submit(api, "capped", RIGHT)
    await submit(api, "capped", WRONG)

    status, body, _ = await api("GET", "authoring/mode")
    assert body == {"mode": "instructor", "instructor": True}
    status, full, _ = await api("GET", f"submissions/{wrong['submission_id']}")
    hidden = next(t for t in full["tests"] if t["hidden"])
    assert hidden["status"] == "failed" and hidden["expected"] == "1000000000001"
    assert "actual" in hidden and hidden["message"] != "hidden test failed"

    status, book, _ = await api("GET", "gradebook")
    assert status == 200, book
    assert book["exercises"] == ["add", "capped", "closed", "overdue"]
    assert len(book["users"]) == 1
    rows = {r["exercise_id"]: r for r in book["rows"]}
    assert rows["add"]["attempts"] == 2 and rows["add"]["best"] == rows["add"]["last"] == 4.0
    assert rows["add"]["score"] == 4.0  # best (the default rule)
    # score_rule "last": the wrong one came last.
    assert rows["capped"]["best"] == 4.0 and rows["capped"]["score"] == rows["capped"]["last"] < 4.0
    assert rows["capped"]["late"] is False and rows["capped"]["last_at"].endswith("Z")

    status, _, response = await api("GET", "gradebook?format=csv&exercise=capped")
    assert status == 200 and response.headers["Content-Type"].startswith("text/csv")
    assert 'filename="grades-capped.csv"' in response.headers["Content-Disposition"]
    table = list(csv.reader(io.StringIO(response.body.decode())))
    assert table[0] == [
        "user",
        "exercise_id",
        "score",
        "best",
        "last",
        "max_score",
        "attempts",
        "late",
        "last_at",
    ]
    assert len(table) == 2 and table[1][1] == "capped" and table[1][6] == "2"
    # An exercise filter never writes into the header (a line break would add a header).
    status, body, response = await api(
        "GET", "gradebook?format=csv&exercise=x%0D%0ASet-Cookie:%20a=b"
    )
    assert (
        status == 200
        and response.headers["Content-Disposition"] == 'attachment; filename="grades.csv"'
    )
    assert not any("a=b" in c for c in response.headers.get_list("Set-Cookie"))

    status, stats, _ = await api("GET", "exercises/add/stats")
    assert status == 200, stats
    assert stats["submissions"] == 2 and stats["students"] == 1
    assert [t["name"] for t in stats["tests"]] == ["small numbers", "negatives", "big numbers"]
    small = stats["tests"][0]
    assert small["pass_rate"] == 1.0 and small["median_attempts_to_first_pass"] == 2
    assert small["failures"] and small["failures"][0]["count"] == 1
    big = stats["tests"][2]
    assert big["hidden"] is True and big["failures"] == []
    status, body, _ = await api("GET", "exercises/nope/stats")
    assert status == 404


@pytest.mark.parametrize("extra_config", [STUDENT])
async def test_course_rules_refuse_late_and_extra_attempts(api, executor_image, no_leaks):
    await submit(api, "capped", WRONG)
    await submit(api, "capped", RIGHT)
    status, body, response = await api("POST", "exercises/capped/submit", {"code": RIGHT})
    assert status == 429 and body["reason"] == "attempts_exhausted", body
    assert body["message"].startswith("you have used all 2 attempt(s) at 'capped'")
    assert "Retry-After" not in response.headers
    status, progress, _ = await api("GET", "exercises/capped/progress")
    assert (
        progress["attempts"],
        progress["attempts_left"],
        progress["score_rule"],
        progress["last"],
    ) == (2, 0, "last", 4.0)

    status, body, _ = await api("POST", "exercises/closed/submit", {"code": RIGHT})
    assert status == 409 and body["reason"] == "past_due", body
    assert body["message"] == (
        "'closed' was due 2020-01-01T00:00:00Z; late submissions are not accepted for it"
    )
    late = await submit(api, "overdue", RIGHT)
    assert late["late"] is True and late["score"] == late["max_score"]
    status, progress, _ = await api("GET", "exercises/overdue/progress")
    assert progress["due"] == "2019-12-31T23:00:00Z" and progress["late"] is True
    status, page, _ = await api("GET", "submissions?exercise=overdue")
    assert page["submissions"][0]["late"] is True
    # Refused submissions were not recorded.
    status, page, _ = await api("GET", "submissions?exercise=closed")
    assert page["total"] == 0


@pytest.mark.parametrize("extra_config", [{**STUDENT, "max_runs_per_user": 4}])
async def test_submissions_at_once_cannot_take_more_attempts_than_there_are(
    api, executor_image, no_leaks
):
    """Three submissions of an exercise with 2 attempts, all at once: two are graded, one is
    refused, whatever order they arrive in."""
    import asyncio

    answers = await asyncio.gather(
        *(api("POST", "exercises/capped/submit", {"code": RIGHT}) for _ in range(3))
    )
    statuses = sorted(status for status, _, _ in answers)
    assert statuses == [200, 200, 429], [body for _, body, _ in answers]
    refused = next(body for status, body, _ in answers if status == 429)
    assert refused["reason"] == "attempts_exhausted"
    status, page, _ = await api("GET", "submissions?exercise=capped")
    assert page["total"] == 2


@pytest.mark.parametrize(
    "extra_config",
    [{**STUDENT, "max_attempts": 1, "score_rule": "last", "due": "2099-01-01T00:00:00+00:00"}],
)
async def test_the_configured_defaults_apply_to_exercises_without_rules(
    api, executor_image, no_leaks
):
    status, progress, _ = await api("GET", "exercises/add/progress")
    assert (
        progress["max_attempts"],
        progress["score_rule"],
        progress["due"],
        progress["attempts_left"],
        progress["best"],
    ) == (1, "last", "2099-01-01T00:00:00Z", 1, None)
    await submit(api, "add", RIGHT)
    status, body, _ = await api("POST", "exercises/add/submit", {"code": RIGHT})
    assert status == 429 and body["reason"] == "attempts_exhausted"
    # The exercise's own rule wins over the default.
    status, progress, _ = await api("GET", "exercises/capped/progress")
    assert progress["max_attempts"] == 2
