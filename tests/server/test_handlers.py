"""Every route and every error code, through the real server (non-default base_url) and, for runs,
the real Docker engine."""

from __future__ import annotations

import asyncio
import logging

import docker
import pytest

from jupyter_exec_ext.sandbox import DockerSandbox, SandboxConfig
from jupyter_exec_ext.server.context import CONTEXT_KEY

from ..conftest import TEST_OWNER, require
from .conftest import wait_until

docker_needed = pytest.mark.docker


# -- POST execute ---------------------------------------------------------------------------------


@docker_needed
async def test_execute_runs_code_in_the_sandbox(api, scheduler, executor_image, no_leaks):
    status, body, _ = await api(
        "POST",
        "execute",
        {
            "code": "import os\nname = input()\nprint(f'hello {name} from uid {os.getuid()}')",
            "stdin": "ada",
            "use_cache": False,
        },
    )
    assert status == 200, body
    assert body["status"] == "ok"
    assert body["stdout"] == "hello ada from uid 10001\n"
    assert body["exit_code"] == 0 and body["truncated"] is False and body["cached"] is False
    assert body["limits"]["memory_limit"] == "256m" and body["limits"]["time_limit"] == 10.0
    assert body["notes"] == [] and isinstance(body["duration_ms"], int)
    assert set(body) == {
        "status",
        "stdout",
        "stderr",
        "exit_code",
        "duration_ms",
        "truncated",
        "cached",
        "limits",
        "message",
        "notes",
    }
    assert scheduler.snapshot()["by_status"] == {"ok": 1}


WHERE = "print(open('/proc/self/cgroup').read().strip().split('/')[-1][:12])"


@docker_needed
async def test_a_users_next_run_reuses_their_reset_container(
    api, settings, executor_image, no_leaks
):
    """The route passes its user to the sandbox: the second run finds the first one's container,
    emptied. (That no state survives, and that other users never share, is tests/sandbox's.)"""
    status, first, _ = await api(
        "POST",
        "execute",
        {"code": WHERE + "\nopen('/tmp/left', 'w').write('x')", "use_cache": False},
    )
    assert status == 200 and first["status"] == "ok", first
    sandbox = settings[CONTEXT_KEY].runner
    reuse = getattr(sandbox, "sandbox", sandbox).reuse  # behind the result cache, if on
    await wait_until(lambda: reuse.status()["kept"] == 1, "the container to be reset and kept")
    status, second, _ = await api(
        "POST",
        "execute",
        {"code": WHERE + "\nimport os\nprint(os.listdir('/tmp'))", "use_cache": False},
    )
    assert status == 200 and second["stdout"] == first["stdout"] + "[]\n", (first, second)
    assert reuse.status()["served"] == 1


@docker_needed
async def test_failing_code_is_a_200_with_its_status(api, executor_image, no_leaks):
    status, body, _ = await api("POST", "execute", {"code": "def f(x):\n    return 1 / x\nf(0)"})
    assert status == 200
    assert body["status"] == "runtime_error" and body["exit_code"] == 1
    assert "ZeroDivisionError" in body["stderr"] and 'File "main.py", line 2' in body["stderr"]

    status, body, _ = await api("POST", "execute", {"code": "print('unclosed"})
    assert status == 200 and body["status"] == "syntax_error"


@docker_needed
async def test_requested_limits_are_clamped_and_the_notes_say_so(api, executor_image, no_leaks):
    status, body, _ = await api(
        "POST", "execute", {"code": "print('fine')", "time_limit": 3600, "memory_limit": "64g"}
    )
    assert status == 200, body
    assert body["status"] == "ok"
    assert body["limits"]["time_limit"] == 10.0 and body["limits"]["memory_limit"] == "1024m"
    assert body["notes"] == [
        "memory_limit 65536 MiB is above the admin maximum of 1024 MiB; using 1024",
        "time_limit 3600 s is above the admin maximum of 10 s; using 10",
    ]


@pytest.mark.parametrize(
    "body, field",
    [
        ("{not json", "not valid JSON"),
        ("[1]", "must be a JSON object, got array"),
        (None, "request body is empty"),
        ({}, "code is required"),
        ({"code": 42}, "code must be a string, got number"),
        ({"code": "x", "stdin": 5}, "stdin must be a string"),
        ({"code": "x", "use_cache": "no"}, "use_cache must be a boolean"),
        ({"code": "x", "time_limit": -1}, "time_limit must be positive"),
        ({"code": "x", "memory_limit": "a lot"}, "memory_limit must be a positive size"),
        ({"code": "x", "colour": "red"}, "unknown field 'colour'"),
    ],
)
async def test_bad_input_is_a_400_naming_the_problem(api, scheduler, body, field):
    status, reply, _ = await api("POST", "execute", body)
    assert status == 400
    assert field in reply["message"] and reply["reason"] == "Bad Request"
    assert "Traceback" not in str(reply)
    assert scheduler.snapshot()["completed"] == 0  # nothing reached the sandbox


async def test_deeply_nested_json_is_a_400_not_a_500(api, scheduler):
    # 100,000 levels, well under the body cap: the JSON decoder's recursion ends, not the server.
    # (tests/server/test_exercises.py sends the same to submit.)
    for body in ("[" * 100_000 + "]" * 100_000, '{"code": ' + "[" * 100_000 + "]" * 100_000 + "}"):
        status, reply, _ = await api("POST", "execute", body)
        assert status == 400, reply
        assert reply["message"] == (
            "request body nests JSON arrays or objects too deeply; expected "
            "an object of plain fields"
        )
        assert "Traceback" not in str(reply)
    assert scheduler.snapshot()["completed"] == 0


@pytest.mark.parametrize("exec_ext_config", [{"max_code_bytes": 1000, "max_stdin_bytes": 100}])
async def test_oversized_code_is_a_413(api, scheduler, caplog):
    caplog.set_level(logging.WARNING, logger="jupyter_exec_ext.security")
    status, reply, _ = await api("POST", "execute", {"code": "#" * 1001})
    assert status == 413 and reply["message"] == "code is 1001 bytes, over the limit of 1000 bytes"
    status, reply, _ = await api("POST", "execute", {"code": "", "stdin": "é" * 51})
    assert status == 413 and reply["message"] == "stdin is 102 bytes, over the limit of 100 bytes"
    status, reply, _ = await api("POST", "execute", '{"code": "' + "#" * 40000 + '"}')
    assert status == 413 and "request body of" in reply["message"]
    assert scheduler.snapshot()["completed"] == 0
    security = [r.getMessage() for r in caplog.records if r.name == "jupyter_exec_ext.security"]
    assert len(security) == 3 and all("oversized request to execute" in m for m in security)


@pytest.mark.parametrize("route", ["execute", "docker/status"])
async def test_requests_without_a_token_are_refused_403(api, scheduler, route, caplog):
    caplog.set_level(logging.WARNING, logger="jupyter_exec_ext.security")
    method = "POST" if route == "execute" else "GET"
    status, reply, _ = await api(
        method, route, {"code": "print(1)"} if method == "POST" else None, token=False
    )
    assert status == 403 and reply["reason"] == "Forbidden"
    assert scheduler.snapshot()["completed"] == 0
    assert any(
        "refused" in r.getMessage() for r in caplog.records if r.name == "jupyter_exec_ext.security"
    )


async def test_unsupported_method_is_a_405_with_allow(api):
    status, reply, response = await api("DELETE", "execute")
    assert status == 405 and reply["message"] == "Method Not Allowed"
    assert response.headers["Allow"] == "POST"


# -- GET docker/status and GET health ------------------------------------------------------------


@docker_needed
async def test_docker_status_reports_engine_image_and_runs(api, executor_image, docker_client):
    status, body, _ = await api("GET", "docker/status")
    assert status == 200
    engine = body["docker"]
    assert engine["reachable"] is True and engine["enabled"] is True
    assert engine["engine_version"] == docker_client.version()["Version"]
    assert engine["image"] == executor_image and engine["image_present"] is True
    assert engine["image_id"] == docker_client.api.inspect_image(executor_image)["Id"]
    assert body["runs"]["in_flight"] == 0 and body["runs"]["queued"] == 0
    assert body["runs"]["max_in_flight"] == 4 and body["runs"]["max_per_user"] == 2
    assert body["limits"]["max"]["time_limit"] == 10.0 and body["max_code_bytes"] == 65536


@docker_needed
@pytest.mark.parametrize("exec_ext_config", [{"runtime": "runsc"}])
async def test_docker_status_reports_runsc_and_runs_go_through_it(
    api, executor_image, docker_client, no_leaks
):
    require(
        "runsc" in docker_client.info().get("Runtimes", {}),
        "the engine offers no runsc runtime; scripts/provision.sh registers it under CI=true",
    )
    status, body, _ = await api("GET", "docker/status")
    assert status == 200 and body["docker"]["runtime"] == "runsc"
    status, body, _ = await api("POST", "execute", {"code": "print(open('/proc/version').read())"})
    assert status == 200 and body["status"] == "ok"
    assert "gcc" not in body["stdout"], body["stdout"]  # gVisor's kernel, not the host's


@docker_needed
async def test_health_is_open_and_reveals_only_the_status(api, executor_image):
    status, body, response = await api("GET", "health", token=False)
    assert status == 200 and body == {"status": "ok"}
    assert "Set-Cookie" not in response.headers  # no identity handed out to anonymous probes


class CountingSandbox:
    """Answers status() like a healthy engine and counts how often it was asked."""

    def __init__(self) -> None:
        self.asked = 0

    def status(self) -> dict:
        self.asked += 1
        return {"enabled": True, "reachable": True, "image_present": True}


async def test_a_flood_of_health_probes_asks_the_engine_once_per_moment(api, swap_sandbox):
    counting = CountingSandbox()
    swap_sandbox(counting)
    answers = await asyncio.gather(*(api("GET", "health", token=False) for _ in range(50)))
    assert all(status == 200 and body == {"status": "ok"} for status, body, _ in answers)
    assert counting.asked == 1
    # Another sandbox (as after a restart of the parts) is asked afresh, not answered from memory.
    other = CountingSandbox()
    swap_sandbox(other)
    assert (await api("GET", "health", token=False))[1] == {"status": "ok"} and other.asked == 1


# -- Docker unreachable: 503 on runs, every other route still answers -----------------------------


def unreachable_sandbox() -> DockerSandbox:
    return DockerSandbox(
        SandboxConfig(owner=TEST_OWNER),
        client_factory=lambda: docker.DockerClient(
            base_url="unix:///nonexistent/docker.sock", version="auto"
        ),
    )


async def test_docker_unreachable_is_a_503_while_other_routes_answer(api, swap_sandbox, scheduler):
    swap_sandbox(unreachable_sandbox())
    status, reply, _ = await api("POST", "execute", {"code": "print(1)"})
    assert status == 503 and reply["message"] == "Docker not available"
    assert "nonexistent" not in str(reply)  # the engine's details are for the server log

    status, body, _ = await api("GET", "health")
    assert status == 200 and body == {"status": "down"}
    status, body, _ = await api("GET", "docker/status")
    assert status == 200
    assert (
        body["docker"]["reachable"] is False and "Docker not available" in body["docker"]["error"]
    )
    assert body["runs"]["by_status"] == {"sandbox_unavailable": 1}
    status, reply, _ = await api("POST", "execute", {"code": 1})
    assert status == 400  # bad input is still told apart from an unavailable engine


async def test_disabled_sandbox_is_a_503_and_health_down(api, swap_sandbox):
    swap_sandbox(DockerSandbox(SandboxConfig(enabled=False, owner=TEST_OWNER)))
    status, reply, _ = await api("POST", "execute", {"code": "print(1)"})
    assert status == 503 and "disabled" in reply["message"]
    status, body, _ = await api("GET", "health")
    assert body == {"status": "down"}


class ExplodingSandbox:
    """Stands in for a sandbox with a bug: the error path must not leak its details."""

    def run(self, request):
        raise RuntimeError("secret internal detail /var/lib/something")

    def status(self):
        raise RuntimeError("secret internal detail /var/lib/something")


async def test_an_unexpected_error_is_a_plain_500_without_a_trace(api, swap_sandbox):
    swap_sandbox(ExplodingSandbox())
    for method, route, body in (("POST", "execute", {"code": "1"}), ("GET", "docker/status", None)):
        status, reply, _ = await api(method, route, body)
        assert status == 500
        assert reply == {
            "message": "internal error in the exec extension; the admin can find "
            "details in the server log",
            "reason": "Internal Server Error",
        }


# -- logging -------------------------------------------------------------------------------------


@docker_needed
async def test_each_request_is_logged_without_the_code(api, caplog, executor_image, no_leaks):
    caplog.set_level(logging.DEBUG, logger="jupyter_exec_ext")
    marker = "MARKER_7c1f"
    status, body, _ = await api("POST", "execute", {"code": f"print('{marker}')", "stdin": marker})
    assert status == 200 and body["stdout"] == f"{marker}\n"
    status, _, _ = await api("POST", "execute", {"code": f"'{marker}'", "colour": 1})
    assert status == 400

    lines = [
        r.getMessage()
        for r in caplog.records
        if r.name == "jupyter_exec_ext.server.handlers" and r.levelno == logging.INFO
    ]
    assert len(lines) == 2
    assert lines[0].startswith("POST execute user=token-holder status=200 duration_ms=")
    assert lines[1].startswith("POST execute user=token-holder status=400 duration_ms=")
    informative = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert not [m for m in informative if marker in m]
