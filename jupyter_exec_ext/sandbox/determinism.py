"""What comes out the same on the next run: a static check of the code, and a rule on the result.

The result cache (``cache.py``) serves a result again only when both say so. The code check walks
the program with the code policy's walker (``policy.uses``); like the policy it can be got around,
and then the only one who sees a stale value is the author of the trick.
"""

from __future__ import annotations

from typing import Optional

from .models import ExecutionResult, Status
from .policy import (
    ATTRIBUTE,
    IMPORT,
    IMPORT_FROM,
    NAME,
    PARSE_ERRORS,
    STRING,
    parse,
    top_level,
    uses,
)

#: Modules whose use makes output change from run to run: randomness, clocks, process and host
#: state, concurrency (thread scheduling), dynamic imports. Conservative on purpose: a false alarm
#: only costs one container run, a miss shows a student a stale value.
NONDETERMINISTIC_MODULES = frozenset(
    {
        "random",
        "secrets",
        "uuid",
        "time",
        "datetime",
        "os",
        "posix",
        "tempfile",
        "timeit",
        "resource",
        "gc",
        "tracemalloc",
        "cProfile",
        "profile",
        "threading",
        "_thread",
        "multiprocessing",
        "concurrent",
        "asyncio",
        "subprocess",
        "signal",
        "socket",
        "select",
        "selectors",
        "importlib",
        "ctypes",
        "mmap",
    }
)
#: Builtins whose value differs between runs (addresses, salted string hashes) or that run code the
#: check cannot see.
NONDETERMINISTIC_CALLS = frozenset({"id", "hash", "__import__", "exec", "eval", "compile"})
#: Attribute names that read randomness or clocks through a module this check does not list
#: (``numpy.random``, ``pandas.Timestamp.now``), however the module was imported.
NONDETERMINISTIC_ATTRIBUTES = frozenset(
    {
        "random",
        "urandom",
        "now",
        "today",
        "utcnow",
        "time",
        "time_ns",
        "perf_counter",
        "monotonic",
        "process_time",
        "getpid",
        "uuid1",
        "uuid4",
    }
)
#: Paths whose contents change from run to run (``/dev/urandom``, ``/proc/uptime`` …).
_VOLATILE_PATHS = ("/dev/", "/proc/", "/sys/")


def nondeterminism_reason(code: str) -> Optional[str]:
    """Says why ``code`` may print something different on the next run, or None if it plainly won't.

    A static, conservative check. Set iteration order and default object reprs (which show an
    address) are not flagged: any one of their outputs is a correct answer.

    Args:
        code: the Python source.

    Returns:
        A short reason such as ``"imports 'random'"`` (the first found, in ``ast.walk`` order), or
        None when the result can be reused.
    """
    try:
        tree = parse(code)
    except PARSE_ERRORS:
        # The container's Python may accept what this one does not; without an AST, do not guess.
        return "the code could not be analysed"
    for use in uses(tree):
        if use.kind == IMPORT:
            if top_level(use.name) in NONDETERMINISTIC_MODULES:
                return f"imports '{use.name}'"
        elif use.kind == IMPORT_FROM:
            if use.name and top_level(use.name) in NONDETERMINISTIC_MODULES:
                return f"imports from '{use.name}'"
        elif use.kind == NAME:
            if use.name in NONDETERMINISTIC_CALLS:
                return f"uses '{use.name}'"
        elif use.kind == ATTRIBUTE:
            if use.name in NONDETERMINISTIC_ATTRIBUTES:
                return f"uses '.{use.name}'"
        elif use.kind == STRING and use.name.startswith(_VOLATILE_PATHS):
            return f"reads '{use.name[:40]}'"
    return None


def reusable(result: ExecutionResult) -> bool:
    """Whether a result may be served again for the same key.

    Reused: ``ok`` (without a note), ``syntax_error``, and ``runtime_error`` from an ordinary exit
    (an uncaught exception or ``sys.exit(n)``, exit code > 0). Never reused: ``timeout``,
    ``memory_limit``, ``internal_error`` (they depend on load and the host), ``output_limit``
    (where the cut falls depends on when the kill lands, and the entry would be megabytes),
    ``policy_violation`` (decided on the host in microseconds, nothing to save), a run killed by a
    signal, and truncated output.
    """
    if result.truncated:
        return False
    if result.status is Status.OK:
        # A note on an ok run means something load-dependent happened (a child hit the memory limit).
        return not result.message
    if result.status is Status.SYNTAX_ERROR:
        return True
    if result.status is Status.RUNTIME_ERROR:
        return isinstance(result.exit_code, int) and result.exit_code > 0
    return False
