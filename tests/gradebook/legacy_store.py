"""The executor service's submission record as it was before the gradebook (its SQLite table written
by hand), kept verbatim so the migration test upgrades a database that this code really wrote."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Optional

_SCHEMA = """
CREATE TABLE IF NOT EXISTS submissions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user TEXT NOT NULL,
    exercise_id TEXT NOT NULL,
    submitted_at REAL NOT NULL,
    status TEXT NOT NULL,
    score REAL NOT NULL,
    max_score REAL NOT NULL,
    tests TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS submissions_user ON submissions (user, id);
"""


class SubmissionStore:
    """Submissions in one SQLite file; one connection shared by the service's worker threads.

    Args:
        path: the database file (created with its folder if missing).
    """

    def __init__(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # One connection behind a lock: SQLite serialises writers anyway, and the service has
        # a handful of worker threads, not a write load that needs a pool.
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")  # readers do not wait for a writer
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def record(self, user: str, result: Any, when: Optional[float] = None) -> int:
        """Stores one graded submission (a ``GradeResult``) and returns its id."""
        tests = [
            {
                "name": t.name,
                "status": t.status,
                "points": t.points,
                "max_points": t.max_points,
                "hidden": t.hidden,
            }
            for t in result.tests
        ]
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO submissions (user, exercise_id, submitted_at, status, score, max_score,"
                " tests) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    user,
                    result.exercise_id,
                    time.time() if when is None else when,
                    getattr(result.status, "value", result.status),
                    result.score,
                    result.max_score,
                    json.dumps(tests),
                ),
            )
            return int(cursor.lastrowid)

    def list(
        self, user: Optional[str] = None, limit: int = 100, offset: int = 0
    ) -> list[dict[str, Any]]:
        """The newest submissions first: of ``user``, or of everyone with ``None``; ``limit``
        rows after skipping ``offset``."""
        where, args = self._where(user)
        with self._lock:
            rows = self._db.execute(
                "SELECT id, user, exercise_id, submitted_at, status, score, max_score, tests "
                f"FROM submissions{where} ORDER BY id DESC LIMIT ? OFFSET ?",
                (*args, limit, offset),
            ).fetchall()
        return [
            {
                "id": r[0],
                "user": r[1],
                "exercise_id": r[2],
                "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r[3])),
                "status": r[4],
                "score": r[5],
                "max_score": r[6],
                "tests": json.loads(r[7]),
            }
            for r in rows
        ]

    def count(self, user: Optional[str] = None) -> int:
        """How many submissions ``user`` (everyone with ``None``) has."""
        where, args = self._where(user)
        with self._lock:
            return int(
                self._db.execute(f"SELECT COUNT(*) FROM submissions{where}", args).fetchone()[0]
            )

    @staticmethod
    def _where(user: Optional[str]) -> tuple[str, tuple]:
        return ("", ()) if user is None else (" WHERE user = ?", (user,))

    def close(self) -> None:
        with self._lock:
            self._db.close()
