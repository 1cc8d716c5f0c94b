"""Host-side comparison of expected and actual output."""

import pytest

from jupyter_exec_ext.grading.compare import (
    MAX_SHOWN,
    describe_mismatch,
    normalize_strip,
    outputs_match,
)


@pytest.mark.parametrize(
    "expected, actual, mode, match",
    [
        ("5", "5\n", "strip", True),
        ("a  \nb", "a\nb  \n\n", "strip", True),
        ("a\nb", "a\n\nb", "strip", False),
        ("5\n", "5\n", "exact", True),
        ("5", "5\n", "exact", False),
        ("0.3333333", "0.33333333333", "float", True),
        ("x = 1.5", "x = 1.50000001", "float", True),
        ("1.5", "1.6", "float", False),
        ("1.5 2", "1.5", "float", False),
        ("word", "other", "float", False),
        (r"\d+ items?", "12 items\n", "regex", True),
        (r"\d+ items?", "twelve items", "regex", False),
        (r"\d+", "12 and more", "regex", False),  # the whole output must match
    ],
)
def test_modes(expected, actual, mode, match):
    assert outputs_match(expected, actual, mode, tolerance=1e-6) is match


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="unknown compare mode 'fuzzy'"):
        outputs_match("a", "a", "fuzzy")


def test_messages_show_expected_and_actual_or_a_diff():
    assert describe_mismatch("5", "6\n", "strip") == "expected '5' but got '6'"
    assert describe_mismatch("5", "", "strip") == "expected '5' but nothing was printed"
    diff = describe_mismatch("a\nb\nc", "a\nB\nc\n", "strip")
    assert diff.startswith("output differs from the expected output:\n--- expected\n+++ actual")
    assert "-b\n+B" in diff


def test_defaults_are_strip_and_a_tolerance_of_one_millionth():
    assert outputs_match("5", "  5  \n") is True
    assert outputs_match("1.5", "1.5000001", "float") is True
    assert outputs_match("1.5", "1.51", "float") is False


def test_strip_keeps_the_line_breaks_between_lines():
    assert normalize_strip("\n a  \n b\t\n\n") == "a\n b"
    assert outputs_match("a b", "a\nb") is False


@pytest.mark.parametrize(
    "expected, actual, match",
    [
        # Every number is compared, not only those before the first identical token.
        ("x = 1.5", "x = 2.5", False),
        ("1 2 3", "1 2 4", False),
        ("total: 3.0 of 4.0", "total: 3.0 of 4.5", False),
        # A number never matches a word, whichever side it is on (and a word no number).
        ("1.5", "one", False),
        ("one", "1.5", False),
        ("nan", "nan", True),
    ],
)
def test_float_mode_compares_every_token(expected, actual, match):
    assert outputs_match(expected, actual, "float") is match


def test_float_tolerance_is_absolute_near_zero_and_relative_for_large_numbers():
    # Near zero only the absolute tolerance can pass: the relative one scales with the numbers.
    assert outputs_match("0", "0.0000005", "float", tolerance=1e-6) is True
    assert outputs_match("0", "0.000002", "float", tolerance=1e-6) is False
    # For large numbers only the relative one can pass: 0.5 apart is 5e-7 of a million.
    assert outputs_match("1000000", "1000000.5", "float", tolerance=1e-6) is True
    assert outputs_match("1000000", "1000002", "float", tolerance=1e-6) is False


def test_regex_spans_lines():
    assert outputs_match(r"start.*end", "start\nmiddle\nend\n", "regex") is True


def test_long_texts_are_cut_at_the_boundary_and_say_how_much_is_left():
    assert (
        describe_mismatch("x" * MAX_SHOWN, "y", "strip")
        == f"expected {'x' * MAX_SHOWN!r} but got 'y'"
    )
    cut = describe_mismatch("x" * (MAX_SHOWN + 5), "y", "strip")
    assert cut == f"expected {'x' * MAX_SHOWN + '… (5 more characters)'!r} but got 'y'"


def test_regex_mismatch_names_the_pattern_and_the_output():
    assert describe_mismatch(r"\d+", "abc\n", "regex") == (
        r"output does not match the pattern '\\d+'; got 'abc\n'"
    )


def test_a_diff_when_only_one_side_spans_lines_with_two_lines_of_context():
    assert describe_mismatch("a", "a\nb", "strip") == (
        "output differs from the expected output:\n--- expected\n+++ actual\n@@ -1 +1,2 @@\n a\n+b"
    )
    assert describe_mismatch("a\nb", "a", "strip").endswith("@@ -1,2 +1 @@\n a\n-b")
    lines = [str(n) for n in range(1, 10)]
    changed = lines[:4] + ["five"] + lines[5:]
    diff = describe_mismatch("\n".join(lines), "\n".join(changed), "strip")
    assert diff.endswith("@@ -3,5 +3,5 @@\n 3\n 4\n-5\n+five\n 6\n 7")
