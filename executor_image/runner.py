"""Runs one job of student code inside the executor container (stdlib only).

Protocol. The host writes a job on this process's stdin as one line of JSON:
    {"nonce": str, "code": str, "stdin": str, "time_limit": float, "output_limit": int,
     "checks": [{"code": str, "timeout": float}, ...],            (checks: optional, for grading)
     "keep": bool, "linger": bool}          (optional: serve another job / wait for EOF to end)
The runner answers on its own stdout with frames, one per line, each ``<nonce> <json>\\n``:
    {"type": "output", "stream": "stdout" | "stderr", "data": str}   as the code prints
    {"type": "check", "index": int, "outcome": str, "stdout": str, "stderr": str,
     "error": {"type", "message", "traceback", "assertion"} | null, "duration_ms": int}
    {"type": "result", "status": str, "exit_code": int | null, "duration_ms": int,
     "truncated": bool, "message": str}                                exactly once per job
Without "keep" the runner ends after the result; with "linger" it first kills every other process
and waits for EOF on stdin (the host removes the container when the engine is less busy). With
"keep", it then returns the container to the
state of a fresh one (below) and says so with one more frame under the same nonce:
    {"type": "ready"}              waiting for the next job line (EOF on stdin ends the runner)
    {"type": "retired", "reason": str}   could not; the runner ends and the host discards it

Reuse (one user's consecutive runs, never grading). Between jobs the runner kills every other
process in the container (``kill(-1)`` until /proc shows none: what the code started in the
background, whatever its session or process group), empties every writable place (/tmp, /dev/shm,
/dev/mqueue), removes System V IPC objects, checks that all of it is gone, and starts a fresh
interpreter for the next job. Anything it cannot verify retires the container instead.

Student code runs in a child process whose stdin, stdout and stderr are pipes held here, so it
never holds this process's stdout. The runner makes itself non-dumpable, so the child (same uid)
cannot reach the runner's file descriptors or memory through /proc, and does not know the nonce.
Output is streamed as it comes, so what was printed survives even if the host kills the container.

Checks (grading). The student's code runs once. Only then does the runner send each check's code,
one at a time, over a socket to the child, which forks a copy of its state for the check. The
copy gets its own stdout/stderr pipes and a result pipe (passed as file descriptors), its own
process group and its own timeout, so one check's crash or endless loop does not sink the others.
The copy sees pristine builtins and a fresh sys.stdout: redefining ``print`` or ``AssertionError``
does not reach the check's code. A check only counts as completed when the copy writes a result
carrying a fresh per-check token after the check's code returned; exiting early (``sys.exit``,
``os._exit``, a crash) leaves no such result. Expected outputs never enter the container: the host
compares them.
"""

import codecs
import ctypes
import json
import os
import resource
import secrets
import selectors
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

MAX_JOB_BYTES = 16 * 1024 * 1024
READ_CHUNK = 65536
# After the program exits, processes it left behind that still hold its pipes get this long.
DRAIN_SECONDS = 0.5
PR_SET_DUMPABLE = 4
CHECK_OUTPUT_LIMIT = 64 * 1024
OOM_CONTROL = ("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events")
# Every place in the container a program can write to (the root filesystem is read-only).
WRITABLE = ("/tmp", "/dev/shm", "/dev/mqueue")
SYSV_IPC = (("/proc/sysvipc/shm", "shmctl"), ("/proc/sysvipc/msg", "msgctl"), ("/proc/sysvipc/sem", "semctl"))
IPC_RMID = 0

# Runs in the child: reads the code from a pipe and executes it as __main__ of "main.py" with
# tracebacks that show the student's lines and none of this bootstrap. With a control socket
# (grading), it then serves checks: each one in a forked copy of the state the code left.
CHILD_BOOTSTRAP = r"""
import builtins, io, json, linecache, os, socket, sys, traceback, types

# Names whose meaning a check relies on: the student's own definitions of these are hidden from
# the checks' code (their functions keep seeing them).
PROTECTED = {
    "print", "repr", "str", "isinstance", "issubclass", "type", "AssertionError", "Exception",
    "BaseException", "len", "abs", "round", "int", "float", "bool", "list", "dict", "set",
    "tuple", "sorted", "range", "enumerate", "zip", "all", "any", "min", "max", "sum", "hash",
    "id", "format", "getattr", "hasattr", "iter", "next", "object", "callable", "open",
}


def main(code_fd, ctl_fd):
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass
    os.write(ctl_fd, b'{"booted": true}')  # the runner says "ready" only after this
    parts = []
    while True:
        b = os.read(code_fd, 65536)
        if not b:
            break
        parts.append(b)
    os.close(code_fd)
    mode, _, src = b"".join(parts).decode("utf-8").partition("\n")
    linecache.cache["main.py"] = (len(src), None, src.splitlines(True), "main.py")
    code = compile(src, "main.py", "exec")
    module = types.ModuleType("__main__")
    module.__file__ = "main.py"
    sys.modules["__main__"] = module
    sys.argv[:] = ["main.py"]
    grading = mode == "grade"
    if not grading:
        os.close(ctl_fd)
    else:
        # Taken before the student's code runs, so what it redefines cannot reach the checks.
        saved = dict(
            pristine=dict(builtins.__dict__), fork=os.fork, dup2=os.dup2, close=os.close,
            exit=os._exit, write=os.write, setpgid=os.setpgid, waitpid=os.waitpid,
            open=os.open, recv_fds=socket.recv_fds, dumps=json.dumps, loads=json.loads,
            TextIOWrapper=io.TextIOWrapper, FileIO=io.FileIO, format_exception=traceback.format_exception,
            AssertionError=AssertionError, BaseException=BaseException, compile=compile,
            exec=exec, dict=dict, str=str, isinstance=isinstance, type=type, sys=sys,
        )
        ctl = socket.socket(fileno=ctl_fd)
    try:
        exec(code, module.__dict__)
    except SystemExit as e:
        if not grading or e.code not in (None, 0):
            raise
    except BaseException as e:
        traceback.print_exception(type(e), e, e.__traceback__.tb_next)
        sys.stderr.flush()
        os._exit(1)
    if grading:
        serve_checks(ctl, module, saved)
    else:
        quick_exit()


def quick_exit():
    # Tearing the interpreter down takes longer than most student programs run. With no other
    # thread to wait for, do what a normal exit does that a student can observe (atexit handlers,
    # flushed output) and leave at once.
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        return
    import atexit
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    os._exit(0)


def serve_checks(ctl, module, s):
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    ctl.send(b'{"ready": true}')
    while True:
        try:
            msg, fds, _, _ = s["recv_fds"](ctl, 1 << 22, 3)
        except OSError:
            s["exit"](0)
        if not msg or len(fds) != 3:
            s["exit"](0)
        pid = s["fork"]()
        if pid == 0:
            ctl.close()
            run_check(s["loads"](msg), fds, module, s)
        for fd in fds:
            s["close"](fd)
        ctl.send(s["dumps"]({"pid": pid}).encode())
        try:
            _, status = s["waitpid"](pid, 0)
        except OSError:
            status = None
        ctl.send(s["dumps"]({"exited": pid, "status": status}).encode())


def run_check(job, fds, module, s):
    out_w, err_w, res_w = fds
    try:
        s["setpgid"](0, 0)
        s["dup2"](out_w, 1)
        s["dup2"](err_w, 2)
        s["dup2"](s["open"]("/dev/null", os.O_RDONLY), 0)
        s["close"](out_w)
        s["close"](err_w)
        wrap = lambda fd: s["TextIOWrapper"](s["FileIO"](fd, "w", closefd=False), encoding="utf-8",
                                            errors="backslashreplace", write_through=True)
        out, err = wrap(1), wrap(2)
        sysmod = s["sys"]
        sysmod.stdout, sysmod.stderr = out, err
        sysmod.stdin = s["TextIOWrapper"](s["FileIO"](0, "r", closefd=False), encoding="utf-8")
        namespace = {k: v for k, v in module.__dict__.items() if k not in PROTECTED}
        namespace["__builtins__"] = s["dict"](s["pristine"])
        namespace["__name__"] = "__main__"
        check = s["compile"](job["code"], "check", "exec")
    except BaseException:
        s["exit"](70)
    report = {"token": job["token"], "ok": True}
    try:
        s["exec"](check, namespace)
    except BaseException as e:
        report = {"token": job["token"], "ok": False}
        try:
            report["type"] = s["str"](s["type"](e).__name__)
            report["assertion"] = s["isinstance"](e, s["AssertionError"])
            report["message"] = s["str"](e)[:2000]
            report["traceback"] = "".join(
                s["format_exception"](s["type"](e), e, e.__traceback__.tb_next))[-8000:]
        except BaseException:
            report.setdefault("message", "")
    for stream in (out, err):
        try:
            stream.flush()
        except BaseException:
            pass
    s["write"](res_w, s["dumps"](report).encode())
    s["exit"](0)


main(int(sys.argv[1]), int(sys.argv[2]))
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
    """The next job line; EOFError when the host closed stdin instead."""
    data = sys.stdin.buffer.readline(MAX_JOB_BYTES + 1)
    if not data:
        raise EOFError
    if len(data) > MAX_JOB_BYTES:
        raise ValueError("job is larger than %d bytes" % MAX_JOB_BYTES)
    job = json.loads(data.decode("utf-8"))
    if not isinstance(job, dict) or not isinstance(job.get("code"), str):
        raise ValueError("job must be an object with a string 'code'")
    checks = job.get("checks") or []
    if not isinstance(checks, list) or not all(
            isinstance(c, dict) and isinstance(c.get("code"), str) for c in checks):
        raise ValueError("checks must be a list of objects with a string 'code'")
    return job


def feed(fd, data):
    """Writes data to a pipe from a thread, so a child that never reads cannot block the runner."""
    def run():
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except OSError:
            pass  # the child closed its end or died; it simply did not read everything
        finally:
            os.close(fd)
    threading.Thread(target=run, daemon=True).start()


def kill_group(pid):
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
        except OSError:
            pass


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
                chunk = chunk[:max(room, 0)]
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
            ready = [key for key, _ in self.sel.select(timeout=0)
                     if self.names.get(key.fd) in self.decoders]
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


class Child:
    """The interpreter that will run the student's code, started before the job arrives.

    Starting Python costs tens of milliseconds; doing it while the container waits (warm pool)
    takes that off the request's path. It blocks reading its code pipe: first line "run" or
    "grade", then the source.
    """

    def __init__(self):
        code_r, self.code_w = os.pipe()
        in_r, self.in_w = os.pipe()
        self.out_r, out_w = os.pipe()
        self.err_r, err_w = os.pipe()
        self.ctl, ctl_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-B", "-u", "-X", "utf8", "-c", CHILD_BOOTSTRAP, str(code_r),
             str(ctl_child.fileno())],
            stdin=in_r, stdout=out_w, stderr=err_w, pass_fds=(code_r, ctl_child.fileno()),
            start_new_session=True, cwd="/tmp", env=env)
        for fd in (code_r, in_r, out_w, err_w):
            os.close(fd)
        ctl_child.close()

    def wait_booted(self, seconds=10.0):
        """Waits until the interpreter is up and waiting for its code; False if it is not."""
        self.ctl.settimeout(seconds)
        try:
            return receive(self.ctl).get("booted") is True
        except (OSError, AttributeError):
            return False
        finally:
            self.ctl.setblocking(True)

    def discard(self):
        kill_group(self.proc.pid)
        for fd in (self.code_w, self.in_w, self.out_r, self.err_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self.ctl.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def run_job(job, reporter, child):
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
        child.discard()
        return

    ctl_runner = child.ctl if checks else None
    if not checks:
        child.ctl.close()
    proc = child.proc
    oom_before = oom_kills()
    started = time.monotonic()
    feed(child.code_w, (("grade" if checks else "run") + "\n" + code).encode("utf-8"))
    # Text that is not valid Unicode (a lone surrogate) reaches the program as "?", never a crash.
    feed(child.in_w, (job.get("stdin") or "").encode("utf-8", "replace"))
    out_r, err_r = child.out_r, child.err_r

    pump = Pump({"stdout": out_r, "stderr": err_r}, output_limit,
                lambda name, text: reporter.frame({"type": "output", "stream": name, "data": text}))
    if ctl_runner:
        ctl_runner.setblocking(False)
        pump.add(ctl_runner.fileno(), "ctl")
    status, message, ready = run_program(proc, pump, ctl_runner, started + time_limit, time_limit,
                                         output_limit)
    duration_ms = (time.monotonic() - started) * 1000
    if ready:
        # The program's own pipes stay with it; the checks get pipes of their own.
        pump.finish()
        for index, check in enumerate(checks):
            reporter.frame(run_check(index, check, ctl_runner, proc))
        if proc.poll() is None:
            kill_group(proc.pid)
    else:
        pump.finish()
        for index in range(len(checks)):
            reporter.frame(check_frame(index, "not_run"))
    if ctl_runner:
        ctl_runner.close()
    try:
        returncode = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        returncode = None
    if ready and status is None:
        status, returncode = "ok", 0
    if status is None and returncode == -signal.SIGKILL and oom_before is not None \
            and (oom_kills() or 0) > oom_before:
        # The kernel's own count says the kill was the OOM killer's, so the host need not ask Docker.
        status, message = "memory_limit", "memory limit exceeded; the program was stopped"
    if status is None:
        status, message = exit_status(returncode)
        if checks and status == "ok":
            # It ended "successfully" without handing over to the tests: os._exit() or similar.
            status = "runtime_error"
            message = "the program ended before the tests could run (did it call os._exit()?)"
    reporter.result(status, exit_code=returncode, duration_ms=duration_ms,
                    truncated=pump.truncated, message=message)


def exit_status(returncode):
    if returncode == 0:
        return "ok", ""
    if returncode is not None and returncode > 0:
        return "runtime_error", "the program exited with code %d" % returncode
    if returncode == -signal.SIGXCPU:
        return "timeout", "CPU time limit exceeded; the program was stopped"
    return "runtime_error", "the program was killed by %s" % (
        describe_signal(-returncode) if returncode is not None else "an unknown cause")


def run_program(proc, pump, ctl, deadline, time_limit, output_limit):
    """Streams the program's output until it exits (or, when grading, reports that it is ready).

    Returns (status or None, message, ready).
    """
    drain_until = None
    status, message = None, ""
    timeout_msg = "time limit of %g s exceeded; the program was stopped" % time_limit
    while True:
        now = time.monotonic()
        if drain_until is None and proc.poll() is not None:
            # The program is done; stop whatever it left behind, then take what is still buffered.
            kill_group(proc.pid)
            drain_until = now + DRAIN_SECONDS
        outputs_open = pump.open_count() - (1 if ctl and pump.watching(ctl.fileno()) else 0)
        if outputs_open == 0 and not (ctl and drain_until is None):
            if drain_until is not None:
                return status, message, False
            # The program closed its output but is still running: it still gets its time limit.
            try:
                proc.wait(timeout=max(0.0, deadline - now))
            except subprocess.TimeoutExpired:
                kill_group(proc.pid)
                return "timeout", timeout_msg, False
            continue
        limit = drain_until if drain_until is not None else deadline
        if now >= limit:
            if drain_until is None:
                status, message = "timeout", timeout_msg
                kill_group(proc.pid)
                drain_until = now + DRAIN_SECONDS
                continue
            pump.read_available()
            return status, message, False
        for fd in pump.poll(min(0.05, limit - now)):
            info = receive(ctl)
            if info is None:
                pump.sel.unregister(fd)
            elif info.get("ready") is True and status is None:
                pump.sel.unregister(fd)
                # What the program printed before it finished is already in the pipes: take it.
                pump.read_available()
                return None, "", True
        if pump.over and status is None:
            status = "output_limit"
            message = "output limit of %d bytes exceeded on %s; the rest was cut" % (
                output_limit, pump.over)
            kill_group(proc.pid)
            drain_until = time.monotonic() + DRAIN_SECONDS


def check_frame(index, outcome, stdout="", stderr="", error=None, duration_ms=0):
    return {"type": "check", "index": index, "outcome": outcome, "stdout": stdout, "stderr": stderr,
            "error": error, "duration_ms": int(duration_ms)}


def run_check(index, check, ctl, proc):
    """Runs one check in a forked copy of the program's state and says how it ended.

    Outcomes: completed, raised (with the error), timeout, memory_limit, output_limit, exited (the
    copy ended without finishing the check), not_run (the program's process is gone).
    """
    if proc.poll() is not None:
        return check_frame(index, "not_run")
    timeout = float(check.get("timeout") or 10)
    token = secrets.token_hex(16)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    res_r, res_w = os.pipe()
    oom_before = oom_kills()
    started = time.monotonic()
    try:
        socket.send_fds(ctl, [json.dumps({"code": check["code"], "token": token}).encode()],
                        [out_w, err_w, res_w])
    except OSError:
        for fd in (out_r, out_w, err_r, err_w, res_r, res_w):
            os.close(fd)
        return check_frame(index, "not_run")
    for fd in (out_w, err_w, res_w):
        os.close(fd)
    texts = {"stdout": [], "stderr": [], "result": []}
    pump = Pump({"stdout": out_r, "stderr": err_r, "result": res_r}, CHECK_OUTPUT_LIMIT,
                lambda name, text: texts[name].append(text))
    pump.add(ctl.fileno(), "ctl")
    pid = None
    exited = False
    deadline = started + timeout
    timed_out = False
    drain_until = None
    while True:
        now = time.monotonic()
        outputs_open = pump.open_count() - (1 if pump.watching(ctl.fileno()) else 0)
        if exited and (outputs_open == 0 or now >= drain_until):
            pump.read_available()
            break
        if drain_until is not None and now >= drain_until:
            pump.read_available()
            break  # killed, but the program's process has not reported the end yet
        if drain_until is None and (now >= deadline or pump.over):
            # Stop the check (and whatever it started); keep what it printed.
            timed_out = now >= deadline
            if pid:
                kill_group(pid)
            drain_until = now + DRAIN_SECONDS
            continue
        limit = drain_until if drain_until is not None else deadline
        for fd in pump.poll(min(0.05, limit - now)):
            info = receive(ctl)
            if info is None:
                pump.sel.unregister(fd)
                exited = True
            elif isinstance(info.get("pid"), int) and pid is None:
                pid = info["pid"]
            elif pid is not None and info.get("exited") == pid:
                exited = True
            if exited and drain_until is None:
                # Whatever the check left running may still hold its pipes; do not wait on it.
                if pid:
                    kill_group(pid)
                drain_until = time.monotonic() + DRAIN_SECONDS
    if pump.watching(ctl.fileno()):
        pump.sel.unregister(ctl.fileno())
    pump.finish()
    duration_ms = (time.monotonic() - started) * 1000
    if pid and not exited:
        kill_group(pid)
        wait_exit_message(ctl, pid)
    report = parse_report("".join(texts["result"]), token)
    stdout, stderr = "".join(texts["stdout"]), "".join(texts["stderr"])
    if timed_out:
        outcome = "timeout"
    elif pump.over in ("stdout", "stderr"):
        outcome = "output_limit"
    elif report is not None:
        outcome = "completed" if report.get("ok") is True else "raised"
    elif oom_before is not None and (oom_kills() or 0) > oom_before:
        outcome = "memory_limit"
    else:
        outcome = "exited"
    error = None
    if outcome == "raised":
        error = {k: report.get(k) for k in ("type", "message", "traceback", "assertion")}
    return check_frame(index, outcome, stdout, stderr, error, duration_ms)


def receive(ctl):
    """One message from the program's process: a dict, {} for noise, None when it is gone."""
    try:
        msg = ctl.recv(65536)
    except BlockingIOError:
        return {}
    except OSError:
        return None
    if not msg:
        return None
    try:
        info = json.loads(msg)
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


def wait_exit_message(ctl, pid, seconds=2.0):
    """After killing a check, waits until the program's process has reaped it, so that the next
    check does not read this one's messages."""
    sel = selectors.DefaultSelector()
    sel.register(ctl.fileno(), selectors.EVENT_READ)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not sel.select(timeout=max(0.0, end - time.monotonic())):
            break
        info = receive(ctl)
        if info is None or info.get("exited") == pid:
            break
    sel.close()


def parse_report(text, token):
    try:
        report = json.loads(text)
    except ValueError:
        return None
    if not isinstance(report, dict) or report.get("token") != token:
        return None
    return report


def other_processes(me):
    """Live processes in the container other than init (pid 1) and this runner."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in (1, me):
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # gone meanwhile
        if state not in (b"Z", b"X"):  # a zombie holds nothing; init reaps it
            pids.append(int(name))
    return pids


def kill_others(seconds=2.0):
    """Kills every process but init and this one; True once /proc shows none left."""
    me = os.getpid()
    end = time.monotonic() + seconds
    while True:
        try:
            os.kill(-1, signal.SIGKILL)  # all we may signal: the program's processes, all one uid
        except OSError:
            pass  # ESRCH: nothing left to signal
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
        if not other_processes(me):
            return True
        if time.monotonic() > end:
            return False
        time.sleep(0.002)


def remove_tree(path):
    info = os.lstat(path)
    if stat.S_ISDIR(info.st_mode):
        os.chmod(path, 0o700)  # the program may have taken its own permissions away
        with os.scandir(path) as entries:
            names = [e.path for e in entries]
        for name in names:
            remove_tree(name)
        os.rmdir(path)
    else:
        os.unlink(path)


def wipe(top):
    """Removes everything under ``top`` (not ``top`` itself); True when it is empty afterwards."""
    try:
        with os.scandir(top) as entries:
            names = [e.path for e in entries]
    except FileNotFoundError:
        return True
    except OSError:
        return False
    for name in names:
        try:
            remove_tree(name)
        except (OSError, RecursionError):
            pass  # checked below
    try:
        return not os.listdir(top)
    except OSError:
        return False


def sysv_ids(path):
    try:
        with open(path) as f:
            return [int(line.split()[1]) for line in f.readlines()[1:] if line.strip()]
    except (OSError, ValueError, IndexError):
        return []


def remove_sysv_ipc():
    """Removes System V shared memory, queues and semaphores; True when none are left."""
    libc = ctypes.CDLL(None, use_errno=True)
    for path, call in SYSV_IPC:
        for ident in sysv_ids(path):
            if call == "semctl":
                libc.semctl(ident, 0, IPC_RMID)
            else:
                getattr(libc, call)(ident, IPC_RMID, None)
    return not any(sysv_ids(path) for path, _ in SYSV_IPC)


def reset():
    """Returns the container to the state of a fresh one; "" or why it could not."""
    if not kill_others():
        return "a process of the program could not be stopped"
    for top in WRITABLE:
        if not wipe(top):
            return "%s could not be emptied" % top
    if not remove_sysv_ipc():
        return "System V IPC objects could not be removed"
    # The runner's own CPU time counts against the container's CPU rlimit, which it inherited.
    used = resource.getrusage(resource.RUSAGE_SELF)
    soft = resource.getrlimit(resource.RLIMIT_CPU)[0]
    if soft != resource.RLIM_INFINITY and used.ru_utime + used.ru_stime > soft / 2:
        return "the runner used half of its CPU time limit"
    return ""


def main():
    non_dumpable = make_non_dumpable()
    child = Child()
    child.wait_booted()
    while True:
        try:
            job = read_job()
        except EOFError:
            child.discard()
            return 0
        except (ValueError, UnicodeDecodeError) as e:
            # Without a valid job there is no nonce either; the host treats an unframed answer as an error.
            sys.stderr.write("runner: bad job: %s\n" % e)
            child.discard()
            return 2
        reporter = Reporter(str(job.get("nonce", "")))
        if not non_dumpable:
            reporter.result("internal_error", message="the runner could not protect its output channel")
            child.discard()
            return 3
        run_job(job, reporter, child)
        if job.get("keep") is not True or job.get("checks"):
            if job.get("linger") is True:
                # The host removes the container later (when the engine is less busy); until
                # then nothing of the program may go on running in it.
                kill_others()
                while sys.stdin.buffer.read(65536):
                    pass
            return 0
        reason = reset()
        if reason:
            reporter.frame({"type": "retired", "reason": reason})
            return 0
        child = Child()
        if not child.wait_booted():
            child.discard()
            reporter.frame({"type": "retired", "reason": "a fresh interpreter did not start"})
            return 0
        reporter.frame({"type": "ready"})


if __name__ == "__main__":
    sys.exit(main())
