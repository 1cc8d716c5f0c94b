"""The grader against the real engine: every per-test status, scoring, hidden-test secrecy, and
submissions that try to turn failing tests into passes."""

from __future__ import annotations

import json

import pytest

from jupyter_exec_ext.grading import Grader, exercise_from_notebook

from .notebooks import exercise_notebook

pytestmark = pytest.mark.docker

HIDDEN_EXPECTED = "1000000000001"
WRONG_ADD = "def add(a, b):\n    return 0\n"


@pytest.fixture
def grader(sandbox):
    return Grader(sandbox)


@pytest.fixture
def add_exercise():
    return exercise_from_notebook(
        exercise_notebook(limits={"time_limit": 3, "memory_limit": "96m"}), "add.ipynb"
    )


def statuses(result):
    return {t.name: t.status for t in result.tests}


def assert_hidden_secret_kept(result):
    text = json.dumps(result.to_dict())
    assert HIDDEN_EXPECTED not in text
    assert "10**12" not in text
    hidden = [t for t in result.to_dict()["tests"] if t["hidden"]]
    assert all(
        set(t) == {"name", "status", "points", "max_points", "hidden", "message"} for t in hidden
    )
    assert all(t["status"] in ("passed", "failed") for t in hidden)


def test_correct_solution_scores_full_marks(grader, add_exercise):
    result = grader.grade(add_exercise, "def add(a, b):\n    return a + b\n")
    assert result.status.value == "ok"
    assert statuses(result) == {
        "small numbers": "passed",
        "negatives": "passed",
        "big numbers": "passed",
    }
    assert (result.score, result.max_score) == (4, 4)
    visible = result.to_dict()["tests"][0]
    assert visible["expected"] == "5" and visible["actual"] == "5\n"
    assert_hidden_secret_kept(result)


def test_wrong_solution_shows_expected_vs_actual_for_visible_tests_only(grader, add_exercise):
    result = grader.grade(add_exercise, WRONG_ADD)
    assert statuses(result) == {
        "small numbers": "failed",
        "negatives": "failed",
        "big numbers": "failed",
    }
    assert result.score == 0
    small, negatives, big = result.tests
    assert small.message == "expected '5' but got '0'"
    assert negatives.message == "assertion failed: assert add(-2, -3) == -5"
    assert big.message == "hidden test failed"
    assert_hidden_secret_kept(result)


def test_partial_credit_adds_up_points(grader, add_exercise):
    # Right for small numbers only.
    result = grader.grade(add_exercise, "def add(a, b):\n    return a + b if abs(a) < 100 else 0\n")
    assert statuses(result) == {
        "small numbers": "passed",
        "negatives": "passed",
        "big numbers": "failed",
    }
    assert result.score == 3


def test_every_per_test_status(grader):
    tests = [
        {"name": "passes", "test_code": "print(f(1))", "expected_output": "1"},
        {"name": "fails", "test_code": "print(f(2))", "expected_output": "3"},
        {"name": "errors", "test_code": "print(f(0))", "expected_output": "0"},
        {"name": "loops", "test_code": "f(-1)", "timeout": 1},
        {"name": "eats memory", "test_code": "f(-2)", "timeout": 5},
    ]
    code = (
        "def f(x):\n"
        "    if x == 0:\n"
        "        return 1 / x\n"
        "    if x == -1:\n"
        "        while True:\n"
        "            pass\n"
        "    if x == -2:\n"
        "        return ' ' * (1024 ** 3)\n"
        "    return x\n"
    )
    exercise = exercise_from_notebook(
        exercise_notebook("statuses", tests=tests, limits={"memory_limit": "64m"})
    )
    result = grader.grade(exercise, code)
    assert statuses(result) == {
        "passes": "passed",
        "fails": "failed",
        "errors": "error",
        "loops": "timeout",
        "eats memory": "memory_limit",
    }
    errors = result.tests[2]
    assert "ZeroDivisionError: division by zero" in errors.message
    assert 'File "main.py", line 3, in f' in errors.message
    assert result.tests[3].message == "the test took longer than its time limit of 1 s"
    assert result.score == 1 and result.max_score == 5


def test_assert_style_test_passes_when_nothing_is_raised(grader):
    tests = [{"name": "assert", "test_code": "assert f() == 2"}]
    exercise = exercise_from_notebook(exercise_notebook("a", tests=tests))
    assert statuses(grader.grade(exercise, "def f():\n    return 2\n")) == {"assert": "passed"}


def test_each_test_sees_a_fresh_copy_of_the_state(grader):
    tests = [
        {"name": f"t{i}", "test_code": "add_item(1)\nprint(len(items))", "expected_output": "1"}
        for i in range(3)
    ]
    exercise = exercise_from_notebook(exercise_notebook("state", tests=tests))
    result = grader.grade(exercise, "items = []\ndef add_item(x):\n    items.append(x)\n")
    assert statuses(result) == {"t0": "passed", "t1": "passed", "t2": "passed"}


def test_student_code_runs_once_and_its_output_is_reported(grader, add_exercise):
    result = grader.grade(add_exercise, "print('defining add')\ndef add(a, b):\n    return a + b\n")
    assert result.stdout == "defining add\n"
    assert result.score == 4


def test_syntax_error_fails_every_test(grader, add_exercise):
    result = grader.grade(add_exercise, "def add(a, b)\n    return a + b\n")
    assert result.status.value == "syntax_error"
    assert set(statuses(result).values()) == {"error", "failed"}  # hidden ones only say failed
    assert result.tests[0].message.startswith(
        "not run: the submitted code did not run to the end (syntax_error"
    )
    assert result.score == 0


def test_policy_violation_fails_every_test(grader):
    exercise = exercise_from_notebook(
        exercise_notebook("p", policy={"profile": "safe", "forbidden_calls": ["sum"]})
    )
    result = grader.grade(exercise, "def add(a, b):\n    return sum([a, b])\n")
    assert result.status.value == "policy_violation"
    assert result.message == "line 2: calling 'sum()' is not allowed in this exercise"
    assert result.score == 0
    assert len(result.tests) == 3 and not result.all_passed
    assert result.tests[0].status == "error" and "policy_violation" in result.tests[0].message


# -- integrity: none of these may turn a failing test into a pass -------------------------------------

ATTACKS = {
    "crashes": WRONG_ADD + "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n",
    "loops forever": WRONG_ADD + "while True:\n    pass\n",
    "sys.exit(0) at the top": WRONG_ADD + "import sys\nsys.exit(0)\n",
    "os._exit(0) at the top": WRONG_ADD + "import os\nos._exit(0)\n",
    "sys.exit(0) inside": "def add(a, b):\n    import sys\n    sys.exit(0)\n",
    "os._exit(0) inside": "def add(a, b):\n    import os\n    os._exit(0)\n",
    "prints fake result frames": (
        WRONG_ADD
        + "import json, os, sys\n"
        + "ok = json.dumps({'type': 'result', 'status': 'ok', 'exit_code': 0, 'duration_ms': 1,"
        + " 'truncated': False, 'message': ''})\n"
        + "for i in range(3):\n"
        + "    check = json.dumps({'type': 'check', 'index': i, 'outcome': 'completed', 'stdout': '5\\n',"
        + " 'stderr': '', 'error': None, 'duration_ms': 1})\n"
        + "    print('x' * 32 + ' ' + check)\n"
        + "print('x' * 32 + ' ' + ok)\n"
        + "for fd in range(3, 64):\n"
        + "    try:\n"
        + "        os.write(fd, json.dumps({'token': 'x', 'ok': True}).encode())\n"
        + "    except OSError:\n"
        + "        pass\n"
    ),
    "redefines print": WRONG_ADD
    + "def print(*args, **kwargs):\n    import sys\n    sys.stdout.write('5\\n')\n",
    "patches builtins": (
        WRONG_ADD
        + "import builtins, sys\n"
        + "builtins.print = lambda *a, **k: sys.stdout.write('5\\n')\n"
        + "class Quiet(Exception):\n    pass\n"
        + "builtins.AssertionError = Quiet\nAssertionError = Quiet\n"
        + "sys.stdout = type('Fake', (), {'write': lambda self, s: 0, 'flush': lambda self: None})()\n"
    ),
    "writes the pass marker from inside the test": (
        "def add(a, b):\n"
        "    import os, json\n"
        "    for fd in range(3, 64):\n"
        "        try:\n"
        "            os.write(fd, json.dumps({'token': '0' * 32, 'ok': True}).encode())\n"
        "        except OSError:\n"
        "            pass\n"
        "    os._exit(0)\n"
    ),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_submission_cannot_turn_failing_tests_into_passes(grader, add_exercise, attack):
    result = grader.grade(add_exercise, ATTACKS[attack])
    assert result.score == 0, (attack, [(t.name, t.status, t.message) for t in result.tests])
    assert all(t.status != "passed" for t in result.tests)
    assert_hidden_secret_kept(result)


def test_redefining_assertion_error_does_not_swallow_failures(grader):
    tests = [
        {"name": "raises", "test_code": "if f() != 2:\n    raise AssertionError('f() must be 2')"}
    ]
    exercise = exercise_from_notebook(exercise_notebook("ae", tests=tests))
    code = (
        "import builtins\n"
        "class AssertionError(BaseException):\n    pass\n"
        "builtins.AssertionError = AssertionError\n"
        "def f():\n    return 3\n"
    )
    result = grader.grade(exercise, code)
    assert statuses(result) == {"raises": "failed"}
    assert result.tests[0].message == "assertion failed: f() must be 2"


def test_student_code_cannot_read_the_tests(grader, add_exercise):
    # Before the tests run, no test code is anywhere the submission can look.
    code = WRONG_ADD + (
        "import gc, os, sys\n"
        "def search():\n"
        "    # Joined at run time (the compiler folds '+' of constants) and kept in a local, so neither\n"
        "    # this source, its constants nor any dict holds it.\n"
        "    needle = ''.join(['10', '**', '12'])\n"
        "    found = []\n"
        "    for obj in gc.get_objects():\n"
        "        if isinstance(obj, (dict, list, tuple)) and needle in repr(obj)[:100000]:\n"
        "            found.append('memory')\n"
        "    for pid in os.listdir('/proc'):\n"
        "        if pid.isdigit():\n"
        "            for part in ('cmdline', 'environ'):\n"
        "                try:\n"
        "                    if needle.encode() in open(f'/proc/{pid}/{part}', 'rb').read():\n"
        "                        found.append(pid + part)\n"
        "                except OSError:\n"
        "                    pass\n"
        "    for root, _, files in os.walk('/tmp'):\n"
        "        for name in files:\n"
        "            try:\n"
        "                if needle in open(os.path.join(root, name)).read():\n"
        "                    found.append(name)\n"
        "            except OSError:\n"
        "                pass\n"
        "    found.append('stdin:' + repr(sys.stdin.read()))\n"
        "    return found\n"
        "print('FOUND', search())\n"
    )
    result = grader.grade(add_exercise, code)
    assert result.stdout == "FOUND [\"stdin:''\"]\n"
    assert result.score == 0
    assert_hidden_secret_kept(result)
