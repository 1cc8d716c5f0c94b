"""The trusted harness: runs one test's code, reaching the student's code only through calls.

Runs in a process of its own under the harness uid (10002), which the student's uid (10001)
cannot signal, trace or read. The test's code runs here with the real builtins and this
process's own modules. Every name the test uses that the test itself does not define and that is
not a builtin is looked up in the student's program, over a socket, each time it is used:
plain data comes back as a copy (wire.py), anything else as a proxy. Proxies forward attribute
access, calls, len, str/repr, bool, iteration and item access, each answered with plain data or
another proxy; they never forward ==, <, +, abs … so no student code decides a comparison.
The student's classes are mirrored here as classes (isinstance works), their exception classes as
real exception classes (``except TheirError:`` works).

Only this process writes the test's verdict, on a pipe the student's uid cannot reach.
"""

import ast
import builtins
import codecs
import importlib
import io
import json
import linecache
import os
import selectors
import socket
import sys
import traceback

import wire

TEST_FILENAME = "test"
OUTPUT_LIMIT = 64 * 1024
#: Standard modules the harness imports itself when the program hands it one of these (its own
#: copy replaces the program's, which the program may have patched). Importing runs code, so only
#: modules whose import does nothing but define names: never a name the program chose.
_OWN_MODULES = frozenset(
    {
        "array",
        "bisect",
        "calendar",
        "cmath",
        "collections",
        "copy",
        "dataclasses",
        "datetime",
        "decimal",
        "enum",
        "fractions",
        "functools",
        "heapq",
        "itertools",
        "json",
        "math",
        "numbers",
        "operator",
        "random",
        "re",
        "statistics",
        "string",
        "textwrap",
        "time",
        "types",
        "typing",
    }
)
_MAX_BASES_DEPTH = 50


class StudentGone(BaseException):
    """The student's process ended (or ended the test) before the test finished.

    Not an Exception: ``except Exception`` in a test must not swallow it.
    """


class ProtocolBroken(BaseException):
    """The student's side answered something that is not a valid answer."""


class OutputLimit(BaseException):
    """The test's output passed its cap."""


# -- the test's code -------------------------------------------------------------------------------


def _bound_in(nodes):
    """Names a block binds (assignments, defs, imports, parameters …), not looking into nested scopes."""
    bound = set()
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
            stack.extend(node.decorator_list)
            if not isinstance(node, ast.ClassDef):
                stack.extend(node.args.defaults + [d for d in node.args.kw_defaults if d])
            else:
                stack.extend(node.bases + [k.value for k in node.keywords])
            continue
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                bound.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            bound.update(node.names)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.add(node.rest)
        if isinstance(
            node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
        ):
            continue  # a scope of its own
        stack.extend(ast.iter_child_nodes(node))
    return bound


class _StudentNames(ast.NodeTransformer):
    """Rewrites each use of a name the test neither defines nor gets from builtins into
    ``__student__("name")``: a fresh look-up in the student's program at every use."""

    def __init__(self, module_bound):
        self.scopes = [module_bound]

    def _scope(self, node, own):
        self.scopes.append(own)
        self.generic_visit(node)
        self.scopes.pop()
        return node

    def visit_FunctionDef(self, node):
        for d in node.decorator_list + node.args.defaults + [d for d in node.args.kw_defaults if d]:
            self.visit(d)
        args = node.args
        params = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
        params |= {a.arg for a in (args.vararg, args.kwarg) if a}
        self.scopes.append(params | _bound_in(node.body))
        node.body = [self.visit(s) for s in node.body]
        self.scopes.pop()
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node):
        args = node.args
        params = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
        params |= {a.arg for a in (args.vararg, args.kwarg) if a}
        return self._scope(node, params)

    def _comprehension(self, node):
        own = set()
        for gen in node.generators:
            own |= _bound_in([gen.target])
        return self._scope(node, own)

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comprehension

    def visit_Name(self, node):
        if not isinstance(node.ctx, ast.Load) or any(node.id in s for s in self.scopes):
            return node
        if hasattr(builtins, node.id):
            return node  # the test's builtins are always the real ones
        call = ast.Call(
            func=ast.Name(id="__student__", ctx=ast.Load()),
            args=[ast.Constant(value=node.id)],
            keywords=[],
        )
        return ast.copy_location(call, node)


def compile_test(source):
    """The test's code, compiled so that names of the student's program are looked up there."""
    linecache.cache[TEST_FILENAME] = (len(source), None, source.splitlines(True), TEST_FILENAME)
    tree = ast.parse(source, TEST_FILENAME, "exec")
    tree = _StudentNames(_bound_in(tree.body)).visit(tree)
    ast.fix_missing_locations(tree)
    return compile(tree, TEST_FILENAME, "exec")


# -- output ----------------------------------------------------------------------------------------


class Capture:
    """The test's stdout and stderr: the harness's own prints and the student's, in order."""

    def __init__(self, limit):
        self.parts = {"stdout": [], "stderr": []}
        self.sizes = {"stdout": 0, "stderr": 0}
        self.limit = limit
        self.over = False

    def add(self, stream, text):
        if self.over:
            raise OutputLimit()
        self.sizes[stream] += len(text.encode("utf-8", "replace"))
        if self.sizes[stream] > self.limit:
            self.over = True
            raise OutputLimit()
        self.parts[stream].append(text)

    def text(self, stream):
        return "".join(self.parts[stream])[: self.limit]


class CaptureStream(io.TextIOBase):
    def __init__(self, capture, name):
        self.capture = capture
        self.name = name

    def writable(self):
        return True

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError("write() argument must be str, not %s" % type(text).__name__)
        self.capture.add(self.name, text)
        return len(text)


# -- the connection to the student's process -------------------------------------------------------


class Connection:
    """Requests to the student's process, with its output collected as it arrives."""

    def __init__(self, sock, out_fd, err_fd, capture):
        self.sock = sock
        self.reader = wire.Reader()
        self.capture = capture
        self.sel = selectors.DefaultSelector()
        self.sel.register(sock, selectors.EVENT_READ, "rpc")
        self.pipes = {}
        self.closed_pipes = []
        for fd, name in ((out_fd, "stdout"), (err_fd, "stderr")):
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, name)
            self.pipes[fd] = [name, codecs.getincrementaldecoder("utf-8")("replace")]
        self.listening = False  # output before "ready" is the program's, not the test's
        self.broken = None  # a StudentGone or ProtocolBroken once the student's side failed
        self.proxies = {}
        self.mirrors = {}

    # transport

    def close(self):
        """Closes the socket and the pipes: the student's process may end, this harness goes on."""
        for fd in list(self.pipes):
            self.sel.unregister(fd)
            os.close(fd)
        self.pipes.clear()
        for fd in self.closed_pipes:
            os.close(fd)
        self.closed_pipes = []
        self.sel.close()
        self.sock.close()

    def fail(self, error):
        if self.broken is None:
            self.broken = error
        raise self.broken

    def _read_pipe(self, fd):
        name, decoder = self.pipes[fd]
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return False
        if not chunk:
            self.sel.unregister(fd)
            text = decoder.decode(b"", final=True)
            del self.pipes[fd]
            self.closed_pipes.append(fd)
        else:
            text = decoder.decode(chunk)
        if text and self.listening:
            self.capture.add(name, text)
        return bool(chunk)

    def drain(self):
        """Takes what the student's process already wrote (it wrote it before it answered)."""
        for fd in list(self.pipes):
            while fd in self.pipes and self._read_pipe(fd):
                pass

    def receive(self):
        while True:
            try:
                message = self.reader.next()
            except wire.WireError as e:
                self.fail(ProtocolBroken(str(e)))
            if message is not None:
                self.drain()
                return message
            for key, _ in self.sel.select():
                if key.data == "rpc":
                    try:
                        chunk = self.sock.recv(1 << 16)
                    except OSError:
                        chunk = b""
                    if not chunk:
                        self.drain()
                        if not self.listening:
                            self.fail(
                                StudentGone(
                                    "the program failed or ended when it was run again for this "
                                    "test, before the test could start"
                                )
                            )
                        self.fail(
                            StudentGone(
                                "the student's code ended before the test finished "
                                "(sys.exit(), os._exit() or a crash?)"
                            )
                        )
                    self.reader.feed(chunk)
                else:
                    self._read_pipe(key.fd)

    def wait_ready(self):
        message = self.receive()
        if message.get("ready") is not True:
            self.fail(ProtocolBroken("the student's process did not start the test properly"))
        self.drain()
        self.listening = True

    def request(self, message, table=None):
        if self.broken is not None:
            raise self.broken
        try:
            data = wire.pack(message)
        except (ValueError, TypeError) as e:
            raise ValueError("the test's arguments cannot be sent to the code: %s" % e) from None
        try:
            self.sock.sendall(data)
        except OSError:
            self.drain()
            self.fail(
                StudentGone(
                    "the student's code ended before the test finished "
                    "(sys.exit(), os._exit() or a crash?)"
                )
            )
        reply = self.receive()
        if "exit" in reply:
            self.fail(
                StudentGone("the student's code ended the test (%s)" % str(reply["exit"])[:40])
            )
        if "raise" in reply:
            raise self.exception(reply["raise"])
        return reply

    def value(self, message):
        reply = self.request(message)
        if "ok" not in reply:
            self.fail(ProtocolBroken("an answer of the student's process has no value"))
        return self.decode(reply["ok"])

    def decode(self, data, table=None):
        try:
            return wire.Decoder(self.resolve, table).decode(data)
        except (
            Exception
        ) as e:  # any failure to rebuild what the student sent: never the test's to catch
            self.fail(
                ProtocolBroken(
                    "the student's process answered with a malformed value: %s" % str(e)[:200]
                )
            )

    def encoder(self, table=None):
        return wire.Encoder(self.handle_of, table)

    # handles in both directions

    def handle_of(self, value):
        """How a test's value goes to the student: only their own objects, never ours."""
        if isinstance(value, Proxy):
            return {"$h": object.__getattribute__(value, "_h")}
        if isinstance(value, type):
            handle = getattr(value, "__student_handle__", None)
            if handle is not None and value.__dict__.get("__student_handle__") == handle:
                return {"$h": handle}
            if getattr(builtins, value.__name__, None) is value:
                return {"$type": value.__name__}
        raise TypeError(
            "a test can pass only plain data (numbers, text, lists, dicts …) or the "
            "code's own objects to the student's code, not %s" % type(value).__name__
        )

    def resolve(self, data):
        if "$type" in data:
            name = data["$type"]
            value = (
                getattr(builtins, name, None)
                if type(name) is str and not name.startswith("_")
                else None
            )
            if not isinstance(value, type):
                raise wire.WireError("unknown builtin type")
            return value
        n = data.get("$h")
        if type(n) is not int or not 0 <= n < 10_000_000:
            raise wire.WireError("malformed handle")
        kind = data.get("k")
        if kind == "class":
            return self.mirror(data, 0)
        if kind == "module":
            module = self.own_module(data.get("name"))
            if module is not None:
                return module
        if n in self.proxies:
            return self.proxies[n]
        cls = Proxy
        if kind == "obj" and isinstance(data.get("c"), dict):
            cls = self.mirror(data["c"], 0)
            if not isinstance(cls, type) or not issubclass(cls, Proxy):
                cls = Proxy  # an instance of an exception class: used as any other object
        elif kind not in ("obj", "module"):
            raise wire.WireError("unknown handle kind")
        proxy = object.__new__(cls)
        object.__setattr__(proxy, "_h", n)
        object.__setattr__(proxy, "_conn", self)
        tname = data.get("t") if kind == "obj" else "module"
        object.__setattr__(proxy, "_tname", str(tname or cls.__name__)[:100])
        self.proxies[n] = proxy
        return proxy

    def own_module(self, name):
        """The harness's own copy of a standard module the student's code imported, if it is one
        of _OWN_MODULES; None for any other (it stays a proxy): the program must not choose which
        of the harness's powerful objects (os, ctypes …) the test's code then calls."""
        if type(name) is not str or name not in _OWN_MODULES:
            return None  # anything else (os, subprocess, the harness's own …) stays a proxy
        try:
            return importlib.import_module(name)
        except Exception:
            return None

    def mirror(self, data, depth):
        """The harness's class standing for a class of the student's program (one per class)."""
        if "$type" in data:
            return self.resolve(data)
        n = data.get("$h")
        if type(n) is not int or data.get("k") != "class":
            raise wire.WireError("malformed class")
        if n in self.mirrors:
            return self.mirrors[n]
        if depth > _MAX_BASES_DEPTH:
            raise wire.WireError("class hierarchy too deep")
        name = data.get("name")
        if type(name) is not str or not name:
            name = "StudentClass"
        bases_data = data.get("bases")
        if type(bases_data) is not list or len(bases_data) > 20:
            raise wire.WireError("malformed class bases")
        bases = [self.mirror(b, depth + 1) if isinstance(b, dict) else None for b in bases_data]
        if any(b is None for b in bases):
            raise wire.WireError("malformed class bases")
        namespace = {"__module__": "__main__", "__student_handle__": n, "__qualname__": name[:200]}
        if data.get("exc") is True:
            bases = [
                b
                for b in bases
                if isinstance(b, type) and issubclass(b, BaseException) and not issubclass(b, Proxy)
            ] or [Exception]
            try:
                cls = type(name[:200], tuple(bases), namespace)
            except TypeError:
                cls = type(name[:200], (Exception,), namespace)
        else:
            bases = [b for b in bases if isinstance(b, type) and issubclass(b, Proxy)] or [Proxy]
            namespace["__slots__"] = ()
            namespace["_conn_"] = self
            try:
                cls = ProxyMeta(name[:200], tuple(bases), namespace)
            except TypeError:
                cls = ProxyMeta(name[:200], (Proxy,), namespace)
        self.mirrors[n] = cls
        return cls

    def exception(self, data):
        """The exception the student's code raised, as an exception of the harness."""
        if type(data) is not dict:
            self.fail(ProtocolBroken("malformed exception"))
        try:
            cls = self.mirror(data.get("c"), 0) if isinstance(data.get("c"), dict) else None
        except Exception as e:  # e.g. a class name type() refuses
            self.fail(ProtocolBroken("malformed exception class: %s" % e))
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            if isinstance(cls, type) and issubclass(cls, BaseException):
                # SystemExit, KeyboardInterrupt … end the test, as they would have ended the code.
                self.fail(StudentGone("the student's code ended the test (%s)" % cls.__name__))
            self.fail(
                ProtocolBroken("the student's process raised something that is not an exception")
            )
        if issubclass(cls, (StopIteration, StopAsyncIteration)):
            # Raised into the test as it is, it would quietly end the test's own loop, map() or
            # generator (all() of nothing is True): as for generators (PEP 479), it is an error.
            cls = RuntimeError
            data = dict(data, args=None, message="the code raised StopIteration")
        message = data.get("message") if type(data.get("message")) is str else ""
        error = None
        if data.get("args") is not None:
            args = self.decode(data["args"])
            if type(args) is tuple:
                try:
                    error = cls(*args)
                except Exception:
                    error = None
        if error is None:
            try:
                error = cls(message)
            except Exception:
                error = Exception(message)
        attrs = self.decode(data["attrs"]) if data.get("attrs") is not None else {}
        if type(attrs) is dict:
            for key, value in list(attrs.items())[:50]:
                if type(key) is str and key.isidentifier() and not key.startswith("__"):
                    try:
                        setattr(error, key, value)  # the exception's own attributes (e.age …)
                    except (AttributeError, TypeError):
                        pass
        tb = data.get("tb")
        error.__student_traceback__ = tb if type(tb) is str else ""
        return error

    # requests the proxies make

    def lookup(self, name):
        reply = self.request({"op": "lookup", "name": name})
        if reply.get("missing") is True:
            raise NameError("name %r is not defined" % name, name=name)
        if "ok" not in reply:
            self.fail(ProtocolBroken("an answer of the student's process has no value"))
        return self.decode(reply["ok"])

    def call(self, handle, args, kwargs):
        table = []
        encoder = self.encoder(table)
        message = {
            "op": "call",
            "h": handle,
            "args": [encoder.encode(a) for a in args],
            "kwargs": [[k, encoder.encode(v)] for k, v in kwargs.items()],
        }
        count = len(table)
        reply = self.request(message)
        if (
            "ok" not in reply
            or type(reply.get("state")) is not list
            or len(reply["state"]) != count
        ):
            self.fail(ProtocolBroken("an answer of the student's process is malformed"))
        decoder = wire.Decoder(self.resolve, table)
        try:
            updates = []
            for n, entry in enumerate(reply["state"]):
                if type(entry) is not list or len(entry) != 2 or entry[0] != n:
                    raise wire.WireError("malformed argument state")
                updates.append(decoder.items_into(table[n], entry[1]))
            result = decoder.decode(reply["ok"])
            for update in updates:
                update()  # what the code did to the test's lists, dicts and sets
        except (
            Exception
        ) as e:  # any failure to rebuild what the student sent: never the test's to catch
            self.fail(
                ProtocolBroken(
                    "the student's process answered with a malformed value: %s" % str(e)[:200]
                )
            )
        return result

    def plain(self, op, handle, kind, **extra):
        message = {"op": op, "h": handle}
        message.update(extra)
        value = self.value(message)
        if type(value) not in kind:
            self.fail(
                ProtocolBroken(
                    "the student's process answered %s with a %s" % (op, type(value).__name__)
                )
            )
        return value


class ProxyMeta(type):
    """The class of mirrored student classes: calling one makes an object in the student's process."""

    def __call__(cls, *args, **kwargs):
        return cls._conn_.call(cls.__student_handle__, args, kwargs)

    def __getattr__(cls, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return cls._conn_.value({"op": "getattr", "h": cls.__student_handle__, "name": name})

    def __repr__(cls):
        return "<class '%s'>" % cls.__name__


def _conn(proxy):
    return object.__getattribute__(proxy, "_conn"), object.__getattribute__(proxy, "_h")


class Proxy:
    """An object of the student's program, used from the test through calls.

    Equality is identity and operators are not supported: the code's ``__eq__``, ``__lt__``,
    ``__sub__`` … never decide what a test sees.
    """

    __slots__ = ("_h", "_conn", "_tname", "__weakref__")

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        conn, h = _conn(self)
        return conn.value({"op": "getattr", "h": h, "name": name})

    def __setattr__(self, name, value):
        conn, h = _conn(self)
        conn.request({"op": "setattr", "h": h, "name": name, "value": conn.encoder().encode(value)})

    def __delattr__(self, name):
        conn, h = _conn(self)
        conn.request({"op": "delattr", "h": h, "name": name})

    def __call__(self, *args, **kwargs):
        conn, h = _conn(self)
        return conn.call(h, args, kwargs)

    def __len__(self):
        conn, h = _conn(self)
        value = conn.plain("len", h, (int,))
        if value < 0:
            raise ValueError("__len__() should return >= 0")
        return value

    def __bool__(self):
        conn, h = _conn(self)
        return conn.plain("bool", h, (bool,))

    def __str__(self):
        conn, h = _conn(self)
        return conn.plain("str", h, (str,))

    def __repr__(self):
        conn, h = _conn(self)
        return conn.plain("repr", h, (str,))

    def __iter__(self):
        conn, h = _conn(self)
        return conn.value({"op": "iter", "h": h})

    def __next__(self):
        conn, h = _conn(self)
        reply = conn.request({"op": "next", "h": h})
        if reply.get("stop") is True:
            raise StopIteration
        if "ok" not in reply:
            conn.fail(ProtocolBroken("an answer of the student's process has no value"))
        return conn.decode(reply["ok"])

    def __getitem__(self, key):
        conn, h = _conn(self)
        return conn.value({"op": "getitem", "h": h, "key": conn.encoder().encode(key)})

    def __setitem__(self, key, value):
        conn, h = _conn(self)
        encoder = conn.encoder()
        conn.request(
            {"op": "setitem", "h": h, "key": encoder.encode(key), "value": encoder.encode(value)}
        )

    def __delitem__(self, key):
        conn, h = _conn(self)
        conn.request({"op": "delitem", "h": h, "key": conn.encoder().encode(key)})


# -- one test ----------------------------------------------------------------------------------------


def describe(error):
    """type, message, assertion and a traceback showing the test's lines and the student's."""
    # Without column positions: the carets would point into the rewritten test, not the one written.
    frames = [
        traceback.FrameSummary(f.filename, f.lineno, f.name, line=f.line)
        for f in traceback.extract_tb(error.__traceback__)
        if f.filename == TEST_FILENAME
    ]
    text = "Traceback (most recent call last):\n" + "".join(traceback.format_list(frames))
    text += getattr(error, "__student_traceback__", "") or ""
    text += "".join(traceback.format_exception_only(type(error), error))
    try:
        message = str(error)
    except Exception:
        message = ""
    return {
        "type": type(error).__name__,
        "message": message[:2000],
        "assertion": isinstance(error, AssertionError),
        "traceback": text[-8000:],
    }


def run_check(job, rpc_fd, out_fd, err_fd, result_fd):
    """Runs one test against the student's process and writes its report on ``result_fd``."""
    capture = Capture(OUTPUT_LIMIT)
    conn = Connection(socket.socket(fileno=rpc_fd), out_fd, err_fd, capture)
    report = {"outcome": "completed", "error": None}
    saved = sys.stdout, sys.stderr
    try:
        code = compile_test(job["code"])
        conn.wait_ready()
        namespace = {"__name__": "__main__", "__builtins__": builtins, "__student__": conn.lookup}
        sys.stdout, sys.stderr = CaptureStream(capture, "stdout"), CaptureStream(capture, "stderr")
        try:
            exec(code, namespace)
        finally:
            sys.stdout, sys.stderr = saved
    except (StudentGone, ProtocolBroken, OutputLimit):
        pass  # decided below, whatever the test's code did with it
    except BaseException as e:
        sys.stdout, sys.stderr = saved
        report = {"outcome": "raised", "error": describe(e)}
    try:
        conn.drain()
    except OutputLimit:
        pass
    if isinstance(conn.broken, StudentGone):
        report = {"outcome": "exited", "error": None, "message": str(conn.broken)}
    elif isinstance(conn.broken, ProtocolBroken):
        report = {"outcome": "protocol_error", "error": None, "message": str(conn.broken)}
    if capture.over:
        report = {"outcome": "output_limit", "error": None}
    report["stdout"] = capture.text("stdout")
    report["stderr"] = capture.text("stderr")
    conn.close()
    data = json.dumps(report, ensure_ascii=True).encode("ascii")
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(result_fd, view) :]
    except OSError:
        pass  # the runner stopped waiting (the check ran out of time)
    finally:
        os.close(result_fd)
