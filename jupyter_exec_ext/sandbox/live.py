"""The host's side of a live run's input: stdin, end of input and cancel, sent to the runner while
the program runs (``DockerSandbox.run`` with a ``LiveControl``; protocol in executor_image/runner.py).

Any thread may call ``send_stdin``, ``send_eof`` and ``cancel``; they never block. Lines sent
before the run's container is ready wait here and go out, in order, right after the job line.
A writer thread of the run sends them, so a runner that does not read cannot stall the caller,
and the thread that reads the runner's frames never waits on a write (no deadlock when both
directions are full).
"""

from __future__ import annotations

import collections
import json
import threading
import time
from typing import Any, Callable, Optional

#: After a cancel, the runner has this long to report; then the host kills the container itself.
CANCEL_GRACE_S = 0.6


class LiveControl:
    """Input and cancel for one live run.

    Args:
        max_stdin_bytes: the most stdin one run may be sent in total (UTF-8 bytes); more is refused.
    """

    def __init__(self, max_stdin_bytes: int = 1024 * 1024):
        self.max_stdin_bytes = max_stdin_bytes
        self.stdin_bytes = 0
        self._cond = threading.Condition()
        self._lines: collections.deque = collections.deque()
        self._send: Optional[Callable[[bytes], Any]] = None
        self._writer: Optional[threading.Thread] = None
        self._over = False
        self.eof_sent = False
        self.cancelled_at: Optional[float] = None

    # -- the client's side ----------------------------------------------------------------------

    def send_stdin(self, data: str) -> None:
        """Queues more input for the program.

        Raises:
            ValueError: the input ended already, or the run's stdin would pass ``max_stdin_bytes``.
        """
        size = len(data.encode("utf-8", "replace"))
        with self._cond:
            if self.eof_sent:
                raise ValueError("the program's input has ended already (stdin eof was sent)")
            if self.stdin_bytes + size > self.max_stdin_bytes:
                raise ValueError(
                    f"stdin of this run would be over the limit of {self.max_stdin_bytes} bytes"
                )
            self.stdin_bytes += size
            self._post({"type": "stdin", "data": data})

    def send_eof(self) -> None:
        """Ends the program's input (its next read at the end gets EOF). Idempotent."""
        with self._cond:
            if not self.eof_sent:
                self.eof_sent = True
                self._post({"type": "stdin", "eof": True})

    def cancel(self) -> None:
        """Stops the run: the runner kills the program and reports ``cancelled``; if it does not
        within CANCEL_GRACE_S, the host kills the container. Idempotent."""
        with self._cond:
            if self.cancelled_at is None:
                self.cancelled_at = time.monotonic()
                self._post({"type": "cancel"})
                self._cond.notify_all()

    @property
    def cancelled(self) -> bool:
        return self.cancelled_at is not None

    @property
    def cancel_deadline(self) -> Optional[float]:
        """Monotonic time by which the runner must have reported a cancelled run."""
        at = self.cancelled_at
        return None if at is None else at + CANCEL_GRACE_S

    # -- the sandbox's side ---------------------------------------------------------------------

    def _post(self, message: dict) -> None:
        """Under the lock: queues one control line for the writer thread."""
        if self._over:
            return
        self._lines.append((json.dumps(message) + "\n").encode("utf-8", "surrogatepass"))
        self._cond.notify_all()

    def attach(self, send: Callable[[bytes], Any]) -> None:
        """The job line is sent: from now on control lines go out through ``send`` (blocking)."""
        with self._cond:
            if self._over:
                return
            self._send = send
            self._writer = threading.Thread(
                target=self._write, name="sandbox-live-input", daemon=True
            )
            self._writer.start()

    def _write(self) -> None:
        while True:
            with self._cond:
                while not self._lines and not self._over:
                    self._cond.wait()
                if self._over:
                    return
                line = self._lines.popleft()
                send = self._send
                assert send is not None  # detach() clears it only together with _over
            try:
                send(line)
            except OSError:  # the container ended or the socket timed out: nothing more goes in
                with self._cond:
                    self._over = True
                return

    def detach(self) -> None:
        """The run is over: nothing more is sent (lines still queued are dropped)."""
        with self._cond:
            self._over = True
            self._lines.clear()
            self._send = None
            self._cond.notify_all()
