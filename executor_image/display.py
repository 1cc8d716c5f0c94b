"""The runner's side of figures: reads PNG images the program sends on its display pipe, caps
them and frames them for the host (stdlib only).

The pipe is the student's: anything may arrive on it, from the program or from any process it
started. Records are ``<4-byte big-endian length><PNG bytes>``; the runner checks each one, keeps
at most ``limit`` images and ``max_bytes`` bytes in all, and only it writes the display frames, under
the job's nonce, on the channel the program cannot reach. Past a cap, or on anything that is not a
PNG, one note goes to the program's stderr and the runner closes its end: further writes fail with
EPIPE at once (a writer never blocks, and a flood costs the runner nothing).
"""

import base64
import os

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HEADER = 4
READ_CHUNK = 65536


class DisplayPipe:
    """Collects one program's images from the read end ``fd`` (owned here, closed by ``close``).

    Args:
        emit: called with each display frame (a dict) as it is accepted.
        note: called once with a line for the program's stderr when something was dropped.
    """

    def __init__(self, fd, limit, max_bytes, emit, note):
        self.fd = fd
        os.set_blocking(fd, False)
        self.limit = max(0, int(limit))
        self.max_bytes = max(0, int(max_bytes))
        self.emit = emit
        self.note = note
        self.buffer = bytearray()
        self.count = 0
        self.sent_bytes = 0
        self.dropping = False  # past a cap or out of protocol: nothing more is read
        self.closed = False
        self.eof = False

    def read(self):
        """Reads what is there now; False once the pipe is at EOF, or past a cap (then the caller
        stops watching it and closes it)."""
        while not (self.closed or self.eof or self.dropping):
            try:
                chunk = os.read(self.fd, READ_CHUNK)
            except BlockingIOError:
                return True
            except OSError:
                chunk = b""
            if not chunk:
                self.eof = True
                return False
            self.buffer += chunk
            self._records()
        return False

    def _records(self):
        while len(self.buffer) >= HEADER:
            size = int.from_bytes(self.buffer[:HEADER], "big")
            if size > self.max_bytes - self.sent_bytes or self.count >= self.limit:
                self._drop(
                    "at most %d figure(s) and %d KiB of images per run"
                    % (self.limit, self.max_bytes // 1024)
                )
                return
            if len(self.buffer) < HEADER + size:
                return
            image = bytes(self.buffer[HEADER : HEADER + size])
            del self.buffer[: HEADER + size]
            if not image.startswith(PNG_SIGNATURE):
                self._drop("the display channel carries PNG images only")
                return
            self.count += 1
            self.sent_bytes += size
            self.emit(
                {
                    "type": "display",
                    "mime": "image/png",
                    "data": base64.b64encode(image).decode("ascii"),
                }
            )

    def _drop(self, why):
        self.dropping = True
        self.buffer = bytearray()
        self.note("[sandbox] further figures were not shown: %s.\n" % why)

    def close(self):
        if not self.closed:
            self.closed = True
            self.buffer = bytearray()
            try:
                os.close(self.fd)
            except OSError:
                pass
