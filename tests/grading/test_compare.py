"""Host-side comparison of expected and actual output."""

import pytest

from jupyter_exec_ext.grading.compare import describe_mismatch, outputs_match


@pytest.mark.parametrize("expected, actual, mode, match", [
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
])
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
