"""A hypothesis-driven fuzzer against a live server: thousands of random frames, no crash,
no stray effect.

Each hypothesis example is a batch of frames (random bytes, random msgpack structures,
text frames, valid cmd/drag/hello frames with random ops and args, and byte-level
mutations of valid frames) spread over three connections (therapist, a, b) of one room,
plus now and then a fresh connection whose first frame is random. A connection the
server closes for policy is reopened. After each batch every connection is synced (an
answered probe), so each batch's effects are complete before the next.

Checked after each batch: the server runs, no `internal` error or unknown code was sent,
no connection was closed with an unexpected code. At the end: no traceback or ERROR in
the server log; the state changed only through committed commands that the fuzzer sent
(every sequence number since the start is one command id in the room's dedupe table,
that id was sent by that role with the event's op, every ack matches it, and no command
that was only ever refused is there); every member's mirror equals a fresh snapshot; and
the room carries on. (Every key has a TTL: tests/conftest.py checks after each test.)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis
from faults_helpers import (
    WAIT,
    Closed,
    Raw,
    Trio,
    assert_log_clean,
    carries_on,
    decoded,
    mirrors_match_fresh_snapshots,
    open_trio,
    room_seq,
    server_alive,
)
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from client.links import parse_link
from rooms import wire
from rooms.actions import (
    COMMANDS,
    AgreementAdd,
    LinkAdd,
    NoteAdd,
    PartAdd,
    PartReveal,
    PartRevealAll,
    StageSet,
)
from rooms.errors import ERROR_CODES, RoomError
from rooms.model import SELF_QUALITIES
from rooms.stages import OPERATIONS

pytestmark = pytest.mark.timeout(240)

EXAMPLES = 150  # batches of 15 to 35 frames: some 3,500 frames
BUDGET = 40.0  # seconds of fuzzing at most (later examples send nothing)
ROLES = ("therapist", "a", "b")
MID_SESSION_CLOSES = {1008, 1009}  # policy (garbage, floods), frame too big
HANDSHAKE_CLOSES = {1008, 1009, 4404, 4409, 4429}
ARG_NAMES = sorted({name for schema in COMMANDS.values() for name in schema.__struct_fields__})


# -- strategies ------------------------------------------------------------------------------

INT64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)
FLOATS = st.floats(allow_nan=True, allow_infinity=True)
SCALARS = st.none() | st.booleans() | INT64 | FLOATS | st.text(max_size=40) | st.binary(
    max_size=20)
MSGPACK = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=8) | st.integers(-5, 5), children, max_size=5),
    max_leaves=20,
)


def arg_values(known: dict[str, list[str]]) -> st.SearchStrategy[Any]:
    ids = [value for values in known.values() for value in values]
    return st.one_of(
        st.sampled_from(ids),
        st.sampled_from(["manager", "firefighter", "exile", "unsure", "protects",
                         "reacts_to", "yes", "not_yet", "lets_talk", "a", "b", "therapist",
                         "#1a2b3c", "red", ""]),
        st.floats(min_value=0, max_value=1) | FLOATS,
        st.integers(-2, 12) | INT64,
        st.booleans(),
        st.none(),
        st.text(max_size=30),
        # A text just over a limit (a lone surrogate cannot be sent as UTF-8, so none is drawn).
        st.tuples(st.integers(1990, 2010), st.characters(codec="utf-8")).map(lambda t: t[1] * t[0]),
        st.fixed_dictionaries({q: st.integers(-1, 11) for q in SELF_QUALITIES}),
        st.dictionaries(st.sampled_from(SELF_QUALITIES) | st.text(max_size=5),
                        st.integers(0, 10) | FLOATS, max_size=9),
        MSGPACK,
    )


def command_frames(known: dict[str, list[str]]) -> st.SearchStrategy[dict[str, Any]]:
    values = arg_values(known)
    return st.fixed_dictionaries({
        "t": st.just("cmd"),
        "id": st.text(min_size=1, max_size=12) | st.sampled_from(["x", "same", "again"]),
        "op": st.sampled_from(sorted(OPERATIONS)) | st.text(max_size=45),
        "args": st.dictionaries(st.sampled_from(ARG_NAMES) | st.text(max_size=8), values,
                                max_size=5),
    })


def valid_commands(known: dict[str, list[str]]) -> st.SearchStrategy[dict[str, Any]]:
    """Commands that some role may well be allowed to send now (at stage 3)."""
    parts = st.sampled_from(known["parts"])
    unit = st.floats(min_value=0, max_value=1)
    ops_args: list[tuple[str, st.SearchStrategy[dict[str, Any]]]] = [
        ("pause.raise", st.just({})),
        ("pause.clear", st.just({})),
        ("overwhelm.raise", st.just({})),
        ("ready.set", st.fixed_dictionaries({"ready": st.booleans()})),
        ("freeze.set", st.fixed_dictionaries({"frozen": st.booleans()})),
        ("spotlight.set", st.fixed_dictionaries({"part": parts | st.none()})),
        ("agreement.ack", st.fixed_dictionaries({"id": st.sampled_from(known["agreements"])})),
        ("agreement.add", st.fixed_dictionaries({"text": st.text(min_size=1, max_size=20)})),
        ("note.add", st.fixed_dictionaries({"text": st.text(min_size=1, max_size=20)})),
        ("part.add", st.fixed_dictionaries({"name": st.text(min_size=1, max_size=20),
                                            "kind": st.sampled_from(["exile", "unsure"]),
                                            "x": unit, "y": unit})),
        ("part.move", st.fixed_dictionaries({"id": parts, "x": unit, "y": unit})),
        ("part.blend", st.fixed_dictionaries({"id": parts, "level": st.integers(0, 10)})),
        ("part.reveal", st.fixed_dictionaries({"id": parts})),
        ("part.withdraw", st.fixed_dictionaries({"id": parts})),
        ("stage.set", st.fixed_dictionaries({"stage": st.integers(1, 5),
                                             "confirm": st.booleans()})),
    ]
    return st.one_of([st.fixed_dictionaries({
        "t": st.just("cmd"),
        "id": st.text(min_size=1, max_size=12),
        "op": st.just(op),
        "args": args,
    }) for op, args in ops_args])


def drag_frames(known: dict[str, list[str]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({
        "t": st.just("drag"),
        "part": st.sampled_from(known["parts"]) | st.text(max_size=20),
        "x": st.floats(min_value=0, max_value=1) | FLOATS,
        "y": st.floats(min_value=0, max_value=1) | FLOATS,
    })


def hello_frames(room: str, secrets: list[str], epoch: str) -> st.SearchStrategy[dict[str, Any]]:
    resume = st.fixed_dictionaries({
        "epoch": st.just(epoch) | st.text(max_size=20),
        "seq": st.integers(-1, 200) | INT64,
    })
    return st.fixed_dictionaries(
        {"t": st.just("hello"),
         "room": st.just(room) | st.text(max_size=30),
         "secret": st.sampled_from(secrets) | st.text(max_size=50)},
        optional={"resume": resume | MSGPACK},
    )


@st.composite
def mutated(draw: st.DrawFn, frames: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    """A frame with a key dropped, a key added or a value replaced by anything."""
    frame = dict(draw(frames))
    how = draw(st.sampled_from(["none", "drop", "add", "replace", "t"]))
    if how == "drop" and frame:
        frame.pop(draw(st.sampled_from(sorted(frame))))
    elif how == "add":
        frame[draw(st.text(max_size=8))] = draw(MSGPACK)
    elif how == "replace" and frame:
        frame[draw(st.sampled_from(sorted(frame)))] = draw(MSGPACK)
    elif how == "t":
        frame["t"] = draw(st.sampled_from(["Cmd", "cmd ", "drag\x00", "welcome", "ev", ""])
                          | st.text(max_size=6))
    return frame


@st.composite
def byte_mutated(draw: st.DrawFn, frames: st.SearchStrategy[dict[str, Any]]) -> bytes:
    data = bytearray(msgspec.msgpack.encode(draw(frames)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(0, len(data) - 1)))
        how = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        if how == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif how == "cut":
            del data[at:]
        elif how == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif how == "delete" and data:
            del data[at]
    return bytes(data)


def encoded(frames: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return frames.map(msgspec.msgpack.encode)


def any_frame(known: dict[str, list[str]], room: str, secrets: list[str],
              epoch: str) -> st.SearchStrategy[bytes | str]:
    valid = (command_frames(known) | valid_commands(known) | drag_frames(known)
             | hello_frames(room, secrets, epoch))
    return st.one_of(
        encoded(valid_commands(known)),
        encoded(mutated(valid_commands(known))),
        st.binary(max_size=200),
        st.text(max_size=60),
        encoded(MSGPACK),
        encoded(command_frames(known)),
        encoded(command_frames(known)),
        encoded(drag_frames(known)),
        encoded(hello_frames(room, secrets, epoch)),
        encoded(mutated(valid)),
        byte_mutated(valid),
    )


# -- the connections -------------------------------------------------------------------------


@dataclass
class Ledger:
    """What was sent and answered, and everything that broke a rule."""

    sent: dict[tuple[str, str], list[tuple[str, int, int]]] = field(
        default_factory=lambda: defaultdict(list))  # (role, id) -> [(op, conn, generation)]
    acks: dict[tuple[str, str], set[int]] = field(default_factory=lambda: defaultdict(set))
    refused: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))
    closed_generations: set[tuple[int, int]] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)
    frames_sent: int = 0
    reconnects: int = 0
    handshakes: int = 0

    def check_error(self, where: str, frame: dict[str, Any]) -> None:
        code = frame.get("code")
        if code not in ERROR_CODES or code == "internal":
            self.violations.append(f"{where}: error frame {frame}")
        if not isinstance(frame.get("message"), str):
            self.violations.append(f"{where}: error without a message {frame}")


_sync_ids = itertools.count()


class FuzzConn:
    """One role's fuzzing connection, reopened whenever the server closes it."""

    def __init__(self, number: int, link: str, role: str, ledger: Ledger) -> None:
        self.number = number
        self.link = link
        self.role = role
        self.ledger = ledger
        self.raw: Raw | None = None
        self.reader: asyncio.Task[int | None] | None = None
        self.generation = 0
        self.waiting: dict[str, asyncio.Future[None]] = {}

    @property
    def open(self) -> bool:
        return self.raw is not None and self.reader is not None and not self.reader.done()

    async def ensure(self) -> Raw:
        if not self.open:
            if self.reader is not None:
                await self._reap()
                self.ledger.reconnects += 1
            self.raw = await Raw.open(self.link)
            self.generation += 1
            self.reader = asyncio.create_task(self._read(self.raw))
        assert self.raw is not None
        return self.raw

    async def _reap(self) -> None:
        assert self.reader is not None
        code = await self.reader
        self.ledger.closed_generations.add((self.number, self.generation))
        if code not in MID_SESSION_CLOSES:
            self.ledger.violations.append(f"{self.role}: closed with {code}")

    async def _read(self, raw: Raw) -> int | None:
        where = f"{self.role} connection"
        try:
            while True:
                frame = await raw.next(timeout=3600)
                kind = frame.get("t")
                command_id = frame.get("id")
                if kind == "ack" and isinstance(command_id, str):
                    self.ledger.acks[(self.role, command_id)].add(frame["seq"])
                elif kind == "error":
                    self.ledger.check_error(where, frame)
                    if isinstance(command_id, str):
                        self.ledger.refused[(self.role, command_id)].append(frame["code"])
                if isinstance(command_id, str) and command_id in self.waiting:
                    self.waiting.pop(command_id).set_result(None)
        except Closed as closed:
            return closed.code

    async def send(self, data: bytes | str) -> None:
        raw = await self.ensure()
        # Read as the server reads it: a plain msgpack decode refuses some frames the
        # server takes (invalid UTF-8 in a field it skips, for one).
        with contextlib.suppress(RoomError):
            frame = wire.decode_client(data) if isinstance(data, bytes) else None
            if isinstance(frame, wire.Cmd):
                self.ledger.sent[(self.role, frame.id)].append(
                    (frame.op, self.number, self.generation))
        try:
            await raw.send(data)
            self.ledger.frames_sent += 1
        except ConnectionClosed:
            pass

    async def sync(self) -> None:
        """Wait until every frame sent so far was read (a probe is answered), or closed."""
        if not self.open:
            return
        assert self.raw is not None and self.reader is not None
        probe = f"sync-{next(_sync_ids)}"
        answered = asyncio.get_running_loop().create_future()
        self.waiting[probe] = answered
        with contextlib.suppress(ConnectionClosed):
            await self.raw.cmd(probe, "probe.nothing")
        done, _ = await asyncio.wait({answered, self.reader}, timeout=WAIT,
                                     return_when=asyncio.FIRST_COMPLETED)
        self.waiting.pop(probe, None)
        if not done:
            self.ledger.violations.append(f"{self.role}: the server stopped answering")

    async def close(self) -> None:
        if self.raw is not None:
            await self.raw.close()
        if self.reader is not None:
            await self._reap_quietly()

    async def _reap_quietly(self) -> None:
        assert self.reader is not None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.reader, WAIT)


class Fuzz:
    def __init__(self, server: Any, redis_url: str, trio: Trio) -> None:
        self.server = server
        self.redis_url = redis_url
        self.trio = trio
        self.ledger = Ledger()
        self.conns = [FuzzConn(n, trio.links[role], role, self.ledger)
                      for n, role in enumerate(ROLES)]
        self.started = time.monotonic()
        self.start_seq = 0
        self.known: dict[str, list[str]] = {}

    @classmethod
    async def open(cls, server: Any, redis_url: str) -> Fuzz:
        trio = await open_trio(server.base_url)
        t, a, b = trio.therapist, trio.a, trio.b
        fuzz = cls(server, redis_url, trio)
        agreements = [trio.agreement, await t.create(AgreementAdd(text="We listen"))]
        notes = [await t.create(NoteAdd(text="first impressions"))]
        await t.run(StageSet(stage=3))
        a_parts = [await a.create(PartAdd(name="Planner", kind="manager")),
                   await a.create(PartAdd(name="Hurt", kind="exile"))]
        b_parts = [await b.create(PartAdd(name="Critic", kind="manager")),
                   await b.create(PartAdd(name="Runner", kind="firefighter"))]
        await a.run(PartReveal(id=a_parts[0]))
        await b.run(PartRevealAll())
        links = [await a.create(LinkAdd(kind="protects", source=a_parts[0], target=a_parts[1]))]
        fuzz.known = {"agreements": agreements, "notes": notes, "parts": a_parts + b_parts,
                      "links": links, "other": ["nope", "0", "x" * 64]}
        for conn in fuzz.conns:
            await conn.ensure()
        fuzz.start_seq = await room_seq(redis_url, trio.room)
        return fuzz

    def strategy(self) -> st.SearchStrategy[list[tuple[int, bytes | str]]]:
        secrets = [parse_link(link).secret for link in self.trio.links.values()]
        frame = any_frame(self.known, self.trio.room, secrets, str(self.trio.therapist.epoch))
        # Mostly the three open connections; now and then (-1) a fresh one.
        target = st.sampled_from([*range(len(self.conns))] * 4 + [-1])
        return st.lists(st.tuples(target, frame), min_size=15, max_size=35)

    async def batch(self, items: list[tuple[int, bytes | str]]) -> None:
        if time.monotonic() - self.started > BUDGET:
            return
        used: set[int] = set()
        for target, data in items:
            if target < 0:
                await self.handshake(data)
            else:
                used.add(target)
                await self.conns[target].send(data)
        for number in sorted(used):
            await self.conns[number].sync()
        await server_alive(self.server)
        violations = list(self.ledger.violations)
        assert not violations, "\n".join(violations)

    async def handshake(self, first: bytes | str) -> None:
        """A fresh connection whose first frame is this one."""
        self.ledger.handshakes += 1
        raw = await Raw.open(self.trio.links["b"], hello=False)
        try:
            await raw.send(first)
            self.ledger.frames_sent += 1
            with contextlib.suppress(Closed):
                await raw.wait(lambda f: f.get("t") == "welcome")
                return
            if raw.ws.close_code not in HANDSHAKE_CLOSES:
                self.ledger.violations.append(f"handshake: closed with {raw.ws.close_code}")
            for frame in raw.errors:
                self.ledger.check_error("handshake", frame)
        finally:
            await raw.close()

    async def close(self) -> None:
        for conn in self.conns:
            await conn.close()
        await self.trio.close()

    async def check_the_room(self) -> None:
        """The state changed only through commands the fuzzer sent and the server committed."""
        for conn in self.conns:
            await conn.close()
        end_seq = await room_seq(self.redis_url, self.trio.room)
        observer = self.trio.therapist  # sees every item: therapist_sees_drafts is on
        await observer.wait_seq(end_seq)
        events: dict[int, dict[str, Any]] = {}
        for frame in decoded(observer):
            for event in [frame] if frame.get("t") == "ev" else frame.get("replay") or ():
                events[event["seq"]] = event
        client = aioredis.Redis.from_url(self.redis_url)
        try:
            table = await client.hgetall(f"pb:{{{self.trio.room}}}:cmds")
        finally:
            await client.aclose()
        committed: dict[int, tuple[str, str]] = {}
        for field_name, value in table.items():  # bytes, as the client does not decode
            role, _, command_id = field_name.decode().partition(":")  # type: ignore[union-attr]
            seq = int(value)
            if seq > self.start_seq:
                assert seq not in committed, f"two commands committed as seq {seq}"
                committed[seq] = (role, command_id)
        assert sorted(committed) == list(range(self.start_seq + 1, end_seq + 1)), (
            "a sequence number without a command id behind it")
        ledger = self.ledger
        for seq, (role, command_id) in committed.items():
            sends = ledger.sent.get((role, command_id))
            assert sends, f"seq {seq}: committed for ({role}, {command_id!r}) never sent"
            event = events[seq]
            if not event.get("hidden"):
                assert event["actor"] == role, (seq, event["actor"], role)
                assert event["op"] in {op for op, _, _ in sends}, (seq, event["op"], sends)
            acks = ledger.acks.get((role, command_id), set())
            assert acks <= {seq}, f"({role}, {command_id!r}) acked as {acks}, committed {seq}"
            if not acks:
                # Unacked but committed: only when its connection was closed right after it,
                # so the ack was lost with the connection (a resend would return it).
                assert any((number, generation) in ledger.closed_generations
                           for _, number, generation in sends), (
                    f"seq {seq}: ({role}, {command_id!r}) committed, refused "
                    f"{ledger.refused.get((role, command_id))}, never acked")
        committed_ids = set(committed.values())
        for sender, acked in ledger.acks.items():
            if sender[1].startswith("sync-"):
                continue
            assert sender in committed_ids or all(seq <= self.start_seq for seq in acked), (
                f"{sender} acked {acked} but not committed")
        for sender, codes in ledger.refused.items():
            if sender not in ledger.acks and len(ledger.sent.get(sender, ())) == 1:
                assert sender not in committed_ids, f"{sender} refused {codes} yet committed"


def test_thousands_of_random_frames_leave_no_crash_and_no_stray_effect(
        server: Any, redis_url: str) -> None:
    with asyncio.Runner() as runner:
        fuzz = runner.run(Fuzz.open(server, redis_url))
        try:
            @settings(max_examples=EXAMPLES, deadline=None, database=None,
                      phases=[Phase.generate], suppress_health_check=list(HealthCheck))
            @given(fuzz.strategy())
            def one_batch(items: list[tuple[int, bytes | str]]) -> None:
                runner.run(fuzz.batch(items))

            one_batch()
            ledger = fuzz.ledger
            assert ledger.frames_sent >= 2000, f"only {ledger.frames_sent} frames were sent"
            runner.run(fuzz.check_the_room())
            runner.run(mirrors_match_fresh_snapshots(fuzz.trio))
            runner.run(carries_on(fuzz.trio, server, "the fuzzer"))
        finally:
            runner.run(fuzz.close())
    assert_log_clean(server)
    print(f"fuzzed: {fuzz.ledger.frames_sent} frames, {len(fuzz.ledger.acks)} acked ids, "
          f"{fuzz.ledger.reconnects} reconnects, {fuzz.ledger.handshakes} handshakes")
