"""Reuse of one user's container for that user's next runs, against the real engine.

The claim under attack: a run that follows another in the same container finds nothing of it —
no process (whatever its session, group or signal mask), no file in any writable place, no System
V IPC object, no memory held — and only runs of the same user ever share a container, one at a
time; a grading takes only its own user's container and leaves none kept.
"""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest

from jupyter_exec_ext.sandbox import (
    Check,
    DockerSandbox,
    ExecutionRequest,
    Limits,
    SandboxConfig,
    Status,
)

from ..conftest import TEST_OWNER, our_containers, signal_runner

pytestmark = pytest.mark.docker

#: Prints the id of the container it runs in (cgroup v1 and v2 paths both end in it).
WHERE = (
    "print(open('/proc/self/cgroup').read().strip().split('/')[-1].replace('docker-', '')[:12])\n"
)

#: What the runner empties between runs (executor_image/runner.py, WRITABLE).
WRITABLE = ("/tmp", "/dev/shm", "/dev/mqueue")


@pytest.fixture
def box(executor_image, no_leaks):
    sandbox = DockerSandbox(SandboxConfig(image=executor_image, owner=TEST_OWNER))
    yield sandbox
    sandbox.close()


def run(box, code, key="alice", **kwargs):
    limits = Limits.from_mapping(kwargs.pop("limits", {}))
    return box.run(ExecutionRequest(code=code, reuse_key=key, limits=limits, **kwargs))


def container_of(result) -> str:
    assert result.status is Status.OK, (result.status, result.message, result.stderr)
    return result.stdout.splitlines()[0]


def wait_until_kept(box, count=1, seconds=10.0):
    """The reset happens after the answer; waits (bounded) until the container is back."""
    end = time.monotonic() + seconds
    while box.reuse.status()["kept"] < count:
        assert time.monotonic() < end, f"no container was kept: {box.reuse.status()}"
        time.sleep(0.01)


def test_one_users_runs_share_a_container_and_other_users_never_do(box):
    first = container_of(run(box, WHERE))
    wait_until_kept(box)
    assert container_of(run(box, WHERE)) == first
    wait_until_kept(box)
    bob = container_of(run(box, WHERE, key="bob"))
    nobody = container_of(box.run(ExecutionRequest(code=WHERE)))
    assert len({first, bob, nobody}) == 3
    assert box.reuse.status()["served"] == 1


def test_grading_takes_only_its_users_container_and_keeps_none(box):
    first = container_of(run(box, WHERE))
    wait_until_kept(box)
    # Without a user, or for another user, a grading gets a container that ran nothing before.
    for key in (None, "bob"):
        graded = run(
            box,
            WHERE + "def f():\n    return 1\n",
            key=key,
            checks=(Check("print(f())"), Check(WHERE.strip())),
        )
        assert graded.status is Status.OK
        assert graded.checks[1].stdout.strip() != first
        assert box.reuse.status()["kept"] == 1  # Alice's container, untouched
    # Alice's own grading runs in her reset container (tests/grading/test_own_container.py
    # attacks that), which is not kept after it.
    graded = run(
        box, WHERE + "def f():\n    return 1\n", checks=(Check("print(f())"), Check(WHERE.strip()))
    )
    assert graded.status is Status.OK
    assert graded.checks[1].stdout.strip() == first
    assert box.reuse.status()["kept"] == 0
    assert container_of(run(box, WHERE)) != first


LEAVE_EVERYTHING_BEHIND = r'''
import ctypes, os, signal, time, subprocess, sys
# Files in every writable place, one of them in a directory the program locked itself out of.
os.makedirs("/tmp/a/b/c")
open("/tmp/a/b/c/secret", "w").write("run one")
open("/tmp/.hidden", "w").write("run one")
os.mkfifo("/tmp/fifo")
os.chmod("/tmp/a/b", 0)
open("/dev/shm/shared", "wb").write(b"x" * (40 << 20))   # 40 MB that count against the memory limit
fd = os.open("/dev/mqueue/queue", os.O_CREAT | os.O_RDWR, 0o600)
os.close(fd)
# System V shared memory that outlives its creator unless removed.
libc = ctypes.CDLL(None, use_errno=True)
libc.shmget.restype = ctypes.c_int
assert libc.shmget(0x5eed, 4096, 0o1600) >= 0, ctypes.get_errno()
# A daemon in its own session that ignores every signal it can, keeps writing, and a stopped one.
daemon = """
import os, signal, time
for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGUSR1):
    signal.signal(s, signal.SIG_IGN)
if os.fork():
    os._exit(0)
os.setsid()
while True:
    try:
        open('/tmp/daemon-was-here', 'a').write('.')
    except OSError:
        pass
    time.sleep(0.01)
"""
subprocess.Popen([sys.executable, "-c", daemon], start_new_session=True)
stopped = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1000)"], start_new_session=True)
os.kill(stopped.pid, signal.SIGSTOP)
os.environ["LEFT_BEHIND"] = "1"
import json
json.left_behind = True
time.sleep(0.1)
print("left")
'''

LOOK_FOR_IT = (
    WHERE
    + r"""
import json, os, time
time.sleep(0.3)  # a surviving daemon would write again meanwhile
found = {}
for top in %r:
    names = []
    for root, dirs, files in os.walk(top):
        names += [os.path.join(root, n) for n in dirs + files]
    found[top] = names
found["sysv"] = [open(p).read().splitlines()[1:] for p in ("/proc/sysvipc/shm", "/proc/sysvipc/msg", "/proc/sysvipc/sem")]
def uid_of(pid):
    return int(open("/proc/%%s/status" %% pid).read().split("Uid:")[1].split()[0])
me = os.getpid()
found["processes"] = sorted(open("/proc/%%s/cmdline" %% p, "rb").read().replace(b"\0", b" ").decode()[:80]
                            for p in os.listdir("/proc")
                            if p.isdigit() and int(p) != me and uid_of(p) == os.getuid())
found["env"] = "LEFT_BEHIND" in os.environ
found["module"] = hasattr(json, "left_behind")
# 200 MB of a 256 MB limit: only possible if the 40 MB in /dev/shm were freed.
block = bytearray(200 << 20)
found["allocated"] = len(block) >> 20
print(json.dumps(found))
"""
    % (WRITABLE,)
)


def test_nothing_a_run_leaves_behind_reaches_the_next_run_in_the_container(box):
    first = run(box, WHERE + LEAVE_EVERYTHING_BEHIND)
    assert first.status is Status.OK, (first.message, first.stderr)
    wait_until_kept(box)
    second = run(box, LOOK_FOR_IT)
    assert container_of(second) == container_of(first), (
        "the second run was not in the same container"
    )
    found = json.loads(second.stdout.splitlines()[1])
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


def test_a_fork_bomb_does_not_outlive_its_run(box):
    bomb = run(
        box,
        WHERE
        + "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
        limits={"time_limit": 1},
    )
    assert bomb.status is Status.TIMEOUT
    wait_until_kept(box)
    after = run(box, LOOK_FOR_IT, limits={"time_limit": 1})  # the same limits: the same container
    assert container_of(after) == bomb.stdout.splitlines()[0]
    assert json.loads(after.stdout.splitlines()[1])["processes"] == []


def test_a_memory_bomb_leaves_the_next_run_its_whole_limit(box):
    bomb = run(box, WHERE + "block = bytearray(1 << 30)\n")
    assert bomb.status is Status.MEMORY_LIMIT, (bomb.status, bomb.message)
    wait_until_kept(box)
    after = run(box, LOOK_FOR_IT)
    assert container_of(after) == bomb.stdout.splitlines()[0]
    assert json.loads(after.stdout.splitlines()[1])["allocated"] == 200


def test_a_run_whose_end_only_the_engine_can_explain_is_not_reused(box):
    """A SIGKILL the runner cannot attribute is settled by asking Docker, after the container
    ends: the runner that was asked to stay gets EOF, and the container is removed."""
    first = container_of(run(box, WHERE))
    wait_until_kept(box)
    killed = run(box, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    assert (killed.status, killed.exit_code) == (Status.RUNTIME_ERROR, -9), killed
    assert container_of(run(box, WHERE)) != first


def test_the_runner_empties_every_place_a_program_can_write(box):
    scan = run(
        box,
        r"""
import os
writable = []
for root, dirs, files in os.walk("/"):
    if root.startswith(("/proc", "/sys")):
        dirs[:] = []
        continue
    if os.access(root, os.W_OK):
        writable.append(root)
print(sorted(writable))
""",
    )
    assert scan.status is Status.OK, scan.stderr
    places = eval(scan.stdout)  # a list literal printed by the program above
    assert "/tmp" in places
    outside = [
        p for p in places if not any(p == top or p.startswith(top + "/") for top in WRITABLE)
    ]
    assert outside == [], f"writable places the runner does not empty: {outside}"


def test_a_kept_container_whose_runner_died_is_never_used(box, docker_client):
    first = run(box, WHERE)
    wait_until_kept(box)
    kept = [
        c["Id"] for c in our_containers(docker_client) if c["Id"].startswith(container_of(first))
    ]
    signal_runner(docker_client, kept[0], signal.SIGKILL)
    time.sleep(0.3)
    after = run(box, WHERE)
    assert after.status is Status.OK
    assert container_of(after) != container_of(first)


def test_a_kept_container_whose_runner_froze_is_never_used_again(
    executor_image, no_leaks, docker_client
):
    box = DockerSandbox(SandboxConfig(image=executor_image, owner=TEST_OWNER, startup_grace_s=1))
    try:
        first = container_of(run(box, WHERE))
        wait_until_kept(box)
        kept = [c["Id"] for c in our_containers(docker_client) if c["Id"].startswith(first)]
        signal_runner(docker_client, kept[0], signal.SIGSTOP)
        frozen = run(box, "print('never')\n", limits={"time_limit": 1})
        assert frozen.status is Status.TIMEOUT
        assert container_of(run(box, WHERE)) != first
    finally:
        box.close()


def test_a_container_serves_at_most_reuse_runs(executor_image, no_leaks):
    box = DockerSandbox(SandboxConfig(image=executor_image, owner=TEST_OWNER, reuse_runs=3))
    try:
        seen = []
        for _ in range(4):
            seen.append(container_of(run(box, WHERE)))
            time.sleep(0.05)
            if len(seen) < 3:
                wait_until_kept(box)
        assert seen[0] == seen[1] == seen[2] != seen[3]
    finally:
        box.close()


def test_beyond_reuse_kept_the_container_unused_longest_goes(executor_image, no_leaks):
    box = DockerSandbox(SandboxConfig(image=executor_image, owner=TEST_OWNER, reuse_kept=1))
    try:
        alice = container_of(run(box, WHERE, key="alice"))
        wait_until_kept(box)
        bob = container_of(run(box, WHERE, key="bob"))
        end = time.monotonic() + 10
        while box.reuse.status()["retired"] < 1:  # bob's container kept, alice's evicted
            assert time.monotonic() < end, box.reuse.status()
            time.sleep(0.01)
        assert box.reuse.status()["kept"] == 1
        assert container_of(run(box, WHERE, key="bob")) == bob
        assert container_of(run(box, WHERE, key="alice")) not in (alice, bob)
    finally:
        box.close()


def test_concurrent_runs_of_one_user_never_share_a_container(box):
    results = []
    threads = [
        threading.Thread(
            target=lambda: results.append(run(box, WHERE + "import time\ntime.sleep(1)\n"))
        )
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({container_of(r) for r in results}) == 2


def test_a_run_with_other_limits_gets_another_container(box):
    first = container_of(run(box, WHERE))
    wait_until_kept(box)
    assert container_of(run(box, WHERE, limits={"memory_limit": "128m"})) != first
    # A shorter time limit fits the kept container: the runner enforces the run's own.
    assert container_of(run(box, WHERE, limits={"time_limit": 5})) == first


def test_closing_the_sandbox_removes_kept_containers(box, docker_client):
    run(box, WHERE)
    run(box, WHERE, key="bob")
    wait_until_kept(box, 2)
    assert len(our_containers(docker_client)) >= 2
    box.close()
    assert our_containers(docker_client) == []


def test_reuse_can_be_turned_off(executor_image, no_leaks):
    box = DockerSandbox(SandboxConfig(image=executor_image, owner=TEST_OWNER, reuse_runs=0))
    try:
        assert box.reuse is None
        first = container_of(run(box, WHERE))
        assert container_of(run(box, WHERE)) != first
    finally:
        box.close()


# -- a second container while the first is reset ----------------------------------------------------

#: Thousands of files: the reset that empties /tmp after this run takes a while (tens of ms), so a
#: run right after it finds the container still being reset.
SLOW_TO_RESET = (
    "import os\nfor i in range(40):\n    os.makedirs(f'/tmp/slow/{i}')\n"
    "    for j in range(100):\n        open(f'/tmp/slow/{i}/{j}', 'w').close()\n"
)


@pytest.fixture
def pool_box(executor_image, no_leaks):
    """A sandbox with a warm pool of two, full."""
    sandbox = DockerSandbox(SandboxConfig(image=executor_image, owner=TEST_OWNER))
    sandbox.start_pool(2)
    wait_for_pool(sandbox, 2)
    yield sandbox
    sandbox.close()


def wait_for_pool(sandbox, idle, seconds=60.0):
    end = time.monotonic() + seconds
    while sandbox.pool.status()["idle"] < idle:
        assert time.monotonic() < end, f"the pool never filled: {sandbox.pool.status()}"
        time.sleep(0.02)


def test_a_run_during_its_users_reset_takes_a_pooled_container_that_then_stays_theirs(pool_box):
    box = pool_box
    first = run(box, WHERE + SLOW_TO_RESET)
    a = container_of(first)
    assert box.reuse.status()["resetting"] == 1, (
        "the premise: the first run's container is still being reset"
    )
    # The next run does not wait for that reset: it takes the pool's other container, which ran
    # nothing before (an empty /tmp, no process of the student's uid but its own).
    second = run(box, LOOK_FOR_IT)
    b = container_of(second)
    assert b != a
    assert box.reuse.status()["spares"] == 1
    found = json.loads(second.stdout.splitlines()[1])
    assert found["/tmp"] == [] and found["processes"] == [], found
    # Both are then kept for alice, each reset; hers are never another user's or a grading run's.
    wait_until_kept(box, 2)
    assert container_of(run(box, WHERE, key="bob")) not in (a, b)
    graded = run(box, WHERE + "def f():\n    return 1\n", key=None, checks=(Check(WHERE.strip()),))
    assert graded.status is Status.OK
    assert {container_of(graded), graded.checks[0].stdout.strip()}.isdisjoint({a, b})
    wait_until_kept(box, 3)  # alice's two and bob's one
    assert container_of(run(box, WHERE)) in (a, b)


#: Looks for anything an earlier run could have left in its container, prints it as JSON after
#: the container id, then leaves things behind itself (files, a daemon ignoring signals, shared
#: memory, 1200 files that make the reset take a while).
LOOK_THEN_LEAVE = (
    WHERE
    + r"""
import json, os, subprocess, sys
me = os.getpid()
def uid_of(pid):
    try:
        return int(open("/proc/%s/status" % pid).read().split("Uid:")[1].split()[0])
    except OSError:
        return -1
found = {top: sorted(os.listdir(top)) for top in ("/tmp", "/dev/shm")}
found["processes"] = [p for p in os.listdir("/proc") if p.isdigit() and int(p) != me and uid_of(p) == os.getuid()]
print(json.dumps(found))
open("/tmp/was-here", "w").write("earlier run")
open("/dev/shm/was-here", "wb").write(b"x" * 4096)
subprocess.Popen([sys.executable, "-c", "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(100)"],
                 start_new_session=True)
for i in range(12):
    os.makedirs("/tmp/d/%d" % i)
    for j in range(100):
        open("/tmp/d/%d/%d" % (i, j), "w").close()
"""
)


def test_back_to_back_runs_use_at_most_two_containers_each_reset_before_every_run(pool_box):
    box = pool_box
    seen = []
    for _ in range(12):
        result = run(box, LOOK_THEN_LEAVE)
        seen.append(container_of(result))
        found = json.loads(result.stdout.splitlines()[1])
        assert found == {"/tmp": [], "/dev/shm": [], "processes": []}, (len(seen), found)
    assert len(set(seen)) <= box.reuse.per_key == 2, seen
    assert len(set(seen)) < len(seen), "no container served the user twice"


def test_two_users_running_back_to_back_at_once_never_share_a_container(executor_image, no_leaks):
    box = DockerSandbox(SandboxConfig(image=executor_image, owner=TEST_OWNER))
    try:
        box.start_pool(4)
        wait_for_pool(box, 4)
        seen = {"alice": [], "bob": []}

        def user(key):
            for _ in range(10):
                seen[key].append(container_of(run(box, WHERE + SLOW_TO_RESET, key=key)))

        threads = [threading.Thread(target=user, args=(key,)) for key in seen]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(seen["alice"]) == len(seen["bob"]) == 10
        assert set(seen["alice"]).isdisjoint(seen["bob"]), seen
        assert box.reuse.status()["spares"] >= 1, box.reuse.status()
    finally:
        box.close()


def test_at_its_cap_a_user_waits_for_a_reset_rather_than_take_a_third_container(pool_box):
    box = pool_box
    box.start_pool(3)  # one more pooled container than the cap would ever let the user take
    wait_for_pool(box, 3)
    # Two runs of alice's at once, each in a container of its own; both end at the same moment
    # (the containers share the host's clock), so both are being reset at once.
    end = time.time() + 3
    # (Fewer files than SLOW_TO_RESET: the resets must end within WAIT_FOR_RESET_S.)
    code = (
        WHERE
        + SLOW_TO_RESET.replace("range(40)", "range(8)")
        + f"import time\ntime.sleep(max(0, {end} - time.time()))\n"
    )
    results = []
    threads = [threading.Thread(target=lambda: results.append(run(box, code))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    a, b = (container_of(r) for r in results)
    assert a != b and box.reuse.status()["resetting"] == 2, box.reuse.status()
    # Both of alice's containers are being reset: the next run waits for one of them.
    assert container_of(run(box, WHERE)) in (a, b)
    assert box.reuse.status()["spares"] == 0
    assert box.pool.status()["idle"] >= 1, box.pool.status()


#: A daemon that holds none of the program's output (so the result does not wait for it) and
#: goes on writing files and starting processes after the program's end.
DETACHED_DAEMON = (
    WHERE
    + r'''
import os, subprocess, sys
daemon = """
import os, signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
while True:
    open('/tmp/daemon-%d' % time.monotonic_ns(), 'w').close()
    if os.fork() == 0:
        time.sleep(1000)
    time.sleep(0.001)
"""
subprocess.Popen([sys.executable, "-c", daemon], start_new_session=True, stdin=subprocess.DEVNULL,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print("started")
'''
)


def test_what_a_program_left_running_without_its_output_is_gone_before_the_next_run(box):
    first = run(box, DETACHED_DAEMON)
    assert first.status is Status.OK and first.stdout.splitlines()[1] == "started", first
    wait_until_kept(box)
    after = run(box, LOOK_FOR_IT)
    assert container_of(after) == container_of(first)
    found = json.loads(after.stdout.splitlines()[1])
    assert (found["/tmp"], found["processes"]) == ([], []), found
