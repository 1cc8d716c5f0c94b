"""``ExerciseWidget`` in-process against the live server: its button handlers called directly, the
busy state while a request is in flight, and errors shown as messages."""

from __future__ import annotations

import html
import threading
import time
from typing import Any

import pytest

from jupyter_exec_ext.kernel.client import ExecClient, ExerciseNotFoundError, RateLimitedError
from jupyter_exec_ext.kernel.widget import BUSY_RUN, BUSY_SUBMIT, ExerciseWidget
from jupyter_exec_ext.server.ratelimit import describe_seconds

from .conftest import LiveServer, start_server
from .test_magics import PALINDROME, role_source

pytestmark = pytest.mark.docker

SOLUTION = role_source(PALINDROME, "solution")


@pytest.fixture
def widget(live_server: LiveServer) -> ExerciseWidget:
    return ExerciseWidget(
        "strings-palindrome", client=ExecClient(live_server.api, live_server.token)
    )


def watch(widget: ExerciseWidget) -> list[tuple[str, Any]]:
    """Records every change of the buttons' ``disabled`` and of the busy indicator, in order."""
    changes: list[tuple[str, Any]] = []
    widget.run_button.observe(lambda c: changes.append(("run disabled", c["new"])), "disabled")
    widget.submit_button.observe(
        lambda c: changes.append(("submit disabled", c["new"])), "disabled"
    )
    widget.busy.observe(lambda c: changes.append(("busy", c["new"])), "value")
    return changes


def test_shows_prompt_starter_code_and_max_score(widget: ExerciseWidget) -> None:
    prompt = widget.prompt.outputs[0]["data"]["text/markdown"]
    # The title once: the heading above, and the prompt without its own copy of it.
    assert widget.title.value == "<h3>Strings: palindromes</h3>"
    assert "Strings: palindromes" not in prompt
    assert prompt.startswith("A *palindrome* reads the same") and "is_palindrome(text)" in prompt
    assert widget.code.value == role_source(PALINDROME, "starter")
    assert "max score: 7" in widget.score.value
    assert (
        widget.run_button in widget.children[3].children
        and widget.submit_button in widget.children[3].children
    )


def test_run_shows_output_and_is_busy_while_in_flight(widget: ExerciseWidget, no_leaks) -> None:
    widget.code.value = (
        SOLUTION + "print(is_palindrome('Abba'))\nimport sys\nprint('note', file=sys.stderr)\n"
    )
    changes = watch(widget)
    widget.on_run()
    assert "<pre class='stdout'>True\n</pre>" in widget.output.value
    assert "<pre class='stderr'" in widget.output.value and "note" in widget.output.value
    assert "[ran in the sandbox: ok" in widget.output.value
    # Disabled and busy before the request, enabled and idle after it.
    assert changes == [
        ("run disabled", True),
        ("submit disabled", True),
        ("busy", BUSY_RUN),
        ("busy", ""),
        ("run disabled", False),
        ("submit disabled", False),
    ]


def test_run_of_code_using_kernel_variables_gets_the_hint(widget: ExerciseWidget, no_leaks) -> None:
    widget.code.value = "print(undefined_here)"
    widget.on_run()
    assert "NameError" in widget.output.value
    assert "the sandbox does not see variables defined in your kernel" in widget.output.value
    assert "runtime_error" in widget.output.value


def test_submit_wrong_then_right(widget: ExerciseWidget, no_leaks) -> None:
    changes = watch(widget)
    widget.on_submit()  # the starter code: every test fails
    assert "score: 0 / 7" in widget.score.value and "#cf222e" in widget.score.value
    assert widget.results.value.count("font-weight:bold'>failed<") == 6
    assert ("busy", BUSY_SUBMIT) in changes and changes[-1] == ("submit disabled", False)

    widget.code.value = SOLUTION
    widget.on_submit()
    assert "score: 7 / 7" in widget.score.value and "#1a7f37" in widget.score.value
    assert widget.results.value.count("font-weight:bold'>passed<") == 6
    assert "punctuation is ignored <em>(hidden)</em>" in widget.results.value


def test_unknown_exercise_is_refused_at_once(live_server: LiveServer) -> None:
    with pytest.raises(ExerciseNotFoundError, match="unknown exercise 'nope'"):
        ExerciseWidget("nope", client=ExecClient(live_server.api, live_server.token))


def test_docker_down_shows_sandbox_unavailable(docker_down_server: LiveServer) -> None:
    # The exercise is served without Docker; running it is what fails.
    widget = ExerciseWidget(
        "strings-palindrome", client=ExecClient(docker_down_server.api, docker_down_server.token)
    )
    widget.on_run()
    assert "Sandbox unavailable: Docker is not running" in widget.output.value
    widget.on_submit()
    assert "Sandbox unavailable: Docker is not running" in widget.output.value
    assert not widget.run_button.disabled and widget.busy.value == ""


def test_rate_limit_shows_a_message(
    widget: ExerciseWidget, live_server: LiveServer, no_leaks
) -> None:
    """The server allows one run per user: a Run while another is in flight gets 429."""
    client = ExecClient(live_server.api, live_server.token)
    first: dict[str, Any] = {}
    blocker = threading.Thread(
        target=lambda: first.update(
            client.execute("while True:\n    pass", time_limit=8, use_cache=False)
        )
    )
    blocker.start()
    try:
        deadline = time.monotonic() + 30
        while client.status()["runs"]["in_flight"] < 1:
            assert time.monotonic() < deadline, "the first run never started"
            time.sleep(0.05)
        widget.on_run()
        assert (
            "you already have 1 run(s) in progress; wait for one to finish" in widget.output.value
        )
    finally:
        blocker.join(timeout=60)
    assert first["status"] == "timeout"


def test_no_answer_shows_a_timeout_message(widget: ExerciseWidget, silent_url: str) -> None:
    widget.client = ExecClient(silent_url, query_timeout_s=0.3, timeout_margin_s=-4.5)
    widget.on_run()  # the exercise's 5 s limit minus 4.5 s: the wait ends after half a second
    assert "did not answer POST execute within 0.5 s" in widget.output.value
    assert not widget.submit_button.disabled


def test_a_submission_over_the_limit_shows_the_servers_message(
    tmp_path, executor_image, no_leaks
) -> None:
    """The server admits one submission of an exercise per user per hour: the client raises the
    server's words and wait, and the widget shows them, not a message of its own."""
    server = start_server(tmp_path, executor_image, submit_rate_limit=1, submit_rate_window=3600.0)
    try:
        client = ExecClient(server.api, server.token)
        widget = ExerciseWidget("strings-palindrome", client=client)
        widget.code.value = SOLUTION
        widget.on_submit()
        assert "7 / 7" in widget.score.value, widget.output.value
        with pytest.raises(RateLimitedError) as refused:
            client.submit("strings-palindrome", SOLUTION)
        wait = refused.value.retry_after_s
        assert wait is not None and 1 <= wait <= 3600
        message = (
            f"you can submit 'strings-palindrome' again in {describe_seconds(wait)} "
            "(at most 1 submission per 1 h)"
        )
        assert str(refused.value) == message and refused.value.status == 429
        widget.on_submit()  # a moment later: the wait may be a second shorter
        shown = widget.output.value
        assert html.escape("you can submit 'strings-palindrome' again in ") in shown, shown
        assert "(at most 1 submission per 1 h)" in shown
        assert "7 / 7" in widget.score.value  # the last graded score stays
    finally:
        server.stop()
