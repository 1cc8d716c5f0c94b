"""The hostile cases that matter most, under each OCI runtime the engine offers: runc (the engine's
default) and runsc (gVisor). Every claim of README's "Security model" must hold under both."""

from __future__ import annotations

import json
import time

import pytest

from jupyter_exec_ext.grading import Grader, exercise_from_notebook
from jupyter_exec_ext.sandbox import DockerSandbox, ExecutionRequest, Limits, SandboxConfig, Status

from ..conftest import TEST_OWNER, require
from ..grading.notebooks import exercise_notebook
from .test_docker_sandbox import FORK_BOMB

pytestmark = pytest.mark.docker


@pytest.fixture(params=["runc", "runsc"])
def box(request, docker_client, executor_image, no_leaks):
    runtime = request.param
    offered = docker_client.info().get("Runtimes", {})
    require(
        runtime in offered,
        f"the engine offers no {runtime} runtime (offered: {sorted(offered)}); "
        "scripts/provision.sh registers runsc under CI=true or JUPYTER_EXEC_EXT_RUNTIME=runsc",
    )
    sandbox = DockerSandbox(SandboxConfig(image=executor_image, owner=TEST_OWNER, runtime=runtime))
    yield sandbox
    sandbox.close()


def run(sandbox, code, **limits):
    return sandbox.run(ExecutionRequest(code=code, limits=Limits.from_mapping(limits)))


def test_the_runtime_is_the_one_asked_for(box, docker_client):
    assert box.status()["runtime"] == box.config.runtime
    result = run(box, "print(open('/proc/version').read())")
    assert result.status is Status.OK
    # gVisor's kernel presents itself as Linux but has no build host or compiler in its banner.
    assert ("gcc" not in result.stdout) == (box.config.runtime == "runsc"), result.stdout


def test_fork_bomb_is_contained_and_the_next_run_works(box):
    code = FORK_BOMB
    # A low limit, so that under gVisor fork is refused before the sandbox kernel's own memory
    # for the processes reaches the memory limit (at the default 50 that limit stops it first).
    result = run(box, code, time_limit=4, pids_limit=12)
    assert result.status is Status.TIMEOUT, (result.status, result.message)
    assert "fork refused after" in result.stdout
    assert int(result.stdout.split("after ")[1].split(" ")[0]) <= 12
    assert run(box, "print('still fine')").stdout == "still fine\n"


def test_memory_bomb_is_memory_limit(box):
    result = run(
        box,
        "print('allocating', flush=True)\nx = ' ' * (1024 ** 3)\nprint('done')\n",
        memory_limit="64m",
    )
    assert result.status is Status.MEMORY_LIMIT, (result.status, result.message)
    assert result.stdout == "allocating\n"


def test_no_network_read_only_root_unprivileged_student(box):
    code = (
        "import os, socket\n"
        "try:\n"
        "    socket.create_connection(('1.1.1.1', 53), timeout=3)\n"
        "    print('connected')\n"
        "except OSError as e:\n"
        "    print('refused')\n"
        "print(sorted(name for _, name in socket.if_nameindex()))\n"
        "try:\n"
        "    open('/evil', 'w')\n"
        "    print('written')\n"
        "except OSError as e:\n"
        "    print('read-only', type(e).__name__)\n"
        "open('/tmp/ok', 'w').write('x')\n"
        "print(os.getresuid(), os.getresgid(), os.getgroups())\n"
        "status = dict(l.split(':\\t', 1) for l in open('/proc/self/status') if ':\\t' in l)\n"
        "print({c: int(v, 16) for c, v in status.items() if c.startswith('Cap')})\n"
        "try:\n"
        "    os.setuid(0)\n"
        "    print('root again')\n"
        "except PermissionError:\n"
        "    print('setuid refused')\n"
    )
    result = run(box, code)
    assert result.status is Status.OK, (result.status, result.stderr)
    lines = result.stdout.splitlines()
    assert lines[0] == "refused"
    assert lines[1] == "['lo']"
    assert lines[2] in ("read-only OSError", "read-only PermissionError")
    assert lines[3] == "(10001, 10001, 10001) (10001, 10001, 10001) []"
    caps = eval(lines[4])  # gVisor's /proc has no CapAmb line; the others must be there, all empty
    assert {"CapInh", "CapPrm", "CapEff", "CapBnd"} <= set(caps) and set(caps.values()) == {0}, caps
    assert lines[5] == "setuid refused"


def test_output_flood_is_output_limit(box):
    code = "import sys\nchunk = 'x' * 1023 + '\\n'\nfor _ in range(100 * 1024):\n    sys.stdout.write(chunk)\n"
    result = run(box, code, time_limit=20)
    assert result.status is Status.OUTPUT_LIMIT, (result.status, result.message)
    assert result.truncated is True
    assert 0 < len(result.stdout.encode()) <= box.config.output_limit_bytes


def test_timeout_keeps_partial_output(box):
    result = run(box, "print('started')\nwhile True:\n    pass\n", time_limit=2)
    assert (result.status, result.stdout) == (Status.TIMEOUT, "started\n")


def test_grading_in_the_trusted_harness_scores_right(box):
    exercise = exercise_from_notebook(
        exercise_notebook(limits={"time_limit": 3, "memory_limit": "96m"}), "add.ipynb"
    )
    grader = Grader(box)
    right = grader.grade(exercise, "def add(a, b):\n    return a + b\n")
    assert (right.status.value, right.score, right.max_score) == ("ok", 4, 4)
    wrong = grader.grade(exercise, "def add(a, b):\n    return 0\n")
    assert {t.name: t.status for t in wrong.tests} == {
        "small numbers": "failed",
        "negatives": "failed",
        "big numbers": "failed",
    }
    assert wrong.score == 0


#: Tries every other process's environ, memory and open files (each fd, to read and to write).
PROC_SWEEP = """import os
me = os.getpid()
for pid in sorted(int(p) for p in os.listdir('/proc') if p.isdigit()):
    if pid == me:
        continue
    print(pid, 'seen')
    for what in ('environ', 'mem'):
        try:
            with open(f'/proc/{pid}/{what}', 'rb') as f:
                data = f.read()
            names = sorted(v.split(b'=')[0].decode() for v in data.split(b'\\0') if v)
            print(pid, what, 'reached', ','.join(names))
        except OSError:
            pass
    try:
        fds = os.listdir(f'/proc/{pid}/fd')
    except OSError:
        continue
    for fd in fds:
        for mode in (os.O_RDONLY, os.O_WRONLY):
            try:
                os.close(os.open(f'/proc/{pid}/fd/{fd}', mode | os.O_NONBLOCK))
                print(pid, 'fd', 'reached', os.readlink(f'/proc/{pid}/fd/{fd}'))
            except OSError:
                pass
"""


def test_proc_of_the_runner_and_its_helpers_is_closed_to_the_program(box):
    # The runner, its zygotes and PID 1 run as root, the harness as 10002: their memory, their
    # pipes and sockets (the result channel, the harness's calls) are not the program's to read or
    # write. gVisor's /proc is looser than runc's in two harmless ways, both pinned here: any
    # process may read another's environ, which holds only the container's static, public
    # variables (no secret, not the nonce nor the tests, ever passes through the environment); and
    # another process's fd may be reopened when the file's own mode allows it: only /dev/null.
    result = run(box, PROC_SWEEP)
    assert result.status is Status.OK, (result.status, result.stderr)
    lines = result.stdout.splitlines()
    assert sum(line.endswith(" seen") for line in lines) >= 4, (
        lines
    )  # PID 1, runner, zygotes, harness
    reached = [line.split() for line in lines if " reached" in line]
    if box.config.runtime == "runc":
        assert reached == [], lines
        return
    public = {
        "PATH",
        "HOSTNAME",
        "HOME",
        "LANG",
        "EXEC_STUDENT_ID",
        "EXEC_HARNESS_ID",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONUNBUFFERED",
        "MPLBACKEND",
        "MPLCONFIGDIR",
    }
    for _, what, _, *rest in reached:
        assert what in ("environ", "fd"), lines
        if what == "environ":
            assert set(",".join(rest).split(",")) - {""} <= public, lines
        else:
            assert rest == ["/dev/null"], lines


def reset_programs():
    """test_reuse's program that leaves everything behind and the one that looks for it, made to
    suit both runtimes: gVisor has no POSIX message queues (/dev/mqueue) and no /proc/sysvipc."""
    from .test_reuse import LEAVE_EVERYTHING_BEHIND, LOOK_FOR_IT, WHERE

    queue = 'fd = os.open("/dev/mqueue/queue", os.O_CREAT | os.O_RDWR, 0o600)\nos.close(fd)\n'
    assert queue in LEAVE_EVERYTHING_BEHIND and LOOK_FOR_IT.startswith(WHERE)
    leave = LEAVE_EVERYTHING_BEHIND.replace(
        queue,
        "if os.path.isdir('/dev/mqueue'):\n"
        + "".join("    " + line + "\n" for line in queue.splitlines()),
    )
    sysv = 'found["sysv"] = [open(p).read().splitlines()[1:] for p in ("/proc/sysvipc/shm", "/proc/sysvipc/msg", "/proc/sysvipc/sem")]'  # noqa: E501
    assert sysv in LOOK_FOR_IT
    # Without /proc/sysvipc, the segment the first run made is looked up by its key.
    look = LOOK_FOR_IT[len(WHERE) :].replace(
        sysv,
        (
            "import ctypes\n"
            "found['sysv'] = [[] if ctypes.CDLL(None).shmget(0x5eed, 0, 0) < 0 else ['0x5eed'], [], []]"
        ),
    )
    return leave, look


def test_the_reuse_reset_leaves_nothing_for_the_next_run(box):
    # Reuse is on by default: runs with the same key share a container, reset in between. gVisor
    # has no POSIX message queues (/dev/mqueue), no /proc/sysvipc and an empty /proc/self/cgroup, so
    # the program skips the first, looks its System V segment up by key, and the host's container
    # count says the second run reused the container.
    from .test_reuse import wait_until_kept

    leave, look = reset_programs()
    first = box.run(ExecutionRequest(code=leave, reuse_key="alice"))
    assert first.status is Status.OK, (first.message, first.stderr)
    wait_until_kept(box, seconds=30.0)
    created = box.containers_created
    second = box.run(ExecutionRequest(code=look, reuse_key="alice"))
    assert second.status is Status.OK, (second.message, second.stderr)
    assert box.containers_created == created, "the second run was not in the same container"
    found = json.loads(second.stdout)
    assert found == {
        "/tmp": [],
        "/dev/shm": [],
        "/dev/mqueue": [],
        "sysv": [[], [], []],
        "processes": [],
        "env": False,
        "module": False,
        "allocated": 200,
    }


@pytest.mark.parametrize("runtime", ["runc", "runsc"])
def test_a_warm_pool_serves_runs_with_the_same_hardening(
    runtime, executor_image, docker_client, no_leaks
):
    offered = docker_client.info().get("Runtimes", {})
    require(
        runtime in offered, f"the engine offers no {runtime} runtime (offered: {sorted(offered)})"
    )
    sandbox = DockerSandbox(SandboxConfig(image=executor_image, owner=TEST_OWNER, runtime=runtime))
    try:
        sandbox.start_pool(1)
        deadline = time.monotonic() + 60
        while sandbox.pool.status()["idle"] < 1:
            assert time.monotonic() < deadline, f"the pool never filled: {sandbox.pool.status()}"
            time.sleep(0.05)
        result = run(
            sandbox,
            "import os\n"
            "print(os.getresuid())\n"
            "print('gcc' in open('/proc/version').read())\n"
            "status = dict(l.split(':\\t', 1) for l in open('/proc/self/status') if ':\\t' in l)\n"
            "print(sorted({int(v, 16) for c, v in status.items() if c.startswith('Cap')}))\n",
        )
        assert sandbox.pool.status()["served"] == 1, sandbox.pool.status()
    finally:
        sandbox.close()
    assert result.status is Status.OK, (result.status, result.stderr)
    assert result.stdout.splitlines() == ["(10001, 10001, 10001)", str(runtime == "runc"), "[0]"]


def test_a_full_system_v_table_is_never_left_for_the_next_run(box):
    # A program fills the System V table, so that (under gVisor) the reset cannot make the object
    # it probes with: the container is then retired, not taken for clean. The next run of the same
    # user must find none of the segments and room to make its own (gVisor answers a look-up by
    # key with ENOSPC while the table is full, so the room is what tells).
    fill = (
        "import ctypes\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "made = 0\n"
        "while libc.shmget(0x1000 + made, 1, 0o1600) >= 0:\n"
        "    made += 1\n"
        "print(made, ctypes.get_errno())\n"
    )
    limits = Limits.from_mapping({"time_limit": 20})
    first = box.run(ExecutionRequest(code=fill, reuse_key="alice", limits=limits))
    assert first.status is Status.OK, (first.status, first.message, first.stderr)
    made = int(first.stdout.split()[0])
    assert made > 0, first.stdout
    look = (
        "import ctypes\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "print(sum(libc.shmget(0x1000 + i, 0, 0) >= 0 for i in range(%d)))\n"
        "print(libc.shmget(0, 1, 0o1600) >= 0)\n" % made
    )
    time.sleep(1)  # the reset (or the retirement) happens after the answer
    second = box.run(ExecutionRequest(code=look, reuse_key="alice", limits=limits))
    assert (second.status, second.stdout) == (Status.OK, "0\nTrue\n"), (
        second.status,
        second.stdout,
        second.stderr,
    )


def test_a_run_during_its_users_reset_takes_a_pooled_container_under_each_runtime(box):
    # Run All: the next run of a user whose container is still being reset takes a pooled one
    # (it ran nothing before); both are then the user's, and each is reset before it serves again.
    # The programs are those of the reset test above (reset_programs).
    from .test_reuse import SLOW_TO_RESET, wait_until_kept

    leave, look = reset_programs()
    clean = {
        "/tmp": [],
        "/dev/shm": [],
        "/dev/mqueue": [],
        "sysv": [[], [], []],
        "processes": [],
        "env": False,
        "module": False,
        "allocated": 200,
    }
    box.start_pool(2)
    deadline = time.monotonic() + 60
    while box.pool.status()["idle"] < 2:
        assert time.monotonic() < deadline, f"the pool never filled: {box.pool.status()}"
        time.sleep(0.05)
    first = box.run(ExecutionRequest(code=SLOW_TO_RESET + leave, reuse_key="alice"))
    assert first.status is Status.OK, (first.message, first.stderr)
    assert box.reuse.status()["resetting"] == 1, (
        "the premise: the first container is still being reset"
    )
    second = box.run(ExecutionRequest(code=look + "del block\n" + leave, reuse_key="alice"))
    assert second.status is Status.OK, (second.message, second.stderr)
    assert (box.reuse.status()["spares"], box.pool.status()["served"]) == (1, 2)
    assert json.loads(second.stdout.splitlines()[0]) == clean
    # Both containers are alice's now; whichever serves next was reset after leaving everything.
    wait_until_kept(box, 2, seconds=30.0)
    for _ in range(2):
        served = box.reuse.status()["served"]
        after = box.run(ExecutionRequest(code=look, reuse_key="alice"))
        assert after.status is Status.OK, (after.message, after.stderr)
        assert box.reuse.status()["served"] == served + 1
        assert json.loads(after.stdout) == clean
