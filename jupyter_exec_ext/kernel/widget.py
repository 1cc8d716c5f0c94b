"""``ExerciseWidget``: an exercise in one ipywidgets box — prompt, code area with the starter code,
Run and Submit buttons, output, per-test results and score — backed by the REST API.
"""

from __future__ import annotations

import html
import logging
from typing import Any, Callable, Optional

import ipywidgets as widgets
from IPython.display import Markdown

from .client import ExecClient, ExecClientError, LiveUnavailableError
from .magics import STATUS_COLOURS, name_error_hint, results_html, status_line

log = logging.getLogger(__name__)

BUSY_RUN = "⏳ running in the sandbox…"
BUSY_SUBMIT = "⏳ grading in the sandbox…"
#: The widget's Run cannot show an input box (its click is not a cell execution).
WIDGET_NO_STDIN = (
    "the program asked for input; the widget cannot ask for it, so the program got "
    "end of input (EOFError). Use a %%sandbox cell to answer input() interactively."
)


def without_title(prompt: str, title: str) -> str:
    """The prompt without a first heading that only repeats the title (shown above it already)."""
    lines = prompt.lstrip("\n").split("\n")
    if lines and lines[0].startswith("#") and lines[0].lstrip("#").strip() == title.strip():
        return "\n".join(lines[1:]).lstrip("\n")
    return prompt


class ExerciseWidget(widgets.VBox):
    """An exercise a student works on inside the notebook; code runs only in the sandbox.

    The network calls run in the button handlers, on the kernel's thread: the buttons are
    disabled and the busy indicator shown (those updates reach the browser at once) before the
    call and restored after it. Kept synchronous on purpose: widget state is then changed from one
    thread only, and a second click cannot start a second run.

    Args:
        exercise_id: the exercise's id on the server.
        client: the API client (default: found from the kernel's environment).

    Raises:
        ExecClientError: the exercise could not be loaded (unknown id, server unreachable, …).
    """

    def __init__(
        self, exercise_id: str, client: Optional[ExecClient] = None, **kwargs: Any
    ) -> None:
        self.client = client if client is not None else ExecClient.discover()
        self.exercise_id = exercise_id
        self.exercise = self.client.exercise(exercise_id)
        title = self.exercise.get("title", exercise_id)
        self.title = widgets.HTML(f"<h3>{html.escape(title)}</h3>")
        # The prompt is Markdown; an Output holding a Markdown display lets the front end render it.
        # Its own first heading usually is the title: shown once, above.
        self.prompt = widgets.Output()
        self.prompt.append_display_data(
            Markdown(without_title(self.exercise.get("prompt", ""), title))
        )
        self.code = widgets.Textarea(
            value=self.exercise.get("starter_code", ""),
            layout=widgets.Layout(width="100%", height="14em"),
        )
        self.run_button = widgets.Button(
            description="Run", icon="play", tooltip="run the code in the sandbox"
        )
        self.submit_button = widgets.Button(
            description="Submit",
            icon="check",
            button_style="primary",
            tooltip="grade the code against the exercise's tests",
        )
        self.busy = widgets.HTML("")
        self.output = widgets.HTML("")
        self.results = widgets.HTML("")
        self.score = widgets.HTML(f"max score: {self.exercise.get('max_score', 0):g}")
        self.run_button.on_click(self.on_run)
        self.submit_button.on_click(self.on_submit)
        note = widgets.HTML(
            "<small>Runs in an isolated sandbox: variables defined in your kernel "
            "are not visible there.</small>"
        )
        super().__init__(
            children=[
                self.title,
                self.prompt,
                self.code,
                widgets.HBox([self.run_button, self.submit_button, self.busy]),
                note,
                self.output,
                self.results,
                self.score,
            ],
            **kwargs,
        )

    # -- button handlers (callable directly, e.g. from tests) -------------------------------

    def on_run(self, _button: Optional[widgets.Button] = None) -> None:
        """Runs the code area in the sandbox and shows stdout, stderr and the status line."""
        self._while_busy(BUSY_RUN, self._run)

    def on_submit(self, _button: Optional[widgets.Button] = None) -> None:
        """Grades the code area and shows each test and the score."""
        self._while_busy(BUSY_SUBMIT, self._submit)

    def _run(self) -> None:
        """Streams the run: each piece of output is added to the output area as it arrives."""
        parts: list[str] = []
        time_limit = self.exercise.get("limits", {}).get("time_limit")

        def show(stream: str, text: str) -> None:
            css = "stderr' style='color:#cf222e" if stream == "stderr" else "stdout"
            if parts and parts[-1].startswith(f"<pre class='{css}'>"):
                parts[-1] = parts[-1][: -len("</pre>")] + html.escape(text) + "</pre>"
            else:
                parts.append(f"<pre class='{css}'>{html.escape(text)}</pre>")
            self.output.value = "".join(parts)

        def no_input(prompt: str) -> None:
            parts.append(f"<p class='hint'>{html.escape(WIDGET_NO_STDIN)}</p>")
            self.output.value = "".join(parts)
            return None

        def figure(mime: str, data: str) -> None:
            if mime == "image/png":  # base64 from the server; nothing else is put into the page
                safe = "".join(c for c in data if c.isalnum() or c in "+/=")
                parts.append(
                    f"<img class='figure' alt='figure from the sandbox' "
                    f"src='data:image/png;base64,{safe}'>"
                )
                self.output.value = "".join(parts)

        self.output.value = ""
        try:
            result = self.client.run_live(
                self.code.value,
                time_limit=time_limit,
                on_output=show,
                on_input=no_input,
                on_display=figure,
                exercise_id=self.exercise_id,
            )
        except LiveUnavailableError as e:
            log.info("live run unavailable, using POST execute: %s", e)
            result = self.client.execute(self.code.value, time_limit=time_limit)
            for stream in ("stdout", "stderr"):
                if result.get(stream):
                    show(stream, result[stream])
        hint = name_error_hint(result)
        if hint:
            parts.append(f"<p class='hint'>{html.escape(hint)}</p>")
        colour = (
            STATUS_COLOURS["passed"] if result.get("status") == "ok" else STATUS_COLOURS["failed"]
        )
        parts.append(
            f"<p class='status' style='color:{colour}'>{html.escape(status_line(result))}</p>"
        )
        self.output.value = "".join(parts)

    def _submit(self) -> None:
        grade = self.client.submit(self.exercise_id, self.code.value, exercise=self.exercise)
        self.results.value = results_html(grade)
        full = grade.get("score") == grade.get("max_score")
        colour = STATUS_COLOURS["passed"] if full else STATUS_COLOURS["failed"]
        self.score.value = (
            f"<strong style='color:{colour}'>score: {grade.get('score', 0):g} / "
            f"{grade.get('max_score', 0):g}</strong>"
        )
        self.output.value = ""
        for stream in ("stdout", "stderr"):
            if grade.get(stream):
                self.output.value += f"<pre class='{stream}'>{html.escape(grade[stream])}</pre>"

    def _while_busy(self, label: str, action: Callable[[], None]) -> None:
        """Disables the buttons and shows ``label`` during ``action``; a failure of the API
        becomes a readable message in the output area, never a traceback."""
        self.run_button.disabled = self.submit_button.disabled = True
        self.busy.value = label
        try:
            action()
        except ExecClientError as e:
            log.info("exercise %s: %s", self.exercise_id, e)
            self.output.value = (
                f"<p class='error' style='color:#cf222e'><strong>{html.escape(str(e))}</strong></p>"
            )
        finally:
            self.busy.value = ""
            self.run_button.disabled = self.submit_button.disabled = False
