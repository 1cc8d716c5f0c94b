"""The sandbox's own seccomp profile: every syscall it denies, called by student code through
ctypes in the real sandbox, fails; what Python and the runner need still works."""

from __future__ import annotations

import errno
import json
import platform

import pytest

from jupyter_exec_ext.sandbox import DockerSandbox, ExecutionRequest, SandboxConfig, Status
from jupyter_exec_ext.sandbox.config import BUILTIN_SECCOMP, seccomp_security_opt
from jupyter_exec_ext.sandbox.errors import LimitError

from ..conftest import TEST_OWNER

pytestmark = pytest.mark.docker

#: x86-64 numbers of the calls the profile denies, with arguments that make each one succeed, or
#: fail for a reason other than seccomp, when the filter lets it through.
DENIED = {
    "ptrace": (101, [0, 0, 0, 0]),  # PTRACE_TRACEME: always allowed by the kernel
    "process_vm_readv": (310, ["pid", 0, 0, 0, 0, 0]),  # nothing to read from itself: returns 0
    "process_vm_writev": (311, ["pid", 0, 0, 0, 0, 0]),
    "kcmp": (312, ["pid", "pid", 0, 0, 0]),
    "pidfd_getfd": (438, [-1, 0, 0]),
    "personality": (135, [0xFFFFFFFF]),  # a query: always allowed by the kernel
    "userfaultfd": (323, [1]),  # UFFD_USER_MODE_ONLY
    "io_uring_setup": (425, [1, "buf"]),
    "io_uring_enter": (426, [-1, 0, 0, 0, 0, 0]),
    "io_uring_register": (427, [-1, 0, 0, 0]),
    "bpf": (321, [0, 0, 0]),
    "perf_event_open": (298, ["buf", 0, -1, -1, 0]),
    "keyctl": (250, [0, -3, 0]),  # KEYCTL_GET_KEYRING_ID of the session keyring
    "add_key": (248, [0, 0, 0, 0, -3]),
    "request_key": (249, [0, 0, 0, -3]),
    "mount": (165, [0, 0, 0, 0, 0]),
    "umount2": (166, [0, 0]),
    "fsopen": (430, [0, 0]),
    "fsmount": (432, [-1, 0, 0]),
    "fspick": (433, [-1, 0, 0]),
    "fsconfig": (431, [-1, 0, 0, 0, 0]),
    "open_tree": (428, [-1, 0, 0]),
    "move_mount": (429, [-1, 0, -1, 0, 0]),
    "mount_setattr": (442, [-1, 0, 0, 0, 0]),
    "pivot_root": (155, [0, 0]),
    "chroot": (161, [0]),
    "unshare": (272, [0x20000]),  # CLONE_NEWNS
    "setns": (308, [-1, 0]),
    "kexec_load": (246, [0, 0, 0, 0]),
    "kexec_file_load": (320, [-1, -1, 0, 0, 0]),
    "init_module": (175, [0, 0, 0]),
    "finit_module": (313, [-1, 0, 0]),
    "delete_module": (176, [0, 0]),
    "reboot": (169, [0, 0, 0, 0]),
    "swapon": (167, [0, 0]),
    "name_to_handle_at": (303, [-100, 0, 0, 0, 0]),
    "open_by_handle_at": (304, [-1, 0, 0]),
    "settimeofday": (164, [0, 0]),
    "clock_settime": (227, [0, 0]),
    "adjtimex": (159, ["buf"]),  # mode 0 is a query the kernel allows
    "sethostname": (170, [0, 0]),
    "acct": (163, [0]),
    "quotactl": (179, [0, 0, 0, 0]),
    "syslog": (103, [10, 0, 0]),  # SYSLOG_ACTION_SIZE_BUFFER
    "modify_ldt": (154, [0, "buf", 16]),  # read the LDT: allowed by the kernel
    "iopl": (172, [0]),
    "ioperm": (173, [0, 0, 0]),
    "uselib": (134, [0]),
    "fanotify_init": (300, [0, 0]),
    "fanotify_mark": (301, [-1, 0, 0, 0, 0]),
    "process_madvise": (440, [-1, 0, 0, 0, 0]),
    "swapoff": (168, [0]),
    "setdomainname": (171, [0, 0]),
    "clock_adjtime": (305, [0, "buf"]),  # mode 0 is a query the kernel allows
    "quotactl_fd": (443, [-1, 0, 0, 0]),
    "lookup_dcookie": (212, [0, 0, 0]),
    "_sysctl": (156, [0]),
}
#: Denied names with no x86-64 system call of that name (32-bit only).
NOT_ON_X86_64 = {"umount", "vm86", "vm86old"}

#: Calls the engine's own default profile (Docker 20.10's, on this machine) lets through (the
#: arguments above then succeed), so their failure shows that our profile is the one in force.
OURS_ONLY = ("ptrace", "personality", "io_uring_setup", "modify_ldt", "adjtimex")

PROBE = r"""
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
out = {}
for name, (nr, args) in json.loads(TABLE).items():
    buf = ctypes.create_string_buffer(4096)  # zeroed for each call: some calls write into it
    values = [os.getpid() if a == "pid" else ctypes.addressof(buf) if a == "buf" else a for a in args]
    ctypes.set_errno(0)
    ret = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(v) for v in values])
    out[name] = [ret, ctypes.get_errno()]
    if ret > 2 and name in ("io_uring_setup", "userfaultfd", "fanotify_init", "fsopen"):
        os.close(ret)
print(json.dumps(out))
"""


def probe(sandbox: DockerSandbox, names) -> dict:
    table = json.dumps({n: DENIED[n] for n in names})
    result = sandbox.run(ExecutionRequest(code=f"TABLE = {table!r}\n" + PROBE))
    assert result.status is Status.OK, (result.status, result.message, result.stderr)
    return json.loads(result.stdout)


@pytest.fixture
def x86_64():
    if platform.machine() != "x86_64":
        pytest.fail(
            f"the syscall numbers of these tests are x86-64's; this machine is {platform.machine()}"
        )


@pytest.fixture
def engine_default_sandbox(executor_image, no_leaks):
    box = DockerSandbox(SandboxConfig(image=executor_image, owner=TEST_OWNER, seccomp="engine"))
    yield box
    box.close()


def test_every_denied_syscall_fails_with_eperm_for_student_code(sandbox, x86_64):
    results = probe(sandbox, DENIED)
    allowed = {name: r for name, r in results.items() if r != [-1, errno.EPERM]}
    assert not allowed, (
        f"calls the profile should deny answered otherwise ([ret, errno]): {allowed}"
    )


def test_clone3_says_enosys_so_threads_and_processes_fall_back_to_clone(sandbox, x86_64):
    code = r"""
import ctypes, multiprocessing, os, subprocess, threading
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
print("clone3", libc.syscall(ctypes.c_long(435), ctypes.c_long(0), ctypes.c_long(0)), ctypes.get_errno())
results = []
threads = [threading.Thread(target=results.append, args=(i,)) for i in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print("threads", sorted(results))
print("subprocess", subprocess.run(["python3", "-c", "print(6 * 7)"], capture_output=True, text=True).stdout.strip())
pid = os.fork()
if pid == 0:
    os._exit(7)
print("fork", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""
    result = sandbox.run(ExecutionRequest(code=code))
    assert result.status is Status.OK, (result.message, result.stderr)
    assert result.stdout.splitlines() == [
        f"clone3 -1 {errno.ENOSYS}",
        "threads [0, 1, 2, 3]",
        "subprocess 42",
        "fork 7",
    ]


def test_new_namespaces_through_clone_are_denied(sandbox, x86_64):
    # clone itself is allowed for processes and threads, but not with a CLONE_NEW* flag.
    code = r"""
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SIGCHLD, CLONE_NEWUSER, CLONE_NEWNS = 17, 0x10000000, 0x20000
for flag in (CLONE_NEWUSER, CLONE_NEWNS):
    ret = libc.syscall(ctypes.c_long(56), ctypes.c_long(SIGCHLD | flag), 0, 0, 0, 0)
    print(ret, ctypes.get_errno())
"""
    result = sandbox.run(ExecutionRequest(code=code))
    assert result.status is Status.OK, (result.message, result.stderr)
    assert result.stdout.splitlines() == [f"-1 {errno.EPERM}"] * 2


def test_the_engine_default_lets_through_what_ours_denies(engine_default_sandbox, x86_64):
    # The control: with the engine's own profile (the way off ours) these calls succeed, so the
    # EPERM above comes from our profile and not from the capabilities or the kernel.
    results = probe(engine_default_sandbox, OURS_ONLY)
    assert all(ret >= 0 and err == 0 for ret, err in results.values()), results


INT80_GETPID = r"""
import ctypes, mmap, os
mem = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
mem.write(bytes([0xb8, 20, 0, 0, 0, 0xcd, 0x80, 0xc3]))  # mov eax, 20 (i386 getpid); int 0x80; ret
getpid32 = ctypes.CFUNCTYPE(ctypes.c_long)(ctypes.addressof(ctypes.c_char.from_buffer(mem)))
print(os.getpid(), getpid32(), flush=True)
"""


def test_the_32_bit_abi_is_closed(sandbox, engine_default_sandbox, x86_64):
    # Old 32-bit entry points are a classic way around a filter written for 64-bit numbers; ours
    # allows the native ABI only, and the kernel ends a process that uses another (SIGSYS).
    closed = sandbox.run(ExecutionRequest(code=INT80_GETPID))
    assert closed.status is Status.RUNTIME_ERROR and closed.exit_code == -31 and closed.stdout == ""
    pid, same = engine_default_sandbox.run(ExecutionRequest(code=INT80_GETPID)).stdout.split()
    assert pid == same  # the control: the engine's profile lets the 32-bit getpid through


def test_sockets_pipes_and_ipc_still_work_for_student_code(sandbox):
    code = r"""
import mmap, os, socket, select, signal, tempfile
a, b = socket.socketpair()
r, w = os.pipe()
socket.send_fds(a, [b"fd"], [r])
msg, fds, _, _ = socket.recv_fds(b, 16, 1)
os.write(w, b"through a passed fd")
print(msg.decode(), os.read(fds[0], 64).decode())
with tempfile.TemporaryFile() as f:
    f.write(b"x" * 4096); f.flush()
    print(mmap.mmap(f.fileno(), 4096)[:3].decode())
print(select.select([], [], [], 0))
signal.signal(signal.SIGUSR1, lambda *_: print("signal"))
os.kill(os.getpid(), signal.SIGUSR1)
"""
    result = sandbox.run(ExecutionRequest(code=code))
    assert result.status is Status.OK, (result.message, result.stderr)
    assert result.stdout == "fd through a passed fd\nxxx\n([], [], [])\nsignal\n"


def test_the_profile_denies_what_it_lists_and_allows_what_the_runner_needs():
    profile = json.loads(BUILTIN_SECCOMP.read_text())
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    allowed = {
        n
        for rule in profile["syscalls"]
        if rule["action"] == "SCMP_ACT_ALLOW"
        for n in rule["names"]
    }
    denied = {
        n
        for rule in profile["syscalls"]
        if rule["action"] == "SCMP_ACT_ERRNO" and rule.get("errnoRet") == errno.EPERM
        for n in rule["names"]
    }
    assert not allowed & (denied - {"clone"}), allowed & denied
    assert set(DENIED) == denied - NOT_ON_X86_64  # the test calls every one of them
    runner_needs = {
        "clone",
        "fork",
        "setresuid",
        "setresgid",
        "setgroups",
        "prctl",
        "capset",
        "kill",
        "wait4",
        "socketpair",
        "sendmsg",
        "recvmsg",
        "pipe2",
        "shmctl",
        "msgctl",
        "semctl",
        "execve",
    }
    assert runner_needs <= allowed, runner_needs - allowed


def test_seccomp_setting_names_what_is_wrong(tmp_path):
    assert seccomp_security_opt("engine") is None
    assert seccomp_security_opt("builtin").startswith('seccomp={"defaultAction"')
    assert SandboxConfig.from_env({"DOCKER_EXECUTOR_SECCOMP": "engine"}).seccomp == "engine"
    with pytest.raises(LimitError, match="seccomp profile '/nowhere.json' cannot be used"):
        seccomp_security_opt("/nowhere.json")
    not_a_profile = tmp_path / "p.json"
    not_a_profile.write_text("[1, 2]")
    with pytest.raises(LimitError, match="is not a seccomp profile: it has no defaultAction"):
        DockerSandbox(SandboxConfig(seccomp=str(not_a_profile)))
