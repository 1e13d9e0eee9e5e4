"""Refused command frames still name their id, however they are malformed."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from rooms import wire
from rooms.errors import RoomError

encode = msgspec.msgpack.encode


def test_the_id_is_found_past_a_value_too_deep_for_any_decoder() -> None:
    deep = b"\x91" * 60_000 + b"\xc0"
    frame = b"\x83" + encode("t") + encode("cmd") + encode("x") + deep + encode("id") + encode("c9")
    assert wire.command_id_of(frame) == "c9"


def test_only_command_frames_with_a_plausible_id_name_one() -> None:
    assert wire.command_id_of(encode({"t": "drag", "id": "c1"})) is None
    assert wire.command_id_of(encode({"t": "cmd", "id": "x" * 65})) is None
    assert wire.command_id_of(encode({"t": "cmd", "id": 7})) is None
    assert wire.command_id_of(encode([1, 2])) is None
    assert wire.command_id_of(b"\xde\xff\xff") is None  # a map header promising more than is there
    assert wire.command_id_of(encode({"id": "c2", "t": "cmd", "op": 5})) == "c2"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_the_probe_never_raises(data: bytes) -> None:
    result = wire.command_id_of(data)
    assert result is None or isinstance(result, str)


@settings(max_examples=200, deadline=None)
@given(command_id=st.text(min_size=1, max_size=64),
       junk=st.recursive(st.none() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5),
                         lambda inner: st.lists(inner, max_size=3)
                         | st.dictionaries(st.text(max_size=3), inner, max_size=3)))
def test_a_refused_command_carries_its_id(command_id: str, junk: object) -> None:
    data = encode({"t": "cmd", "id": command_id, "op": "part.add", "args": junk})
    try:
        wire.decode_client(data)
    except RoomError as error:
        assert error.command_id == command_id
