"""``jupyter exec-ext grades export`` and ``grades show``, run as an admin would, against a
gradebook on SQLite (a file) and on PostgreSQL (a URL)."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_exec_ext.cli import main
from jupyter_exec_ext.gradebook.store import GradebookStore, sqlite_url

from ..grading.notebooks import exercise_notebook, write_notebook
from .test_store import record


def seed(url: str) -> None:
    store = GradebookStore(url)
    store.record(record("alice", "add", score=3.0, when=1000.0))
    store.record(record("alice", "add", score=1.0, when=1001.0, late=True))
    store.record(record("=cmd|' /C calc'!A0", "add", score=2.0, when=1002.0))
    store.record(record("bob", "square", score=2.0, when=1003.0))
    store.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "exec-submissions.sqlite"
        seed(sqlite_url(path))
        return str(path)  # a plain file path works too
    url = request.getfixturevalue("postgres_cluster").new_database()
    seed(url)
    return url


def test_export_writes_the_gradebook_as_csv_with_a_header_row(
    db: str, tmp_path: Path, capsys
) -> None:
    exercises = tmp_path / "exercises"
    write_notebook(exercises / "add.ipynb", exercise_notebook("add", score_rule="last"))
    assert main(["grades", "export", "--db", db, "--exercises", str(exercises)]) == 0
    captured = capsys.readouterr()
    table = list(csv.reader(io.StringIO(captured.out)))
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
    rows = {(r[0], r[1]): r for r in table[1:]}
    # add counts the last score (its own score_rule), square the best (the default).
    assert rows[("alice", "add")][2:8] == ["1.0", "3.0", "1.0", "3.0", "2", "true"]
    assert rows[("bob", "square")][2] == "2.0"
    # A user name that a spreadsheet would run as a formula is written as text.
    assert ("'=cmd|' /C calc'!A0", "add") in rows
    assert "3 row(s) from" in captured.err

    assert main(["grades", "export", "--db", db, "--exercise", "square"]) == 0
    table = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert [r[0] for r in table[1:]] == ["bob"]


def test_show_prints_one_students_grades_and_latest_submissions(db: str, capsys) -> None:
    assert main(["grades", "show", "alice", "--db", db]) == 0
    out = capsys.readouterr().out
    assert out.startswith("alice: 2 graded submission(s)")
    line = next(row for row in out.splitlines() if row.startswith("add "))
    assert line.split() == ["add", "3", "3", "1", "3", "2", "late", "1970-01-01T00:16:41.000Z"]
    assert "late" in out.splitlines()[-2] or "late" in out.splitlines()[-1]
    assert main(["grades", "show", "nobody-here", "--db", db]) == 1
    assert "nobody-here: no graded submissions" in capsys.readouterr().out


def test_a_missing_database_is_named_and_no_empty_one_is_made(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "typo.sqlite"
    assert main(["grades", "export", "--db", str(missing)]) == 2
    assert f"no gradebook database at {missing}" in capsys.readouterr().err
    assert not missing.exists()


def test_the_command_line_entry_point_exports_to_a_file(tmp_path: Path) -> None:
    path = tmp_path / "g.sqlite"
    seed(sqlite_url(path))
    out = tmp_path / "grades.csv"
    with open(out, "w") as f:
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "jupyter"),
                "exec-ext",
                "grades",
                "export",
                "--db",
                f"sqlite:///{path}",
            ],
            stdout=f,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    assert out.read_text().splitlines()[0].startswith("user,exercise_id,score")
