"""The sandbox against the real Docker engine: every status, every limit, and attacks on each claim."""

from __future__ import annotations

import json
import signal
import threading
import time

import docker
import pytest

from jupyter_exec_ext.sandbox import (
    LABEL,
    PROFILES,
    DockerSandbox,
    DockerUnavailableError,
    ExecutionRequest,
    ExecutorImageMissingError,
    Limits,
    SandboxConfig,
    SandboxUnavailableError,
    Status,
)
from jupyter_exec_ext.sandbox.config import EXPIRES_LABEL, OWNER_LABEL

from ..conftest import TEST_OWNER, our_containers, signal_runner_once_running

pytestmark = pytest.mark.docker


def run(sandbox, code, stdin="", **limits):
    return sandbox.run(ExecutionRequest(code=code, stdin=stdin, limits=Limits.from_mapping(limits)))


# -- ordinary runs ---------------------------------------------------------------------------------


def test_hello_world(sandbox):
    result = run(sandbox, 'print("hello, world")')
    assert result.status is Status.OK
    assert result.stdout == "hello, world\n"
    assert result.stderr == ""
    assert result.exit_code == 0
    assert result.truncated is False
    assert result.duration_ms >= 0
    assert result.limits == Limits()


def test_stdin_is_echoed(sandbox):
    code = "import sys\nfor line in sys.stdin:\n    print(line.strip().upper())\n"
    result = run(sandbox, code, stdin="first\nsecond\n")
    assert result.status is Status.OK
    assert result.stdout == "FIRST\nSECOND\n"


def test_input_without_stdin_is_eof(sandbox):
    result = run(sandbox, "input()")
    assert result.status is Status.RUNTIME_ERROR
    assert "EOFError" in result.stderr


def test_syntax_error(sandbox):
    result = run(sandbox, "def f(:\n    pass\n")
    assert result.status is Status.SYNTAX_ERROR
    assert 'File "main.py", line 1' in result.stderr
    assert "SyntaxError" in result.stderr
    assert result.stdout == ""


def test_runtime_error_shows_the_students_traceback_only(sandbox):
    result = run(sandbox, "print('before')\ndef f(x):\n    return 1 / x\n\nf(0)\n")
    assert result.status is Status.RUNTIME_ERROR
    assert result.exit_code == 1
    assert result.stdout == "before\n"
    assert 'File "main.py", line 5, in <module>' in result.stderr
    assert 'File "main.py", line 3, in f' in result.stderr
    assert "return 1 / x" in result.stderr
    assert result.stderr.rstrip().endswith("ZeroDivisionError: division by zero")
    assert "runner" not in result.stderr and "<string>" not in result.stderr


def test_exit_codes(sandbox):
    assert run(sandbox, "import sys\nsys.exit(0)").status is Status.OK
    failed = run(sandbox, "import sys\nsys.exit(3)")
    assert (failed.status, failed.exit_code) == (Status.RUNTIME_ERROR, 3)


def test_stdout_and_stderr_are_separate_and_unicode_survives(sandbox):
    code = (
        "import sys\nprint('héllo ✓')\nprint('warn', file=sys.stderr)\n"
        "sys.stdout.flush()\nsys.stdout.buffer.write(b'bad \\xff byte\\n')\n"
    )
    result = run(sandbox, code)
    assert result.status is Status.OK
    assert result.stdout == "héllo ✓\nbad \ufffd byte\n"
    assert result.stderr == "warn\n"


def test_main_module_behaves_like_a_script(sandbox):
    code = "import sys\nprint(__name__, __file__, sys.argv)\nimport __main__\nprint(__main__.__file__)\n"
    result = run(sandbox, code)
    assert result.stdout == "__main__ main.py ['main.py']\nmain.py\n"


# -- limits ------------------------------------------------------------------------------------------


def test_endless_loop_times_out_keeping_earlier_output(sandbox):
    result = run(sandbox, "print('started', flush=True)\nwhile True:\n    pass\n", time_limit=2)
    assert result.status is Status.TIMEOUT
    assert result.stdout == "started\n"
    assert "time limit of 2 s exceeded" in result.message
    assert 1900 <= result.duration_ms < 10000


def test_output_is_kept_even_without_flush(sandbox):
    # print() without flush=True must not be lost when the loop is killed.
    result = run(
        sandbox, "print('partial')\nimport time\nwhile True:\n    time.sleep(0.01)\n", time_limit=1
    )
    assert (result.status, result.stdout) == (Status.TIMEOUT, "partial\n")


def test_closing_stdout_does_not_escape_the_time_limit(sandbox):
    code = "import os\nprint('x', flush=True)\nos.close(1)\nos.close(2)\nwhile True:\n    pass\n"
    result = run(sandbox, code, time_limit=1)
    assert result.status is Status.TIMEOUT
    assert result.stdout == "x\n"


def test_the_program_cannot_stop_the_runner_or_its_helpers(sandbox):
    # Its parent (the zygote), the runner and PID 1 run as uid 0: no signal of the student's reaches them.
    code = (
        "import os, signal\n"
        "for pid in sorted(int(p) for p in os.listdir('/proc') if p.isdigit()):\n"
        "    if pid == os.getpid():\n"
        "        continue\n"
        "    try:\n"
        "        os.kill(pid, signal.SIGSTOP)\n"
        "        print(pid, 'stopped')\n"
        "    except OSError as e:\n"
        "        print(pid, type(e).__name__)\n"
        "print('still running')\n"
    )
    result = run(sandbox, code)
    assert result.status is Status.OK, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "still running"
    assert len(lines) >= 4 and all(line.endswith("PermissionError") for line in lines[:-1]), lines


def test_host_timeout_kills_a_frozen_runner_and_keeps_partial_output(
    executor_image, no_leaks, docker_client
):
    # The runner is frozen from outside (the program itself cannot), so only the host-side
    # deadline can end the run.
    box = DockerSandbox(SandboxConfig(image=executor_image, owner=TEST_OWNER, startup_grace_s=2))
    code = (
        "import time\nprint('before the freeze', flush=True)\nwhile True:\n    time.sleep(0.05)\n"
    )

    try:
        started = time.monotonic()
        freezer = signal_runner_once_running(docker_client, signal.SIGSTOP)
        result = run(box, code, time_limit=1.5)
        waited = time.monotonic() - started
    finally:
        freezer.join()
        box.close()
    assert result.status is Status.TIMEOUT
    assert result.stdout == "before the freeze\n"
    assert "the sandbox was stopped" in result.message
    assert waited < 10


def test_memory_bomb_is_memory_limit(sandbox):
    result = run(
        sandbox,
        "print('allocating', flush=True)\nx = ' ' * (1024 ** 3)\nprint('done')\n",
        memory_limit="64m",
    )
    assert result.status is Status.MEMORY_LIMIT
    assert result.stdout == "allocating\n"
    assert "memory limit of 64 MiB exceeded" in result.message


#: Forks until refused, says how many it made, then spins (shared with test_runtimes.py).
FORK_BOMB = (
    "import os\n"
    "children = 0\n"
    "try:\n"
    "    while True:\n"
    "        if os.fork() == 0:\n"
    "            while True: pass\n"
    "        children += 1\n"
    "except OSError as e:\n"
    "    print('fork refused after', children, 'children:', e.strerror, flush=True)\n"
    "while True: pass\n"
)


def test_fork_bomb_is_contained_and_the_next_run_works(sandbox):
    result = run(sandbox, FORK_BOMB, time_limit=3)
    assert result.status is Status.TIMEOUT
    assert "fork refused after" in result.stdout
    children = int(result.stdout.split("after ")[1].split(" ")[0])
    assert children < 50  # the pids limit (50) counts the runner and init too
    assert run(sandbox, "print('still fine')").stdout == "still fine\n"


def test_printing_100_mb_is_output_limit_with_output_within_the_cap(sandbox):
    code = "import sys\nchunk = 'x' * 1023 + '\\n'\nfor _ in range(100 * 1024):\n    sys.stdout.write(chunk)\n"
    result = run(sandbox, code, time_limit=20)
    cap = sandbox.config.output_limit_bytes
    assert result.status is Status.OUTPUT_LIMIT
    assert result.truncated is True
    assert 0 < len(result.stdout.encode()) <= cap
    assert result.stdout.startswith("x" * 1023 + "\n")
    assert "output limit" in result.message


def test_stderr_has_its_own_cap(sandbox):
    code = "import sys\nfor _ in range(4096):\n    sys.stderr.write('e' * 1024)\n"
    result = run(sandbox, code)
    assert result.status is Status.OUTPUT_LIMIT
    assert 0 < len(result.stderr.encode()) <= sandbox.config.output_limit_bytes


def test_limits_are_applied_inside_the_container(sandbox):
    code = (
        "import os, resource\n"
        "print('nofile', resource.getrlimit(resource.RLIMIT_NOFILE))\n"
        "print('core', resource.getrlimit(resource.RLIMIT_CORE))\n"
        "print('fsize', resource.getrlimit(resource.RLIMIT_FSIZE))\n"
        "print('cpu', resource.getrlimit(resource.RLIMIT_CPU))\n"
        "def read(*paths):\n"
        "    for p in paths:\n"
        "        try:\n"
        "            return open(p).read().strip()\n"
        "        except OSError:\n"
        "            pass\n"
        "print('mem', read('/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes'))\n"
        "print('pids', read('/sys/fs/cgroup/pids.max', '/sys/fs/cgroup/pids/pids.max'))\n"
        "print('quota', read('/sys/fs/cgroup/cpu.max', '/sys/fs/cgroup/cpu/cpu.cfs_quota_us'))\n"
    )
    result = run(sandbox, code, memory_limit="128m", time_limit=5)
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert lines["nofile"] == "(1024, 1024)"
    assert lines["core"] == "(0, 0)"
    assert lines["fsize"] == f"({64 * 1024 * 1024}, {64 * 1024 * 1024})"
    assert lines["cpu"] == "(6, 7)"
    assert lines["mem"] == str(128 * 1024 * 1024)
    assert lines["pids"] == "50"
    assert lines["quota"].split()[0] == "50000"  # 0.5 CPU of a 100000 us period


# -- isolation -------------------------------------------------------------------------------------


def test_network_is_off(sandbox):
    code = (
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('1.1.1.1', 53), timeout=3)\n"
        "    print('connected')\n"
        "except OSError as e:\n"
        "    print('refused', e.errno)\n"
        "print(sorted(name for _, name in socket.if_nameindex()))\n"
    )
    result = run(sandbox, code)
    assert result.status is Status.OK
    assert result.stdout.splitlines()[0].startswith("refused")
    assert result.stdout.splitlines()[1] == "['lo']"


def test_root_and_etc_are_read_only_and_tmp_is_capped(sandbox):
    code = (
        "def attempt(path, mib=0):\n"
        "    try:\n"
        "        with open(path, 'w') as f:\n"
        "            f.write('x' * 10)\n"
        "            for _ in range(mib):\n"
        "                f.write('x' * (1024 * 1024))\n"
        "        return 'written'\n"
        "    except OSError as e:\n"
        "        return type(e).__name__ + ' ' + str(e.errno)\n"
        "print('/', attempt('/evil'))\n"
        "print('/etc', attempt('/etc/evil'))\n"
        "print('/opt', attempt('/opt/jupyter-exec-ext/runner.py'))\n"
        "print('/tmp', attempt('/tmp/ok'))\n"
        "print('/tmp big', attempt('/tmp/big', 100))\n"
    )
    result = run(sandbox, code)
    out = result.stdout.splitlines()
    assert out[0].startswith("/ OSError 30") or out[0].startswith("/ PermissionError 13")
    assert out[1].startswith("/etc OSError 30") or out[1].startswith("/etc PermissionError 13")
    assert out[2].startswith("/opt ") and "written" not in out[2]
    assert out[3] == "/tmp written"
    # 100 MB does not fit: the file size limit or the 64 MiB tmpfs stops it.
    assert out[4].startswith("/tmp big ") and "written" not in out[4]


def test_tmp_is_noexec(sandbox):
    code = (
        "import os, shutil, subprocess\n"
        "shutil.copy('/bin/true', '/tmp/t')\n"
        "os.chmod('/tmp/t', 0o755)\n"
        "try:\n"
        "    subprocess.run(['/tmp/t'])\n"
        "    print('executed')\n"
        "except PermissionError:\n"
        "    print('noexec')\n"
    )
    assert run(sandbox, code).stdout == "noexec\n"


def test_not_root_no_capabilities_no_new_privileges(sandbox):
    code = "import os\nprint(os.getuid(), os.getgid())\nprint(open('/proc/self/status').read())\n"
    result = run(sandbox, code)
    lines = result.stdout.splitlines()
    assert lines[0] == "10001 10001"
    status = dict(line.split(":\t", 1) for line in lines[1:] if ":\t" in line)
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[cap], 16) == 0, f"{cap} = {status[cap]}"
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Uid"].split() == ["10001"] * 4


def test_the_program_has_no_way_back_to_root_or_to_the_harness_uid(sandbox):
    code = (
        "import os\n"
        "for uid in (0, 10002):\n"
        "    for call in (lambda: os.setuid(uid), lambda: os.setresuid(uid, uid, uid),\n"
        "                 lambda: os.seteuid(uid), lambda: os.setgid(uid), lambda: os.setgroups([0])):\n"
        "        try:\n"
        "            call()\n"
        "            print(uid, 'allowed')\n"
        "        except PermissionError:\n"
        "            print(uid, 'refused')\n"
        "print(os.getresuid(), os.getresgid(), os.getgroups())\n"
    )
    result = run(sandbox, code)
    lines = result.stdout.splitlines()
    assert lines[:-1] == ["0 refused"] * 5 + ["10002 refused"] * 5
    assert lines[-1] == "(10001, 10001, 10001) (10001, 10001, 10001) []"


def test_the_programs_processes_are_the_first_the_oom_killer_takes(sandbox):
    # The runner, its zygotes and the harness keep the default; the program's processes go first.
    code = (
        "import os\n"
        "print(open('/proc/self/oom_score_adj').read().strip())\n"
        "print(open('/proc/1/oom_score_adj').read().strip())\n"
    )
    assert run(sandbox, code).stdout.split() == ["1000", "0"]


# -- the result channel ------------------------------------------------------------------------------

FORGED = json.dumps(
    {
        "type": "result",
        "status": "ok",
        "exit_code": 0,
        "duration_ms": 1,
        "truncated": False,
        "message": "",
    }
)


def test_printed_fake_frames_do_not_change_the_result(sandbox):
    code = (
        "import sys\n"
        f"frame = {FORGED!r}\n"
        "for prefix in ('', '0' * 32 + ' ', 'nonce '):\n"
        "    print(prefix + frame)\n"
        "    print(prefix + frame, file=sys.stderr)\n"
        "raise SystemExit(7)\n"
    )
    result = run(sandbox, code)
    assert result.status is Status.RUNTIME_ERROR
    assert result.exit_code == 7
    assert FORGED in result.stdout  # shown to the student as the text it is


def test_runner_channel_cannot_be_reached_through_proc(sandbox):
    code = (
        "import os\n"
        "ppid = os.getppid()\n"
        "for what in ('fd/1', 'mem', 'environ', 'cmdline'):\n"
        "    try:\n"
        f"        with open(f'/proc/{{ppid}}/{{what}}', 'r+b' if what == 'fd/1' else 'rb') as f:\n"
        f"            f.write(b'x ' + {FORGED!r}.encode() + b'\\n') if what == 'fd/1' else f.read(1)\n"
        "        print(what, 'reached')\n"
        "    except OSError as e:\n"
        "        print(what, 'denied', e.errno)\n"
        "raise SystemExit(1)\n"
    )
    result = run(sandbox, code)
    assert result.status is Status.RUNTIME_ERROR
    for what in ("fd/1", "mem", "environ"):
        assert f"{what} denied" in result.stdout


def test_a_runner_killed_during_a_run_is_an_internal_error(sandbox, docker_client):
    # Only something outside the program can kill the runner now (another uid); the run's answer
    # must still say that nothing was reported, not pass for a success.
    killer = signal_runner_once_running(docker_client, signal.SIGKILL)
    try:
        result = run(sandbox, "import time\nprint('bye', flush=True)\ntime.sleep(5)\n")
    finally:
        killer.join()
    assert result.status is Status.INTERNAL_ERROR
    assert "ended before it reported" in result.message
    assert result.stdout == "bye\n"


def test_background_process_cannot_hold_the_run_open(sandbox):
    code = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    while True:\n"
        "        print('zombie', flush=True)\n"
        "        time.sleep(0.05)\n"
        "print('parent done')\n"
    )
    result = run(sandbox, code, time_limit=20)
    assert result.status is Status.OK
    assert result.duration_ms < 5000
    assert "parent done" in result.stdout


# -- policy, errors, status, housekeeping ------------------------------------------------------------


def test_policy_violation_names_the_line_and_runs_nothing(sandbox, docker_client):
    events_before = len(our_containers(docker_client))
    result = sandbox.run(
        ExecutionRequest(code="import math\nimport os\nos.system('id')\n", policy=PROFILES["safe"])
    )
    assert result.status is Status.POLICY_VIOLATION
    assert result.message.startswith("line 2: importing 'os' is not allowed")
    assert result.stdout == ""
    assert len(our_containers(docker_client)) == events_before


def test_requested_limits_are_clamped_to_admin_maxima(executor_image, no_leaks):
    box = DockerSandbox(
        SandboxConfig(
            image=executor_image, owner=TEST_OWNER, max_limits=Limits(time_s=2, memory_mb=64)
        )
    )
    try:
        result = run(box, "import time\ntime.sleep(60)\n", time_limit=100, memory_limit="1g")
    finally:
        box.close()
    assert result.status is Status.TIMEOUT
    assert result.limits.time_s == 2 and result.limits.memory_mb == 64


def test_docker_unreachable_raises_docker_not_available():
    box = DockerSandbox(
        client_factory=lambda: docker.DockerClient(
            base_url="unix:///nonexistent/docker.sock", version="auto"
        )
    )
    with pytest.raises(DockerUnavailableError, match="^Docker not available"):
        box.run(ExecutionRequest(code="print(1)"))
    assert isinstance(DockerUnavailableError(), SandboxUnavailableError)
    status = box.status()
    assert status["reachable"] is False
    assert status["error"].startswith("Docker not available")


def test_missing_image_is_a_clear_error(docker_client, no_leaks):
    box = DockerSandbox(
        SandboxConfig(image="jupyter-exec-ext-executor:does-not-exist", owner=TEST_OWNER)
    )
    try:
        with pytest.raises(ExecutorImageMissingError, match="jupyter exec-ext build-image"):
            box.run(ExecutionRequest(code="print(1)"))
        assert box.status()["image_present"] is False
    finally:
        box.close()


def test_disabled_sandbox_runs_nothing():
    box = DockerSandbox(SandboxConfig(enabled=False))
    with pytest.raises(SandboxUnavailableError, match="disabled"):
        box.run(ExecutionRequest(code="print(1)"))


def test_status_reports_engine_and_image(sandbox, docker_client, executor_image):
    status = sandbox.status()
    assert status["reachable"] is True
    assert status["engine_version"] == docker_client.version()["Version"]
    assert status["image"] == executor_image
    assert status["image_present"] is True
    assert status["image_id"] == docker_client.api.inspect_image(executor_image)["Id"]
    assert status["error"] is None


def test_container_removed_when_the_host_side_fails_mid_run(sandbox, docker_client, monkeypatch):
    seen = []

    def broken_converse(live, *args, **kwargs):
        seen.append(live.container_id)
        raise RuntimeError("host failure after the container was started")

    monkeypatch.setattr(sandbox, "_converse", broken_converse)
    with pytest.raises(RuntimeError):
        sandbox.run(ExecutionRequest(code="print(1)"))
    assert seen
    sandbox.flush()
    with pytest.raises(docker.errors.NotFound):
        docker_client.api.inspect_container(seen[0])


def test_unknown_runtime_is_sandbox_unavailable(executor_image, no_leaks):
    box = DockerSandbox(
        SandboxConfig(image=executor_image, owner=TEST_OWNER, runtime="no-such-runtime")
    )
    try:
        with pytest.raises(SandboxUnavailableError, match="refused"):
            box.run(ExecutionRequest(code="print(1)"))
    finally:
        box.close()


def test_reaper_removes_planted_leftovers_and_spares_live_runs(
    sandbox, docker_client, executor_image
):
    def plant(expires_in, start, owner=TEST_OWNER):
        c = docker_client.api.create_container(
            executor_image,
            command=["python3", "-c", "import time; time.sleep(120)"],
            labels={
                LABEL: "true",
                EXPIRES_LABEL: str(int(time.time() + expires_in)),
                OWNER_LABEL: owner,
            },
            host_config=docker_client.api.create_host_config(network_mode="none"),
        )
        if start:
            docker_client.api.start(c["Id"])
        return c["Id"]

    expired_running = plant(-10, start=True)
    exited = plant(3600, start=True)
    docker_client.api.kill(exited)
    # kill returns once the signal is sent; under load the state may still read "running" when
    # the reaper lists containers, and it only removes this instance's containers once ended.
    docker_client.api.wait(exited, timeout=30)
    live = plant(3600, start=True)
    # Another instance's container that just ended: that instance may still be reading its state.
    others_exited = plant(3600, start=True, owner=TEST_OWNER + "-other")
    docker_client.api.kill(others_exited)
    planted = (expired_running, exited, live, others_exited)
    try:
        removed = sandbox.reap()
        assert set(removed) >= {expired_running, exited}
        assert live not in removed and others_exited not in removed
        assert docker_client.api.inspect_container(live)["State"]["Running"] is True
        # Once it ended longer ago than the grace, another instance's container is abandoned.
        time.sleep(0.01)
        assert others_exited in sandbox.reap(ended_grace_s=0.0)
        assert docker_client.api.inspect_container(live)["State"]["Running"] is True
        assert live in sandbox.reap(everything=True)
        remaining = {c["Id"] for c in our_containers(docker_client, owner=None)}
        assert not remaining & set(planted)
    finally:
        for cid in planted:
            try:
                docker_client.api.remove_container(cid, force=True)
            except docker.errors.NotFound:
                pass


def test_concurrent_runs_are_each_answered_correctly(sandbox):
    results = {}

    def one(i):
        results[i] = run(sandbox, "import sys\nprint(int(sys.stdin.read()) * 2)\n", stdin=str(i))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {i: (r.status, r.stdout) for i, r in results.items()} == {
        i: (Status.OK, f"{i * 2}\n") for i in range(8)
    }


def test_stdin_that_is_not_valid_unicode_does_not_break_the_runner(sandbox):
    result = run(sandbox, "print(repr(input()))", stdin="a\ud800b")
    assert result.status is Status.OK
    assert result.stdout == "'a?b'\n"


def test_the_image_does_not_mark_hand_started_containers_as_ours(docker_client, executor_image):
    labels = docker_client.api.inspect_image(executor_image)["Config"]["Labels"] or {}
    assert LABEL not in labels  # containers inherit image labels; the reaper must not take those
    assert labels.get("jupyter-exec-ext.image") == "executor"
