"""The hostile cases that matter most, under each OCI runtime the engine offers: runc (the engine's
default) and runsc (gVisor). Every claim of README's "Security model" must hold under both."""

from __future__ import annotations

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
    require(runtime in offered, f"the engine offers no {runtime} runtime (offered: {sorted(offered)}); "
                                "scripts/provision.sh registers runsc under CI=true or JUPYTER_EXEC_EXT_RUNTIME=runsc")
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
    result = run(box, "print('allocating', flush=True)\nx = ' ' * (1024 ** 3)\nprint('done')\n",
                 memory_limit="64m")
    assert result.status is Status.MEMORY_LIMIT, (result.status, result.message)
    assert result.stdout == "allocating\n"


def test_no_network_read_only_root_unprivileged_student(box):
    code = ("import os, socket\n"
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
            "    print('setuid refused')\n")
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
        exercise_notebook(limits={"time_limit": 3, "memory_limit": "96m"}), "add.ipynb")
    grader = Grader(box)
    right = grader.grade(exercise, "def add(a, b):\n    return a + b\n")
    assert (right.status.value, right.score, right.max_score) == ("ok", 4, 4)
    wrong = grader.grade(exercise, "def add(a, b):\n    return 0\n")
    assert {t.name: t.status for t in wrong.tests} == {
        "small numbers": "failed", "negatives": "failed", "big numbers": "failed"}
    assert wrong.score == 0
