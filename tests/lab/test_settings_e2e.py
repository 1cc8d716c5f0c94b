"""The lab extension's settings in a real browser: Debian's chromium, driven by Playwright, against
a real JupyterLab whose server reaches the real Docker sandbox.

- ``statusPollInterval`` from the user's settings file sets how often ``docker/status`` is asked.
- In the Settings Editor, *Show the Submit button* off hides the toolbar's Submit at once, without
  a reload, and on brings it back; axe-core (WCAG 2.1 A/AA) finds nothing in either toolbar.
- In the Settings Editor, a longer poll interval applies at once.

The flow is labextension/ui-tests/settings.mjs. Under ``CI=true`` a missing chromium, node or node
package fails the test instead of skipping it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess

import pytest

from jupyter_exec_ext.grading.release import release

from ..conftest import TEST_OWNER
from ..live_server import start_server
from .test_e2e import CHROMIUM, EXERCISE, LABEXT, REPO, require_browser

SCRIPT = LABEXT / "ui-tests" / "settings.mjs"
ARTIFACTS = LABEXT / "ui-tests" / "artifacts-settings"
#: The poll interval the user's settings file sets (the schema's default is 10 s).
POLL_S = 2


@pytest.fixture
def settings_lab(tmp_path, executor_image, no_leaks):
    """JupyterLab serving a student copy of an exercise, with statusPollInterval set in the user's
    settings before it starts."""
    root = tmp_path / "root"
    root.mkdir()
    release(EXERCISE, root / "lists-average.ipynb")
    settings = tmp_path / "settings"
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (
        settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    ).write_text(json.dumps({"fetchNews": "false"}))
    (settings / "jupyter-exec-ext").mkdir()
    (settings / "jupyter-exec-ext" / "plugin.jupyterlab-settings").write_text(
        json.dumps({"statusPollInterval": POLL_S})
    )
    server = start_server(
        tmp_path,
        {
            "image": executor_image,
            "exercises_dir": str(REPO / "exercises"),
            "owner": TEST_OWNER,
            "pool_size": 0,
            "cache_enabled": False,
            "reap_interval": 0,
        },
        app="lab",
        token=secrets.token_hex(16),
        root_dir=root,
        env={
            "JUPYTERLAB_SETTINGS_DIR": str(settings),
            "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
        },
    )
    try:
        yield server, settings
    finally:
        server.stop()


def test_settings_take_effect_in_chromium(settings_lab):
    server, settings = settings_lab
    node = require_browser()
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    run = subprocess.run(
        [node, str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=LABEXT,
        env={
            **os.environ,
            "E2E_URL": server.base,
            "E2E_TOKEN": server.token,
            "E2E_NOTEBOOK": "lists-average.ipynb",
            "E2E_ARTIFACTS": str(ARTIFACTS),
            "E2E_CHROMIUM": CHROMIUM,
            "E2E_POLL_S": str(POLL_S),
        },
    )
    assert run.returncode == 0, (
        f"browser test failed (screenshots in {ARTIFACTS}):\n{run.stdout}\n{run.stderr}\n"
        f"server log tail:\n{server.log_path.read_text()[-3000:]}"
    )
    report = json.loads((ARTIFACTS / "report.json").read_text())
    assert report["result"] == "passed"
    steps = {s["name"]: s for s in report["steps"]}
    assert list(steps) == [
        "status polled at the interval of the settings file",
        "Show the Submit button off: the toolbar button goes at once",
        "Show the Submit button on: the toolbar button is back",
        "poll interval raised in the Settings Editor: polling slows down at once",
    ]
    polled = steps["status polled at the interval of the settings file"]
    # At the default 10 s there would be at most one poll in the window; at 2 s, four or more.
    assert polled["count"] >= 4 and polled["gaps"], polled
    assert all(POLL_S - 0.5 <= gap <= POLL_S + 1.5 for gap in polled["gaps"]), polled
    assert steps["Show the Submit button off: the toolbar button goes at once"]["width"] == 0
    assert (
        steps["poll interval raised in the Settings Editor: polling slows down at once"]["count"]
        == 0
    )
    assert [a["state"] for a in report["axe"]] == [
        "toolbar without Submit",
        "toolbar with Submit again",
    ]
    assert all(a["violations"] == 0 for a in report["axe"])
    # What the editor wrote is the user's settings file JupyterLab keeps.
    saved = (settings / "jupyter-exec-ext" / "plugin.jupyterlab-settings").read_text()
    assert '"statusPollInterval": 3600' in saved and '"showSubmit": true' in saved, saved
