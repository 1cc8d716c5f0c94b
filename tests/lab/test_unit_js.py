"""The lab extension's unit tests (request helper, result rendering, notebook reading), run by
node's test runner from README command 2. Under CI=true a missing node or node package fails."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..conftest import require

LABEXT = Path(__file__).resolve().parents[2] / "labextension"


def test_lab_extension_unit_tests_pass():
    node = shutil.which("node")
    require(node is not None, "node is not installed (Debian package nodejs)")
    require((LABEXT / "node_modules" / "esbuild").is_dir(),
            "labextension/node_modules is missing: run `npm install` in labextension/")
    run = subprocess.run([node, "test/run.mjs"], cwd=LABEXT, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    # node's runner prints its totals; a run that found no tests must not pass silently.
    assert "# fail 0" in run.stdout
    tests = int(run.stdout.split("# tests ")[1].split()[0])
    assert tests >= 10, run.stdout[-2000:]
