"""The submission record: per-user listing, newest first, and the file outliving the store."""

from __future__ import annotations

from pathlib import Path

from jupyter_exec_ext.grading.grader import GradeResult, TestResult
from jupyter_exec_ext.sandbox import Status
from jupyter_exec_ext.server.submissions import SubmissionStore


def graded(score: float) -> GradeResult:
    tests = [TestResult(name="small numbers", status="passed", points=1, max_points=1, hidden=False),
             TestResult(name="big numbers", status="passed" if score > 1 else "failed",
                        points=score - 1 if score > 1 else 0, max_points=1, hidden=True)]
    return GradeResult(exercise_id="add", status=Status.OK, score=score, max_score=2, tests=tests)


def test_each_user_sees_their_own_submissions_newest_first(tmp_path: Path) -> None:
    store = SubmissionStore(tmp_path / "db" / "submissions.sqlite")
    store.record("alice", graded(1), when=1000.0)
    store.record("bob", graded(2), when=1001.0)
    store.record("alice", graded(2), when=1002.0)

    alices = store.list("alice")
    assert [s["score"] for s in alices] == [2, 1] and {s["user"] for s in alices} == {"alice"}
    assert alices[0]["submitted_at"] == "1970-01-01T00:16:42Z"
    assert alices[0]["tests"] == [
        {"name": "small numbers", "status": "passed", "points": 1, "max_points": 1, "hidden": False},
        {"name": "big numbers", "status": "passed", "points": 1, "max_points": 1, "hidden": True}]
    assert [s["user"] for s in store.list(None)] == ["alice", "bob", "alice"]
    assert len(store.list(None, limit=2)) == 2
    store.close()


def test_the_record_survives_a_new_store_on_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "submissions.sqlite"
    first = SubmissionStore(path)
    first.record("alice", graded(2))
    first.close()

    again = SubmissionStore(path)
    assert [(s["user"], s["exercise_id"], s["status"], s["score"]) for s in again.list("alice")] == [
        ("alice", "add", "ok", 2)]
    again.close()


def test_pages_follow_each_other_without_gaps_and_the_total_counts_them_all(tmp_path: Path) -> None:
    store = SubmissionStore(tmp_path / "submissions.sqlite")
    for i in range(5):
        store.record("alice", graded(i % 3), when=1000.0 + i)
    store.record("bob", graded(2), when=2000.0)

    pages = [store.list("alice", limit=2, offset=offset) for offset in (0, 2, 4)]
    assert [len(page) for page in pages] == [2, 2, 1]
    ids = [s["id"] for page in pages for s in page]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 5
    assert store.count("alice") == 5 and store.count("bob") == 1 and store.count(None) == 6
    # A user literally named "*" is one user, never everyone.
    assert store.list("*") == [] and store.count("*") == 0
    store.close()
