"""What comes out the same on the next run: the static check of the code, and which results the
cache may serve again (no Docker: these are pure functions)."""

from __future__ import annotations

import pytest

from jupyter_exec_ext.sandbox import ExecutionResult, Status
from jupyter_exec_ext.sandbox.determinism import nondeterminism_reason, reusable

# -- what may be reused -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code, reason",
    [
        ("import random\nprint(random.random())", "imports 'random'"),
        ("from random import randint\nprint(randint(1, 6))", "imports from 'random'"),
        ("import numpy as np\nprint(np.random.rand())", "uses '.random'"),
        ("import time\nprint(time.time())", "imports 'time'"),
        ("from datetime import datetime\nprint(datetime.now())", "imports from 'datetime'"),
        ("import secrets\nprint(secrets.token_hex())", "imports 'secrets'"),
        ("import uuid\nprint(uuid.uuid4())", "imports 'uuid'"),
        ("import os\nprint(os.urandom(4))", "imports 'os'"),
        ("import os.path\nprint(1)", "imports 'os.path'"),
        ("import threading\nprint(1)", "imports 'threading'"),
        ("print(id([]))", "uses 'id'"),
        ("print(hash('abc'))", "uses 'hash'"),
        ("m = __import__('random')\nprint(m.random())", "uses '__import__'"),
        ("exec('print(1)')", "uses 'exec'"),
        ("print(open('/proc/uptime').read())", "reads '/proc/uptime'"),
        ("print(open('/dev/urandom', 'rb').read(4))", "reads '/dev/urandom'"),
        ("def f(:\n  pass", "the code could not be analysed"),
    ],
)
def test_plainly_nondeterministic_code_is_named(code, reason):
    assert nondeterminism_reason(code) == reason


@pytest.mark.parametrize(
    "code",
    [
        "print('hello')",
        "import math\nprint(math.sqrt(2))",
        "import sys\nfor line in sys.stdin:\n    print(line.upper())",
        "name = input()\nprint(f'hi {name}')",
        "from collections import Counter\nprint(Counter('banana').most_common(1))",
        "with open('/tmp/x', 'w') as f:\n    f.write('1')\nprint(open('/tmp/x').read())",
        "class Clock:\n    def tick(self):\n        return 1\nprint(Clock().tick())",
        "1 / 0",
    ],
)
def test_deterministic_code_is_not_flagged(code):
    assert nondeterminism_reason(code) is None


@pytest.mark.parametrize(
    "result, expected",
    [
        (ExecutionResult(Status.OK, stdout="hi\n", exit_code=0), True),
        (
            ExecutionResult(
                Status.OK,
                exit_code=0,
                message="a process of the program was stopped at the memory limit",
            ),
            False,
        ),
        (ExecutionResult(Status.OK, stdout="x" * 10, exit_code=0, truncated=True), False),
        (ExecutionResult(Status.SYNTAX_ERROR, exit_code=1), True),
        (ExecutionResult(Status.RUNTIME_ERROR, exit_code=1, stderr="ZeroDivisionError"), True),
        (
            ExecutionResult(
                Status.RUNTIME_ERROR, exit_code=-9, message="the program was killed by SIGKILL"
            ),
            False,
        ),
        (ExecutionResult(Status.RUNTIME_ERROR, exit_code=None), False),
        (ExecutionResult(Status.TIMEOUT), False),
        (ExecutionResult(Status.MEMORY_LIMIT), False),
        (ExecutionResult(Status.INTERNAL_ERROR), False),
        (ExecutionResult(Status.OUTPUT_LIMIT, truncated=True), False),
        (ExecutionResult(Status.POLICY_VIOLATION), False),
    ],
)
def test_only_results_that_come_out_the_same_again_are_reusable(result, expected):
    assert reusable(result) is expected


def test_the_top_level_package_decides_however_deep_the_import():
    assert (
        nondeterminism_reason("import concurrent.futures.thread")
        == "imports 'concurrent.futures.thread'"
    )
    assert nondeterminism_reason("from concurrent.futures.process import BrokenProcessPool") == (
        "imports from 'concurrent.futures.process'"
    )
    assert nondeterminism_reason("import json.decoder.scanner") is None


def test_a_volatile_path_is_named_by_its_first_40_characters():
    path = "/proc/self/" + "x" * 60
    assert nondeterminism_reason(f"print(open({path!r}).read())") == f"reads '{path[:40]}'"


def test_a_runtime_error_with_exit_code_zero_is_not_reused():
    # Not an ordinary exit of a failing program: something else decided the status.
    assert reusable(ExecutionResult(Status.RUNTIME_ERROR, exit_code=0)) is False
