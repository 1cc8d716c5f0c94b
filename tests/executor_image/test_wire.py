"""The plain-data codec of the grading boundary (executor_image/wire.py), on hostile input too, and
how the harness reads a test's code (which names it looks up in the student's program)."""

from __future__ import annotations

import ast
import datetime
import decimal
import fractions
import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "executor_image"))
import harness  # noqa: E402
import wire  # noqa: E402


def refuse(value):
    raise TypeError(f"not plain: {type(value).__name__}")


def round_trip(value):
    data = json.loads(json.dumps(wire.Encoder(refuse).encode(value)))
    return wire.Decoder(lambda d: pytest.fail(f"unexpected handle {d}")).decode(data)


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -7,
        pytest.param(10**5000, id="huge-int"),
        1.5,
        -0.0,
        float("inf"),
        "text",
        "lone \udc80 surrogate",
        b"\x00\xff",
        [1, [2, [3]]],
        (1, (2,)),
        {"a": 1, 2: [3]},
        {1, 2},
        frozenset({1}),
        2 + 3j,
        fractions.Fraction(1, 3),
        decimal.Decimal("1.10"),
        datetime.date(2026, 11, 30),
        datetime.datetime(2026, 11, 30, 12, 0),
        datetime.timedelta(days=1, seconds=5),
        {(1, 2): "tuple key"},
    ],
)
def test_plain_values_come_back_equal_and_of_the_same_type(value):
    back = round_trip(value)
    assert type(back) is type(value)
    assert back == value or (isinstance(value, float) and math.isnan(value))


def test_nan_stays_nan():
    assert math.isnan(round_trip(float("nan")))


def test_subclasses_of_builtins_arrive_as_the_builtin():
    class Liar(str):
        def __eq__(self, other):
            return True

    back = round_trip([Liar("x"), True])
    assert type(back[0]) is str and back[0] == "x" and back[0] != "y"


def test_shared_and_cyclic_containers_keep_their_shape():
    inner = [1]
    cyclic = [inner, inner]
    cyclic.append(cyclic)
    back = round_trip(cyclic)
    assert back[0] is back[1] and back[2] is back


def test_a_callees_changes_to_the_arguments_reach_the_callers_objects():
    caller_table: list = []
    args = wire.Encoder(refuse, caller_table).encode([[3, 1, 2], {"k": 1}])
    callee_table: list = []
    nums, d = wire.Decoder(refuse, callee_table).decode(args)
    nums.sort()
    d["new"] = 2
    encoder = wire.Encoder(refuse, callee_table)
    state = [encoder.items(callee_table[n]) for n in range(len(callee_table))]
    result = encoder.encode(nums)
    decoder = wire.Decoder(refuse, caller_table)
    updates = [decoder.items_into(caller_table[n], s) for n, s in enumerate(state)]
    returned = decoder.decode(result)
    for update in updates:
        update()
    original_nums = caller_table[1]
    assert original_nums == [1, 2, 3] and returned is original_nums
    assert caller_table[2] == {"k": 1, "new": 2}


@pytest.mark.parametrize(
    "data, why",
    [
        ({"$x": 1}, "unknown tag"),
        ({"$t": 1}, "expected a list"),
        ({"$d": [[1]]}, "dict item"),
        ({"$r": 5}, "unknown container"),
        ({"a": 1, "b": 2}, "malformed"),
        ({"$b": "not base64!"}, r"malformed \$b"),
        ({"$c": ["1", 2]}, "complex"),
        ({"$q": [1, 0]}, "Fraction"),
        ({"$dt": ["datetime", "yesterday"]}, r"malformed \$dt"),
        ({"$d": [[[1], 2]]}, "malformed"),  # a list as a dict key
    ],
)
def test_malformed_input_is_a_wire_error(data, why):
    with pytest.raises(wire.WireError, match=why):
        wire.Decoder(refuse).decode(data)


def test_too_deep_or_too_many_is_refused_on_both_sides():
    deep: list = []
    for _ in range(wire.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(ValueError, match="nested too deeply"):
        wire.Encoder(refuse).encode(deep)
    data: object = 0
    for _ in range(wire.MAX_DEPTH + 5):
        data = [data]
    with pytest.raises(wire.WireError, match="too large or too deeply nested"):
        wire.Decoder(refuse).decode(data)


def test_framing_refuses_oversized_and_non_object_messages():
    reader = wire.Reader()
    reader.feed((wire.MAX_MESSAGE_BYTES + 1).to_bytes(4, "big"))
    with pytest.raises(wire.WireError, match="larger than"):
        reader.next()
    reader = wire.Reader()
    reader.feed(b"\x00\x00\x00\x02[]")
    with pytest.raises(wire.WireError, match="not an object"):
        reader.next()
    reader = wire.Reader()
    packed = wire.pack({"ok": 1})
    reader.feed(packed[:3])
    assert reader.next() is None
    reader.feed(packed[3:])
    assert reader.next() == {"ok": 1}


def rewritten(test_code: str) -> str:
    tree = ast.parse(test_code)
    tree = harness._StudentNames(harness._bound_in(tree.body)).visit(tree)
    return ast.unparse(tree)


def test_names_the_test_defines_or_builtins_are_not_looked_up():
    source = (
        "import math\n"
        "nums = [3, 1]\n"
        "def check(x, key=None):\n"
        "    y = helper(x)\n"
        "    return sorted([y, len(nums)], key=key)\n"
        "print([add(i, 1) for i in range(3)], check(2), math.pi, Cart)\n"
    )
    out = rewritten(source)
    assert (
        "__student__('add')" in out
        and "__student__('helper')" in out
        and "__student__('Cart')" in out
    )
    for own in ("nums", "math", "check", "sorted", "len", "range", "print", "i", "x", "y", "key"):
        assert f"__student__('{own}')" not in out, own
