"""The load generator: raw `websockets` clients speaking the Partsboard protocol
(or the relay's), in one or more worker processes.

Raw `websockets` rather than the project's client/ library, so that the
client's own bookkeeping (local mirror of the view, resend queue objects) does
not eat the CPU the server needs on this 2-core machine; the generator still
implements what the measurement needs: seq-gap and duplicate checks, resume
after a restart, and resending unacknowledged commands with the same id.

Each worker owns whole rooms (therapist + partners a and b), so every message
is sent and received in one process and timed on one clock
(time.perf_counter). Matching:
- drags (and, on the relay, commands) carry an x value unique to this run;
  every member who should see it records its arrival once;
- Partsboard commands are matched by the room sequence number their ack
  names: every member must receive that seq (the full event, or a hidden
  placeholder for a private part) exactly once, in order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import gc
import heapq
import itertools
import json
import random
import socket
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.frames import DATA_OPCODES, Frame
from websockets.protocol import Event, State
from websockets.typing import Subprotocol

from client.backoff import backoff
from rooms import wire
from rooms.actions import (
    Command,
    PartAdd,
    PartBlend,
    PartMove,
    PartRemove,
    PartReveal,
    StageSet,
    args_of,
)
from rooms.errors import BadFrame, then_after

from .procs import die_with_parent
from .timer import PreciseTimer, precise_wakeups

ROOT = Path(__file__).resolve().parent.parent
ROLES = ("therapist", "a", "b")
PARTNERS = (1, 2)
BURST = 10  # drag updates per burst
BURST_HZ = 10.0  # drag updates per second while dragging
MAX_EXTRA_PARTS = 12  # parts a partner adds during the load before it removes some
PRESENCE_SETTLE = 2.0  # seconds after a room's last drop or reconnect before presence is judged
EVERYONE = {"therapist": 1, "a": 1, "b": 1}
PACE_AT_MOST = 64  # messages sent before the loop gets a turn to read


class Refused(Exception):
    """The server answered the hello with something other than a welcome."""



ADD_NAME = "Bench part "


def add_name(x: float) -> str:
    return f"{ADD_NAME}{x!r}"


def added_x(name: object) -> float | None:
    if isinstance(name, str) and name.startswith(ADD_NAME):
        return float(name[len(ADD_NAME):])
    return None

@dataclass
class Config:
    kind: str  # "relay" | "partsboard"
    ports: list[int]  # the servers of one system: a room's members spread over them
    worker: int = 0
    workers: int = 1
    key: str = ""
    seed: int = 1
    therapist_sees_drafts: bool = False

    def ws_url(self, room: str, member: int) -> str:
        port = self.ports[(zlib.crc32(room.encode()) + member) % len(self.ports)]
        return f"ws://127.0.0.1:{port}/ws"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.ports[0]}"


def _ignore(data: bytes) -> None:
    pass


class PushedConnection(ClientConnection):
    """A client connection that hands each whole message to `deliver` as it is parsed, in
    the transport's callback: no queue and no task woken per frame. The generator reads
    two or three frames per drag; through `recv` that doubled its CPU per frame, and a
    generator near its core's limit measures itself, not the server."""

    deliver: Callable[[bytes], None] = staticmethod(_ignore)
    behind = 0  # messages handed to `send` and not yet sent: later ones go after them

    def process_event(self, event: Event) -> None:
        if isinstance(event, Frame) and event.fin and event.opcode in DATA_OPCODES:
            self.deliver(bytes(event.data))
        else:
            super().process_event(event)

    def send_now(self, frame: bytes) -> bool:
        """Send a binary message in the caller's step, as `send` would without its
        coroutine; False if it cannot go at once (not open, or the socket is full), for
        the caller to fall back to `send`."""
        if (self.behind or self.protocol.state is not State.OPEN
                or self.send_in_progress is not None or self.paused
                or self.transport.is_closing()):
            return False
        self.protocol.send_binary(frame)
        self.send_data()
        return True


@dataclass
class Member:
    room: Room
    index: int  # 0 therapist, 1 a, 2 b
    secret: str
    ws: PushedConnection | None = None
    task: asyncio.Task[None] | None = None
    epoch: str | None = None
    last_seq: int = -1
    unacked: dict[str, bytes] = field(default_factory=dict)
    known_parts: set[str] = field(default_factory=set)
    dead: str | None = None
    drops: int = 0
    resumed_at: float = 0.0  # wall clock of the last successful re-welcome
    dragging: bool = False
    presence: dict[str, int] = field(default_factory=dict)

    @property
    def role(self) -> str:
        return ROLES[self.index]


@dataclass
class Room:
    id: str
    members: list[Member] = field(default_factory=list)
    parts: dict[int, list[str]] = field(default_factory=lambda: {1: [], 2: []})
    extra: dict[int, list[str]] = field(default_factory=lambda: {1: [], 2: []})
    seq_arrivals: dict[int, list[float]] = field(default_factory=dict)
    seq_sent: dict[int, float] = field(default_factory=dict)
    ignore_seqs: set[int] = field(default_factory=set)
    pending_add: dict[float, int] = field(default_factory=dict)  # x -> partner index
    # setup bookkeeping (Partsboard): part ids learnt from events at their owner
    learnt: dict[float, str] = field(default_factory=dict)
    # presence is judged only once the room's connections have been steady for a while
    settled_at: float = 0.0


# a message due: (when, tie-break, what, room, member, part, left)
Due = tuple[float, int, int, "Room", "Member | None", str, int]


@dataclass
class Schedule:
    """A run's messages, by when they are due."""
    heap: list[Due]
    n: int
    start: float
    end: float
    cmd_rate: float
    burst_rate: float
    fixed_rate: float
    fixed: str


@dataclass
class Pending:
    sent: float
    kind: str
    sender: int
    expect: set[int]


@dataclass
class Window:
    """What one measured run collects."""

    number: int
    recording: bool = True
    lat: dict[str, list[float]] = field(
        default_factory=lambda: {"cmd": [], "ack": [], "drag": []})
    sent: Counter[str] = field(default_factory=Counter)
    counts: Counter[str] = field(default_factory=Counter)
    lag: list[float] = field(default_factory=list)


class Worker:
    def __init__(self, config: Config) -> None:
        self.c = config
        self.pb = config.kind == "partsboard"
        self.rng = random.Random(config.seed * 1000 + config.worker)
        self.rooms: list[Room] = []
        self.members: list[Member] = []
        self.xn = 0
        self.idn = 0
        self.pending: dict[float, Pending] = {}  # x-matched messages in flight
        self.expired: set[float] = set()
        self.drag_senders: dict[float, int] = {}  # x -> who dragged (servers may echo drags)
        self.cmds: dict[str, tuple[float, str, int, int]] = {}  # id -> (sent, op, member, window)
        self.window = Window(0, recording=False)
        self.totals: Counter[str] = Counter()  # whole-life checks: gaps, dups, errors
        self.closing = False
        self.reconnect = True
        self.handler_error: str | None = None
        self.reveals: dict[str, str] = {}  # reveal command id -> part id
        self.waiters: dict[str, asyncio.Future[str]] = {}  # set-up commands awaiting answers
        self._sending: set[asyncio.Task[None]] = set()
        self.schedule: Schedule | None = None  # while a run sends
        # commands still unacknowledged when a window closed: counted in that window only
        self.unacked_counted: set[str] = set()

    # ---- identifiers ------------------------------------------------------

    def next_x(self) -> float:
        """A float in [0.25, 0.5) that no other message of this run carries."""
        self.xn += 1
        return 0.25 + (self.xn * self.c.workers + self.c.worker) / 2.0**42

    def next_id(self) -> str:
        self.idn += 1
        return f"w{self.c.worker}c{self.idn}"

    # ---- connections ------------------------------------------------------

    async def connect(self, m: Member, resume: bool) -> None:
        ws = await connect(
            self.c.ws_url(m.room.id, m.index),
            subprotocols=[Subprotocol(wire.SUBPROTOCOL)] if self.pb else None,
            compression=None, ping_interval=None, proxy=None, open_timeout=10,
            close_timeout=2, max_size=2**22, create_connection=PushedConnection)
        assert isinstance(ws, PushedConnection)
        welcomed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def first(data: bytes) -> None:
            # the answer to the hello is taken in the callback too, so that frames that
            # follow it in the same read find the member's sequence already set
            ws.deliver = _ignore
            if welcomed.done():
                return
            try:
                welcome = wire.decode_server(data)
            except BadFrame:
                welcomed.set_exception(Refused("an undecodable answer"))
                return
            if welcome.get("t") != "welcome":
                welcomed.set_exception(Refused(str(welcome.get("code"))))
                return
            try:
                self._welcomed(m, ws, welcome, resume)
            except Exception as exc:
                welcomed.set_exception(exc)
                return
            ws.deliver = functools.partial(self.on_frame, m)
            welcomed.set_result(None)

        ws.deliver = first
        try:
            since = (m.epoch, max(m.last_seq, 0)) if resume and m.epoch is not None else None
            await ws.send(wire.hello(m.room.id, m.secret, since if self.pb else None))
            await asyncio.wait_for(welcomed, 15)
        except BaseException:
            ws.deliver = _ignore
            if m.ws is ws:
                m.ws = None
            await ws.close()
            raise
        if resume:
            m.resumed_at = time.time()
            for frame in list(m.unacked.values()):
                self._send(ws, frame)
                self.totals["resent"] += 1

    def _welcomed(self, m: Member, ws: PushedConnection, welcome: dict[str, Any],
                  resume: bool) -> None:
        now = time.perf_counter()
        if self.pb:
            if resume and m.epoch is not None:
                if welcome.get("epoch") != m.epoch:
                    self.totals["epoch_changed"] += 1
                if welcome.get("view") is not None:
                    self.totals["snapshots"] += 1
                    self._snapshot(m, welcome)
                else:
                    for ev in welcome.get("replay") or ():
                        self.on_event(m, ev, now)
                    if m.last_seq != welcome.get("seq"):
                        self.totals["resume_seq_mismatch"] += 1
            else:
                m.epoch = welcome.get("epoch")
                self._snapshot(m, welcome)
        m.ws = ws
        if self.pb:
            m.presence = welcome.get("presence") or {}
        m.room.settled_at = now + PRESENCE_SETTLE

    def _snapshot(self, m: Member, welcome: dict[str, Any]) -> None:
        m.last_seq = int(welcome.get("seq") or 0)
        view = welcome.get("view") or {}
        parts = (view.get("colls") or {}).get("parts") or {}
        m.known_parts = set(parts)

    async def life(self, m: Member) -> None:
        """Read one member's frames; on a drop, resume (bounded attempts)."""
        while True:
            ws = m.ws
            if ws is not None:
                await ws.wait_closed()
                ws.deliver = _ignore
                code = ws.close_code
                m.ws = None
                m.room.settled_at = time.perf_counter() + PRESENCE_SETTLE
                if self.closing:
                    return
                m.drops += 1
                self.totals["drops"] += 1
                self.totals[f"closed_{code}"] += 1
                if then_after(code) == "stop" or not self.reconnect:
                    m.dead = f"closed {code}"
                    self.totals["dead"] += 1
                    return
            for delay in itertools.islice(backoff(rand=self.rng.random), 200):
                if self.closing:
                    return
                await asyncio.sleep(delay)
                try:
                    await self.connect(m, resume=True)
                    break
                except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError, Refused):
                    continue
            else:
                m.dead = "gave up"
                self.totals["dead"] += 1
                return

    async def send(self, m: Member, frame: bytes) -> bool:
        ws = m.ws
        if ws is None:
            return False
        try:
            await ws.send(frame)
        except ConnectionClosed:
            return False
        return True

    # ---- receiving --------------------------------------------------------

    def on_frame(self, m: Member, data: bytes) -> None:
        now = time.perf_counter()
        try:
            frame = wire.decode_server(data)
            t = frame.get("t")
            if t == "drag":
                self.on_x(m, float(frame["x"]), now)
            elif t == "ev":
                self.on_event(m, frame, now)
            elif t == "ack":
                self.on_ack(m, frame, now)
            elif t == "cmd":  # the relay echoes commands as-is
                args = frame.get("args") or {}
                x = float(args["x"])
                self.on_x(m, x, now)
                if frame.get("op") == "part.add" and x in m.room.pending_add \
                        and m.room.pending_add[x] == m.index:
                    del m.room.pending_add[x]
                    self.reveal(m, f"relay-{x}")
            elif t == "error":
                self.totals[f"error_{frame.get('code')}"] += 1
                cid = frame.get("id")
                if frame.get("code") == "busy" and cid in m.unacked:
                    # "busy, try again": the same id again after the pause the server asks for
                    delay = float(frame.get("retry_after") or 0.5)
                    asyncio.get_running_loop().call_later(delay, self._resend, m, cid)
                elif cid is not None:
                    m.unacked.pop(cid, None)
                    self.cmds.pop(cid, None)
                    waiter = self.waiters.get(cid)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(str(frame.get("code")))
            elif t == "presence":
                m.presence = frame.get("presence") or {}
                if self._settled(m.room, now) and m.presence != EVERYONE:
                    self.totals["presence_wrong"] += 1
            elif t == "ended":
                self.totals["ended"] += 1
            else:
                self.totals["unknown_frames"] += 1
            sched = self.schedule
            if sched is not None and sched.heap and sched.heap[0][0] <= now:
                self._pace()
        except Exception:
            self.totals["handler_errors"] += 1
            if self.handler_error is None:
                self.handler_error = traceback.format_exc()

    def _resend(self, m: Member, cid: str) -> None:
        frame = m.unacked.get(cid)
        ws = m.ws
        if frame is not None and ws is not None:  # else the next resume resends it
            self.totals["resent_busy"] += 1
            self._send(ws, frame)

    @staticmethod
    def _settled(room: Room, now: float) -> bool:
        """Presence can be judged: every member connected, none dropped or came back in
        the last PRESENCE_SETTLE seconds (Partsboard only)."""
        return now >= room.settled_at and all(m.ws is not None for m in room.members)

    def on_x(self, m: Member, x: float, now: float) -> None:
        p = self.pending.get(x)
        w = self.window
        if p is None:
            if self.drag_senders.get(x) == m.index:
                return  # a drag's echo to its sender, after everyone else had it
            if x in self.expired:
                w.counts["late"] += 1
            elif w.recording:
                w.counts["stray"] += 1
            return
        if m.index not in p.expect:
            if m.index != p.sender or p.kind != "drag":  # a drag's echo to its sender is fine
                w.counts[f"dup_{p.kind}"] += 1
            return
        p.expect.discard(m.index)
        w.lat[p.kind].append((now - p.sent) * 1000.0)
        if not p.expect:
            del self.pending[x]

    def on_event(self, m: Member, ev: dict[str, Any], now: float) -> None:
        seq = int(ev["seq"])
        if seq != m.last_seq + 1:
            if seq <= m.last_seq:
                self.totals["seq_dups"] += 1
                return
            self.totals["seq_gaps"] += 1
        m.last_seq = seq
        room = m.room
        if self.window.recording:
            arrivals = room.seq_arrivals.get(seq)
            if arrivals is None:
                arrivals = room.seq_arrivals[seq] = [0.0, 0.0, 0.0]
            arrivals[m.index] = now
        for change in ev.get("changes") or ():
            if change[0] != "parts":
                continue
            pid, value = change[1], change[2]
            if value is None:
                m.known_parts.discard(pid)
                continue
            # Adds carry a unique x in their name (the board settles positions, so the
            # stored x is not the one sent): a new part named like one learnt already
            # means an add was applied twice.
            x = added_x(value.get("name"))
            if x is not None and pid not in m.known_parts and room.learnt.get(x, pid) != pid:
                self.totals["x_dups"] += 1
            m.known_parts.add(pid)
            if x is not None and value.get("owner") == m.role:
                room.learnt.setdefault(x, pid)
                if room.pending_add.get(x) == m.index:
                    del room.pending_add[x]
                    self.reveal(m, pid)

    def on_ack(self, m: Member, frame: dict[str, Any], now: float) -> None:
        cid = frame.get("id")
        waiter = self.waiters.get(cid)  # type: ignore[arg-type]
        if waiter is not None and not waiter.done():
            waiter.set_result("ack")
        m.unacked.pop(cid, None)  # type: ignore[arg-type]
        info = self.cmds.pop(cid, None)  # type: ignore[arg-type]
        if info is None:
            self.totals["unknown_acks"] += 1
            return
        sent, _, _, number = info
        w = self.window
        if number == w.number and w.recording:
            w.lat["ack"].append((now - sent) * 1000.0)
            if self.pb:
                m.room.seq_sent[int(frame["seq"])] = sent
        elif self.pb and "seq" in frame:
            m.room.ignore_seqs.add(int(frame["seq"]))
        revealed = self.reveals.pop(cid, None)  # type: ignore[arg-type]
        if revealed is not None:
            m.room.parts[m.index].append(revealed)
            m.room.extra[m.index].append(revealed)

    # ---- sending ----------------------------------------------------------

    def command(self, m: Member, command: Command) -> str:
        """Send a command now (or, while m is disconnected, when it resumes)."""
        cid = self.next_id()
        op, args = command.op, args_of(command)
        if not self.pb and "x" not in args:
            args["x"] = self.next_x()  # the relay's commands are matched by a unique x
        frame = wire.cmd(cid, op, args)
        now = time.perf_counter()
        w = self.window
        self.cmds[cid] = (now, op, m.index, w.number)
        m.unacked[cid] = frame
        w.sent["cmd"] += 1
        if not self.pb:
            self.pending[args["x"]] = Pending(now, "cmd", m.index, {0, 1, 2})
        ws = m.ws
        if ws is not None:
            self._send(ws, frame)
        return cid

    def _send(self, ws: PushedConnection, frame: bytes,
              unsent: Callable[[], None] | None = None) -> None:
        """Send now if the socket takes it, else in a task, in order; `unsent` is called if
        the connection closed first."""
        if ws.send_now(frame):
            return
        ws.behind += 1
        task = asyncio.get_running_loop().create_task(self._send_behind(ws, frame, unsent))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    @staticmethod
    async def _send_behind(ws: PushedConnection, frame: bytes,
                           unsent: Callable[[], None] | None) -> None:
        try:
            await ws.send(frame)
        except ConnectionClosed:
            if unsent is not None:
                unsent()
        finally:
            ws.behind -= 1

    def reveal(self, m: Member, pid: str) -> None:
        """Reveal a part added during the load; once acked, it can be moved and dragged."""
        self.reveals[self.command(m, PartReveal(id=pid))] = pid

    def drag(self, m: Member, pid: str) -> None:
        x = self.next_x()
        frame = wire.drag(pid, x, self.rng.random())
        ws = m.ws
        if ws is None:
            self.window.counts["drag_skipped_offline"] += 1
            return
        now = time.perf_counter()
        self.pending[x] = Pending(now, "drag", m.index, {i for i in range(3) if i != m.index})
        self.drag_senders[x] = m.index
        self.window.sent["drag"] += 1
        self._send(ws, frame, functools.partial(self._drag_unsent, x))

    def _drag_unsent(self, x: float) -> None:
        self.pending.pop(x, None)
        self.window.sent["drag"] -= 1
        self.window.counts["drag_skipped_offline"] += 1

    def random_command(self, room: Room) -> None:
        index = self.rng.choice(PARTNERS)
        m = room.members[index]
        parts = room.parts[index]
        if not parts:
            return
        roll = self.rng.random()
        if roll < 0.6:
            self.command(m, PartMove(id=self.rng.choice(parts), x=self.next_x(),
                                     y=self.rng.random()))
        elif roll < 0.85:
            self.command(m, PartBlend(id=self.rng.choice(parts), level=self.rng.randint(0, 10)))
        elif len(room.extra[index]) < MAX_EXTRA_PARTS:
            x = self.next_x()
            room.pending_add[x] = index
            self.command(m, PartAdd(name=add_name(x), kind="manager", x=x, y=self.rng.random()))
        else:
            pid = room.extra[index].pop(0)
            if pid in parts:
                parts.remove(pid)
            self.command(m, PartRemove(id=pid))

    # ---- setup ------------------------------------------------------------

    def _create_room(self) -> tuple[str, list[str]]:
        if not self.pb:
            self.idn += 1
            rid = f"w{self.c.worker}r{len(self.rooms)}x{self.idn}"
            return rid, ["s", "s", "s"]
        body = json.dumps({
            "partners": {"a": {"name": "Partner A", "color": "#aa3355"},
                         "b": {"name": "Partner B", "color": "#3355aa"}},
            "therapist_sees_drafts": self.c.therapist_sees_drafts}).encode()
        headers = {"Content-Type": "application/json"}
        if self.c.key:
            headers["Authorization"] = f"Bearer {self.c.key}"
        for attempt in range(20):
            request = urllib.request.Request(f"{self.c.http}/api/rooms", data=body,
                                             headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    doc = json.loads(response.read())
                break
            except urllib.error.HTTPError as error:
                if error.code != 429 or attempt == 19:
                    raise
                time.sleep(0.2 * (attempt + 1))
        links = doc["links"]
        return str(doc["room"]), [links[r].split("#", 1)[1] for r in ROLES]

    async def open_room(self) -> Room:
        rid, secrets = await asyncio.to_thread(self._create_room)
        room = Room(rid)
        room.members = [Member(room, i, secrets[i]) for i in range(3)]
        for m in room.members:
            for attempt in range(5):
                try:
                    await self.connect(m, resume=False)
                    break
                except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError, Refused):
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.2 * (attempt + 1))
            m.task = asyncio.get_running_loop().create_task(self.life(m))
        self.rooms.append(room)
        self.members.extend(room.members)
        return room

    async def setup_rooms(self, rooms: list[Room]) -> None:
        """Therapist moves to stage 3 (parts and blending); each partner adds and
        reveals two parts. Each step is retried if the server refuses it (a busy shared
        machine can time a Redis call out)."""
        if not self.pb:
            for room in rooms:
                room.parts = {i: [f"p{i}-{k}" for k in range(2)] for i in PARTNERS}
            return
        sem = asyncio.Semaphore(64)

        async def one(room: Room) -> None:
            async with sem:
                await self.setup_room(room)

        await asyncio.gather(*(one(room) for room in rooms))

    async def setup_room(self, room: Room) -> None:
        await self.call(room.members[0], StageSet(stage=3), ok=("bad_request",))

        async def add_and_reveal(index: int) -> None:
            x = self.next_x()
            await self.call(room.members[index],
                            PartAdd(name=add_name(x), kind="manager", x=x, y=0.5))
            for _ in range(400):  # the ack can come before the event: up to 20 s
                if x in room.learnt:
                    break
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError("a part added during set-up never arrived")
            pid = room.learnt[x]
            await self.call(room.members[index], PartReveal(id=pid))
            room.parts[index].append(pid)

        await asyncio.gather(*(add_and_reveal(i) for i in PARTNERS for _ in range(2)))

    async def call(self, m: Member, command: Command, ok: tuple[str, ...] = (),
                   attempts: int = 5) -> None:
        """Send a command and wait for its ack; retry on an error (codes in `ok` count as
        done: a retried stage.set that had committed is refused as a no-op)."""
        for attempt in range(attempts):
            cid = self.command(m, command)
            future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            self.waiters[cid] = future
            try:
                outcome = await asyncio.wait_for(future, 30)
            except TimeoutError:
                outcome = "timeout"
            finally:
                self.waiters.pop(cid, None)
            if outcome == "ack" or outcome in ok:
                return
            self.totals[f"setup_retry_{outcome}"] += 1
            m.unacked.pop(cid, None)
            self.cmds.pop(cid, None)
            await asyncio.sleep(0.2 * (attempt + 1))
        raise RuntimeError(f"set-up command {command.op} kept failing ({dict(self.totals)})")

    async def open(self, count: int, concurrency: int = 16) -> dict[str, Any]:
        t0 = time.monotonic()
        sem = asyncio.Semaphore(concurrency)
        opened: list[Room] = []

        async def one() -> None:
            async with sem:
                opened.append(await self.open_room())

        await asyncio.gather(*(one() for _ in range(count)))
        await self.setup_rooms(opened)
        return {"rooms": len(self.rooms), "seconds": time.monotonic() - t0}

    # ---- the measured run -------------------------------------------------

    async def run(self, cmd_rate: float, drag_rate: float, duration: float, drain: float,
                  active: int | None = None, storm: bool = False,
                  fixed: str = "") -> dict[str, Any]:
        """Drive the load for `duration` seconds on the first `active` rooms, then wait
        up to `drain` seconds for every message still in flight.

        The mix (fixed="") is Poisson commands and drag bursts. fixed="cmd" or "drag" is
        the fixed-rate shape: each room sends `part.move` commands (or single drag
        updates) at exactly cmd_rate (drag_rate) per second, one partner at a time (a
        and b take turns each second, half the rooms starting with each)."""
        self.window = Window(self.window.number + 1)
        rooms = self.rooms[: active if active is not None else len(self.rooms)]
        for room in rooms:
            room.seq_arrivals.clear()
            room.seq_sent.clear()
            room.ignore_seqs.clear()
        totals0 = Counter(self.totals)
        heap: list[Due] = []
        n = 0
        start = time.perf_counter()
        end = start + duration
        burst_rate = drag_rate / BURST
        fixed_rate = cmd_rate if fixed == "cmd" else drag_rate
        for number, room in enumerate(rooms):
            if fixed:
                n += 1
                heap.append((start + self.rng.random() / fixed_rate, n, 3, room, None, "",
                             number % 2))
                continue
            if cmd_rate > 0:
                n += 1
                heap.append((start + self.rng.expovariate(cmd_rate), n, 0, room, None, "", 0))
            if burst_rate > 0:
                n += 1
                heap.append((start + self.rng.expovariate(burst_rate), n, 1, room, None, "", 0))
        heapq.heapify(heap)
        self.schedule = Schedule(heap, n, start, end, cmd_rate, burst_rate, fixed_rate, fixed)
        # A collection over thousands of connections' objects takes the generator away
        # for up to 100 ms, sending late and reading late, and Redis, which shares its
        # core, waits as well: none runs until the window's figures are in.
        gc.disable()
        try:
            return await self._drive(rooms, drain, storm, start, totals0)
        finally:
            gc.enable()

    async def _drive(self, rooms: list[Room], drain: float, storm: bool, start: float,
                     totals0: Counter[str]) -> dict[str, Any]:
        sched = self.schedule
        assert sched is not None
        heap, end, w = sched.heap, sched.end, self.window
        timer = PreciseTimer()
        try:
            while heap:
                due = heap[0][0]
                now = time.perf_counter()
                if due >= end or now >= end + 1.0:
                    break
                if due > now:
                    await timer.until(due)
                    continue
                self._pace()
                await asyncio.sleep(0)
        finally:
            self.schedule = None
            timer.close()
        for m in self.members:
            m.dragging = False
        sent_end = time.perf_counter()
        caught_up, delivered = await self._drain(rooms, drain, storm)
        result = self._collect(rooms, sent_end - start)
        result["caught_up_s"] = None if caught_up is None else caught_up - sent_end
        result["delivered_s"] = None if delivered is None else delivered - sent_end
        now = time.perf_counter()
        result["presence_wrong_end"] = sum(
            1 for room in rooms if self.pb and self._settled(room, now)
            for m in room.members if m.presence != EVERYONE)
        result["checks"] = {k: v - totals0.get(k, 0) for k, v in self.totals.items()
                            if v - totals0.get(k, 0)}
        w.recording = False
        return result

    def _pace(self) -> None:
        """Send what is due (up to PACE_AT_MOST messages at a time). The run's loop calls
        it, and so does every frame received, so that a message due while the generator
        reads a batch of frames is not held back until the batch is done."""
        sched = self.schedule
        assert sched is not None
        heap, w = sched.heap, self.window
        now = time.perf_counter()
        for _ in range(PACE_AT_MOST):
            if not heap or heap[0][0] > now or heap[0][0] >= sched.end \
                    or now >= sched.end + 1.0:
                return
            due, _, what, room, member, pid, left = heapq.heappop(heap)
            w.lag.append(max(now - due, 0.0) * 1000.0)
            sched.n += 1
            n = sched.n
            if what == 0:  # a committed command
                self.random_command(room)
                heapq.heappush(heap, (due + self.rng.expovariate(sched.cmd_rate), n, 0, room,
                                      None, "", 0))
            elif what == 1:  # a drag burst starts, by a partner not already dragging
                idle = [room.members[i] for i in PARTNERS
                        if not room.members[i].dragging and room.parts[i]]
                heapq.heappush(heap, (due + self.rng.expovariate(sched.burst_rate), n, 1, room,
                                      None, "", 0))
                if idle:
                    m = self.rng.choice(idle)
                    m.dragging = True
                    sched.n += 1
                    heapq.heappush(heap, (due, sched.n, 2, room, m,
                                          self.rng.choice(room.parts[m.index]), BURST))
                else:
                    w.counts["bursts_skipped_busy"] += 1
            elif what == 3:  # the fixed-rate shape: this room's next message
                index = PARTNERS[(int(due - sched.start) + left) % 2]
                sender = room.members[index]
                if room.parts[index]:
                    pid = self.rng.choice(room.parts[index])
                    if sched.fixed == "cmd":
                        self.command(sender, PartMove(id=pid, x=self.next_x(),
                                                      y=self.rng.random()))
                    else:
                        self.drag(sender, pid)
                heapq.heappush(heap, (due + 1.0 / sched.fixed_rate, n, 3, room, None, "",
                                      left))
            else:  # the next update of a burst
                assert member is not None
                if pid in room.parts[member.index]:
                    self.drag(member, pid)
                if left > 1:
                    heapq.heappush(heap, (due + 1.0 / BURST_HZ, n, 2, room, member, pid,
                                          left - 1))
                else:
                    member.dragging = False

    def _outstanding(self, rooms: list[Room], in_flight: bool = True,
                     unacked: bool = True) -> int:
        """Messages still expected; in_flight=False leaves out drags (and relay commands),
        which a killed server may lose for good; unacked=False leaves out commands not
        committed yet (the members only lack what was committed)."""
        missing = len(self.pending) if in_flight else 0
        for room in rooms:
            for m in room.members:
                missing += len(m.unacked) if unacked else 0
            if self.pb:
                for seq in room.seq_sent:
                    arrivals = room.seq_arrivals.get(seq)
                    if arrivals is None or not all(arrivals):
                        missing += 1
        return missing

    async def _drain(self, rooms: list[Room], drain: float,
                     storm: bool) -> tuple[float | None, float | None]:
        """Wait until nothing is outstanding. Returns when that was (perf_counter, or None),
        and when every member first had every event committed so far (resent commands
        may still be waiting for their commit then)."""
        deadline = time.monotonic() + drain
        delivered: float | None = None
        while time.monotonic() < deadline:
            if storm and any(m.ws is None and m.dead is None for r in rooms for m in r.members):
                await asyncio.sleep(0.01)
                continue
            if delivered is None and self._outstanding(rooms, not storm, unacked=False) == 0:
                delivered = time.perf_counter()
            if self._outstanding(rooms, in_flight=not storm) == 0:
                return time.perf_counter(), delivered
            await asyncio.sleep(0.01)
        return None, delivered

    def _collect(self, rooms: list[Room], seconds: float) -> dict[str, Any]:
        w = self.window
        lost: Counter[str] = Counter()
        for x, p in self.pending.items():
            lost[p.kind] += len(p.expect)
            self.expired.add(x)
        self.pending.clear()
        waiting = {cid for r in rooms for m in r.members for cid in m.unacked}
        unacked = len(waiting - self.unacked_counted)
        self.unacked_counted = waiting
        unexpected = 0
        details: list[str] = []  # a few examples of what went wrong, for debugging
        if self.pb:
            for room in rooms:
                for seq, sent in room.seq_sent.items():
                    arrivals = room.seq_arrivals.get(seq) or [0.0, 0.0, 0.0]
                    for index, t in enumerate(arrivals):
                        if t:
                            w.lat["cmd"].append((t - sent) * 1000.0)
                        else:
                            lost["cmd"] += 1
                            if len(details) < 10:
                                m = room.members[index]
                                details.append(f"lost seq {seq} at {m.role} (last seen "
                                               f"{m.last_seq}, drops {m.drops})")
                for seq in room.seq_arrivals:
                    if seq not in room.seq_sent and seq not in room.ignore_seqs:
                        unexpected += 1
                        if len(details) < 20:
                            details.append(f"unexpected seq {seq}")
        resumed = [m.resumed_at for r in rooms for m in r.members]
        return {
            "seconds": seconds,
            "lat": w.lat,
            "lag": w.lag,
            "sent": dict(w.sent),
            "lost": dict(lost),
            "unacked": unacked,
            "unexpected_seqs": unexpected,
            "counts": dict(w.counts),
            "connections": sum(1 for r in rooms for m in r.members if m.ws is not None),
            "dead": sum(1 for r in rooms for m in r.members if m.dead is not None),
            "resumed_at": resumed,
            "handler_error": self.handler_error,
            "details": details,
        }

    async def close(self) -> None:
        self.closing = True
        for m in self.members:
            if m.ws is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(m.ws.close(), 3)
        for m in self.members:
            if m.task is not None:
                m.task.cancel()
        await asyncio.gather(*(m.task for m in self.members if m.task is not None),
                             return_exceptions=True)

    # ---- serving the orchestrator ------------------------------------------

    async def serve(self, conn: Connection) -> None:
        while True:
            request = await asyncio.to_thread(conn.recv)
            op, kwargs = request
            try:
                if op == "open":
                    reply: Any = await self.open(**kwargs)
                elif op == "run":
                    reply = await self.run(**kwargs)
                elif op == "reconnect":
                    self.reconnect = bool(kwargs["enabled"])
                    reply = {}
                elif op == "close":
                    await self.close()
                    await asyncio.to_thread(conn.send, ("ok", {}))
                    return
                else:
                    raise ValueError(op)
                await asyncio.to_thread(conn.send, ("ok", reply))
            except Exception:
                await asyncio.to_thread(conn.send, ("error", traceback.format_exc()))


def worker_main(conn: Connection, config: Config) -> None:
    """Entry point of a generator process."""
    try:
        import uvloop
        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    precise_wakeups()
    runner(Worker(config).serve(conn))


# ---- the orchestrator's side -----------------------------------------------

class LoadGen:
    """Worker processes sharing the rooms of one benchmarked server."""

    def __init__(self, kind: str, ports: list[int], workers: int = 2, key: str = "",
                 seed: int = 1) -> None:
        self.kind = kind
        self.conns: list[Connection] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self.rooms = [0] * workers
        for i in range(workers):
            parent, child = socket.socketpair()
            config = Config(kind=kind, ports=ports, worker=i, workers=workers, key=key,
                            seed=seed)
            argv = [sys.executable, "-m", "bench.load", "--fd", str(child.fileno()),
                    "--config", json.dumps(dataclasses.asdict(config))]
            proc = subprocess.Popen(argv, pass_fds=[child.fileno()], cwd=ROOT,
                                    stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
            child.close()
            self.conns.append(Connection(parent.detach()))
            self.procs.append(proc)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def send(self, requests: list[tuple[str, dict[str, Any]]]) -> None:
        for conn, request in zip(self.conns, requests, strict=True):
            conn.send(request)

    def gather(self, timeout: float) -> list[Any]:
        deadline = time.monotonic() + timeout
        replies: list[Any] = []
        errors: list[str] = []
        for conn in self.conns:
            if not conn.poll(max(deadline - time.monotonic(), 0.01)):
                raise TimeoutError(f"a load worker did not answer within {timeout:.0f} s")
            status, reply = conn.recv()
            if status == "error":
                errors.append(reply)
            replies.append(reply)
        if errors:
            raise RuntimeError("load worker failed:\n" + "\n".join(errors))
        return replies

    def call(self, op: str, kwargs: list[dict[str, Any]], timeout: float) -> list[Any]:
        self.send([(op, k) for k in kwargs])
        return self.gather(timeout)

    def open(self, total: int, timeout: float = 300) -> float:
        """Open rooms until there are `total`, spread evenly; returns seconds taken."""
        want = [total // len(self.conns) + (1 if i < total % len(self.conns) else 0)
                for i in range(len(self.conns))]
        add = [max(w - have, 0) for w, have in zip(want, self.rooms, strict=True)]
        t0 = time.monotonic()
        self.call("open", [{"count": a} for a in add], timeout)
        self.rooms = [have + a for have, a in zip(self.rooms, add, strict=True)]
        return time.monotonic() - t0

    def run_requests(self, **kwargs: Any) -> list[tuple[str, dict[str, Any]]]:
        return [("run", dict(kwargs)) for _ in self.conns]

    def run(self, **kwargs: Any) -> dict[str, Any]:
        timeout = kwargs["duration"] + kwargs["drain"] + 120
        self.send(self.run_requests(**kwargs))
        return merge(self.gather(timeout))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call("close", [{} for _ in self.conns], 60)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for conn in self.conns:
            conn.close()


def merge(replies: list[dict[str, Any]]) -> dict[str, Any]:
    """One result out of every worker's."""
    out: dict[str, Any] = {
        "seconds": max(r["seconds"] for r in replies),
        "lat": {k: [v for r in replies for v in r["lat"][k]] for k in ("cmd", "ack", "drag")},
        "lag": [v for r in replies for v in r["lag"]],
        "resumed_at": [v for r in replies for v in r["resumed_at"]],
        "handler_error": next((r["handler_error"] for r in replies if r["handler_error"]), None),
        "details": [v for r in replies for v in r["details"]],
    }
    for key in ("sent", "lost", "counts", "checks"):
        total: Counter[str] = Counter()
        for r in replies:
            total.update(r[key])
        out[key] = dict(total)
    for key in ("unacked", "unexpected_seqs", "connections", "dead", "presence_wrong_end"):
        out[key] = sum(r.get(key, 0) for r in replies)
    for key in ("caught_up_s", "delivered_s"):
        times: list[float] = [r[key] for r in replies if r.get(key) is not None]
        out[key] = max(times) if len(times) == len(replies) else None
    return out


def main(argv: list[str] | None = None) -> None:
    """A generator process, started by LoadGen: `python -m bench.load --fd N --config JSON`."""
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    worker_main(Connection(args.fd), Config(**json.loads(args.config)))


if __name__ == "__main__":
    main()
