"""Exercise notebooks: loading, the seed's test shape, and errors that name notebook, test and field."""

import json
from pathlib import Path

import pytest

from jupyter_exec_ext.grading import ExerciseError, exercise_from_notebook, load_exercise, schema
from jupyter_exec_ext.grading.exercise import (
    DataFilesError,
    Exercise,
    ExerciseNotFound,
    ExerciseTest,
    WrongSolution,
)
from jupyter_exec_ext.sandbox import DataFile, Limits

from .notebooks import exercise_notebook, write_notebook


def test_loads_prompt_starter_solution_tests_and_limits(tmp_path):
    path = write_notebook(
        tmp_path / "add.ipynb",
        exercise_notebook(
            limits={"time_limit": 5, "memory_limit": "128m"}, policy={"profile": "safe"}
        ),
    )
    ex = load_exercise(path)
    assert ex.id == "add" and ex.title == "Add"
    assert ex.prompt.startswith("Write `add(a, b)`")
    assert ex.starter_code == "def add(a, b):\n    pass\n"
    assert ex.solution_code == "def add(a, b):\n    return a + b\n"
    assert [t.name for t in ex.tests] == ["small numbers", "negatives", "big numbers"]
    assert ex.max_score == 4
    assert ex.resolved_limits().time_s == 5 and ex.resolved_limits().memory_mb == 128
    assert "os" not in ex.policy.allowed_modules
    first = ex.tests[0]
    assert (first.points, first.hidden, first.timeout, first.compare) == (1.0, False, 5.0, "strip")


def test_the_seeds_test_shape_is_accepted_as_it_is(tmp_path):
    seed_tests = [{"name": "t1", "test_code": "print(add(1, 1))", "expected_output": "2"}]
    ex = load_exercise(write_notebook(tmp_path / "s.ipynb", exercise_notebook(tests=seed_tests)))
    assert ex.tests[0].expected_output == "2" and ex.tests[0].points == 1


def test_public_view_has_no_hidden_tests_and_no_solution(tmp_path):
    ex = load_exercise(write_notebook(tmp_path / "add.ipynb", exercise_notebook()))
    public = json.dumps(ex.public_dict())
    assert "big numbers" not in public and "10**12" not in public and "1000000000001" not in public
    assert "return a + b" not in public
    data = ex.public_dict()
    assert [t["name"] for t in data["tests"]] == ["small numbers", "negatives"]
    assert data["hidden_tests"] == 1 and data["hidden_points"] == 1 and data["max_score"] == 4
    # The default 30 s for the code plus 5 s per test, the hidden one counted without being named.
    assert data["grading_time_limit"] == 45.0


@pytest.mark.parametrize(
    "tests, words",
    [
        (
            [{"name": "t", "test_code": "x", "points": -1}],
            "test 't' (tests[0]) field 'points': -1 is less than the minimum of 0",
        ),
        (
            [{"name": "t", "test_code": "x", "compare": "fuzzy"}],
            "test 't' (tests[0]) field 'compare'",
        ),
        ([{"name": "t"}], "test 't' (tests[0]): missing required field 'test_code'"),
        ([{"test_code": "x"}], "tests[0]: missing required field 'name'"),
        ([{"name": "t", "test_code": "x", "expect": "1"}], "test 't' (tests[0]): unknown field(s)"),
        ([{"name": "t", "test_code": "x", "timeout": 0}], "test 't' (tests[0]) field 'timeout'"),
        (
            [{"name": "t", "test_code": "print(("}],
            "test 't' (tests[0]): field 'test_code': not valid Python",
        ),
        (
            [{"name": "t", "test_code": "x", "compare": "regex", "expected_output": "("}],
            "test 't' (tests[0]): field 'expected_output': not a valid regular expression",
        ),
        (
            [{"name": "t", "test_code": "x"}, {"name": "t", "test_code": "y"}],
            "test 't' (tests[1]): field 'name': another test has the same name",
        ),
        ([], "field 'tests'"),
    ],
)
def test_invalid_tests_are_named(tmp_path, tests, words):
    path = write_notebook(tmp_path / "bad.ipynb", exercise_notebook(tests=tests))
    with pytest.raises(ExerciseError) as err:
        load_exercise(path)
    assert str(err.value).startswith(str(path) + ": ")
    assert words in str(err.value)


@pytest.mark.parametrize(
    "meta, words",
    [
        ({"exercise_id": "Bad Id!"}, "field 'exercise_id'"),
        (
            {"limits": {"memory_limit": "lots"}},
            "field 'limits': memory_limit must be a positive size",
        ),
        ({"limits": {"memory": "1g"}}, "field 'limits': unknown field(s)"),
        ({"policy": {"profile": "strict"}}, "field 'policy.profile'"),
        ({"colour": "red"}, "unknown field(s)"),
    ],
)
def test_invalid_metadata_is_named(tmp_path, meta, words):
    nb = exercise_notebook()
    nb.metadata["jupyter_exec"].update(meta)
    path = write_notebook(tmp_path / "bad.ipynb", nb)
    with pytest.raises(ExerciseError, match=None) as err:
        load_exercise(path)
    assert words in str(err.value), str(err.value)


def test_not_an_exercise_and_not_a_notebook(tmp_path):
    nb = exercise_notebook()
    del nb.metadata["jupyter_exec"]
    with pytest.raises(ExerciseError, match="not an exercise notebook"):
        exercise_from_notebook(nb, "plain.ipynb")
    junk = tmp_path / "junk.ipynb"
    junk.write_text("{not json")
    with pytest.raises(ExerciseError, match="junk.ipynb: not a readable notebook"):
        load_exercise(junk)
    with pytest.raises(ExerciseError, match="no such file"):
        load_exercise(tmp_path / "missing.ipynb")


def test_unknown_cell_role_is_named():
    nb = exercise_notebook()
    nb.cells[1].metadata["jupyter_exec"]["role"] = "answer"
    with pytest.raises(ExerciseError, match="unknown role 'answer'"):
        exercise_from_notebook(nb, "x.ipynb")


def test_schema_is_shipped_and_is_json_schema():
    data = schema()
    assert data["$schema"].endswith("2020-12/schema")
    assert set(data["properties"]) >= {"exercise_id", "title", "limits", "policy", "tests"}


def test_course_rules_are_read_from_the_metadata() -> None:
    exercise = exercise_from_notebook(
        exercise_notebook(
            due="2026-12-01T23:59:00+01:00", late="refuse", max_attempts=3, score_rule="last"
        )
    )
    assert exercise.due.isoformat() == "2026-12-01T23:59:00+01:00"
    assert (exercise.late_policy, exercise.max_attempts, exercise.score_rule) == (
        "refuse",
        3,
        "last",
    )
    assert exercise_from_notebook(exercise_notebook(due="2026-12-01T22:59:00Z")).due == exercise.due
    plain = exercise_from_notebook(exercise_notebook())
    assert (plain.due, plain.late_policy, plain.max_attempts, plain.score_rule) == (None,) * 4


@pytest.mark.parametrize(
    "meta, words",
    [
        (
            {"due": "2026-12-01T23:59:00"},
            "field 'due': '2026-12-01T23:59:00' has no time zone; add one, e.g. 2026-12-01T23:59:00Z",
        ),
        ({"due": "next friday"}, "field 'due': 'next friday' is not an ISO 8601 time"),
        ({"late": "maybe"}, "field 'late'"),
        ({"max_attempts": 0}, "field 'max_attempts'"),
        ({"score_rule": "average"}, "field 'score_rule'"),
    ],
)
def test_bad_course_rules_are_named(meta, words) -> None:
    with pytest.raises(ExerciseError) as refused:
        exercise_from_notebook(exercise_notebook(**meta), "week1/add.ipynb")
    assert words in str(refused.value) and "week1/add.ipynb" in str(refused.value)


def test_the_version_is_a_hash_of_what_grades_the_exercise() -> None:
    one = exercise_from_notebook(exercise_notebook())
    assert one.version == exercise_from_notebook(exercise_notebook(prompt="Reworded.")).version
    changed = exercise_from_notebook(
        exercise_notebook(
            tests=[
                {"name": "small numbers", "test_code": "print(add(2, 3))", "expected_output": "6"}
            ]
        )
    )
    assert changed.version != one.version and len(one.version) == 16


# -- every field read from the notebook, and what each view shows -----------------------------------


def test_every_field_of_a_test_is_read_from_the_notebook() -> None:
    exercise = exercise_from_notebook(
        exercise_notebook(
            tests=[
                {
                    "name": "mean",
                    "test_code": "print(mean([1, 2]))",
                    "expected_output": "1.5",
                    "points": 0.5,
                    "hidden": True,
                    "timeout": 2.5,
                    "compare": "float",
                    "tolerance": 0.01,
                },
                {"name": "plain", "test_code": "assert True"},
            ]
        )
    )
    assert exercise.tests == (
        ExerciseTest(
            name="mean",
            test_code="print(mean([1, 2]))",
            expected_output="1.5",
            points=0.5,
            hidden=True,
            timeout=2.5,
            compare="float",
            tolerance=0.01,
        ),
        ExerciseTest(
            name="plain",
            test_code="assert True",
            expected_output=None,
            points=1.0,
            hidden=False,
            timeout=5.0,
            compare="strip",
            tolerance=1e-6,
        ),
    )


def test_a_test_written_back_to_metadata_has_every_field_and_a_tolerance_only_when_float() -> None:
    float_test = ExerciseTest(
        name="m",
        test_code="print(1.5)",
        expected_output="1.5",
        points=0.5,
        hidden=True,
        timeout=2.5,
        compare="float",
        tolerance=0.01,
    )
    assert float_test.to_metadata() == {
        "name": "m",
        "test_code": "print(1.5)",
        "expected_output": "1.5",
        "points": 0.5,
        "hidden": True,
        "timeout": 2.5,
        "compare": "float",
        "tolerance": 0.01,
    }
    assert "tolerance" not in ExerciseTest(name="s", test_code="x", tolerance=0.5).to_metadata()
    # What is written back reads back as the same test.
    again = exercise_from_notebook(exercise_notebook(tests=[float_test.to_metadata()])).tests[0]
    assert again == float_test
    assert float_test.public_dict() == {
        "name": "m",
        "test_code": "print(1.5)",
        "expected_output": "1.5",
        "points": 0.5,
        "compare": "float",
    }


def test_fractional_points_add_up_to_four_decimals() -> None:
    exercise = exercise_from_notebook(
        exercise_notebook(
            tests=[
                {"name": "a", "test_code": "x", "points": 0.1},
                {"name": "b", "test_code": "x", "points": 0.2, "hidden": True},
                {"name": "c", "test_code": "x", "points": 0.33333, "hidden": True},
            ],
            requirements=[{"rule": "uses", "construct": "for", "points": 0.25}],
        )
    )
    assert exercise.max_score == 0.8833  # 0.88333, not 0.8833300000000001
    assert exercise.public_dict()["hidden_points"] == 0.5333
    assert exercise.summary() == {"id": "add", "title": "Add", "max_score": 0.8833}


def test_the_public_view_in_full() -> None:
    exercise = exercise_from_notebook(
        exercise_notebook(
            tests=[
                {
                    "name": "shown",
                    "test_code": "print(1)",
                    "expected_output": "1",
                    "timeout": 1.23456,
                },
                {"name": "secret", "test_code": "print(2)", "expected_output": "2", "hidden": True},
            ],
            limits={"time_limit": 10},
            policy={"forbidden_calls": ["sorted"]},
            requirements=[{"rule": "avoids", "construct": "while", "name": "no while"}],
            data_files=["data.csv"],
        )
    )
    assert exercise.public_dict() == {
        "id": "add",
        "title": "Add",
        "prompt": "Write `add(a, b)` that returns the sum of `a` and `b`.",
        "starter_code": "def add(a, b):\n    pass\n",
        "limits": {"time_limit": 10},
        "policy": {
            "allowed_modules": None,
            "forbidden_imports": [],
            "forbidden_calls": ["sorted"],
            "forbid_dunder_access": False,
        },
        "max_score": 3.0,
        "tests": [
            {
                "name": "shown",
                "test_code": "print(1)",
                "expected_output": "1",
                "points": 1.0,
                "compare": "strip",
            }
        ],
        "requirements": [
            {"name": "no while", "rule": "your code must not use a `while` loop", "points": 1.0}
        ],
        "data_files": ["data.csv"],
        "hidden_tests": 1,
        "hidden_points": 1.0,
        # 10 s for the code, then 1.23456 s and the default 5 s for the tests, to the millisecond.
        "grading_time_limit": 16.235,
    }
    # With the limits a submission gets (the server's defaults and maxima applied), those show.
    served = exercise.public_dict(Limits(time_s=20, memory_mb=128))
    assert served["limits"] == Limits(time_s=20, memory_mb=128).to_dict()
    assert served["grading_time_limit"] == 26.235
    assert exercise_from_notebook(exercise_notebook()).policy is None


def test_the_exercise_limits_apply_on_top_of_a_base() -> None:
    exercise = exercise_from_notebook(exercise_notebook(limits={"time_limit": 5}))
    assert exercise.resolved_limits(Limits(memory_mb=100, pids=7)) == Limits(
        memory_mb=100, pids=7, time_s=5
    )
    assert exercise.resolved_limits() == Limits(time_s=5)


def test_wrong_solutions_requirements_and_the_rest_of_the_metadata_are_read() -> None:
    exercise = exercise_from_notebook(
        exercise_notebook(
            wrong_solutions=[
                {"name": "minus", "code": "def add(a, b):\n    return a - b\n", "reason": "sign"},
                {"name": "none", "code": "def add(a, b):\n    pass\n"},
            ],
            requirements=[{"rule": "avoids", "construct": "while", "why": "use a for loop"}],
            student_copy=True,
            data_files=["a.csv", "b.txt"],
        ),
        "week1/add.ipynb",
    )
    assert exercise.wrong_solutions == (
        WrongSolution(name="minus", code="def add(a, b):\n    return a - b\n", reason="sign"),
        WrongSolution(name="none", code="def add(a, b):\n    pass\n", reason=""),
    )
    rule = exercise.requirements[0]
    assert (rule.name, rule.points, rule.requirement.why) == (
        "the code does not use a while loop",
        1.0,
        "use a for loop",
    )
    assert rule.requirement.check("while True:\n    break\n") == (
        "your code must not use a `while` loop: use a for loop"
    )
    assert exercise.student_copy is True and exercise.data_files == ("a.csv", "b.txt")
    assert exercise.path == Path("week1/add.ipynb")
    assert exercise.data_file_paths() == [Path("week1/a.csv"), Path("week1/b.txt")]
    plain = exercise_from_notebook(exercise_notebook())
    assert (plain.student_copy, plain.data_files, plain.wrong_solutions) == (False, (), ())
    assert plain.path == Path("<notebook>")
    assert Exercise(id="x", title="X", data_files=("d.csv",)).data_file_paths() == [Path("d.csv")]


@pytest.mark.parametrize(
    "meta, words",
    [
        (
            {
                "requirements": [
                    {"rule": "uses", "construct": "for", "name": "r"},
                    {"rule": "uses", "construct": "while", "name": "r"},
                ]
            },
            "x.ipynb: metadata jupyter_exec field 'requirements[1]': name 'r' is also the name of a test or "
            "another requirement",
        ),
        (
            {"wrong_solutions": [{"name": "w", "code": "x"}, {"name": "w", "code": "y"}]},
            "x.ipynb: metadata jupyter_exec field 'wrong_solutions[1]': another wrong solution is named 'w'",
        ),
        (
            {"tests": [{"name": 5, "test_code": "x"}]},
            "x.ipynb: tests[0] field 'name': 5 is not of type 'string'",
        ),
        ({"tests": ["x"]}, "x.ipynb: tests[0]: 'x' is not of type 'object'"),
        # Of several problems, the first by place in the metadata (limits before title).
        (
            {"title": 5, "limits": {"memory": "1g"}},
            "x.ipynb: metadata jupyter_exec field 'limits': unknown field(s) ('memory' was unexpected)",
        ),
    ],
)
def test_problems_are_named_exactly(meta, words) -> None:
    with pytest.raises(ExerciseError) as err:
        exercise_from_notebook(exercise_notebook(**meta), "x.ipynb")
    assert str(err.value) == words


def test_cells_give_prompt_starter_and_solution() -> None:
    # Plain dicts, as nbformat's JSON: a cell may lack metadata or source.
    meta = {"exercise_id": "a", "tests": [{"name": "t", "test_code": "x"}]}
    nb = {
        "metadata": {"jupyter_exec": meta},
        "cells": [
            {"cell_type": "markdown", "source": "First."},
            {"cell_type": "code", "source": "ignored = 1"},
            {"cell_type": "markdown", "metadata": {"jupyter_exec": "prompt"}, "source": "Second."},
            {
                "cell_type": "code",
                "metadata": {"jupyter_exec": {"role": "student"}},
                "source": "x = 1",
            },
            {
                "cell_type": "code",
                "metadata": {"jupyter_exec": {"role": "student"}},
                "source": "y = 2",
            },
            {"cell_type": "code", "metadata": {"jupyter_exec": {"role": "solution"}}},
        ],
    }
    exercise = exercise_from_notebook(nb)
    # Without prompt cells, every markdown cell is the prompt; without starter cells, the student's.
    assert exercise.prompt == "First.\n\nSecond."
    assert exercise.starter_code == "x = 1\n\ny = 2"
    assert exercise.solution_code == ""
    assert exercise.title == "a"
    nb["cells"] = [
        {
            "cell_type": "markdown",
            "metadata": {"jupyter_exec": {"role": "prompt"}},
            "source": " Task. ",
        },
        {"cell_type": "markdown", "source": "Notes."},
        {"cell_type": "code", "metadata": {"jupyter_exec": {"role": "starter"}}, "source": "s = 0"},
        {"cell_type": "code", "metadata": {"jupyter_exec": {"role": "student"}}, "source": "x = 1"},
        {
            "cell_type": "code",
            "metadata": {"jupyter_exec": {"role": "solution"}},
            "source": "a = 1",
        },
        {
            "cell_type": "code",
            "metadata": {"jupyter_exec": {"role": "solution"}},
            "source": "b = 2",
        },
    ]
    exercise = exercise_from_notebook(nb)
    assert (exercise.prompt, exercise.starter_code, exercise.solution_code) == (
        "Task.",
        "s = 0",
        "a = 1\n\nb = 2",
    )
    del nb["cells"]
    assert (exercise_from_notebook(nb).starter_code, exercise_from_notebook(nb).solution_code) == (
        "",
        None,
    )
    with pytest.raises(ExerciseError, match="not an exercise notebook"):
        exercise_from_notebook({})


def test_an_unknown_role_lists_the_known_ones() -> None:
    nb = exercise_notebook()
    nb.cells[1].metadata["jupyter_exec"]["role"] = "answer"
    with pytest.raises(ExerciseError) as err:
        exercise_from_notebook(nb, "x.ipynb")
    assert (
        str(err.value)
        == "x.ipynb: a cell has unknown role 'answer' (known roles: prompt, starter, solution, student)"
    )


def test_a_file_that_is_not_a_notebook_says_what_went_wrong(tmp_path) -> None:
    junk = tmp_path / "junk.ipynb"
    junk.write_text("{not json")
    with pytest.raises(
        ExerciseError, match=r"junk.ipynb: not a readable notebook \(NotJSONError: "
    ):
        load_exercise(junk)


def test_an_unknown_exercise_is_named() -> None:
    missing = ExerciseNotFound("week9")
    assert missing.exercise_id == "week9" and str(missing) == "no exercise with id 'week9'"
    assert missing.args == ("week9",)


# -- data files -------------------------------------------------------------------------------------


def test_data_files_are_read_from_beside_the_notebook_up_to_the_cap(tmp_path) -> None:
    (tmp_path / "a.csv").write_bytes(b"1,2")
    (tmp_path / "b.txt").write_bytes(b"four")
    exercise = Exercise(
        id="add", title="Add", path=tmp_path / "add.ipynb", data_files=("a.csv", "b.txt")
    )
    expected = (DataFile(name="a.csv", data=b"1,2"), DataFile(name="b.txt", data=b"four"))
    assert exercise.read_data_files() == expected
    assert exercise.read_data_files(max_bytes=7) == expected
    with pytest.raises(DataFilesError) as err:
        exercise.read_data_files(max_bytes=6)
    assert str(err.value) == (
        "exercise 'add': data file 'b.txt' brings the data files to 7 bytes, above the "
        "cap of 6 bytes (DOCKER_EXECUTOR_DATA_FILES_BYTES)"
    )


def test_a_missing_or_unreadable_data_file_is_named(tmp_path) -> None:
    exercise = Exercise(
        id="add", title="Add", path=tmp_path / "add.ipynb", data_files=("gone.csv",)
    )
    with pytest.raises(DataFilesError) as err:
        exercise.read_data_files()
    assert str(err.value) == (
        "exercise 'add': data file 'gone.csv' is missing (it belongs beside the "
        "exercise notebook add.ipynb)"
    )
    (tmp_path / "folder.csv").mkdir()
    unreadable = Exercise(
        id="add", title="Add", path=tmp_path / "add.ipynb", data_files=("folder.csv",)
    )
    with pytest.raises(DataFilesError) as err:
        unreadable.read_data_files()
    assert (
        str(err.value) == "exercise 'add': data file 'folder.csv' cannot be read (Is a directory)"
    )


def test_a_due_time_in_utc_may_end_in_a_lowercase_z() -> None:
    exercise = exercise_from_notebook(exercise_notebook(due="2026-12-01T22:59:00z"))
    assert exercise.due.isoformat() == "2026-12-01T22:59:00+00:00"


def test_a_regex_test_needs_its_pattern() -> None:
    with pytest.raises(ExerciseError) as err:
        exercise_from_notebook(
            exercise_notebook(tests=[{"name": "t", "test_code": "x", "compare": "regex"}]),
            "x.ipynb",
        )
    assert (
        str(err.value)
        == "x.ipynb: test 't' (tests[0]): field 'expected_output': compare 'regex' needs a pattern"
    )


def test_a_rule_without_a_reason_says_only_the_rule() -> None:
    exercise = exercise_from_notebook(
        exercise_notebook(requirements=[{"rule": "avoids", "construct": "while"}])
    )
    assert exercise.requirements[0].requirement.why == ""
    assert exercise.requirements[0].requirement.check("while True:\n    break\n") == (
        "your code must not use a `while` loop"
    )


def test_a_markdown_cell_without_source_adds_nothing_to_the_prompt() -> None:
    meta = {"exercise_id": "a", "tests": [{"name": "t", "test_code": "x"}]}
    nb = {
        "metadata": {"jupyter_exec": meta},
        "cells": [{"cell_type": "markdown"}, {"cell_type": "markdown", "source": "Task."}],
    }
    assert exercise_from_notebook(nb).prompt == "Task."


def test_a_missing_data_file_of_an_exercise_without_a_notebook_path_is_named(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataFilesError, match="^exercise 'add': data file 'gone.csv' is missing"):
        Exercise(id="add", title="Add", data_files=("gone.csv",)).read_data_files()
