"""The trusted harness against the real engine: what a test's code can do with the student's program
(call functions, use objects of their classes, catch their exceptions, print) now that it runs in
a process of its own, and what it sees of the program's output."""

from __future__ import annotations

import pytest

from jupyter_exec_ext.sandbox import Check, CheckOutcome, ExecutionRequest, Limits

pytestmark = pytest.mark.docker

PROGRAM = """
import math
from collections import Counter, namedtuple

class AgeError(ValueError):
    pass

def parse_age(x):
    if x < 0:
        raise AgeError(f"bad age {x}")
    return x

def divide(a, b):
    return a / b

def squares(n):
    for i in range(n):
        yield i * i

def sort_in_place(xs):
    xs.sort()
    return xs

def shout(text):
    print(text.upper())
    return len(text)

def word_counts(text):
    return Counter(text.split())

Point = namedtuple("Point", "x y")

class Stack:
    def __init__(self):
        self.items = []
    def push(self, x):
        self.items.append(x)
    def pop(self):
        return self.items.pop()
    def __len__(self):
        return len(self.items)
    def __str__(self):
        return f"Stack{self.items}"

class Money:
    def __init__(self, cents):
        self.cents = cents
    def __eq__(self, other):
        return True
    def __sub__(self, other):
        return self
    def __abs__(self):
        return 0

LIMIT = 150
print("the program ran")
"""

CASES = {
    "exception class of the program": (
        "try:\n    parse_age(-1)\nexcept AgeError as e:\n    print('caught', e, isinstance(e, ValueError))\n",
        "completed",
        "caught bad age -1 True\n",
    ),
    "builtin exception": (
        "try:\n    divide(1, 0)\nexcept ZeroDivisionError as e:\n    print('caught', e)\n",
        "completed",
        "caught division by zero\n",
    ),
    "generator": ("print(list(squares(4)), sum(squares(3)))\n", "completed", "[0, 1, 4, 9] 5\n"),
    "argument changed in place": (
        "nums = [3, 1, 2]\nr = sort_in_place(nums)\nprint(nums, r is nums)\n",
        "completed",
        "[1, 2, 3] True\n",
    ),
    "the program's own output": ("n = shout('hi')\nprint(n)\n", "completed", "HI\n2\n"),
    "standard library values": (
        "print(word_counts('a b a') == {'a': 2, 'b': 1}, type(word_counts('')))\n",
        "completed",
        "True <class 'dict'>\n",
    ),
    "object of the program's class": (
        "s = Stack()\ns.push(1)\ns.push(2)\nprint(s.pop(), len(s), s, isinstance(s, Stack), type(s) is Stack)\n",
        "completed",
        "2 1 Stack[1] True True\n",
    ),
    "plain data of the program": ("print(LIMIT, math.sqrt(16))\n", "completed", "150 4.0\n"),
    "namedtuple of the program": (
        "p = Point(1, 2)\nprint(p.x + p.y, p)\n",
        "completed",
        "3 Point(x=1, y=2)\n",
    ),
    "the program's __eq__ never decides": (
        "m = Money(5)\nprint(m == Money(5), m == m)\n",
        "completed",
        "False True\n",
    ),
}


@pytest.fixture(scope="module")
def ran(executor_image):
    from jupyter_exec_ext.sandbox import DockerSandbox, SandboxConfig

    from ..conftest import TEST_OWNER

    box = DockerSandbox(SandboxConfig(image=executor_image, owner=TEST_OWNER))
    try:
        result = box.run(
            ExecutionRequest(
                code=PROGRAM,
                checks=tuple(Check(code, timeout_s=5) for code, _, _ in CASES.values()),
            )
        )
    finally:
        box.close()
    return result


@pytest.mark.parametrize("name", list(CASES))
def test_what_a_test_can_do_with_the_program(ran, name):
    index = list(CASES).index(name)
    check = ran.checks[index]
    _, outcome, stdout = CASES[name]
    assert (check.outcome.value, check.stdout) == (outcome, stdout), check


def test_the_program_runs_once_for_the_answer_and_its_output_is_not_a_tests(ran):
    assert ran.status.value == "ok"
    assert ran.stdout == "the program ran\n"
    assert all("the program ran" not in c.stdout for c in ran.checks)


def run_checks(sandbox, program, *checks):
    return sandbox.run(
        ExecutionRequest(code=program, checks=tuple(Check(c, timeout_s=5) for c in checks))
    )


def test_an_error_in_the_program_shows_its_line_not_the_harness(sandbox):
    result = run_checks(sandbox, "def f(x):\n    return x[10]\n", "f([1, 2])\n")
    check = result.checks[0]
    assert check.outcome is CheckOutcome.RAISED
    text = check.error["traceback"]
    assert 'File "test", line 1' in text and 'File "main.py", line 2, in f' in text
    assert text.rstrip().endswith("IndexError: list index out of range")
    assert "harness" not in text and "student.py" not in text and "/opt/" not in text


def test_operators_on_the_programs_objects_are_refused_with_a_message(sandbox):
    result = run_checks(
        sandbox,
        "class Money:\n    def __sub__(self, o):\n        return 0\n",
        "abs(Money() - 2) < 1e-9\n",
    )
    check = result.checks[0]
    assert check.outcome is CheckOutcome.RAISED
    assert check.error["type"] == "TypeError"


def test_sys_exit_in_a_call_ends_the_test_and_except_cannot_hide_it(sandbox):
    result = run_checks(
        sandbox,
        "import sys\ndef f():\n    sys.exit(0)\ndef g():\n    return 1\n",
        "try:\n    f()\nexcept BaseException:\n    pass\nprint('went on')\n",
        "try:\n    f()\nexcept BaseException:\n    pass\nprint(g())\n",
    )
    # Whatever the test's code catches, a test whose program ended is not completed, and the
    # program is not asked anything more in it.
    assert [c.outcome for c in result.checks] == [CheckOutcome.EXITED, CheckOutcome.EXITED]
    assert result.checks[1].stdout == ""


def test_a_name_the_program_does_not_define_is_a_name_error(sandbox):
    result = run_checks(sandbox, "x = 1\n", "print(y)\n")
    assert result.checks[0].error["type"] == "NameError"
    assert "name 'y' is not defined" in result.checks[0].error["message"]


def test_builtins_in_a_test_are_the_real_ones_whatever_the_program_defines(sandbox):
    program = "def sorted(x):\n    return [42]\ndef print(*a, **k):\n    pass\nlen = lambda x: 7\n"
    result = run_checks(sandbox, program, "print(sorted([2, 1]), len('ab'))\n")
    assert result.checks[0].stdout == "[1, 2] 2\n"


def test_a_test_that_runs_out_of_time_does_not_stop_the_next(sandbox):
    program = "def spin():\n    while True:\n        pass\ndef ok():\n    return 1\n"
    result = sandbox.run(
        ExecutionRequest(
            code=program, checks=(Check("spin()", timeout_s=1), Check("print(ok())", timeout_s=5))
        )
    )
    assert [c.outcome for c in result.checks] == [CheckOutcome.TIMEOUT, CheckOutcome.COMPLETED]
    assert result.checks[1].stdout == "1\n"


def test_nothing_one_test_leaves_reaches_the_next(sandbox):
    program = (
        "import os, subprocess, sys, time\n"
        "def plant(secret):\n"
        "    open('/tmp/seen', 'w').write(secret)\n"
        "    open('/dev/shm/seen', 'w').write(secret)\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        while True:\n"
        "            time.sleep(0.01)\n"
        "    return 'planted'\n"
        "def look():\n"
        "    found = [p for p in ('/tmp/seen', '/dev/shm/seen') if os.path.exists(p)]\n"
        "    mine = [p for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()\n"
        "            and open(f'/proc/{p}/status').read().split('Uid:')[1].split()[0] == str(os.getuid())]\n"
        "    return found, len(mine)\n"
    )
    result = run_checks(sandbox, program, "print(plant('HIDDEN-5c1'))\n", "print(look())\n")
    assert result.checks[0].stdout == "planted\n"
    assert result.checks[1].stdout == "([], 0)\n"


def test_a_test_whose_own_code_ends_the_harness_does_not_stop_the_next(sandbox):
    program = "def ok():\n    return 1\n"
    result = run_checks(sandbox, program, "import os\nos._exit(0)\n", "print(ok())\n")
    assert result.checks[0].outcome is CheckOutcome.EXITED
    assert (result.checks[1].outcome, result.checks[1].stdout) == (CheckOutcome.COMPLETED, "1\n")


def test_tests_whose_own_code_uses_much_cpu_do_not_run_the_harness_out_of_its_cpu_limit(sandbox):
    # Each test's own code (in the harness) uses 0.8 s of CPU; the CPU limit of every process in
    # a container with a 1 s time limit is 2 s. One harness for all four would be killed in the
    # third; a fresh one takes over once half is used.
    burn = (
        "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.8:\n    pass\n"
        "print(add(1, 2))\n"
    )
    result = sandbox.run(
        ExecutionRequest(
            code="def add(a, b):\n    return a + b\n",
            limits=Limits(time_s=1),
            checks=tuple(Check(burn, timeout_s=10) for _ in range(4)),
        )
    )
    assert [(c.outcome, c.stdout) for c in result.checks] == [(CheckOutcome.COMPLETED, "3\n")] * 4


def test_a_malformed_answer_is_never_an_exception_the_test_can_catch(sandbox):
    # The program rewrites its side of the protocol to send an exception class whose name the
    # harness cannot use; a test catching Exception must not turn that into a pass.
    program = (
        "import sys\n"
        "Server = sys.modules['student'].Server\n"
        "original = Server.class_ref\n"
        "def class_ref(self, cls, depth=0):\n"
        "    ref = original(self, cls, depth)\n"
        "    return dict(ref, name='bad\\x00name') if ref.get('exc') else ref\n"
        "Server.class_ref = class_ref\n"
        "class Odd(Exception):\n"
        "    pass\n"
        "def boom():\n"
        "    raise Odd()\n"
    )
    result = run_checks(
        sandbox, program, "try:\n    boom()\nexcept Exception:\n    print('caught')\n"
    )
    assert result.checks[0].outcome is CheckOutcome.PROTOCOL_ERROR, result.checks[0]


def test_the_program_cannot_hand_the_test_the_harnesss_own_os_module(sandbox):
    # Which of the harness's objects the test then calls must not be the program's choice.
    program = "import os, math\ndef give_os():\n    return os\ndef give_math():\n    return math\n"
    result = run_checks(
        sandbox, program, "import os, math\nprint(give_os() is os, give_math() is math)\n"
    )
    assert result.checks[0].stdout == "False True\n", result.checks[0]


# -- what one test's process starts from, and what it cannot leave to the next -----------------------

POISON = r'''
import builtins, gc, math, os, resource, signal, sys

COUNT = 0
SECRET = None

def poison(secret):
    """Everything a test's process can change about itself and the container, then a secret kept
    in each of those places: a later test that finds any of it learned something it must not."""
    global COUNT, SECRET
    COUNT += 1
    SECRET = secret
    builtins.abs = lambda x: 999
    builtins.SECRET = secret
    fake = type(sys)("math")
    fake.pi = 3.0
    sys.modules["math"] = fake
    sys.modules["stash"] = type(sys)("stash")
    sys.modules["stash"].secret = secret
    sys.setrecursionlimit(150)
    gc.disable()
    os.environ["STASH"] = secret
    os.umask(0o777)
    os.chdir("/dev/shm")
    open("/tmp/stash", "w").write(secret)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, lambda *_: None)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGALRM})
    signal.setitimer(signal.ITIMER_REAL, 0.2)    # would end the next test's process if it carried over
    resource.setrlimit(resource.RLIMIT_NOFILE, (20, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    return "poisoned"

def observe():
    """What this test's process finds: the values of a process nothing ran in before."""
    import math as m
    try:
        stash = open("/tmp/stash").read()
    except OSError:
        stash = None
    return {
        "count": COUNT, "secret": SECRET, "abs": abs(-2), "builtins_secret": hasattr(builtins, "SECRET"),
        "math_pi": m.pi == math.pi == 3.141592653589793, "stash_module": "stash" in sys.modules,
        "recursion": sys.getrecursionlimit(), "gc": gc.isenabled(), "env": os.environ.get("STASH"),
        "umask": os.umask(0o022), "cwd": os.getcwd(), "file": stash,
        "sigterm": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
        "sigusr1": signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL,
        "blocked": sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])),
        "timer": signal.getitimer(signal.ITIMER_REAL)[0] == 0.0,
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0] > 20,
    }
'''

PRISTINE = {
    "count": 0,
    "secret": None,
    "abs": 2,
    "builtins_secret": False,
    "math_pi": True,
    "stash_module": False,
    "recursion": 1000,
    "gc": True,
    "env": None,
    "umask": 0o022,
    "cwd": "/tmp",
    "file": None,
    "sigterm": True,
    "sigusr1": True,
    "blocked": [],
    "timer": True,
    "nofile": True,
}


def test_a_test_that_poisons_its_process_and_the_container_cannot_reach_the_next(sandbox):
    # The second test runs right after the first poisoned everything it could (globals, builtins,
    # sys.modules, signals, the signal mask, a pending timer, limits, umask, cwd, environment,
    # files): it finds a process as fresh as the first test's own, without the secret anywhere.
    observe = "import json\nprint(json.dumps(dict(observe()), sort_keys=True))\n"
    result = run_checks(
        sandbox,
        POISON,
        observe,
        "print(poison('HIDDEN-9f2'))\n",
        observe,
        "print(poison('HIDDEN-9f3'))\nprint(observe()['count'])\n",
        observe,
    )
    import json

    assert [c.outcome for c in result.checks] == [CheckOutcome.COMPLETED] * 5, result.checks
    assert json.loads(result.checks[0].stdout) == PRISTINE
    assert result.checks[1].stdout == "poisoned\n"
    # The poisoning took effect in its own test (count 1 there), and nowhere after it.
    assert result.checks[3].stdout == "poisoned\n1\n"
    for later in (result.checks[2], result.checks[4]):
        assert json.loads(later.stdout) == PRISTINE, later.stdout
        assert "HIDDEN" not in later.stdout


def test_a_tests_process_is_a_lean_fork(sandbox):
    # What each test's process starts with, as cheap as it can be (docs/internals.md, "What one
    # more test costs"): threading is not loaded (with it, every fork runs its at-fork hook), the
    # SIGCHLD handler of the zygote is gone, and it is still first in line for the OOM killer.
    program = (
        "import os, signal, sys\n"
        "STATE = ('threading' in sys.modules, signal.getsignal(signal.SIGCHLD) == signal.SIG_DFL,\n"
        "         signal.set_wakeup_fd(-1), open('/proc/self/oom_score_adj').read().strip(),\n"
        "         os.getuid())\n"
    )
    result = run_checks(sandbox, program, "print(STATE)\n", "print(STATE)\n")
    assert [c.stdout for c in result.checks] == ["(False, True, -1, '1000', 10001)\n"] * 2, (
        result.checks
    )


def test_checks_done_before_a_grading_the_host_gives_up_on_are_still_reported(
    executor_image, no_leaks, docker_client
):
    # The runner sends check frames with the result, or 0.25 s after its last write at the latest:
    # when the host's deadline ends a grading (here: the runner is frozen from outside during the
    # third test), the tests done until shortly before still have their outcome.
    import signal
    import threading
    import time

    from jupyter_exec_ext.sandbox import DockerSandbox, SandboxConfig, Status

    from ..conftest import TEST_OWNER, our_containers, signal_runner

    box = DockerSandbox(SandboxConfig(image=executor_image, owner=TEST_OWNER, startup_grace_s=2))
    frozen = threading.Event()

    def freeze_during_the_third_test():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for c in our_containers(docker_client):
                if c["State"] != "running":
                    continue
                probe = docker_client.api.exec_create(
                    c["Id"], ["test", "-e", "/tmp/third-started"], user="0:0"
                )
                docker_client.api.exec_start(probe)
                if docker_client.api.exec_inspect(probe)["ExitCode"] == 0:
                    signal_runner(docker_client, c["Id"], signal.SIGSTOP)
                    frozen.set()
                    return
            time.sleep(0.05)

    thread = threading.Thread(target=freeze_during_the_third_test)
    thread.start()
    try:
        result = box.run(
            ExecutionRequest(
                code="def add(a, b):\n    return a + b\n",
                limits=Limits(time_s=1),
                checks=(
                    Check("print(add(1, 1))", timeout_s=1),
                    Check("import time\ntime.sleep(0.5)\nprint(add(2, 2))", timeout_s=1),
                    Check(
                        "open('/tmp/third-started', 'w').close()\nimport time\ntime.sleep(30)\n",
                        timeout_s=5,
                    ),
                ),
            )
        )
    finally:
        thread.join()
        box.close()
    assert frozen.is_set()
    assert result.status is Status.TIMEOUT, result
    assert [(c.outcome, c.stdout) for c in result.checks] == [
        (CheckOutcome.COMPLETED, "2\n"),
        (CheckOutcome.COMPLETED, "4\n"),
        (CheckOutcome.NOT_RUN, ""),
    ]
