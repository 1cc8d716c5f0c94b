"""The gradebook's store: every graded submission in a SQL database behind one interface.

SQLite (one file, the default) or PostgreSQL (a URL), through SQLAlchemy 2; the schema is made and
upgraded by the Alembic migrations next to this module, also from the table the executor service
kept before there was a gradebook. Every method blocks: servers call them off the event loop
(``GradebookRecorder``).
"""

from __future__ import annotations

import json
import logging
import statistics
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
#: The revision of the table the executor service wrote by hand before the gradebook.
FIRST_REVISION = "0001"
#: PostgreSQL advisory lock held while migrating: replicas of the service that start at once on
#: one database take turns (the first creates the schema, the others find it done).
MIGRATION_LOCK = 0x6A657865  # "jexe"
#: Failure messages of one test the statistics keep apart (longer ones are cut here).
MESSAGE_CHARS = 300
#: Common failure messages a test's statistics name.
TOP_FAILURES = 5

metadata = sa.MetaData()
#: The schema at the newest revision (the migrations are the authority; this mirrors them).
submissions = sa.Table(
    "submissions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("user_name", sa.String(255), nullable=False),
    sa.Column("exercise_id", sa.String(255), nullable=False),
    sa.Column("submitted_at", sa.Float(precision=53), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("score", sa.Float(precision=53), nullable=False),
    sa.Column("max_score", sa.Float(precision=53), nullable=False),
    sa.Column("tests", sa.Text, nullable=False),
    sa.Column("exercise_version", sa.String(64), nullable=False, server_default=""),
    sa.Column("code", sa.Text, nullable=False, server_default=""),
    sa.Column("stdout", sa.Text, nullable=False, server_default=""),
    sa.Column("stderr", sa.Text, nullable=False, server_default=""),
    sa.Column("message", sa.Text, nullable=False, server_default=""),
    sa.Column("duration_ms", sa.Integer, nullable=False, server_default="0"),
    sa.Column("late", sa.Boolean, nullable=False, server_default=sa.false()),
    sqlite_autoincrement=True,
)
#: One row per student and exercise, updated with each submission in its transaction.
grades = sa.Table(
    "grades",
    metadata,
    sa.Column("user_name", sa.String(255), primary_key=True),
    sa.Column("exercise_id", sa.String(255), primary_key=True),
    sa.Column("best", sa.Float(precision=53), nullable=False),
    sa.Column("last", sa.Float(precision=53), nullable=False),
    sa.Column("max_score", sa.Float(precision=53), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("late", sa.Boolean, nullable=False),
    sa.Column("last_at", sa.Float(precision=53), nullable=False),
    sa.Column("last_id", sa.Integer, nullable=False),
)


#: PostgreSQL: a submission and its student's gradebook row in one statement (see _grade_upsert).
PG_RECORD = sa.text("""
WITH s AS (
  INSERT INTO submissions (user_name, exercise_id, exercise_version, submitted_at, status, score,
                           max_score, tests, code, stdout, stderr, message, duration_ms, late)
  VALUES (:user_name, :exercise_id, :exercise_version, :submitted_at, :status, :score,
          :max_score, :tests, :code, :stdout, :stderr, :message, :duration_ms, :late)
  RETURNING id, user_name, exercise_id, score, max_score, late, submitted_at
), g AS (
  INSERT INTO grades AS o (user_name, exercise_id, best, last, max_score, attempts, late, last_at,
                           last_id)
  SELECT user_name, exercise_id, score, score, max_score, 1, late, submitted_at, id FROM s
  ON CONFLICT (user_name, exercise_id) DO UPDATE SET
    best = GREATEST(o.best, excluded.best),
    attempts = o.attempts + 1,
    late = o.late OR excluded.late,
    last = CASE WHEN excluded.last_id > o.last_id THEN excluded.last ELSE o.last END,
    max_score = CASE WHEN excluded.last_id > o.last_id THEN excluded.max_score ELSE o.max_score END,
    last_at = CASE WHEN excluded.last_id > o.last_id THEN excluded.last_at ELSE o.last_at END,
    last_id = GREATEST(o.last_id, excluded.last_id)
)
SELECT id FROM s
""")


def iso_time(epoch: float) -> str:
    """Epoch seconds as ISO 8601 UTC with milliseconds: ``2026-11-30T15:04:05.123Z`` (by hand:
    the gradebook formats thousands of these per answer, datetime is slower)."""
    ms = round(epoch * 1000)
    t = time.gmtime(ms // 1000)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (t[0], t[1], t[2], t[3], t[4], t[5], ms % 1000)


@dataclass
class SubmissionRecord:
    """One graded submission as the gradebook keeps it. ``tests`` are each test's full verdict
    (``TestResult.to_dict()`` of a grading that revealed hidden tests): readers redact hidden
    ones for students."""

    user: str
    exercise_id: str
    exercise_version: str
    code: str
    status: str
    score: float
    max_score: float
    tests: list = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    message: str = ""
    duration_ms: int = 0
    late: bool = False
    submitted_at: float = field(default_factory=time.time)

    @classmethod
    def from_grade(
        cls,
        user: str,
        exercise: Any,
        code: str,
        result: Any,
        *,
        late: bool = False,
        when: Optional[float] = None,
    ) -> SubmissionRecord:
        """The record of ``result`` (a ``GradeResult``) of ``code`` for ``exercise``."""
        return cls(
            user=user,
            exercise_id=result.exercise_id,
            exercise_version=getattr(exercise, "version", ""),
            code=code,
            status=getattr(result.status, "value", result.status),
            score=result.score,
            max_score=result.max_score,
            tests=[full_test_dict(t) for t in result.tests],
            stdout=result.stdout,
            stderr=result.stderr,
            message=result.message,
            duration_ms=int(result.duration_ms),
            late=late,
            submitted_at=time.time() if when is None else when,
        )

    def row(self) -> dict[str, Any]:
        return {
            "user_name": self.user,
            "exercise_id": self.exercise_id,
            "exercise_version": self.exercise_version,
            "submitted_at": self.submitted_at,
            "status": self.status,
            "score": self.score,
            "max_score": self.max_score,
            "tests": json.dumps(self.tests),
            "code": self.code,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "message": self.message,
            "duration_ms": self.duration_ms,
            "late": self.late,
        }


def full_test_dict(test: Any) -> dict[str, Any]:
    """A test's verdict with every detail (hidden tests' too: they are stored for instructors)."""
    data = {
        "name": test.name,
        "status": test.status,
        "points": test.points,
        "max_points": test.max_points,
        "hidden": test.hidden,
        "message": test.message,
    }
    if test.expected is not None:
        data["expected"] = test.expected
        data["actual"] = test.actual
    return data


def redact_test(test: dict[str, Any]) -> dict[str, Any]:
    """What a student may see of a stored test's verdict: a hidden test's name, pass or fail
    and points, never its message, expected or actual output (as the grader answers them)."""
    if not test.get("hidden"):
        return dict(test)
    passed = test.get("status") == "passed"
    return {
        "name": test.get("name", ""),
        "status": "passed" if passed else "failed",
        "points": test.get("points", 0.0),
        "max_points": test.get("max_points", 0.0),
        "hidden": True,
        "message": "hidden test passed" if passed else "hidden test failed",
    }


class StoreError(RuntimeError):
    """The database cannot be reached or refused the operation; the message says which."""


def sqlite_url(path: Union[str, Path]) -> str:
    return f"sqlite:///{Path(path).expanduser().resolve()}"


def describe_url(url: str) -> str:
    """The URL with its password hidden, for logs and messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparseable URL: say nothing of what it holds
        return "<unparseable database URL>"


def make_engine(url: str) -> Engine:
    """An engine for ``url``: SQLite files with WAL (readers never wait for the writer) and a
    busy timeout; other servers with a short connect timeout and pre-ping (a restarted server's
    stale connections are replaced, a down one fails within seconds instead of hanging).

    Raises:
        StoreError: the URL is not one SQLAlchemy understands, or its driver is not installed.
    """
    try:
        parsed = make_url(url)
    except Exception:
        raise StoreError(
            f"not a database URL: {describe_url(url)!r} (e.g. sqlite:///path/grades."
            "sqlite or postgresql+psycopg://user:password@host/db)"
        ) from None
    try:
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(parsed, connect_args={"timeout": 15})

            @sa.event.listens_for(engine, "connect")
            def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.close()

            return engine
        connect_args = {"connect_timeout": 5} if parsed.get_backend_name() == "postgresql" else {}
        # No pre-ping (a round trip per use): a connection a restarted server dropped fails its
        # statement, the pool is invalidated, and the record waits in the backlog for the retry.
        return sa.create_engine(
            parsed, pool_size=5, max_overflow=5, pool_recycle=3600, connect_args=connect_args
        )
    except ImportError as e:
        raise StoreError(f"the driver of {describe_url(url)} is not installed ({e})") from None
    except sa.exc.ArgumentError as e:
        raise StoreError(f"unusable database URL {describe_url(url)}: {e}") from None


def migrate(engine: Engine) -> None:
    """Brings the schema to the newest revision: creates it in an empty database, stamps a
    database of the service's old hand-made table with the first revision, then runs every
    migration not yet applied. Idempotent."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Released when the transaction ends.
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
            )
        tables = set(sa.inspect(connection).get_table_names())
        config.attributes["connection"] = connection
        if "submissions" in tables and "alembic_version" not in tables:
            log.info(
                "gradebook: the submission table predates migrations; stamping it revision %s",
                FIRST_REVISION,
            )
            command.stamp(config, FIRST_REVISION)
        command.upgrade(config, "head")


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


class GradebookStore:
    """Graded submissions in one database. Blocking; thread-safe (one engine, a pool of
    connections).

    Args:
        url: ``sqlite:///…`` or ``postgresql+psycopg://…``.
        migrate_schema: run the migrations now (what servers do on start).

    Raises:
        StoreError: the URL is unusable (not an outage: a server with the database down still
            starts; the migrations run at the first write that reaches the database).
    """

    def __init__(self, url: str, migrate_schema: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._migrated = False
        self._migrating = threading.Lock()
        if migrate_schema:
            try:
                self.ensure_schema()
            except StoreError as e:
                log.warning(
                    "gradebook database %s: %s; submissions are kept in memory until it answers",
                    describe_url(url),
                    e,
                )

    def __repr__(self) -> str:
        return f"GradebookStore({describe_url(self.url)})"

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def ensure_schema(self) -> None:
        """Runs the migrations once per store (again after a failure).

        Raises:
            StoreError: the database cannot be reached.
        """
        if self._migrated:
            return
        with self._migrating:
            if self._migrated:
                return
            try:
                migrate(self.engine)
            except (sa.exc.OperationalError, sa.exc.InterfaceError) as e:
                raise StoreError(f"cannot reach the database: {_short(e)}") from None
            self._migrated = True

    def _run(self, work: Any, write: bool = False, autocommit: bool = False) -> Any:
        self.ensure_schema()
        try:
            if autocommit:  # one statement: atomic by itself, no BEGIN and COMMIT round trips
                with self.engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT"
                ) as connection:
                    return work(connection)
            with self.engine.begin() if write else self.engine.connect() as connection:
                return work(connection)
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as e:
            raise StoreError(f"the database did not answer: {_short(e)}") from None

    # -- writing ------------------------------------------------------------------------------

    def record(self, record: SubmissionRecord) -> int:
        """Stores one submission and returns its id."""
        return self.record_many([record])[0]

    def record_many(self, records: Iterable[SubmissionRecord]) -> list[int]:
        """Stores submissions in one transaction (all or none) and returns their ids in order."""
        rows = [r.row() for r in records]

        if self.backend == "postgresql":
            # One statement per submission (the row and its gradebook row, atomic as one
            # statement), one round trip: what recording adds to a submission.
            def insert(connection: Any) -> list[int]:
                return [int(connection.execute(PG_RECORD, row).scalar_one()) for row in rows]

            return self._run(insert, write=True, autocommit=len(rows) == 1)

        def insert_each(connection: Any) -> list[int]:
            ids = []
            for row in rows:
                ident = int(
                    connection.execute(submissions.insert().values(**row)).inserted_primary_key[0]
                )
                connection.execute(self._grade_upsert(row, ident))
                ids.append(ident)
            return ids

        return self._run(insert_each, write=True)

    def _grade_upsert(self, row: dict[str, Any], ident: int) -> Any:
        """The student's row of the gradebook with this submission counted: best so far, one
        more attempt, late if any was; the last score and time only if it is the newest (two
        transactions may commit out of order)."""
        if self.backend == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        statement = insert(grades).values(
            user_name=row["user_name"],
            exercise_id=row["exercise_id"],
            best=row["score"],
            last=row["score"],
            max_score=row["max_score"],
            attempts=1,
            late=row["late"],
            last_at=row["submitted_at"],
            last_id=ident,
        )
        new, old = statement.excluded, grades.c
        newer = new.last_id > old.last_id
        return statement.on_conflict_do_update(
            index_elements=[old.user_name, old.exercise_id],
            set_={
                "best": sa.case((new.best > old.best, new.best), else_=old.best),
                "attempts": old.attempts + 1,
                "late": sa.or_(old.late, new.late),
                "last": sa.case((newer, new.last), else_=old.last),
                "max_score": sa.case((newer, new.max_score), else_=old.max_score),
                "last_at": sa.case((newer, new.last_at), else_=old.last_at),
                "last_id": sa.case((newer, new.last_id), else_=old.last_id),
            },
        )

    def rebuild_grades(self) -> None:
        """Recomputes the gradebook's rows from every submission (after rows were written
        around ``record``, as a benchmark's bulk seed does)."""
        from .migrations_sql import BACKFILL

        def rebuild(connection: Any) -> None:
            connection.execute(grades.delete())
            connection.exec_driver_sql(BACKFILL)

        self._run(rebuild, write=True)

    # -- reading ------------------------------------------------------------------------------

    @staticmethod
    def _filters(user: Optional[str], exercise_id: Optional[str]) -> list:
        where = []
        if user is not None:
            where.append(submissions.c.user_name == user)
        if exercise_id is not None:
            where.append(submissions.c.exercise_id == exercise_id)
        return where

    def list(
        self,
        user: Optional[str] = None,
        exercise_id: Optional[str] = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[int, list[dict[str, Any]]]:
        """The total and one page of submission summaries, newest first; ``None`` filters
        nothing."""
        where = self._filters(user, exercise_id)
        c = submissions.c
        columns = [
            c.id,
            c.user_name,
            c.exercise_id,
            c.exercise_version,
            c.submitted_at,
            c.score,
            c.max_score,
            c.status,
            c.late,
            c.duration_ms,
        ]

        def read(connection: Any) -> tuple[int, list]:
            total = connection.execute(
                sa.select(sa.func.count()).select_from(submissions).where(*where)
            ).scalar_one()
            rows = connection.execute(
                sa.select(*columns).where(*where).order_by(c.id.desc()).limit(limit).offset(offset)
            ).all()
            # Row._mapping is SQLAlchemy's public API despite its underscore.
            return int(total), [self._summary(r._mapping) for r in rows]  # noqa: SLF001

        return self._run(read)

    @staticmethod
    def _summary(row: Any) -> dict[str, Any]:
        return {
            "id": str(row["id"]),
            "user": row["user_name"],
            "exercise_id": row["exercise_id"],
            "exercise_version": row["exercise_version"],
            "submitted_at": iso_time(row["submitted_at"]),
            "score": row["score"],
            "max_score": row["max_score"],
            "status": row["status"],
            "late": bool(row["late"]),
            "duration_ms": int(row["duration_ms"]),
        }

    def get(self, submission_id: int) -> Optional[dict[str, Any]]:
        """One submission in full (hidden tests unredacted), or None."""

        def read(connection: Any) -> Any:
            return connection.execute(
                sa.select(submissions).where(submissions.c.id == submission_id)
            ).first()

        row = self._run(read)
        if row is None:
            return None
        row = row._mapping  # noqa: SLF001 (SQLAlchemy's public Row API)
        tests = json.loads(row["tests"])
        for test in tests:
            test.setdefault("message", "")  # records older than the gradebook kept none
        return {
            **self._summary(row),
            "code": {"code": row["code"]},
            "tests": tests,
            "stdout": row["stdout"],
            "stderr": row["stderr"],
            "message": row["message"],
        }

    def attempts(self, user: str, exercise_id: str) -> int:
        """How many graded submissions ``user`` has of ``exercise_id``."""

        def read(connection: Any) -> int:
            return int(
                connection.execute(
                    sa.select(sa.func.count())
                    .select_from(submissions)
                    .where(*self._filters(user, exercise_id))
                ).scalar_one()
            )

        return self._run(read)

    def progress(self, user: str, exercise_id: str) -> dict[str, Any]:
        """``user``'s attempts at ``exercise_id``, best and last score, the last max score and
        whether any was late; scores None without a submission."""
        g = grades.c

        def read(connection: Any) -> Any:
            return connection.execute(
                sa.select(g.attempts, g.best, g.last, g.max_score, g.late).where(
                    g.user_name == user, g.exercise_id == exercise_id
                )
            ).first()

        row = self._run(read)
        if row is None:
            return {"attempts": 0, "best": None, "last": None, "max_score": None, "any_late": False}
        return {
            "attempts": int(row[0]),
            "best": row[1],
            "last": row[2],
            "max_score": row[3],
            "any_late": bool(row[4]),
        }

    def gradebook(self, exercise_id: Optional[str] = None) -> list[dict[str, Any]]:
        """One row per student and exercise: best and last score, the last max score, attempts,
        whether any submission was late, the last time; ordered by user, then exercise."""
        g = grades.c
        query = sa.select(
            g.user_name, g.exercise_id, g.best, g.attempts, g.late, g.last, g.max_score, g.last_at
        ).order_by(g.user_name, g.exercise_id)
        if exercise_id is not None:
            query = query.where(g.exercise_id == exercise_id)

        def read(connection: Any) -> list:
            return connection.execute(query).all()

        return [
            {
                "user": r[0],
                "exercise_id": r[1],
                "best": r[2],
                "attempts": int(r[3]),
                "late": bool(r[4]),
                "last": r[5],
                "max_score": r[6],
                "last_at": iso_time(r[7]),
            }
            for r in self._run(read)
        ]

    def users(self) -> list[str]:
        """Everyone with a submission, sorted."""

        def read(connection: Any) -> list:
            return (
                connection.execute(
                    sa.select(grades.c.user_name).distinct().order_by(grades.c.user_name)
                )
                .scalars()
                .all()
            )

        return list(self._run(read))

    def exercise_ids(self) -> list[str]:
        """Every exercise with a submission, sorted."""

        def read(connection: Any) -> list:
            return (
                connection.execute(
                    sa.select(grades.c.exercise_id).distinct().order_by(grades.c.exercise_id)
                )
                .scalars()
                .all()
            )

        return list(self._run(read))

    def stats(self, exercise_id: str, test_order: Optional[list[str]] = None) -> dict[str, Any]:
        """Per test of ``exercise_id``: pass rate among the students who were graded on it, how
        many passed, the median attempts to a student's first pass, and (visible tests only) the
        commonest failure messages. Tests in ``test_order`` first (the exercise's current
        tests), then any that only older versions had."""
        c = submissions.c

        def read(connection: Any) -> list:
            return connection.execute(
                sa.select(c.user_name, c.tests).where(c.exercise_id == exercise_id).order_by(c.id)
            ).all()

        rows = self._run(read)
        attempts: Counter = Counter()
        first_pass: dict[str, dict[str, int]] = defaultdict(dict)  # test -> user -> attempt
        attempted: dict[str, set] = defaultdict(set)
        hidden: dict[str, bool] = {}
        failures: dict[str, Counter] = defaultdict(Counter)
        seen_order: list[str] = []
        for user, tests_json in rows:
            attempts[user] += 1
            for test in json.loads(tests_json):
                name = test.get("name", "")
                if name not in hidden:
                    seen_order.append(name)
                hidden[name] = bool(test.get("hidden"))
                attempted[name].add(user)
                if test.get("status") == "passed":
                    first_pass[name].setdefault(user, attempts[user])
                elif not test.get("hidden"):
                    failures[name][
                        (test.get("message") or test.get("status") or "")[:MESSAGE_CHARS]
                    ] += 1
        order = [n for n in (test_order or []) if n in hidden]
        order += [n for n in seen_order if n not in order]
        tests = []
        for name in order:
            passes = first_pass[name]
            tests.append(
                {
                    "name": name,
                    "hidden": hidden[name],
                    "pass_rate": _rate(len(passes), len(attempted[name])),
                    "passed_students": len(passes),
                    "attempted_students": len(attempted[name]),
                    "median_attempts_to_first_pass": statistics.median(passes.values())
                    if passes
                    else None,
                    "failures": []
                    if hidden[name]
                    else [
                        {"message": m, "count": n}
                        for m, n in failures[name].most_common(TOP_FAILURES)
                    ],
                }
            )
        return {
            "exercise_id": exercise_id,
            "submissions": len(rows),
            "students": len(attempts),
            "tests": tests,
        }

    def close(self) -> None:
        self.engine.dispose()


def _short(error: BaseException) -> str:
    """The first line of a driver error, without SQLAlchemy's background link."""
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    return text[0] if text else type(error).__name__
