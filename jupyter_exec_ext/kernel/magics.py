"""IPython magics that send a cell to the sandbox instead of running it in the kernel:
``%%sandbox`` (run), ``%%submit EXERCISE_ID`` (grade) and ``%sandbox_status``.

The sandbox is a fresh container: it does not see the kernel's variables, imports or files.
"""

from __future__ import annotations

import html
import logging
import sys
from typing import Any, Callable, Optional

from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from .client import ExecClient

log = logging.getLogger(__name__)

NAME_ERROR_HINT = ("hint: the sandbox does not see variables defined in your kernel; "
                   "put everything the cell needs in the cell")
#: Colours of test statuses in the HTML results table (pass green, everything else red/amber).
STATUS_COLOURS = {"passed": "#1a7f37", "failed": "#cf222e", "error": "#cf222e",
                  "timeout": "#9a6700", "memory_limit": "#9a6700"}


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
    rows = [(t["name"] + (" (hidden)" if t.get("hidden") else ""), t["status"],
             f"{t['points']:g}/{t['max_points']:g}", t.get("message", "").splitlines()[0] if t.get("message") else "")
            for t in grade.get("tests", [])]
    header = ("test", "status", "points", "message")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(3)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header[:3], widths)) + "  message"]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3] for r in rows]
    lines.append(score_line(grade))
    if grade.get("status") not in (None, "ok"):
        lines.append(f"your code itself ended with {grade['status']}"
                     + (f": {grade['message']}" if grade.get("message") else ""))
    return "\n".join(lines)


def score_line(grade: dict[str, Any]) -> str:
    """``score: 5 / 7 (graded in the sandbox)``."""
    return f"score: {grade.get('score', 0):g} / {grade.get('max_score', 0):g} (graded in the sandbox)"


def results_html(grade: dict[str, Any]) -> str:
    """A graded submission as an HTML table with pass/fail colours, then the score."""
    rows = []
    for t in grade.get("tests", []):
        colour = STATUS_COLOURS.get(t["status"], "#cf222e")
        name = html.escape(t["name"]) + (" <em>(hidden)</em>" if t.get("hidden") else "")
        rows.append(
            f"<tr><td>{name}</td><td style='color:{colour};font-weight:bold'>{html.escape(t['status'])}</td>"
            f"<td>{t['points']:g}/{t['max_points']:g}</td>"
            f"<td><pre style='margin:0;white-space:pre-wrap'>{html.escape(t.get('message', ''))}</pre></td></tr>")
    code_status = ""
    if grade.get("status") not in (None, "ok"):
        code_status = (f"<p>your code itself ended with <code>{html.escape(str(grade['status']))}</code>"
                       f"{': ' + html.escape(grade['message']) if grade.get('message') else ''}</p>")
    return ("<table class='jupyter-exec-results'><thead><tr><th>test</th><th>status</th><th>points</th>"
            f"<th>message</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
            f"<p><strong>{html.escape(score_line(grade))}</strong></p>{code_status}")


def status_text(status: dict[str, Any]) -> str:
    """``GET docker/status`` as a few readable lines."""
    docker = status.get("docker", {})
    runs = status.get("runs", {})
    default = status.get("limits", {}).get("default", {})
    engine = (f"reachable, version {docker.get('engine_version')}" if docker.get("reachable")
              else f"NOT reachable ({docker.get('error') or 'unknown error'})")
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
    print(f"%%{name} works on the code of its cell: put %%{name} (two %) on the first line of a "
          f"cell and the code below it; %{name} --help shows the options.", file=sys.stderr)
    return True


def _help_requested(func: Callable[..., Any], line: str) -> bool:
    """Prints the magic's usage for ``--help``/``-h`` (IPython's parsers have no help option)."""
    if any(word in ("-h", "--help") for word in line.split()):
        print(func.parser.format_help())
        return True
    return False


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

    @magic_arguments("%sandbox")  # IPython prefixes one "%": usage then reads %%sandbox
    @argument("--time-limit", type=float, default=None, metavar="S",
              help="wall-clock seconds (default: the server's; clamped to its maximum)")
    @argument("--memory-limit", default=None, metavar="M", help="memory, e.g. 128m or 1g")
    @argument("--stdin", default=None, metavar="TEXT",
              help=r"standard input of the program (\n starts a new line)")
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
        result = self.client.execute(cell, stdin=stdin, time_limit=args.time_limit,
                                     memory_limit=memory, use_cache=not args.no_cache)
        # Flush between streams so the notebook shows them in this order.
        if result.get("stdout"):
            sys.stdout.write(result["stdout"])
            sys.stdout.flush()
        if result.get("stderr"):
            sys.stderr.write(result["stderr"])
            sys.stderr.flush()
        hint = name_error_hint(result)
        if hint:
            sys.stderr.write(("" if result["stderr"].endswith("\n") else "\n") + hint + "\n")
            sys.stderr.flush()
        for note in result.get("notes") or []:
            print(f"note: {note}")
        if result.get("stdout") and not result["stdout"].endswith("\n"):
            print()
        print(status_line(result))

    @magic_arguments("%submit")
    @argument("exercise_id", nargs="?", help="the exercise's id (its notebook's jupyter_exec.exercise_id)")
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
            print(SandboxMagics.submit.parser.format_usage().strip() + "\nerror: name the exercise, "
                  "e.g. %%submit strings-palindrome", file=sys.stderr)
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
        print(status_text(self.client.status()))
