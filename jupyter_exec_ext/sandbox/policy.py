"""AST-based code policy: which modules a student may import and which calls an exercise forbids.

The policy is pedagogical (it keeps an exercise on topic and gives a clear message early); it is not
a security boundary, because Python offers endless ways around any static check. The container
is the boundary.
"""

from __future__ import annotations

import ast
import threading
from dataclasses import dataclass, replace
from typing import Any, Iterable, Iterator, Mapping, Optional

# CPython 3.11 keeps one recursion counter for turning a parse tree into ``ast`` objects per
# interpreter, not per thread: two threads parsing at once can end in "SystemError: AST constructor
# recursion depth mismatch" (python/cpython#106905). Policies, rules and the cache all parse on
# worker threads, so every parse goes through here.
_PARSE_LOCK = threading.Lock()


def parse(code: str) -> ast.Module:
    """``ast.parse``, one thread at a time."""
    with _PARSE_LOCK:
        return ast.parse(code)


#: What ``parse`` raises for code this interpreter cannot turn into a tree (bad syntax, a null
#: byte, nesting too deep for the parser, a source too large for memory).
PARSE_ERRORS = (SyntaxError, ValueError, RecursionError, MemoryError)

#: Kinds of :class:`Use`.
IMPORT, IMPORT_FROM, CALL, ATTRIBUTE, NAME, STRING = (
    "import",
    "import_from",
    "call",
    "attribute",
    "name",
    "string",
)


@dataclass(frozen=True)
class Use:
    """One thing a program uses, as the static checks (the code policy, the cache's determinism
    check) see it.

    Args:
        kind: ``import`` (``name`` is the module of ``import name``), ``import_from`` (``name`` is
            the module of ``from name import …``, ``""`` for ``from . import x``), ``call``
            (``name`` is the builtin called: a bare name or ``builtins.NAME``, else ``""``),
            ``attribute`` and ``name`` (any attribute or name read or written), ``string`` (a
            string constant).
        line: where it is.
        level: ``import_from`` only: the dots of a relative import.
        method: ``call`` only: the attribute called (``sort`` in ``xs.sort()``), else ``""``.
    """

    kind: str
    name: str
    line: int
    level: int = 0
    method: str = ""


def uses(tree: ast.AST) -> Iterator[Use]:
    """Every :class:`Use` in ``tree`` (as ``parse`` makes it: every node reported has a line), in
    ``ast.walk`` order (an import statement's names in the order written). The one AST walk the
    policy and the determinism check share."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Use(IMPORT, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            yield Use(IMPORT_FROM, node.module or "", node.lineno, level=node.level or 0)
        elif isinstance(node, ast.Call):
            func = node.func
            name = method = ""
            if isinstance(func, ast.Name):
                name = func.id
            elif isinstance(func, ast.Attribute):
                method = func.attr
                if isinstance(func.value, ast.Name) and func.value.id in (
                    "builtins",
                    "__builtins__",
                ):
                    name = func.attr
            yield Use(CALL, name, node.lineno, method=method)
        elif isinstance(node, ast.Attribute):
            yield Use(ATTRIBUTE, node.attr, node.lineno)
        elif isinstance(node, ast.Name):
            yield Use(NAME, node.id, node.lineno)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield Use(STRING, node.value, node.lineno)


def top_level(module: str) -> str:
    """The top-level package of a dotted module name (``os`` of ``os.path``): what an import rule
    is about."""
    return module.partition(".")[0]


#: The seed's safe-module list, the modules most beginner exercises need.
SAFE_MODULES = frozenset(
    {
        "math",
        "random",
        "datetime",
        "collections",
        "itertools",
        "functools",
        "operator",
        "string",
        "re",
        "json",
    }
)
#: Builtins that reach around the exercise (dynamic code, files, introspection of globals).
RISKY_CALLS = frozenset(
    {"eval", "exec", "compile", "__import__", "open", "breakpoint", "globals", "locals", "vars"}
)


@dataclass(frozen=True)
class PolicyViolation:
    """One thing the policy forbids, at one line."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class CodePolicy:
    """What student code may import and call.

    Args:
        allowed_modules: if set, only these top-level modules may be imported.
        forbidden_imports: top-level modules that may never be imported.
        forbidden_calls: builtin names that may not be called (``eval``, ``open`` …); matched on the
            bare name (and ``builtins.NAME``), so ``re.compile`` is not ``compile``. A name with a
            leading dot (``.sort``) forbids that method on any object (``xs.sort()``).
        forbid_dunder_access: forbid attributes like ``__class__``/``__subclasses__``/``__globals__``.
    """

    allowed_modules: Optional[frozenset] = None
    forbidden_imports: frozenset = frozenset()
    forbidden_calls: frozenset = frozenset()
    forbid_dunder_access: bool = False

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> CodePolicy:
        """Builds a policy from exercise metadata or config.

        Accepts ``{"profile": "safe"}`` or the fields ``allowed_modules``, ``forbidden_imports``,
        ``forbidden_calls``, ``forbid_dunder_access``; fields given next to a profile refine it:
        ``allowed_modules`` replaces the profile's list, the forbidden lists add to the profile's.

        Raises:
            ValueError: an unknown profile or field, or a field of the wrong type, named.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"policy must be an object, got {type(data).__name__}")
        data = dict(data)
        profile = data.pop("profile", None)
        if profile is None:
            base = cls()
        elif profile in PROFILES:
            base = PROFILES[profile]
        else:
            raise ValueError(f"unknown policy profile {profile!r}; known: {', '.join(PROFILES)}")
        changes: dict[str, Any] = {}
        for key, value in data.items():
            if key in ("allowed_modules", "forbidden_imports", "forbidden_calls"):
                if value is None and key == "allowed_modules":
                    changes[key] = None
                    continue
                if not isinstance(value, (list, tuple, set, frozenset)) or not all(
                    isinstance(v, str) for v in value
                ):
                    raise ValueError(f"policy.{key} must be a list of names, got {value!r}")
                extra = frozenset(value)
                changes[key] = extra if key == "allowed_modules" else getattr(base, key) | extra
            elif key == "forbid_dunder_access":
                if not isinstance(value, bool):
                    raise ValueError(f"policy.{key} must be true or false, got {value!r}")
                changes[key] = value
            else:
                raise ValueError(f"unknown policy field {key!r}")
        return replace(base, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "allowed_modules": sorted(self.allowed_modules)
            if self.allowed_modules is not None
            else None,
            "forbidden_imports": sorted(self.forbidden_imports),
            "forbidden_calls": sorted(self.forbidden_calls),
            "forbid_dunder_access": self.forbid_dunder_access,
        }

    def check(self, code: str) -> list[PolicyViolation]:
        """Lists every violation in ``code``, in line order.

        Code that does not parse yields no violations here: the sandbox reports the syntax error
        itself, in the same words as any other run.
        """
        try:
            tree = parse(code)
        except PARSE_ERRORS:
            return []
        found: list[PolicyViolation] = []
        for use in uses(tree):
            found.extend(self._check_use(use))
        return sorted(found, key=lambda v: v.line)

    def _check_module(self, name: str, line: int) -> Iterable[PolicyViolation]:
        top = top_level(name)
        if top in self.forbidden_imports:
            yield PolicyViolation(line, f"importing '{name}' is not allowed in this exercise")
        elif self.allowed_modules is not None and top not in self.allowed_modules:
            allowed = ", ".join(sorted(self.allowed_modules)) or "none"
            yield PolicyViolation(
                line,
                f"importing '{name}' is not allowed in this exercise (allowed modules: {allowed})",
            )

    def _check_use(self, use: Use) -> Iterable[PolicyViolation]:
        line = use.line
        if use.kind == IMPORT:
            yield from self._check_module(use.name, line)
        elif use.kind == IMPORT_FROM:
            if use.level:
                yield PolicyViolation(line, "relative imports are not allowed in this exercise")
            elif use.name:
                yield from self._check_module(use.name, line)
        elif use.kind == CALL:
            if use.name and use.name in self.forbidden_calls:
                yield PolicyViolation(
                    line, f"calling '{use.name}()' is not allowed in this exercise"
                )
            elif use.method and "." + use.method in self.forbidden_calls:
                yield PolicyViolation(
                    line, f"calling '.{use.method}()' is not allowed in this exercise"
                )
        elif use.kind == ATTRIBUTE and self.forbid_dunder_access:
            if use.name.startswith("__") and use.name.endswith("__"):
                yield PolicyViolation(line, f"using '{use.name}' is not allowed in this exercise")
        elif use.kind == NAME and self.forbid_dunder_access:
            if use.name in ("__builtins__", "__loader__", "__spec__"):
                yield PolicyViolation(line, f"using '{use.name}' is not allowed in this exercise")


#: Ready-made policies by name; "none" allows everything (the default for plain execution).
PROFILES: dict[str, CodePolicy] = {
    "none": CodePolicy(),
    "safe": CodePolicy(
        allowed_modules=SAFE_MODULES, forbidden_calls=RISKY_CALLS, forbid_dunder_access=True
    ),
}


#: The constructs a requirement rule can ask for or rule out, with the words a student reads.
CONSTRUCTS: dict[str, tuple[tuple[type, ...], str]] = {
    "while": ((ast.While,), "a `while` loop"),
    "for": ((ast.For,), "a `for` loop"),
    "comprehension": (
        (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp),
        "a comprehension",
    ),
    "list_comprehension": ((ast.ListComp,), "a list comprehension"),
    "dict_comprehension": ((ast.DictComp,), "a dict comprehension"),
    "set_comprehension": ((ast.SetComp,), "a set comprehension"),
    "try": ((ast.Try,), "a `try` statement"),
    "lambda": ((ast.Lambda,), "a `lambda`"),
    "global": ((ast.Global,), "a `global` statement"),
}
RULES = ("calls_itself", "uses", "avoids")


@dataclass(frozen=True)
class Requirement:
    """A rule about *how* an exercise is solved, checked on the code's AST.

    Args:
        rule: ``calls_itself`` (``function`` must call itself), ``uses`` (must contain
            ``construct``) or ``avoids`` (must not contain ``construct``).
        function: the function the rule is about; without it (``uses``/``avoids`` only) the whole
            program.
        construct: a key of :data:`CONSTRUCTS`.
        exception: with ``uses`` ``try``: the ``except`` clause must name this exception type.
        why: the reason a student reads after the rule ("this exercise is about recursion").
    """

    rule: str
    function: Optional[str] = None
    construct: Optional[str] = None
    exception: Optional[str] = None
    why: str = ""

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"unknown rule {self.rule!r}; known: {', '.join(RULES)}")
        if self.rule == "calls_itself" and not self.function:
            raise ValueError(
                "rule 'calls_itself' needs 'function', the function that must call itself"
            )
        if self.rule in ("uses", "avoids"):
            if self.construct not in CONSTRUCTS:
                raise ValueError(
                    f"rule {self.rule!r} needs 'construct', one of {', '.join(CONSTRUCTS)}; "
                    f"got {self.construct!r}"
                )
        if self.exception and (self.rule != "uses" or self.construct != "try"):
            raise ValueError("'exception' goes only with rule 'uses' and construct 'try'")

    @property
    def description(self) -> str:
        """The rule as a student reads it, without the reason."""
        where = f"`{self.function}`" if self.function else "your code"
        if self.rule == "calls_itself":
            return f"`{self.function}` must call itself"
        if self.exception:
            return f"{where} must catch `{self.exception}` with `try` / `except {self.exception}:`"
        assert self.construct is not None  # __post_init__: rules other than calls_itself have one
        words = CONSTRUCTS[self.construct][1]
        return f"{where} must {'use' if self.rule == 'uses' else 'not use'} {words}"

    def default_name(self) -> str:
        """A test name that says what the rule checks."""
        where = self.function or "the code"
        if self.rule == "calls_itself":
            return f"{where} calls itself"
        if self.exception:
            return f"{where} catches {self.exception}"
        assert self.construct is not None  # as in description
        words = CONSTRUCTS[self.construct][1].replace("`", "")
        return f"{where} {'uses' if self.rule == 'uses' else 'does not use'} {words}"

    def check(self, code: str) -> Optional[str]:
        """None when ``code`` follows the rule, else the message a student reads."""
        try:
            tree = parse(code)
        except PARSE_ERRORS:
            return f"{self.description}: the code does not parse, so this could not be checked"
        scope: ast.AST = tree
        if self.function:
            kinds = (ast.FunctionDef, ast.AsyncFunctionDef)
            top = [n for n in tree.body if isinstance(n, kinds) and n.name == self.function]
            defs = top or [
                n for n in ast.walk(tree) if isinstance(n, kinds) and n.name == self.function
            ]
            if not defs:
                return f"{self.description}, but there is no function `{self.function}` in the code"
            # A module-level definition first, and of several the last, as when the code runs.
            scope = defs[-1]
        if self._holds(scope):
            return None
        return f"{self.description}: {self.why}" if self.why else self.description

    def _holds(self, scope: ast.AST) -> bool:
        nodes = list(ast.walk(scope))
        if self.rule == "calls_itself":
            return any(
                isinstance(n, ast.Call)
                and isinstance(n.func, ast.Name)
                and n.func.id == self.function
                for n in nodes
            )
        assert self.construct is not None  # as in description
        kinds = CONSTRUCTS[self.construct][0]
        found = [n for n in nodes if isinstance(n, kinds)]
        if self.exception:
            # With `exception` the construct is `try`: every node found is an ast.Try.
            found = [
                n
                for n in found
                if isinstance(n, ast.Try)
                and any(_names_exception(h.type, self.exception) for h in n.handlers)
            ]
        return bool(found) == (self.rule == "uses")


def _names_exception(node: Optional[ast.AST], name: str) -> bool:
    """Whether an ``except`` clause's type (``E``, ``mod.E`` or a tuple of them) names ``name``."""
    if isinstance(node, ast.Tuple):
        return any(_names_exception(e, name) for e in node.elts)
    if isinstance(node, ast.Name):
        return node.id == name
    if isinstance(node, ast.Attribute):
        return node.attr == name
    return False
