"""The lab extension in a real browser: Debian's chromium, driven by Playwright, against a real
JupyterLab whose server runs code in the real Docker sandbox.

Under ``CI=true`` a missing chromium, node, lab extension build or node package fails these tests
instead of skipping them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from jupyter_exec_ext.grading.release import release

from ..conftest import TEST_OWNER, require
from ..live_server import start_server

REPO = Path(__file__).resolve().parents[2]
LABEXT = REPO / "labextension"
E2E_SCRIPT = LABEXT / "ui-tests" / "e2e.mjs"
#: Kept after the run (gitignored): one screenshot per step, the failure screenshot, report.json.
ARTIFACTS = LABEXT / "ui-tests" / "artifacts"
CHROMIUM = os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium")
EXERCISE = REPO / "exercises" / "02-lists-average.ipynb"
STEP_SCREENSHOTS = [
    "01-run-in-sandbox.png",
    "02-submit-wrong.png",
    "03-run-error.png",
    "04-run-fixed.png",
    "05-submit-passed.png",
    "results-panel-failing.png",
    "results-panel-passing.png",
]


def jupyter(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jupyter", *args],
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def require_browser() -> str:
    """node's path, once node, chromium and the node packages of the browser tests are there."""
    node = shutil.which("node")
    require(node is not None, "node is not installed (Debian package nodejs)")
    require(os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is missing (Debian package chromium)")
    require(
        (LABEXT / "node_modules" / "playwright-core").is_dir(),
        "labextension/node_modules is missing: run `npm install` in labextension/",
    )
    return node


def test_lab_extension_is_installed_and_enabled():
    """What `pip install` promises: JupyterLab lists the prebuilt extension, enabled and OK."""
    listing = jupyter("labextension", "list")
    lines = [
        line
        for line in (listing.stdout + listing.stderr).splitlines()
        if "jupyter-exec-ext" in line
    ]
    require(
        bool(lines),
        "the lab extension is not installed (pip install -e . builds it; needs node and npm)",
    )
    assert "enabled" in lines[0] and "OK" in lines[0], lines[0]
    installed = Path(sys.prefix, "share", "jupyter", "labextensions", "jupyter-exec-ext")
    schema = json.loads((installed / "schemas" / "jupyter-exec-ext" / "plugin.json").read_text())
    # Declared in the settings schema, so an admin can hide the buttons.
    names = {item["name"] for item in schema["jupyter.lab.toolbars"]["Notebook"]}
    assert names == {"run-in-sandbox", "submit-exercise", "exercise-authoring"}
    assert [item["name"] for item in schema["jupyter.lab.toolbars"]["Cell"]] == ["exercise-role"]


@pytest.fixture
def lab_server(tmp_path, executor_image, no_leaks):
    """JupyterLab on a random port serving a student copy of an exercise; the server grades
    against the authoritative copy in exercises/. Its settings and workspaces live in tmp_path.
    The same server serves Notebook 7 (``notebooks/…``), installed with the test extras."""
    root = tmp_path / "root"
    root.mkdir()
    release(EXERCISE, root / "lists-average.ipynb")
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    # The "get Jupyter news?" toast would cover the notebook in the screenshots.
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
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
            "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
        },
    )
    try:
        request = urllib.request.Request(
            server.api + "docker/status", headers={"Authorization": f"token {server.token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert json.load(answer)["docker"]["reachable"], "the server cannot reach Docker"
        yield {
            "url": server.base,
            "token": server.token,
            "notebook": "lists-average.ipynb",
            "log": server.log_path,
            "settings": tmp_path / "settings",
        }
    finally:
        server.stop()


def require_notebook7() -> None:
    try:
        import notebook  # noqa: F401  (Notebook 7, from the test extras)
    except ImportError:
        require(False, "Notebook 7 is not installed (pip install -e '.[test]' installs `notebook`)")


@pytest.mark.parametrize("frontend", ["lab", "notebook"])
def test_run_and_submit_in_chromium(lab_server, frontend):
    """In JupyterLab and in Notebook 7: open the student copy, run a cell in the sandbox and see
    its output, submit a wrong solution and see failing tests (a quick repeat asks first), run a
    failing program; then, in the dark theme and with the keyboard alone, fix the code, run it,
    submit from the palette and read the results. axe-core (WCAG 2.1 A/AA) finds no violation
    in the extension's nodes in any of these states, in either theme."""
    node = require_browser()
    if frontend == "notebook":
        require_notebook7()
    artifacts = ARTIFACTS / frontend
    shutil.rmtree(artifacts, ignore_errors=True)
    run = subprocess.run(
        [node, str(E2E_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=LABEXT,
        env={
            **os.environ,
            "E2E_URL": lab_server["url"],
            "E2E_TOKEN": lab_server["token"],
            "E2E_NOTEBOOK": lab_server["notebook"],
            "E2E_ARTIFACTS": str(artifacts),
            "E2E_CHROMIUM": CHROMIUM,
            "E2E_FRONTEND": frontend,
            "E2E_SETTINGS_DIR": str(lab_server["settings"]),
        },
    )
    assert run.returncode == 0, (
        f"browser test failed (screenshots in {artifacts}):\n{run.stdout}\n{run.stderr}\n"
        f"server log tail:\n{lab_server['log'].read_text()[-3000:]}"
    )
    report = json.loads((artifacts / "report.json").read_text())
    assert report["result"] == "passed"
    assert [s["name"] for s in report["steps"]] == [
        "notebook open: toolbar buttons and status item shown",
        "run in sandbox (toolbar)",
        "submit wrong solution",
        "repeat within seconds asks first",
        "run a failing program",
        "run fixed code (keyboard, shortcut)",
        "submit fixed solution (keyboard)",
    ]
    opened = report["steps"][0]
    assert opened["status"] == "Sandbox: ready"
    assert opened["statusWhere"] == ("status bar" if frontend == "lab" else "toolbar")
    wrong, fixed = report["steps"][2], report["steps"][6]
    assert wrong["failedTests"] > 0 and wrong["score"] != fixed["score"]
    assert wrong["summary"].startswith("Results: ") and ", score " in wrong["summary"]
    assert fixed["score"] == "Score: 7 / 7" and fixed["passed"] == fixed["total"]
    assert (
        fixed["summary"]
        == f"Results: {fixed['total']} of {fixed['total']} tests pass, score 7 of 7"
    )
    # Notebook 7's shell cannot split its main area: the panel went elsewhere, and showed.
    assert (
        wrong["placement"] == "split"
        if frontend == "lab"
        else wrong["placement"] in ("side", "inline")
    )
    # A double click while the first was in flight, a cancelled repeat, then one more: two sent.
    assert len(report["submitRequests"]) == 2
    if frontend == "notebook":  # its file browser shows no sandbox state, and nothing polled
        assert report["treePolls"] == 0
    # axe-core ran over every state in both themes, and found nothing (else the script failed).
    audited = {(a["theme"], a["state"]) for a in report["axe"]}
    for theme in ("light", "dark"):
        for state in (
            "toolbar and status",
            "output box running",
            "output box ok",
            "output box error",
        ):
            assert (theme, state) in audited, (theme, state)
    assert any(state.startswith("results panel") for _, state in audited)
    assert all(a["violations"] == 0 for a in report["axe"])
    for name in STEP_SCREENSHOTS:
        assert (artifacts / name).stat().st_size > 1000, f"screenshot {name} is missing or empty"
    if os.environ.get("E2E_DOCS_DIR"):  # scripts/docs-screenshots.sh: the README's pictures
        docs = Path(os.environ["E2E_DOCS_DIR"])
        shutil.copyfile(
            artifacts / "02-submit-wrong.png",
            docs / ("results-panel.png" if frontend == "lab" else "notebook7-results.png"),
        )
        shutil.copyfile(
            artifacts / "05-submit-passed.png",
            docs
            / ("results-panel-dark.png" if frontend == "lab" else "notebook7-results-dark.png"),
        )
