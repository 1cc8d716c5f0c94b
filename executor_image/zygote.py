"""The student zygote: starts every process of the student's code, and stops them all again.

Forked by the runner (uid 0) before it loads anything else or reads a job, so the processes it
forks are copies of a small interpreter that never ran student code and never saw a test: a
smaller process forks faster, and there is nothing in it to find. Each fork drops to the student's
uid before it runs anything; between a job's tests this zygote kills every process of that uid and
empties every place it could write. It talks to the runner over a SOCK_SEQPACKET socket:
requests with descriptors in, replies and exit notices out. Also home of the helpers both zygotes
use (dropping privileges, their request loop).
"""

import _signal
import ctypes
import errno
import gc
import json
import os
import selectors
import signal
import socket
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import student  # noqa: E402  (loaded before any fork, so that each child has it ready)

PR_CAPBSET_DROP = 24
CAP_LAST = 63
# Every place in the container a program can write to (the root filesystem is read-only).
WRITABLE = ("/tmp", "/dev/shm", "/dev/mqueue")
SYSV_IPC = (
    ("/proc/sysvipc/shm", "shmctl"),
    ("/proc/sysvipc/msg", "msgctl"),
    ("/proc/sysvipc/sem", "semctl"),
)
IPC_RMID = 0
# numpy's BLAS would start a thread per core at import (against the pids limit, for no gain in
# a 1-CPU sandbox); matplotlib draws with the sandbox's own backend (backend/) into /tmp.
SCIENCE_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MPLBACKEND": "module://jupyter_exec_display",
    "MPLCONFIGDIR": "/tmp/.matplotlib",
}


def LIBC(cache=[]):  # noqa: B006, N802 (one handle on libc, made on first use)
    if not cache:
        cache.append(ctypes.CDLL(None, use_errno=True))
    return cache[0]


def parse_identity(text, default):
    try:
        uid, _, gid = (text or default).partition(":")
        uid, gid = int(uid), int(gid or uid)
    except ValueError:
        uid, gid = (int(x) for x in default.split(":"))
    if uid <= 0 or gid <= 0:
        raise SystemExit("runner: the student's and the harness's uid must not be root")
    return uid, gid


STUDENT = parse_identity(os.environ.get("EXEC_STUDENT_ID"), "10001:10001")
HARNESS = parse_identity(os.environ.get("EXEC_HARNESS_ID"), "10002:10002")


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


#: gVisor has no /proc/sysvipc; there its ids count up from 1 (never reused), so the objects
#: alive are among the ids up to the one a new object gets. Beyond this many ids the container is
#: not worth sweeping (a program made and dropped objects in a loop): it is retired instead.
MAX_PROBED_IPC_IDS = 65536
IPC_PRIVATE, IPC_CREAT, IPC_STAT = 0, 0o1000, 2
_IPC_GET = {"shmctl": ("shmget", (4096,)), "msgctl": ("msgget", ()), "semctl": ("semget", (1,))}


def sysv_ids(path):
    if not os.path.isdir("/proc/sysvipc"):
        return probed_sysv_ids(dict(SYSV_IPC)[path])
    try:
        with open(path) as f:
            return [int(line.split()[1]) for line in f.readlines()[1:] if line.strip()]
    except (OSError, ValueError, IndexError):
        return []


def sysv_call(call, ident, command, buffer=None):
    libc = LIBC()
    if call == "semctl":
        return libc.semctl(ident, 0, command, buffer)
    return getattr(libc, call)(ident, command, buffer)


def probed_sysv_ids(call):
    """The live objects' ids of one System V kind where /proc cannot list them (gVisor): each id
    up to a fresh private object's that names an object (any answer but EINVAL). A list of more
    than MAX_PROBED_IPC_IDS ids (``[-1]`` included: never removable) when there are too many."""
    libc = LIBC()
    get, extra = _IPC_GET[call]
    top = getattr(libc, get)(IPC_PRIVATE, *extra, IPC_CREAT | 0o600)
    if top < 0:
        if ctypes.get_errno() == errno.ENOSYS:
            return []  # the kind is not offered at all: nothing of it can be left
        # No room for one more (a program filled the table): what is there cannot be listed, so
        # the container is not reset but retired.
        return [-1] * (MAX_PROBED_IPC_IDS + 1)
    sysv_call(call, top, IPC_RMID)
    if top > MAX_PROBED_IPC_IDS:
        return [-1] * (MAX_PROBED_IPC_IDS + 1)
    buffer = ctypes.create_string_buffer(4096)
    found = []
    for ident in range(top):
        if sysv_call(call, ident, IPC_STAT, buffer) == 0 or ctypes.get_errno() != errno.EINVAL:
            found.append(ident)
    return found


def remove_sysv_ipc():
    """Removes System V shared memory, queues and semaphores; True when none are left."""
    for path, call in SYSV_IPC:
        for ident in sysv_ids(path):
            if ident >= 0:
                sysv_call(call, ident, IPC_RMID)
    return not any(sysv_ids(path) for path, _ in SYSV_IPC)


# -- identities ------------------------------------------------------------------------------------


def privileged():
    """Whether this process can give other processes other uids (uid 0 with the capabilities)."""
    if os.geteuid() != 0:
        return False
    try:
        with open("/proc/self/status") as f:
            caps = {
                k: int(v, 16)
                for k, v in (line.split(":\t") for line in f if line.startswith("Cap"))
            }
    except (OSError, ValueError):
        return False
    needed = (
        (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8)
    )  # CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_SETPCAP
    return caps.get("CapEff", 0) & needed == needed


def bounding_set():
    """The capabilities in this process's bounding set, as numbers."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                bits = int(line.split()[1], 16)
                return [cap for cap in range(CAP_LAST + 1) if bits >> cap & 1]
    return list(range(CAP_LAST + 1))


def empty_bounding_set():
    """Drops every capability from the bounding set: no process forked from here can ever gain
    one, whatever it executes. The capabilities this process holds now stay (SETUID, SETGID …)."""
    libc = LIBC()
    for cap in bounding_set():
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError("could not drop capability %d from the bounding set" % cap)


def drop_privileges(uid, gid):
    """Becomes uid:gid for good. With all three uids non-zero the kernel clears the permitted,
    effective and ambient capabilities; the bounding set was emptied before (empty_bounding_set)."""
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid) or os.getgroups():
        raise OSError("could not drop privileges")


def quiet_stdio():
    """Points fds 0-2 at /dev/null: a forked helper must not hold the runner's frame channel."""
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)


def close_fds_except(keep):
    keep = sorted({fd for fd in keep if fd > 2})
    low = 3
    for fd in keep:
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 4096)


def reset_signals():
    # _signal, not signal.signal: its wrapper turns the old handler into an enum (failing, for a
    # function), which in a fresh fork copies about 90 pages: a third of a millisecond per test.
    signal.set_wakeup_fd(-1)
    _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)


def waitstatus_code(status):
    try:
        return os.waitstatus_to_exitcode(status)
    except ValueError:
        return None


def send_message(sock, message, fds=()):
    data = json.dumps(message).encode()
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.send(data)


def receive(sock):
    """One message from a SOCK_SEQPACKET peer: a dict, {} for noise, None when it is gone."""
    try:
        msg = sock.recv(65536)
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


def helper_loop(sock, on_message, children=None):
    """A zygote's loop: requests (with descriptors) on ``sock``; SIGCHLD wakes it to reap."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    sel.register(wake_r, selectors.EVENT_READ)
    closing = [wake_r, wake_w]
    while True:
        reap(sock, children)
        for key, _ in sel.select():
            if key.fileobj == wake_r:
                try:
                    while os.read(wake_r, 512):
                        pass
                except OSError:
                    pass
                continue
            try:
                data, fds, _, _ = socket.recv_fds(sock, 1 << 16, 16)
            except OSError:
                return
            if not data:
                return
            try:
                message = json.loads(data)
            except ValueError:
                message = {}
            reply = on_message(message, fds, closing)
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
            reap(sock, children)
            if reply is not None:
                send_message(sock, reply)


def reap(sock, children=None):
    """Collects ended children; the runner hears of each (the program's exit status matters)."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if children is not None:
            children.discard(pid)
        try:
            send_message(sock, {"exited": pid, "status": status})
        except OSError:
            pass


# -- the student zygote --------------------------------------------------------------------------


def student_pids(uid, skip=frozenset()):
    """Live processes whose real uid is ``uid``, not looking at those in ``skip``."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in skip:
            continue
        try:
            with open("/proc/%s/status" % name) as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except (OSError, ValueError):
            continue  # gone meanwhile
        try:
            if fields["State"].split()[0] in ("Z", "X"):
                continue  # a zombie holds nothing; its parent or init reaps it
            if int(fields["Uid"].split()[0]) == uid:
                pids.append(int(name))
        except (KeyError, ValueError, IndexError):
            continue
    return pids


def kill_students(sock, children, seconds=2.0):
    """Kills every process of the student's uid; True once /proc shows none left.

    ``children`` are this zygote's own live children (the code's processes it started): killed
    and reaped first, so that in the common case one look at /proc confirms nothing is left.
    """
    end = time.monotonic() + seconds
    for pid in list(children):
        children.discard(pid)
        try:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            send_message(sock, {"exited": pid, "status": status})
        except OSError:
            pass  # it ended and was reaped already
    pause = 0.0
    # PID 1, the runner (this zygote's parent) and this zygote are not the student's.
    skip = frozenset([1, os.getpid(), os.getppid()])
    while True:
        pids = student_pids(STUDENT[0], skip)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        reap(sock, children)
        if not pids:
            return True
        if time.monotonic() > end:
            return False
        time.sleep(pause)  # a killed process takes a moment to become a zombie
        pause = min(0.002, pause + 0.0002)


def leftovers():
    """What is in the writable places: (places with entries, any System V IPC objects)."""
    places = []
    for top in WRITABLE:
        try:
            # Entries owned by root are the runner's: the job's read-only data files.
            with os.scandir(top) as entries:
                if any(e.stat(follow_symlinks=False).st_uid != 0 for e in entries):
                    places.append(top)
        except FileNotFoundError:
            pass
        except OSError:
            places.append(top)
    return places, any(sysv_ids(path) for path, _ in SYSV_IPC)


def empty_writable_places():
    """Empties /tmp, /dev/shm, /dev/mqueue and System V IPC, as their owners; "" or what failed."""
    places, ipc = leftovers()
    if not places and not ipc:
        return ""
    for uid, gid in (STUDENT, HARNESS):
        # As the files' owner (the sticky /tmp lets only the owner remove them); the saved uid
        # stays 0, so this process can come back.
        os.setresgid(-1, gid, -1)
        os.setresuid(-1, uid, -1)
        try:
            for top in places:
                wipe(top)
            if ipc:
                remove_sysv_ipc()
        finally:
            os.setresuid(-1, 0, -1)
            os.setresgid(-1, 0, -1)
    places, ipc = leftovers()
    if places:
        return "%s could not be emptied" % places[0]
    return "System V IPC objects could not be removed" if ipc else ""


def student_zygote_main(sock):
    quiet_stdio()
    close_fds_except([sock.fileno()])
    # What every student process starts with, set up once here rather than in each fork.
    os.chdir("/tmp")
    os.environ.clear()
    os.environ.update({"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"})
    os.environ.update(SCIENCE_ENV)
    empty_bounding_set()
    gc.freeze()  # its forks then share these objects' pages instead of copying them

    children = set()

    def on_message(message, fds, closing):
        op = message.get("op")
        if op == "spawn" and len(fds) == 7:
            if message.get("clean") is True:
                # A test's process starts only in a container as clean as a fresh one.
                if not kill_students(sock, children):
                    return {"reason": "a process of the program could not be stopped"}
                reason = empty_writable_places()
                if reason:
                    return {"reason": reason}
            pid = os.fork()
            if pid == 0:
                student_process(fds, message.get("display") is True)
            children.add(pid)
            return {"pid": pid}
        if op == "kill":
            return {"killed": kill_students(sock, children)}
        if op == "clean":
            if not kill_students(sock, children):
                return {"reason": "a process of the program could not be stopped"}
            return {"reason": empty_writable_places()}
        return {"error": "unknown request"}

    helper_loop(sock, on_message, children)
    kill_students(sock, children)
    os._exit(0)


def student_process(fds, display=False):
    """In a fork of the student zygote: become the student, then run the code (never returns).
    With ``display``, the last descriptor is the pipe for figures (display.py reads it)."""
    try:
        code_r, in_r, out_w, err_w, status_fd, rpc_fd, display_fd = fds
        reset_signals()
        os.setsid()
        os.dup2(in_r, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        close_fds_except([code_r, status_fd, rpc_fd] + ([display_fd] if display else []))
        if display:
            os.environ["EXEC_DISPLAY_FD"] = str(display_fd)
        # If memory runs out, the student's process goes first, not ours. (os.open, not open():
        # a text file object per test is CPU a test's process need not spend.)
        adj = os.open("/proc/self/oom_score_adj", os.O_WRONLY)
        try:
            os.write(adj, b"1000")
        finally:
            os.close(adj)
        drop_privileges(*STUDENT)
    except BaseException:
        os._exit(70)
    student.run_as_program(code_r, status_fd, rpc_fd)
    os._exit(0)
