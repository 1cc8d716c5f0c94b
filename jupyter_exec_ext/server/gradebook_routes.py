"""The gradebook's REST routes, the same in single-server mode and on the hub's executor service:
a student's own submissions and progress; for instructors, anyone's submissions, the gradebook
(JSON or CSV) and per-test statistics.

Who is an instructor is the base's ``is_instructor``: on a single-user server, its own user when
it runs in instructor mode; on the service, the hub users, groups and roles its configuration
names. Everything else reads only the caller's own records, and hidden tests' details never
reach a student.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections import Counter
from typing import Any, Optional

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler

from ..gradebook.recorder import GradebookRecorder, GradebookUnavailable
from ..gradebook.rules import AttemptsExhaustedError, CourseRules, PastDueError
from ..gradebook.store import SubmissionRecord, redact_test
from ..grading import ExerciseNotFound
from .errors import ApiError

# handlers takes this module's routes in at its end: ExecRouteBase and NAMESPACE exist by then.
from .handlers import NAMESPACE, ExecAPIHandler, ExecRouteBase

log = logging.getLogger(__name__)
security_log = logging.getLogger("jupyter_exec_ext.security")

#: The most rows one page of ``GET submissions`` holds, and the furthest page.
MAX_PAGE = 1000
MAX_OFFSET = 10**9
EXERCISE_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
#: ``?user=*``: everyone's.
EVERYONE = "*"
CSV_COLUMNS = (
    "user",
    "exercise_id",
    "score",
    "best",
    "last",
    "max_score",
    "attempts",
    "late",
    "last_at",
)


#: Characters the service refuses in a user name: ``*`` means "everyone" in ``?user=``, and the
#: others are wildcards or separators in queries, logs and keys. Names are compared exactly.
RESERVED_NAME_CHARACTERS = frozenset("*?[]{},/\\%\"'`")


def check_user_name(name: str, what: str) -> str:
    """Returns ``name`` if the service accepts it as a user name.

    Raises:
        ValueError: it is empty, or holds a reserved character or a control character (a line
            break would forge log lines); the message names ``what`` and the character.
    """
    if not name:
        raise ValueError(f"{what} is empty")
    for char in name:
        if char in RESERVED_NAME_CHARACTERS or not char.isprintable():
            raise ValueError(f"{what} {name!r} contains {char!r}, which the exec service reserves")
    return name


class GradebookDown(ApiError):
    status = 503
    reason = "gradebook_unavailable"


def whole_number(
    handler: tornado.web.RequestHandler,
    name: str,
    default: int,
    low: int,
    high: Optional[int] = None,
) -> int:
    """A query argument as a whole number within bounds (400 naming it otherwise)."""
    raw = handler.get_query_argument(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(f"{name} must be a whole number, got {raw!r}") from None
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"{low} or more"
        raise ApiError(f"{name} must be {bound}, got {value}")
    return value


def csv_cell(value: Any) -> str:
    """A CSV cell that a spreadsheet shows as text: a leading ``= + - @`` (or tab, CR) would make
    a user name a formula."""
    text = (
        ""
        if value is None
        else ("true" if value is True else "false" if value is False else str(value))
    )
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def gradebook_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([csv_cell(row.get(column)) for column in CSV_COLUMNS])
    return out.getvalue()


class Attempt:
    """A submission being graded: it counts against ``max_attempts`` until it is recorded (two
    submissions at once cannot both take the last attempt)."""

    def __init__(self, counts: Counter, key: tuple[str, str]) -> None:
        self.counts, self.key, self.released = counts, key, False
        counts[key] += 1

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.counts[self.key] -= 1
            if self.counts[self.key] <= 0:
                del self.counts[self.key]


async def admit(handler: ExecRouteBase, exercise: Any) -> tuple[bool, Attempt]:
    """Checks a submission against the exercise's course rules before it is graded: whether it
    is late, and an ``Attempt`` to release once it is recorded (or not graded).

    Raises:
        ApiError: past due and late submissions refused (409), or no attempts left (429).
            Instructors are refused neither.
    """
    recorder: Optional[GradebookRecorder] = handler.context.gradebook
    rules = handler.context.rules.for_exercise(exercise)
    late = rules.is_late()
    counts: Counter = handler.context.attempts_in_flight
    user, key = handler.gradebook_user, (handler.gradebook_user, exercise.id)
    if not handler.is_instructor:
        attempts = 0
        if rules.max_attempts is not None and recorder is not None:
            try:
                attempts = await recorder.call(lambda store: store.attempts(user, exercise.id))
            except GradebookUnavailable as e:
                log.warning(
                    "gradebook out (%s): %s's attempts at %r counted from this server's "
                    "backlog only",
                    e,
                    user,
                    exercise.id,
                )
            attempts += recorder.pending(user, exercise.id)
        # No await from here to the Attempt: the count and the reservation are one step.
        try:
            rules.check(exercise.id, attempts + counts[key])
        except (PastDueError, AttemptsExhaustedError) as e:
            refused = ApiError(str(e), status=e.status)
            refused.reason = e.reason
            raise refused from None
    return late, Attempt(counts, key)


async def record(
    handler: ExecRouteBase, exercise: Any, code: str, result: Any, late: bool, attempt: Attempt
) -> Optional[str]:
    """Records a graded submission; its id, or None when the gradebook queued it (database out)
    or the server keeps none."""
    recorder: Optional[GradebookRecorder] = handler.context.gradebook
    try:
        if recorder is None:
            return None
        ident = await recorder.record(
            SubmissionRecord.from_grade(handler.gradebook_user, exercise, code, result, late=late)
        )
        return str(ident) if ident is not None else None
    except Exception:  # the student's answer goes out whatever recording did
        log.exception(
            "gradebook: could not record %s's submission of %r (score %g/%g)",
            handler.gradebook_user,
            exercise.id,
            result.score,
            result.max_score,
        )
        return None
    finally:
        attempt.release()


class GradebookRouteBase(ExecRouteBase):
    """What the gradebook routes share: the recorder, the course rules, the instructor check."""

    @property
    def gradebook(self) -> GradebookRecorder:
        recorder = self.context.gradebook
        if recorder is None:
            raise ApiError("this server keeps no gradebook", status=404)
        return recorder

    def course_rules(self, exercise: Any) -> CourseRules:
        defaults: CourseRules = self.context.rules
        return defaults.for_exercise(exercise) if exercise is not None else defaults

    async def known_exercise(self, exercise_id: str) -> Any:
        """The exercise, or None if the server does not know it (old submissions may name one
        that was removed)."""
        try:
            return await self.exercise(exercise_id)
        except ExerciseNotFound:
            return None

    async def read(self, work: Any) -> Any:
        try:
            return await self.gradebook.call(work)
        except GradebookUnavailable as e:
            log.warning("gradebook read on %s: %s", self.route, e)
            raise GradebookDown(
                "the gradebook database is unreachable right now; try again in a "
                "minute (your submissions are still graded and kept)"
            ) from None

    def require_instructor(self, what: str) -> None:
        if not self.is_instructor:
            security_log.warning(
                "security: %r (not an instructor) asked for %s", self.principal, what
            )
            raise ApiError(f"only instructors may read {what}", status=403)


class SubmissionsRoute(GradebookRouteBase):
    """``GET submissions``: the caller's own graded submissions, newest first, one page at a time
    (``limit``, ``offset``); ``?exercise=`` narrows them. Instructors may pass ``?user=`` (``*``:
    everyone)."""

    route = "submissions"

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        me = self.gradebook_user
        wanted = self.get_query_argument("user", None)
        exercise_id = self.get_query_argument("exercise", None) or None
        if wanted not in (None, EVERYONE):
            try:
                check_user_name(wanted, "user")
            except ValueError as e:
                raise ApiError(str(e)) from None
        if wanted is not None and wanted != me and not self.is_instructor:
            security_log.warning("security: %r asked for the submissions of %r", me, wanted)
            raise ApiError("you may only list your own submissions", status=403)
        who = me if wanted is None else (None if wanted == EVERYONE else wanted)
        limit = whole_number(self, "limit", 50, 1, MAX_PAGE)
        offset = whole_number(self, "offset", 0, 0, MAX_OFFSET)
        total, rows = await self.read(lambda store: store.list(who, exercise_id, limit, offset))
        self.finish(
            {
                "submissions": rows,
                "total": total,
                "limit": limit,
                "offset": offset,
                "next_offset": offset + len(rows) if offset + len(rows) < total else None,
            }
        )


class SubmissionRoute(GradebookRouteBase):
    """``GET submissions/{id}``: one submission in full: the code, each test's result, the
    output. Hidden tests' details for instructors only; another student's is never found."""

    route = "submissions/{id}"

    @tornado.web.authenticated
    @authorized
    async def get(self, submission_id: str) -> None:
        # Ids are 32-bit in the database: anything else is no submission (not a database error).
        number = (
            int(submission_id)
            if submission_id.isascii()
            and submission_id.isdigit()
            and len(submission_id) < 11
            and int(submission_id) < 2**31
            else None
        )
        found = await self.read(lambda store: store.get(number)) if number is not None else None
        instructor = self.is_instructor
        if found is not None and found["user"] != self.gradebook_user and not instructor:
            security_log.warning(
                "security: %r asked for submission %s of %r",
                self.principal,
                submission_id,
                found["user"],
            )
            found = None  # the same answer as for no such submission: nothing to learn from it
        if found is None:
            raise ApiError(f"no submission {submission_id!r} of yours", status=404)
        if not instructor:
            found["tests"] = [redact_test(t) for t in found["tests"]]
        self.finish(found)


class GradebookRoute(GradebookRouteBase):
    """``GET gradebook[?exercise=][&format=csv]``: for instructors, one row per student and
    exercise: best, last and counted score (the exercise's score_rule), attempts, late, last
    time."""

    route = "gradebook"

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        self.require_instructor("the gradebook")
        exercise_id = self.get_query_argument("exercise", None) or None
        fmt = self.get_query_argument("format", "json")
        if fmt not in ("json", "csv"):
            raise ApiError(f"format must be json or csv, got {fmt!r}")
        rows = await self.read(lambda store: store.gradebook(exercise_id))
        registry = self.registry
        known = await self.scheduler.query(registry.list) if registry is not None else []
        by_id = {e.id: e for e in known}
        rules = {exercise_id: self.course_rules(e) for exercise_id, e in by_id.items()}
        defaults = self.course_rules(None)
        for row in rows:
            row["score"] = rules.get(row["exercise_id"], defaults).score(row["best"], row["last"])
        if fmt == "csv":
            content_type = "text/csv; charset=utf-8"
            # Only an id of the exercise schema's form names the file: the header is ours.
            safe = exercise_id is not None and EXERCISE_ID.fullmatch(exercise_id)
            name = f"grades-{exercise_id}.csv" if safe else "grades.csv"
            self.set_header("Content-Disposition", f'attachment; filename="{name}"')
            if isinstance(self, APIHandler):  # jupyter_server's finish sets the type itself
                self.finish(gradebook_csv(rows), set_content_type=content_type)
            else:
                self.set_header("Content-Type", content_type)
                self.finish(gradebook_csv(rows))
            return
        exercises = {row["exercise_id"] for row in rows}
        if exercise_id is None:
            exercises |= set(by_id)
        elif exercise_id in by_id:
            exercises.add(exercise_id)
        self.finish(
            {
                "exercises": sorted(exercises),
                "users": sorted({row["user"] for row in rows}),
                "rows": rows,
            }
        )


class StatsRoute(GradebookRouteBase):
    """``GET exercises/{id}/stats``: for instructors, per test the pass rate among the students,
    how many passed, the median attempts to a first pass, and the commonest failure messages of
    visible tests."""

    route = "exercises/{id}/stats"

    @tornado.web.authenticated
    @authorized
    async def get(self, exercise_id: str) -> None:
        self.require_instructor("the statistics of an exercise")
        exercise = await self.known_exercise(exercise_id)
        order = (
            [t.name for t in exercise.tests] + [r.name for r in exercise.requirements]
            if exercise is not None
            else None
        )
        stats = await self.read(lambda store: store.stats(exercise_id, order))
        if exercise is None and stats["submissions"] == 0:
            raise ExerciseNotFound(exercise_id)
        self.finish(stats)


class ProgressRoute(GradebookRouteBase):
    """``GET exercises/{id}/progress``: the caller's own standing on an exercise: its course rules
    (due, late policy, attempts), attempts used and left, best and last score."""

    route = "exercises/{id}/progress"

    @tornado.web.authenticated
    @authorized
    async def get(self, exercise_id: str) -> None:
        exercise = await self.exercise(exercise_id)
        rules = self.course_rules(exercise)
        me = self.gradebook_user
        mine = await self.read(lambda store: store.progress(me, exercise.id))
        attempts = mine["attempts"] + self.gradebook.pending(me, exercise.id)
        self.finish(
            {
                "exercise_id": exercise.id,
                "due": rules.due_iso(),
                "late_policy": rules.late_policy,
                "max_attempts": rules.max_attempts,
                "attempts": attempts,
                "attempts_left": (
                    max(rules.max_attempts - attempts, 0)
                    if rules.max_attempts is not None
                    else None
                ),
                "score_rule": rules.score_rule,
                "best": mine["best"],
                "last": mine["last"],
                "max_score": mine["max_score"]
                if mine["max_score"] is not None
                else exercise.max_score,
                "late": rules.is_late(),
            }
        )


# -- the gradebook's routes as the jupyter_server extension serves them ---------------------------


class SubmissionsHandler(SubmissionsRoute, ExecAPIHandler):
    """``GET submissions`` in the jupyter_server extension."""


class SubmissionHandler(SubmissionRoute, ExecAPIHandler):
    """``GET submissions/{id}`` in the jupyter_server extension."""


class GradebookHandler(GradebookRoute, ExecAPIHandler):
    """``GET gradebook`` in the jupyter_server extension."""


class StatsHandler(StatsRoute, ExecAPIHandler):
    """``GET exercises/{id}/stats`` in the jupyter_server extension."""


class ProgressHandler(ProgressRoute, ExecAPIHandler):
    """``GET exercises/{id}/progress`` in the jupyter_server extension."""


#: The gradebook's part of the extension's route table (``handlers.ROUTES`` takes it in).
GRADEBOOK_ROUTES: list[tuple[str, type[ExecAPIHandler]]] = [
    (f"{NAMESPACE}/submissions", SubmissionsHandler),
    (rf"{NAMESPACE}/submissions/(?P<submission_id>[^/]+)", SubmissionHandler),
    (f"{NAMESPACE}/gradebook", GradebookHandler),
    (rf"{NAMESPACE}/exercises/(?P<exercise_id>[^/]+)/stats", StatsHandler),
    (rf"{NAMESPACE}/exercises/(?P<exercise_id>[^/]+)/progress", ProgressHandler),
]
