"""The OpenAPI spec matches the route table, and schemathesis finds no 5xx on a live server that
runs code on the real engine."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from jupyter_exec_ext.server import NAMESPACE, OPENAPI_SPEC, ROUTES
from jupyter_exec_ext.server.authoring import AUTHORING_ROUTES
from jupyter_exec_ext.server.live import LIVE_ROUTES

from ..conftest import TEST_OWNER
from ..live_server import EXERCISES, start_server


#: Described in the spec, served once the grading package is wired in (issue 4, second half).
def spec() -> dict:
    return yaml.safe_load(OPENAPI_SPEC.read_text(encoding="utf-8"))


def served_paths() -> dict[str, list[str]]:
    """Spec-style path -> HTTP methods, from the route table."""
    served = {}
    for pattern, handler in ROUTES + AUTHORING_ROUTES + LIVE_ROUTES:
        path = "/" + pattern[len(NAMESPACE) + 1 :]
        served[re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", path)] = handler.allowed_methods()
    return served


def test_every_route_is_in_the_spec_with_its_methods() -> None:
    paths = spec()["paths"]
    for path, methods in served_paths().items():
        assert path in paths, f"{path} is served but not described"
        assert sorted(m.upper() for m in paths[path] if m != "parameters") == sorted(methods)


def test_every_described_route_is_served() -> None:
    assert set(spec()["paths"]) == set(served_paths())


def test_health_is_the_only_route_open_without_a_token() -> None:
    document = spec()
    assert document["security"] == [{"token": []}]
    open_routes = {
        path
        for path, item in document["paths"].items()
        for op in item.values()
        if isinstance(op, dict) and op.get("security") == []
    }
    assert open_routes == {"/health"}


def test_submit_describes_its_429_with_a_retry_after_header() -> None:
    """Rate limited (Retry-After) or out of attempts (no header: none will be graded)."""
    document = spec()
    answer = document["paths"]["/exercises/{exercise_id}/submit"]["post"]["responses"]["429"]
    header = answer["headers"]["Retry-After"]
    assert header["schema"] == {"type": "integer", "minimum": 1}
    assert "SubmitRateLimited" in answer["description"] and "max_attempts" in answer["description"]
    limited = document["components"]["responses"]["SubmitRateLimited"]
    assert "submit_rate_limit" in limited["description"]


@pytest.fixture
def live_server(tmp_path: Path, executor_image: str, no_leaks):
    """A real ``jupyter server`` process with the extension, a token and a non-default base_url."""
    server = start_server(
        tmp_path,
        {
            # Runs short enough for a bounded fuzzing session; per-user cap high enough that a
            # sequential fuzzer never meets 429 (which is not what this run checks).
            "image": executor_image,
            "owner": TEST_OWNER,
            "time_limit": 5.0,
            "max_time_limit": 5.0,
            "max_runs_per_user": 8,
            "reap_interval": 0.0,
            # The sample exercises, and a warm pool that stopping the server must drain.
            "exercises_dir": str(EXERCISES),
            "pool_size": 1,
            # An instructor's server, so the fuzzer reaches the authoring routes' handling of paths.
            "instructor": True,
            "workspace_dir": str(tmp_path / "workspace"),
        },
        token="schemathesis-token",
        base_url="/live%40/",
    )
    try:
        yield server.api.rstrip("/"), server.token, server.log_path
    finally:
        server.stop()


def _runs(api: str, token: str) -> dict:
    request = urllib.request.Request(
        f"{api}/docker/status", headers={"Authorization": f"token {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["runs"]


@pytest.mark.docker
def test_schemathesis_finds_no_server_error_on_a_live_server(live_server, tmp_path: Path) -> None:
    api, token, log_path = live_server
    report = tmp_path / "schemathesis.json"
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        str(OPENAPI_SPEC),
        "--url",
        api,
        "--header",
        f"Authorization: token {token}",
        # Every check, except two that ask what this API deliberately does otherwise:
        # missing credentials answer 403 (jupyter_server's convention, not 401), and the schema
        # cannot express the 16 MiB floor of memory sizes such as "1k", so positive-data
        # acceptance would flag a correct 400.
        "--checks",
        "all",
        "--exclude-checks",
        "missing_required_header,positive_data_acceptance",
        "--max-examples",
        "150",
        "--seed",
        "20240601",
        "--workers",
        "1",
        "--request-timeout",
        "60",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    # cwd: schemathesis keeps a cache folder in the working directory; not in the repository.
    run = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert run.returncode == 0, (run.stdout + run.stderr)[-6000:]

    result = json.loads(report.read_text())
    assert result["complete"] and result["operations"]["tested"] == (
        len(ROUTES) + len(AUTHORING_ROUTES) + len(LIVE_ROUTES)
    )
    assert result["test_cases"]["generated"] >= 100
    assert result["test_cases"]["with_failures"] == 0 and result["test_cases"]["errored"] == 0
    assert result["failures"] == [] and result["errors"] == []
    # The fuzzer really ran code on the engine, and the server answered no request with a 5xx.
    runs = _runs(api, token)
    assert runs["completed"] >= 5 and "error" not in runs["by_status"], runs
    server_errors = [
        line for line in log_path.read_text().splitlines() if re.search(r"status=5\d\d", line)
    ]
    assert not server_errors, server_errors[:5]
