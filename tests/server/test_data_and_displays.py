"""POST execute with an exercise's data files (``exercise_id``) and with figures (``displays``),
through the real server and engine."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from jupyter_exec_ext.sandbox.image import FLAVOUR_LABEL

from ..conftest import require
from ..grading.notebooks import exercise_notebook, write_notebook

docker_needed = pytest.mark.docker


@pytest.fixture
def exercises_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "course"
    write_notebook(
        folder / "week1" / "data.ipynb", exercise_notebook("with-data", data_files=["table.csv"])
    )
    (folder / "week1" / "table.csv").write_text("a,b\n1,2\n")
    write_notebook(
        folder / "broken.ipynb", exercise_notebook("broken-data", data_files=["gone.csv"])
    )
    return folder


@pytest.fixture
def exec_ext_config(exercises_dir: Path) -> dict:
    return {"exercises_dir": str(exercises_dir)}


READ = "import os\nprint(sorted(os.listdir('.')))\nprint(open('table.csv').read(), end='')\n"


@docker_needed
async def test_a_run_from_an_exercise_notebook_has_its_data_files(api, executor_image, no_leaks):
    status, body, _ = await api("POST", "execute", {"code": READ, "exercise_id": "with-data"})
    assert status == 200, body
    assert body["status"] == "ok", body
    assert body["stdout"] == "['table.csv']\na,b\n1,2\n"
    status, body, _ = await api("POST", "execute", {"code": READ})
    assert status == 200 and body["status"] == "runtime_error", body
    assert "FileNotFoundError" in body["stderr"]


@pytest.mark.parametrize("exercise_id", ["nope", "../week1/table.csv", "/etc/passwd"])
async def test_an_unknown_exercise_id_is_404_and_runs_nothing(api, exercise_id):
    status, body, _ = await api("POST", "execute", {"code": "print(1)", "exercise_id": exercise_id})
    assert status == 404, body
    assert "unknown exercise" in body["message"]


async def test_a_missing_data_file_is_409_naming_it_without_server_paths(api, exercises_dir):
    status, body, _ = await api(
        "POST", "execute", {"code": "print(1)", "exercise_id": "broken-data"}
    )
    assert status == 409, body
    assert "data file 'gone.csv' is missing" in body["message"]
    assert str(exercises_dir) not in body["message"]
    status, body, _ = await api("POST", "exercises/broken-data/submit", {"code": "print(1)"})
    assert status == 409 and "gone.csv" in body["message"], body


async def test_exercise_id_must_be_a_string(api):
    status, body, _ = await api("POST", "execute", {"code": "print(1)", "exercise_id": 5})
    assert status == 400 and "exercise_id must be a string" in body["message"], body


@docker_needed
async def test_figures_come_back_in_the_answer(api, docker_client, executor_image, no_leaks):
    labels = docker_client.api.inspect_image(executor_image)["Config"].get("Labels") or {}
    require(labels.get(FLAVOUR_LABEL) == "science", f"{executor_image} is not the scientific image")
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()\n"
    status, body, _ = await api("POST", "execute", {"code": code})
    assert status == 200 and body["status"] == "ok", body
    assert [d["mime"] for d in body["displays"]] == ["image/png"]
    assert base64.b64decode(body["displays"][0]["data"]).startswith(b"\x89PNG\r\n\x1a\n")
    status, body, _ = await api("POST", "execute", {"code": "print(1)"})
    assert "displays" not in body


@docker_needed
async def test_a_live_run_from_an_exercise_notebook_has_its_data_files(
    jp_ws_fetch, exercises_dir, executor_image, no_leaks
):
    from .test_live_ws import WS, Client

    client = Client(await jp_ws_fetch(*WS))
    try:
        await client.send({"type": "run", "code": READ, "exercise_id": "with-data"})
        messages = await client.until("result")
        assert messages[-1]["status"] == "ok", messages[-1]
        assert messages[-1]["stdout"] == "['table.csv']\na,b\n1,2\n"
        # An unknown exercise and a missing file: an error naming it, and the socket goes on.
        await client.send({"type": "run", "code": "print(1)", "exercise_id": "nope"})
        refused = await client.until("error")
        assert "unknown exercise 'nope'" in refused[-1]["message"], refused
        await client.send({"type": "run", "code": "print(1)", "exercise_id": "broken-data"})
        refused = await client.until("error")
        assert "data file 'gone.csv' is missing" in refused[-1]["message"], refused
        assert str(exercises_dir) not in refused[-1]["message"]
        await client.send({"type": "run", "code": "print(2)"})
        assert (await client.until("result"))[-1]["stdout"] == "2\n"
    finally:
        client.close()
