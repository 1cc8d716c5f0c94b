"""Runs student code in a hardened Docker container: one ``ExecutionRequest`` in, one
``ExecutionResult`` out.

This is where a run is orchestrated: which container serves it (the user's own, reset since
their last run; a pooled one; or a new one), the job sent to its runner, and what becomes of the
container after. The parts it stands on: ``containers`` (the engine), ``protocol`` (the wire),
``pool`` and ``reuse`` (containers kept ready).

Every call here blocks (Docker's API is HTTP over a socket); callers on an event loop run it in a
thread pool.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import socket
import threading
import time
from typing import Any, Callable, Optional

import docker
import docker.errors

from .config import SandboxConfig
from .containers import ENDED_GRACE_S, UNREACHABLE, Container, Engine, short
from .errors import (
    DockerUnavailableError,
    ExecutorImageMissingError,
    LimitError,
    SandboxUnavailableError,
)
from .limits import Limits
from .live import LiveControl
from .models import CheckOutcome, CheckResult, ExecutionRequest, ExecutionResult, Status
from .pool import WarmPool
from .protocol import (
    EventCallback,
    Exchange,
    FrameReader,
    converse,
    ended_cleanly,
    engine_lost,
    interpret,
    needs_engine_state,
)
from .reuse import ReuseStore

log = logging.getLogger(__name__)


class DockerSandbox:
    """Runs one ``ExecutionRequest`` per container and returns an ``ExecutionResult``.

    Args:
        config: settings; read from the ``DOCKER_EXECUTOR_*`` environment when omitted.
        client_factory: makes a ``docker.DockerClient``; the default talks to the local engine
            (``DOCKER_HOST`` or the Unix socket).
    """

    def __init__(
        self,
        config: Optional[SandboxConfig] = None,
        client_factory: Optional[Callable[[], docker.DockerClient]] = None,
    ):
        self.config = config or SandboxConfig.from_env()
        self.engine = Engine(self.config, client_factory)
        self._lock = threading.Lock()
        self.pool: Optional[WarmPool] = None  # once start_pool() ran
        self.reuse: Optional[ReuseStore] = (
            ReuseStore(
                self.engine,
                self.config.reuse_runs,
                self.config.reuse_idle_s,
                max_total=self.config.reuse_kept,
                grace_s=self.config.startup_grace_s,
            )
            if self.config.reuse_runs > 1 and self.config.reuse_kept > 0
            else None
        )
        self._closed = False

    @property
    def containers_created(self) -> int:
        """Containers this sandbox created (metrics read it; never reset)."""
        return self.engine.created

    @property
    def containers_removed(self) -> int:
        """Containers this sandbox removed (metrics read it; never reset)."""
        return self.engine.removed

    def close(self) -> None:
        """Drains the warm pool and the kept containers, finishes pending removals, closes the
        connection to the engine.

        The sandbox stays usable: a later call opens a new connection; a pool is never started
        again (a start_pool() still on its way, say from a server's start-up, does nothing).
        """
        with self._lock:
            self._closed = True
            pool, self.pool = self.pool, None
        if pool is not None:
            pool.drain()
        if self.reuse is not None:
            self.reuse.drain()
        self.engine.close()

    def __enter__(self) -> DockerSandbox:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def flush(self) -> None:
        """Waits until every container this sandbox gave up is removed."""
        self.engine.flush()

    # -- warm pool -------------------------------------------------------------------------------

    def start_pool(
        self, size: int, profile: Optional[Limits] = None, max_idle_s: float = 300.0, **sizing: Any
    ) -> None:
        """Keeps ``size`` started containers for ``profile`` (default limits) waiting for jobs.

        A run whose limits fit the profile gets a pooled container, which serves that one job and
        is then destroyed; other runs start cold. 0 disables the pool. ``sizing``: WarmPool's
        ``max_size``, ``memory_budget_mb`` and ``shrink_after_s`` (it grows on misses).
        """
        with self._lock:
            if self._closed:
                return
            old, self.pool = self.pool, None
            if size > 0:
                self.pool = WarmPool(
                    self.engine, size, profile or self.config.default_limits, max_idle_s, **sizing
                )
                self.pool.start()
        if old is not None:
            old.drain()

    def _take_warm(self, limits: Limits) -> Optional[Container]:
        return self.pool.take(limits) if self.pool is not None else None

    def _take_spare(self, limits: Limits) -> Optional[Container]:
        """A pooled container for a user whose own is still being reset, only if one waits now:
        rather than start a container, the run waits for the reset (milliseconds). The pool's
        miss counter (its demand) is left alone."""
        pool = self.pool
        if pool is None or not pool.profile.can_serve(limits) or not pool.status().get("idle"):
            return None
        return pool.take(limits)

    # -- running -------------------------------------------------------------------------------

    def run(
        self,
        request: ExecutionRequest,
        on_event: Optional[EventCallback] = None,
        control: Optional[LiveControl] = None,
    ) -> ExecutionResult:
        """Runs the request in a new container and removes the container on every path.

        A live run (``control`` given; never with checks) streams: ``on_event`` receives each
        event as a dict while the program runs (``started`` once the job is in a container, then
        ``output`` and ``input_request`` frames, and whatever else the runner streams); the
        program's stdin stays open for ``control.send_stdin`` until ``control.send_eof``; and
        ``control.cancel`` ends the run within a second with status ``cancelled``. The callback
        runs on this thread and must not block.

        Raises:
            DockerUnavailableError: the engine cannot be reached ("Docker not available").
            ExecutorImageMissingError: the executor image has not been built.
            SandboxUnavailableError: the sandbox is disabled or the engine refused the container.
        """
        if not self.config.enabled:
            raise SandboxUnavailableError(
                "the sandbox is disabled by the admin (DOCKER_EXECUTOR_ENABLED)"
            )
        limits, _ = request.limits.clamped(self.config.max_limits)
        files_size = sum(len(f.data) for f in request.files)
        if files_size > self.config.data_files_bytes:
            raise LimitError(
                f"the data files take {files_size} bytes, above the sandbox's cap of "
                f"{self.config.data_files_bytes} bytes (DOCKER_EXECUTOR_DATA_FILES_BYTES)"
            )
        if request.policy is not None:
            violations = request.policy.check(request.code)
            if violations:
                return ExecutionResult(
                    status=Status.POLICY_VIOLATION,
                    stderr="".join(f"{v}\n" for v in violations),
                    message=str(violations[0]),
                    limits=limits,
                    checks=[CheckResult(outcome=CheckOutcome.NOT_RUN) for _ in request.checks],
                )
        if control is not None and request.checks:
            raise ValueError("a live run cannot have checks")
        if control is not None and control.cancelled:
            return _cancelled(ExecutionResult(status=Status.CANCELLED, limits=limits))
        self.engine.api()  # connects first: an unreachable engine fails here, cleanly
        nonce = secrets.token_hex(16)
        # A user's plain runs share a container, one after the other. A submission may be graded
        # in its user's own container, reset since their last run (never another user's); no
        # container is kept after a grading.
        reuse_key = request.reuse_key if (self.reuse is not None and not request.checks) else None
        grade_key = (
            request.reuse_key
            if (self.reuse is not None and request.checks and self.config.grade_in_own_container)
            else None
        )
        job = {
            "nonce": nonce,
            "code": request.code,
            "stdin": request.stdin,
            "time_limit": limits.time_s,
            "output_limit": self.config.output_limit_bytes,
            "checks": [{"code": c.code, "timeout": c.timeout_s} for c in request.checks],
            "display_limit": self.config.display_limit,
            "display_bytes": self.config.display_bytes,
        }
        if control is not None:
            job["interactive"] = True
        if request.files:
            job["files"] = [
                {"name": f.name, "data": base64.b64encode(f.data).decode("ascii")}
                for f in request.files
            ]
        # Each check may also run the program again before its test (the runner allows it twice
        # the program's first run, plus a second); the runner enforces the real limits.
        budget_s = limits.time_s + sum(
            c.timeout_s + 1.0 + 2 * limits.time_s for c in request.checks
        )
        live: Optional[Container] = None
        exchange: Optional[Exchange] = None
        keep = settled = False
        lost: Optional[BaseException] = None
        started = time.monotonic()
        self.engine.begin_run()
        try:
            if reuse_key is not None:
                assert self.reuse is not None  # a reuse key is set only with a reuse store
                live = self.reuse.take(reuse_key, limits, spare=lambda: self._take_spare(limits))
            elif grade_key is not None:
                live = self._take_own(grade_key, limits, budget_s)
            live = live or self._take_warm(limits) or self.engine.launch(limits)
            keep = (
                reuse_key is not None
                and self.reuse is not None
                and self.reuse.may_keep(live, limits)
            )
            # A container that is not kept waits (its program's processes killed) for a calmer
            # moment to be removed; see MAX_LINGERING.
            job.update(keep=keep, linger=not keep)
            if on_event is not None:
                _safe_call(on_event, {"type": "started", "time_limit_s": limits.time_s})
            started = time.monotonic()
            exchange = self._converse(
                live,
                (json.dumps(job) + "\n").encode("utf-8"),
                nonce,
                started + budget_s + self.config.startup_grace_s,
                len(request.checks),
                on_event,
                control,
            )
            live.runs += 1
            if needs_engine_state(exchange):
                if exchange.host_timeout or exchange.overflow or exchange.host_cancelled:
                    # Nothing more is read: closing the stream keeps the engine from blocking
                    # (kill, wait) on a runner whose output nobody takes (a live run's client
                    # held it back).
                    try:
                        live.raw.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    live.close()
                elif not live.closed:
                    try:
                        live.raw.shutdown(
                            socket.SHUT_WR
                        )  # EOF: the runner ends, so does the container
                    except OSError:
                        pass
                settled = True
                state = self.engine.settle(
                    live.container_id,
                    exchange.host_timeout or exchange.overflow or exchange.host_cancelled,
                )
            else:
                state = {}
        except UNREACHABLE as e:
            self.engine.forget_client()
            if exchange is None:
                raise DockerUnavailableError(short(e)) from e
            lost = e  # mid-run: the program's output so far is still the student's
        except docker.errors.ImageNotFound as e:
            raise ExecutorImageMissingError(self.config.image) from e
        except docker.errors.APIError as e:
            if exchange is None or exchange.result is not None or not e.is_server_error():
                raise SandboxUnavailableError(
                    f"the Docker engine refused to run the sandbox: {e.explanation or e}"
                ) from e
            lost = e  # e.g. "daemon is shutting down" while the run was going on
        finally:
            if control is not None:
                control.detach()
            orderly = exchange is not None and ended_cleanly(exchange) and not settled
            if live is not None:
                if orderly and keep and not live.closed:
                    # It waits for the runner's word that the container is as new, off this path.
                    assert (
                        self.reuse is not None and reuse_key is not None and exchange is not None
                    )  # keep
                    self.reuse.recycle(live, reuse_key, exchange)
                elif orderly and not live.closed:
                    self.engine.remove(live, "calm")
                else:
                    # The answer is complete; removing the container need not delay it.
                    self.engine.remove(live, "soon")
            self.engine.end_run()
        elapsed_ms = int((time.monotonic() - started) * 1000)
        if lost is not None:
            log.error("the Docker engine went away during a run: %s", short(lost))
            assert exchange is not None  # an engine lost before the exchange raised above
            return engine_lost(exchange, limits, elapsed_ms, len(request.checks))
        assert exchange is not None  # set before any path that gets here
        return interpret(exchange, state, limits, elapsed_ms, len(request.checks), control)

    def _take_own(self, key: str, limits: Limits, budget_s: float) -> Optional[Container]:
        """``key``'s own reset container for a grading of ``budget_s`` at most, or None: it must
        stay well before its expiry label (the reaper's deadline) for the whole grading."""
        assert self.reuse is not None  # a grade key is set only with a reuse store
        live = self.reuse.take(key, limits)
        if (
            live is not None
            and time.time() + budget_s + self.config.startup_grace_s + 60 >= live.expires_at
        ):
            self.reuse.remove(live, "too close to its expiry for a grading")
            return None
        return live

    def _converse(
        self,
        live: Container,
        job: bytes,
        nonce: str,
        deadline: float,
        checks: int = 0,
        on_event: Optional[EventCallback] = None,
        control: Optional[LiveControl] = None,
    ) -> Exchange:
        """Sends the job to a started container and reads its frames (``protocol.converse``)."""
        reader = FrameReader(
            nonce,
            Exchange(),
            self.config.output_limit_bytes,
            checks,
            on_event,
            self.config.display_limit,
            self.config.display_bytes,
        )
        return converse(live, job, reader, deadline, control)

    # -- engine state ----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Engine reachable, its version, the executor image and its id, the pool's and the
        kept containers' counts. Never raises."""
        return {
            "enabled": self.config.enabled,
            **self.engine.status(),
            "pool": self.pool.status() if self.pool is not None else None,
            "reuse": self.reuse.status() if self.reuse is not None else None,
        }

    def reap(self, *, everything: bool = False, ended_grace_s: float = ENDED_GRACE_S) -> list[str]:
        """Removes our abandoned containers (``Engine.reap``). Returns the ids removed.

        Raises:
            DockerUnavailableError: the engine cannot be reached.
        """
        return self.engine.reap(everything=everything, ended_grace_s=ended_grace_s)


def _cancelled(result: ExecutionResult) -> ExecutionResult:
    result.message = "the run was stopped"
    return result


def _safe_call(callback: EventCallback, event: dict) -> None:
    try:
        callback(event)
    except Exception:  # the callback's own problem; the run goes on
        log.exception("a live run's event callback failed")
