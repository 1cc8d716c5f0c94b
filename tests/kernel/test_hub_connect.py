"""docs/vscode.md's JupyterHub path with the real hub (tests/hub's fixture: JupyterHub,
configurable-http-proxy, the executor service, user servers in remote mode): a kernel started by
jupyter_client outside the hub, with no server in its environment, reaches a student's server by
its hub user URL and a hub token — by ``%sandbox_connect`` and by the two variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..hub.test_hub import SOLUTION, Hub, hub, no_leaks  # noqa: F401  (fixtures of this module)
from .conftest import LiveKernel, kernel_environment

pytestmark = [pytest.mark.docker, pytest.mark.hub]


def test_a_hub_user_connects_with_the_user_url_and_a_hub_token(
    hub: Hub, tmp_path: Path, no_leaks
) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    kernel = LiveKernel(
        kernel_environment({"JUPYTER_RUNTIME_DIR": str(runtime), "VSCODE_PID": "1"}), tmp_path
    )
    try:
        assert "no server found yet" in kernel.run("%load_ext jupyter_exec_ext").stderr
        # The URL the browser shows for alice's notebook on the hub.
        out = kernel.run(
            f"%sandbox_connect {hub.url}/user/alice/lab/tree/add.ipynb",
            answers=[hub.tokens["alice"]],
        )
        api = f"{hub.url}/user/alice/api/exec/v1/"
        assert out.error is None, out.error
        assert out.prompts == [(f"Token for {api} (make one at {hub.url}/hub/token): ", True)]
        assert out.stdout.strip() == f"connected to {api}; sandbox ready."
        ran = kernel.run("%%sandbox\nprint(6 * 7)")
        assert ran.stdout.startswith("42\n") and "[ran in the sandbox: ok" in ran.stdout, ran
        # Live through the hub's proxy: output as it is printed, input from the kernel's stdin.
        live = kernel.run(
            "%%sandbox\nimport time\nprint('first', flush=True)\ntime.sleep(1.5)\n"
            "print('you said', input('say? '))",
            answers=["hi"],
        )
        first = next(at for at, name, text in live.streams if text.startswith("first"))
        assert live.ended_at - first >= 1.0, live.streams
        assert live.prompts == [("say? ", False)] and "you said hi\n" in live.stdout, live
        assert "live output: unavailable" not in kernel.run("%sandbox_status").stdout
        graded = kernel.run("%%submit add\n" + SOLUTION)
        assert graded.error is None, graded.error
        assert "score: 4 / 4 (graded in the sandbox)" in graded.text(), graded.text()

        wrong = kernel.run(f"%sandbox_connect {hub.url}/user/alice/", answers=["not-a-hub-token"])
        message = wrong.error["traceback"][0]
        assert "refused" in message and f"{hub.url}/hub/token" in message
    finally:
        kernel.shutdown()


def test_a_hub_user_url_in_the_environment(hub: Hub, tmp_path: Path, no_leaks) -> None:
    api = f"{hub.url}/user/bob/api/exec/v1/"
    kernel = LiveKernel(
        kernel_environment(
            {
                "JUPYTER_EXEC_EXT_URL": api,
                "JUPYTER_EXEC_EXT_TOKEN": hub.tokens["bob"],
                "JUPYTER_RUNTIME_DIR": str(tmp_path),
            }
        ),
        tmp_path,
    )
    try:
        assert (
            f"using the server at {api}, found from the environment"
            in kernel.run("%load_ext jupyter_exec_ext").stdout
        )
        ran = kernel.run("%%sandbox\nprint('hello from the hub')")
        assert ran.stdout.startswith("hello from the hub\n"), ran
    finally:
        kernel.shutdown()
