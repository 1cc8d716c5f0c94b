"""`jupyter exec-ext validate` and `release`, run as an instructor would."""

import pytest

from jupyter_exec_ext.cli import main

from ..conftest import TEST_OWNER
from .notebooks import exercise_notebook, write_notebook


@pytest.mark.docker
def test_validate_passes_a_good_exercise_and_shows_failing_tests_of_a_bad_one(
    tmp_path, capsys, executor_image, no_leaks, monkeypatch
):
    monkeypatch.setenv("DOCKER_EXECUTOR_IMAGE", executor_image)
    monkeypatch.setenv("DOCKER_EXECUTOR_OWNER", TEST_OWNER)
    good = write_notebook(tmp_path / "good.ipynb", exercise_notebook("good"))
    assert main(["validate", str(good)]) == 0
    out = capsys.readouterr().out
    assert "ok    " in out and "the reference solution passes 3/3 tests (4/4 points)" in out
    assert "1 exercise(s) checked, 0 problem(s)" in out

    bad = write_notebook(
        tmp_path / "bad.ipynb",
        exercise_notebook("bad", solution="def add(a, b):\n    return a - b\n"),
    )
    easy = write_notebook(
        tmp_path / "easy.ipynb",
        exercise_notebook("easy", starter="def add(a, b):\n    return a + b\n"),
    )
    breaks_policy = write_notebook(
        tmp_path / "policy.ipynb",
        exercise_notebook(
            "policy",
            policy={"profile": "safe", "forbidden_calls": ["sum"]},
            solution="def add(a, b):\n    return sum([a, b])\n",
        ),
    )
    assert main(["validate", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  " in out and "the reference solution fails 3 of 3 tests" in out
    assert (
        f"FAIL  {breaks_policy} (policy): the reference solution fails 3 of 3 tests (status policy_violation)"
        in out
    )
    assert "test 'small numbers' [failed]: expected '5' but got '-1'" in out
    # The instructor sees hidden tests' details too.
    assert (
        "test 'big numbers' [failed] (hidden): expected '1000000000001' but got '999999999999'"
        in out
    )
    assert f"WARN  {easy} (easy): the starter code already passes every test" in out
    assert "4 exercise(s) checked, 2 problem(s)" in out
    assert str(bad) in out


@pytest.mark.docker
def test_validate_is_not_held_by_the_submission_limit(
    tmp_path, capsys, executor_image, no_leaks, monkeypatch
):
    """Instructors check exercises as often as they like: the limit is the submit route's."""
    monkeypatch.setenv("DOCKER_EXECUTOR_IMAGE", executor_image)
    monkeypatch.setenv("DOCKER_EXECUTOR_OWNER", TEST_OWNER)
    monkeypatch.setenv("DOCKER_EXECUTOR_SUBMIT_RATE_LIMIT", "1")
    good = write_notebook(tmp_path / "good.ipynb", exercise_notebook("good"))
    for _ in range(3):
        assert main(["validate", str(good)]) == 0
        assert "the reference solution passes 3/3 tests" in capsys.readouterr().out


def test_validate_schema_only_names_the_problem(tmp_path, capsys):
    write_notebook(tmp_path / "a.ipynb", exercise_notebook("same"))
    write_notebook(tmp_path / "b.ipynb", exercise_notebook("same"))
    write_notebook(
        tmp_path / "c.ipynb",
        exercise_notebook("c", tests=[{"name": "t", "test_code": "x", "points": "1"}]),
    )
    assert main(["validate", "--schema-only", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "b.ipynb: exercise id 'same' is also used by" in out and "a.ipynb" in out
    assert "c.ipynb: test 't' (tests[0]) field 'points': '1' is not of type 'number'" in out


def test_validate_missing_path_is_a_clear_error(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope")]) == 2
    assert "no such file or directory" in capsys.readouterr().err


def test_release_command(tmp_path, capsys):
    src = write_notebook(tmp_path / "add.ipynb", exercise_notebook())
    assert main(["release", str(src), str(tmp_path / "student")]) == 0
    assert "wrote " in capsys.readouterr().out
    assert "return a + b" not in (tmp_path / "student" / "add.ipynb").read_text()
    assert main(["release", str(src), str(tmp_path / "student")]) == 2
    assert "pass --force" in capsys.readouterr().err


@pytest.mark.docker
@pytest.mark.timeout(900)  # every exercise's solution, starter and wrong solutions, graded for real
def test_every_sample_exercise_validates_in_the_real_sandbox(
    capsys, executor_image, no_leaks, monkeypatch
):
    from pathlib import Path

    monkeypatch.setenv("DOCKER_EXECUTOR_IMAGE", executor_image)
    monkeypatch.setenv("DOCKER_EXECUTOR_OWNER", TEST_OWNER)
    exercises = Path(__file__).resolve().parents[2] / "exercises"
    assert main(["validate", str(exercises)]) == 0
    out = capsys.readouterr().out
    count = len(list(exercises.glob("*.ipynb")))  # any subset of the course: count, do not assume
    assert count >= 12 and f"{count} exercise(s) checked, 0 problem(s)" in out
    assert "WARN" not in out


@pytest.mark.docker
def test_new_writes_an_exercise_that_validates_in_the_sandbox(
    tmp_path, capsys, executor_image, no_leaks, monkeypatch
):
    """`jupyter exec-ext new` then `validate`: every role, one test, the reference passes it."""
    import nbformat

    from jupyter_exec_ext.grading import load_exercise

    monkeypatch.setenv("DOCKER_EXECUTOR_IMAGE", executor_image)
    monkeypatch.setenv("DOCKER_EXECUTOR_OWNER", TEST_OWNER)
    monkeypatch.chdir(tmp_path)
    assert main(["new", "hello-name", "--title", "Say hello"]) == 0
    assert "wrote hello-name.ipynb" in capsys.readouterr().out
    path = tmp_path / "hello-name.ipynb"
    exercise = load_exercise(path)
    assert (exercise.id, exercise.title, len(exercise.tests)) == ("hello-name", "Say hello", 1)
    roles = [c.metadata["jupyter_exec"]["role"] for c in nbformat.read(str(path), 4).cells]
    assert roles == ["prompt", "starter", "solution"]
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "the reference solution passes 1/1 tests (1/1 points); the starter code scores 0" in out
    assert "WARN" not in out

    # Nothing is overwritten by accident, and a bad id says what an id may be.
    assert main(["new", "hello-name"]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["new", "Hello Name", "-o", str(tmp_path / "x")]) == 2
    assert "exercise id 'Hello Name' is not valid: use lowercase letters" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert main(["new", "second", "-o", str(tmp_path / "week2")]) == 0  # a folder, made for it
    assert load_exercise(tmp_path / "week2" / "second.ipynb").title == "Second"


def test_update_workspace_command(tmp_path, capsys):
    src = write_notebook(tmp_path / "exercises" / "add.ipynb", exercise_notebook())
    (tmp_path / "exercises" / "broken.ipynb").write_text("{")
    workspace = tmp_path / "workspace"
    assert main(["update-workspace", str(src.parent), str(workspace)]) == 1
    out = capsys.readouterr().out
    assert f"added         {workspace / 'add.ipynb'}" in out
    assert "skipped       " in out and "broken.ipynb: not a readable notebook" in out
    assert "return a + b" not in (workspace / "add.ipynb").read_text()


WRONG_ADDS = [
    {
        "name": "subtracts",
        "code": "def add(a, b):\n    return a - b\n",
        "reason": "mixed up the operator",
    },
    {
        "name": "small numbers only",
        "code": "def add(a, b):\n    return a + b if abs(a) < 100 else 0\n",
    },
    {"name": "prints instead of returning", "code": "def add(a, b):\n    print(a + b)\n"},
]


@pytest.mark.docker
def test_validate_reports_which_tests_catch_each_wrong_solution(
    tmp_path, capsys, executor_image, no_leaks, monkeypatch
):
    monkeypatch.setenv("DOCKER_EXECUTOR_IMAGE", executor_image)
    monkeypatch.setenv("DOCKER_EXECUTOR_OWNER", TEST_OWNER)
    caught = write_notebook(
        tmp_path / "caught.ipynb", exercise_notebook("caught", wrong_solutions=WRONG_ADDS)
    )
    assert main(["validate", str(caught)]) == 0
    out = capsys.readouterr().out
    assert "the reference solution passes 3/3 tests (4/4 points)" in out
    assert "      wrong solutions: 3/3 caught, 2/3 by a visible test\n" in out
    assert (
        "        'subtracts' 0/4: caught by 'small numbers', 'negatives', 'big numbers' (hidden)\n"
        in out
    )
    assert "        'small numbers only' 3/4: caught by 'big numbers' (hidden)\n" in out
    assert (
        "        'prints instead of returning' 0/4: caught by 'small numbers', 'negatives'" in out
    )

    # A wrong answer that scores full marks fails the exercise, and says which one.
    lucky = {
        "name": "adds with abs",
        "code": "def add(a, b):\n    return a + b if a + b >= -1 else -5\n",
    }
    uncaught = write_notebook(
        tmp_path / "uncaught.ipynb",
        exercise_notebook("uncaught", wrong_solutions=WRONG_ADDS[:1] + [lucky]),
    )
    assert main(["validate", str(uncaught)]) == 1
    out = capsys.readouterr().out
    assert (
        f"FAIL  {uncaught} (uncaught): 1 of 2 wrong solutions score full marks (no test catches them): "
        "'adds with abs'\n"
    ) in out
    assert "        'adds with abs' 4/4: NOT CAUGHT: it scores full marks\n" in out
    assert "1 exercise(s) checked, 1 problem(s)" in out


@pytest.mark.docker
def test_the_authoring_answer_carries_the_wrong_solution_table(sandbox):
    """`POST authoring/validate` answers ``check_exercise(...).to_dict()``."""
    import json

    from jupyter_exec_ext.grading import Grader, exercise_from_notebook
    from jupyter_exec_ext.grading.validation import check_exercise

    exercise = exercise_from_notebook(
        exercise_notebook(wrong_solutions=WRONG_ADDS[1:2]), "add.ipynb"
    )
    answer = json.loads(json.dumps(check_exercise(Grader(sandbox), exercise).to_dict()))
    assert answer["ok"] is True
    assert answer["wrong_solutions"] == [
        {
            "name": "small numbers only",
            "reason": "",
            "score": 3.0,
            "max_score": 4.0,
            "status": "ok",
            "caught": True,
            "caught_by_visible": False,
            "caught_by": [{"name": "big numbers", "hidden": True, "status": "failed"}],
        }
    ]


def test_build_stack_outside_a_checkout_says_it_needs_one(tmp_path, monkeypatch, capsys) -> None:
    """`build-stack` runs the checkout's deploy/build-offline.sh; an installed package has none."""
    import jupyter_exec_ext.cli as cli

    monkeypatch.setattr(
        cli, "__file__", str(tmp_path / "site-packages" / "jupyter_exec_ext" / "cli.py")
    )
    assert cli.main(["build-stack"]) == 2
    assert "needs a checkout of the repository" in capsys.readouterr().err
