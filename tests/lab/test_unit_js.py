"""The lab extension's unit tests (request helper, result rendering, notebook reading, commands,
settings), run by node's test runner from README command 2, and checks that the extension agrees
with the server and with its package.json. Under CI=true a missing node or node package fails."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from jupyter_exec_ext.grading import grader
from jupyter_exec_ext.sandbox.models import Status

from ..conftest import require

REPO = Path(__file__).resolve().parents[2]
LABEXT = REPO / "labextension"


def test_lab_extension_unit_tests_pass():
    node = shutil.which("node")
    require(node is not None, "node is not installed (Debian package nodejs)")
    require(
        (LABEXT / "node_modules" / "esbuild").is_dir(),
        "labextension/node_modules is missing: run `npm install` in labextension/",
    )
    run = subprocess.run(
        [node, "test/run.mjs"], cwd=LABEXT, capture_output=True, text=True, timeout=180
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    # node's runner prints its totals; a run that found no tests must not pass silently.
    assert "# fail 0" in run.stdout
    tests = int(run.stdout.split("# tests ")[1].split()[0])
    assert tests >= 10, run.stdout[-2000:]


def _ts_union(source: str, name: str) -> list[str]:
    """The string values of `export const NAME = [...] as const` in a TypeScript source."""
    match = re.search(rf"export const {name} = \[(.*?)\] as const;", source, re.S)
    assert match, f"{name} not found in labextension/src/types.ts"
    return re.findall(r"'([^']*)'", match.group(1))


def test_status_unions_are_the_servers():
    """The extension's `RunStatus` and `TestStatus` are exactly the statuses the server sends: the
    OpenAPI enums and the Python values they come from. A status added on one side only fails."""
    types = (LABEXT / "src" / "types.ts").read_text()
    api = yaml.safe_load((REPO / "jupyter_exec_ext" / "server" / "openapi.yaml").read_text())
    schemas = api["components"]["schemas"]
    run_statuses = _ts_union(types, "RUN_STATUSES")
    assert run_statuses == schemas["ExecutionResult"]["properties"]["status"]["enum"]
    assert set(run_statuses) == {status.value for status in Status}
    test_statuses = _ts_union(types, "TEST_STATUSES")
    assert test_statuses == schemas["TestResult"]["properties"]["status"]["enum"]
    assert set(test_statuses) == {
        grader.PASSED,
        grader.FAILED,
        grader.ERROR,
        grader.TIMEOUT,
        grader.MEMORY_LIMIT,
    }


def test_package_json_dependencies_match_the_imports():
    """Every package src/ imports is a declared dependency, and every declared dependency is
    imported by src/ (the build bundles what src/ imports; a stale declaration is dead weight)."""
    imported = set()
    for path in (LABEXT / "src").glob("*.ts"):
        for spec in re.findall(r"""(?:from|import)\s+'([^'.][^']*)'""", path.read_text()):
            parts = spec.split("/")
            imported.add("/".join(parts[:2]) if spec.startswith("@") else parts[0])
    declared = set(json.loads((LABEXT / "package.json").read_text())["dependencies"])
    assert imported - declared == set(), f"imported but not declared: {sorted(imported - declared)}"
    assert declared - imported == set(), f"declared but not imported: {sorted(declared - imported)}"
