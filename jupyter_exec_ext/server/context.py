"""The parts every route shares, in one object under one tornado settings key, and the one place
they are built (``build_context``, ``remote_context``) and closed (``ExecContext.close``).

The routes read ``self.context`` (``handlers.ExecRouteBase``); the apps build a context from their
traits (``config.ExecSettings``) and put it in the tornado settings as ``CONTEXT_KEY``. Nothing
here knows HTTP.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from tornado.ioloop import PeriodicCallback
from traitlets import TraitError

from ..gradebook.recorder import GradebookRecorder
from ..gradebook.rules import CourseRules
from ..gradebook.store import GradebookStore, StoreError, describe_url, sqlite_url
from ..grading import ExerciseRegistry, Grader
from ..sandbox import CachingSandbox, DockerSandbox, SandboxError
from .config import ExecSettings
from .health import EngineSnapshot
from .metrics import ExecMetrics
from .payloads import RequestBounds
from .ratelimit import SubmissionRateLimiter
from .scheduler import RunScheduler

if TYPE_CHECKING:
    from .remote import RemoteService

log = logging.getLogger(__name__)

#: The one tornado settings key of this package: its value is the ``ExecContext``.
CONTEXT_KEY = "exec_ext_context"


@dataclass(eq=False)
class ExecContext:
    """What the routes share. In remote mode only ``bounds``, ``remote`` and the flags are set:
    that server never touches Docker.

    ``runner`` answers ``POST execute`` (``run(request, use_cache=…)``: the result cache in front
    of ``sandbox``); ``sandbox`` runs what must never come from the cache (live runs); the grader
    holds the sandbox itself (submissions always run fresh). Replacing ``runner`` or ``sandbox``
    changes what the routes use; ``close`` still closes what ``build_context`` made.
    """

    bounds: RequestBounds
    runner: Any = None
    sandbox: Any = None
    grader: Optional[Grader] = None
    #: The authoritative exercise notebooks; None when the server has no exercise directory.
    registry: Optional[ExerciseRegistry] = None
    exercises_dir: Optional[Path] = None
    scheduler: Optional[RunScheduler] = None
    #: Graded submissions per user and exercise in a window; None means no limit.
    submit_limiter: Optional[SubmissionRateLimiter] = None
    #: Every graded submission; None when the server keeps none.
    gradebook: Optional[GradebookRecorder] = None
    #: Course rules of the exercises that set none.
    rules: CourseRules = field(default_factory=CourseRules)
    #: Prometheus metrics (the executor service only).
    metrics: Optional[ExecMetrics] = None
    #: The engine's status as health probes see it.
    health: EngineSnapshot = field(default_factory=EngineSnapshot)
    #: Submissions being graded per (user, exercise): counted as attempts until they are recorded.
    attempts_in_flight: Counter = field(default_factory=Counter)
    #: Whether this single-user server runs in instructor mode (authoring routes).
    instructor: bool = False
    #: The students' workspace Release writes into; empty for none.
    workspace_dir: str = ""
    #: Remote mode: the executor service every route is forwarded to.
    remote: Optional[RemoteService] = None
    #: The executor service's own parts (``service.HubParts``).
    hub: Any = None
    #: What ``start`` starts: the reaper and the warm pool (``build_context``).
    housekeeping: Optional[Housekeeping] = None
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def start(self) -> None:
        """Starts the reaper and fills the warm pool, both off the event loop."""
        if self.housekeeping is not None:
            self.housekeeping.start()

    def on_close(self, *closers: Callable[[], None]) -> None:
        """Adds what ``close`` calls, in this order, after what was added before."""
        self._closers.extend(closers)

    def close(self) -> None:
        """Stops the reaper and the scheduler, drains the pools, finishes container removals and
        closes the engine connection, and writes the gradebook's backlog (or logs it)."""
        closers, self._closers = self._closers, []
        for close in closers:
            close()


class Housekeeping:
    """The reaper (a sweep at start, then every ``reap_interval`` seconds, on a worker thread)
    and the filling of the warm pool."""

    def __init__(
        self,
        sandbox: DockerSandbox,
        scheduler: RunScheduler,
        reap_interval: float,
        pool_size: int,
        **pool_sizing: Any,
    ) -> None:
        self.sandbox, self.scheduler = sandbox, scheduler
        self.reap_interval, self.pool_size = reap_interval, pool_size
        #: How the pool grows and shrinks (``WarmPool``: max_size, memory_budget_mb, shrink_after_s).
        self.pool_sizing = pool_sizing
        self._reaper: Optional[PeriodicCallback] = None

    def start(self) -> None:
        """Sweeps abandoned containers now, in a thread, and then periodically; fills the pool.
        Start-up never waits for Docker."""
        self.scheduler.submit_query(self.reap)
        if self.reap_interval > 0:
            self._reaper = PeriodicCallback(
                lambda: self.scheduler.submit_query(self.reap), self.reap_interval * 1000
            )
            self._reaper.start()
        if self.pool_size > 0:
            self.scheduler.submit_query(
                lambda: self.sandbox.start_pool(self.pool_size, **self.pool_sizing)
            )

    def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.stop()
            self._reaper = None

    def reap(self) -> None:
        """One sweep, on a worker thread; a failure is logged, never raised into the server."""
        if self.scheduler.busy:
            # reap() also removes this server's *ended* containers, and a run in flight may have one
            # it is still reading. Runs remove their own containers; crash leftovers carry an expiry
            # and wait for a quiet moment.
            log.debug("reaper: runs in progress, sweep postponed")
            return
        try:
            removed = self.sandbox.reap()  # logs at INFO what it removed
        except SandboxError as e:
            log.warning("reaper: %s", e)
        except Exception:  # a sweep must never take the server down; the next one retries
            log.exception("reaper failed")
        else:
            log.debug("reaper: %d container(s) removed", len(removed))


def build_limits(settings: ExecSettings) -> tuple[RunScheduler, Any]:
    """The run scheduler (global and per-user caps) and the submission limiter (this process's
    own, or shared with the other replicas through Redis: ``shared_state_url``)."""
    # Counted in this process, or in the Redis that replicas share (shared_state_url).
    user_cap, submit_limiter = settings.build_limits(
        settings.max_runs_per_user, settings.submit_rate_limit, settings.submit_rate_window
    )
    scheduler = RunScheduler(settings.max_concurrent_runs, settings.max_runs_per_user, user_cap)
    return scheduler, submit_limiter


def build_gradebook(settings: ExecSettings, default_sqlite: Path) -> GradebookRecorder:
    """The gradebook (``db_url``, else SQLite at ``default_sqlite``). A database that is down does
    not stop the server: submissions wait in the backlog.

    Raises:
        TraitError: ``db_url`` is not a usable URL (or its driver is missing).
    """
    url = settings.db_url or sqlite_url(default_sqlite)
    try:
        store = GradebookStore(url)
    except StoreError as e:
        raise TraitError(f"{type(settings).__name__}.db_url: {e}") from None
    log.info("gradebook in %s", describe_url(url))
    return GradebookRecorder(store, backlog_max=max(settings.gradebook_backlog, 1))


def build_context(
    settings: ExecSettings,
    *,
    gradebook_sqlite: Path,
    metrics: bool = False,
    instructor: bool = False,
    workspace_dir: str = "",
) -> ExecContext:
    """Builds every part from the traits: the sandbox and the result cache in front of it, the
    scheduler and the submission limiter, the exercise registry and the grader, the gradebook
    (SQLite at ``gradebook_sqlite`` unless ``db_url`` says otherwise) and, for the executor
    service, the metrics. Nothing here waits for Docker; ``ExecContext.start`` starts the reaper
    and the pool.

    Raises:
        TraitError: a setting cannot be used (``db_url``); what was built is closed again.
    """
    config = settings.sandbox_config()
    sandbox = DockerSandbox(config)
    # Executions go through the cache; submissions always run fresh, so the grader gets the
    # sandbox itself.
    runner = CachingSandbox(sandbox, settings.cache_config())
    scheduler, submit_limiter = build_limits(settings)
    exercises = Path(settings.exercises_dir) if settings.exercises_dir else None
    if exercises is not None and not exercises.is_dir():
        log.warning("exercise directory %s does not exist", exercises)
    housekeeping = Housekeeping(
        sandbox,
        scheduler,
        settings.reap_interval,
        settings.pool_size,
        max_size=settings.pool_max_size,
        memory_budget_mb=settings.pool_memory_budget,
        shrink_after_s=settings.pool_shrink_after,
    )
    context = ExecContext(
        bounds=settings.request_bounds(config),
        runner=runner,
        sandbox=sandbox,
        grader=Grader(sandbox, config.default_limits, config.data_files_bytes),
        registry=ExerciseRegistry(exercises) if exercises is not None else None,
        exercises_dir=exercises,
        scheduler=scheduler,
        submit_limiter=submit_limiter,
        rules=settings.course_rules(),
        metrics=ExecMetrics(runner) if metrics else None,
        instructor=instructor,
        workspace_dir=workspace_dir,
        housekeeping=housekeeping,
    )
    # runner.close drains the warm pool and finishes container removals
    context.on_close(housekeeping.stop, scheduler.shutdown, runner.close)
    try:
        gradebook = build_gradebook(settings, gradebook_sqlite)
    except TraitError:
        context.close()
        raise
    context.gradebook = gradebook
    context.on_close(gradebook.close)  # writes the backlog if the database answers
    return context


def remote_context(settings: ExecSettings, remote: RemoteService) -> ExecContext:
    """Remote mode: the request bounds (checked here before forwarding) and the service; nothing
    here touches Docker."""
    return ExecContext(bounds=settings.request_bounds(settings.sandbox_config()), remote=remote)
