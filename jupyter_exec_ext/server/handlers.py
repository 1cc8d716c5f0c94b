"""Thin REST handlers under ``{base_url}api/exec/v1/`` and the one route table.

Handlers parse, delegate and answer; the rules live in ``payloads``, the blocking work in the
scheduler, and every error becomes a JSON answer in one place (``ExecRouteBase.write_error``).
Each route is written once, as a ``…Route`` class on ``ExecRouteBase`` that knows nothing of who
authenticates; ``ExecAPIHandler`` (jupyter_server) and the executor service's hub-authenticated
base each supply the authentication (``current_user``, ``authorizer``).
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import logging
import os
from typing import Any, Optional

import tornado.web
from jupyter_server.auth import IdentityProvider
from jupyter_server.auth.decorator import allow_unauthenticated, authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado.httputil import responses

from ..grading import (
    DataFilesError,
    Exercise,
    ExerciseError,
    ExerciseNotFound,
    ExerciseRegistry,
    Grader,
)
from ..sandbox import (
    DockerUnavailableError,
    ExecutorImageMissingError,
    LimitError,
    SandboxUnavailableError,
    Status,
)
from .context import CONTEXT_KEY, ExecContext
from .errors import ApiError, PayloadTooLargeError, RateLimitedError
from .metrics import ExecMetrics
from .payloads import (
    RequestBounds,
    execute_reply,
    health_status,
    parse_execute,
    parse_json_object,
    parse_submit,
)
from .ratelimit import SubmissionLimitedError, SubmissionRateLimiter
from .scheduler import RunScheduler

log = logging.getLogger(__name__)
security_log = logging.getLogger("jupyter_exec_ext.security")

NAMESPACE = "api/exec/v1"
#: What a client sees for an error we did not foresee; the traceback goes to the server log only.
INTERNAL_ERROR_MESSAGE = (
    "internal error in the exec extension; the admin can find details in the server log"
)
#: The ``reason`` of an unavailability error names its cause, so a client says which part is
#: missing instead of guessing from the status (an error's own ``reason`` attribute wins).
UNAVAILABLE_REASONS: tuple[tuple[type, str], ...] = (
    (DockerUnavailableError, "docker_unavailable"),
    (ExecutorImageMissingError, "image_missing"),
    (SandboxUnavailableError, "sandbox_unavailable"),
)


class ExecRouteBase(tornado.web.RequestHandler):
    """Base of every route, whoever authenticates: access to the shared parts, JSON errors, one
    log line per request."""

    auth_resource = "exec"
    #: Short route name for the request log.
    route = ""
    #: Successful answers are logged at this level (health probes would flood INFO).
    ok_log_level = logging.INFO
    #: Domain errors and the status they answer (first match wins); None means the error's own.
    error_statuses: tuple[tuple[type, Optional[int]], ...] = (
        (ApiError, None),
        (ExerciseNotFound, 404),
        (DataFilesError, 409),
        (LimitError, 400),
        (SandboxUnavailableError, 503),
    )

    @property
    def context(self) -> ExecContext:
        """The parts every route shares (``context.build_context``)."""
        return self.settings[CONTEXT_KEY]

    @property
    def runner(self) -> Any:
        """What runs ``POST execute``: the result cache in front of the sandbox."""
        return self.context.runner

    @property
    def scheduler(self) -> RunScheduler:
        return self.context.scheduler

    @property
    def bounds(self) -> RequestBounds:
        return self.context.bounds

    @property
    def registry(self) -> Optional[ExerciseRegistry]:
        """The authoritative exercise notebooks; None when the server has no exercise directory."""
        return self.context.registry

    async def exercise(self, exercise_id: str) -> Exercise:
        """Looks an exercise up (reading notebooks off the event loop).

        Raises:
            ExerciseNotFound: no such exercise (404).
            ApiError: several notebooks claim the id (409; the files are named in the log only).
        """
        registry = self.registry
        if registry is None:
            raise ExerciseNotFound(exercise_id)
        try:
            return await self.scheduler.query(lambda: registry.get(exercise_id))
        except ExerciseError as e:
            log.warning("%s", e)
            raise ApiError(
                f"exercise {exercise_id!r} is defined twice on the server; "
                "the instructor must fix it (details in the server log)",
                status=409,
            ) from None

    @property
    def user_name(self) -> str:
        """The authenticated user's name, ``-`` before or without authentication."""
        try:
            user = self.current_user
        except RuntimeError:  # jupyter_server raises when asked before prepare() ran (e.g. a 405)
            return "-"
        return getattr(user, "username", None) or "-"

    @property
    def principal(self) -> str:
        """Whom the per-user cap counts and submissions are recorded for."""
        return self.user_name

    @property
    def gradebook_user(self) -> str:
        """Whose records the caller's submissions are and which they read."""
        return self.principal

    @property
    def is_instructor(self) -> bool:
        """Whether the caller may read everyone's records and hidden tests' details. On a
        single-user server: its own user, when the server runs in instructor mode (the executor
        service decides by hub users, groups and roles)."""
        return self.context.instructor

    @property
    def metrics(self) -> Optional[ExecMetrics]:
        """The ``ExecMetrics`` of this server, or None."""
        return self.context.metrics

    @property
    def data_files_cap(self) -> Optional[int]:
        """The largest total size of an exercise's data files (the grader's), or None."""
        grader = self.context.grader
        return grader.data_files_bytes if grader is not None else None

    async def submission_graded(self, exercise: Exercise, result: Any) -> None:
        """Called after each graded submission (recorded in the gradebook by then), with the
        full result: hidden tests' details included."""

    def json_body(self) -> dict[str, Any]:
        """The request body as a JSON object (400/413 otherwise)."""
        return parse_json_object(self.request.body, self.bounds.max_body_bytes)

    @classmethod
    def allowed_methods(cls) -> list[str]:
        """The HTTP methods this route implements."""
        return [
            m
            for m in ("GET", "POST", "PUT", "PATCH", "DELETE")
            if getattr(cls, m.lower()) is not getattr(tornado.web.RequestHandler, m.lower())
        ]

    # -- errors: one place --------------------------------------------------------------------

    def _domain_status(self, error: Optional[BaseException]) -> Optional[int]:
        for kind, status in self.error_statuses:
            if isinstance(error, kind):
                return status if status is not None else getattr(error, "status", 400)
        return None

    def _describe(self, status_code: int, error: Optional[BaseException]) -> tuple[int, str]:
        """The status and the message a client may see for ``error``."""
        status = self._domain_status(error)
        if status is not None:
            # The detail of an unreachable engine (socket paths, library words) is for the log.
            message = (
                "Docker not available" if isinstance(error, DockerUnavailableError) else str(error)
            )
            if isinstance(error, ExerciseNotFound):
                message = f"unknown exercise {error.exercise_id!r}"
            return status, message
        if isinstance(error, tornado.web.HTTPError):
            message = error.log_message
            if message and error.args:
                message = message % error.args
            return error.status_code, message or responses.get(error.status_code, "error")
        if error is not None:
            return 500, INTERNAL_ERROR_MESSAGE
        return status_code, responses.get(status_code, "error")

    def log_exception(self, typ: Any, value: Optional[BaseException], tb: Any) -> None:
        """Domain errors are expected answers: logged in a line, without a traceback."""
        status = self._domain_status(value)
        if status is None:
            super().log_exception(typ, value, tb)  # tracebacks of real bugs go to the server log
        elif isinstance(value, SandboxUnavailableError):
            log.warning("%s: %s", self.route, value)
        elif isinstance(value, PayloadTooLargeError):
            security_log.warning(
                "security: user %r sent an oversized request to %s: %s",
                self.principal,
                self.route,
                value,
            )
        else:
            log.debug("%s refused with %d: %s", self.route, status, value)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Answers every error as ``{"message", "reason"}`` JSON with the right status."""
        error = kwargs.get("exc_info", (None, None, None))[1]
        status, message = self._describe(status_code, error)
        self.set_status(status)
        if isinstance(error, RateLimitedError):
            self.set_header("Retry-After", str(error.retry_after_s))
        if status == 405:  # RFC 9110: say which methods the route has
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        if status == 403:
            security_log.warning(
                "security: refused %s %s from %s (not authenticated or not authorized)",
                self.request.method,
                self.route,
                self.request.remote_ip,
            )
        reason = (getattr(error, "reason", None) if isinstance(error, ApiError) else None) or next(
            (word for kind, word in UNAVAILABLE_REASONS if isinstance(error, kind)), None
        )
        self.set_header("Content-Type", "application/json")
        self.finish(
            json.dumps({"message": message, "reason": reason or responses.get(status, "error")})
        )

    def on_finish(self) -> None:
        """One line per request: method, route, user (as the per-user cap counts them), status,
        duration; never the body."""
        status = self.get_status()
        level = self.ok_log_level if status < 400 else logging.INFO
        log.log(
            level,
            "%s %s user=%s status=%d duration_ms=%d",
            self.request.method,
            self.route,
            self.principal,
            status,
            round(1000 * self.request.request_time()),
        )


def server_account() -> str:
    """The name of the account this server runs as (its one user in single-server mode)."""
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry and no USER variable (some containers)
        return f"uid-{os.getuid()}"


class ExecAPIHandler(ExecRouteBase, ExtensionHandlerMixin, APIHandler):
    """The routes as a jupyter_server extension serves them: jupyter_server authenticates and
    authorizes (resource ``exec``)."""

    @property
    def principal(self) -> str:
        """The user, except that with jupyter_server's own token auth every token holder is one
        principal. Its identity providers give each cookie-less token request a fresh anonymous
        user; counting those apart would void the per-user cap."""
        standard = type(self.identity_provider).get_user is IdentityProvider.get_user
        if standard and self.token_authenticated:
            return "token-holder"
        return self.user_name

    @property
    def gradebook_user(self) -> str:
        """With jupyter_server's own identity provider, every caller is the server's one user
        (token holders, and browser sessions whose anonymous names change with each login),
        recorded under the account the server runs as; a custom provider names real users."""
        if type(self.identity_provider).get_user is IdentityProvider.get_user:
            return server_account()
        return self.user_name


class ExecuteRoute(ExecRouteBase):
    """``POST execute``: run code in the sandbox, answer its result (200 also when the code fails)."""

    route = "execute"

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        payload = parse_execute(self.json_body(), self.bounds)
        # One user's runs may follow each other in one container (reset in between); never another's.
        request = dataclasses.replace(payload.request, reuse_key=self.principal)
        if payload.exercise_id is not None:
            # A run from an exercise notebook gets the exercise's data files (read off the loop).
            exercise = await self.exercise(payload.exercise_id)
            cap = self.data_files_cap
            files = await self.scheduler.query(lambda: exercise.read_data_files(cap))
            request = dataclasses.replace(request, files=files)
        runner = self.runner
        result = await self.scheduler.run(
            self.principal, lambda: runner.run(request, use_cache=payload.use_cache)
        )
        if self.metrics is not None:
            self.metrics.execution(result)
        self.finish(execute_reply(result, payload.notes))


class DockerStatusRoute(ExecRouteBase):
    """``GET docker/status``: engine, executor image, runs in flight and queued, counters."""

    route = "docker/status"

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        engine = await self.scheduler.query(self.runner.status)
        bounds = self.bounds
        limiter: Optional[SubmissionRateLimiter] = self.context.submit_limiter
        self.finish(
            {
                "docker": engine,
                "runs": self.scheduler.snapshot(),
                "limits": {
                    "default": bounds.default_limits.to_dict(),
                    "max": bounds.max_limits.to_dict(),
                },
                "max_code_bytes": bounds.max_code_bytes,
                "max_stdin_bytes": bounds.max_stdin_bytes,
                **({"submissions": limiter.snapshot()} if limiter is not None else {}),
            }
        )


class HealthRoute(ExecRouteBase):
    """``GET health``: ``ok``, ``degraded`` or ``down`` and nothing else; open to probes."""

    route = "health"
    ok_log_level = logging.DEBUG

    @allow_unauthenticated
    async def get(self) -> None:
        runner = self.runner
        engine = await self.context.health.get(runner, lambda: self.scheduler.query(runner.status))
        self.finish({"status": health_status(engine, self.scheduler.saturated)})


class ExercisesRoute(ExecRouteBase):
    """``GET exercises``: ``{id, title, max_score}`` of every usable exercise, ordered by id."""

    route = "exercises"

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        registry = self.registry
        exercises = await self.scheduler.query(registry.list) if registry is not None else []
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps([e.summary() for e in exercises]))


class ExerciseRoute(ExecRouteBase):
    """``GET exercises/{id}``: the student's view: prompt, starter code, visible tests, limits."""

    route = "exercises/{id}"

    @tornado.web.authenticated
    @authorized
    async def get(self, exercise_id: str) -> None:
        exercise = await self.exercise(exercise_id)
        limits, _ = exercise.resolved_limits(self.bounds.default_limits).clamped(
            self.bounds.max_limits
        )
        self.finish(exercise.public_dict(limits))


class SubmitRoute(ExecRouteBase):
    """``POST exercises/{id}/submit``: grade code against every test (never from the cache), at
    most ``submit_rate_limit`` times per user and exercise in a window (429 beyond)."""

    route = "exercises/{id}/submit"

    @tornado.web.authenticated
    @authorized
    async def post(self, exercise_id: str) -> None:
        exercise = await self.exercise(exercise_id)
        code = parse_submit(self.json_body(), self.bounds)
        grader: Grader = self.context.grader
        # Course rules (due time, attempts) before anything is spent on the submission.
        late, attempt = await course.admit(self, exercise)
        # Admitted here, on the event loop, after the checks that refuse a request outright: only
        # submissions of a real exercise count, and two at once cannot both take the last one.
        limiter: Optional[SubmissionRateLimiter] = self.context.submit_limiter
        admission = None
        if limiter is not None:
            try:
                admission = await limiter.admit(self.principal, exercise.id)
            except SubmissionLimitedError:
                attempt.release()
                if self.metrics is not None:
                    self.metrics.submission_limited(exercise.id)
                raise
        try:
            # Graded in full (hidden tests' details are kept for instructors); the student gets
            # the redacted result.
            result = await self.scheduler.run(
                self.principal,
                lambda: grader.grade(exercise, code, reveal_hidden=True, user=self.principal),
            )
        except BaseException:
            # Not graded (sandbox down, too many runs at once): it uses up none of the allowance.
            if admission is not None:
                await limiter.cancel(admission)
            attempt.release()
            raise
        log.info(
            "submission user=%s exercise=%s status=%s score=%g/%g late=%s",
            self.principal,
            exercise.id,
            result.status,
            result.score,
            result.max_score,
            late,
        )
        if self.metrics is not None:
            self.metrics.submission(exercise.id, result.status)
        if result.status == Status.INTERNAL_ERROR:
            # Cut short by the engine or a failed runner: not graded, so not the student's try.
            # It uses up no submission and no attempt, and is not recorded as a grade.
            if admission is not None:
                await limiter.cancel(admission)
            attempt.release()
            log.warning(
                "submission user=%s exercise=%s not graded (%s); not recorded",
                self.principal,
                exercise.id,
                result.message,
            )
            submission_id = None
        else:
            submission_id = await course.record(self, exercise, code, result, late, attempt)
            if admission is not None:  # graded: it counts for the whole window from now on
                await limiter.graded(admission)
        await self.submission_graded(exercise, result)
        answer = result.redacted().to_dict()
        answer.update({"submission_id": submission_id, "late": late})
        self.finish(answer)


# The gradebook's routes live in a module of their own, built on ExecRouteBase above; submit
# checks and records through it.
from . import gradebook_routes as course  # noqa: E402

# -- the routes as the jupyter_server extension serves them: jupyter_server authenticates ----------


class ExecuteHandler(ExecuteRoute, ExecAPIHandler):
    """``POST execute`` in the jupyter_server extension."""


class DockerStatusHandler(DockerStatusRoute, ExecAPIHandler):
    """``GET docker/status`` in the jupyter_server extension."""


class HealthHandler(HealthRoute, ExecAPIHandler):
    """``GET health`` in the jupyter_server extension."""


class ExercisesHandler(ExercisesRoute, ExecAPIHandler):
    """``GET exercises`` in the jupyter_server extension."""


class ExerciseHandler(ExerciseRoute, ExecAPIHandler):
    """``GET exercises/{id}`` in the jupyter_server extension."""


class SubmitHandler(SubmitRoute, ExecAPIHandler):
    """``POST exercises/{id}/submit`` in the jupyter_server extension."""


#: The route table of the jupyter_server extension (local mode).
ROUTES: list[tuple[str, type[ExecAPIHandler]]] = [
    (f"{NAMESPACE}/execute", ExecuteHandler),
    (f"{NAMESPACE}/docker/status", DockerStatusHandler),
    (f"{NAMESPACE}/health", HealthHandler),
    (f"{NAMESPACE}/exercises", ExercisesHandler),
    (rf"{NAMESPACE}/exercises/(?P<exercise_id>[^/]+)", ExerciseHandler),
    (rf"{NAMESPACE}/exercises/(?P<exercise_id>[^/]+)/submit", SubmitHandler),
    *course.GRADEBOOK_ROUTES,
]
