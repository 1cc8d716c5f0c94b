"""``%%sandbox`` over the live-run WebSocket in a real kernel (jupyter_client) and under nbclient:
output arrives while the cell runs, ``input()`` is answered through the kernel's stdin channel,
a front end without stdin gets end of input and is told, and the kernel's interrupt cancels."""

from __future__ import annotations

import html
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from jupyter_exec_ext.kernel.client import ExecClient
from jupyter_exec_ext.kernel.widget import WIDGET_NO_STDIN, ExerciseWidget

from .conftest import LiveKernel, LiveServer, kernel_environment

pytestmark = pytest.mark.docker

#: Prints three lines 0.8 s apart: long enough apart that a run answered at the end cannot pass.
TICKS = "import time\nfor i in range(3):\n    print('tick', i, flush=True)\n    time.sleep(0.8)\n"


@pytest.fixture(scope="module")
def loaded(kernel: LiveKernel) -> LiveKernel:
    out = kernel.run("%load_ext jupyter_exec_ext")
    assert out.error is None and not out.stderr, out
    return kernel


def arrivals(streams: list, lines: list[str]) -> list[float]:
    """When each of ``lines`` had fully arrived on stdout, from ``(time, stream, text)`` messages
    (a print may come in several pieces, and pieces close together in one message)."""
    seen, times = "", []
    for at, name, text in streams:
        if name != "stdout":
            continue
        seen += text
        while len(times) < len(lines) and lines[len(times)] in seen:
            times.append(at)
    assert len(times) == len(lines), streams
    return times


def test_output_streams_into_the_cell_while_it_runs(loaded: LiveKernel, no_leaks) -> None:
    out = loaded.run("%%sandbox\n" + TICKS)
    assert out.error is None, out.error
    assert out.stdout.startswith("tick 0\ntick 1\ntick 2\n")
    first, second, third = arrivals(out.streams, ["tick 0\n", "tick 1\n", "tick 2\n"])
    # Each line arrived in stream messages of its own as it was printed, 0.8 s apart, the first
    # long before the cell ended.
    assert second - first >= 0.5 and third - second >= 0.5, out.streams
    assert out.ended_at - first >= 1.2
    assert out.stdout.splitlines()[-1].startswith("[ran in the sandbox: ok, ")


def test_input_with_two_prompts_is_answered_through_the_kernels_stdin(
    loaded: LiveKernel, no_leaks
) -> None:
    code = (
        "print('adding two numbers', flush=True)\n"
        "a = int(input('first? '))\n"
        "b = int(input('second? '))\n"
        "print('sum', a + b)\n"
    )
    out = loaded.run("%%sandbox\n" + code, answers=["3", "4"])
    assert out.error is None, out.error
    assert out.prompts == [("first? ", False), ("second? ", False)]
    assert "adding two numbers\n" in out.stdout and "sum 7\n" in out.stdout
    assert "[ran in the sandbox: ok" in out.stdout.splitlines()[-1]


def test_stdin_given_up_front_still_ends_in_eof(loaded: LiveKernel, no_leaks) -> None:
    out = loaded.run(
        '%%sandbox --stdin "5"\nprint(int(input()) * 2)\ntry:\n    input()\n'
        "except EOFError:\n    print('end of input')\n"
    )
    assert out.error is None and out.prompts == [], out
    assert out.stdout.splitlines()[:2] == ["10", "end of input"]


def test_a_front_end_without_stdin_gets_eof_and_is_told(loaded: LiveKernel, no_leaks) -> None:
    out = loaded.run("%%sandbox\nname = input('name? ')\nprint('hello', name)", allow_stdin=False)
    assert out.error is None, out.error
    assert "this front end cannot answer input requests" in out.stderr
    assert "EOFError" in out.stderr and "--stdin" in out.stderr
    assert "[ran in the sandbox: runtime_error" in out.stdout


def test_interrupting_the_kernel_cancels_the_run(loaded: LiveKernel, no_leaks) -> None:
    code = "import itertools, time\nfor i in itertools.count():\n    print(i, flush=True)\n    time.sleep(0.2)\n"
    interrupted = []

    def interrupt_once(content: dict) -> None:
        if not interrupted and content["name"] == "stdout":
            interrupted.append(time.monotonic())
            loaded.interrupt()

    out = loaded.run("%%sandbox --time-limit 10\n" + code, on_stream=interrupt_once)
    assert interrupted, "no output arrived before the interrupt"
    assert out.ended_at - interrupted[0] < 5, "the cell went on after the interrupt"
    status = [line for line in out.stdout.splitlines() if line.startswith("[ran in the sandbox")]
    assert status and status[0].startswith("[ran in the sandbox: cancelled"), out.stdout
    assert out.error is not None and out.error["ename"] == "RunCancelled"
    assert out.error["traceback"] == ["KeyboardInterrupt: the sandbox run was cancelled"]
    # The kernel is usable at once, and so is the server for this user.
    assert loaded.run("%%sandbox\nprint('after')").stdout.startswith("after\n")


def test_interrupt_while_waiting_for_input_cancels_too(
    loaded: LiveKernel, monkeypatch, no_leaks
) -> None:
    # The user presses ■ while the input box is shown, instead of typing a line.
    monkeypatch.setattr(loaded.client, "input", lambda _line: loaded.interrupt())
    out = loaded.run("%%sandbox\nx = input('never answered? ')\nprint(x)", answers=["unused"])
    assert out.prompts == [("never answered? ", False)]
    assert "[ran in the sandbox: cancelled" in out.stdout
    assert out.error is not None and out.error["ename"] == "RunCancelled"


class RecordingClient(NotebookClient):
    """nbclient with the arrival time of every output message and of the cell's end recorded."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.arrivals: list[tuple[float, int, str, str]] = []  # (time, cell, msg_type, text)
        self.ends: dict[int, float] = {}
        self.on_cell_executed = self._ended

    def output(self, outs, msg, display_id, cell_index):
        self.arrivals.append(
            (time.monotonic(), cell_index, msg["msg_type"], msg["content"].get("text", ""))
        )
        return super().output(outs, msg, display_id, cell_index)

    def _ended(self, cell, cell_index, execute_reply) -> None:
        self.ends[cell_index] = time.monotonic()


def test_nbclient_gets_the_stream_as_it_runs_and_eof_for_input(
    live_server: LiveServer, tmp_path: Path, monkeypatch, no_leaks
) -> None:
    for key, value in live_server.kernel_env().items():
        monkeypatch.setenv(key, value)
    nb = new_notebook(
        cells=[
            new_code_cell("%load_ext jupyter_exec_ext"),
            new_code_cell("%%sandbox\n" + TICKS),
            new_code_cell("%%sandbox\nprint(input('name? '))"),
        ]
    )
    client = RecordingClient(
        nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()

    assert "using the server at " + live_server.api in nb.cells[0].outputs[0]["text"]
    streams = [
        (at, "stdout", text)
        for at, cell, kind, text in client.arrivals
        if cell == 1 and kind == "stream"
    ]
    first, second, third = arrivals(streams, ["tick 0\n", "tick 1\n", "tick 2\n"])
    assert second - first >= 0.5 and third - second >= 0.5, streams
    assert client.ends[1] - first >= 1.2  # the first tick came long before the cell's end
    printed = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert printed.startswith("tick 0\ntick 1\ntick 2\n") and "[ran in the sandbox: ok" in printed
    headless = "".join(o.get("text", "") for o in nb.cells[2].outputs)
    assert "this front end cannot answer input requests" in headless and "EOFError" in headless


class _NoWebSocketProxy(BaseHTTPRequestHandler):
    """A reverse proxy that forwards plain HTTP to the live server and refuses WebSocket upgrades
    (as some institutional proxies do)."""

    target = ""

    def _forward(self) -> None:
        if self.headers.get("Upgrade", "").lower() == "websocket":
            self.send_error(400, "WebSockets are not supported here")
            return
        length = int(self.headers.get("Content-Length") or 0)
        request = urllib.request.Request(
            self.target + self.path.lstrip("/"),
            data=self.rfile.read(length) if length else None,
            method=self.command,
            headers={
                k: v
                for k, v in self.headers.items()
                if k.lower() in ("authorization", "content-type", "accept")
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                status, body, kind = (
                    answer.status,
                    answer.read(),
                    answer.headers.get("Content-Type", ""),
                )
        except urllib.error.HTTPError as e:
            status, body, kind = e.code, e.read(), e.headers.get("Content-Type", "")
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _forward

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def proxy_without_websockets(live_server: LiveServer):
    handler = type(
        "Proxy", (_NoWebSocketProxy,), {"target": f"http://127.0.0.1:{live_server.port}/"}
    )
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{proxy.server_port}{live_server.base_url}api/exec/v1/"
    proxy.shutdown()
    proxy.server_close()


def test_without_websockets_the_run_falls_back_to_post_execute(
    proxy_without_websockets: str, live_server: LiveServer, tmp_path: Path, no_leaks
) -> None:
    kernel = LiveKernel(
        kernel_environment(
            {
                "JUPYTER_EXEC_EXT_URL": proxy_without_websockets,
                "JUPYTER_EXEC_EXT_TOKEN": live_server.token,
                "JUPYTER_RUNTIME_DIR": str(tmp_path),
            }
        ),
        tmp_path,
    )
    try:
        assert kernel.run("%load_ext jupyter_exec_ext").error is None
        out = kernel.run(
            '%%sandbox --stdin "2"\nprint(int(input()) + 1)\nimport sys\nprint("e", file=sys.stderr)'
        )
        assert out.error is None, out.error
        assert out.stdout.splitlines()[0] == "3" and out.stderr == "e\n"
        assert "[ran in the sandbox: ok" in out.stdout
        status = kernel.run("%sandbox_status").stdout
        assert (
            "live output: unavailable" in status and "runs show their output at the end" in status
        )
    finally:
        kernel.shutdown()


def test_the_widget_streams_its_run(live_server: LiveServer, no_leaks) -> None:
    widget = ExerciseWidget(
        "strings-palindrome", client=ExecClient(live_server.api, live_server.token)
    )
    widget.code.value = TICKS + "input('anything? ')\n"
    seen: list[tuple[float, str]] = []
    widget.output.observe(lambda change: seen.append((time.monotonic(), change["new"])), "value")
    widget.on_run()
    first = next(at for at, value in seen if "tick 0" in value)
    partial = [value for at, value in seen if "tick 0" in value and "tick 2" not in value]
    assert partial, "the output area only changed at the end"
    assert seen[-1][0] - first >= 1.2
    final = widget.output.value
    assert "<pre class='stdout'>tick 0\ntick 1\ntick 2\n</pre>" in final
    assert html.escape(WIDGET_NO_STDIN) in final and "EOFError" in final


def test_a_line_over_the_servers_limit_is_refused_and_asked_again(
    loaded: LiveKernel, no_leaks
) -> None:
    """A pasted line bigger than the server takes: the server refuses that message, the cell says
    why, and the input box asks again, as the program still waits."""
    out = loaded.run("%%sandbox\nprint(len(input('paste? ')))", answers=["x" * 200_000, "short"])
    assert out.error is None, out.error
    assert out.prompts == [("paste? ", False), ("paste? ", False)]
    assert out.stderr.startswith("[sandbox: ") and "over the limit" in out.stderr, out.stderr
    assert out.stdout.splitlines()[0] == "5" and "[ran in the sandbox: ok" in out.stdout
