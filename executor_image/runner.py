"""Runs one job of student code inside the executor container (stdlib only).

Protocol. The host writes one JSON job on this process's stdin and closes it:
    {"nonce": str, "code": str, "stdin": str, "time_limit": float, "output_limit": int}
The runner answers on its own stdout with frames, one per line, each ``<nonce> <json>\\n``:
    {"type": "output", "stream": "stdout" | "stderr", "data": str}   as the code prints
    {"type": "result", "status": str, "exit_code": int | null, "duration_ms": int,
     "truncated": bool, "message": str}                                exactly once, last
Student code runs in a child process whose stdin, stdout and stderr are pipes held here, so it
never holds this process's stdout. The runner also makes itself non-dumpable, so the child (same
uid) cannot reach the runner's file descriptors or memory through /proc, and does not know the
nonce. Output is streamed as it comes, so what was printed survives even if the host has to kill
the whole container.
"""

import codecs
import ctypes
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time

MAX_JOB_BYTES = 16 * 1024 * 1024
READ_CHUNK = 65536
# After the child exits, grandchildren that still hold its pipes get this long before we stop reading.
DRAIN_SECONDS = 0.5
PR_SET_DUMPABLE = 4

# Runs in the child: reads the code from a pipe, then executes it as __main__ of "main.py" with
# tracebacks that show the student's lines and none of this bootstrap.
CHILD_BOOTSTRAP = r"""
import linecache, os, sys, traceback, types
try:
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write("1000")
except OSError:
    pass
fd = int(sys.argv[1])
parts = []
while True:
    b = os.read(fd, 65536)
    if not b:
        break
    parts.append(b)
os.close(fd)
src = b"".join(parts).decode("utf-8")
del parts, b, fd
linecache.cache["main.py"] = (len(src), None, src.splitlines(True), "main.py")
code = compile(src, "main.py", "exec")
main = types.ModuleType("__main__")
main.__file__ = "main.py"
sys.modules["__main__"] = main
sys.argv[:] = ["main.py"]
try:
    exec(code, main.__dict__)
except SystemExit:
    raise
except BaseException as e:
    traceback.print_exception(type(e), e, e.__traceback__.tb_next)
    sys.stderr.flush()
    os._exit(1)
"""


class Reporter:
    """Writes frames to the runner's own stdout, the channel the child cannot reach."""

    def __init__(self, nonce):
        self.prefix = (nonce + " ").encode("ascii")
        self.out = sys.stdout.buffer

    def frame(self, obj):
        self.out.write(self.prefix + json.dumps(obj, ensure_ascii=True).encode("ascii") + b"\n")
        self.out.flush()

    def result(self, status, exit_code=None, duration_ms=0, truncated=False, message=""):
        self.frame({"type": "result", "status": status, "exit_code": exit_code,
                    "duration_ms": int(duration_ms), "truncated": bool(truncated),
                    "message": message})


def make_non_dumpable():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def read_job():
    data = sys.stdin.buffer.read(MAX_JOB_BYTES + 1)
    if len(data) > MAX_JOB_BYTES:
        raise ValueError("job is larger than %d bytes" % MAX_JOB_BYTES)
    job = json.loads(data.decode("utf-8"))
    if not isinstance(job, dict) or not isinstance(job.get("code"), str):
        raise ValueError("job must be an object with a string 'code'")
    return job


def feed(fd_or_file, data):
    """Writes data to a pipe from a thread, so a child that never reads cannot block the runner."""
    def run():
        try:
            if isinstance(fd_or_file, int):
                view = memoryview(data)
                while view:
                    n = os.write(fd_or_file, view)
                    view = view[n:]
            else:
                fd_or_file.write(data)
        except OSError:
            pass  # the child closed its end or died; it simply did not read everything
        finally:
            try:
                fd_or_file.close() if not isinstance(fd_or_file, int) else os.close(fd_or_file)
            except OSError:
                pass
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        proc.kill()
    except OSError:
        pass


def describe_signal(num):
    try:
        return signal.Signals(num).name
    except ValueError:
        return "signal %d" % num


def run_job(job, reporter):
    code = job["code"]
    stdin_text = job.get("stdin") or ""
    time_limit = float(job.get("time_limit", 30))
    output_limit = int(job.get("output_limit", 1024 * 1024))

    # Compiling here (it runs nothing) lets the runner, not student code, decide what a syntax error is.
    try:
        compile(code, "main.py", "exec")
    except (SyntaxError, ValueError, OverflowError, RecursionError, MemoryError) as e:
        import traceback
        text = "".join(traceback.format_exception_only(type(e), e))
        reporter.frame({"type": "output", "stream": "stderr", "data": text})
        reporter.result("syntax_error", exit_code=1, message="the code is not valid Python")
        return

    code_r, code_w = os.pipe()
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-I", "-B", "-u", "-X", "utf8", "-c", CHILD_BOOTSTRAP, str(code_r)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        pass_fds=(code_r,), start_new_session=True, cwd="/tmp", env=env)
    os.close(code_r)
    feed(code_w, code.encode("utf-8"))
    feed(proc.stdin, stdin_text.encode("utf-8"))

    sel = selectors.DefaultSelector()
    streams = {proc.stdout: "stdout", proc.stderr: "stderr"}
    decoders = {name: codecs.getincrementaldecoder("utf-8")("replace") for name in streams.values()}
    counts = {"stdout": 0, "stderr": 0}
    for f in streams:
        os.set_blocking(f.fileno(), False)
        sel.register(f, selectors.EVENT_READ)

    deadline = started + time_limit
    drain_until = None
    status = None
    message = ""
    truncated = False

    while True:
        now = time.monotonic()
        if drain_until is None and proc.poll() is not None:
            # The program is done; stop whatever it left behind, then take what is still buffered.
            kill_group(proc)
            drain_until = now + DRAIN_SECONDS
        if not sel.get_map():
            if drain_until is not None:
                break
            # The program closed its output but is still running: it still gets its time limit.
            try:
                proc.wait(timeout=max(0.0, deadline - now))
            except subprocess.TimeoutExpired:
                status = "timeout"
                message = "time limit of %g s exceeded; the program was stopped" % time_limit
                kill_group(proc)
                break
            continue
        limit = drain_until if drain_until is not None else deadline
        if now >= limit:
            if drain_until is None:
                status = "timeout"
                message = "time limit of %g s exceeded; the program was stopped" % time_limit
                kill_group(proc)
                drain_until = now + DRAIN_SECONDS
                continue
            break
        for key, _ in sel.select(timeout=min(0.05, limit - now)):
            f = key.fileobj
            name = streams[f]
            try:
                chunk = os.read(f.fileno(), READ_CHUNK)
            except BlockingIOError:
                continue
            if not chunk:
                sel.unregister(f)
                continue
            room = output_limit - counts[name]
            if len(chunk) > room:
                chunk = chunk[:max(room, 0)]
                truncated = True
                if status is None:
                    status = "output_limit"
                    message = "output limit of %d bytes exceeded on %s; the rest was cut" % (
                        output_limit, name)
                    kill_group(proc)
                    drain_until = time.monotonic() + DRAIN_SECONDS
            counts[name] += len(chunk)
            text = decoders[name].decode(chunk)
            if text:
                reporter.frame({"type": "output", "stream": name, "data": text})

    if proc.poll() is None:
        kill_group(proc)
    try:
        returncode = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        returncode = None
    duration_ms = (time.monotonic() - started) * 1000
    for name, dec in decoders.items():
        tail = dec.decode(b"", final=True)
        if tail:
            reporter.frame({"type": "output", "stream": name, "data": tail})

    if status is None:
        if returncode == 0:
            status = "ok"
        elif returncode is not None and returncode > 0:
            status = "runtime_error"
            message = "the program exited with code %d" % returncode
        elif returncode == -signal.SIGXCPU:
            status = "timeout"
            message = "CPU time limit exceeded; the program was stopped"
        else:
            status = "runtime_error"
            message = "the program was killed by %s" % (
                describe_signal(-returncode) if returncode is not None else "an unknown cause")
    reporter.result(status, exit_code=returncode, duration_ms=duration_ms,
                    truncated=truncated, message=message)


def main():
    non_dumpable = make_non_dumpable()
    try:
        job = read_job()
    except (ValueError, UnicodeDecodeError) as e:
        # Without a valid job there is no nonce either; the host treats an unframed answer as an error.
        sys.stderr.write("runner: bad job: %s\n" % e)
        return 2
    reporter = Reporter(str(job.get("nonce", "")))
    if not non_dumpable:
        reporter.result("internal_error", message="the runner could not protect its output channel")
        return 3
    run_job(job, reporter)
    return 0


if __name__ == "__main__":
    sys.exit(main())
