"""Requirement rules ("`flatten` must call itself"): graded as visible tests of their own, with a
name and points, from the submitted code's AST, through the grader on the real engine."""

from __future__ import annotations

import pytest

from jupyter_exec_ext.grading import ExerciseError, Grader, exercise_from_notebook

from .notebooks import exercise_notebook

FOLLOWS = """
def flatten(items):
    out = []
    for item in items:
        out.extend(flatten(item) if isinstance(item, list) else [item])
    return out

def digit_sum(n):
    n, total = abs(n), 0
    while n:
        total, n = total + n % 10, n // 10
    return total

def squares(xs):
    return [x * x for x in xs]

def safe_divide(a, b):
    try:
        return a / b
    except ZeroDivisionError:
        return None
"""

# Right answers, each written the way the rules forbid.
BREAKS = """
def flatten(items):
    out, stack = [], [iter(items)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out

def digit_sum(n):
    return sum(int(d) for d in str(abs(n)))

def squares(xs):
    result = []
    for x in xs:
        result.append(x * x)
    return result

def safe_divide(a, b):
    try:
        return a / b
    except Exception:
        return None
"""

TESTS = [
    {"name": "flatten", "test_code": "assert flatten([1, [2, [3]], []]) == [1, 2, 3]"},
    {"name": "digit_sum", "test_code": "assert digit_sum(-507) == 12"},
    {"name": "squares", "test_code": "assert squares([1, 2, 3]) == [1, 4, 9]"},
    {
        "name": "safe_divide",
        "test_code": "assert safe_divide(7, 2) == 3.5 and safe_divide(1, 0) is None",
    },
]
RULES = [
    {
        "rule": "calls_itself",
        "function": "flatten",
        "why": "this exercise is about recursion",
        "points": 2,
    },
    {"rule": "uses", "construct": "while", "function": "digit_sum"},
    {
        "name": "squares is one comprehension",
        "rule": "uses",
        "construct": "list_comprehension",
        "function": "squares",
    },
    {
        "rule": "avoids",
        "construct": "for",
        "function": "squares",
        "why": "write it as a comprehension",
    },
    {
        "rule": "uses",
        "construct": "try",
        "exception": "ZeroDivisionError",
        "function": "safe_divide",
        "why": "catch only the error you expect",
    },
]


def rules_exercise():
    return exercise_from_notebook(
        exercise_notebook(
            "rules", tests=TESTS, requirements=RULES, solution=FOLLOWS, starter="pass\n"
        ),
        "rules.ipynb",
    )


def by_name(result):
    return {t.name: t for t in result.tests}


@pytest.mark.docker
def test_code_that_follows_every_rule_scores_full_marks(sandbox):
    result = Grader(sandbox).grade(rules_exercise(), FOLLOWS)
    assert (result.score, result.max_score) == (10, 10)
    assert [t.name for t in result.tests[4:]] == [
        "flatten calls itself",
        "digit_sum uses a while loop",
        "squares is one comprehension",
        "squares does not use a for loop",
        "safe_divide catches ZeroDivisionError",
    ]
    assert all(t.status == "passed" and not t.hidden for t in result.tests)


@pytest.mark.docker
def test_each_broken_rule_is_a_failed_test_with_its_own_points_and_message(sandbox):
    result = Grader(sandbox).grade(rules_exercise(), BREAKS)
    tests = by_name(result)
    # The code works: every behaviour test passes, only the rules fail.
    assert [tests[t["name"]].status for t in TESTS] == ["passed"] * 4
    assert result.score == 4 and result.max_score == 10
    assert {
        name: (t.status, t.points, t.max_points, t.message)
        for name, t in tests.items()
        if name not in {t["name"] for t in TESTS}
    } == {
        "flatten calls itself": (
            "failed",
            0,
            2,
            "`flatten` must call itself: this exercise is about recursion",
        ),
        "digit_sum uses a while loop": ("failed", 0, 1, "`digit_sum` must use a `while` loop"),
        "squares is one comprehension": ("failed", 0, 1, "`squares` must use a list comprehension"),
        "squares does not use a for loop": (
            "failed",
            0,
            1,
            "`squares` must not use a `for` loop: write it as a comprehension",
        ),
        "safe_divide catches ZeroDivisionError": (
            "failed",
            0,
            1,
            "`safe_divide` must catch `ZeroDivisionError` with `try` / "
            "`except ZeroDivisionError:`: catch only the error you expect",
        ),
    }
    # Rules are visible to students: the answer shows each one with its message.
    shown = {t["name"]: t for t in result.to_dict()["tests"]}
    assert shown["flatten calls itself"]["message"].startswith("`flatten` must call itself")


@pytest.mark.docker
def test_a_missing_function_or_code_that_does_not_parse_breaks_the_rule(sandbox):
    grader = Grader(sandbox)
    missing = by_name(
        grader.grade(rules_exercise(), "def squares(xs):\n    return [x for x in xs]\n")
    )
    assert missing["flatten calls itself"].message == (
        "`flatten` must call itself, but there is no function `flatten` in the code"
    )
    assert missing["squares does not use a for loop"].status == "passed"
    broken = grader.grade(rules_exercise(), "def flatten(items)\n    return flatten(items)\n")
    assert broken.status.value == "syntax_error" and broken.score == 0
    assert by_name(broken)["flatten calls itself"].message == (
        "`flatten` must call itself: the code does not parse, so this could not be checked"
    )


def test_rules_are_shown_to_students_and_count_in_the_score():
    exercise = rules_exercise()
    public = exercise.public_dict()
    assert exercise.max_score == 10 and public["max_score"] == 10
    assert public["requirements"][0] == {
        "name": "flatten calls itself",
        "rule": "`flatten` must call itself",
        "points": 2,
    }


@pytest.mark.parametrize(
    "rule, words",
    [
        ({"rule": "calls_itself"}, "rule 'calls_itself' needs 'function'"),
        ({"rule": "uses"}, "rule 'uses' needs 'construct', one of while, for"),
        (
            {"rule": "avoids", "construct": "for", "exception": "ValueError"},
            "'exception' goes only with rule 'uses' and construct 'try'",
        ),
        ({"rule": "uses", "construct": "goto"}, "'goto' is not one of"),
        (
            {"rule": "uses", "construct": "while", "name": "flatten"},
            "name 'flatten' is also the name of a test",
        ),
    ],
)
def test_invalid_rules_are_named(rule, words):
    with pytest.raises(
        ExerciseError, match="rules.ipynb: metadata jupyter_exec field 'requirements"
    ) as e:
        exercise_from_notebook(
            exercise_notebook("rules", tests=TESTS, requirements=[rule]), "rules.ipynb"
        )
    assert words in str(e.value)


def test_the_module_level_definition_is_the_one_checked():
    """A method of the same name elsewhere does not stand in for the function."""
    from jupyter_exec_ext.sandbox.policy import Requirement

    rule = Requirement("calls_itself", "flatten")
    code = (
        "class Tree:\n    def flatten(self):\n        return flatten(self)\n\n"
        "def flatten(items):\n    return list(items)\n"
    )
    assert rule.check(code) == "`flatten` must call itself"
    assert rule.check(code.replace("list(items)", "[x for i in items for x in flatten(i)]")) is None
