"""A launcher without Docker for the warm pool's and the per-user store's logic.

Its containers are real ``Container`` handles on one end of a ``socket.socketpair()``; the test
holds the other end (the runner's side of the attach stream). Closing that end is what a runner's
exit looks like to the host (EOF), so ``alive()`` answers for real; writing frames there, in the
engine's attach multiplexing, is what the runner says.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Union

from jupyter_exec_ext.sandbox.containers import Container, When
from jupyter_exec_ext.sandbox.limits import Limits
from jupyter_exec_ext.sandbox.protocol import STREAM_STDOUT


def wait_for(predicate, what: str, timeout: float = 10.0) -> None:
    """Polls until ``predicate()`` holds: a bounded wait for a state, never a timing assertion."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.01)


def multiplexed(payload: bytes, stream: int = STREAM_STDOUT) -> bytes:
    """``payload`` as one chunk of the engine's attach stream: an 8-byte header (stream, three
    zero bytes, big-endian size), then the bytes."""
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


def frame(nonce: str, **fields) -> bytes:
    """One frame line of the runner: ``<nonce> <json>``."""
    return f"{nonce} {json.dumps(fields)}\n".encode()


class LaunchFailed(RuntimeError):
    """What the fake engine raises for a launch it was told to fail."""


class FakeLauncher:
    """A ``Launcher`` that records what it is asked and never talks to an engine.

    Args:
        lifetime_s: a container's expiry label lies this far after its launch (plus ``idle_s``).
    """

    def __init__(self, lifetime_s: float = 3600.0):
        self.lifetime_s = lifetime_s
        #: Every launch asked for, failed ones too: ``(limits, idle_s)``.
        self.launches: list[tuple[Limits, float]] = []
        #: When each of them was asked for (``time.monotonic()``).
        self.launch_times: list[float] = []
        #: The containers handed out, in launch order.
        self.launched: list[Container] = []
        #: Every removal asked for: ``(container id, when)``, in order.
        self.removals: list[tuple[str, str]] = []
        #: While cleared, a launch waits for it (``hold_launches``); set by default.
        self.gate = threading.Event()
        self.gate.set()
        #: Set when a launch is waiting at the gate.
        self.held = threading.Event()
        self._failures = 0
        self._peers: dict[str, socket.socket] = {}
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    # -- the Launcher protocol -----------------------------------------------------------------

    def launch(self, limits: Limits, idle_s: float = 0.0) -> Container:
        with self._lock:
            self.launches.append((limits, idle_s))
            self.launch_times.append(time.monotonic())
            number = len(self.launches)
            if self._failures > 0:
                self._failures -= 1
                raise LaunchFailed(f"launch {number} failed as the test asked")
        if not self.gate.is_set():
            self.held.set()
            if not self.gate.wait(timeout=30):
                raise LaunchFailed("a held launch was never released")
        host, runner = socket.socketpair()
        container_id = f"fake{number:04d}"
        container = Container(
            container_id,
            host,
            limits,
            time.monotonic(),
            time.time() + idle_s + self.lifetime_s,
        )
        with self._lock:
            self._sockets += [host, runner]
            self._peers[container_id] = runner
            self.launched.append(container)
        return container

    def remove(self, target: Union[Container, str], when: When = "now") -> None:
        container_id = target if isinstance(target, str) else target.container_id
        with self._lock:
            self.removals.append((container_id, when))
        if isinstance(target, Container):
            target.close()  # as the engine does: the runner sees EOF and ends

    # -- what a test does to it ----------------------------------------------------------------

    def fail_next(self, count: int) -> None:
        """The next ``count`` launches raise ``LaunchFailed``."""
        with self._lock:
            self._failures = count

    def hold_launches(self) -> None:
        """Launches wait (at most 30 s) until ``release_launches``."""
        self.held.clear()
        self.gate.clear()

    def release_launches(self) -> None:
        self.gate.set()

    def peer(self, container: Container) -> socket.socket:
        """The runner's end of ``container``'s attach stream."""
        return self._peers[container.container_id]

    def kill(self, container: Container) -> None:
        """The container's runner ends: its attach stream reaches EOF, so it is no longer alive."""
        self.peer(container).close()

    def say(self, container: Container, nonce: str, **fields) -> None:
        """The runner writes one frame, as the engine's attach stream carries it."""
        self.peer(container).sendall(multiplexed(frame(nonce, **fields)))

    def removed(self, container: Container) -> list[str]:
        """The ``when`` of each removal asked for ``container``."""
        with self._lock:
            return [when for cid, when in self.removals if cid == container.container_id]

    def sockets(self) -> list[socket.socket]:
        with self._lock:
            return list(self._sockets)

    def close(self) -> None:
        """Closes every socket it made (both ends of every container's stream)."""
        self.gate.set()
        for sock in self.sockets():
            sock.close()
