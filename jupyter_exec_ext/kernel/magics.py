"""IPython magics that send a cell to the sandbox instead of running it in the kernel:
``%%sandbox`` (run, streamed), ``%%submit EXERCISE_ID`` (grade), ``%sandbox_status`` and
``%sandbox_connect URL`` (choose the server by hand, e.g. in a kernel VS Code started).

The sandbox is a fresh container: it does not see the kernel's variables, imports or files.
"""

from __future__ import annotations

import getpass
import html
import logging
import os
import sys
import time
import urllib.parse
from typing import Any, Callable, Optional

from IPython.core.error import StdinNotImplementedError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from .client import (
    ExecClient,
    ExecClientError,
    LiveUnavailableError,
    ServerNotFoundError,
    hub_token_page,
    not_found_fix,
    use_client,
)

log = logging.getLogger(__name__)

#: A live run's output is flushed to the front end at most this often (and always before input).
FLUSH_INTERVAL_S = 0.05
NO_STDIN_NOTE = (
    "note: the program asked for input, but this front end cannot answer input "
    "requests (a headless run such as nbconvert or papermill): it got end of input "
    '(EOFError). Give the input up front with %%sandbox --stdin "...".'
)
NAME_ERROR_HINT = (
    "hint: the sandbox does not see variables defined in your kernel; "
    "put everything the cell needs in the cell"
)
#: Colours of test statuses in the HTML results table (pass green, everything else red/amber).
STATUS_COLOURS = {
    "passed": "#1a7f37",
    "failed": "#cf222e",
    "error": "#cf222e",
    "timeout": "#9a6700",
    "memory_limit": "#9a6700",
}


def status_line(result: dict[str, Any]) -> str:
    """The one line that says a run happened in the sandbox, and how it ended.

    Args:
        result: the answer of ``POST execute``.

    Returns:
        e.g. ``[ran in the sandbox: ok, 21 ms]`` or ``[ran in the sandbox: timeout, 5000 ms —
        the program ran longer than 5 s]``.
    """
    parts = [str(result.get("status", "?")), f"{result.get('duration_ms', 0)} ms"]
    if result.get("cached"):
        parts.append("cached result")
    line = "[ran in the sandbox: " + ", ".join(parts)
    if result.get("status") != "ok" and result.get("message"):
        line += f" — {result['message']}"
    return line + "]"


def name_error_hint(result: dict[str, Any]) -> Optional[str]:
    """The kernel-variables hint when the run failed with a ``NameError``, else None."""
    if result.get("status") == "runtime_error" and "NameError" in (result.get("stderr") or ""):
        return NAME_ERROR_HINT
    return None


def results_text(grade: dict[str, Any]) -> str:
    """A graded submission as a plain-text table and score line.

    Args:
        grade: the answer of ``POST exercises/{id}/submit``.
    """
    rows = [
        (
            t["name"] + (" (hidden)" if t.get("hidden") else ""),
            t["status"],
            f"{t['points']:g}/{t['max_points']:g}",
            (test_message(t).splitlines() or [""])[0],
        )
        for t in grade.get("tests", [])
    ]
    header = ("test", "status", "points", "message")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(3)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header[:3], widths)) + "  message"]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3] for r in rows]
    lines.append(score_line(grade))
    if grade.get("status") not in (None, "ok"):
        lines.append(
            f"your code itself ended with {grade['status']}"
            + (f": {grade['message']}" if grade.get("message") else "")
        )
    return "\n".join(lines)


def test_message(test: dict[str, Any]) -> str:
    """A test's message for the table, empty when it only repeats the status ("passed",
    "hidden test passed")."""
    message = (test.get("message") or "").strip()
    status = str(test.get("status", ""))
    if message.lower() in (status, f"hidden test {status}", f"test {status}"):
        return ""
    return message


#: Left-aligned cells: the notebook's own table style right-aligns them.
_CELL = "text-align:left;vertical-align:top"


def score_line(grade: dict[str, Any]) -> str:
    """``score: 5 / 7 (graded in the sandbox)``."""
    return (
        f"score: {grade.get('score', 0):g} / {grade.get('max_score', 0):g} (graded in the sandbox)"
    )


def results_html(grade: dict[str, Any]) -> str:
    """A graded submission as an HTML table with pass/fail colours, then the score."""
    rows = []
    for t in grade.get("tests", []):
        colour = STATUS_COLOURS.get(t["status"], "#cf222e")
        name = html.escape(t["name"]) + (" <em>(hidden)</em>" if t.get("hidden") else "")
        message = test_message(t)
        rows.append(
            f"<tr><td style='{_CELL}'>{name}</td>"
            f"<td style='{_CELL};color:{colour};font-weight:bold'>{html.escape(t['status'])}</td>"
            f"<td style='{_CELL}'>{t['points']:g}/{t['max_points']:g}</td>"
            f"<td style='{_CELL}'>"
            + (
                f"<pre style='margin:0;white-space:pre-wrap;text-align:left'>"
                f"{html.escape(message)}</pre>"
                if message
                else ""
            )
            + "</td></tr>"
        )
    code_status = ""
    if grade.get("status") not in (None, "ok"):
        code_status = (
            f"<p>your code itself ended with <code>{html.escape(str(grade['status']))}</code>"
            f"{': ' + html.escape(grade['message']) if grade.get('message') else ''}</p>"
        )
    head = "".join(f"<th style='{_CELL}'>{h}</th>" for h in ("test", "status", "points", "message"))
    return (
        "<table class='jupyter-exec-results' style='margin-left:0;margin-right:auto'>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f"<p><strong>{html.escape(score_line(grade))}</strong></p>{code_status}"
    )


def status_text(status: dict[str, Any]) -> str:
    """``GET docker/status`` as a few readable lines."""
    docker = status.get("docker", {})
    runs = status.get("runs", {})
    default = status.get("limits", {}).get("default", {})
    engine = (
        f"reachable, version {docker.get('engine_version')}"
        if docker.get("reachable")
        else f"NOT reachable ({docker.get('error') or 'unknown error'})"
    )
    image = "present" if docker.get("image_present") else "MISSING"
    lines = [
        f"sandbox enabled: {'yes' if docker.get('enabled') else 'no'}",
        f"Docker engine: {engine}",
        f"executor image: {docker.get('image')} ({image})",
        f"runs in flight: {runs.get('in_flight', 0)}, queued: {runs.get('queued', 0)}, "
        f"completed: {runs.get('completed', 0)}",
        f"default limits: time {default.get('time_limit')} s, memory {default.get('memory_limit')}, "
        f"CPU {default.get('cpu_limit')}",
    ]
    return "\n".join(lines)


def _unquote(text: str) -> str:
    """Drops one pair of surrounding quotes: IPython splits magic arguments without removing them
    (``--stdin 'a b'`` arrives as ``'a b'``)."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _needs_a_cell(name: str, cell: Optional[str]) -> bool:
    """A cell magic used on one line (``%sandbox``): says how it is meant, and does nothing.
    (As line magics, ``%sandbox --help`` and ``%submit --help`` work without a cell body.)"""
    if cell is not None:
        return False
    print(
        f"%%{name} works on the code of its cell: put %%{name} (two %) on the first line of a "
        f"cell and the code below it; %{name} --help shows the options.",
        file=sys.stderr,
    )
    return True


def _help_requested(func: Callable[..., Any], line: str) -> bool:
    """Prints the magic's usage for ``--help``/``-h`` (IPython's parsers have no help option)."""
    if any(word in ("-h", "--help") for word in line.split()):
        print(func.parser.format_help())
        return True
    return False


class RunCancelled(KeyboardInterrupt):
    """The kernel was interrupted during a sandbox run, and the run was cancelled."""

    def _render_traceback_(self) -> list[str]:
        return [f"KeyboardInterrupt: {self}"]


class _StreamEcho:
    """Writes a live run's output into the cell as it arrives and answers its input requests
    with the front end's input box (``input()``, which ipykernel turns into ``input_request``)."""

    def __init__(self) -> None:
        self.last = {"stdout": "\n", "stderr": "\n"}  # nothing written yet: a line is ended
        self.shown = {"stdout": 0, "stderr": 0}  # characters of the program's output shown
        self.stdin_refused = False
        self.stream: Optional[str] = None  # the stream written last
        self.flushed_at = 0.0

    def flush(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.flushed_at = time.monotonic()

    def write(self, stream: str, text: str, *, program: bool = True) -> None:
        if not text:
            return
        stream = "stderr" if stream == "stderr" else "stdout"
        out = sys.stderr if stream == "stderr" else sys.stdout
        if self.stream is not None and self.stream != stream:
            self.flush()  # the other stream's text first: the cell keeps the program's order
        out.write(text)
        self.stream = stream
        now = time.monotonic()
        if now - self.flushed_at >= FLUSH_INTERVAL_S:
            # Shown now, not at the kernel's next flush (up to 0.2 s later). A flood of small
            # pieces is flushed at most this often: each flush waits on the kernel's IO thread.
            self.flush()
        self.last[stream] = text[-1]
        if program:
            self.shown[stream] += len(text)

    def complete(self, result: dict[str, Any]) -> None:
        """Shows what the result has beyond what streamed (events the server dropped for a slow
        reader, or its note that the output was cut at the limit)."""
        for stream in ("stdout", "stderr"):
            rest = (result.get(stream) or "")[self.shown[stream] :]
            self.write(stream, rest)

    def ends_line(self, stream: str) -> bool:
        return self.last[stream] == "\n"

    def ask(self, prompt: str) -> Optional[str]:
        if self.stdin_refused:
            return None
        self.flush()
        try:
            return input(prompt)  # a KeyboardInterrupt here goes on to cancel the run
        except (StdinNotImplementedError, EOFError):
            self.stdin_refused = True
            self.write(
                "stderr",
                ("" if self.ends_line("stderr") else "\n") + NO_STDIN_NOTE + "\n",
                program=False,
            )
            return None


#: What a ``display`` event may put into the notebook: the program chooses the bytes, so never
#: a type the front end would run or render as markup (HTML, SVG, JavaScript).
FIGURE_MIMES = ("image/png",)


def _show_figure(mime: str, data: str) -> None:
    """A ``display`` event: the image inline in the cell's output."""
    from IPython.display import display

    if mime not in FIGURE_MIMES:
        log.info("display of type %r not shown", mime)
        return
    display({mime: data, "text/plain": "<figure from the sandbox>"}, raw=True)


@magics_class
class SandboxMagics(Magics):
    """``%%sandbox``, ``%%submit`` and ``%sandbox_status``; one API client per kernel, made on
    first use (so ``%load_ext`` works before the server is reachable)."""

    def __init__(self, shell: Any, client: Optional[ExecClient] = None) -> None:
        super().__init__(shell)
        self._client = client

    @property
    def client(self) -> ExecClient:
        if self._client is None:
            self._client = ExecClient.discover()
        return self._client

    @client.setter
    def client(self, client: ExecClient) -> None:
        self._client = client

    @magic_arguments("%sandbox")  # IPython prefixes one "%": usage then reads %%sandbox
    @argument(
        "--time-limit",
        type=float,
        default=None,
        metavar="S",
        help="wall-clock seconds (default: the server's; clamped to its maximum)",
    )
    @argument("--memory-limit", default=None, metavar="M", help="memory, e.g. 128m or 1g")
    @argument(
        "--stdin",
        default=None,
        metavar="TEXT",
        help=r"standard input of the program (\n starts a new line)",
    )
    @argument("--no-cache", action="store_true", help="always run afresh, never a cached result")
    @argument("-h", "--help", action="store_true", help="show this help and run nothing")
    @line_cell_magic
    def sandbox(self, line: str, cell: Optional[str] = None) -> None:
        """Run this cell's code in a sandboxed container, not in the kernel.

        The sandbox is a fresh, isolated Python process: it does NOT see variables, functions or
        imports defined in your kernel, so put everything the cell needs in the cell. Shows the
        program's stdout and stderr, then a status line.
        """
        if _help_requested(SandboxMagics.sandbox, line) or _needs_a_cell("sandbox", cell):
            return
        args = parse_argstring(SandboxMagics.sandbox, line)
        stdin = _unquote(args.stdin).replace("\\n", "\n") if args.stdin is not None else None
        memory = _unquote(args.memory_limit) if args.memory_limit is not None else None
        client = self.client
        shown = _StreamEcho()
        try:
            result = client.run_live(
                cell,
                stdin=stdin,
                time_limit=args.time_limit,
                memory_limit=memory,
                on_output=shown.write,
                on_input=shown.ask,
                on_display=_show_figure,
                on_note=lambda text: shown.write("stderr", text, program=False),
            )
        except LiveUnavailableError as e:
            # An older server or a proxy without WebSockets: the whole answer at the end.
            log.info("live run unavailable, using POST execute: %s", e)
            result = client.execute(
                cell,
                stdin=stdin,
                time_limit=args.time_limit,
                memory_limit=memory,
                use_cache=not args.no_cache,
            )
        shown.complete(result)
        shown.flush()
        hint = name_error_hint(result)
        if hint:
            sys.stderr.write(("" if shown.ends_line("stderr") else "\n") + hint + "\n")
            sys.stderr.flush()
        for note in result.get("notes") or []:
            print(f"note: {note}")
        if not shown.ends_line("stdout"):
            print()
        print(status_line(result))
        if result.get("status") == "cancelled":  # only an interrupt here sends cancel
            # End the cell as an interrupted one, so "Run All" stops here as for kernel code.
            raise RunCancelled("the sandbox run was cancelled")

    @magic_arguments("%submit")
    @argument(
        "exercise_id", nargs="?", help="the exercise's id (its notebook's jupyter_exec.exercise_id)"
    )
    @argument("-h", "--help", action="store_true", help="show this help and grade nothing")
    @line_cell_magic
    def submit(self, line: str, cell: Optional[str] = None) -> None:
        """Grade this cell's code against the exercise's tests, in the sandbox.

        Shows each test with its status, points and message, then the score. Hidden tests show
        only whether they passed. Like %%sandbox, grading does not see your kernel's variables.
        """
        if _help_requested(SandboxMagics.submit, line) or _needs_a_cell("submit", cell):
            return
        args = parse_argstring(SandboxMagics.submit, line)
        if not args.exercise_id:
            print(
                SandboxMagics.submit.parser.format_usage().strip() + "\nerror: name the exercise, "
                "e.g. %%submit strings-palindrome",
                file=sys.stderr,
            )
            return
        grade = self.client.submit(args.exercise_id, cell)
        from IPython.display import display

        display({"text/plain": results_text(grade), "text/html": results_html(grade)}, raw=True)

    @magic_arguments()
    @argument("-h", "--help", action="store_true", help="show this help")
    @line_magic
    def sandbox_status(self, line: str = "") -> None:
        """Show whether the sandbox can run code: Docker engine, executor image, runs, limits."""
        if _help_requested(SandboxMagics.sandbox_status, line):
            return
        client = self.client
        print(f"server: {client.base_url} (found through {client.source})")
        if client.live_unavailable:
            print(
                f"live output: unavailable ({client.live_unavailable}); runs show their output at the end"
            )
        print(status_text(client.status()))

    @magic_arguments()
    @argument(
        "url",
        nargs="?",
        help="the server's address: its base URL (as in the browser), its "
        "API URL (…/api/exec/v1/), or a JupyterHub user URL (https://HUB/user/NAME/)",
    )
    @argument("-h", "--help", action="store_true", help="show this help and connect nothing")
    @line_magic
    def sandbox_connect(self, line: str = "") -> None:
        """Use the jupyter_exec_ext server at URL from this kernel (e.g. a kernel VS Code started).

        Finds the extension's API under the URL, then asks for the token in a password box, so it
        is never saved in the notebook. On JupyterHub, make a token at https://HUB/hub/token.
        """
        if _help_requested(SandboxMagics.sandbox_connect, line):
            return
        args = parse_argstring(SandboxMagics.sandbox_connect, line)
        if not args.url:
            current = self._client.base_url if self._client is not None else "none yet"
            print(
                SandboxMagics.sandbox_connect.parser.format_usage().strip()
                + f"\nerror: give the server's address, e.g. %sandbox_connect http://127.0.0.1:8888/ "
                f"(current server: {current})",
                file=sys.stderr,
            )
            return
        url = _unquote(args.url)
        if "token" in urllib.parse.parse_qs(urllib.parse.urlsplit(url).query):
            print(
                "note: the token in the URL is not used (it would be saved in the notebook); "
                "paste it at the prompt instead."
            )
        api = ExecClient.locate_api(url)
        page = hub_token_page(api)
        where = (
            f"make one at {page}"
            if page
            else "`jupyter server list` shows it after ?token=; empty if the server has none"
        )
        try:
            token = getpass.getpass(f"Token for {api} ({where}): ")
        except StdinNotImplementedError:
            raise ExecClientError(
                "this front end cannot ask for the token (no input box: a headless run such as "
                f"nbconvert or papermill); set JUPYTER_EXEC_EXT_URL={api} and JUPYTER_EXEC_EXT_TOKEN "
                "in the kernel's environment instead"
            ) from None
        client = ExecClient(api, token.strip(), source="%sandbox_connect", origin="connect")
        status = client.status()  # a refused token raises here, with where to get a good one
        use_client(client)
        self._client = client
        docker = status.get("docker", {})
        print(
            f"connected to {api}; sandbox "
            + (
                "ready"
                if docker.get("reachable") and docker.get("image_present")
                else "NOT ready (see %sandbox_status)"
            )
            + "."
        )


def announce(magics: SandboxMagics) -> None:
    """``%load_ext``'s line: which server the kernel will use and how it was found, or what to
    do when there is none (not an error: ``%sandbox_connect`` can still choose one)."""
    try:
        client = ExecClient.discover()
    except ServerNotFoundError:
        print(
            "jupyter_exec_ext: no server found yet (JUPYTER_EXEC_EXT_URL is not set, there are no "
            "JupyterHub variables, and no running Jupyter server answers with the extension). "
            + not_found_fix(os.environ),
            file=sys.stderr,
        )
        return
    magics.client = client
    print(client.describe())
