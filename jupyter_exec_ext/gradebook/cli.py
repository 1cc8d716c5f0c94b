"""``jupyter exec-ext grades …``: the gradebook from the command line, for instructors and admins.

``grades export`` writes the gradebook as CSV to standard output (one row per student and exercise,
with a header row); ``grades show USER`` prints one student's standing per exercise and their latest
submissions. The database is ``--db`` (a URL, or the path of a SQLite file), else
``DOCKER_EXECUTOR_DB_URL``, else the single-user server's own gradebook in the Jupyter data
directory.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Optional

from .rules import CourseRules
from .store import GradebookStore, StoreError, describe_url, sqlite_url


def default_db() -> str:
    """The single-user server's own gradebook file (what the extension uses without db_url)."""
    from jupyter_core.paths import jupyter_data_dir

    return str(Path(jupyter_data_dir()) / "jupyter_exec_ext" / "gradebook.sqlite")


def resolve_db(raw: Optional[str]) -> str:
    """A database URL from ``--db`` (URL or file), the environment, or the default file.

    Raises:
        ValueError: a SQLite file that does not exist (a typo would make an empty gradebook).
    """
    raw = raw or os.environ.get("DOCKER_EXECUTOR_DB_URL") or default_db()
    if "://" in raw:
        if raw.startswith("sqlite:///"):
            path = Path(raw[len("sqlite:///") :])
            if not path.exists():
                raise ValueError(f"no gradebook database at {path}")
        return raw
    if not Path(raw).exists():
        raise ValueError(
            f"no gradebook database at {raw} (give --db a database URL or the path "
            "of the SQLite file, e.g. the executor service's db_path)"
        )
    return sqlite_url(raw)


def _rules(exercises: Optional[str], score_rule: str) -> dict[str, CourseRules]:
    """Each exercise's course rules, read from the exercise directory (if any)."""
    rules: dict[str, CourseRules] = {}
    if not exercises:
        return rules
    from ..grading import ExerciseRegistry

    defaults = CourseRules(score_rule=score_rule)
    for exercise in ExerciseRegistry(Path(exercises)).list():
        rules[exercise.id] = defaults.for_exercise(exercise)
    return rules


def _rows(
    store: GradebookStore, exercise: Optional[str], rules: dict, score_rule: str
) -> list[dict[str, Any]]:
    rows = store.gradebook(exercise)
    fallback = CourseRules(score_rule=score_rule)
    for row in rows:
        row["score"] = rules.get(row["exercise_id"], fallback).score(row["best"], row["last"])
    return rows


def cmd_export(args: argparse.Namespace) -> int:
    from ..server.gradebook_routes import gradebook_csv

    store = _open(args.db)
    try:
        rows = _rows(store, args.exercise, _rules(args.exercises, args.score_rule), args.score_rule)
    finally:
        store.close()
    sys.stdout.write(gradebook_csv(rows))
    print(f"{len(rows)} row(s) from {describe_url(store.url)}", file=sys.stderr)
    return 0


def _number(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:g}"


def cmd_show(args: argparse.Namespace) -> int:
    store = _open(args.db)
    try:
        rows = [
            r
            for r in _rows(
                store, args.exercise, _rules(args.exercises, args.score_rule), args.score_rule
            )
            if r["user"] == args.user
        ]
        total, recent = store.list(args.user, args.exercise, limit=args.last)
    finally:
        store.close()
    if not rows:
        print(
            f"{args.user}: no graded submissions"
            + (f" of {args.exercise!r}" if args.exercise else "")
        )
        return 1
    print(f"{args.user}: {total} graded submission(s)\n")
    header = ("exercise", "score", "best", "last", "max", "attempts", "late", "last submitted")
    table = [header] + [
        (
            r["exercise_id"],
            _number(r["score"]),
            _number(r["best"]),
            _number(r["last"]),
            _number(r["max_score"]),
            str(r["attempts"]),
            "late" if r["late"] else "",
            r["last_at"],
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
    print(f"\nlatest {len(recent)}:")
    for s in recent:
        print(
            f"  #{s['id']:>6}  {s['submitted_at']}  {s['exercise_id']}  "
            f"{_number(s['score'])}/{_number(s['max_score'])}  {s['status']}"
            + ("  late" if s["late"] else "")
        )
    return 0


def _open(db: Optional[str]) -> GradebookStore:
    url = resolve_db(db)
    try:
        store = GradebookStore(url, migrate_schema=False)
        store.ensure_schema()
    except StoreError as e:
        raise ValueError(f"gradebook database {describe_url(url)}: {e}") from None
    return store


def add_parser(sub: Any) -> None:
    """Adds ``grades export`` and ``grades show`` to the ``jupyter exec-ext`` parser."""
    grades = sub.add_parser("grades", help="the gradebook: export it as CSV, show one student")
    actions = grades.add_subparsers(dest="grades_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--db",
        help="database URL (postgresql+psycopg://…, sqlite:///…) or a "
        "SQLite file; default DOCKER_EXECUTOR_DB_URL, else this "
        "user's single-server gradebook",
    )
    common.add_argument("--exercise", help="only this exercise")
    common.add_argument(
        "--exercises",
        help="exercise directory, for each exercise's score_rule "
        "(default: ./exercises if it exists)",
        default="exercises" if Path("exercises").is_dir() else None,
    )
    common.add_argument(
        "--score-rule",
        choices=["best", "last"],
        default="best",
        help="rule of exercises that set none (default best)",
    )
    p = actions.add_parser(
        "export",
        parents=[common],
        help="the gradebook as CSV on standard output (header row first)",
    )
    p.set_defaults(func=cmd_export)
    p = actions.add_parser(
        "show", parents=[common], help="one student's grades and latest submissions"
    )
    p.add_argument("user", help="the student's user name")
    p.add_argument("--last", type=int, default=10, help="latest submissions shown (default 10)")
    p.set_defaults(func=cmd_show)
