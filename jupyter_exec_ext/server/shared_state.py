"""What replicas of the executor service behind one load balancer share in Redis: the per-user run
cap and the submission rate limit.

Each count is a sorted set changed by one Lua script (atomic: two replicas cannot both take a
user's last run slot). An entry that stands for work in progress (a run, a submission not yet
graded) is a lease the replica renews while the work goes on; when a replica dies its leases
lapse within ``lease_s`` and its runs and ungraded submissions stop counting. Scores come from
Redis's clock, so replicas need not agree on the time. While Redis is out, each replica counts on
its own (as one server does) and says so in its log; it goes back to Redis by itself.

Anyone who can write to this Redis can change the counts: give it a password the student servers
do not have (docs/hub.md, "More than one machine").
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import time
import uuid
from typing import Any, Optional

import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry
from traitlets import Float, TraitError, Unicode, validate
from traitlets.config import LoggingConfigurable

from ..sandbox.cache import redact_url
from .ratelimit import Admission, SubmissionLimitedError, SubmissionRateLimiter
from .scheduler import LocalRunCap, RunTicket

log = logging.getLogger(__name__)
security_log = logging.getLogger("jupyter_exec_ext.security")

#: Every key starts with the configured prefix, then one of these.
RUNS_KEY = "runs:"
SUBMITS_KEY = "submits:"
PENDING_KEY = "submits-pending:"

# Redis's own clock, in milliseconds (replicas' clocks may differ).
_NOW = "local t = redis.call('TIME')\nlocal now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

#: KEYS[1] the user's runs (score: lease end); ARGV cap, lease_ms, member. 1 admitted, 0 refused.
ACQUIRE_RUN = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""
)

#: KEYS[1] the (user, exercise)'s admissions (score: admitted at), KEYS[2] those not yet graded
#: (score: lease end); ARGV limit, window_ms, lease_ms, member. {1, 0} admitted, {0, wait_ms}
#: refused.
ADMIT_SUBMISSION = (
    _NOW
    + """
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, member in ipairs(dead) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('ZREM', KEYS[2], member)
end
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tonumber(oldest[2]) + window - now}
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
redis.call('PEXPIRE', KEYS[2], math.max(window, tonumber(ARGV[3])))
return {1, 0}
"""
)

#: KEYS the sets, ARGV[1] lease_ms, then one member per key: each lease runs ``lease_ms`` more
#: from now (an entry already gone stays gone).
RENEW = (
    _NOW
    + """
local lease = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  if redis.call('ZADD', key, 'XX', 'CH', now + lease, ARGV[i + 1]) == 1 then
    if redis.call('PTTL', key) < lease then redis.call('PEXPIRE', key, lease) end
  end
end
return 0
"""
)


class SharedStateDown(Exception):
    """Redis did not answer (or is being left alone for a moment after failing)."""


class SharedState:
    """The Redis that the replicas share, and the leases this replica holds in it.

    Args:
        url: the Redis URL (``redis://:password@host:6379/0``).
        prefix: start of every key, so deployments (or courses) can share one Redis.
        lease_s: how long an entry of work in progress outlives the replica that stopped renewing it.
        timeout_s: longest wait for one answer; past it the replica counts on its own for
            ``retry_s`` seconds.
        retry_s: how long to count alone after Redis failed before asking it again.
    """

    def __init__(
        self,
        url: str,
        prefix: str = "jupyter-exec-ext:",
        lease_s: float = 15.0,
        timeout_s: float = 0.5,
        retry_s: float = 5.0,
    ) -> None:
        try:
            self.redis = redis.asyncio.Redis.from_url(
                url,
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                retry=Retry(NoBackoff(), 0),
            )
        except ValueError as e:
            raise ValueError(f"shared_state_url {redact_url(url)!r} is not usable: {e}") from None
        self.where = redact_url(url)
        self.prefix = prefix
        self.lease_ms = max(1, int(lease_s * 1000))
        self.retry_s = retry_s
        self.replica = f"{socket.gethostname()}-{os.getpid()}"
        self._scripts = {
            name: self.redis.register_script(source)
            for name, source in (
                ("acquire_run", ACQUIRE_RUN),
                ("admit", ADMIT_SUBMISSION),
                ("renew", RENEW),
            )
        }
        #: member -> key of each lease this replica renews.
        self._leases: dict[str, str] = {}
        self._renewer: Optional[asyncio.Task] = None
        self._retry_at = 0.0
        self._down = False
        self.failures = 0

    def key(self, kind: str, *parts: str) -> str:
        # A user name cannot hold "\t" (check_user_name), so the parts cannot run into each other.
        return self.prefix + kind + "\t".join(parts)

    def new_member(self) -> str:
        """A name for one entry, unique across replicas; it says which replica made it."""
        return f"{self.replica}:{uuid.uuid4().hex}"

    @property
    def reachable(self) -> bool:
        """False for ``retry_s`` after a failure: callers count alone meanwhile."""
        return time.monotonic() >= self._retry_at

    async def script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Runs one of the scripts.

        Raises:
            SharedStateDown: Redis failed to answer now, or did so less than ``retry_s`` ago.
        """
        if not self.reachable:
            raise SharedStateDown(f"Redis at {self.where} failed less than {self.retry_s:g} s ago")
        try:
            answer = await self._scripts[name](keys=keys, args=args)
        except (redis.RedisError, OSError, asyncio.TimeoutError) as e:
            self.failures += 1
            self._retry_at = time.monotonic() + self.retry_s
            if not self._down:
                self._down = True
                log.warning(
                    "shared state: Redis at %s failed (%s); each replica counts run caps "
                    "and submission limits on its own until it answers",
                    self.where,
                    type(e).__name__,
                )
            raise SharedStateDown(str(e)) from None
        if self._down:
            self._down = False
            log.warning(
                "shared state: Redis at %s answers again; run caps and submission limits "
                "are shared again",
                self.where,
            )
        return answer

    async def delete(self, key: str, member: str) -> None:
        """Removes one entry (its lease ends with it); a failure leaves it to lapse."""
        self._leases.pop(member, None)
        if not self.reachable:
            return
        try:
            await self.redis.zrem(key, member)
        except (redis.RedisError, OSError, asyncio.TimeoutError) as e:
            log.debug(
                "shared state: could not remove %s from %s (%s); its lease lapses", member, key, e
            )

    def hold(self, key: str, member: str) -> None:
        """Renews the lease of ``member`` in ``key`` until ``release``d."""
        self._leases[member] = key
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.ensure_future(self._renew())

    def release(self, member: str) -> None:
        """Stops renewing the lease of ``member`` (it lapses unless deleted)."""
        self._leases.pop(member, None)

    async def _renew(self) -> None:
        """Every third of a lease, renews every lease this replica holds, in one call."""
        while self._leases and not _cancelling():
            await asyncio.sleep(self.lease_ms / 3000)
            held = list(self._leases.items())
            if not held:
                break
            try:
                await self.script(
                    "renew",
                    [key for _, key in held],
                    [self.lease_ms, *[member for member, _ in held]],
                )
            except SharedStateDown:
                pass  # the leases may lapse; the work goes on and counts here meanwhile

    async def close(self) -> None:
        self._leases.clear()  # the renewer ends even if a cancel is lost in the Redis client
        if self._renewer is not None:
            self._renewer.cancel()
        await self.redis.aclose()


def _cancelling() -> bool:
    """Whether the current task is being cancelled. A cancel that lands in the Redis client's
    read can come back as a connection error (which ``script`` turns into SharedStateDown), and
    a renewer that went on after it would keep its loop from ever closing. (``Task.cancelling``
    exists from Python 3.11; before it, this says False.)"""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return bool(cancelling is not None and cancelling())


class SharedRunCap(LocalRunCap):
    """The per-user run cap counted in Redis across replicas (``RunCap``). Every run is also
    counted here, so while Redis is out this replica still holds its own runs to the cap."""

    def __init__(self, shared: SharedState, max_per_user: int) -> None:
        super().__init__(max_per_user)
        self.shared = shared

    async def acquire(self, user: str) -> Optional[RunTicket]:
        key, member = self.shared.key(RUNS_KEY, user), self.shared.new_member()
        try:
            admitted = await self.shared.script(
                "acquire_run", [key], [self.max_per_user, self.shared.lease_ms, member]
            )
        except SharedStateDown:
            return self._take(user, None)
        if not admitted:
            return None
        self.shared.hold(key, member)
        return self._take(user, member)

    async def release(self, ticket: RunTicket) -> None:
        await super().release(ticket)
        if ticket.lease is not None:
            await self.shared.delete(self.shared.key(RUNS_KEY, ticket.user), ticket.lease)


class SharedSubmissionLimiter:
    """The submission rate limit counted in Redis across replicas, with the in-memory limiter's
    rules and answers (``ratelimit.SubmissionRateLimiter``): at most ``limit`` graded
    submissions per user and exercise in any ``window_s``. A submission counts from its
    admission; one whose replica died before grading it stops counting when its lease lapses.
    While Redis is out, this replica counts on its own (a fresh in-memory limiter)."""

    def __init__(self, shared: SharedState, limit: int, window_s: float) -> None:
        self.shared = shared
        self.alone = SubmissionRateLimiter(limit, window_s)
        self.limit = limit
        self.window_s = float(window_s)
        self.refused = 0

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    def _keys(self, user: str, exercise_id: str) -> list[str]:
        return [
            self.shared.key(SUBMITS_KEY, user, exercise_id),
            self.shared.key(PENDING_KEY, user, exercise_id),
        ]

    async def admit(self, user: str, exercise_id: str) -> Admission:
        """As ``SubmissionRateLimiter.admit``, counted across replicas.

        Raises:
            SubmissionLimitedError: the user used up the exercise's allowance; says when the
                next submission will be admitted.
        """
        if not self.enabled:
            return Admission(user, exercise_id, time.monotonic())
        keys, member = self._keys(user, exercise_id), self.shared.new_member()
        try:
            admitted, wait_ms = await self.shared.script(
                "admit", keys, [self.limit, int(self.window_s * 1000), self.shared.lease_ms, member]
            )
        except SharedStateDown:
            return await self.alone.admit(user, exercise_id)
        if not admitted:
            self.refused += 1
            security_log.warning(
                "security: user %r reached the submission limit of %r (%d per %g s)",
                user,
                exercise_id,
                self.limit,
                self.window_s,
            )
            wait = max(1, math.ceil(int(wait_ms) / 1000))
            raise SubmissionLimitedError(exercise_id, wait, self.limit, self.window_s)
        self.shared.hold(keys[1], member)
        return Admission(user, exercise_id, time.monotonic(), lease=member)

    async def graded(self, admission: Admission) -> None:
        """The submission was graded: it counts for the rest of the window, lease or not."""
        if admission.lease is None:
            return await self.alone.graded(admission)
        await self.shared.delete(
            self._keys(admission.user, admission.exercise_id)[1], admission.lease
        )

    async def cancel(self, admission: Admission) -> None:
        """The submission was not graded: it uses up none of the allowance."""
        if admission.lease is None:
            return await self.alone.cancel(admission)
        submits, pending = self._keys(admission.user, admission.exercise_id)
        await self.shared.delete(pending, admission.lease)
        await self.shared.delete(submits, admission.lease)

    def snapshot(self) -> dict:
        """The settings and counters, for ``docker/status``: ``tracked`` counts the pairs this
        replica tracks on its own (while Redis is out)."""
        return {
            "limit": self.limit,
            "window_s": self.window_s,
            "refused": self.refused + self.alone.refused,
            "tracked": self.alone.tracked(),
            "shared": True,
        }


class SharedStateSettings(LoggingConfigurable):
    """The settings of what replicas share, and the one place their counters are built."""

    shared_state_url = Unicode(
        None,
        allow_none=True,
        help="Redis shared by the replicas of the "
        "executor service behind a load balancer, for the per-user run "
        "cap and the submission rate limit (usually the same Redis as "
        "redis_url, with a password students do not have); None counts "
        "them in this process (one server). Default: "
        "DOCKER_EXECUTOR_SHARED_STATE_URL (read with the other variables "
        "in config.EnvironmentDefaults).",
    ).tag(config=True)
    shared_state_prefix = Unicode(
        "jupyter-exec-ext:",
        help="Start of every key of the shared state, so several deployments can share one Redis.",
    ).tag(config=True)
    shared_state_lease = Float(
        15.0,
        help="Seconds after which the runs and ungraded "
        "submissions of a replica that stopped (crashed, lost its network) "
        "no longer count for their users.",
    ).tag(config=True)

    @validate("shared_state_lease")
    def _valid_shared_state_lease(self, proposal: Any) -> float:
        if not 1 <= proposal["value"] < float("inf"):
            raise TraitError(
                f"{type(self).__name__}.shared_state_lease must be at least 1 "
                f"second, got {proposal['value']!r}"
            )
        return proposal["value"]

    def build_limits(
        self, max_per_user: int, submit_limit: int, submit_window_s: float
    ) -> tuple[Optional[LocalRunCap], Any]:
        """The per-user run cap (None: the scheduler's own) and the submission limiter.

        Raises:
            TraitError: ``shared_state_url`` is not a usable Redis URL.
        """
        if not self.shared_state_url:
            return None, SubmissionRateLimiter(submit_limit, submit_window_s)
        try:
            self.shared_state = SharedState(
                self.shared_state_url, self.shared_state_prefix, self.shared_state_lease
            )
        except ValueError as e:
            raise TraitError(f"{type(self).__name__}.{e}") from None
        log.info(
            "run caps and submission limits shared through Redis at %s (keys %s*)",
            self.shared_state.where,
            self.shared_state_prefix,
        )
        return (
            SharedRunCap(self.shared_state, max_per_user),
            SharedSubmissionLimiter(self.shared_state, submit_limit, submit_window_s),
        )
