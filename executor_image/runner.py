"""Runs one job of student code inside the executor container (stdlib only).

Identities. The container starts as uid 0 with only CAP_SETUID, CAP_SETGID, CAP_SETPCAP and
CAP_KILL (no-new-privileges, read-only root); docker-init is PID 1 as uid 0. Three kinds of
process then share it, and the student's uid reaches neither of the other two:
    runner (this process, uid 0)  reads the job, writes the frames below on its stdout
    student processes (uid 10001) run the submitted code; no capability, not even in the
                                  bounding set, and no way back to another uid
    harness processes (uid 10002) run an instructor's test code, one process per test
Processes of another uid cannot be traced, signalled or read through /proc by the student's, so
the frame channel, the tests' code and the verdicts are out of its reach.

Two zygotes, forked before any job arrives (so they hold nothing secret), start those processes:
the student zygote (uid 0, it never runs student code) forks a process for the program and a
fresh one for each test, each dropping to the student's uid at once; it also kills the student's
processes and empties every writable place between tests. The harness zygote (uid 10002) forks
one harness process per test (harness.py), which reaches the student's process only over a socket
(wire.py, student.py).

Protocol. The host writes a job on this process's stdin as one line of JSON:
    {"nonce": str, "code": str, "stdin": str, "time_limit": float, "output_limit": int,
     "checks": [{"code": str, "timeout": float}, ...],            (checks: optional, for grading)
     "keep": bool, "linger": bool,          (optional: serve another job / wait for EOF to end)
     "interactive": bool,    (optional, never with checks: stdin stays open, see "Live runs")
     "files": [{"name": str, "data": base64}],  (optional: data files, read-only in /tmp; workfiles.py)
     "display_limit": int, "display_bytes": int}   (caps on the program's figures; display.py)
The runner answers on its own stdout with frames, one per line, each ``<nonce> <json>\\n``:
    {"type": "output", "stream": "stdout" | "stderr", "data": str}   as the code prints
    {"type": "display", "mime": "image/png", "data": base64}     a figure the program showed
    {"type": "check", "index": int, "outcome": str, "stdout": str, "stderr": str,
     "error": {"type", "message", "traceback", "assertion"} | null, "message": str,
     "duration_ms": int}                          one per check, in order, after the program ran
    {"type": "result", "status": str, "exit_code": int | null, "duration_ms": int,
     "truncated": bool, "message": str}                                exactly once per job
Without "keep" the runner ends after the result; with "linger" it first kills every process of
the program and waits for EOF on stdin (the host removes the container when the engine is less
busy). With "keep", it returns the container to the state of a fresh one and says so with one more
frame under the same nonce:
    {"type": "ready"}              waiting for the next job line (EOF on stdin ends the runner)
    {"type": "retired", "reason": str}   could not; the runner ends and the host discards it

Live runs. With "interactive", the program's stdin is not closed after the job's "stdin": the
host may send more lines on this process's stdin while the program runs, each one JSON object:
    {"type": "stdin", "data": str}     more input for the program
    {"type": "stdin", "eof": true}     end of its input
    {"type": "cancel"}                 stop the program now: the result says "cancelled"
(EOF on this process's stdin during the run also stops the program.) When the program reads
stdin with nothing buffered (its process says so on its status socket, with input()'s prompt),
the runner sends one more frame, at most one until the host sends stdin again:
    {"type": "input_request", "prompt": str}
The prompt is the program's to write, so the host trusts it no more than its output. Control
lines that arrive after a job ended are skipped when the next job line is read.

Grading. The program runs once (its output is the answer's stdout). Each check then runs in a
fresh student process, which runs the program again (that output is dropped) and answers the
harness's calls; the check's stdout is what the test printed plus what the student's code printed
during the calls. Before each check and after the last, every process of the student's uid is
killed and /tmp, /dev/shm, /dev/mqueue and System V IPC are emptied, so a hidden check leaves
nothing a later one could see. Expected outputs never enter the container: the host compares them.
"""

import codecs
import collections
import ctypes
import gc
import json
import os
import resource
import selectors
import signal
import socket
import sys
import time

# Not imported here: threading (only where a thread is started). The student zygote is a fork of
# this process; with threading loaded, every fork it makes runs threading's at-fork hook, and each
# test's process then copies about 140 more pages (about 0.5 ms of CPU per test). Checked by
# tests/grading/test_harness.py (a test's process starts without it).

harness = None  # the module, loaded in the harness zygote only
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import student  # noqa: E402
import workfiles  # noqa: E402
import zygote as student_zygote  # noqa: E402
from display import DisplayPipe  # noqa: E402
from zygote import (  # noqa: E402
    HARNESS,
    close_fds_except,
    drop_privileges,
    empty_bounding_set,
    helper_loop,
    privileged,
    quiet_stdio,
    receive,
    reset_signals,
    send_message,
    waitstatus_code,
)

MAX_JOB_BYTES = 16 * 1024 * 1024
#: Longest prompt an input_request frame carries (the rest is cut).
MAX_PROMPT_CHARS = 4096
#: Host messages a live run takes besides its job line.
CONTROL_TYPES = ("stdin", "cancel")
READ_CHUNK = 65536
PIPE_ATOMIC = 4096  # PIPE_BUF: a write of this much to an empty pipe never blocks
# After the program exits, processes it left behind that still hold its pipes get this long.
DRAIN_SECONDS = 0.5
PR_SET_DUMPABLE = 4
MAX_REPORT_BYTES = 1024 * 1024
OOM_CONTROL = ("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events")
ZYGOTE_REPLY_SECONDS = 15.0
#: Check frames wait in the output buffer at most this long (see run_job_in_place).
CHECK_FRAMES_FLUSH_S = 0.25


class Reporter:
    """Writes frames to the runner's own stdout, the channel the child cannot reach."""

    def __init__(self, nonce):
        self.prefix = (nonce + " ").encode("ascii")
        self.out = sys.stdout.buffer

    def frame(self, obj, flush=True):
        """Writes one frame; ``flush=False`` leaves it in the buffer for the next flushed frame (a
        job's check frames go out together: each write costs the engine's relay a wake-up)."""
        self.out.write(self.prefix + json.dumps(obj, ensure_ascii=True).encode("ascii") + b"\n")
        if flush:
            self.out.flush()

    def result(self, status, exit_code=None, duration_ms=0, truncated=False, message=""):
        self.frame(
            {
                "type": "result",
                "status": status,
                "exit_code": exit_code,
                "duration_ms": int(duration_ms),
                "truncated": bool(truncated),
                "message": message,
            }
        )


def make_non_dumpable():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


class HostChannel:
    """This process's stdin (the host's end of the attach stream), read as lines with os.read so
    that a live run can watch it with select() while the program runs."""

    def __init__(self, fd=0):
        self.fd = fd
        self.buffer = bytearray()
        self.scanned = 0
        self.eof = False

    def fill(self):
        """Reads what is there (one read; blocks if nothing is); False at EOF."""
        try:
            chunk = os.read(self.fd, READ_CHUNK)
        except InterruptedError:
            return True
        except OSError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buffer += chunk
        return True

    def next_line(self, limit):
        """A complete line already read, without its newline, or None. ValueError past ``limit``."""
        end = self.buffer.find(b"\n", self.scanned)
        if end < 0:
            self.scanned = len(self.buffer)
            if len(self.buffer) > limit:
                raise ValueError("job is larger than %d bytes" % limit)
            return None
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 1]
        self.scanned = 0
        if len(line) > limit:
            raise ValueError("job is larger than %d bytes" % limit)
        return line

    def readline(self, limit):
        """The next line; EOFError when the host closed the stream first."""
        while True:
            line = self.next_line(limit)
            if line is not None:
                return line
            if self.eof or not self.fill():
                raise EOFError

    def drain(self):
        """Reads until EOF, keeping nothing (a lingering container waits for its removal)."""
        self.buffer.clear()
        self.scanned = 0
        while self.fill():
            self.buffer.clear()


HOST = HostChannel()


def read_job():
    """The next job line; EOFError when the host closed stdin instead. Control lines of a live
    run that ended (a cancel that crossed its result) are skipped."""
    while True:
        data = HOST.readline(MAX_JOB_BYTES)
        job = json.loads(data.decode("utf-8"))
        if isinstance(job, dict) and job.get("type") in CONTROL_TYPES and "code" not in job:
            continue
        break
    if not isinstance(job, dict) or not isinstance(job.get("code"), str):
        raise ValueError("job must be an object with a string 'code'")
    checks = job.get("checks") or []
    if not isinstance(checks, list) or not all(
        isinstance(c, dict) and isinstance(c.get("code"), str) for c in checks
    ):
        raise ValueError("checks must be a list of objects with a string 'code'")
    return job


def feed(fd, data):
    """Writes data to a pipe and closes it; what does not fit in the pipe at once is written from
    a thread, so a child that never reads cannot block the runner."""
    if len(data) <= PIPE_ATOMIC:
        try:
            os.write(fd, data)  # an empty pipe takes this much whole, without blocking
        except OSError:
            pass
        os.close(fd)
        return

    def run():
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            pass  # the child closed its end or died; it simply did not read everything
        finally:
            os.close(fd)

    import threading  # here, not at the top (see the imports)

    threading.Thread(target=run, daemon=True).start()


class LiveInput:
    """A live run's input: the program's stdin stays open and gets what the host sends while it
    runs; the host's control lines (stdin, eof, cancel) are read from this process's stdin.

    Writes to the program's stdin happen on a thread, so a program that does not read cannot
    block the runner; what waits to be written counts against ``max_pending`` bytes (more is
    dropped: the program was not reading it anyway).
    """

    def __init__(self, fd, reporter, initial, max_pending=MAX_JOB_BYTES):
        import threading  # here, not at the top (see the imports)

        self.fd = fd
        self.reporter = reporter
        self.max_pending = max_pending
        self.cond = threading.Condition()
        self.items = collections.deque()  # bytes, or None for EOF
        self.pending = 0
        self.eof = False
        # Bytes of input accepted for the program so far (written, or queued to be), and how
        # many had been when the last input_request went out: the host is asked once per answer.
        self.accepted = 0
        self.asked_at = -1
        self.cancelled = False
        self.host_gone = False
        self.thread = threading.Thread(target=self._write, daemon=True)
        self.thread.start()
        if initial:
            self.put(initial)

    def put(self, data):
        with self.cond:
            if self.eof or not data or self.pending + len(data) > self.max_pending:
                return
            self.items.append(data)
            self.pending += len(data)
            self.accepted += len(data)
            self.cond.notify()

    def close_input(self):
        with self.cond:
            if not self.eof:
                self.eof = True
                self.items.append(None)
                self.cond.notify()

    def _write(self):
        try:
            while True:
                with self.cond:
                    while not self.items:
                        self.cond.wait()
                    data = self.items.popleft()
                if data is None:
                    return
                view = memoryview(data)
                while view:
                    count = os.write(self.fd, view)
                    view = view[count:]
                with self.cond:
                    self.pending -= len(data)
        except OSError:
            pass  # the program ended or closed its stdin: nobody reads the rest
        finally:
            try:
                os.close(self.fd)
            except OSError:
                pass

    def stop(self):
        """The run is over: the writer thread ends (its pipe's reader is gone or EOF is sent)."""
        self.close_input()

    def on_request(self, prompt, consumed):
        """The program's process says it is about to wait for input, having read ``consumed``
        bytes of it, and found none in its pipe. Asks the host, unless input it has not read yet
        was accepted for it (in the pipe or on its way there), or the host was asked already
        since the last input (however often the program says so, the host hears it once per
        answer). Counting bytes, not watching the writer, leaves no moment in which a program that
        read an answer and asks again at once is not heard."""
        with self.cond:
            if self.eof or self.cancelled:
                return
            if consumed < self.accepted or self.asked_at == self.accepted:
                return
            self.asked_at = self.accepted
        self.reporter.frame({"type": "input_request", "prompt": prompt[:MAX_PROMPT_CHARS]})

    def on_host(self):
        """This process's stdin is readable: takes the host's control lines."""
        if not HOST.fill():
            self.host_gone = True
        self.take_lines()

    def take_lines(self):
        while True:
            try:
                line = HOST.next_line(MAX_JOB_BYTES)
            except ValueError:
                sys.stderr.write("runner: control line too long; ignored\n")
                HOST.buffer.clear()
                HOST.scanned = 0
                return
            if line is None:
                return
            try:
                message = json.loads(line.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                message = None
            if not isinstance(message, dict):
                sys.stderr.write("runner: control line is not a JSON object; ignored\n")
                continue
            kind = message.get("type")
            if kind == "cancel":
                self.cancelled = True
            elif kind == "stdin":
                if message.get("eof") is True:
                    self.close_input()
                elif isinstance(message.get("data"), str):
                    self.put(message["data"].encode("utf-8", "replace"))


def describe_signal(num):
    try:
        return signal.Signals(num).name
    except ValueError:
        return "signal %d" % num


def oom_kills():
    for path in OOM_CONTROL:
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith("oom_kill "):
                        return int(line.split()[1])
        except (OSError, ValueError):
            continue
    return None


class Pump:
    """Reads pipes with a byte cap per stream, decoding UTF-8 incrementally.

    ``on_text(name, text)`` receives what was read; ``over`` names the first stream that passed
    its cap (what fit is kept, the rest is dropped).
    """

    def __init__(self, pipes, cap, on_text):
        self.sel = selectors.DefaultSelector()
        self.names = {}
        self.cap = cap
        self.on_text = on_text
        self.counts = {}
        self.decoders = {}
        self.over = None
        self.truncated = False
        self.owned = set(pipes.values())
        for name, fd in pipes.items():
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ)
            self.names[fd] = name
            self.counts[name] = 0
            self.decoders[name] = codecs.getincrementaldecoder("utf-8")("replace")

    def open_count(self):
        return len(self.sel.get_map())

    def add(self, fd, name):
        """Watches a descriptor the pump does not own (poll() returns it when it is readable)."""
        self.sel.register(fd, selectors.EVENT_READ)
        self.names[fd] = name

    def watching(self, fd):
        return fd in self.sel.get_map()

    def poll(self, timeout):
        """Reads what is ready within ``timeout``; returns the extra (non-output) fds that are ready."""
        extra = []
        for key, _ in self.sel.select(timeout=max(0.0, timeout)):
            fd = key.fd
            name = self.names[fd]
            if name not in self.decoders:
                extra.append(fd)
                continue
            try:
                chunk = os.read(fd, READ_CHUNK)
            except BlockingIOError:
                continue
            if not chunk:
                self.remove(fd)
                continue
            room = self.cap - self.counts[name]
            if len(chunk) > room:
                chunk = chunk[: max(room, 0)]
                self.truncated = True
                self.over = self.over or name
            self.counts[name] += len(chunk)
            text = self.decoders[name].decode(chunk)
            if text:
                self.on_text(name, text)
        return extra

    def read_available(self, rounds=256):
        """Reads what the pipes already hold, without waiting: output written before a process
        ended is kept even when the runner itself was slow to get the CPU (a loaded machine)."""
        for _ in range(rounds):
            ready = [
                key
                for key, _ in self.sel.select(timeout=0)
                if self.names.get(key.fd) in self.decoders
            ]
            if not ready:
                return
            self.poll(0)

    def remove(self, fd):
        try:
            self.sel.unregister(fd)
        except (KeyError, ValueError):
            pass
        if fd in self.owned:
            self.owned.discard(fd)
            os.close(fd)

    def finish(self):
        for name, dec in self.decoders.items():
            tail = dec.decode(b"", final=True)
            if tail:
                self.on_text(name, tail)
        for fd in list(self.sel.get_map()):
            self.remove(fd)
        self.sel.close()


class StudentZygote:
    """The runner's side of the student zygote."""

    def __init__(self):
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # Forked first thing, before the runner loads anything else (the harness especially):
        # every student process is a fork of it, and a smaller process forks faster.
        self.pid = os.fork()
        if self.pid == 0:
            try:
                self.sock.close()
                student_zygote.student_zygote_main(theirs)
            finally:
                os._exit(70)
        theirs.close()
        self.exits = {}

    def note(self, message):
        if isinstance(message.get("exited"), int):
            self.exits[message["exited"]] = message.get("status")
            return True
        return False

    def request(self, message, fds=()):
        send_message(self.sock, message, fds)
        self.sock.settimeout(ZYGOTE_REPLY_SECONDS)
        try:
            while True:
                reply = receive(self.sock)
                if reply is None:
                    raise OSError("the student zygote is gone")
                if not self.note(reply):
                    return reply
        finally:
            self.sock.setblocking(True)

    def poll(self):
        """Takes the exit notices that arrived (call when the socket is readable)."""
        while True:
            try:
                msg = self.sock.recv(65536, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if not msg:
                return
            try:
                self.note(json.loads(msg))
            except (ValueError, AttributeError):
                pass

    def kill(self):
        try:
            return self.request({"op": "kill"}).get("killed") is True
        except OSError:
            return False

    def clean(self):
        """Kills the student's processes and empties the writable places; "" or why not."""
        try:
            reason = self.request({"op": "clean"}).get("reason")
        except OSError as e:
            return str(e)
        return reason if isinstance(reason, str) else "the student zygote did not answer"

    def exit_code(self, pid):
        """None while ``pid`` runs; its exit code (negative: a signal) once it ended."""
        if pid not in self.exits:
            return None
        code = waitstatus_code(self.exits[pid])
        return code if code is not None else -signal.SIGKILL


class StudentProcess:
    """A process of the student's uid waiting for its code (pipes held here).

    Args:
        rpc_fd: for a test's process, its end of the harness's socket; a program's process has
            a status socket instead, on which it says it booted and that it ran its code.
        clean: first kill every process of the student's uid and empty the writable places.

    Raises:
        OSError: the zygote could not start it (with ``clean``: the container could not be
            cleaned, and the message says why).
    """

    def __init__(self, zygote, rpc_fd=-1, clean=False):
        code_r, self.code_w = os.pipe()
        in_r, self.in_w = os.pipe()
        self.out_r, out_w = os.pipe()
        self.err_r, err_w = os.pipe()
        null = os.open("/dev/null", os.O_RDONLY)
        # The program's process gets a pipe for figures (display.py); a test's does not.
        self.display_r, display_w = os.pipe() if rpc_fd < 0 else (-1, null)
        if rpc_fd < 0:
            self.status, status_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            child_fds = [status_child.fileno(), null, display_w]
        else:
            self.status = status_child = None
            child_fds = [null, rpc_fd, null]
        self.zygote = zygote
        try:
            reply = zygote.request(
                {"op": "spawn", "clean": clean, "display": rpc_fd < 0},
                [code_r, in_r, out_w, err_w] + child_fds,
            )
        except OSError:
            reply = {}
        finally:
            for fd in {code_r, in_r, out_w, err_w, null, display_w}:
                os.close(fd)
            if status_child is not None:
                status_child.close()
        self.pid = reply.get("pid")
        if not isinstance(self.pid, int):
            for fd in (self.code_w, self.in_w, self.out_r, self.err_r, self.display_r):
                if fd >= 0:
                    os.close(fd)
            if self.status is not None:
                self.status.close()
            raise OSError(reply.get("reason") or "the student zygote could not start a process")

    def wait_booted(self, seconds=10.0):
        self.status.settimeout(seconds)
        try:
            return receive(self.status).get("booted") is True
        except (OSError, AttributeError):
            return False
        finally:
            self.status.setblocking(True)

    def exit_code(self):
        return self.zygote.exit_code(self.pid)

    def discard(self):
        for fd in (self.code_w, self.in_w, self.out_r, self.err_r, self.display_r):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.status is not None:
            self.status.close()
        self.zygote.kill()


# -- the harness zygote -----------------------------------------------------------------------------


def harness_zygote_main(sock):
    quiet_stdio()
    close_fds_except([sock.fileno()])
    empty_bounding_set()
    drop_privileges(*HARNESS)
    # Nothing the student's processes can write is where the harness looks for modules or files.
    os.chdir("/")
    sys.path[:] = [p for p in sys.path if p and not p.startswith(("/tmp", "/dev"))]
    global harness
    import harness  # only the harness's side loads it

    gc.freeze()  # its forks then share these objects' pages instead of copying them

    def on_message(message, fds, closing):
        if message.get("op") != "session" or len(fds) != 1:
            return {"error": "unknown request"}
        pid = os.fork()
        if pid == 0:
            try:
                reset_signals()
                os.setpgid(0, 0)
                for fd in closing:
                    os.close(fd)
                sock.close()
                harness_session(socket.socket(fileno=fds[0]))
            except BaseException:
                os._exit(70)
            os._exit(0)
        return {"pid": pid}

    helper_loop(sock, on_message)
    os._exit(0)


def harness_session(sock):
    """One job's harness: runs its checks one after the other, each with a fresh namespace and a
    fresh connection to that check's student process (forking per check would cost a process)."""
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, 1 << 16, 8)
        except OSError:
            return
        if not data:
            return
        if len(fds) != 5:
            for fd in fds:
                os.close(fd)
            continue
        job_r, rpc_fd, out_r, err_r, result_w = fds
        try:
            job = json.loads(student.read_all(job_r))
        except (OSError, ValueError):
            for fd in (rpc_fd, out_r, err_r, result_w):
                os.close(fd)
            continue
        harness.run_check(job, rpc_fd, out_r, err_r, result_w)  # closes all four


class HarnessZygote:
    """The runner's side of the harness zygote, and of the harness of the current job."""

    def __init__(self):
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.pid = os.fork()
        if self.pid == 0:
            self.sock.close()
            try:
                harness_zygote_main(theirs)
            finally:
                os._exit(0)
        theirs.close()
        self.session = None  # (pid, socket) of a harness process waiting for checks

    def start_session(self):
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            send_message(self.sock, {"op": "session"}, [theirs.fileno()])
        finally:
            theirs.close()
        self.sock.settimeout(ZYGOTE_REPLY_SECONDS)
        try:
            while True:
                reply = receive(self.sock)
                if reply is None:
                    raise OSError("the harness zygote is gone")
                if "exited" not in reply:
                    break
        finally:
            self.sock.setblocking(True)
        if not isinstance(reply.get("pid"), int):
            mine.close()
            raise OSError("the harness zygote could not start a harness")
        self.session = (reply["pid"], mine)

    def start(self, fds):
        """Hands a check to the harness (started if there is none, or again if the one there
        ended since: a test's code may end its process)."""
        for attempt in (1, 2):
            if self.session is None:
                self.start_session()
            try:
                send_message(self.session[1], {"op": "check"}, fds)
                return
            except OSError:
                self.stop()
                if attempt == 2:
                    raise

    def tired(self):
        """Whether the harness has used half of its CPU time limit (the container's, which each
        process has whole): the tests' own code adds up across a job, so a fresh one takes over
        before the limit would end it in the middle of a test."""
        if self.session is None:
            return False
        soft = resource.getrlimit(resource.RLIMIT_CPU)[0]
        if soft == resource.RLIM_INFINITY:
            return False
        try:
            with open("/proc/%d/stat" % self.session[0], "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            used = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return True  # cannot tell: a fresh one is cheap
        return used > soft / 2

    def stop(self):
        """Ends the harness at once (a check ran out of time); the next check gets a new one."""
        if self.session is None:
            return
        pid, sock = self.session
        self.session = None
        sock.close()
        for target in (
            lambda: os.killpg(pid, signal.SIGKILL),
            lambda: os.kill(pid, signal.SIGKILL),
        ):
            try:
                target()
            except OSError:
                pass

    def drain_notices(self):
        while True:
            try:
                if not self.sock.recv(65536, socket.MSG_DONTWAIT):
                    return
            except OSError:
                return


def run_job(job, reporter, zygote, hzygote, child):
    code = job["code"]
    time_limit = float(job.get("time_limit", 30))
    output_limit = int(job.get("output_limit", 1024 * 1024))
    checks = job.get("checks") or []

    # Compiling here (it runs nothing) lets the runner, not student code, decide what a syntax error is.
    try:
        compile(code, "main.py", "exec")
    except (SyntaxError, ValueError, OverflowError, RecursionError, MemoryError) as e:
        import traceback

        text = "".join(traceback.format_exception_only(type(e), e))
        reporter.frame({"type": "output", "stream": "stderr", "data": text})
        reporter.result("syntax_error", exit_code=1, message="the code is not valid Python")
        return

    try:
        data_files = workfiles.place(job.get("files") or [])
    except (OSError, ValueError) as e:
        reporter.result(
            "internal_error", message="the exercise's data files could not be placed: %s" % e
        )
        return
    try:
        run_job_in_place(
            job, reporter, zygote, hzygote, child, code, time_limit, output_limit, checks
        )
    finally:
        workfiles.remove(data_files)


def run_job_in_place(job, reporter, zygote, hzygote, child, code, time_limit, output_limit, checks):
    oom_before = oom_kills()
    started = time.monotonic()
    interactive = job.get("interactive") is True and not checks
    mode = "grade" if checks else ("live" if interactive else "run")
    # Text that is not valid Unicode (a lone surrogate) reaches the program as "?", never a crash.
    stdin = (job.get("stdin") or "").encode("utf-8", "replace")
    live = None
    if interactive:
        live = LiveInput(child.in_w, reporter, stdin)
    feed(child.code_w, (mode + "\n" + code).encode("utf-8", "surrogatepass"))
    if not interactive:
        feed(child.in_w, stdin)

    pump = Pump(
        {"stdout": child.out_r, "stderr": child.err_r},
        output_limit,
        lambda name, text: reporter.frame({"type": "output", "stream": name, "data": text}),
    )
    pump.add(child.status.fileno(), "status")
    pump.add(zygote.sock.fileno(), "zygote")
    display = DisplayPipe(
        child.display_r,
        job.get("display_limit", 10),
        job.get("display_bytes", 0),
        reporter.frame,
        lambda text: reporter.frame({"type": "output", "stream": "stderr", "data": text}),
    )
    child.display_r = -1  # the DisplayPipe's now
    pump.add(display.fd, "display")
    if live is not None:
        pump.add(HOST.fd, "host")
        live.take_lines()  # control lines that came with the job line
    # Without checks nothing runs after the program in this job: its leftovers can be swept
    # after the result (main() does, before the container serves anything else).
    status, message, done = run_program(
        child,
        zygote,
        pump,
        started + time_limit,
        time_limit,
        output_limit,
        display,
        live,
        stop_later=not checks,
    )
    if live is not None:
        live.stop()
    program_ms = (time.monotonic() - started) * 1000
    pump.remove(display.fd)
    display.read()  # what the program sent right before it ended
    display.close()
    pump.finish()
    child.status.close()
    returncode = child.exit_code()
    if (
        status is None
        and returncode == -signal.SIGKILL
        and oom_before is not None
        and (oom_kills() or 0) > oom_before
    ):
        # The kernel's own count says the kill was the OOM killer's, so the host need not ask Docker.
        status, message = "memory_limit", "memory limit exceeded; the program was stopped"
    if status is None:
        status, message = exit_status(returncode)
        if checks and status == "ok" and not done:
            # It ended "successfully" without finishing its code: os._exit() or similar.
            status = "runtime_error"
            message = "the program ended before the tests could run (did it call os._exit()?)"
    if checks:
        ready = status == "ok"
        allowance = 2 * program_ms / 1000 + 1.0
        flushed = time.monotonic()
        for index, check in enumerate(checks):
            frame = check_frame(index, "not_run")
            if ready:
                frame = run_check(index, check, code, stdin, zygote, hzygote, allowance)
                ready = frame["outcome"] != "not_run"
            # Sent with the result, or with the first check after CHECK_FRAMES_FLUSH_S: a grading
            # the host gives up on still shows the checks that were done until shortly before.
            late = time.monotonic() - flushed >= CHECK_FRAMES_FLUSH_S
            reporter.frame(frame, flush=late)
            if late:
                flushed = time.monotonic()
    reporter.result(
        status,
        exit_code=returncode,
        duration_ms=program_ms,
        truncated=pump.truncated,
        message=message,
    )


def exit_status(returncode):
    if returncode == 0:
        return "ok", ""
    if returncode is not None and returncode > 0:
        return "runtime_error", "the program exited with code %d" % returncode
    if returncode == -signal.SIGXCPU:
        return "timeout", "CPU time limit exceeded; the program was stopped"
    return "runtime_error", "the program was killed by %s" % (
        describe_signal(-returncode) if returncode is not None else "an unknown cause"
    )


def run_program(
    child, zygote, pump, deadline, time_limit, output_limit, display, live=None, stop_later=False
):
    """Streams the program's output until it exits and its output is drained; a live run's
    (``live``) host may send input and cancel meanwhile. With ``stop_later``, a program whose
    output is closed when it exits returns at once: the caller stops whatever it left behind
    right after the result (the reset, the linger, or the end of the runner and its container).

    Returns (status or None, message, done): ``done`` when it said it ran its code to the end.
    """
    drain_until = None
    status, message, done = None, "", False
    timeout_msg = "time limit of %g s exceeded; the program was stopped" % time_limit
    status_fd, zygote_fd = child.status.fileno(), zygote.sock.fileno()
    while True:
        now = time.monotonic()
        if drain_until is None and child.exit_code() is not None:
            if stop_later:
                pump.read_available()
                if not any(pump.watching(fd) for fd in (child.out_r, child.err_r)):
                    # Its output ended with it (nothing it left behind holds it): the result
                    # need not wait for the sweep of its processes, which the caller makes next.
                    return status, message, done
            # The program is done; stop whatever it left behind, then take what is still buffered.
            zygote.kill()
            drain_until = time.monotonic() + DRAIN_SECONDS
        outputs_open = sum(1 for fd in (child.out_r, child.err_r) if pump.watching(fd))
        if outputs_open == 0 and drain_until is not None:
            return status, message, done
        limit = drain_until if drain_until is not None else deadline
        if now >= limit:
            if drain_until is None:
                status, message = "timeout", timeout_msg
                zygote.kill()
                drain_until = time.monotonic() + DRAIN_SECONDS
                continue
            if child.exit_code() is None:
                zygote.kill()  # its output closed long ago, it still runs: it had its time
                if status is None:
                    status, message = "timeout", timeout_msg
            pump.read_available()
            return status, message, done
        for fd in pump.poll(min(0.05, limit - now)):
            if fd == zygote_fd:
                zygote.poll()
            elif fd == display.fd:
                if not display.read():  # EOF, or past its caps: closed now, writes fail with EPIPE
                    pump.sel.unregister(fd)
                    display.close()
            elif fd == status_fd:
                info = receive(child.status)
                if info is None:
                    pump.sel.unregister(fd)
                elif info.get("done") is True:
                    done = True
                elif live is not None and "input" in info:
                    consumed = info.get("read")
                    live.on_request(
                        str(info.get("input") or ""), consumed if type(consumed) is int else 0
                    )
            elif live is not None and fd == HOST.fd:
                live.on_host()
                if live.host_gone:
                    pump.sel.unregister(fd)
        if (
            live is not None
            and (live.cancelled or live.host_gone)
            and status is None
            and drain_until is None
        ):
            # Stopped by the user (or the host went away): nothing of the program goes on.
            status, message = "cancelled", "the run was stopped"
            zygote.kill()
            drain_until = time.monotonic() + DRAIN_SECONDS
            continue
        if pump.over and status is None:
            status = "output_limit"
            message = "output limit of %d bytes exceeded on %s; the rest was cut" % (
                output_limit,
                pump.over,
            )
            zygote.kill()
            drain_until = time.monotonic() + DRAIN_SECONDS


def run_check(index, check, code, stdin, zygote, hzygote, allowance):
    """Runs one check: a fresh student process and a harness process that runs the test's code.

    Outcomes: completed, raised (with the error), timeout, memory_limit, output_limit, exited (the
    student's process ended before the test finished), protocol_error (it answered nonsense),
    not_run (nothing could be started).
    """
    timeout = float(check.get("timeout") or 10)
    rpc_student, rpc_harness = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    job_r, job_w = os.pipe()
    res_r, res_w = os.pipe()
    oom_before = oom_kills()
    started = time.monotonic()
    proc = None
    problem = ""
    try:
        # What the program or the previous test left (processes, files) goes first.
        proc = StudentProcess(zygote, rpc_student.fileno(), clean=True)
        hzygote.start([job_r, rpc_harness.fileno(), proc.out_r, proc.err_r, res_w])
    except (OSError, ValueError) as e:
        problem = str(e) or type(e).__name__
    finally:
        for end in (rpc_student, rpc_harness):
            end.close()
        for fd in (job_r, res_w):
            os.close(fd)
    if problem:
        os.close(res_r)
        os.close(job_w)
        if proc is not None:
            proc.discard()
        sys.stderr.write("runner: check %d not run: %s\n" % (index, problem))
        return check_frame(index, "not_run", message=problem)
    # The harness holds the student's output pipes now; the runner keeps none of them.
    for fd in (proc.out_r, proc.err_r):
        os.close(fd)
    feed(job_w, json.dumps({"code": check["code"]}).encode("utf-8", "surrogatepass"))
    feed(proc.code_w, ("check\n" + code).encode("utf-8", "surrogatepass"))
    feed(proc.in_w, stdin)

    deadline = started + timeout + allowance
    report_bytes = bytearray()
    sel = selectors.DefaultSelector()
    sel.register(res_r, selectors.EVENT_READ)
    timed_out = False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        if not sel.select(timeout=min(remaining, 1.0)):
            continue
        chunk = os.read(res_r, READ_CHUNK)
        if not chunk:
            break
        report_bytes += chunk
        if len(report_bytes) > MAX_REPORT_BYTES:
            break
    sel.close()
    os.close(res_r)
    duration_ms = (time.monotonic() - started) * 1000
    if timed_out or not report_bytes or hzygote.tired():
        hzygote.stop()  # stuck in the test's code, gone, or near its CPU limit: a new one next
    hzygote.drain_notices()
    report = parse_report(bytes(report_bytes))
    if timed_out:
        return check_frame(index, "timeout", duration_ms=duration_ms)
    outcome = report.get("outcome") if report else None
    if outcome in (None, "exited") and oom_before is not None and (oom_kills() or 0) > oom_before:
        return check_frame(index, "memory_limit", duration_ms=duration_ms)
    if outcome not in ("completed", "raised", "exited", "output_limit", "protocol_error"):
        # No report: the harness itself died (out of memory, or the test's code ended it).
        return check_frame(
            index, "exited", duration_ms=duration_ms, message="the test stopped before it reported"
        )
    error = None
    if outcome == "raised" and isinstance(report.get("error"), dict):
        error = {k: report["error"].get(k) for k in ("type", "message", "traceback", "assertion")}
    text = lambda key: report.get(key) if isinstance(report.get(key), str) else ""  # noqa: E731
    return check_frame(
        index, outcome, text("stdout"), text("stderr"), error, duration_ms, text("message")
    )


def check_frame(index, outcome, stdout="", stderr="", error=None, duration_ms=0, message=""):
    return {
        "type": "check",
        "index": index,
        "outcome": outcome,
        "stdout": stdout,
        "stderr": stderr,
        "error": error,
        "duration_ms": int(duration_ms),
        "message": message,
    }


def parse_report(data):
    try:
        report = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return report if isinstance(report, dict) else None


def reset(zygote):
    """Returns the container to the state of a fresh one; "" or why it could not."""
    reason = zygote.clean()
    if reason:
        return reason
    # The runner's own CPU time counts against the container's CPU rlimit, which it inherited.
    used = resource.getrusage(resource.RUSAGE_SELF)
    soft = resource.getrlimit(resource.RLIMIT_CPU)[0]
    if soft != resource.RLIM_INFINITY and used.ru_utime + used.ru_stime > soft / 2:
        return "the runner used half of its CPU time limit"
    return ""


def main():
    non_dumpable = make_non_dumpable()
    problem = ""
    if not non_dumpable:
        problem = "the runner could not protect its output channel"
    elif not privileged():
        problem = (
            "the sandbox container must start as uid 0 with the capabilities SETUID, SETGID, "
            "SETPCAP and KILL, so that the code and the tests run under separate uids"
        )
    zygote = hzygote = child = None
    if not problem:
        zygote = StudentZygote()
        hzygote = HarnessZygote()
        child = StudentProcess(zygote)
        try:
            # Started while the container waits (warm pool), not while a submission waits.
            hzygote.start_session()
        except OSError as e:
            problem = "the harness did not start: %s" % e
        if not child.wait_booted():
            problem = problem or "the process for the code did not start"
    while True:
        try:
            job = read_job()
        except EOFError:
            if child is not None:
                child.discard()
            return 0
        except (ValueError, UnicodeDecodeError) as e:
            # Without a valid job there is no nonce either; the host treats an unframed answer as an error.
            sys.stderr.write("runner: bad job: %s\n" % e)
            if child is not None:
                child.discard()
            return 2
        reporter = Reporter(str(job.get("nonce", "")))
        if problem:
            reporter.result("internal_error", message=problem)
            return 3
        run_job(job, reporter, zygote, hzygote, child)
        if job.get("keep") is not True or job.get("checks"):
            if job.get("linger") is True:
                # The host removes the container later (when the engine is less busy); until
                # then nothing of the program may go on running in it, and the helpers go too
                # (a waiting container then holds only the runner).
                zygote.kill()
                hzygote.stop()
                for helper in (zygote, hzygote):
                    helper.sock.close()
                HOST.drain()
            return 0
        reason = reset(zygote)
        if reason:
            reporter.frame({"type": "retired", "reason": reason})
            return 0
        child = StudentProcess(zygote)
        if not child.wait_booted():
            child.discard()
            reporter.frame(
                {"type": "retired", "reason": "a fresh process for the code did not start"}
            )
            return 0
        reporter.frame({"type": "ready"})


if __name__ == "__main__":
    sys.exit(main())
