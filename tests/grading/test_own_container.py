"""Grading in the student's own reset container, attacked.

A submission may be graded in the container that served its user's earlier runs, after the reset
every kept container gets (every process of the student's uid killed, every writable place and
System V IPC emptied, a fresh process for the code). The claim under attack: nothing a student's
earlier run leaves in that container — files in ``/tmp``, ``/dev/shm`` and ``/dev/mqueue``, a
background process, System V IPC, a module on ``sys.path``, the environment, a pending signal or
alarm — influences the grade, up or down; and no container is ever graded in for another user,
nor kept after a grading.

Each case plants its state in a plain run by the same user, makes sure the grading really ran in
that same container (the sandbox created none for it), and compares the score with the honest one.
"""

from __future__ import annotations

import json

import pytest

from jupyter_exec_ext.grading import Grader, exercise_from_notebook
from jupyter_exec_ext.sandbox import DockerSandbox, ExecutionRequest, Limits, SandboxConfig, Status

from ..conftest import TEST_OWNER
from .notebooks import exercise_notebook

pytestmark = pytest.mark.docker

TESTS = [
    {"name": "square of 3", "test_code": "print(square(3))", "expected_output": "9"},
    {"name": "square of 0", "test_code": "assert square(0) == 0"},
    {"name": "hidden square", "hidden": True, "test_code": "assert square(-7) == 49"},
    {
        "name": "hidden big",
        "hidden": True,
        "test_code": "print(square(12345))",
        "expected_output": "152399025",
    },
]
for _t in TESTS:
    _t["timeout"] = 5
EXERCISE = exercise_from_notebook(
    exercise_notebook(
        "square",
        tests=TESTS,
        solution="def square(x):\n    return x * x\n",
        starter="def square(x):\n    pass\n",
    )
)
RIGHT = "def square(x):\n    return x * x\n"
#: Solves only ``square(0) == 0``: the honest wrong answer's score is 1 of 4.
WRONG = "def square(x):\n    return 0\n"

#: Plants the right answer (or a sign of it) in every channel a later process could read.
PLANT = r'''
import ctypes, os, signal, subprocess, sys, socket, time
RIGHT = "def square(x):\n    return x * x\n"
for s in (signal.SIGUSR2, signal.SIGALRM):  # the daemon below sends them to every process
    signal.signal(s, signal.SIG_IGN)
for path in ("/tmp/planted.py", "/tmp/sitecustomize.py", "/tmp/usercustomize.py", "/tmp/json.py",
             "/dev/shm/planted.py", "/dev/mqueue/planted"):
    try:
        open(path, "w").write(RIGHT)
    except OSError:
        pass
os.makedirs("/tmp/.local/lib/python3/site-packages", exist_ok=True)
open("/tmp/.local/lib/python3/site-packages/planted.pth", "w").write("import planted\n")
open("/tmp/planted.pth", "w").write("import planted\n")
libc = ctypes.CDLL(None, use_errno=True)
shm = libc.shmget(0x5eed, 4096, 0o1666)
assert shm >= 0, ctypes.get_errno()
libc.shmat.restype = ctypes.c_void_p
addr = libc.shmat(shm, None, 0)
ctypes.memmove(addr, RIGHT.encode(), len(RIGHT))
assert libc.msgget(0x5eee, 0o1666) >= 0, ctypes.get_errno()
assert libc.semget(0x5eef, 1, 0o1666) >= 0, ctypes.get_errno()
os.environ["PLANTED"] = RIGHT
os.putenv("PLANTED", RIGHT)
sys.path.insert(0, "/tmp")
sys.modules["planted_in_memory"] = type(sys)("planted_in_memory")
# A daemon in its own session, ignoring what it can, that serves the answer on an abstract socket,
# keeps writing it back, and sends every process it can reach an alarm and a stop.
daemon = """
import os, signal, socket, threading, time
for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGUSR1, signal.SIGALRM):
    signal.signal(s, signal.SIG_IGN)
if os.fork():
    os._exit(0)
os.setsid()
server = socket.socket(socket.AF_UNIX)
server.bind("\\0planted-answer")
server.listen(8)
def serve():
    while True:
        conn, _ = server.accept()
        conn.sendall(b"def square(x):\\n    return x * x\\n")
        conn.close()
threading.Thread(target=serve, daemon=True).start()
me = os.getpid()
while True:
    try:
        open("/tmp/planted.py", "w").write("def square(x):\\n    return x * x\\n")
    except OSError:
        pass
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != me:
            for s in (signal.SIGALRM, signal.SIGUSR2):
                try:
                    os.kill(int(pid), s)
                except OSError:
                    pass
    time.sleep(0.02)
"""
subprocess.Popen([sys.executable, "-c", daemon, "planted-daemon"], start_new_session=True)
# Pending for this process and its children: an alarm, an interval timer, a blocked signal.
signal.signal(signal.SIGUSR1, signal.SIG_DFL)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
os.kill(os.getpid(), signal.SIGUSR1)
signal.setitimer(signal.ITIMER_REAL, 3.0)
deadline = time.monotonic() + 10  # until the daemon serves (its start is slow on a busy machine)
while time.monotonic() < deadline:
    probe = socket.socket(socket.AF_UNIX)
    try:
        probe.connect("\0planted-answer")
        probe.recv(100)
        break
    except OSError:
        time.sleep(0.05)
    finally:
        probe.close()
'''

#: Looks in every channel PLANT uses and prints what it finds as one JSON line, "found": [...].
#: As a submission, it uses the right answer if it finds one anywhere; else it stays wrong.
LOOK = r"""
import ctypes, json, os, signal, socket, sys
def square(x):
    return 0
found = []
def use(where, source):
    global square
    found.append(where)
    scope = {}
    exec(source, scope)
    square = scope.get("square", square)
RIGHT = "def square(x):\n    return x * x\n"
for path in ("/tmp/planted.py", "/tmp/sitecustomize.py", "/tmp/usercustomize.py", "/tmp/json.py",
             "/dev/shm/planted.py", "/dev/mqueue/planted", "/tmp/planted.pth",
             "/tmp/.local/lib/python3/site-packages/planted.pth"):
    if os.path.exists(path):
        use(path, RIGHT)
try:
    import planted
    use("import planted", RIGHT)
except ImportError:
    pass
if "planted_in_memory" in sys.modules or "sitecustomize" in sys.modules and hasattr(
        sys.modules["sitecustomize"], "square"):
    use("sys.modules", RIGHT)
libc = ctypes.CDLL(None, use_errno=True)
for what, get in (("shm", lambda: libc.shmget(0x5eed, 0, 0)), ("msg", lambda: libc.msgget(0x5eee, 0)),
                  ("sem", lambda: libc.semget(0x5eef, 0, 0))):
    if get() >= 0:
        use("sysv " + what, RIGHT)
try:
    s = socket.socket(socket.AF_UNIX)
    s.connect("\0planted-answer")
    use("abstract socket", s.recv(1000).decode())
except OSError:
    pass
if "PLANTED" in os.environ:
    use("environment", os.environ["PLANTED"])
me = os.getpid()
for pid in os.listdir("/proc"):
    try:
        if pid.isdigit() and b"planted-daemon" in open("/proc/%s/cmdline" % pid, "rb").read():
            use("process", RIGHT)
    except OSError:
        pass
if signal.SIGUSR1 in signal.sigpending():
    found.append("pending signal")
if signal.getitimer(signal.ITIMER_REAL)[0] > 0:
    found.append("interval timer")
print(json.dumps({"found": found}))
"""

#: Everything an earlier run can do to sink the grade of a right answer that follows it.
SABOTAGE = r'''
import ctypes, os, signal, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
# A killer that stops and kills every process of its uid (but this one), again and again.
killer = """
import os, signal, sys, time
spare = {os.getpid(), int(sys.argv[1])}
if os.fork():
    os._exit(0)
os.setsid()
spare.add(os.getpid())
while True:
    for pid in os.listdir('/proc'):
        if pid.isdigit() and int(pid) not in spare:
            for s in (signal.SIGSTOP, signal.SIGKILL):
                try:
                    os.kill(int(pid), s)
                except OSError:
                    pass
    time.sleep(0.005)
"""
subprocess.Popen([sys.executable, "-c", killer, str(os.getpid())], start_new_session=True)
# Every writable place full (the data files and the tests' own files need room).
for place in ("/tmp", "/dev/shm"):
    try:
        with open(place + "/filler", "wb") as f:
            while True:
                f.write(b"x" * (1 << 20))
    except OSError:
        pass
# As many System V objects as the table holds.
made = 0
while made < 40000 and libc.msgget(0x10000 + made, 0o1600) >= 0:
    made += 1
# Processes that hold most of the pids limit (the killer takes each in turn; more keep coming).
for _ in range(30):
    try:
        bomb = "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass"
        subprocess.Popen([sys.executable, "-c", bomb], start_new_session=True)
    except OSError:
        break
signal.alarm(2)
signal.signal(signal.SIGALRM, signal.SIG_IGN)
print("sabotaged", made)
'''


@pytest.fixture
def box(executor_image, no_leaks):
    sandbox = DockerSandbox(SandboxConfig(image=executor_image, owner=TEST_OWNER))
    yield sandbox
    sandbox.close()


def plain_run(box, code, key="alice"):
    return box.run(ExecutionRequest(code=code, reuse_key=key, limits=Limits()))


def wait_until_kept(box, count=1, seconds=10.0):
    import time

    end = time.monotonic() + seconds
    while box.reuse.status()["kept"] < count:
        assert time.monotonic() < end, f"no container was kept: {box.reuse.status()}"
        time.sleep(0.01)


def graded_in_kept_container(box, code, user="alice"):
    """Grades ``code`` for ``user``; asserts that it ran in the container kept for them."""
    created, served = box.containers_created, box.reuse.status()["served"]
    result = Grader(box).grade(EXERCISE, code, reveal_hidden=True, user=user)
    assert box.containers_created == created, "the grading did not run in the user's own container"
    assert box.reuse.status()["served"] == served + 1
    return result


def test_the_honest_scores(box):
    assert Grader(box).grade(EXERCISE, RIGHT).score == 4
    assert Grader(box).grade(EXERCISE, WRONG).score == 1


def test_nothing_an_earlier_run_planted_helps_the_grade(box):
    # The looking code finds every planted channel while the planting process is still there …
    planted = plain_run(box, PLANT + LOOK)
    assert planted.status is Status.OK, (planted.message, planted.stderr)
    seen = json.loads(planted.stdout.splitlines()[-1])["found"]
    for channel in (
        "/tmp/planted.py",
        "/dev/shm/planted.py",
        "/dev/mqueue/planted",
        "import planted",
        "sys.modules",
        "sysv shm",
        "sysv msg",
        "sysv sem",
        "abstract socket",
        "environment",
        "process",
        "pending signal",
        "interval timer",
    ):
        assert channel in seen, (channel, seen)
    wait_until_kept(box)
    # … and, as a submission graded in the same container after the reset, finds none of them.
    result = graded_in_kept_container(box, LOOK)
    assert json.loads(result.stdout.splitlines()[-1]) == {"found": []}, result.stdout
    assert result.score == 1, [(t.name, t.status, t.message) for t in result.tests]


def test_nothing_an_earlier_run_left_sinks_a_right_answer(box):
    sabotage = plain_run(box, SABOTAGE)
    assert sabotage.status is Status.OK, (sabotage.message, sabotage.stderr)
    wait_until_kept(box)
    result = graded_in_kept_container(box, RIGHT)
    assert result.status is Status.OK, (result.status, result.message)
    assert result.score == result.max_score == 4, [
        (t.name, t.status, t.message) for t in result.tests
    ]


def test_the_grading_container_is_never_kept_and_never_another_users(box):
    plain_run(box, "print('alice')")
    wait_until_kept(box)
    created = box.containers_created
    # Bob has no container of his own: he is graded in another (a new one), never in Alice's.
    assert Grader(box).grade(EXERCISE, RIGHT, user="bob").score == 4
    assert box.containers_created == created + 1
    assert box.reuse.status()["kept"] == 1
    # Alice's grading takes her container; afterwards nothing is kept for her.
    assert graded_in_kept_container(box, RIGHT).score == 4
    assert box.reuse.status()["kept"] == 0
    plain_run(box, "print('alice again')")
    assert box.containers_created == created + 2


def test_a_grading_without_a_user_never_takes_a_kept_container(box):
    plain_run(box, "print('alice')")
    wait_until_kept(box)
    created = box.containers_created
    assert Grader(box).grade(EXERCISE, RIGHT).score == 4
    assert box.containers_created == created + 1
    assert box.reuse.status()["kept"] == 1


def test_grading_in_own_container_can_be_turned_off(executor_image, no_leaks):
    sandbox = DockerSandbox(
        SandboxConfig(image=executor_image, owner=TEST_OWNER, grade_in_own_container=False)
    )
    try:
        plain_run(sandbox, "print('alice')")
        wait_until_kept(sandbox)
        created = sandbox.containers_created
        assert Grader(sandbox).grade(EXERCISE, RIGHT, user="alice").score == 4
        assert sandbox.containers_created == created + 1
        assert sandbox.reuse.status()["kept"] == 1
    finally:
        sandbox.close()
