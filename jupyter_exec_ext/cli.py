"""``jupyter exec-ext …``: the command line for instructors and admins."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from . import __version__
from .sandbox import (
    DockerSandbox,
    ExecutionRequest,
    LimitError,
    Limits,
    SandboxConfig,
    SandboxError,
    SandboxUnavailableError,
    Status,
)
from .sandbox.image import (
    DEFAULT_BASE_IMAGE,
    DEFAULT_FLAVOUR,
    FLAVOURS,
    OFFLINE_BASE_IMAGES,
    build_executor_image,
    make_offline_base,
)
from .sandbox.policy import PROFILES

#: Short programs that show what the sandbox does with each kind of run.
DEMO_PROGRAMS = [
    ("hello", 'print("Hello from the sandbox!")', {}),
    ("reads stdin", "name = input()\nprint(f'Hello, {name}!')", {}),
    ("runtime error", "def f(x):\n    return 1 / x\n\nf(0)", {}),
    ("endless loop", "print('working...', flush=True)\nwhile True:\n    pass", {"time_limit": 2}),
    ("memory bomb", "x = ' ' * (1024 ** 3)", {"memory_limit": "64m"}),
    ("network", "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)", {}),
    ("who am I", "import os\nprint('uid', os.getuid(), 'gid', os.getgid())", {}),
]


def _sandbox() -> DockerSandbox:
    return DockerSandbox(SandboxConfig.from_env())


def _print_result(result, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    if result.stdout:
        sys.stdout.write(result.stdout if result.stdout.endswith("\n") else result.stdout + "\n")
    if result.stderr:
        sys.stderr.write(result.stderr if result.stderr.endswith("\n") else result.stderr + "\n")
    line = f"[sandbox] {result.status} in {result.duration_ms} ms"
    if result.message:
        line += f": {result.message}"
    print(line, file=sys.stderr)


def cmd_run(args) -> int:
    code = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()
    stdin = args.stdin or ""
    if args.stdin_file:
        stdin = open(args.stdin_file, encoding="utf-8").read()
    requested = {
        k: v
        for k, v in (
            ("time_limit", args.time_limit),
            ("memory_limit", args.memory_limit),
            ("cpu_limit", args.cpu_limit),
        )
        if v is not None
    }
    policy = PROFILES[args.policy] if args.policy else None
    with _sandbox() as sandbox:
        limits = Limits.from_mapping(requested, base=sandbox.config.default_limits)
        result = sandbox.run(ExecutionRequest(code=code, stdin=stdin, limits=limits, policy=policy))
    _print_result(result, args.json)
    return 0 if result.status is Status.OK else 1


def cmd_demo(args) -> int:
    with _sandbox() as sandbox:
        _demo(sandbox)
    return 0


def _demo(sandbox: DockerSandbox) -> None:
    for title, code, limits in DEMO_PROGRAMS:
        print(f"\n=== {title} ===\n{code}\n---")
        stdin = "student" if "input()" in code else ""
        result = sandbox.run(
            ExecutionRequest(
                code=code,
                stdin=stdin,
                limits=Limits.from_mapping(limits, base=sandbox.config.default_limits),
            )
        )
        sys.stderr.flush()
        _print_result(result, False)
        sys.stdout.flush()


def cmd_status(args) -> int:
    with _sandbox() as sandbox:
        info = sandbox.status()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key:15} {value}")
    return 0 if info["reachable"] and info["image_present"] else 1


def cmd_reap(args) -> int:
    with _sandbox() as sandbox:
        removed = sandbox.reap(everything=args.all)
    print(f"removed {len(removed)} container(s)")
    return 0


def _notebooks(paths: Sequence[str]) -> list:
    from pathlib import Path

    found = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(
                p for p in sorted(path.rglob("*.ipynb")) if ".ipynb_checkpoints" not in p.parts
            )
        elif path.exists():
            found.append(path)
        else:
            raise OSError(f"{path}: no such file or directory")
    return found


def cmd_validate(args) -> int:
    from .grading import Grader
    from .grading.registry import load_notebooks
    from .grading.validation import check_exercise

    failures = 0
    exercises = []
    for notebook in load_notebooks(_notebooks(args.paths)):
        if notebook.exercise is None:
            print(f"FAIL  {notebook.problem}")
            failures += 1
        else:
            exercises.append(notebook.exercise)
    if not exercises and not failures:
        print("no exercise notebooks found")
        return 1
    sandbox = None if args.schema_only else _sandbox()
    try:
        grader = (
            Grader(sandbox, sandbox.config.default_limits, sandbox.config.data_files_bytes)
            if sandbox
            else None
        )
        for exercise in exercises:
            where = f"{exercise.path} ({exercise.id})"
            if grader is None or exercise.student_copy:
                print(
                    f"ok    {where}: metadata valid"
                    + (" (student copy)" if exercise.student_copy else "")
                )
                continue
            check = check_exercise(grader, exercise)
            solution = check.solution
            if not check.ok:
                failures += 1
                print(f"FAIL  {where}: {check.problem}")
                if not check.wrong_solutions:  # the reference solution failed: show how
                    for test in solution.tests if solution else []:
                        if not test.passed:
                            print(
                                f"        test {test.name!r} [{test.status}]{' (hidden)' if test.hidden else ''}: "
                                + test.message.replace("\n", "\n        ")
                            )
                    if solution and solution.stderr.strip():
                        print(
                            "        stderr: " + solution.stderr.strip().replace("\n", "\n        ")
                        )
                    continue
            else:
                passed = sum(t.passed for t in solution.tests)
                print(
                    f"ok    {where}: the reference solution passes {passed}/{len(solution.tests)} tests "
                    f"({solution.score:g}/{solution.max_score:g} points); the starter code scores "
                    f"{check.starter.score:g}"
                )
            if check.wrong_solutions:
                _print_wrong_solutions(check.wrong_solutions)
            if check.warning:
                print(f"WARN  {where}: {check.warning}")
    finally:
        if sandbox is not None:
            sandbox.close()
    print(f"{len(exercises)} exercise(s) checked, {failures} problem(s)")
    return 1 if failures else 0


def _print_wrong_solutions(checks: list) -> None:
    """Per wrong solution: its score and the tests that catch it, visible ones first."""
    visible = sum(c.caught_by_visible for c in checks)
    caught = sum(c.caught for c in checks)
    print(
        f"      wrong solutions: {caught}/{len(checks)} caught, {visible}/{len(checks)} by a visible test"
    )
    for c in checks:
        tests = sorted(c.caught_by, key=lambda t: t.hidden)
        names = ", ".join(f"{t.name!r}{' (hidden)' if t.hidden else ''}" for t in tests)
        verdict = f"caught by {names}" if c.caught else "NOT CAUGHT: it scores full marks"
        print(f"        {c.wrong.name!r} {c.result.score:g}/{c.result.max_score:g}: {verdict}")


def cmd_release(args) -> int:
    from .grading import ExerciseError, release

    try:
        written = release(args.src, args.dst, force=args.force)
    except ExerciseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0


def cmd_update_workspace(args) -> int:
    from .grading import update_workspace

    changes = update_workspace(args.src, args.workspace)
    for change in changes:
        if change.action == "skipped":
            print(f"skipped       {change.message}")
        else:
            print(f"{change.action:13} {change.path}")
    return 1 if any(c.action == "skipped" for c in changes) else 0


def cmd_new(args) -> int:
    from pathlib import Path

    import nbformat

    from .grading.scaffold import new_exercise

    nb = new_exercise(args.id, args.title)
    target = Path(args.output or f"{args.id}.ipynb")
    if target.is_dir() or target.suffix != ".ipynb":  # a folder, existing or not
        target = target / f"{args.id}.ipynb"
    if target.exists() and not args.force:
        raise FileExistsError(f"{target} exists; pass --force to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(target))
    print(
        f"wrote {target}: exercise {args.id!r} with a prompt, starter code, a reference solution "
        "and one test"
    )
    print(
        f"next: edit it in JupyterLab (bash scripts/run.sh --instructor), then "
        f"jupyter exec-ext validate {target}"
    )
    return 0


def cmd_build_image(args) -> int:
    import os

    import docker

    flavour = args.flavour or os.environ.get("JUPYTER_EXEC_EXT_FLAVOUR") or DEFAULT_FLAVOUR
    if flavour not in FLAVOURS:
        raise ValueError(
            f"JUPYTER_EXEC_EXT_FLAVOUR must be one of {', '.join(FLAVOURS)}, got {flavour!r}"
        )
    base = args.base_image
    if args.offline_base:
        base = make_offline_base(base, flavour=flavour)
    base = base or DEFAULT_BASE_IMAGE
    tag = args.tag or SandboxConfig.from_env().image
    client = docker.from_env()
    try:
        build_executor_image(client, tag, base, force=args.force, flavour=flavour)
    finally:
        client.close()
    return 0


def cmd_build_stack(args) -> int:
    """Runs deploy/build-offline.sh of the checkout this package runs from."""
    import subprocess

    script = Path(__file__).resolve().parent.parent / "deploy" / "build-offline.sh"
    if not script.is_file():
        print(
            "build-stack needs a checkout of the repository (deploy/build-offline.sh builds the "
            "images of docker-compose.yml from it); this installation has none",
            file=sys.stderr,
        )
        return 2
    options = (["--force"] if args.force else []) + (["--no-executor"] if args.no_executor else [])
    return subprocess.run(["bash", str(script), *options]).returncode


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jupyter exec-ext", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("build-image", help="build the executor image (idempotent)")
    p.add_argument(
        "--base-image",
        help=f"base image (default {DEFAULT_BASE_IMAGE}, or with "
        f"--offline-base {OFFLINE_BASE_IMAGES['science']} / "
        f"{OFFLINE_BASE_IMAGES['stdlib']} for --flavour stdlib)",
    )
    p.add_argument(
        "--offline-base",
        action="store_true",
        help="make the base with debootstrap (needs root; no registry needed)",
    )
    p.add_argument(
        "--flavour",
        choices=FLAVOURS,
        help="science (default): Python with numpy, pandas and matplotlib; stdlib: the "
        "standard library only (default: JUPYTER_EXEC_EXT_FLAVOUR or science)",
    )
    p.add_argument("--tag", help="image tag (default: DOCKER_EXECUTOR_IMAGE or the versioned tag)")
    p.add_argument("--force", action="store_true", help="rebuild even if the image is up to date")
    p.set_defaults(func=cmd_build_image)

    p = sub.add_parser(
        "build-stack",
        help="build the images of docker-compose.yml offline, cached "
        "(deploy/build-offline.sh of a checkout)",
    )
    p.add_argument("--force", action="store_true", help="rebuild the wheelhouse and the images")
    p.add_argument("--no-executor", action="store_true", help="leave the executor image alone")
    p.set_defaults(func=cmd_build_stack)

    p = sub.add_parser(
        "validate", help="check exercise notebooks and run their reference solutions"
    )
    p.add_argument("paths", nargs="+", help="exercise notebooks or directories of them")
    p.add_argument(
        "--schema-only", action="store_true", help="check the metadata only; run nothing"
    )
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("release", help="write student copies (no hidden tests, no solutions)")
    p.add_argument("src", help="an exercise notebook or a directory of them")
    p.add_argument("dst", help="destination file or directory")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.set_defaults(func=cmd_release)

    p = sub.add_parser(
        "update-workspace",
        help="add new and updated student copies to a students' "
        "workspace, never overwriting a student's work",
    )
    p.add_argument("src", help="the exercise directory (authoritative notebooks)")
    p.add_argument("workspace", help="the folder students work in")
    p.set_defaults(func=cmd_update_workspace)

    p = sub.add_parser("new", help="write a new exercise notebook to start from (it validates)")
    p.add_argument("id", help="exercise id: lowercase letters, digits, '-' and '_'")
    p.add_argument("--title", help="the title students see (default: from the id)")
    p.add_argument(
        "-o",
        "--output",
        help="notebook file, or a folder to write ID.ipynb into (default: ID.ipynb here)",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=cmd_new)

    p = sub.add_parser("run", help="run a Python file in the sandbox")
    p.add_argument("file", help="a .py file, or - for standard input")
    p.add_argument("--stdin", help="text given to the program on standard input")
    p.add_argument("--stdin-file", help="file given to the program on standard input")
    p.add_argument("--time-limit", help="seconds, e.g. 5")
    p.add_argument("--memory-limit", help="e.g. 128m or 1g")
    p.add_argument("--cpu-limit", help="CPUs, e.g. 0.5")
    p.add_argument("--policy", choices=sorted(PROFILES), help="code policy profile")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="run sample programs that show each kind of result")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("status", help="engine and executor image status")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("reap", help="remove abandoned sandbox containers")
    p.add_argument("--all", action="store_true", help="also containers of runs still in progress")
    p.set_defaults(func=cmd_reap)

    from .gradebook.cli import add_parser as add_grades

    add_grades(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (LimitError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except SandboxUnavailableError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except SandboxError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
