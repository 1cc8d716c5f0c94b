"""Reuse of one user's container for that user's next runs (never another user's, never grading).

After a run that asked to keep its container, the runner kills every process the program left,
empties every writable place, removes System V IPC objects, starts a fresh interpreter and says
"ready" (see ``executor_image/runner.py``). Only then does the container wait here, keyed by its
user, for that user's next run. It saves the engine a container's creation, start and removal
(~150 ms of two cores) for each run after a user's first.

A user who runs again while their container is still being reset (a notebook's *Run All*, a
client looping) does not wait for that reset when the warm pool has a container ready: the run
takes that one, which ran nothing before, and after its own reset it is kept for the same user too.
From then on the user's runs alternate between their two containers, each reset while the other
serves, so back-to-back runs no longer wait for a reset. A user never holds more than ``per_key``
containers this way: at the cap a run waits for one of theirs instead.

A container is retired (removed) when the runner could not verify the reset, when a run ended in
any way the host had to step in (timeout on the host, flood, protocol error), after
``max_runs`` runs, after ``idle_s`` unused, or well before its expiry label would let the reaper
take it.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional

from .containers import Container, Launcher
from .limits import Limits
from .protocol import Exchange, read_frames

log = logging.getLogger(__name__)

#: How long the runner may take to report that a reset is done.
RESET_TIMEOUT_S = 5.0
#: How long a run waits for one of its user's containers still being reset, instead of taking a
#: fresh one (a reset takes a few milliseconds; a fresh container costs the engine far more).
WAIT_FOR_RESET_S = 0.25


class ReuseStore:
    """Containers that served a user and were reset, waiting for that user's next run.

    Args:
        launcher: removes the containers retired (the engine's).
        max_runs: runs one container serves before it is retired.
        idle_s: a container unused for longer is retired.
        per_key: containers kept for one user (more in use at once are retired after their run).
        max_total: containers kept for all users together; the one unused longest goes first.
        grace_s: the sandbox's start-up grace; a container is kept only while a run started now
            (its time limit twice, plus this, plus a minute) ends well before its expiry label.
    """

    def __init__(
        self,
        launcher: Launcher,
        max_runs: int,
        idle_s: float = 60.0,
        per_key: int = 2,
        max_total: int = 64,
        grace_s: float = 10.0,
    ):
        self.launcher = launcher
        self.grace_s = grace_s
        self.max_runs = max_runs
        self.idle_s = idle_s
        self.per_key = per_key
        self.max_total = max_total
        self._idle: collections.OrderedDict[str, collections.deque] = collections.OrderedDict()
        self._resetting: collections.Counter = collections.Counter()
        self._cond = threading.Condition()
        self._closed = False
        self._workers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sandbox-reuse")
        self._sweeper: Optional[threading.Thread] = None
        self.counters = {"reused": 0, "retired": 0, "spares": 0}

    # -- taking and keeping ------------------------------------------------------------------

    def may_keep(self, live: Container, limits: Limits) -> bool:
        """Whether ``live`` may be asked to stay after this run (it may still be retired later)."""
        return (
            not self._closed and live.runs + 1 < self.max_runs and self._fresh_enough(live, limits)
        )

    def _fresh_enough(self, live: Container, limits: Limits) -> bool:
        # A run must end long before the expiry label lets any reaper remove the container.
        margin = 2 * limits.time_s + self.grace_s + 60
        return time.time() + margin < live.expires_at

    def take(
        self, key: str, limits: Limits, spare: Optional[Callable[[], Optional[Container]]] = None
    ) -> Optional[Container]:
        """One of ``key``'s reset containers that fits ``limits``, or None (the caller takes a
        pooled container or starts one).

        While one of ``key``'s containers is still being reset, ``spare`` (if given) is asked once
        for a container that ran nothing before and is ready now (the warm pool's); the run takes
        it rather than waiting, as long as ``key`` holds fewer than ``per_key`` containers. Without
        one, the run waits up to WAIT_FOR_RESET_S for the reset.
        """
        deadline = time.monotonic() + WAIT_FOR_RESET_S
        stale: list[Container] = []
        asked = spare is None
        try:
            while True:
                with self._cond:
                    found = self._pick(key, limits, stale)
                    remaining = deadline - time.monotonic()
                    if (
                        found is not None
                        or self._closed
                        or not self._resetting[key]
                        or remaining <= 0
                    ):
                        return found
                    # With per_key of the user's containers being reset, the run waits for one
                    # of them. (Containers in use are not counted: two runs of the user at once
                    # may make one more, and the cap retires it once it is reset.)
                    ask = not asked and self._resetting[key] < self.per_key
                    asked = True
                    if not ask:
                        self._cond.wait(remaining)
                        continue
                assert spare is not None  # asked is False only when spare is given
                live = spare()  # outside the lock: the pool has its own
                if live is not None:
                    with self._cond:
                        self.counters["spares"] += 1
                    return live
        finally:
            for live in stale:
                self.remove(live, "idle too long, too old or ended")

    def _pick(self, key: str, limits: Limits, stale: list) -> Optional[Container]:
        """Under the lock: takes ``key``'s most recently used container that fits ``limits``;
        moves the unusable ones to ``stale``; leaves those kept for other limits."""
        waiting = self._idle.get(key)
        if not waiting:
            return None
        found = None
        for live in reversed(list(waiting)):  # the most recently used first: its caches are warm
            if not (
                self._fresh_enough(live, limits)
                and time.monotonic() - live.last_used < self.idle_s
                and live.alive()
            ):
                waiting.remove(live)
                stale.append(live)
            elif found is None and live.limits.can_serve(limits):
                waiting.remove(live)
                found = live
        if not waiting:
            del self._idle[key]
        if found is not None:
            self.counters["reused"] += 1
        return found

    def recycle(self, live: Container, key: str, exchange: Exchange) -> None:
        """Hands over a container whose runner was asked to stay: once it says "ready", it waits
        for ``key``'s next run. Returns at once."""
        with self._cond:
            self._resetting[key] += 1
        try:
            self._workers.submit(self._await_reset, live, key, exchange)
        except RuntimeError:  # closed meanwhile
            self._settled(key)
            self.remove(live, "the sandbox is closing")

    def _await_reset(self, live: Container, key: str, exchange: Exchange) -> None:
        try:
            if live.reader is not None:
                read_frames(
                    live,
                    live.reader,
                    time.monotonic() + RESET_TIMEOUT_S,
                    lambda: bool(exchange.after),
                )
        except Exception as e:  # the engine went away: the container cannot be trusted again
            log.warning("container %s: no word after its run (%s)", live.container_id[:12], e)
        finally:
            self._settled(key)
        if (
            exchange.after != "ready"
            or exchange.host_timeout
            or exchange.overflow
            or exchange.protocol_error
        ):
            self.remove(live, exchange.retired_reason or "no report that it was reset")
            return
        live.last_used = time.monotonic()
        evicted = []
        with self._cond:
            if self._closed:
                evicted.append(live)
            else:
                waiting = self._idle.setdefault(key, collections.deque())
                self._idle.move_to_end(key)
                waiting.append(live)
                while len(waiting) > self.per_key:
                    evicted.append(waiting.popleft())
                while self._total() > self.max_total:
                    oldest_key = next(iter(self._idle))
                    evicted.append(self._idle[oldest_key].popleft())
                    if not self._idle[oldest_key]:
                        del self._idle[oldest_key]
                self._cond.notify_all()
                self._start_sweeper()
        for old in evicted:
            self.remove(old, "more containers kept than allowed")

    def _settled(self, key: str) -> None:
        with self._cond:
            self._resetting[key] -= 1
            if self._resetting[key] <= 0:
                del self._resetting[key]
            self._cond.notify_all()

    def _total(self) -> int:
        return sum(len(d) for d in self._idle.values())

    def remove(self, live: Container, why: str) -> None:
        """Removes one of the store's containers (counted as retired) in the background."""
        log.debug("retiring container %s: %s", live.container_id[:12], why)
        self.counters["retired"] += 1
        self.launcher.remove(live, "soon")

    # -- housekeeping --------------------------------------------------------------------------

    def _start_sweeper(self) -> None:
        if self._sweeper is None:
            self._sweeper = threading.Thread(
                target=self._sweep, name="sandbox-reuse-sweep", daemon=True
            )
            self._sweeper.start()

    def _sweep(self) -> None:
        """Retires containers unused for ``idle_s``, so an absent user holds nothing for long, and
        containers that ended (an engine restart stops them all) as soon as it sees them."""
        while True:
            with self._cond:
                if not self._closed:  # a drain before its first look notified no one
                    self._cond.wait(timeout=min(5.0, self.idle_s / 2))
                if self._closed:
                    return
                now = time.monotonic()
                stale = []
                for key in list(self._idle):
                    waiting = self._idle[key]
                    for live in [
                        x for x in waiting if now - x.last_used >= self.idle_s or not x.alive()
                    ]:
                        waiting.remove(live)
                        stale.append(live)
                    if not waiting:
                        del self._idle[key]
            for live in stale:
                self.remove(live, "idle")

    def drain(self) -> None:
        """Retires every kept container and waits for resets in progress; leaves nothing behind."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._workers.shutdown(wait=True)
        with self._cond:
            kept = [live for waiting in self._idle.values() for live in waiting]
            self._idle.clear()
        for live in kept:
            self.launcher.remove(live)
        if self._sweeper is not None:
            self._sweeper.join(timeout=10)

    def status(self) -> dict[str, Any]:
        with self._cond:
            return {
                "max_runs": self.max_runs,
                "idle_s": self.idle_s,
                "max_kept": self.max_total,
                "kept": self._total(),
                "users": len(self._idle),
                "resetting": sum(self._resetting.values()),
                "served": self.counters["reused"],
                "retired": self.counters["retired"],
                "spares": self.counters["spares"],
            }
