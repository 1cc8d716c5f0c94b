"""Live sandbox runs in a real browser: Debian's chromium, driven by Playwright, against a real
JupyterLab whose server runs code in the real Docker sandbox over the live WebSocket.

- A program printing once a second shows its lines before it ends, with the elapsed time against
  the limit, and the status item follows the run at once.
- Stop (the box's button), the kernel toolbar's ■ and the palette command end an infinite loop,
  which then reads "stopped" (status ``cancelled``).
- ``input()`` with two prompts: a labelled field per prompt, Enter sends the line; Ctrl+D sends
  end of input.
- A matplotlib figure is shown inline, with alt text, when the executor image has matplotlib.

The browser flows are in labextension/ui-tests/live.mjs. With ``E2E_DOCS_DIR`` set
(scripts/docs-screenshots.sh does), the README's screenshots are written there. Under ``CI=true``
a missing chromium, node, node package or (for the figure) matplotlib in the image fails the test.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import urllib.request

import nbformat
import pytest

from ..conftest import TEST_OWNER, require
from ..live_server import start_server
from .test_e2e import CHROMIUM, LABEXT, require_browser

SCRIPT = LABEXT / "ui-tests" / "live.mjs"
ARTIFACTS = LABEXT / "ui-tests" / "artifacts-live"


@pytest.fixture
def live_lab(tmp_path, executor_image, no_leaks):
    """JupyterLab on a random port serving one plain notebook (one empty code cell)."""
    root = tmp_path / "root"
    root.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("")]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, root / "live.ipynb")
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    server = start_server(
        tmp_path,
        {
            "image": executor_image,
            "owner": TEST_OWNER,
            "pool_size": 0,
            "cache_enabled": False,
            "reap_interval": 0,
        },
        app="lab",
        token=secrets.token_hex(16),
        root_dir=root,
        env={
            "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
        },
    )
    try:
        yield server
    finally:
        server.stop()


def execute(server, code: str) -> dict:
    request = urllib.request.Request(
        server.api + "execute",
        data=json.dumps({"code": code}).encode(),
        headers={"Authorization": f"token {server.token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.load(answer)


def browse(server, flow: str) -> dict:
    node = require_browser()
    artifacts = ARTIFACTS / flow
    shutil.rmtree(artifacts, ignore_errors=True)
    run = subprocess.run(
        [node, str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=420,
        cwd=LABEXT,
        env={
            **os.environ,
            "E2E_URL": server.base,
            "E2E_TOKEN": server.token,
            "E2E_NOTEBOOK": "live.ipynb",
            "E2E_ARTIFACTS": str(artifacts),
            "E2E_CHROMIUM": CHROMIUM,
            "E2E_FLOW": flow,
        },
    )
    assert run.returncode == 0, (
        f"browser test failed (screenshots in {artifacts}):\n{run.stdout}\n{run.stderr}\n"
        f"server log tail:\n{server.log_path.read_text()[-3000:]}"
    )
    report = json.loads((artifacts / "report.json").read_text())
    assert report["result"] == "passed"
    return report


def test_streaming_stop_and_input_in_chromium(live_lab):
    report = browse(live_lab, "live")
    steps = {s["name"]: s for s in report["steps"]}
    assert list(steps) == [
        "output streams while the program runs",
        "Stop ends an infinite loop",
        "the kernel toolbar ■ stops the sandbox run",
        "the palette command stops the sandbox run",
        "the input field is labelled, focused and keyboard-reachable",
        "input() with two prompts",
        "Ctrl+D ends the input",
    ]
    streaming = steps["output streams while the program runs"]
    # Four ticks a second apart: the first line shows seconds before the end.
    assert streaming["endedAfter"] - streaming["firstLineAfter"] >= 2500, streaming
    assert "limit" in streaming["facts"], streaming
    assert steps["Stop ends an infinite loop"]["stoppedAfter"] < 5000
    assert "Hello Ann, you are 7" in steps["input() with two prompts"]["transcript"]
    assert all(not v for v in report["a11y"].values()), report["a11y"]
    # The box while running, ended, stopped and asking for input; in the light and dark themes.
    assert set(report["a11y"]) == {
        "running (JupyterLab Light)",
        "ended ok (JupyterLab Light)",
        "stopped (JupyterLab Light)",
        "stopped (JupyterLab Dark)",
        "input (JupyterLab Dark)",
    }, report["a11y"]


def test_matplotlib_figure_in_chromium(live_lab):
    probe = execute(live_lab, "import matplotlib")
    require(
        probe["status"] == "ok",
        "the executor image has no matplotlib (build it with the scientific stack): "
        f"{probe.get('message') or probe.get('stderr', '')[-200:]}",
    )
    report = browse(live_lab, "figure")
    figure = report["steps"][0]
    assert figure["name"] == "matplotlib figure shown inline"
    assert figure["width"] > 100 and figure["height"] > 100 and "Figure 1" in figure["alt"]
