"""Bad input against a live server: every case is answered with its code or close code,
changes nothing, and the room and its other members carry on (spec section 6).

Each case runs on a fresh hand-driven websocket (``Raw``) beside three normal members
(``Trio``); after each case ``carries_on`` proves that the server is alive, that normal
members' commands still reach everyone, and that nobody else was answered for it.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from faults_helpers import (
    BINARY,
    CLOSE_INVALID_LINK,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    CLOSE_TOO_MANY,
    CONTINUATION,
    TEXT,
    WAIT,
    Announced,
    Closed,
    Raw,
    Trio,
    assert_log_clean,
    carries_on,
    decoded,
    fresh_view,
    log_mark,
    mirrors_match_fresh_snapshots,
    open_trio,
    pack,
    refused,
    room_seq,
    root_conftest,
    server_alive,
)
from websockets.exceptions import ConnectionClosed

from client import Client
from client.errors import LinkNotValid
from client.http import create_room, replace_link
from client.links import parse_link
from rooms import wire
from rooms.actions import PartAdd, PartReveal, StageSet
from rooms.errors import RoomError

pytestmark = pytest.mark.timeout(120)
HELLO_TIMEOUT = 3.0


@pytest.fixture(scope="module")
def shared_server(request: pytest.FixtureRequest, redis_server: Any,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    factory = root_conftest(request.config).ServerFactory(
        redis_server.url, tmp_path_factory.mktemp("servers"))
    try:
        # A short hello time-out: its test waits it out (every other test says hello at once).
        yield factory({"PARTSBOARD_HELLO_TIMEOUT": str(HELLO_TIMEOUT)})
    finally:
        factory.stop_all()


@pytest.fixture
def server(shared_server: Any, redis_url: str) -> Any:
    """This module's one real server process (each test makes its own rooms; a test that
    needs other settings starts its own with server_factory)."""
    return shared_server


FRAME_LIMIT = 64 * 1024
NAN = float("nan")
INF = float("inf")


def cmd(command_id: Any, op: Any, args: Any = None, **extra: Any) -> bytes:
    return pack({"t": "cmd", "id": command_id, "op": op, "args": {} if args is None else args,
                 **extra})


def nested_arrays(depth: int, leaf: bytes = b"\xc0") -> bytes:
    """msgpack: [[[...nil...]]] `depth` levels deep, one byte per level."""
    return b"\x91" * depth + leaf


def nested_maps(depth: int) -> bytes:
    """msgpack: {"k": {"k": ... nil}} `depth` levels deep, three bytes per level."""
    return b"\x81\xa1k" * depth + b"\xc0"


def map_with(*pairs: tuple[str, bytes]) -> bytes:
    """A msgpack map from already-encoded values (for values msgspec would not build)."""
    assert len(pairs) < 16
    return bytes([0x80 | len(pairs)]) + b"".join(pack(key) + value for key, value in pairs)


async def check_refused(raw: Raw, data: bytes | str, code: str, *, field: str | set[str] | None
                        = None, command_id: str | None = None, name: str = ""
                        ) -> dict[str, Any]:
    """Send one bad frame; its error must carry the code (and field, and command id)."""
    await raw.send(data)
    error = await raw.error()
    assert error["code"] == code, (name, error)
    if field is not None:
        fields = {field} if isinstance(field, str) else field
        assert error.get("field") in fields, (name, error)
    if command_id is not None:
        assert error.get("id") == command_id, (name, error)
    assert isinstance(error.get("message"), str) and error["message"], (name, error)
    return error


async def case_on_fresh_connection(trio: Trio, server: Any, redis_url: str, role: str,
                                   name: str, data: bytes | str, code: str,
                                   field: str | set[str] | None = None,
                                   command_id: str | None = None) -> None:
    """One case: refused with its code, the connection still read, nothing changed,
    and the room carries on."""
    before = await room_seq(redis_url, trio.room)
    raw = await Raw.open(trio.links[role])
    try:
        await check_refused(raw, data, code, field=field, command_id=command_id, name=name)
        await raw.probe()  # one mistake is forgiven: the connection is still read
        assert raw.ws.close_code is None, name
    finally:
        await raw.close()
    assert await room_seq(redis_url, trio.room) == before, f"{name} changed the room"
    await carries_on(trio, server, name)


# -- undecodable frames, wrong types, unknown frames and ops --------------------------------


async def test_undecodable_frames_are_answered_bad_frame(server: Any, redis_url: str) -> None:
    mark = log_mark(server)
    trio = await open_trio(server.base_url)
    rng = random.Random(4)
    valid = cmd("c1", "pause.raise")
    cases: dict[str, bytes | str] = {
        "random bytes": rng.randbytes(200),
        "more random bytes": b"\xc1" + rng.randbytes(50),  # 0xc1 is never valid msgpack
        "a text frame": "hello",
        "a text frame holding a command as JSON":
            '{"t":"cmd","id":"c1","op":"pause.raise","args":{}}',
        "an empty binary frame": b"",
        "a msgpack array": pack([1, 2, 3]),
        "a msgpack integer": pack(7),
        "a msgpack string": pack("cmd"),
        "msgpack nil": pack(None),
        "msgpack bin": pack(b"\x00\x01"),
        "a msgpack extension": b"\xd4\x01\x00",
        "a truncated map": valid[:-3],
        "a map followed by trailing bytes": valid + b"\x00",
        "invalid UTF-8 in the frame type": b"\x81\xa1t\xa3\xff\xfe\xfd",
        "invalid UTF-8 in a key": b"\x81\xa2\xff\xfe\xa3cmd",
        "a map with integer keys": pack({1: "cmd", 2: "c1"}),
        "a map announcing more entries than it has": b"\x8f" + pack("t") + pack("cmd"),
        "a string announcing 4 GiB": b"\xdb\xff\xff\xff\xff" + b"x" * 10,
        "an array announcing 4 billion items": b"\xdd\xff\xff\xff\xff\xc0",
    }
    try:
        for name, data in cases.items():
            await case_on_fresh_connection(trio, server, redis_url, "b", name, data,
                                           "bad_frame")
        await mirrors_match_fresh_snapshots(trio)
    finally:
        await trio.close()
    assert_log_clean(server, mark)


async def test_wrong_types_in_fields_are_answered_bad_request_naming_the_field(
        server: Any, redis_url: str) -> None:
    mark = log_mark(server)
    trio = await open_trio(server.base_url)
    # (role, frame, field(s), command id the error must name or None)
    cases: dict[str, tuple[str, bytes, str | set[str], str | None]] = {
        "an integer command id": ("therapist", cmd(5, "pause.clear"), "id", None),
        "an empty command id": ("therapist", cmd("", "pause.clear"), "id", None),
        "a 65-character command id": ("therapist", cmd("i" * 65, "pause.clear"), "id", None),
        "a command id that is a map": ("therapist", cmd({"a": 1}, "pause.clear"), "id", None),
        "an integer op": ("therapist", cmd("w1", 5), "op", None),
        "args that are a list": ("therapist", cmd("w2", "agreement.add", [1]), "args", None),
        "args that are a string": ("therapist", cmd("w3", "agreement.add", "text"), "args",
                                   None),
        "a list where text belongs": ("therapist", cmd("w4", "agreement.add", {"text": ["x"]}),
                                      {"text", "args"}, None),
        "an integer where text belongs": ("therapist", cmd("w5", "agreement.add", {"text": 5}),
                                          "text", "w5"),
        "a string where the stage number belongs": (
            "therapist", cmd("w6", "stage.set", {"stage": "2"}), "stage", "w6"),
        "a string where a bool belongs": (
            "therapist", cmd("w7", "freeze.set", {"frozen": "yes"}), "frozen", "w7"),
        "an integer where a bool belongs": (
            "therapist", cmd("w8", "freeze.set", {"frozen": 1}), "frozen", "w8"),
        "a partner that does not exist": (
            "therapist", cmd("w9", "overwhelm.clear", {"partner": "c"}), "partner", "w9"),
        "a colour that is not #rrggbb": (
            "therapist", cmd("w10", "partner.update", {"partner": "a", "color": "red"}),
            "color", "w10"),
        "an integer part id": ("therapist", cmd("w11", "spotlight.set", {"part": 5}), "part",
                               "w11"),
        "a missing required field": ("therapist", cmd("w12", "agreement.edit", {"text": "t"}),
                                     "id", "w12"),
        "an unknown field": ("therapist", cmd("w13", "pause.clear", {"extra": 1}),
                             {"args", "extra"}, "w13"),
        "a bool where a level belongs": (
            "a", cmd("w14", "part.blend", {"id": "p", "level": True}), "level", "w14"),
        "a level above 10": ("a", cmd("w15", "part.blend", {"id": "p", "level": 11}), "level",
                             "w15"),
        "scores that are a list": ("a", cmd("w16", "checkin.set", {"scores": [1, 2]}),
                                   {"scores", "args"}, None),
        "an answer that does not exist": (
            "b", cmd("w17", "request.answer", {"part": "p", "answer": "maybe"}), "answer",
            "w17"),
        "a string where a drag coordinate belongs": (
            "a", pack({"t": "drag", "part": "p", "x": "0.5", "y": 0.5}), "x", None),
        "an integer drag part": ("a", pack({"t": "drag", "part": 5, "x": 0.5, "y": 0.5}),
                                 "part", None),
        "a drag without y": ("a", pack({"t": "drag", "part": "p", "x": 0.5}), "y", None),
        "a hello with an integer room, mid-session": (
            "b", pack({"t": "hello", "room": 5, "secret": "s"}), "room", None),
    }
    try:
        for name, (role, data, field, command_id) in cases.items():
            await case_on_fresh_connection(trio, server, redis_url, role, name, data,
                                           "bad_request", field, command_id)
        await mirrors_match_fresh_snapshots(trio)
    finally:
        await trio.close()
    assert_log_clean(server, mark)


async def test_unknown_frame_types_and_unknown_ops(server: Any, redis_url: str) -> None:
    mark = log_mark(server)
    trio = await open_trio(server.base_url)
    frame_types: dict[str, bytes] = {
        "an unknown frame type": pack({"t": "bogus"}),
        "a server frame type (welcome)": pack({"t": "welcome", "role": "therapist"}),
        "a server frame type (ev)": pack({"t": "ev", "seq": 99, "changes": []}),
        "a server frame type (ack)": pack({"t": "ack", "id": "x", "seq": 1}),
        "a server frame type (ended)": pack({"t": "ended"}),
        "an integer frame type": pack({"t": 5}),
        "no frame type at all": pack({"id": "u0", "op": "pause.clear", "args": {}}),
        "a frame type in capitals": pack({"t": "CMD", "id": "u0", "op": "pause.clear"}),
    }
    ops: dict[str, str] = {
        "an unknown op": "part.explode",
        "an op in capitals": "PAUSE.CLEAR",
        "a Python dunder as op": "__class__",
        "a stage name as op": "stage",
        "a 40-character op": "o" * 40,
        "an op with a NUL": "pause.clear\x00",
    }
    try:
        for name, data in frame_types.items():
            await case_on_fresh_connection(trio, server, redis_url, "b", name, data,
                                           "bad_frame")
        for n, (name, op) in enumerate(ops.items()):
            await case_on_fresh_connection(trio, server, redis_url, "therapist", name,
                                           cmd(f"op{n}", op), "unknown_op", command_id=f"op{n}")
        await case_on_fresh_connection(trio, server, redis_url, "therapist", "an empty op",
                                       cmd("op-e", ""), "bad_request", "op")
        await case_on_fresh_connection(trio, server, redis_url, "therapist", "a 41-char op",
                                       cmd("op-l", "o" * 41), "bad_request", "op")
        await mirrors_match_fresh_snapshots(trio)
    finally:
        await trio.close()
    assert_log_clean(server, mark)


async def test_every_refused_command_names_its_id(server: Any, redis_url: str) -> None:
    """Spec 6: every refusal of a command carries its id, so a client can fail the one
    command it waits on; here the id is always readable (a string of 1..64 chars)."""
    mark = log_mark(server)
    trio = await open_trio(server.base_url)
    await trio.therapist.run(StageSet(stage=2))
    deep = nested_arrays(60_000)
    cases: dict[str, tuple[str, bytes]] = {
        "an unknown op": ("id-1", cmd("id-1", "part.explode")),
        "a refused role": ("id-2", cmd("id-2", "part.add", {"name": "x", "kind": "exile"})),
        "a missing item": ("id-3", cmd("id-3", "agreement.remove", {"id": "nope"})),
        "a wrong arg type": ("id-4", cmd("id-4", "stage.set", {"stage": "2"})),
        "NaN": ("id-5", cmd("id-5", "spotlight.set", {"part": NAN})),
        "an integer op": ("id-6", cmd("id-6", 5)),
        "args that are a list": ("id-7", cmd("id-7", "agreement.add", [1])),
        "a list where text belongs": ("id-8", cmd("id-8", "agreement.add", {"text": ["x"]})),
        "a text over the decoder's 20,000-character cap":
            ("id-9", cmd("id-9", "agreement.add", {"text": "x" * 30_000})),
        "33 args": ("id-10", cmd("id-10", "agreement.add", {f"k{i}": 1 for i in range(33)})),
        "an arg name of 41 characters": ("id-11", cmd("id-11", "agreement.add", {"k" * 41: 1})),
        "a map of maps of maps in args":
            ("id-12", cmd("id-12", "agreement.add", {"text": {"a": {"b": 1}}})),
        "deep nesting in args": ("id-13", map_with(
            ("t", pack("cmd")), ("id", pack("id-13")), ("op", pack("agreement.add")),
            ("args", b"\x81" + pack("text") + deep))),
        "deep nesting in an unknown field": ("id-14", map_with(
            ("t", pack("cmd")), ("id", pack("id-14")), ("op", pack("pause.clear")),
            ("args", pack({})), ("extra", deep))),
    }
    missing: list[str] = []
    try:
        before = await room_seq(redis_url, trio.room)
        for name, (command_id, data) in cases.items():
            raw = await Raw.open(trio.links["therapist"])
            try:
                await raw.send(data)
                await raw.probe()  # answered after every earlier frame
                named = [f for f in raw.errors if f.get("id") == command_id]
                if len(named) != 1:
                    missing.append(f"{name}: {raw.errors[:1]}")
            finally:
                await raw.close()
        assert await room_seq(redis_url, trio.room) == before, "a refused command changed it"
        await carries_on(trio, server, "refused commands")
        # What that means for a real client: a command refused without its id never returns.
        try:
            async with asyncio.timeout(3):  # answered in milliseconds when answered at all
                await trio.therapist.send_unchecked("agreement.add", {"text": "x" * 30_000})
            missing.append("Client.send_unchecked of a 30,000-character agreement succeeded")
        except RoomError as error:
            assert error.code in ("bad_request", "limit"), error.code
        except TimeoutError:
            missing.append("Client.send_unchecked of a 30,000-character agreement never "
                           "returned: its refusal named no command id")
    finally:
        await trio.close()
    assert not missing, "refusals of a command without its id:\n" + "\n".join(missing)
    assert_log_clean(server, mark)


# -- depth, size, strings, NaN --------------------------------------------------------------


async def test_deep_nesting_within_the_frame_limit(server: Any, redis_url: str) -> None:
    """As deep as 64 KiB allows (one byte per level: ~65,000 levels; 100,000 cannot fit)."""
    mark = log_mark(server)
    trio = await open_trio(server.base_url)
    depth = FRAME_LIMIT - 600
    deep = nested_arrays(depth)
    cases: dict[str, tuple[str, bytes]] = {
        "nested arrays as the frame": ("b", deep),
        "nested maps as the frame": ("b", nested_maps(FRAME_LIMIT // 3 - 200)),
        "nested arrays in an unknown field of a cmd": ("therapist", map_with(
            ("t", pack("cmd")), ("id", pack("deep-1")), ("op", pack("pause.clear")),
            ("args", pack({})), ("extra", deep))),
        "nested arrays as an arg value": ("therapist", map_with(
            ("t", pack("cmd")), ("id", pack("deep-2")), ("op", pack("agreement.add")),
            ("args", b"\x81" + pack("text") + deep))),
        "nested maps as the args": ("therapist", map_with(
            ("t", pack("cmd")), ("id", pack("deep-3")), ("op", pack("agreement.add")),
            ("args", nested_maps(FRAME_LIMIT // 3 - 200)))),
        "nested arrays as a drag part": ("a", map_with(
            ("t", pack("drag")), ("part", deep), ("x", pack(0.5)), ("y", pack(0.5)))),
        "nested arrays as a mid-session hello's resume": ("b", map_with(
            ("t", pack("hello")), ("room", pack(trio.room)), ("secret", pack("s")),
            ("resume", deep))),
    }
    try:
        for name, (role, data) in cases.items():
            assert len(data) <= FRAME_LIMIT
            before = await room_seq(redis_url, trio.room)
            raw = await Raw.open(trio.links[role])
            try:
                error = await raw_error(raw, data)
                assert error["code"] in ("bad_frame", "bad_request"), (name, error)
                await raw.probe()
            finally:
                await raw.close()
            assert await room_seq(redis_url, trio.room) == before, name
            await carries_on(trio, server, name)
        # ... and as the very first frame, instead of a hello.
        raw = await Raw.open(trio.links["b"], hello=False)
        await raw.send(deep)
        assert await raw.closed() == CLOSE_POLICY
        assert [f["code"] for f in raw.errors] == ["bad_frame"]
        await carries_on(trio, server, "nested arrays as the first frame")
        await mirrors_match_fresh_snapshots(trio)
    finally:
        await trio.close()
    assert_log_clean(server, mark)
    assert "RecursionError" not in server.log_text()[mark:]


async def raw_error(raw: Raw, data: bytes) -> dict[str, Any]:
    await raw.send(data)
    return await raw.error()


async def test_oversized_frames_close_1009(server: Any, server_factory: Any,
                                           redis_url: str) -> None:
    mark = log_mark(server)
    small = await server_factory.start({"PARTSBOARD_MAX_FRAME": "4096"})
    trio = await open_trio(server.base_url)
    trio_small = await open_trio(small.base_url)
    try:
        # Exactly at the limit: read and answered.
        at_limit = cmd("edge", "agreement.add", {"text": "x" * 30_000})
        at_limit = cmd("edge", "agreement.add",
                       {"text": "x" * (30_000 + FRAME_LIMIT - len(at_limit))})
        assert len(at_limit) == FRAME_LIMIT
        raw = await Raw.open(trio.links["therapist"])
        error = await raw_error(raw, at_limit)
        assert error["code"] in ("bad_request", "limit"), error
        await raw.probe()
        await raw.close()
        await carries_on(trio, server, "a frame of exactly 64 KiB")

        over = pack({"t": "cmd", "id": "big", "op": "note.add",
                     "args": {"text": "x" * FRAME_LIMIT}})
        fragment = bytes(16 * 1024)
        cases: dict[str, tuple[bool, list[Announced]]] = {
            "a frame of 64 KiB + 1 byte": (True, [Announced(BINARY, FRAME_LIMIT + 1,
                                                            at_limit[:4096])]),
            "a 100 KiB command": (True, [Announced(BINARY, 100 * 1024, over[:4096])]),
            "a 1 MiB frame of zeros": (True, [Announced(BINARY, 1024 * 1024, bytes(4096))]),
            "a 100 KiB text frame": (True, [Announced(TEXT, 100 * 1024, b"x" * 4096)]),
            "an 80 KiB message in 16 KiB fragments": (True, [
                Announced(BINARY, len(fragment), fragment, fin=False),
                *[Announced(CONTINUATION, len(fragment), fragment, fin=False)] * 3,
                Announced(CONTINUATION, len(fragment), fragment[:1024]),
            ]),
            "an oversized first frame (no hello)": (False, [
                Announced(BINARY, FRAME_LIMIT + 1, bytes(4096))]),
        }
        for name, (hello, frames) in cases.items():
            before = await room_seq(redis_url, trio.room)
            raw = await Raw.open(trio.links["b"], hello=hello)
            await raw.send_announced(*frames)
            assert await raw.closed() == CLOSE_TOO_BIG, name
            await raw.close()
            assert await room_seq(redis_url, trio.room) == before, name
            await carries_on(trio, server, name)

        # PARTSBOARD_MAX_FRAME moves the limit.
        raw = await Raw.open(trio_small.links["therapist"])
        error = await raw_error(raw, cmd("fits", "agreement.add", {"text": "x" * 3000}))
        assert error["code"] == "limit" and error.get("id") == "fits", error
        too_big = cmd("too-big", "agreement.add", {"text": "x" * 5000})
        await raw.send_announced(Announced(BINARY, len(too_big), too_big[:4096]))
        assert await raw.closed() == CLOSE_TOO_BIG
        await raw.close()
        await carries_on(trio_small, small, "over PARTSBOARD_MAX_FRAME")
        await mirrors_match_fresh_snapshots(trio)
    finally:
        await trio.close()
        await trio_small.close()
    assert_log_clean(server, mark)
    assert_log_clean(small)


async def test_huge_and_bad_strings(server: Any, redis_url: str) -> None:
    mark = log_mark(server)
    trio = await open_trio(server.base_url)
    await trio.therapist.run(StageSet(stage=2))
    part = await trio.a.create(PartAdd(name="Keeper", kind="manager"))
    cases: dict[str, tuple[str, bytes, str, str | set[str], str | None]] = {
        "a note of 2,001 characters": (
            "therapist", cmd("s1", "note.add", {"text": "n" * 2001}), "limit", "text", "s1"),
        "an agreement of 2,001 characters": (
            "therapist", cmd("s2", "agreement.add", {"text": "n" * 2001}), "limit", "text",
            "s2"),
        "a part name of 81 characters": (
            "a", cmd("s3", "part.add", {"name": "n" * 81, "kind": "exile"}), "limit", "name",
            "s3"),
        "a renamed part of 81 characters": (
            "a", cmd("s4", "part.edit", {"id": part, "name": "n" * 81}), "limit", "name", "s4"),
        "a display name of 41 characters": (
            "therapist", cmd("s5", "partner.update", {"partner": "a", "name": "n" * 41}),
            "limit", "name", "s5"),
        "an empty part name": (
            "a", cmd("s6", "part.add", {"name": "   ", "kind": "exile"}), "bad_request",
            "name", "s6"),
        "a NUL in a note": (
            "therapist", cmd("s7", "note.add", {"text": "a\x00b"}), "bad_request", "text",
            "s7"),
        "an escape sequence in a part name": (
            "a", cmd("s8", "part.add", {"name": "\x1b[31mred", "kind": "exile"}),
            "bad_request", "name", "s8"),
        "a 10,000-character command id": (
            "therapist", cmd("i" * 10_000, "pause.clear"), "bad_request", "id", None),
        "a 5,000-character drag part": (
            "a", pack({"t": "drag", "part": "p" * 5000, "x": 0.5, "y": 0.5}), "bad_request",
            "part", None),
        "a 30,000-character text": (
            "therapist", cmd("s9", "note.add", {"text": "n" * 30_000}), "bad_request",
            {"args", "text"}, None),
    }
    try:
        for name, (role, data, code, field, command_id) in cases.items():
            await case_on_fresh_connection(trio, server, redis_url, role, name, data, code,
                                           field, command_id)
        # A huge room id or secret in the hello: refused, and the connection closed.
        link = parse_link(trio.links["b"])
        for name, hello in {
            "a 10,000-character room id": wire.hello("r" * 10_000, link.secret),
            "a 10,000-character secret": wire.hello(link.room, "s" * 10_000),
            "a 129-character secret": wire.hello(link.room, "s" * 129),
        }.items():
            raw = await Raw.open(trio.links["b"], hello=False)
            await raw.send(hello)
            assert await raw.closed() == CLOSE_POLICY, name
            assert [(f["code"], f.get("field")) for f in raw.errors] in (
                [("bad_request", "room")], [("bad_request", "secret")]), (name, raw.errors)
            await carries_on(trio, server, name)
        view = await fresh_view(trio.links["a"])
        assert [p["name"] for p in view["colls"]["parts"].values()] == ["Keeper"]
        assert view["colls"]["partners"]["a"]["name"] == "Robin"
        await mirrors_match_fresh_snapshots(trio)
    finally:
        await trio.close()
    assert_log_clean(server, mark)


async def test_nan_and_infinity_are_refused(server: Any, redis_url: str) -> None:
    mark = log_mark(server)
    trio = await open_trio(server.base_url)
    await trio.therapist.run(StageSet(stage=3))
    part = await trio.a.create(PartAdd(name="Keeper", kind="manager", x=0.25, y=0.75))
    await trio.a.run(PartReveal(id=part))
    stored_before = (await fresh_view(trio.links["b"]))["colls"]["parts"][part]
    nan32 = b"\xca\x7f\xc0\x00\x00"  # a float32 NaN, as some encoders send it
    cases: dict[str, tuple[str, bytes, str | set[str], str | None]] = {
        "NaN x": ("a", cmd("f1", "part.move", {"id": part, "x": NAN, "y": 0.5}), "x", "f1"),
        "infinite x": ("a", cmd("f2", "part.move", {"id": part, "x": INF, "y": 0.5}), "x",
                       "f2"),
        "-infinite y": ("a", cmd("f3", "part.move", {"id": part, "x": 0.5, "y": -INF}), "y",
                        "f3"),
        "NaN y of a new part": ("a", cmd("f4", "part.add", {"name": "n", "x": 0.1, "y": NAN}),
                                "y", "f4"),
        "float32 NaN x": ("a", map_with(
            ("t", pack("cmd")), ("id", pack("f5")), ("op", pack("part.move")),
            ("args", b"\x83" + pack("id") + pack(part) + pack("x") + nan32 + pack("y")
             + pack(0.5))), "x", "f5"),
        "NaN blend level": ("a", cmd("f6", "part.blend", {"id": part, "level": NAN}), "level",
                            "f6"),
        "infinite blend level": ("a", cmd("f7", "part.blend", {"id": part, "level": INF}),
                                 "level", "f7"),
        "a NaN score": ("a", cmd("f8", "checkin.set", {"scores": {"calm": NAN}}), "scores",
                        "f8"),
        "an infinite stage": ("therapist", cmd("f9", "stage.set", {"stage": INF}), "stage",
                              "f9"),
        "a NaN spotlight": ("therapist", cmd("f10", "spotlight.set", {"part": NAN}), "part",
                            "f10"),
        "a NaN drag x": ("a", pack({"t": "drag", "part": part, "x": NAN, "y": 0.5}), "x",
                         None),
        "an infinite drag y": ("a", pack({"t": "drag", "part": part, "x": 0.5, "y": INF}),
                               "y", None),
        "a huge drag x": ("a", pack({"t": "drag", "part": part, "x": 1e308, "y": 0.5}), "x",
                          None),
    }
    try:
        for name, (role, data, field, command_id) in cases.items():
            await case_on_fresh_connection(trio, server, redis_url, role, name, data,
                                           "bad_request", field, command_id)
        view = await fresh_view(trio.links["b"])
        stored = view["colls"]["parts"][part]
        assert stored == stored_before
        assert all(math.isfinite(v) for v in (stored["x"], stored["y"]))
        assert not any(f.get("t") == "drag" for f in decoded(trio.b)), "a NaN drag was routed"
        await mirrors_match_fresh_snapshots(trio)
    finally:
        await trio.close()
    assert_log_clean(server, mark)


# -- the handshake -------------------------------------------------------------------------


async def test_hello_must_come_first_and_only_once(server: Any, redis_url: str) -> None:
    mark = log_mark(server)
    trio = await open_trio(server.base_url)
    link = parse_link(trio.links["b"])
    therapist_secret = parse_link(trio.links["therapist"]).secret
    silent = await Raw.open(trio.links["a"], hello=False)  # says nothing at all
    try:
        firsts: dict[str, bytes | str] = {
            "a command before the hello": cmd("h1", "pause.raise"),
            "a drag before the hello": pack({"t": "drag", "part": "p", "x": 0.1, "y": 0.1}),
            "garbage before the hello": b"\xc1\xc1\xc1",
            "a text frame before the hello": "hello",
            "an empty frame before the hello": b"",
        }
        for name, first in firsts.items():
            raw = await Raw.open(trio.links["b"], hello=False)
            await raw.send(first)
            assert await raw.closed() == CLOSE_POLICY, name
            assert [f["code"] for f in raw.errors] == ["bad_frame"], (name, raw.errors)
            assert not any(f.get("t") in ("welcome", "ack", "ev") for f in raw.frames), name
            await carries_on(trio, server, name)

        # A second hello is refused and changes nothing, not even with another role's secret.
        raw = await Raw.open(trio.links["b"])
        try:
            await check_refused(raw, wire.hello(link.room, link.secret), "bad_frame")
            await check_refused(raw, wire.hello(link.room, therapist_secret), "bad_frame")
            await raw.cmd("h2", "note.add", {"text": "a therapist's note"})
            answer = await raw.answer("h2")
            assert answer.get("code") == "forbidden", answer
            assert sum(1 for f in raw.frames if f.get("t") == "welcome") == 1
            await raw.probe()
        finally:
            await raw.close()
        await carries_on(trio, server, "a second hello")

        # A hello resuming an epoch the room never had: told the session was lost.
        raw = await Raw.open(trio.links["b"], hello=False)
        await raw.send(wire.hello(link.room, link.secret, ("not-this-room.epoch", 1)))
        assert await raw.closed() == 4409
        assert [f["code"] for f in raw.errors] == ["room_lost"]
        await carries_on(trio, server, "a foreign epoch")

        # No hello within the time-out (HELLO_TIMEOUT): closed for policy. The room was not
        # held up meanwhile (the cases above ran while it waited).
        assert await silent.closed(timeout=60) == CLOSE_POLICY
        assert not any(f.get("t") == "welcome" for f in silent.frames)
        await carries_on(trio, server, "a hello time-out")
        await mirrors_match_fresh_snapshots(trio)
        # The client broke the protocol: it is told so, not that the server failed.
        codes = [f["code"] for f in silent.errors]
        assert codes in ([], ["bad_frame"]), f"a hello time-out answered with {codes}"
    finally:
        await trio.close()
    assert_log_clean(server, mark)


# -- floods ----------------------------------------------------------------------------------


def note_texts(view: dict[str, Any]) -> set[str]:
    return {note["text"] for note in view["colls"]["notes"].values()}


async def test_a_burst_over_40_commands_is_rate_limited_and_changes_nothing(
        server: Any, redis_url: str) -> None:
    mark = log_mark(server)
    trio = await open_trio(server.base_url)
    try:
        raw = await Raw.open(trio.links["therapist"])
        # One burst of 47 commands sent without waiting: 38 cheap ones (unknown ops, read
        # in no time), then 9 notes. Only 40 fit the burst, and refused commands are read
        # as fast, so some notes are refused however slowly the commits run.
        cheap = [f"cheap-{n}" for n in range(38)]
        notes = [f"note-{n}" for n in range(9)]
        for command_id in cheap:
            await raw.cmd(command_id, "probe.nothing")
        for command_id in notes:
            await raw.cmd(command_id, "note.add", {"text": f"text of {command_id}"})
        answers = {command_id: await raw.answer(command_id) for command_id in cheap + notes}
        assert all(answers[i].get("code") in ("unknown_op", "rate_limited") for i in cheap)
        acked = [i for i in notes if answers[i]["t"] == "ack"]
        limited = [i for i in notes if answers[i].get("code") == "rate_limited"]
        assert sorted(acked + limited) == sorted(notes), answers
        assert limited, "a burst of 47 commands was not rate-limited"
        for command_id in cheap + notes:
            assert sum(1 for f in raw.frames if f.get("id") == command_id) == 1, command_id
        await raw.probe()  # ten refusals or fewer are forgiven: still read
        await raw.close()
        view = await fresh_view(trio.links["therapist"])
        assert note_texts(view) == {f"text of {i}" for i in acked}
        await carries_on(trio, server, "a burst")
        await mirrors_match_fresh_snapshots(trio)
    finally:
        await trio.close()
    assert_log_clean(server, mark)


async def test_a_sustained_command_stream_is_rate_limited_then_closed_1008(
        server: Any, redis_url: str) -> None:
    mark = log_mark(server)
    trio = await open_trio(server.base_url)
    try:
        raw = await Raw.open(trio.links["therapist"])
        reader = asyncio.create_task(raw.closed(timeout=60))
        sent: list[str] = []
        for n in range(600):  # 40 a second (twice the sustained rate) until closed
            if reader.done():
                break
            command_id = f"flow-{n}"
            try:
                await raw.cmd(command_id, "note.add", {"text": f"note {command_id}"})
            except ConnectionClosed:
                break
            sent.append(command_id)
            await asyncio.sleep(0.025)
        assert await reader == CLOSE_POLICY, f"still open after {len(sent)} commands"
        acked = [f["id"] for f in raw.frames if f.get("t") == "ack"]
        limited = [f for f in raw.frames if f.get("code") == "rate_limited"]
        assert limited and all(f.get("id") in sent for f in limited), limited[:3]
        assert raw.errors[-1]["code"] == "bad_frame", "the policy close says why"
        view = await fresh_view(trio.links["therapist"])
        assert note_texts(view) <= {f"note {i}" for i in sent}
        # Rate-limited commands changed nothing; acked ones are all there (an ack may be
        # lost in the close: such a command is committed and a resend returns its ack).
        assert {f"note {i}" for i in acked} <= note_texts(view)
        assert not note_texts(view) & {f"note {f['id']}" for f in limited}
        # Not banned: the same link connects again, and is read.
        again = await Raw.open(trio.links["therapist"])
        await again.probe()
        await again.close()
        await carries_on(trio, server, "a sustained stream")
        await mirrors_match_fresh_snapshots(trio)
    finally:
        await trio.close()
    assert_log_clean(server, mark)


async def test_a_few_bad_frames_are_forgiven_a_stream_is_closed_1008(
        server: Any, redis_url: str) -> None:
    mark = log_mark(server)
    trio = await open_trio(server.base_url)
    rng = random.Random(8)
    try:
        raw = await Raw.open(trio.links["b"])
        for _ in range(5):
            await check_refused(raw, b"\xc1" + rng.randbytes(20), "bad_frame")
        await raw.probe()
        reader = asyncio.create_task(raw.closed(timeout=60))
        for _ in range(200):
            if reader.done():
                break
            try:
                await raw.send(b"\xc1" + rng.randbytes(20))
            except ConnectionClosed:
                break
            await asyncio.sleep(0.005)
        assert await reader == CLOSE_POLICY
        assert raw.errors[-1]["code"] == "bad_frame"
        assert len(raw.errors) < 30, "the garbage stream was read for too long"
        await carries_on(trio, server, "a garbage stream")
        await mirrors_match_fresh_snapshots(trio)
    finally:
        await trio.close()
    assert_log_clean(server, mark)


async def test_drag_floods_are_dropped_and_a_real_flood_is_closed_1008(
        server: Any, redis_url: str) -> None:
    mark = log_mark(server)
    trio = await open_trio(server.base_url)
    await trio.therapist.run(StageSet(stage=2))
    part = await trio.a.create(PartAdd(name="Keeper", kind="manager", x=0.25, y=0.75))
    await trio.a.run(PartReveal(id=part))
    rests = trio.a.board()["colls"]["parts"][part]
    draft = await trio.a.create(PartAdd(name="Draft", kind="exile"))
    try:
        raw = await Raw.open(trio.links["a"])
        # A burst of 55: 30 go out, the rest are dropped quietly (no strike, no close).
        started = time.monotonic()
        for n in range(55):
            await raw.send(wire.drag(part, n / 100, 0.5))
        await raw.probe()
        window = time.monotonic() - started
        await carries_on(trio, server, "a drag burst")  # every routed drag has reached b
        seen = [f for f in decoded(trio.b) if f.get("t") == "drag"]
        # At most the burst plus what refills while the server reads them (30 a second).
        assert 1 <= len(seen) <= 30 + 30 * window + 1, (len(seen), window)
        assert all(f["part"] == part and f["by"] == "a" for f in seen)
        # Drags of a part b may not see, or of a part that is not a's, reach nobody.
        for n in range(5):
            await raw.send(wire.drag(draft, n / 10, 0.5))
        b_raw = await Raw.open(trio.links["b"])
        await b_raw.send(wire.drag(part, 0.9, 0.9))
        await b_raw.probe()
        await b_raw.close()
        await raw.probe()
        await carries_on(trio, server, "drags of hidden or foreign parts")
        drags_b = [f for f in decoded(trio.b) if f.get("t") == "drag"]
        assert all(f["part"] == part and f["by"] == "a" for f in drags_b)
        assert draft.encode() not in b"".join(trio.b.raw_frames), "a private part leaked"
        # A real flood (hundreds at once) ends in a policy close.
        reader = asyncio.create_task(raw.closed(timeout=60))
        for n in range(600):
            if reader.done():
                break
            try:
                await raw.send(wire.drag(part, (n % 100) / 100, 0.3))
            except ConnectionClosed:
                break
        assert await reader == CLOSE_POLICY
        await carries_on(trio, server, "a drag flood")
        view = await fresh_view(trio.links["b"])
        stored = view["colls"]["parts"][part]
        assert (stored["x"], stored["y"]) == (rests["x"], rests["y"]), "a drag was stored"
        await mirrors_match_fresh_snapshots(trio)
    finally:
        await trio.close()
    assert_log_clean(server, mark)


# -- secrets, links, origins, subprotocols, connection counts -------------------------------


async def test_forged_and_foreign_secrets_get_the_same_answer(server: Any, redis_url: str) -> None:
    mark = log_mark(server)
    trio = await open_trio(server.base_url)
    other = await create_room(server.base_url, key="test-key")
    a = parse_link(trio.links["a"])
    foreign = parse_link(other.therapist)
    flipped = a.secret[:-1] + ("A" if a.secret[-1] != "A" else "B")
    hellos = {
        "a random secret": wire.hello(a.room, "x" * 43),
        "a partner's secret with one character changed": wire.hello(a.room, flipped),
        "another room's therapist secret": wire.hello(a.room, foreign.secret),
        "this room's secret with another room's id": wire.hello(foreign.room, a.secret),
        "this room's secret with an unknown room id": wire.hello("n" * 22, a.secret),
        "a room id with a hash-tag brace": wire.hello(a.room + "}", a.secret),
        "a secret that is this room's id": wire.hello(a.room, a.room),
    }
    answers: list[Any] = []
    try:
        for name, hello in hellos.items():
            raw = await Raw.open(trio.links["a"], hello=False)
            await raw.send(hello)
            assert await raw.closed() == CLOSE_INVALID_LINK, name
            assert [f["code"] for f in raw.errors] == ["room_ended"], (name, raw.errors)
            answers.append(raw.errors)
            await carries_on(trio, server, name)
        assert all(answer == answers[0] for answer in answers), "answers tell cases apart"
        # Over HTTP too: same answer for a forged secret and an unknown room.
        async with httpx.AsyncClient(timeout=WAIT) as http:
            forged = await http.post(f"{a.http_base}/api/rooms/{a.room}/export",
                                     headers={"Authorization": f"Bearer {flipped}"})
            unknown = await http.post(f"{a.http_base}/api/rooms/{'n' * 22}/export",
                                      headers={"Authorization": f"Bearer {a.secret}"})
            assert forged.status_code == unknown.status_code == 404
            assert forged.json() == unknown.json() and forged.json()["code"] == "room_ended"
            # A partner may not end the session, nor replace links.
            ended = await http.post(f"{a.http_base}/api/rooms/{a.room}/end",
                                    json={"confirm": True},
                                    headers={"Authorization": f"Bearer {a.secret}"})
            assert ended.status_code == 403 and ended.json()["code"] == "forbidden"
            relinked = await http.post(f"{a.http_base}/api/rooms/{a.room}/links/b",
                                       headers={"Authorization": f"Bearer {a.secret}"})
            assert relinked.status_code == 403
        await carries_on(trio, server, "HTTP with forged secrets")
        await mirrors_match_fresh_snapshots(trio)
    finally:
        await trio.close()
    assert_log_clean(server, mark)


async def test_a_replaced_partner_link_stops_working_at_once(server: Any, redis_url: str) -> None:
    mark = log_mark(server)
    trio = await open_trio(server.base_url)
    old_a = trio.links["a"]
    try:
        old_raw = await Raw.open(old_a)
        b_raw = await Raw.open(trio.links["b"])
        new_a = await replace_link(trio.links["therapist"], "a")
        # Open connections with the old secret are told and closed; b's are not.
        assert await old_raw.closed() == CLOSE_INVALID_LINK
        assert [f["code"] for f in old_raw.errors] == ["room_ended"]
        assert isinstance(await trio.a.wait_closed(), LinkNotValid)
        await b_raw.probe()
        await b_raw.close()
        # New connections with the old secret get the same answer as any invalid link.
        raw = await Raw.open(old_a, hello=False)
        await raw.send(wire.hello(parse_link(old_a).room, parse_link(old_a).secret))
        assert await raw.closed() == CLOSE_INVALID_LINK
        assert [f["code"] for f in raw.errors] == ["room_ended"]
        async with httpx.AsyncClient(timeout=WAIT) as http:
            parsed = parse_link(old_a)
            export = await http.post(f"{parsed.http_base}/api/rooms/{parsed.room}/export",
                                     headers={"Authorization": f"Bearer {parsed.secret}"})
            assert export.status_code == 404
        # The new link works and the room carries on with it.
        await trio.a.close()
        trio.a = await Client.connect(new_a, record=True)
        trio.links["a"] = new_a
        await carries_on(trio, server, "a replaced link")
        await mirrors_match_fresh_snapshots(trio)
    finally:
        await trio.close()
    assert_log_clean(server, mark)


async def test_websocket_origins(server: Any, server_factory: Any, redis_url: str) -> None:
    mark = log_mark(server)
    allowed = await server_factory.start(
        {"PARTSBOARD_ALLOWED_ORIGINS": "https://board.example, https://other.example/"})
    trio = await open_trio(server.base_url)
    trio_allowed = await open_trio(allowed.base_url, origin="https://board.example")
    host = f"127.0.0.1:{server.port}"
    try:
        for bad in ("http://evil.example", "null", f"http://{host}.evil.example",
                       f"http://evil.example:{server.port}", "https://board.example",
                       f"http://127.0.0.1:{server.port + 1}"):
            how = await refused(trio.links["b"], origin=bad)
            assert how.startswith("http 4"), (bad, how)
            await carries_on(trio, server, f"origin {bad}")
        welcomed: tuple[str | None, ...] = (f"http://{host}", None)
        for origin in welcomed:
            raw = await Raw.open(trio.links["b"], origin=origin)  # welcomed
            await raw.probe()
            await raw.close()
        # With PARTSBOARD_ALLOWED_ORIGINS, only those (and clients sending no origin).
        allowed_host = f"http://127.0.0.1:{allowed.port}"
        for bad in (allowed_host, "http://evil.example", "https://board.example.evil"):
            how = await refused(trio_allowed.links["b"], origin=bad)
            assert how.startswith("http 4"), (bad, how)
        welcomed = ("https://board.example", "https://other.example", None)
        for origin in welcomed:
            raw = await Raw.open(trio_allowed.links["b"], origin=origin)
            await raw.probe()
            await raw.close()
        await carries_on(trio_allowed, allowed, "origins")
    finally:
        await trio.close()
        await trio_allowed.close()
    assert_log_clean(server, mark)
    assert_log_clean(allowed)


async def test_the_subprotocol_is_required(server: Any, redis_url: str) -> None:
    mark = log_mark(server)
    trio = await open_trio(server.base_url)
    try:
        for subprotocols in (None, ["partsboard.v0"], ["chat"]):
            how = await refused(trio.links["b"], subprotocols=subprotocols)
            assert how.startswith(("http 4", "handshake")), (subprotocols, how)
            await carries_on(trio, server, f"subprotocols {subprotocols}")
        raw = await Raw.open(trio.links["b"], subprotocols=["chat", wire.SUBPROTOCOL])
        assert raw.ws.subprotocol == wire.SUBPROTOCOL
        await raw.probe()
        await raw.close()
    finally:
        await trio.close()
    assert_log_clean(server, mark)


async def test_more_than_8_connections_for_one_role_are_refused_4429(
        server: Any, redis_url: str) -> None:
    mark = log_mark(server)
    trio = await open_trio(server.base_url)
    extra: list[Raw] = []
    try:
        for _ in range(7):  # with trio.b, eight connections for b
            extra.append(await Raw.open(trio.links["b"]))
        await trio.therapist.wait_for(lambda _: trio.therapist.presence.get("b") == 8)
        with pytest.raises(Closed) as ninth:
            await Raw.open(trio.links["b"])
        assert ninth.value.code == CLOSE_TOO_MANY
        raw = await Raw.open(trio.links["b"], hello=False)
        await raw.send(wire.hello(trio.room, parse_link(trio.links["b"]).secret))
        assert await raw.closed() == CLOSE_TOO_MANY
        assert [f["code"] for f in raw.errors] == ["limit"]
        # Other roles are not affected, and all eight of b's are still read.
        other = await Raw.open(trio.links["a"])
        await other.probe()
        await other.close()
        for member in extra:
            await member.probe()
        await carries_on(trio, server, "a ninth connection")
        # One leaves: one more may come.
        await extra.pop().close()
        await trio.therapist.wait_for(lambda _: trio.therapist.presence.get("b") == 7)
        extra.append(await Raw.open(trio.links["b"]))
        await extra[-1].probe()
        await carries_on(trio, server, "a connection after one left")
        await server_alive(server)
    finally:
        for member in extra:
            await member.close()
        await trio.close()
    assert_log_clean(server, mark)
