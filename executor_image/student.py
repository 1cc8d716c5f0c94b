"""The student's side: runs the submitted code and, for a test, answers the harness's calls.

Runs in a process that has already given up root (uid 10001, no capabilities). Everything here is
the student's to rewrite, so nothing here is trusted: it only ever hands the harness plain data
(wire.py), and the harness judges. Its code arrives on a pipe: a first line with the mode, then
the source.
    run     run the program, then end
    live    run the program with interactive stdin (see ``live_stdin``), then end
    grade   run the program, say "done" on the status socket once it finished without error
    check   run the program again (its output is not the test's), then serve the harness's calls
            over the RPC socket until it closes
"""

import builtins
import io
import json
import linecache
import os
import select
import sys
import traceback
import types

import wire

FILENAME = "main.py"
HANDLE_LIMIT = 100_000
_OUR_FILES = (os.path.dirname(os.path.abspath(__file__)),)
#: The sandbox's matplotlib backend (jupyter_exec_display), alone in its folder.
BACKEND_DIR = os.path.join(_OUR_FILES[0], "backend")
#: matplotlib's font cache, built into the scientific image (absent from the stdlib-only one).
MPL_FONT_CACHE = os.path.join(_OUR_FILES[0], "mplcache")
HAS_MPL_CACHE = os.path.isdir(MPL_FONT_CACHE)


class MatplotlibConfig:
    """Sets up matplotlib's config folder (MPLCONFIGDIR, in /tmp: the only writable place) with
    the image's prebuilt font cache, right before matplotlib's first import, and only then: a
    program that does not import matplotlib finds nothing of it in its folder."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name == "matplotlib":
            try:
                sys.meta_path.remove(cls)
            except ValueError:
                pass
            cls.prepare()
        return None

    @staticmethod
    def prepare():
        target = os.environ.get("MPLCONFIGDIR")
        if not target:
            return
        try:
            os.makedirs(target, exist_ok=True)
            for name in os.listdir(MPL_FONT_CACHE):
                if not os.path.exists(os.path.join(target, name)):
                    with (
                        open(os.path.join(MPL_FONT_CACHE, name), "rb") as src,
                        open(os.path.join(target, name), "wb") as dst,
                    ):
                        dst.write(src.read())
        except OSError:
            pass  # matplotlib then builds its cache itself: slower, not wrong


def say(fd, message):
    try:
        os.write(fd, json.dumps(message).encode())
    except OSError:
        pass  # the runner is not listening (a test's process): nothing to tell


def standard_streams():
    """Fresh sys.stdin/stdout/stderr on fds 0-2, unbuffered as ``python -u`` makes them."""

    def text(fd, mode, errors):
        raw = io.FileIO(fd, mode, closefd=False)
        return io.TextIOWrapper(
            raw if "w" in mode else io.BufferedReader(raw),
            encoding="utf-8",
            errors=errors,
            write_through=True,
        )

    sys.stdin = sys.__stdin__ = text(0, "r", "surrogateescape")
    sys.stdout = sys.__stdout__ = text(1, "w", "surrogateescape")
    sys.stderr = sys.__stderr__ = text(2, "w", "backslashreplace")


def live_stdin(status_fd):
    """Interactive stdin for a live run: a read that would wait for input first tells the runner
    (on the status socket, with input()'s prompt), which asks the host once. ``input(prompt)``
    leaves the prompt to that request instead of printing it, as a Jupyter kernel does. Nothing
    here is trusted: the runner forwards at most one request per answer, and the host treats the
    prompt like any output of the program."""
    prompt = [""]
    consumed = [0]  # bytes read so far: the runner asks only if nothing was written since

    class Stdin(io.RawIOBase):
        def readable(self):
            return True

        def fileno(self):
            return 0

        def readinto(self, buffer):
            try:
                ready = select.select([0], [], [], 0)[0]
            except (OSError, ValueError):
                ready = True
            if not ready:
                # A message longer than the runner reads would be lost: the prompt is cut.
                say(status_fd, {"input": prompt[0][:4096], "read": consumed[0]})
            prompt[0] = ""
            data = os.read(0, len(buffer))
            buffer[: len(data)] = data
            consumed[0] += len(data)
            return len(data)

    stream = io.TextIOWrapper(
        io.BufferedReader(Stdin()), encoding="utf-8", errors="surrogateescape", line_buffering=False
    )
    sys.stdin = sys.__stdin__ = stream
    builtin_input = builtins.input

    def live_input(text=""):
        if sys.stdin is not stream:
            return builtin_input(text)
        flush()
        prompt[0] = str(text)
        try:
            line = stream.readline()
        finally:
            prompt[0] = ""
        if not line:
            raise EOFError("EOF when reading a line")
        return line[:-1] if line.endswith("\n") else line

    builtins.input = live_input


def read_all(fd):
    parts = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        parts.append(chunk)
    os.close(fd)
    return b"".join(parts).decode("utf-8", "surrogatepass")


def main(code_fd, status_fd, rpc_fd):
    standard_streams()
    say(status_fd, {"booted": True})  # the runner hands out this process only after this
    mode, _, src = read_all(code_fd).partition("\n")
    if mode == "live":
        live_stdin(status_fd)
        mode = "run"
    linecache.cache[FILENAME] = (len(src), None, src.splitlines(True), FILENAME)
    code = compile(src, FILENAME, "exec")
    module = types.ModuleType("__main__")
    module.__file__ = FILENAME
    module.__builtins__ = builtins
    sys.modules["__main__"] = module
    sys.argv[:] = [FILENAME]
    sys.path[:] = [p for p in sys.path if p not in _OUR_FILES] + [BACKEND_DIR]
    if HAS_MPL_CACHE:
        sys.meta_path.insert(0, MatplotlibConfig)
    try:
        exec(code, module.__dict__)
    except SystemExit as e:
        if mode == "run" or e.code not in (None, 0):
            raise
    except BaseException as e:
        traceback.print_exception(type(e), e, e.__traceback__.tb_next)
        sys.stderr.flush()
        os._exit(1)
    flush()
    if mode == "grade":
        say(status_fd, {"done": True})
    if mode == "check":
        Server(rpc_fd, module).serve()
        os._exit(0)
    quick_exit()


def run_as_program(code_fd, status_fd, rpc_fd):
    """``main`` with what the interpreter does when a program ends: the exit code of SystemExit,
    a traceback for anything else, then threads joined, atexit handlers run, output flushed."""
    code = 0
    try:
        main(code_fd, status_fd, rpc_fd)
    except SystemExit as e:
        code = exit_code(e)
    except BaseException as e:
        traceback.print_exception(type(e), e, e.__traceback__)
        code = 1
    try:
        threading = sys.modules.get("threading")
        if threading is not None:
            threading._shutdown()
        import atexit

        atexit._run_exitfuncs()
    except SystemExit as e:
        code = exit_code(e)
    except BaseException:
        pass
    flush()
    os._exit(code)


def exit_code(e):
    if e.code is None:
        return 0
    if isinstance(e.code, int):
        return e.code & 0xFF
    try:
        sys.stderr.write("%s\n" % (e.code,))
    except BaseException:
        pass
    return 1


def flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass


def quick_exit():
    # Tearing the interpreter down takes longer than most student programs run. With no other
    # thread to wait for, do what a normal exit does that a student can observe (atexit handlers,
    # flushed output) and leave at once.
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        return
    import atexit

    atexit._run_exitfuncs()
    flush()
    os._exit(0)


class Server:
    """Answers the harness: look up a name, get or set an attribute, call, len, str, iterate …

    Results go back as plain data; anything else as a numbered handle that the harness can only
    use through further calls.
    """

    def __init__(self, fd, module):
        import socket

        self.sock = socket.socket(fileno=fd)
        self.module = module
        self.objects = []
        self.ids = {}

    def serve(self):
        reader = wire.Reader()
        wire.send(self.sock, {"ready": True})
        while True:
            try:
                message = wire.recv_blocking(self.sock, reader)
            except (OSError, wire.WireError):
                return
            if message is None:
                return
            try:
                reply = self.answer(message)
            except (SystemExit, KeyboardInterrupt) as e:
                reply = {"exit": type(e).__name__}
            except BaseException as e:
                reply = self.failure(e)
            flush()
            try:
                data = wire.pack(reply)
            except (ValueError, TypeError, RecursionError) as e:
                data = wire.pack(
                    self.failure(ValueError("the result could not be sent to the test: %s" % e))
                )
            try:
                self.sock.sendall(data)
            except OSError:
                return

    # -- handles ---------------------------------------------------------------------------------

    def put(self, obj):
        n = self.ids.get(id(obj))
        if n is not None and self.objects[n] is obj:
            return n
        if len(self.objects) >= HANDLE_LIMIT:
            raise ValueError("the test holds too many of the code's objects")
        self.ids[id(obj)] = n = len(self.objects)
        self.objects.append(obj)
        return n

    def class_ref(self, cls, depth=0):
        if (
            getattr(cls, "__module__", None) == "builtins"
            and getattr(builtins, cls.__name__, None) is cls
        ):
            return {"$type": cls.__name__}
        if depth > 50:
            raise ValueError("the class hierarchy is too deep")
        return {
            "$h": self.put(cls),
            "k": "class",
            "name": str(cls.__name__)[:200],
            "exc": issubclass(cls, BaseException),
            "bases": [self.class_ref(b, depth + 1) for b in cls.__bases__ if b is not object],
        }

    def handle(self, value):
        if isinstance(value, type):
            return self.class_ref(value)
        if isinstance(value, types.ModuleType):
            return {"$h": self.put(value), "k": "module", "name": str(value.__name__)[:200]}
        cls = type(value)
        if getattr(cls, "__module__", None) == "builtins":
            return {"$h": self.put(value), "k": "obj", "t": str(cls.__name__)[:200]}
        return {"$h": self.put(value), "k": "obj", "c": self.class_ref(cls)}

    def resolve(self, data):
        if "$type" in data:
            value = getattr(builtins, str(data["$type"]), None)
            if not isinstance(value, type):
                raise wire.WireError("unknown builtin type")
            return value
        n = data.get("$h")
        if type(n) is not int or not 0 <= n < len(self.objects):
            raise wire.WireError("unknown handle")
        return self.objects[n]

    def encoder(self, table=None):
        # Instances of the student's own subclasses of list, dict … keep their methods (handles);
        # those of the standard library (Counter, OrderedDict, namedtuples …) travel as plain data.
        return wire.Encoder(
            self.handle,
            table,
            plain_subclasses=lambda cls: getattr(cls, "__module__", "") != "__main__",
        )

    # -- requests --------------------------------------------------------------------------------

    def answer(self, m):
        op = m.get("op")
        if op == "lookup":
            name = wire.check_name(m.get("name"))
            if name not in self.module.__dict__:
                return {"missing": True}
            return {"ok": self.encoder().encode(self.module.__dict__[name])}
        target = self.resolve({"$h": m.get("h")})
        if op == "call":
            table = []
            decoder = wire.Decoder(self.resolve, table)
            args = m.get("args")
            kwargs = m.get("kwargs")
            if type(args) is not list or type(kwargs) is not list:
                raise wire.WireError("malformed call")
            args = [decoder.decode(a) for a in args]
            kw = {}
            for pair in kwargs:
                if type(pair) is not list or len(pair) != 2:
                    raise wire.WireError("malformed keyword argument")
                kw[wire.check_name(pair[0])] = decoder.decode(pair[1])
            count = len(table)
            result = target(*args, **kw)
            encoder = self.encoder(table)
            state = [[n, encoder.items(table[n])] for n in range(count)]
            return {"ok": encoder.encode(result), "state": state}
        if op == "getattr":
            return {"ok": self.encoder().encode(getattr(target, wire.check_name(m.get("name"))))}
        if op == "setattr":
            value = wire.Decoder(self.resolve).decode(m.get("value"))
            setattr(target, wire.check_name(m.get("name")), value)
            return {"ok": None}
        if op == "delattr":
            delattr(target, wire.check_name(m.get("name")))
            return {"ok": None}
        if op in ("getitem", "setitem", "delitem"):
            decoder = wire.Decoder(self.resolve)
            key = decoder.decode(m.get("key"))
            if op == "getitem":
                return {"ok": self.encoder().encode(target[key])}
            if op == "setitem":
                target[key] = decoder.decode(m.get("value"))
            else:
                del target[key]
            return {"ok": None}
        if op == "len":
            return {"ok": len(target)}
        if op == "bool":
            return {"ok": bool(target)}
        if op == "str":
            return {"ok": str(target)}
        if op == "repr":
            return {"ok": repr(target)}
        if op == "iter":
            return {"ok": self.encoder().encode(iter(target))}
        if op == "next":
            try:
                return {"ok": self.encoder().encode(next(target))}
            except StopIteration:
                return {"stop": True}
        raise wire.WireError("unknown request")

    def failure(self, error):
        """An exception of the student's code, for the harness to raise in the test."""
        frames = [
            f
            for f in traceback.extract_tb(error.__traceback__)
            if not f.filename.startswith(_OUR_FILES)
        ]
        try:
            message = str(error)[:2000]
        except BaseException:
            message = ""
        try:
            args = self.encoder().encode(tuple(error.args))
        except BaseException:
            args = None
        try:
            attrs = self.encoder().encode(
                {
                    k: v
                    for k, v in vars(error).items()
                    if isinstance(k, str) and not k.startswith("__")
                }
            )
        except BaseException:
            attrs = None
        try:
            cls = self.class_ref(type(error))
        except BaseException:
            cls = {"$type": "Exception"}
        return {
            "raise": {
                "c": cls,
                "args": args,
                "attrs": attrs,
                "message": message,
                "tb": "".join(traceback.format_list(frames))[-8000:],
            }
        }
