"""Live runs at the sandbox level (DockerSandbox.run with a LiveControl), against the real engine:
a cancelled run's container is as clean as after any run when it is reused, or removed."""

from __future__ import annotations

import json
import threading
import time

import pytest

from jupyter_exec_ext.sandbox import DockerSandbox, ExecutionRequest, SandboxConfig, Status
from jupyter_exec_ext.sandbox.live import LiveControl

from ..conftest import TEST_OWNER
from .test_reuse import LEAVE_EVERYTHING_BEHIND, LOOK_FOR_IT, WHERE, container_of, wait_until_kept

pytestmark = pytest.mark.docker


@pytest.fixture
def box(executor_image, no_leaks):
    sandbox = DockerSandbox(SandboxConfig(image=executor_image, owner=TEST_OWNER))
    yield sandbox
    sandbox.close()


def live_run(box, code, on_event, control, key="alice"):
    return box.run(ExecutionRequest(code=code, reuse_key=key), on_event=on_event, control=control)


def cancel_when(kind):
    """An event callback that cancels the run at the first event of ``kind``."""
    control = LiveControl()
    events = []

    def on_event(event):
        events.append(event)
        if event["type"] == kind:
            control.cancel()

    return control, events, on_event


def test_a_cancelled_run_leaves_nothing_for_the_next_run_in_its_container(box):
    control, events, on_event = cancel_when("input_request")
    first = live_run(box, WHERE + LEAVE_EVERYTHING_BEHIND + "input('waiting')\n", on_event, control)
    assert first.status is Status.CANCELLED, (first.status, first.message, first.stderr)
    assert [e["type"] for e in events][0] == "started"
    wait_until_kept(box)
    second = box.run(ExecutionRequest(code=LOOK_FOR_IT, reuse_key="alice"))
    assert container_of(second) == first.stdout.splitlines()[0], "the container was not reused"
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


def test_a_cancel_before_the_run_starts_runs_nothing(box):
    control = LiveControl()
    control.cancel()
    events = []
    result = live_run(box, "print('never')", events.append, control)
    assert result.status is Status.CANCELLED and result.stdout == "" and events == []
    assert box.containers_created == 0


def test_a_runner_that_ignores_the_cancel_is_stopped_by_the_host(box, monkeypatch):
    """The host does not rely on the runner: if no result comes within the grace after a
    cancel, it kills the container itself (here the cancel line never reaches the runner)."""
    control, events, on_event = cancel_when("output")
    monkeypatch.setattr(control, "_post", lambda message: None)  # the line is lost
    asked = []
    control_cancel = control.cancel

    def timed_cancel():
        asked.append(time.monotonic())
        control_cancel()

    control.cancel = timed_cancel
    result = live_run(box, "print('x', flush=True)\nwhile True:\n    pass\n", on_event, control)
    assert time.monotonic() - asked[0] < 1.0
    assert result.status is Status.CANCELLED and result.stdout == "x\n"
    assert box.reuse.status()["kept"] == 0  # not reset by a runner that may be stuck: removed


def test_input_sent_before_the_container_is_ready_arrives_in_order(box):
    control = LiveControl()
    control.send_stdin("one\n")
    control.send_stdin("two\n")
    control.send_eof()
    result = live_run(box, "import sys\nprint(sys.stdin.read().split())", lambda e: None, control)
    assert (result.status, result.stdout) == (Status.OK, "['one', 'two']\n")


def test_stdin_beyond_the_runs_limit_is_refused():
    control = LiveControl(max_stdin_bytes=10)
    control.send_stdin("12345")
    with pytest.raises(ValueError, match="over the limit of 10 bytes"):
        control.send_stdin("123456")
    control.send_eof()
    with pytest.raises(ValueError, match="has ended"):
        control.send_stdin("1")


def test_a_cancel_from_another_thread_ends_a_busy_run_within_a_second(box):
    control = LiveControl()
    started = threading.Event()
    result = {}

    def go():
        result["r"] = live_run(
            box,
            "print('busy', flush=True)\nwhile True:\n    pass\n",
            lambda e: e["type"] == "output" and started.set(),
            control,
            key=None,
        )

    thread = threading.Thread(target=go)
    thread.start()
    assert started.wait(30)
    asked = time.monotonic()
    control.cancel()
    thread.join(10)
    assert time.monotonic() - asked < 1.0
    assert result["r"].status is Status.CANCELLED


REACH_FOR_THE_HOST_CHANNEL = r"""
import os
reached = []
for pid in os.listdir("/proc"):
    if not pid.isdigit() or int(pid) == os.getpid():
        continue
    for path in ("/proc/%s/fd/0" % pid, "/proc/%s/fd/1" % pid):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            os.write(fd, b'{"type": "cancel"}\n{"type": "stdin", "eof": true}\n')
            reached.append(path)
        except OSError:
            pass
print("reached", reached, flush=True)
print("still running, got", input("go? "))
"""


def test_the_program_cannot_write_the_hosts_control_lines_or_frames(box):
    """The runner's stdin (the host's control lines) and stdout (the frames) belong to uid 0:
    the program, looking for them through /proc, reaches neither, so it cannot cancel or end its
    own input as the host would, nor write a frame."""
    control = LiveControl()
    events = []

    def on_event(event):
        events.append(event)
        if event["type"] == "input_request":
            control.send_stdin("yes\n")

    result = live_run(box, REACH_FOR_THE_HOST_CHANNEL, on_event, control)
    assert result.status is Status.OK, (result.status, result.message, result.stderr)
    lines = result.stdout.splitlines()
    assert lines[0] == "reached []"
    assert lines[1] == "still running, got yes"


def test_a_long_prompt_is_cut_and_still_asked(box):
    control = LiveControl()
    prompts = []

    def on_event(event):
        if event["type"] == "input_request":
            prompts.append(event["prompt"])
            control.send_stdin("ok\n")

    result = live_run(box, "print(input('é' * 100000))", on_event, control)
    assert (result.status, result.stdout) == (Status.OK, "ok\n")
    assert prompts == ["é" * 4096]
