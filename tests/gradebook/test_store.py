"""The gradebook store's contract, the same on SQLite and on a real PostgreSQL; the upgrade of a
database of the previous version with its rows; and the recorder's backlog while PostgreSQL is
down."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from jupyter_exec_ext.gradebook.recorder import GradebookRecorder, GradebookUnavailable
from jupyter_exec_ext.gradebook.store import (
    GradebookStore,
    StoreError,
    SubmissionRecord,
    migrate,
    redact_test,
    sqlite_url,
)
from jupyter_exec_ext.grading.grader import GradeResult, TestResult
from jupyter_exec_ext.sandbox import Status

from .legacy_store import SubmissionStore as LegacyStore


def verdict(name: str, passed: bool, hidden: bool = False, message: str = "") -> dict:
    return {
        "name": name,
        "status": "passed" if passed else "failed",
        "points": 1.0 if passed else 0.0,
        "max_points": 1.0,
        "hidden": hidden,
        "message": message or ("passed" if passed else f"{name}: expected 5, got 6"),
    }


def record(
    user: str,
    exercise: str = "add",
    score: float = 1.0,
    when: float = 1000.0,
    tests: list | None = None,
    late: bool = False,
) -> SubmissionRecord:
    return SubmissionRecord(
        user=user,
        exercise_id=exercise,
        exercise_version="v1",
        code=f"# {user}\n",
        status="ok",
        score=score,
        max_score=3.0,
        late=late,
        submitted_at=when,
        duration_ms=42,
        tests=tests
        if tests is not None
        else [
            verdict("visible", score >= 1),
            verdict("secret", score >= 2, hidden=True, message="expected 1000000000001"),
        ],
        stdout="out",
        stderr="err",
        message="",
    )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "gradebook.sqlite")
    return request.getfixturevalue("postgres_cluster").new_database()


@pytest.fixture
def store(store_url: str):
    opened = GradebookStore(store_url)
    yield opened
    opened.close()


def test_a_submission_is_stored_with_everything_the_gradebook_keeps(store) -> None:
    first = store.record(record("alice", score=2.0, when=1_700_000_000.25, late=True))
    kept = store.get(first)
    assert kept == {
        "id": str(first),
        "user": "alice",
        "exercise_id": "add",
        "exercise_version": "v1",
        "submitted_at": "2023-11-14T22:13:20.250Z",
        "score": 2.0,
        "max_score": 3.0,
        "status": "ok",
        "late": True,
        "duration_ms": 42,
        "code": {"code": "# alice\n"},
        "tests": [
            verdict("visible", True),
            verdict("secret", True, hidden=True, message="expected 1000000000001"),
        ],
        "stdout": "out",
        "stderr": "err",
        "message": "",
    }
    assert store.get(first + 1000) is None


def test_lists_are_newest_first_paged_and_filtered(store) -> None:
    ids = [
        store.record(record(user, exercise, when=1000.0 + i))
        for i, (user, exercise) in enumerate(
            [("alice", "add"), ("bob", "add"), ("alice", "square"), ("alice", "add")]
        )
    ]
    total, rows = store.list("alice")
    assert total == 3 and [r["id"] for r in rows] == [str(ids[3]), str(ids[2]), str(ids[0])]
    total, rows = store.list("alice", "add", limit=1, offset=1)
    assert total == 2 and [r["id"] for r in rows] == [str(ids[0])]
    total, rows = store.list(None, "add")
    assert total == 3 and {r["user"] for r in rows} == {"alice", "bob"}
    assert store.list("carol") == (0, [])
    assert store.users() == ["alice", "bob"] and store.exercise_ids() == ["add", "square"]
    assert store.attempts("alice", "add") == 2 and store.attempts("bob", "square") == 0


def test_the_gradebook_has_best_last_attempts_late_and_time_per_student_and_exercise(store) -> None:
    store.record(record("alice", score=1.0, when=1000.0))
    store.record(record("alice", score=3.0, when=1001.0, late=True))
    store.record(record("alice", score=2.0, when=1002.0))
    store.record(record("bob", score=0.0, when=1003.0))
    store.record(record("bob", "square", score=1.0, when=1004.0))
    rows = store.gradebook()
    assert rows == [
        {
            "user": "alice",
            "exercise_id": "add",
            "best": 3.0,
            "last": 2.0,
            "attempts": 3,
            "late": True,
            "max_score": 3.0,
            "last_at": "1970-01-01T00:16:42.000Z",
        },
        {
            "user": "bob",
            "exercise_id": "add",
            "best": 0.0,
            "last": 0.0,
            "attempts": 1,
            "late": False,
            "max_score": 3.0,
            "last_at": "1970-01-01T00:16:43.000Z",
        },
        {
            "user": "bob",
            "exercise_id": "square",
            "best": 1.0,
            "last": 1.0,
            "attempts": 1,
            "late": False,
            "max_score": 3.0,
            "last_at": "1970-01-01T00:16:44.000Z",
        },
    ]
    assert [r["user"] for r in store.gradebook("square")] == ["bob"]
    assert store.progress("alice", "add") == {
        "attempts": 3,
        "best": 3.0,
        "last": 2.0,
        "max_score": 3.0,
        "any_late": True,
    }
    assert store.progress("carol", "add") == {
        "attempts": 0,
        "best": None,
        "last": None,
        "max_score": None,
        "any_late": False,
    }


def test_the_gradebook_kept_with_each_record_matches_one_computed_from_every_submission(store):
    import random

    rng = random.Random(7)
    for i in range(120):
        store.record(
            record(
                rng.choice(["alice", "bob", "carol"]),
                rng.choice(["add", "square"]),
                score=float(rng.randint(0, 3)),
                when=1000.0 + i,
                late=rng.random() < 0.2,
            )
        )
    kept = store.gradebook()
    store.rebuild_grades()
    assert store.gradebook() == kept and len(kept) == 6


def test_statistics_name_the_test_the_class_is_stuck_on(store) -> None:
    # alice passes "visible" at her 2nd attempt, bob at his 3rd, carol never.
    for user, passes in (
        ("alice", [False, True]),
        ("bob", [False, False, True]),
        ("carol", [False, False]),
    ):
        for passed in passes:
            store.record(
                record(
                    user,
                    tests=[
                        verdict("visible", passed),
                        verdict("secret", False, hidden=True, message="the secret input 10**12"),
                    ],
                )
            )
    stats = store.stats("add", ["secret", "visible"])
    assert stats["submissions"] == 7 and stats["students"] == 3
    secret, visible = stats["tests"]
    assert (secret["name"], secret["pass_rate"], secret["failures"]) == ("secret", 0.0, [])
    assert visible == {
        "name": "visible",
        "hidden": False,
        "pass_rate": 0.6667,
        "passed_students": 2,
        "attempted_students": 3,
        "median_attempts_to_first_pass": 2.5,
        "failures": [{"message": "visible: expected 5, got 6", "count": 5}],
    }
    assert store.stats("nothing")["tests"] == []


def test_hidden_details_are_redacted_for_students() -> None:
    hidden = verdict("secret", False, hidden=True, message="expected 1000000000001")
    hidden.update(expected="1000000000001", actual="1000000000000", status="error")
    assert redact_test(hidden) == {
        "name": "secret",
        "status": "failed",
        "points": 0.0,
        "max_points": 1.0,
        "hidden": True,
        "message": "hidden test failed",
    }
    visible = verdict("visible", False)
    assert redact_test(visible) == visible


def test_a_record_is_built_from_a_grading_with_every_detail() -> None:
    class Exercise:
        version = "abc"

    result = GradeResult(
        exercise_id="add",
        status=Status.OK,
        score=1,
        max_score=2,
        tests=[
            TestResult("v", "passed", 1, 1, False, "passed"),
            TestResult("h", "failed", 0, 1, True, "diff", expected="5", actual="6"),
        ],
        stdout="o",
        stderr="e",
        duration_ms=12,
    )
    made = SubmissionRecord.from_grade("alice", Exercise(), "code", result, late=True, when=5.0)
    assert made.exercise_version == "abc" and made.late and made.submitted_at == 5.0
    assert made.tests[1] == {
        "name": "h",
        "status": "failed",
        "points": 0,
        "max_points": 1,
        "hidden": True,
        "message": "diff",
        "expected": "5",
        "actual": "6",
    }


def test_an_unusable_url_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as refused:
        GradebookStore("not a url at all")
    assert "not a database URL" in str(refused.value)
    with pytest.raises(StoreError) as refused:
        GradebookStore("mysql+nosuchdriver://u:secret@host/db")
    assert "secret" not in str(refused.value)


# -- migrations ------------------------------------------------------------------------------


def test_a_database_of_the_previous_version_is_upgraded_with_its_rows(tmp_path: Path) -> None:
    """The executor service's SQLite file as the previous version wrote it (its own code), with
    rows: opening it as a gradebook keeps them, and new records follow their ids."""
    path = tmp_path / "exec-submissions.sqlite"
    old = LegacyStore(path)
    result = GradeResult(
        exercise_id="add",
        status=Status.OK,
        score=1.0,
        max_score=2.0,
        tests=[TestResult("small", "passed", 1, 1, False), TestResult("big", "failed", 0, 1, True)],
    )
    old.record("alice", result, when=1000.0)
    old.record("bob", result, when=1001.0)
    old.close()

    store = GradebookStore(sqlite_url(path))
    total, rows = store.list()
    assert total == 2 and [
        (r["user"], r["score"], r["exercise_version"], r["late"]) for r in rows
    ] == [("bob", 1.0, "", False), ("alice", 1.0, "", False)]
    alice = store.get(int(rows[1]["id"]))
    assert alice["submitted_at"] == "1970-01-01T00:16:40.000Z"
    assert alice["tests"] == [
        {
            "name": "small",
            "status": "passed",
            "points": 1,
            "max_points": 1,
            "hidden": False,
            "message": "",
        },
        {
            "name": "big",
            "status": "failed",
            "points": 0,
            "max_points": 1,
            "hidden": True,
            "message": "",
        },
    ]
    newer = store.record(record("alice"))
    assert newer == 3 and store.gradebook()[0]["attempts"] == 2
    store.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT version_num FROM alembic_version").fetchall() == [("0002",)]
    # Opening it again changes nothing.
    again = GradebookStore(sqlite_url(path))
    assert again.list()[0] == 3
    again.close()


@pytest.mark.postgres
def test_postgresql_at_the_first_revision_is_upgraded_with_its_rows(postgres_cluster) -> None:
    from alembic import command
    from alembic.config import Config

    from jupyter_exec_ext.gradebook.store import MIGRATIONS

    url = postgres_cluster.new_database()
    engine = sa.create_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(
            sa.text(
                'INSERT INTO submissions ("user", exercise_id, submitted_at, status, score, max_score,'
                " tests) VALUES ('alice', 'add', 1000.5, 'ok', 2, 3, :tests)"
            ),
            {
                "tests": json.dumps(
                    [
                        {
                            "name": "t",
                            "status": "passed",
                            "points": 2,
                            "max_points": 2,
                            "hidden": False,
                        }
                    ]
                )
            },
        )
    migrate(engine)
    engine.dispose()
    store = GradebookStore(url)
    total, rows = store.list("alice")
    assert total == 1 and rows[0]["score"] == 2.0
    assert rows[0]["submitted_at"] == "1970-01-01T00:16:40.500Z"  # double precision kept
    store.close()


# -- the recorder: nothing lost while the database is out --------------------------------------


@pytest.mark.postgres
def test_submissions_wait_in_the_backlog_while_postgresql_is_down(postgres_server, caplog):
    caplog.set_level(logging.INFO, logger="jupyter_exec_ext.gradebook")
    asyncio.run(_backlog_while_down(postgres_server, caplog))


async def _backlog_while_down(postgres_server, caplog) -> None:
    recorder = GradebookRecorder(
        GradebookStore(postgres_server.new_database()), retry_s=0.2, retry_max_s=0.5, wait_s=5.0
    )
    try:
        assert await recorder.record(record("alice", score=1.0)) is not None
        postgres_server.kill()
        assert await recorder.record(record("alice", score=2.0)) is None  # queued, answered
        assert await recorder.record(record("bob", score=3.0)) is None
        assert len(recorder.backlog) == 2 and recorder.pending("alice", "add") == 1
        with pytest.raises(GradebookUnavailable):
            await recorder.call(lambda store: store.list())
        assert "kept in the backlog and retried" in caplog.text

        postgres_server.start()
        for _ in range(200):
            if not recorder.backlog:
                break
            await asyncio.sleep(0.05)
        total, rows = await recorder.call(lambda store: store.list())
        assert total == 3 and [r["score"] for r in rows] == [3.0, 2.0, 1.0]
        assert "recorded 2 submission(s) from the backlog" in caplog.text
    finally:
        await asyncio.get_running_loop().run_in_executor(None, recorder.close)


def test_a_full_backlog_drops_the_oldest_and_logs_it_in_full(tmp_path: Path, caplog):
    caplog.set_level(logging.WARNING, logger="jupyter_exec_ext.gradebook")
    asyncio.run(_full_backlog(tmp_path))
    assert (
        "dropped the oldest: user=alice exercise=add score=1/3 late=False at "
        "1970-01-01T00:16:41.000Z"
    ) in caplog.text
    assert "not recorded: user=alice exercise=add score=2/3" in caplog.text


async def _full_backlog(tmp_path: Path) -> None:
    store = GradebookStore(sqlite_url(tmp_path / "g.sqlite"))

    class Broken:  # an error path: a database that refuses every write
        url = store.url
        backend = "sqlite"

        def record(self, _):
            raise StoreError("disk gone")

        def record_many(self, _):
            raise StoreError("disk gone")

        def close(self):
            store.close()

    recorder = GradebookRecorder(Broken(), backlog_max=2, retry_s=10)
    try:
        for score in (1.0, 2.0, 3.0):
            assert await recorder.record(record("alice", score=score, when=1000.0 + score)) is None
        assert [r.score for r in recorder.backlog] == [2.0, 3.0] and recorder.dropped == 1
    finally:
        recorder.close(flush_timeout_s=1)
