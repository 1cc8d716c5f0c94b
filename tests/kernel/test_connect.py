"""Kernels outside a Jupyter server (what VS Code starts), each path of docs/vscode.md: a real
kernel started by jupyter_client with no server in its environment, pointed at a real server by
the two variables or by ``%sandbox_connect`` (its password box answered over the kernel's stdin
channel); and each failure message naming its cause and fix."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import pytest

from jupyter_exec_ext.kernel.client import (
    APINotFoundError,
    AuthenticationError,
    BadRequestError,
    ExecClient,
    api_candidates,
    hub_token_page,
    not_found_fix,
)

from .conftest import LiveKernel, LiveServer, kernel_environment
from .test_magics import PALINDROME, role_source

pytestmark = pytest.mark.docker


def test_api_candidates_for_each_kind_of_url() -> None:
    assert api_candidates("http://h:8888/") == ["http://h:8888/api/exec/v1/"]
    assert api_candidates("http://h:8888/api/exec/v1") == ["http://h:8888/api/exec/v1/"]
    assert api_candidates("http://h/base/api/exec/v1/execute") == ["http://h/base/api/exec/v1/"]
    assert api_candidates("https://hub.example/user/ana/lab/tree/ex.ipynb?x=1") == [
        "https://hub.example/user/ana/api/exec/v1/"
    ]
    assert api_candidates("https://hub.example/jh/user/ana") == [
        "https://hub.example/jh/user/ana/api/exec/v1/"
    ]
    # A browser URL of a server with a base_url: the front end's path is cut, longest prefix first.
    assert api_candidates("http://h/a/b/lab/tree/x.ipynb") == [
        "http://h/a/b/api/exec/v1/",
        "http://h/a/api/exec/v1/",
        "http://h/api/exec/v1/",
    ]
    with pytest.raises(BadRequestError, match="is not a server address"):
        api_candidates("127.0.0.1:8888")
    assert (
        hub_token_page("https://hub.example/jh/user/ana/api/exec/v1/")
        == "https://hub.example/jh/hub/token"
    )
    assert hub_token_page("http://127.0.0.1:8888/api/exec/v1/") is None


def test_vs_code_is_told_what_to_do_in_vs_code() -> None:
    assert "started by VS Code" in not_found_fix({"VSCODE_PID": "1"})
    assert "python.envFile" in not_found_fix({"VSCODE_PID": "1"})
    other = not_found_fix({})
    assert "Start JupyterLab" not in other and "%sandbox_connect URL" in other


@pytest.fixture
def bare_kernel(tmp_path: Path) -> Iterator[LiveKernel]:
    """A kernel as VS Code starts it: no server's variables, no running server it could list."""
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    kernel = LiveKernel(
        kernel_environment({"JUPYTER_RUNTIME_DIR": str(runtime), "VSCODE_PID": "4242"}), tmp_path
    )
    yield kernel
    kernel.shutdown()


def test_load_ext_without_a_server_says_what_to_do_in_vs_code(bare_kernel: LiveKernel) -> None:
    out = bare_kernel.run("%load_ext jupyter_exec_ext")
    assert out.error is None
    assert out.stderr.startswith("jupyter_exec_ext: no server found yet")
    assert "started by VS Code" in out.stderr and "%sandbox_connect URL" in out.stderr
    assert "Start JupyterLab" not in out.stderr
    failed = bare_kernel.run("%%sandbox\nprint(1)")
    assert failed.error is not None and "started by VS Code" in failed.error["traceback"][0]


def test_sandbox_connect_with_the_servers_address_asks_the_token_in_a_password_box(
    bare_kernel: LiveKernel, live_server: LiveServer, no_leaks
) -> None:
    assert bare_kernel.run("%load_ext jupyter_exec_ext").error is None
    # As copied from the browser: the server's base_url plus the front end's path.
    out = bare_kernel.run(
        f"%sandbox_connect {live_server.base}lab/tree/ex.ipynb", answers=[live_server.token]
    )
    assert out.error is None, out.error
    assert len(out.prompts) == 1 and out.prompts[0][1] is True  # a password box
    assert out.prompts[0][0].startswith(f"Token for {live_server.api} ")
    assert out.stdout.strip() == f"connected to {live_server.api}; sandbox ready."
    assert live_server.token not in out.stdout + out.stderr
    ran = bare_kernel.run("%%sandbox\nprint(6 * 7)")
    assert ran.stdout.startswith("42\n"), ran
    graded = bare_kernel.run("%%submit strings-palindrome\n" + role_source(PALINDROME, "solution"))
    assert "score: 7 / 7" in graded.text()
    # The widget uses the connected server too.
    widget = bare_kernel.run(
        "from jupyter_exec_ext.kernel import ExerciseWidget\n"
        "print(ExerciseWidget('strings-palindrome').client.base_url)"
    )
    assert widget.stdout.strip() == live_server.api
    status = bare_kernel.run("%sandbox_status")
    assert status.stdout.startswith(f"server: {live_server.api} (found through %sandbox_connect)")


def test_sandbox_connect_with_a_wrong_or_empty_token(
    bare_kernel: LiveKernel, live_server: LiveServer
) -> None:
    bare_kernel.run("%load_ext jupyter_exec_ext")
    wrong = bare_kernel.run(f"%sandbox_connect {live_server.api}", answers=["not-the-token"])
    assert wrong.error is not None and wrong.error["ename"] == "AuthenticationError"
    message = wrong.error["traceback"][0]
    assert (
        "the token typed at %sandbox_connect was refused" in message
        and "jupyter server list" in message
    )
    empty = bare_kernel.run(f"%sandbox_connect {live_server.base}", answers=[""])
    assert "needs a token and none was given" in empty.error["traceback"][0]
    assert "run %sandbox_connect again" in empty.error["traceback"][0]


def test_sandbox_connect_to_something_else_names_what_was_tried(
    bare_kernel: LiveKernel, live_server: LiveServer
) -> None:
    bare_kernel.run("%load_ext jupyter_exec_ext")
    # The server's origin without its base_url: jupyter_server answers 404 pages there.
    origin = f"http://127.0.0.1:{live_server.port}/"
    out = bare_kernel.run(f"%sandbox_connect {origin}")
    assert out.error is not None and out.prompts == []  # no token asked for a wrong address
    message = out.error["traceback"][0]
    assert message.startswith(f"ServerNotFoundError: no jupyter_exec_ext API answers at {origin}")
    assert f"{origin}api/exec/v1/health" in message and "jupyter server extension list" in message


def test_sandbox_connect_headless_says_to_use_the_variables(
    bare_kernel: LiveKernel, live_server: LiveServer
) -> None:
    bare_kernel.run("%load_ext jupyter_exec_ext")
    out = bare_kernel.run(f"%sandbox_connect {live_server.base}", allow_stdin=False)
    message = out.error["traceback"][0]
    assert (
        "cannot ask for the token" in message
        and f"JUPYTER_EXEC_EXT_URL={live_server.api}" in message
    )


def test_env_file_variables_are_found_and_named(
    live_server: LiveServer, tmp_path: Path, no_leaks
) -> None:
    """What a .env file gives a kernel VS Code starts: the two variables."""
    kernel = LiveKernel(
        kernel_environment(
            {**live_server.kernel_env(), "VSCODE_PID": "4242", "JUPYTER_RUNTIME_DIR": str(tmp_path)}
        ),
        tmp_path,
    )
    try:
        out = kernel.run("%load_ext jupyter_exec_ext")
        assert out.stdout.strip() == (
            f"jupyter_exec_ext: using the server at {live_server.api}, found "
            "from the environment (JUPYTER_EXEC_EXT_URL and JUPYTER_EXEC_EXT_TOKEN)."
        )
        assert kernel.run("%%sandbox\nprint('from vs code')").stdout.startswith("from vs code\n")
    finally:
        kernel.shutdown()


def test_the_environment_wins_over_a_local_server_and_says_so(
    live_server: LiveServer, tmp_path: Path
) -> None:
    # A second server of the same user in the runtime folder (a file as jupyter_server writes one,
    # with a live pid): the kernel must not silently switch to it.
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    other = "http://127.0.0.1:1/other/"
    (runtime / f"jpserver-{os.getpid()}.json").write_text(
        json.dumps(
            {
                "url": other,
                "pid": os.getpid(),
                "token": "x",
                "base_url": "/other/",
                "root_dir": str(tmp_path),
                "hostname": "127.0.0.1",
                "port": 1,
                "secure": False,
                "sock": "",
                "password": False,
                "version": "2",
            }
        )
    )
    kernel = LiveKernel(
        kernel_environment({**live_server.kernel_env(), "JUPYTER_RUNTIME_DIR": str(runtime)}),
        tmp_path,
    )
    try:
        lines = kernel.run("%load_ext jupyter_exec_ext").stdout.splitlines()
        assert lines[0].startswith(
            f"jupyter_exec_ext: using the server at {live_server.api}, found from the environment"
        )
        assert other in lines[1] and "the explicit environment wins" in lines[1]
    finally:
        kernel.shutdown()


def test_running_server_list_is_named_as_the_source(
    live_server: LiveServer, tmp_path: Path
) -> None:
    kernel = LiveKernel(
        kernel_environment({"JUPYTER_RUNTIME_DIR": str(live_server.runtime_dir)}), tmp_path
    )
    try:
        out = kernel.run("%load_ext jupyter_exec_ext")
        assert out.stdout.startswith(
            f"jupyter_exec_ext: using the server at {live_server.api}, found "
            "from jupyter_server's list of running servers (list_running_servers()"
        )
    finally:
        kernel.shutdown()


def test_base_url_instead_of_the_api_url_names_the_fix(live_server: LiveServer) -> None:
    client = ExecClient.discover(
        {"JUPYTER_EXEC_EXT_URL": live_server.base, "JUPYTER_EXEC_EXT_TOKEN": live_server.token}
    )
    with pytest.raises(APINotFoundError) as caught:
        client.status()
    message = str(caught.value)
    assert "is the Jupyter server's base URL, not the extension's API URL" in message
    assert f"set JUPYTER_EXEC_EXT_URL to {live_server.api}" in message
    assert "ExerciseNotFoundError" not in type(caught.value).__name__


def test_missing_token_is_named_as_missing(live_server: LiveServer) -> None:
    client = ExecClient.discover({"JUPYTER_EXEC_EXT_URL": live_server.api})
    with pytest.raises(AuthenticationError) as caught:
        client.status()
    message = str(caught.value)
    assert "needs a token and none was given" in message
    assert (
        "JUPYTER_EXEC_EXT_TOKEN is empty or not set" in message
        and "is the token current" not in message
    )


def test_a_kernel_the_server_starts_needs_no_set_up(live_server: LiveServer, no_leaks) -> None:
    """docs/vscode.md path 1: VS Code connected to a running server asks the server for a kernel
    (POST api/kernels) and talks to it; that kernel has the server's variables."""
    import urllib.request

    from jupyter_client import BlockingKernelClient

    def call(method: str, path: str) -> dict:
        request = urllib.request.Request(
            live_server.base + path,
            method=method,
            data=b"" if method == "POST" else None,
            headers={"Authorization": f"token {live_server.token}"},
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            return json.loads(answer.read() or b"{}")

    kernel_id = call("POST", "api/kernels")["id"]
    try:
        client = BlockingKernelClient()
        client.load_connection_file(str(live_server.runtime_dir / f"kernel-{kernel_id}.json"))
        # No heartbeat: without a manager, a heartbeat not yet beating reads as a dead kernel.
        client.start_channels(hb=False)
        try:
            client.wait_for_ready(timeout=60)
            seen: list[str] = []

            def hook(msg: dict) -> None:
                if msg["msg_type"] == "stream":
                    seen.append(msg["content"]["text"])

            client.execute_interactive("%load_ext jupyter_exec_ext", output_hook=hook, timeout=60)
            assert "".join(seen).startswith(
                f"jupyter_exec_ext: using the server at {live_server.api}, "
                "found from the environment"
            )
            seen.clear()
            client.execute_interactive(
                "%%sandbox\nprint('no set-up')", output_hook=hook, timeout=60
            )
            assert "".join(seen).startswith("no set-up\n")
        finally:
            client.stop_channels()
    finally:
        call("DELETE", f"api/kernels/{kernel_id}")
