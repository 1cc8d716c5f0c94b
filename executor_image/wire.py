"""Plain data across the grading trust boundary (stdlib only; runs inside the container).

The trusted harness and the student's process exchange messages over a socket: a 4-byte length,
then UTF-8 JSON. Values travel as plain data only: None, bool, int, float, complex, str, bytes,
list, tuple, dict, set, frozenset (and Fraction, Decimal, date/time values), nested at most
MAX_DEPTH deep and MAX_NODES in all. Anything else stays where it lives, behind a numbered handle.

JSON null/true/false/numbers/strings stand for themselves and a JSON array is a list; every other
value is an object with one tag:
    {"$t": [...]} tuple   {"$s": [...]} set   {"$f": [...]} frozenset   {"$d": [[k, v], ...]} dict
    {"$b": "<base64>"} bytes   {"$c": [re, im]} complex   {"$i": "<hex>"} a very large int
    {"$q": [num, den]} Fraction   {"$m": "<str>"} Decimal   {"$dt": [kind, iso]} date/time values
    {"$r": n} the mutable container numbered n   {"$h": n, ...} a handle (see the two codecs)
    {"$type": name} a builtin type or exception class
Mutable containers (list, dict, set) are numbered in the order they are first met, on both sides
alike, so shared and cyclic structures survive, and a call's arguments can be updated in place
afterwards (the caller sees what the callee did to them).

The decoder is written for hostile input: an unknown tag, a wrong shape, too deep, too many nodes
or too many bytes is a WireError, never a crash or a half-built value.
"""

import base64
import importlib
import json
import struct
import sys

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 200
MAX_NODES = 1_000_000
MAX_NAME = 200
_BIG_INT_BITS = 12_000  # json refuses ints of more than 4300 digits; these go as hex
_HEADER = struct.Struct(">I")
_DT_KINDS = ("date", "datetime", "time")


def _value_type(module, name):
    """A standard-library value type, if its module is loaded at all (then the value cannot be
    one of it): keeps fractions, decimal and datetime out of processes that never use them."""
    loaded = sys.modules.get(module)
    return getattr(loaded, name, None) if loaded is not None else None


class WireError(Exception):
    """A message that breaks the protocol (malformed, too large, unknown tag)."""


class NotPlain(Exception):
    """Raised by an encoder hook: the value must travel as a handle."""


def _exact_scalar(value):
    """The plain value of a scalar (subclasses of builtin scalars become the builtin), else NotPlain."""
    kind = type(value)
    if value is None or kind is bool or kind is str or kind is float:
        return value
    if kind is int:
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int.__index__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, str):
        return str.__str__(value)
    raise NotPlain


class Encoder:
    """Turns a value into JSON-ready plain data.

    Args:
        handle: called with a value that is not plain data; returns its JSON form (a handle) or
            raises NotPlain/TypeError to refuse it.
        table: the mutable containers already numbered (shared with a decoder of the same
            message exchange), as a list; the encoder appends what it numbers.
        plain_subclasses: whether instances of subclasses of list/tuple/dict/set count as plain
            (converted to the builtin); when False they go to ``handle``.
    """

    def __init__(self, handle, table=None, plain_subclasses=lambda cls: True):
        self.handle = handle
        self.table = table if table is not None else []
        self.ids = {id(obj): n for n, obj in enumerate(self.table)}
        self.plain_subclasses = plain_subclasses
        self.nodes = 0

    def number(self, obj):
        self.ids[id(obj)] = len(self.table)
        self.table.append(obj)

    def encode(self, value, depth=0):
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise ValueError(
                "the value is too large to pass between the test and the code "
                "(more than %d items)" % MAX_NODES
            )
        if depth > MAX_DEPTH:
            raise ValueError(
                "the value is nested too deeply to pass between the test and the "
                "code (more than %d levels)" % MAX_DEPTH
            )
        try:
            scalar = _exact_scalar(value)
        except NotPlain:
            pass
        else:
            if type(scalar) is int and scalar.bit_length() > _BIG_INT_BITS:
                return {"$i": hex(scalar)}
            return scalar
        known = self.ids.get(id(value))
        if known is not None and self.table[known] is value:
            return {"$r": known}
        kind = type(value)
        if kind is list or (isinstance(value, list) and self.plain_subclasses(kind)):
            self.number(value)
            return [self.encode(v, depth + 1) for v in list.__iter__(value)]
        if kind is dict or (isinstance(value, dict) and self.plain_subclasses(kind)):
            self.number(value)
            return {
                "$d": [
                    [self.encode(k, depth + 1), self.encode(v, depth + 1)]
                    for k, v in dict.items(value)
                ]
            }
        if kind is set or (isinstance(value, set) and self.plain_subclasses(kind)):
            self.number(value)
            return {"$s": [self.encode(v, depth + 1) for v in set.__iter__(value)]}
        if kind is tuple or (isinstance(value, tuple) and self.plain_subclasses(kind)):
            return {"$t": [self.encode(v, depth + 1) for v in tuple.__iter__(value)]}
        if kind is frozenset or (isinstance(value, frozenset) and self.plain_subclasses(kind)):
            return {"$f": [self.encode(v, depth + 1) for v in frozenset.__iter__(value)]}
        if kind is bytes or (isinstance(value, bytes) and self.plain_subclasses(kind)):
            return {"$b": base64.b64encode(bytes(value)).decode("ascii")}
        if kind is complex:
            return {"$c": [value.real, value.imag]}
        if kind is _value_type("fractions", "Fraction"):
            return {"$q": [self.encode(value.numerator), self.encode(value.denominator)]}
        if kind is _value_type("decimal", "Decimal"):
            return {"$m": str(value)}
        for name in _DT_KINDS:
            if kind is _value_type("datetime", name):
                return {"$dt": [name, value.isoformat()]}
        if kind is _value_type("datetime", "timedelta"):
            return {"$dt": ["timedelta", [value.days, value.seconds, value.microseconds]]}
        return self.handle(value)

    def items(self, container):
        """The encoded contents of a numbered container (its state after a call)."""
        if isinstance(container, dict):
            return [[self.encode(k, 1), self.encode(v, 1)] for k, v in dict.items(container)]
        if isinstance(container, set):
            return [self.encode(v, 1) for v in set.__iter__(container)]
        return [self.encode(v, 1) for v in list.__iter__(container)]


class Decoder:
    """Turns JSON-ready plain data back into values, for input nobody vouches for.

    Args:
        handle: called with a ``{"$h": ...}`` or ``{"$type": ...}`` object; returns the value.
        table: the mutable containers already numbered, as a list (appended to).
    """

    def __init__(self, handle, table=None):
        self.handle = handle
        self.table = table if table is not None else []
        self.nodes = 0

    def decode(self, data, depth=0):
        self.nodes += 1
        if self.nodes > MAX_NODES or depth > MAX_DEPTH:
            raise WireError("a value is too large or too deeply nested")
        kind = type(data)
        if data is None or kind in (bool, str, float):
            return data
        if kind is int:
            return data
        if kind is list:
            out = []
            self.table.append(out)
            out.extend(self.decode(v, depth + 1) for v in data)
            return out
        if kind is not dict or len(data) < 1:
            raise WireError("malformed value of type %s" % kind.__name__)
        if "$h" in data or "$type" in data:
            return self.handle(data)
        if len(data) != 1:
            raise WireError("malformed tagged value")
        ((tag, body),) = data.items()
        try:
            return self._tagged(tag, body, depth)
        except WireError:
            raise
        except (TypeError, ValueError, KeyError, IndexError, OverflowError, ArithmeticError) as e:
            raise WireError("malformed %s value: %s" % (tag, e)) from e

    def _tagged(self, tag, body, depth):
        if tag == "$r":
            if type(body) is not int or not 0 <= body < len(self.table):
                raise WireError("reference to an unknown container")
            return self.table[body]
        if tag == "$d":
            out = {}
            self.table.append(out)
            for pair in self._list(body):
                if type(pair) is not list or len(pair) != 2:
                    raise WireError("malformed dict item")
                key = self.decode(pair[0], depth + 1)
                out[key] = self.decode(pair[1], depth + 1)
            return out
        if tag == "$s":
            out = set()
            self.table.append(out)
            out.update(self.decode(v, depth + 1) for v in self._list(body))
            return out
        if tag == "$t":
            return tuple(self.decode(v, depth + 1) for v in self._list(body))
        if tag == "$f":
            return frozenset(self.decode(v, depth + 1) for v in self._list(body))
        if tag == "$b":
            if type(body) is not str:
                raise WireError("malformed bytes")
            return base64.b64decode(body.encode("ascii"), validate=True)
        if tag == "$c":
            re, im = self._list(body)
            if type(re) not in (int, float) or type(im) not in (int, float):
                raise WireError("malformed complex")
            return complex(re, im)
        if tag == "$i":
            if type(body) is not str or len(body) > MAX_MESSAGE_BYTES:
                raise WireError("malformed int")
            return int(body, 16)
        if tag == "$q":
            num, den = (self.decode(v, depth + 1) for v in self._list(body))
            if type(num) is not int or type(den) is not int:
                raise WireError("malformed Fraction")
            return importlib.import_module("fractions").Fraction(num, den)
        if tag == "$m":
            if type(body) is not str or len(body) > 10_000:
                raise WireError("malformed Decimal")
            return importlib.import_module("decimal").Decimal(body)
        if tag == "$dt":
            name, value = self._list(body)
            datetime = importlib.import_module("datetime")
            if name == "timedelta":
                days, seconds, micro = value
                if not all(type(v) is int for v in (days, seconds, micro)):
                    raise WireError("malformed timedelta")
                return datetime.timedelta(days, seconds, micro)
            if name not in _DT_KINDS or type(value) is not str or len(value) > 100:
                raise WireError("malformed date/time")
            return getattr(datetime, name).fromisoformat(value)
        raise WireError("unknown tag %r" % str(tag)[:20])

    @staticmethod
    def _list(body):
        if type(body) is not list:
            raise WireError("malformed value: expected a list")
        return body

    def items_into(self, container, items):
        """Replaces a numbered container's contents with decoded ``items`` (in place)."""
        if type(items) is not list:
            raise WireError("malformed container state")
        if isinstance(container, dict):
            pairs = []
            for pair in items:
                if type(pair) is not list or len(pair) != 2:
                    raise WireError("malformed dict item")
                pairs.append((self.decode(pair[0], 1), self.decode(pair[1], 1)))
            return lambda: (container.clear(), container.update(pairs))
        values = [self.decode(v, 1) for v in items]
        if isinstance(container, set):
            return lambda: (container.clear(), container.update(values))
        return lambda: container.__setitem__(slice(None), values)


def check_name(name):
    if type(name) is not str or not 0 < len(name) <= MAX_NAME:
        raise WireError("malformed name")
    return name


# -- framing -------------------------------------------------------------------------------------


def pack(message):
    """One message as bytes on the wire."""
    body = json.dumps(message, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    if len(body) > MAX_MESSAGE_BYTES:
        raise ValueError("the message is larger than %d bytes" % MAX_MESSAGE_BYTES)
    return _HEADER.pack(len(body)) + body


def send(sock, message):
    sock.sendall(pack(message))


class Reader:
    """Collects bytes from a stream socket and yields whole messages (dicts)."""

    def __init__(self):
        self.buffer = bytearray()

    def feed(self, data):
        self.buffer += data

    def next(self):
        """The next whole message, or None if more bytes are needed. Raises WireError."""
        if len(self.buffer) < 4:
            return None
        size = _HEADER.unpack_from(self.buffer)[0]
        if size > MAX_MESSAGE_BYTES:
            raise WireError("a message is larger than %d bytes" % MAX_MESSAGE_BYTES)
        if len(self.buffer) < 4 + size:
            return None
        body = bytes(self.buffer[4 : 4 + size])
        del self.buffer[: 4 + size]
        try:
            message = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise WireError("a message is not valid JSON: %s" % str(e)[:100]) from e
        if type(message) is not dict:
            raise WireError("a message is not an object")
        return message


def recv_blocking(sock, reader):
    """Blocks until a whole message arrives; None at EOF."""
    while True:
        message = reader.next()
        if message is not None:
            return message
        chunk = sock.recv(1 << 16)
        if not chunk:
            return None
        reader.feed(chunk)
