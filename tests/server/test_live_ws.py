"""``execute/ws``: live runs over a WebSocket against the real server and the real engine.

Each test waits for messages (never for a fixed time); ``timeout`` only ends a test that would hang.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import tornado.httpclient
import tornado.websocket

from jupyter_exec_ext.server.live import MAX_QUEUED_BYTES

from .conftest import API, wait_until

pytestmark = pytest.mark.docker

WS = (*API, "execute", "ws")


class Client:
    """A WebSocket client of execute/ws that reads messages one at a time."""

    def __init__(self, conn: tornado.websocket.WebSocketClientConnection) -> None:
        self.conn = conn

    async def send(self, message: Any) -> None:
        await self.conn.write_message(
            message if isinstance(message, (str, bytes)) else json.dumps(message)
        )

    async def recv(self, timeout: float = 30.0) -> dict:
        raw = await asyncio.wait_for(self.conn.read_message(), timeout)
        assert raw is not None, "the server closed the socket"
        return json.loads(raw)

    async def until(self, kind: str, timeout: float = 30.0) -> list[dict]:
        """Every message up to and including the first of type ``kind``."""
        seen = []
        while True:
            message = await self.recv(timeout)
            seen.append(message)
            if message["type"] == kind:
                return seen

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def ws(jp_ws_fetch, no_leaks):
    """Opens sockets to execute/ws; closes them (cancelling their runs) after the test."""
    opened = []

    async def connect(**kwargs: Any) -> Client:
        client = Client(await jp_ws_fetch(*WS, **kwargs))
        opened.append(client)
        return client

    yield connect
    for client in opened:
        client.close()


def outputs(messages: list[dict], stream: str = "stdout") -> str:
    return "".join(m["data"] for m in messages if m["type"] == "output" and m["stream"] == stream)


async def test_output_streams_in_order_before_one_result(ws, executor_image, no_leaks):
    client = await ws()
    await client.send(
        {
            "type": "run",
            "code": (
                "import sys, time\n"
                "for i in range(5):\n"
                "    print(i, flush=True)\n"
                "    print('e', i, file=sys.stderr, flush=True)\n"
                "    time.sleep(0.05)\n"
            ),
        }
    )
    messages = await client.until("result")
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "started" and kinds[-1] == "result"
    assert kinds.count("result") == 1 and kinds.count("output") >= 2
    assert messages[0]["time_limit_s"] == 10.0
    result = messages[-1]
    assert result["status"] == "ok"
    assert outputs(messages) == "0\n1\n2\n3\n4\n" == result["stdout"]
    assert outputs(messages, "stderr") == "".join(f"e {i}\n" for i in range(5)) == result["stderr"]
    # The same fields as POST execute's answer.
    assert {"exit_code", "duration_ms", "truncated", "message", "limits", "notes", "cached"} <= set(
        result
    )


async def test_output_arrives_while_the_program_still_runs(ws, executor_image, no_leaks):
    client = await ws()
    await client.send(
        {"type": "run", "code": "import time\nprint('a', flush=True)\ntime.sleep(3)\nprint('b')\n"}
    )
    started = time.monotonic()
    first = await client.until("output")
    while outputs(first) != "a\n":  # print() may write the text and the newline apart
        first.append(await client.recv())
    # The program sleeps 3 s after printing: the output came long before its end.
    assert time.monotonic() - started < 2.5
    rest = await client.until("result")
    assert rest[-1]["stdout"] == "a\nb\n"


async def test_interactive_input_with_two_prompts(ws, executor_image, no_leaks):
    client = await ws()
    await client.send(
        {
            "type": "run",
            "code": (
                "name = input('Name? ')\nage = int(input('Age? '))\nprint(f'{name} is {age}')\n"
            ),
        }
    )
    seen = await client.until("input_request")
    assert seen[-1]["prompt"] == "Name? "
    await client.send({"type": "stdin", "data": "Ada\n"})
    seen = await client.until("input_request")
    assert seen[-1]["prompt"] == "Age? "
    assert not [m for m in seen if m["type"] == "result"]
    await client.send({"type": "stdin", "data": "36\n"})
    result = (await client.until("result"))[-1]
    assert result["status"] == "ok", result
    assert result["stdout"] == "Ada is 36\n"


async def test_stdin_given_up_front_is_read_without_asking(ws, executor_image, no_leaks):
    client = await ws()
    await client.send(
        {
            "type": "run",
            "code": "print(input() + input())\nprint(input('more? '))\n",
            "stdin": "a\nb\n",
        }
    )
    seen = await client.until("input_request")
    assert [m["prompt"] for m in seen if m["type"] == "input_request"] == ["more? "]
    await client.send({"type": "stdin", "eof": True})
    result = (await client.until("result"))[-1]
    assert result["status"] == "runtime_error"
    assert result["stdout"] == "ab\n" and "EOFError" in result["stderr"]


async def test_cancel_ends_the_run_within_a_second(ws, executor_image, no_leaks):
    client = await ws()
    await client.send(
        {"type": "run", "code": "print('spinning', flush=True)\nwhile True:\n    pass\n"}
    )
    await client.until("output")
    asked = time.monotonic()
    await client.send({"type": "cancel"})
    result = (await client.until("result"))[-1]
    assert time.monotonic() - asked < 1.0
    assert result["status"] == "cancelled"
    assert result["stdout"] == "spinning\n"
    assert result["message"] == "the run was stopped"


async def test_a_socket_runs_again_after_a_cancel(ws, executor_image, no_leaks):
    client = await ws()
    await client.send({"type": "run", "code": "input('waiting ')\n"})
    await client.until("input_request")
    await client.send({"type": "cancel"})
    assert (await client.until("result"))[-1]["status"] == "cancelled"
    await client.send({"type": "run", "code": "print(6 * 7)"})
    result = (await client.until("result"))[-1]
    assert (result["status"], result["stdout"]) == ("ok", "42\n")


async def test_closing_the_socket_cancels_the_run(ws, scheduler, executor_image, no_leaks):
    client = await ws()
    await client.send(
        {"type": "run", "code": "import time\nprint('x', flush=True)\ntime.sleep(60)\n"}
    )
    await client.until("output")
    assert scheduler.snapshot()["in_flight"] == 1
    closed = time.monotonic()
    client.close()
    await wait_until(lambda: scheduler.snapshot()["in_flight"] == 0, "the run ended", timeout=5)
    assert time.monotonic() - closed < 2.0
    assert scheduler.snapshot()["by_status"].get("cancelled") == 1


BAD = [
    ("not json", "message is not valid JSON"),
    ("[1, 2]", "message must be a JSON object, got array"),
    ({"type": "launch"}, "unknown message type 'launch'"),
    ({"code": "print(1)"}, "unknown message type None"),
    ({"type": "stdin", "data": "x"}, "stdin: no run is in progress"),
    ({"type": "cancel"}, "cancel: no run is in progress"),
    ({"type": "run"}, "code is required"),
    ({"type": "run", "code": 1}, "code must be a string, got number"),
    ({"type": "run", "code": "", "colour": "red"}, "run: unknown field 'colour'"),
    ({"type": "run", "code": "", "limits": {"time_limit": -1}}, "time_limit"),
    ({"type": "run", "code": "", "limits": {"cpus": 4}}, "run: unknown limit 'cpus'"),
    ({"type": "run", "code": "", "limits": []}, "limits must be an object, got array"),
]


@pytest.mark.parametrize("bad, says", BAD, ids=[str(b)[:30] for b, _ in BAD])
async def test_a_bad_message_gets_an_error_and_the_socket_stays_usable(
    ws, bad, says, executor_image, no_leaks
):
    client = await ws()
    await client.send(bad)
    error = await client.recv()
    assert error["type"] == "error" and says in error["message"], error
    await client.send({"type": "run", "code": "print('still here')"})
    assert (await client.until("result"))[-1]["stdout"] == "still here\n"


async def test_an_oversized_message_is_refused_and_nothing_is_lost(
    ws, settings, executor_image, no_leaks
):
    from jupyter_exec_ext.server.context import CONTEXT_KEY

    bound = settings[CONTEXT_KEY].bounds.max_body_bytes
    client = await ws()
    await client.send({"type": "run", "code": "name = input('? ')\nprint('hello', name)\n"})
    await client.until("input_request")
    await client.send({"type": "stdin", "data": "x" * (bound + 10)})
    error = await client.recv()
    assert error["type"] == "error" and "over the limit" in error["message"]
    await client.send({"type": "stdin", "data": "Ada\n"})
    result = (await client.until("result"))[-1]
    assert result["stdout"] == "hello Ada\n"


async def test_a_second_run_while_one_runs_is_refused_and_the_first_goes_on(
    ws, executor_image, no_leaks
):
    client = await ws()
    await client.send({"type": "run", "code": "print(input('? '))"})
    await client.until("input_request")
    await client.send({"type": "run", "code": "print('second')"})
    error = await client.recv()
    assert error["type"] == "error" and "already in progress" in error["message"]
    await client.send({"type": "stdin", "data": "first\n"})
    messages = await client.until("result")
    assert messages[-1]["stdout"] == "first\n"


async def test_binary_messages_are_refused(ws, executor_image, no_leaks):
    client = await ws()
    await client.conn.write_message(b"\x00\x01", binary=True)
    error = await client.recv()
    assert error["type"] == "error" and "not binary" in error["message"]


@pytest.mark.parametrize("exec_ext_config", [{"max_runs_per_user": 1}])
async def test_the_per_user_cap_counts_live_runs_with_post_execute(
    ws, api, executor_image, no_leaks
):
    client = await ws()
    await client.send({"type": "run", "code": "input('hold ')"})
    await client.until("input_request")
    status, body, _ = await api("POST", "execute", {"code": "print(1)"})
    assert status == 429, body
    other = await ws()
    await other.send({"type": "run", "code": "print(1)"})
    error = await other.recv()
    assert error["type"] == "error" and error["reason"] == "rate_limited"
    assert "run(s) in progress" in error["message"]
    await client.send({"type": "cancel"})
    assert (await client.until("result"))[-1]["status"] == "cancelled"
    await other.send({"type": "run", "code": "print(1)"})
    assert (await other.until("result"))[-1]["stdout"] == "1\n"


async def test_the_socket_needs_authentication(jp_ws_fetch, executor_image):
    with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
        await jp_ws_fetch(*WS, headers={"Authorization": ""})
    assert refused.value.code == 403


@pytest.fixture
def peak_queue(monkeypatch):
    """Records the most bytes of events ever waiting for the client on any socket."""
    from jupyter_exec_ext.server.live import LiveRoute

    peak = {"bytes": 0}
    enqueue = LiveRoute.enqueue

    def recording(self, data):
        peak["bytes"] = max(peak["bytes"], self.queued_bytes)
        enqueue(self, data)

    monkeypatch.setattr(LiveRoute, "enqueue", recording)
    return peak


FLOOD = "line = 'x' * 9999\nwhile True:\n    print(line)\n"


@pytest.mark.parametrize("exec_ext_config", [{"output_limit_bytes": 256 * 1024 * 1024}])
async def test_a_client_that_stops_reading_holds_the_run_back_in_bounded_memory(
    ws, scheduler, peak_queue, executor_image, no_leaks
):
    """With an output cap too large to stop it, a flood into a client that reads nothing waits
    on the client: what waits in the server stays under MAX_QUEUED_BYTES (plus one event), and
    the run ends at its time limit (the host's deadline), not at the cap."""
    client = await ws(max_message_size=512 * 1024 * 1024)
    await client.send({"type": "run", "code": FLOOD, "limits": {"time_limit": 2}})
    await wait_until(lambda: scheduler.snapshot()["in_flight"] == 1, "the run started")
    await wait_until(lambda: scheduler.snapshot()["in_flight"] == 0, "the run ended", timeout=60)
    assert 0 < peak_queue["bytes"] <= MAX_QUEUED_BYTES + 128 * 1024
    result = (await client.until("result", timeout=60))[-1]
    assert result["status"] == "timeout", result["message"]
    # Held back: far less came out than 12 s of an unhindered flood (hundreds of MB).
    assert len(result["stdout"]) < 64 * 1024 * 1024


async def test_a_flood_ends_at_the_output_cap(ws, peak_queue, executor_image, no_leaks):
    client = await ws()
    await client.send({"type": "run", "code": FLOOD})
    messages = await client.until("result", timeout=60)
    result = messages[-1]
    assert result["status"] == "output_limit" and result["truncated"] is True
    assert len(outputs(messages)) == 1024 * 1024 == len(result["stdout"])
    assert peak_queue["bytes"] <= MAX_QUEUED_BYTES + 128 * 1024


async def test_output_that_looks_like_frames_is_only_output(ws, executor_image, no_leaks):
    """The program writes what frames look like; the client gets it as output, nothing more."""
    client = await ws()
    forged = [
        '{"type": "result", "status": "ok", "stdout": "full marks"}',
        '{"type": "input_request", "prompt": "forged"}',
        '{"type": "cancel"}',
    ]
    code = (
        "import sys\n"
        + "".join(f"print({line!r})\nprint({line!r}, file=sys.stderr)\n" for line in forged)
        + "print('end')\n"
    )
    await client.send({"type": "run", "code": code})
    messages = await client.until("result")
    kinds = [m["type"] for m in messages]
    assert kinds.count("result") == 1 and "input_request" not in kinds
    assert messages[-1]["status"] == "ok"
    assert messages[-1]["stdout"] == "".join(f"{line}\n" for line in forged) + "end\n"


FORGE_REQUESTS = r"""
import json, os, socket
sent = 0
for name in os.listdir("/proc/self/fd"):
    try:
        sock = socket.socket(fileno=os.dup(int(name)))
    except OSError:
        continue
    if sock.type == socket.SOCK_SEQPACKET:
        for i in range(5000):
            sock.send(json.dumps({"input": "forged %d" % i}).encode())
            sent += 1
print("sent", sent, flush=True)
print("got", input("real? "))
"""


async def test_a_program_flooding_input_requests_reaches_the_client_once(
    ws, executor_image, no_leaks
):
    """The program can say "I am waiting for input" as often as it likes on its status socket;
    the client hears it once per answer, and the run goes on as usual."""
    client = await ws()
    await client.send({"type": "run", "code": FORGE_REQUESTS})
    seen = await client.until("input_request")
    while "sent 5000\n" not in outputs(seen):
        seen.append(await client.recv())
    assert [m["type"] for m in seen].count("input_request") == 1
    await client.send({"type": "stdin", "data": "Ada\n"})
    rest = await client.until("result")
    # At most once per answer: forged requests still queued may be heard once more.
    assert len([m for m in rest if m["type"] == "input_request"]) <= 1
    assert rest[-1]["status"] == "ok" and rest[-1]["stdout"].endswith("got Ada\n")


REMOTE_DOWN = {
    "backend": "remote",
    "service_url": "http://127.0.0.1:9/services/exec/api/exec/v1/",
    "service_token": "a-user-token",
}


@pytest.mark.parametrize("exec_ext_config", [REMOTE_DOWN])
async def test_in_remote_mode_a_service_that_is_down_is_said_on_the_socket(jp_ws_fetch):
    """A browser cannot read why an upgrade was refused: the socket opens, says why, and closes."""
    conn = await jp_ws_fetch(*WS)
    error = json.loads(await asyncio.wait_for(conn.read_message(), 30))
    assert error["type"] == "error" and error["reason"] == "service_unreachable"
    assert "the executor service is unreachable" in error["message"]
    assert await asyncio.wait_for(conn.read_message(), 30) is None  # then closed


@pytest.mark.parametrize("exec_ext_config", [REMOTE_DOWN])
async def test_in_remote_mode_the_socket_needs_authentication(jp_ws_fetch):
    with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
        await jp_ws_fetch(*WS, headers={"Authorization": ""})
    assert refused.value.code == 403


async def test_a_plain_get_is_told_to_use_a_websocket(api):
    status, body, _ = await api("GET", "execute/ws")
    assert status == 400 and "connect with a WebSocket client" in body["message"]
