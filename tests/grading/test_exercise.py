"""Exercise notebooks: loading, the seed's test shape, and errors that name notebook, test and field."""

import json

import pytest

from jupyter_exec_ext.grading import ExerciseError, exercise_from_notebook, load_exercise, schema

from .notebooks import exercise_notebook, write_notebook


def test_loads_prompt_starter_solution_tests_and_limits(tmp_path):
    path = write_notebook(tmp_path / "add.ipynb", exercise_notebook(
        limits={"time_limit": 5, "memory_limit": "128m"}, policy={"profile": "safe"}))
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


@pytest.mark.parametrize("tests, words", [
    ([{"name": "t", "test_code": "x", "points": -1}],
     "test 't' (tests[0]) field 'points': -1 is less than the minimum of 0"),
    ([{"name": "t", "test_code": "x", "compare": "fuzzy"}], "test 't' (tests[0]) field 'compare'"),
    ([{"name": "t"}], "test 't' (tests[0]): missing required field 'test_code'"),
    ([{"test_code": "x"}], "tests[0]: missing required field 'name'"),
    ([{"name": "t", "test_code": "x", "expect": "1"}], "test 't' (tests[0]): unknown field(s)"),
    ([{"name": "t", "test_code": "x", "timeout": 0}], "test 't' (tests[0]) field 'timeout'"),
    ([{"name": "t", "test_code": "print(("}], "test 't' (tests[0]): field 'test_code': not valid Python"),
    ([{"name": "t", "test_code": "x", "compare": "regex", "expected_output": "("}],
     "test 't' (tests[0]): field 'expected_output': not a valid regular expression"),
    ([{"name": "t", "test_code": "x"}, {"name": "t", "test_code": "y"}],
     "test 't' (tests[1]): field 'name': another test has the same name"),
    ([], "field 'tests'"),
])
def test_invalid_tests_are_named(tmp_path, tests, words):
    path = write_notebook(tmp_path / "bad.ipynb", exercise_notebook(tests=tests))
    with pytest.raises(ExerciseError) as err:
        load_exercise(path)
    assert str(err.value).startswith(str(path) + ": ")
    assert words in str(err.value)


@pytest.mark.parametrize("meta, words", [
    ({"exercise_id": "Bad Id!"}, "field 'exercise_id'"),
    ({"limits": {"memory_limit": "lots"}}, "field 'limits': memory_limit must be a positive size"),
    ({"limits": {"memory": "1g"}}, "field 'limits': unknown field(s)"),
    ({"policy": {"profile": "strict"}}, "field 'policy.profile'"),
    ({"colour": "red"}, "unknown field(s)"),
])
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
    exercise = exercise_from_notebook(exercise_notebook(
        due="2026-12-01T23:59:00+01:00", late="refuse", max_attempts=3, score_rule="last"))
    assert exercise.due.isoformat() == "2026-12-01T23:59:00+01:00"
    assert (exercise.late_policy, exercise.max_attempts, exercise.score_rule) == ("refuse", 3, "last")
    assert exercise_from_notebook(exercise_notebook(due="2026-12-01T22:59:00Z")).due == exercise.due
    plain = exercise_from_notebook(exercise_notebook())
    assert (plain.due, plain.late_policy, plain.max_attempts, plain.score_rule) == (None,) * 4


@pytest.mark.parametrize("meta, words", [
    ({"due": "2026-12-01T23:59:00"}, "field 'due': '2026-12-01T23:59:00' has no time zone; add one, e.g. 2026-12-01T23:59:00Z"),
    ({"due": "next friday"}, "field 'due': 'next friday' is not an ISO 8601 time"),
    ({"late": "maybe"}, "field 'late'"),
    ({"max_attempts": 0}, "field 'max_attempts'"),
    ({"score_rule": "average"}, "field 'score_rule'"),
])
def test_bad_course_rules_are_named(meta, words) -> None:
    with pytest.raises(ExerciseError) as refused:
        exercise_from_notebook(exercise_notebook(**meta), "week1/add.ipynb")
    assert words in str(refused.value) and "week1/add.ipynb" in str(refused.value)


def test_the_version_is_a_hash_of_what_grades_the_exercise() -> None:
    one = exercise_from_notebook(exercise_notebook())
    assert one.version == exercise_from_notebook(exercise_notebook(prompt="Reworded.")).version
    changed = exercise_from_notebook(exercise_notebook(tests=[
        {"name": "small numbers", "test_code": "print(add(2, 3))", "expected_output": "6"}]))
    assert changed.version != one.version and len(one.version) == 16
