"""Fuzzing the wire codec (rooms.wire.decode_client) and the command schemas (parse_args).

Whatever a client sends, the only exceptions that may come out are the codec's
own RoomErrors (BadFrame, BadRequest, UnknownOp for parse_args), their messages
never quote what was sent, and a bad_request only ever names a real field.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from rooms_helpers import ALL_OPS, SCORES_OK

from rooms import actions, wire
from rooms.errors import BadFrame, BadRequest, RoomError, UnknownOp
from rooms.types import MAX_TEXT

CANARY = "CANARY-5e2b"
FRAME_FIELDS = frozenset({"room", "secret", "resume", "id", "op", "args", "part", "x", "y"})
SCHEMA_FIELDS = frozenset(f for cls in actions.COMMANDS.values() for f in cls.__struct_fields__)
FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

encode = msgspec.msgpack.encode


def decode(data: Any, max_bytes: int = wire.MAX_FRAME_BYTES) -> wire.ClientFrame | RoomError:
    """decode_client's result or its RoomError; any other exception fails the test."""
    try:
        frame = wire.decode_client(data, max_bytes)
    except RoomError as error:
        check_error(error, FRAME_FIELDS)
        assert type(error) in (BadFrame, BadRequest)
        return error
    assert isinstance(frame, wire.Hello | wire.Cmd | wire.Drag)
    return frame


def check_error(error: RoomError, fields: frozenset[str]) -> None:
    said = f"{error} {error.message} {error.args!r} {error.to_wire()!r}"
    assert CANARY not in said
    assert CANARY.lower() not in said.lower()
    if isinstance(error, BadRequest):
        assert error.field in fields | {"args"}, error.field
    else:
        assert error.field is None
    assert set(error.to_wire()) <= {"code", "message", "field"}


def parse(op: str, args: Any) -> actions.Command | RoomError:
    try:
        command = actions.parse_args(op, args)
    except RoomError as error:
        check_error(error, SCHEMA_FIELDS)
        assert type(error) in (BadRequest, UnknownOp)
        if isinstance(error, UnknownOp):
            assert op not in actions.COMMANDS
        return error
    assert type(command) is actions.COMMANDS[op]
    for name in command.__struct_fields__:
        value = getattr(command, name)
        assert not (isinstance(value, float) and not math.isfinite(value))
    # A valid command survives its own wire form.
    assert actions.parse_args(op, actions.args_of(command)) == command
    return command


# ------------------------------------------------------------------ strategies

texts = st.text(max_size=30) | st.sampled_from(["", CANARY, f"x{CANARY}y", "t", "cmd", "hello"])
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | texts
    | st.binary(max_size=20)
)
structures = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(texts | st.integers(-5, 5), children, max_size=4),
    max_leaves=25,
)
tokens = st.text(min_size=1, max_size=128).filter(lambda s: len(s) <= 128)
unit = st.floats(min_value=0.0, max_value=1.0)
arg_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | \
    st.floats(allow_nan=False) | st.text(max_size=40)
arg_values = arg_scalars | st.dictionaries(st.text(max_size=40), arg_scalars, max_size=8)
valid_args = st.dictionaries(st.text(max_size=40), arg_values, max_size=32)

hellos = st.builds(
    lambda room, secret, resume: {"t": "hello", "room": room, "secret": secret,
                                  **({"resume": resume} if resume else {})},
    tokens, tokens,
    st.none() | st.fixed_dictionaries({"epoch": tokens, "seq": st.integers(0, 2**63 - 1)}),
)
cmds = st.builds(
    lambda cid, op, args: {"t": "cmd", "id": cid, "op": op, "args": args},
    st.text(min_size=1, max_size=64), st.text(min_size=1, max_size=40), valid_args,
)
drags = st.builds(lambda part, x, y: {"t": "drag", "part": part, "x": x, "y": y},
                  tokens, unit, unit)
valid_frames = hellos | cmds | drags

# Frames that look right but carry random values, extra keys and canaries.
frame_like = st.builds(
    lambda t, fields, extra: {**({"t": t} if t is not None else {}), **fields, **extra},
    st.none() | st.sampled_from(["hello", "cmd", "drag"]) | texts | st.integers(-9, 9),
    st.dictionaries(st.sampled_from(sorted(FRAME_FIELDS)), structures, max_size=6),
    st.dictionaries(texts, structures, max_size=3),
)


# ------------------------------------------------------------------ decode_client


@FUZZ
@given(st.binary(max_size=600))
@example(b"")
@example(b"\xc1")  # never used in msgpack
@example(b"\x81\xa1t\xa3cmd")
@example(b"\xdf\xff\xff\xff\xff")  # a map claiming 4 billion entries
@example(b"\xdb\xff\xff\xff\xff")  # a string claiming 4 GiB
def test_random_bytes(data: bytes) -> None:
    decode(data)
    decode(bytearray(data))
    decode(memoryview(data))


@FUZZ
@given(structures)
def test_random_msgpack_structures(value: Any) -> None:
    decode(encode(value))


@FUZZ
@given(frame_like)
def test_frame_shaped_garbage(value: dict[Any, Any]) -> None:
    result = decode(encode(value))
    if not isinstance(result, RoomError):
        assert value["t"] in ("hello", "cmd", "drag")


@FUZZ
@given(valid_frames)
def test_valid_frames_decode_to_their_type(value: dict[str, Any]) -> None:
    frame = decode(encode(value))
    assert not isinstance(frame, RoomError), frame
    expected: wire.ClientFrame
    if value["t"] == "hello":
        resume = value.get("resume")
        expected = wire.Hello(value["room"], value["secret"],
                              wire.Resume(**resume) if resume else None)
    elif value["t"] == "cmd":
        expected = wire.Cmd(value["id"], value["op"], value["args"])
    else:
        expected = wire.Drag(value["part"], value["x"], value["y"])
    assert frame == expected
    # The client helpers produce the same frames.
    if isinstance(frame, wire.Hello):
        resume_pair = (frame.resume.epoch, frame.resume.seq) if frame.resume else None
        assert decode(wire.hello(frame.room, frame.secret, resume_pair)) == frame
    elif isinstance(frame, wire.Cmd):
        assert decode(wire.cmd(frame.id, frame.op, dict(frame.args))) == frame
    else:
        assert decode(wire.drag(frame.part, frame.x, frame.y)) == frame


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(encode(draw(valid_frames)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "dup"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and data:
            del data[pos:pos + draw(st.integers(1, 8))]
        elif kind == "truncate":
            del data[pos:]
        elif kind == "dup":
            data[pos:pos] = data[pos:pos + draw(st.integers(1, 16))]
    return bytes(data)


@FUZZ
@given(mutated())
def test_mutated_valid_frames(data: bytes) -> None:
    decode(data)


@FUZZ
@given(st.text(max_size=200) | st.sampled_from(["", '{"t":"hello"}']))
def test_text_frames_are_refused(data: str) -> None:
    result = decode(data)
    assert isinstance(result, BadFrame)


@pytest.mark.parametrize("data", [None, 5, 1.5, ["x"], {"t": "hello"}, object()])
def test_non_bytes_frames_are_refused(data: Any) -> None:
    assert isinstance(decode(data), BadFrame)


# ------------------------------------------------------------------ nesting and size

_PREFIX = {
    "top": b"",
    "unknown field": b"\x85\xa1t\xa3cmd\xa2id\xa11\xa2op\xa1x\xa4args\x80\xa4junk",
    "args value": b"\x84\xa1t\xa3cmd\xa2id\xa11\xa2op\xa1x\xa4args\x81\xa1k",
    "resume": b"\x84\xa1t\xa5hello\xa4room\xa1r\xa6secret\xa1s\xa6resume",
}
_LEVEL = {"array": b"\x91", "map": b"\x81\xa1k", "array16": b"\xdc\x00\x01"}


@st.composite
def nested(draw: st.DrawFn) -> tuple[bytes, int]:
    where = draw(st.sampled_from(sorted(_PREFIX)))
    depth = draw(st.integers(1, 100_000))
    levels = draw(st.lists(st.sampled_from(sorted(_LEVEL)), min_size=1, max_size=3))
    # Exactly `depth` whole levels: the cycle of levels repeated, then its first few.
    cycle = b"".join(_LEVEL[level] for level in levels)
    rest = b"".join(_LEVEL[level] for level in levels[: depth % len(levels)])
    body = cycle * (depth // len(levels)) + rest
    leaf = draw(st.sampled_from([b"\xc0", b"\x01", b"\xa1x", b""]))
    return _PREFIX[where] + body + leaf, depth


@settings(max_examples=60, deadline=None)
@given(nested())
@example((_PREFIX["unknown field"] + b"\x91" * 65_000 + b"\xc0", 65_000))
@example((_PREFIX["top"] + b"\x91" * 100_000 + b"\xc0", 100_000))
@example((_PREFIX["args value"] + b"\x81\xa1k" * 21_000 + b"\xc0", 21_000))
def test_deeply_nested_payloads(case: tuple[bytes, int]) -> None:
    data, depth = case
    result = decode(data)
    if len(data) > wire.MAX_FRAME_BYTES:
        assert isinstance(result, BadFrame)
    elif depth > 2 and not data.startswith(_PREFIX["unknown field"]):
        # Typed fields bound the depth; only an ignored field may nest (within limits).
        assert isinstance(result, RoomError)
    # Even with the size limit lifted, depth alone never escapes as another exception.
    decode(data, max_bytes=1 << 20)


def _padded_hello(size: int) -> bytes:
    """A valid hello frame of exactly `size` bytes (padding in an ignored field)."""
    head = b"\x84" + b"".join(encode(v) for v in ("t", "hello", "room", "r", "secret", "s", "pad"))
    pad = size - len(head) - 5
    data = head + b"\xc6" + pad.to_bytes(4, "big") + b"x" * pad  # bin 32, any length
    assert len(data) == size
    return data


def test_frame_size_limit() -> None:
    at_limit = _padded_hello(wire.MAX_FRAME_BYTES)
    assert decode(at_limit) == wire.Hello("r", "s")
    too_big = _padded_hello(wire.MAX_FRAME_BYTES + 1)
    error = decode(too_big)
    assert isinstance(error, BadFrame)
    assert error.to_wire()["code"] == "bad_frame"
    assert isinstance(decode(_padded_hello(1000), max_bytes=999), BadFrame)
    assert decode(_padded_hello(1000), max_bytes=1000) == wire.Hello("r", "s")


@FUZZ
@given(st.integers(wire.MAX_FRAME_BYTES + 1, 4 * wire.MAX_FRAME_BYTES), st.booleans())
def test_oversized_frames(size: int, valid: bool) -> None:
    data = _padded_hello(size) if valid else bytes(size)
    assert isinstance(decode(data), BadFrame)


def test_string_length_limit() -> None:
    ok = wire.cmd("c1", "note.add", {"text": "x" * MAX_TEXT})
    frame = decode(ok)
    assert isinstance(frame, wire.Cmd) and frame.args["text"] == "x" * MAX_TEXT
    over = decode(wire.cmd("c1", "note.add", {"text": CANARY * 2000 + "x"}))
    assert isinstance(over, BadRequest) and over.field == "args"
    nested_over = decode(wire.cmd("c1", "checkin.set", {"scores": {"calm": "y" * 20_001}}))
    assert isinstance(nested_over, BadRequest) and nested_over.field == "args"
    # parse_args has the same hard cap for texts built without the codec.
    assert isinstance(parse("note.add", {"text": "z" * 20_001}), BadRequest)


@pytest.mark.parametrize(("frame", "field"), [
    ({"t": "hello", "room": CANARY * 20, "secret": "s"}, "room"),
    ({"t": "hello", "room": "r", "secret": ""}, "secret"),
    ({"t": "hello", "room": "r", "secret": "s", "resume": {"epoch": "e", "seq": -1}}, "resume"),
    ({"t": "hello", "room": "r", "secret": "s", "resume": {"epoch": "e"}}, "resume"),
    ({"t": "hello", "room": "r", "secret": "s", "resume": {"epoch": "e", "seq": 1,
                                                          CANARY: 1}}, "resume"),
    ({"t": "hello", "secret": "s"}, "room"),
    ({"t": "cmd", "id": CANARY * 7, "op": "x"}, "id"),
    ({"t": "cmd", "id": "", "op": "x"}, "id"),
    ({"t": "cmd", "id": "1", "op": CANARY * 4}, "op"),
    ({"t": "cmd", "id": "1", "op": "x", "args": [CANARY]}, "args"),
    ({"t": "cmd", "id": "1", "op": "x", "args": {CANARY * 4: 1}}, "args"),
    ({"t": "cmd", "id": "1", "op": "x", "args": {"k": {CANARY * 4: 1}}}, "args"),
    ({"t": "cmd", "id": "1", "op": "x", "args": {"k": {"j": [CANARY]}}}, "args"),
    ({"t": "cmd", "id": "1", "op": "x", "args": {f"k{i}": 1 for i in range(33)}}, "args"),
    ({"t": "cmd", "id": "1", "op": "x", "args": {"k": [1]}}, "args"),
    ({"t": "drag", "part": "p", "x": 1.01, "y": 0}, "x"),
    ({"t": "drag", "part": "p", "x": 0, "y": -0.1}, "y"),
    ({"t": "drag", "part": "p", "x": float("nan"), "y": 0.5}, "x"),
    ({"t": "drag", "part": "p", "x": 0.5, "y": float("nan")}, "y"),
    ({"t": "drag", "part": "p", "x": float("inf"), "y": 0.5}, "x"),
    ({"t": "drag", "part": "p", "x": 0.5, "y": float("-inf")}, "y"),
    ({"t": "drag", "part": "p", "x": "0.5", "y": 0.5}, "x"),
    ({"t": "drag", "x": 0.5, "y": 0.5}, "part"),
    # A client key that looks like a path is never echoed as the field.
    ({"t": "hello", "room": "r", "secret": "s",
      "resume": {"epoch": "e", "seq": 0, f"at `$.{CANARY}": 1}}, "resume"),
])
def test_bad_fields_are_named_without_their_value(frame: dict[str, Any], field: str) -> None:
    error = decode(encode(frame))
    assert isinstance(error, BadRequest), error
    assert error.field == field


@pytest.mark.parametrize("frame", [
    {}, {"t": "welcome"}, {"t": CANARY}, {"t": 1}, {"t": None}, [1, 2], "hello", 5,
    {"type": "hello", "room": "r", "secret": "s"},
])
def test_unknown_frame_types_are_bad_frames(frame: Any) -> None:
    assert isinstance(decode(encode(frame)), BadFrame)


@FUZZ
@given(st.sampled_from(["x", "y"]),
       st.sampled_from([float("nan"), float("inf"), float("-inf"), -0.0001, 1.0001, 1e308])
       | st.floats().filter(lambda v: not 0.0 <= v <= 1.0))
def test_drag_coordinates_outside_the_board(axis: str, value: float) -> None:
    frame = {"t": "drag", "part": "p", "x": 0.5, "y": 0.5, axis: value}
    error = decode(encode(frame))
    assert isinstance(error, BadRequest) and error.field == axis


def test_non_finite_args_pass_the_codec_but_not_parse_args() -> None:
    for value in (float("nan"), float("inf"), float("-inf")):
        frame = decode(wire.cmd("c", "part.move", {"id": "p", "x": value, "y": 0.5}))
        assert isinstance(frame, wire.Cmd)
        error = parse(frame.op, frame.args)
        assert isinstance(error, BadRequest) and error.field == "x"


# ------------------------------------------------------------------ parse_args

field_names = st.sampled_from(sorted(SCHEMA_FIELDS))
plausible = (
    st.sampled_from([
        "id000001q", "", "x" * 64, "x" * 65, CANARY, "manager", "firefighter", "exile", "unsure",
        "protects", "reacts_to", "yes", "not_yet", "lets_talk", "a", "b", "therapist",
        "#a1b2c3", "#zzzzzz", 0, 1, 5, 10, 11, -1, 0.5, 1.5, float("nan"), float("inf"),
        True, False, None, SCORES_OK, {**SCORES_OK, "calm": 11}, {}, [], [1],
    ])
    | st.text(max_size=30)
    | st.floats(allow_nan=True)
    | st.integers()
    | st.dictionaries(st.text(max_size=12), st.integers(-2, 12), max_size=9)
)
args_dicts = st.dictionaries(field_names | texts, plausible | structures, max_size=6)


@FUZZ
@given(st.sampled_from(ALL_OPS) | st.text(max_size=20), args_dicts)
def test_parse_args_random_args(op: str, args: dict[str, Any]) -> None:
    parse(op, args)


@FUZZ
@given(st.sampled_from(ALL_OPS), st.data())
def test_parse_args_mostly_valid_args(op: str, data: st.DataObject) -> None:
    fields = actions.COMMANDS[op].__struct_fields__
    args = {name: data.draw(plausible, label=name) for name in fields
            if data.draw(st.integers(0, 9), label=f"has {name}")}
    parse(op, args)


@FUZZ
@given(st.sampled_from(ALL_OPS), structures)
def test_parse_args_non_mapping_args(op: str, args: Any) -> None:
    assume(not isinstance(args, dict))
    assert isinstance(parse(op, args), BadRequest)


@FUZZ
@given(st.binary(max_size=300) | mutated() | st.builds(encode, cmds))
def test_the_whole_path_from_bytes_to_a_command(data: bytes) -> None:
    frame = decode(data)
    if isinstance(frame, wire.Cmd):
        parse(frame.op, frame.args)


@pytest.mark.parametrize("args", [
    {CANARY: 1},
    {"name": "x", CANARY: CANARY},
    {"name": "x", f"at `$.{CANARY}": 1},
    {"name": "x", f"in `$.{CANARY}[": 1},
    {"name": "x", f"missing required field `{CANARY}": 1},
    {"name": [CANARY]},
    {"name": {CANARY: CANARY}},
    {"kind": CANARY, "name": "x"},
    {1: CANARY},
])
def test_parse_args_never_echoes_keys_or_values(args: dict[Any, Any]) -> None:
    error = parse("part.add", args)
    assert isinstance(error, BadRequest)
    assert error.field in (*actions.PartAdd.__struct_fields__, "args")


@pytest.mark.parametrize("data", [
    # msgspec raises UnicodeDecodeError (not a DecodeError) for invalid UTF-8 in any str.
    b"\x81\xa1t\xa1\x80",
    b"\x83\xa1t\xa5\x80ello\xa4room\xa10\xa6secret\xa10",
    b"\x83\xa1t\xa5hello\xa4room\xa1\x80\xa6secret\xa1s",
    b"\x84\xa1t\xa3cmd\xa2id\xa11\xa2op\xa1x\xa4args\x81\xa1\xff\x01",
    b"\x84\xa1t\xa3cmd\xa2id\xa11\xa2op\xa1x\xa4args\x81\xa1k\xa2\xc3\x28",
    b"\x84\xa1t\xa3cmd\xa2id\xa11\xa2op\xa1x\xa4args\x81\xa1k\xa3\xed\xa0\x80",  # surrogate
])
def test_invalid_utf8_is_a_bad_frame(data: bytes) -> None:
    assert isinstance(decode(data), BadFrame)
