"""One person's live session: connect, mirror the board, send commands, survive drops.

Theory of operation. One background task owns the websocket. It connects,
says hello (with the mirror's epoch and seq when it has one), takes the
welcome (a full view, or the replay of the events it missed), resends every
command that has no ack yet under its original id, and then reads frames
until the connection ends. It follows the one client behaviour of
docs/protocol.md (section 12, "What a client does"), as the browser's client
does: an event the mirror has already is ignored; one that leaves a gap is
never applied, the client drops the connection and resumes at once; after a
close, rooms.errors.CLOSES says whether to stop (the session ended, the link is
not valid, the room was lost), wait or resume, with the backoff of
rooms.protocol.BACKOFF. close() stops it too.

`send()` may be called at any time, connected or not: the command waits in
the pending table and goes out with the next resend. It returns once both
its ack and the event of the acked seq have reached the mirror, so after
`await c.add_part(...)` the caller's own `c.view` already shows the part.

    async with Client(link) as alex:
        part = await alex.add_part("The Planner", "manager", x=0.2, y=0.3)
        await alex.reveal(part)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Origin, Subprotocol

from rooms import wire
from rooms.actions import parse_args
from rooms.errors import then_after
from rooms.views import apply_event

from .backoff import backoff
from .errors import CLOSE_ERRORS, ClientClosed, ConnectionLost, SessionEnded, SessionLost, error_for
from .links import JoinLink, parse_link

View = dict[str, Any]
Frame = dict[str, Any]
T = TypeVar("T")

AUTO: Final = "auto"
RECENT_EVENTS: Final = 4096
MAX_FRAME: Final = 16 * 1024 * 1024
KEEP_ANOMALIES: Final = 1000


class _Resync(Exception):
    """Drop this connection and resume; with fresh=True ask for a whole new view."""

    def __init__(self, fresh: bool = False) -> None:
        super().__init__()
        self.fresh = fresh


class _End:
    pass


@dataclass(frozen=True)
class _Ended:
    """How one connection ended: welcomed or not, the server's close code (None when no
    connection was made or no close frame came), and whether this client dropped it to
    resume at once because its mirror was out of step."""

    welcomed: bool
    close_code: int | None
    resync: bool = False


_END: Final = _End()


@dataclass(eq=False)
class _Pending:
    id: str
    op: str
    frame: bytes
    future: asyncio.Future[Frame]
    sent_on: int = -1  # number of the connection it was last sent on
    seq: int | None = None  # the acked seq


class Subscription(AsyncIterator[T]):
    """An async iterator fed by the client from the moment it was created.

    It ends when the client is closed and raises the session's terminal error
    (SessionEnded, LinkNotValid, SessionLost, ConnectionLost) otherwise.
    Unread items queue up without bound: read what you subscribe to, or close it.
    """

    def __init__(self, owner: list[Subscription[T]]) -> None:
        self._queue: asyncio.Queue[T | _End] = asyncio.Queue()
        self._owner = owner
        self._error: BaseException | None = None
        owner.append(self)

    def _put(self, item: T) -> None:
        self._queue.put_nowait(item)

    def _finish(self, error: BaseException | None) -> None:
        self._error = error
        self._queue.put_nowait(_END)

    def close(self) -> None:
        with contextlib.suppress(ValueError):
            self._owner.remove(self)

    def __aiter__(self) -> Subscription[T]:
        return self

    async def __anext__(self) -> T:
        item = await self._queue.get()
        if isinstance(item, _End):
            self._queue.put_nowait(item)  # stay finished
            self.close()
            if self._error is not None:
                raise self._error
            raise StopAsyncIteration
        return item


class Client:
    """A live connection for one join link, with a local mirror of that viewer's board.

    Attributes kept up to date: role, room, epoch, view (None before the first
    welcome), presence ({"therapist": n, "a": n, "b": n}), seq, drags (latest
    drag frame per part), errors (error frames without a command id),
    anomalies (protocol surprises: gaps, duplicates, bad frames; empty when all
    is well), reconnects, raw_frames (every binary frame, when record=True).
    """

    def __init__(
        self,
        link: str | JoinLink,
        *,
        resume: bool = True,
        record: bool = False,
        origin: str | None = AUTO,
        delays: Callable[[], Iterator[float]] = backoff,
        give_up_after: float | None = 120.0,
        open_timeout: float = 10.0,
        ws_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.link = link if isinstance(link, JoinLink) else parse_link(link)
        self.room: str = self.link.room
        self.role: str | None = None
        self.epoch: str | None = None
        self.view: View | None = None
        self.presence: dict[str, int] = {}
        self.drags: dict[str, Frame] = {}
        self.errors: list[Frame] = []
        self.anomalies: list[str] = []
        self.reconnects = 0
        self.record = record
        self.raw_frames: list[bytes] = []
        self._resume = resume
        self._origin = self.link.origin if origin == AUTO else origin
        self._delays = delays
        self._give_up_after = give_up_after
        self._open_timeout = open_timeout
        self._ws_options = dict(ws_options or {})
        self._ws: ClientConnection | None = None
        self._conn_no = 0
        self._ready = False  # welcomed and every pending command (re)sent on _ws
        self._fresh = False  # next hello asks for a whole view, not a replay
        self._ended_seen = False
        self._pending: dict[str, _Pending] = {}
        self._recent: OrderedDict[int, Frame] = OrderedDict()
        self._frame_subs: list[Subscription[Frame]] = []
        self._event_subs: list[Subscription[Frame]] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._welcomed: asyncio.Future[None] | None = None
        self._terminal: BaseException | None = None
        self._closing = False

    # ------------------------------------------------------------ life

    @classmethod
    async def connect(cls, link: str | JoinLink, *, resume: bool = True,
                      **options: Any) -> Client:
        """Connect and wait for the first welcome (raises LinkNotValid, ConnectionLost...)."""
        client = cls(link, resume=resume, **options)
        await client.start()
        return client

    async def start(self) -> None:
        if self._task is None:
            self._welcomed = asyncio.get_running_loop().create_future()
            self._task = asyncio.create_task(self._run(), name=f"partsboard-client-{self.room}")
        assert self._welcomed is not None
        try:
            await asyncio.shield(self._welcomed)
        except BaseException:
            await self.close()
            raise

    async def __aenter__(self) -> Client:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the websocket cleanly and stop; pending sends raise ClientClosed."""
        if self._closing:
            if self._task is not None and not self._task.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(self._task)
            return
        self._closing = True
        ws = self._ws
        task = self._task
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
            if task is not None:
                # Reading the close, the task stops by itself.
                await asyncio.wait({task}, timeout=self._open_timeout)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._terminal is None:
            self._fail(ClientClosed())

    def board(self) -> dict[str, Any]:
        """A plain, deep copy of this viewer's board (collections, counts, seq), in the
        shapes the wire gives: equal to a fresh snapshot's when the mirror is right."""
        if self.view is None:
            raise ConnectionLost("There is no board before the first welcome.")
        board = {key: self.view[key] for key in ("colls", "counts", "seq")}
        copied: dict[str, Any] = msgspec.msgpack.decode(msgspec.msgpack.encode(board))
        return copied

    @property
    def seq(self) -> int:
        return int(self.view["seq"]) if self.view is not None else 0

    @property
    def connected(self) -> bool:
        return self._ready

    @property
    def terminal(self) -> BaseException | None:
        """Why this client stopped (None while it runs)."""
        return self._terminal

    def decoded_frames(self) -> list[Frame]:
        """Every frame received so far, decoded (needs record=True)."""
        return [wire.decode_server(data) for data in self.raw_frames]

    @property
    def pending(self) -> int:
        """Commands sent or waiting to be sent that have no answer yet."""
        return len(self._pending)

    # ------------------------------------------------------------ sending

    async def send(self, op: str, /, **args: Any) -> Frame:
        """Validate locally, send with a fresh id, return the viewer's event of the acked seq.

        A local validation failure raises before anything is sent; a refusal
        by the server raises the RoomError subclass of its code.
        """
        parse_args(op, args)
        return await self._submit(op, args)

    async def send_unchecked(self, op: str, args: Mapping[str, Any]) -> Frame:
        """Like send() without local validation (for testing the server's own checks)."""
        return await self._submit(op, dict(args))

    async def send_raw(self, data: bytes | str) -> None:
        """Send any frame as is on the current connection (tests of bad input)."""
        if self._ws is None:
            raise ConnectionLost("Not connected.")
        await self._ws.send(data)

    async def drag(self, part: str, x: float, y: float) -> None:
        """An ephemeral live drag (not acked, not stored); dropped while disconnected."""
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError("x and y are between 0 and 1")
        ws = self._ws
        if self._ready and ws is not None:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(wire.drag(part, x, y))

    async def _submit(self, op: str, args: dict[str, Any]) -> Frame:
        if self._terminal is not None:
            raise self._terminal
        command_id = uuid.uuid4().hex
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        pending = _Pending(command_id, op, wire.cmd(command_id, op, args), future)
        self._pending[command_id] = pending
        try:
            ws = self._ws
            if self._ready and ws is not None:
                pending.sent_on = self._conn_no
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(pending.frame)
            return await future
        finally:
            self._pending.pop(command_id, None)

    # ------------------------------------------------------------ reading

    def frames(self) -> Subscription[Frame]:
        """Every decoded server frame from now on (welcome, ev, ack, error, presence...)."""
        return Subscription(self._frame_subs)

    def events(self) -> Subscription[Frame]:
        """Every event applied to the mirror from now on, replayed ones included, in order."""
        return Subscription(self._event_subs)

    async def wait_for(self, predicate: Callable[[View], object],
                       timeout: float = 10.0) -> View:  # noqa: ASYNC109 (tests read better)
        """Wait until predicate(view) is true; return the view (TimeoutError otherwise)."""
        async with asyncio.timeout(timeout):
            while True:
                changed = self._changed
                if self.view is not None and predicate(self.view):
                    return self.view
                if self._terminal is not None:
                    raise self._terminal
                await changed.wait()

    async def wait_seq(self, seq: int, timeout: float = 10.0) -> View:  # noqa: ASYNC109
        return await self.wait_for(lambda view: view["seq"] >= seq, timeout)

    async def wait_closed(self, timeout: float = 10.0) -> BaseException:  # noqa: ASYNC109
        """Wait until the session stops; return why (SessionEnded, LinkNotValid...)."""
        async with asyncio.timeout(timeout):
            while self._terminal is None:
                await self._changed.wait()
        return self._terminal

    # ------------------------------------------------------------ the connection task

    async def _run(self) -> None:
        delays: Iterator[float] | None = None
        failing_since: float | None = None
        try:
            while True:
                ended = await self._one_connection()
                if self._closing:
                    return
                if ended.welcomed:
                    delays, failing_since = None, None
                if ended.resync:
                    self.reconnects += 1
                    continue  # at once: only this client's mirror was out of step
                then = then_after(ended.close_code)
                if not self._resume and then != "wait":
                    raise ConnectionLost(close_code=ended.close_code)
                if delays is None:
                    delays = self._delays()
                now = time.monotonic()
                failing_since = failing_since if failing_since is not None else now
                if self._give_up_after is not None and now - failing_since > self._give_up_after:
                    message = "Gave up reconnecting." if self.view else "Could not connect."
                    raise ConnectionLost(message, close_code=ended.close_code)
                await asyncio.sleep(next(delays))
                self.reconnects += 1
        except asyncio.CancelledError:
            raise
        except Exception as error:  # every way out reaches the waiters
            self._fail(error)

    def _hello(self) -> bytes:
        resume = None
        if self.view is not None and self.epoch is not None and not self._fresh:
            resume = (self.epoch, self.seq)
        return wire.hello(self.room, self.link.secret, resume)

    async def _one_connection(self) -> _Ended:
        """One connection's life and how it ended. Raises when the session is over."""
        self._conn_no += 1
        conn_no = self._conn_no
        options: dict[str, Any] = {
            "subprotocols": [Subprotocol(wire.SUBPROTOCOL)],
            "compression": None,
            "max_size": MAX_FRAME,
            "open_timeout": self._open_timeout,
            "origin": Origin(self._origin) if self._origin else None,
            **self._ws_options,
        }
        try:
            ws = await connect(self.link.ws_url, **options)
        except (OSError, InvalidHandshake, TimeoutError):
            return _Ended(welcomed=False, close_code=None)
        welcomed = resync = False
        async with ws:
            self._ws = ws
            if ws.subprotocol != wire.SUBPROTOCOL:
                self._anomaly(f"server chose subprotocol {ws.subprotocol!r}")
            try:
                await ws.send(self._hello())
                async with asyncio.timeout(self._open_timeout):
                    welcome = await self._receive_welcome(ws)
                self._on_welcome(welcome)
                await self._resend(ws, conn_no)
                self._ready = welcomed = True
                if self._welcomed is not None and not self._welcomed.done():
                    self._welcomed.set_result(None)
                self._notify()
                async for data in ws:
                    self._on_frame(data)
            except ConnectionClosed:
                pass
            except TimeoutError:
                self._anomaly("no welcome in time")
            except _Resync as out_of_step:
                self._fresh = self._fresh or out_of_step.fresh
                resync = True
            finally:
                self._ready = False
                self._ws = None
        code = ws.close_code
        if self._closing:
            return _Ended(welcomed, code)
        if self._ended_seen:
            raise SessionEnded()
        if code is not None and then_after(code) == "stop" and not resync:
            raise CLOSE_ERRORS[code]()
        return _Ended(welcomed, code, resync)

    async def _receive_welcome(self, ws: ClientConnection) -> Frame:
        while True:
            frame = self._decode(await ws.recv())
            if frame is None:
                continue
            kind = frame.get("t")
            if kind == "welcome":
                return frame
            if kind == "error":
                self._remember_error(frame)
            elif kind == "ended":
                self._ended_seen = True
            elif kind == "presence":
                self._on_presence(frame)
            else:
                self._anomaly(f"{kind!r} frame before the welcome")

    async def _resend(self, ws: ClientConnection, conn_no: int) -> None:
        # Commands queued while this loop awaits are picked up by the next round; once
        # nothing is left, _ready is set with no await in between, so none falls through.
        while True:
            todo = [p for p in self._pending.values() if p.seq is None and p.sent_on != conn_no]
            if not todo:
                return
            for pending in todo:
                if pending.id in self._pending:
                    pending.sent_on = conn_no
                    await ws.send(pending.frame)

    # ------------------------------------------------------------ frames

    def _decode(self, data: bytes | str) -> Frame | None:
        if isinstance(data, str):
            self._anomaly("text frame from the server")
            return None
        if self.record:
            self.raw_frames.append(bytes(data))
        try:
            frame = wire.decode_server(data)
        except Exception:
            self._anomaly("undecodable frame from the server")
            return None
        for sub in self._frame_subs:
            sub._put(frame)
        return frame

    def _on_frame(self, data: bytes | str) -> None:
        frame = self._decode(data)
        if frame is None:
            return
        kind = frame.get("t")
        if kind == "ev":
            self._on_event(frame)
        elif kind == "ack":
            self._on_ack(frame)
        elif kind == "error":
            self._on_error(frame)
        elif kind == "presence":
            self._on_presence(frame)
        elif kind == "drag":
            part = frame.get("part")
            if isinstance(part, str):
                self.drags[part] = frame
                self._notify()
        elif kind == "ended":
            self._ended_seen = True
        else:
            self._anomaly(f"unexpected {kind!r} frame")

    def _on_welcome(self, frame: Frame) -> None:
        if frame.get("room") != self.room:
            raise SessionLost("The server answered for another room.")
        epoch = frame.get("epoch")
        if self.epoch is not None and epoch != self.epoch:
            raise SessionLost()
        if self.role is not None and frame.get("role") != self.role:
            self._anomaly("the role changed across a reconnect")
        self.epoch = epoch
        self.role = frame.get("role")
        if isinstance(frame.get("presence"), dict):
            self.presence = frame["presence"]
        view = frame.get("view")
        replay = frame.get("replay")
        if view is not None:
            self.view = view
            self._fresh = False
            self._resolve_reached()
        elif replay is not None or self.view is not None:
            if self.view is None:
                self._anomaly("a replay without a view to apply it to")
                raise _Resync(fresh=True)
            for event in replay or ():
                try:
                    self._apply(dict(event, t="ev"))
                except _Resync:
                    raise _Resync(fresh=True) from None
        else:
            self._anomaly("a welcome with neither view nor replay")
            raise _Resync(fresh=True)
        if isinstance(frame.get("seq"), int) and frame["seq"] != self.seq:
            self._anomaly(f"welcome seq {frame['seq']} but the mirror is at {self.seq}")
        self._notify()

    def _on_event(self, frame: Frame) -> None:
        if self.view is None:
            self._anomaly("an event before any view")
            raise _Resync(fresh=True)
        self._apply(frame)

    def _apply(self, event: Frame) -> None:
        assert self.view is not None
        seq = event.get("seq")
        expected = self.seq + 1
        if isinstance(seq, int) and seq < expected:
            self._anomaly(f"duplicate: expected seq {expected}, got {seq}")
            return  # the mirror has it already
        if seq != expected:
            self._anomaly(f"gap: expected seq {expected}, got {seq}")
            raise _Resync()
        apply_event(self.view, event)
        self._recent[expected] = event
        while len(self._recent) > RECENT_EVENTS:
            self._recent.popitem(last=False)
        for sub in self._event_subs:
            sub._put(event)
        for pending in [p for p in self._pending.values() if p.seq == expected]:
            self._resolve(pending)
        self._notify()

    def _on_ack(self, frame: Frame) -> None:
        pending = self._pending.get(str(frame.get("id")))
        seq = frame.get("seq")
        if pending is None or not isinstance(seq, int):
            return  # an answer to a command nobody waits for any more
        pending.seq = seq
        if seq <= self.seq:
            self._resolve(pending)

    def _on_error(self, frame: Frame) -> None:
        pending = self._pending.get(str(frame.get("id")))
        if pending is None:
            self._remember_error(frame)
            return
        error = error_for(frame.get("code"), frame.get("message"), frame.get("field"))
        self._pending.pop(pending.id, None)
        if not pending.future.done():
            pending.future.set_exception(error)

    def _on_presence(self, frame: Frame) -> None:
        if isinstance(frame.get("presence"), dict):
            self.presence = frame["presence"]
            self._notify()

    def _remember_error(self, frame: Frame) -> None:
        self.errors.append(frame)
        del self.errors[:-KEEP_ANOMALIES]
        self._notify()

    def _resolve(self, pending: _Pending) -> None:
        assert pending.seq is not None
        event = self._recent.get(pending.seq)
        if event is None:
            # The mirror was replaced by a whole view that already holds this change.
            event = {"t": "ev", "seq": pending.seq, "op": pending.op, "changes": [],
                     "resynced": True}
        self._pending.pop(pending.id, None)
        if not pending.future.done():
            pending.future.set_result(event)

    def _resolve_reached(self) -> None:
        for pending in list(self._pending.values()):
            if pending.seq is not None and pending.seq <= self.seq:
                self._resolve(pending)

    def _anomaly(self, what: str) -> None:
        self.anomalies.append(what)
        del self.anomalies[:-KEEP_ANOMALIES]

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _fail(self, error: BaseException) -> None:
        if self._terminal is not None:
            return
        self._terminal = error
        for pending in list(self._pending.values()):
            if not pending.future.done():
                pending.future.set_exception(error)
        self._pending.clear()
        if self._welcomed is not None and not self._welcomed.done():
            self._welcomed.set_exception(error)
            self._welcomed.exception()  # retrieved here; start() re-raises it
        quiet = isinstance(error, ClientClosed)
        for sub in [*self._frame_subs, *self._event_subs]:
            sub._finish(None if quiet else error)
        self._notify()

    # ------------------------------------------------------------ typed commands

    @staticmethod
    def _new_id(event: Frame, coll: str) -> str:
        for change in event.get("changes", ()):
            if change[0] == coll and change[2] is not None:
                return str(change[1])
        raise LookupError(f"the event of seq {event.get('seq')} names no new {coll} item")

    async def _add(self, coll: str, op: str, args: dict[str, Any],
                   matches: Callable[[dict[str, Any]], bool]) -> str:
        parse_args(op, args)
        before = set((self.view or {}).get("colls", {}).get(coll, {}))
        event = await self._submit(op, args)
        if not event.get("resynced"):
            return self._new_id(event, coll)
        # The view was replaced on a resume: find the new item in it instead.
        items = (self.view or {}).get("colls", {}).get(coll, {})
        found = [key for key, value in items.items() if key not in before and matches(value)]
        if len(found) != 1:
            raise LookupError(f"the new {coll} item could not be told apart after a resync")
        return str(found[0])

    # partners, stage 1 on
    async def ack_agreement(self, agreement_id: str) -> Frame:
        return await self.send("agreement.ack", id=agreement_id)

    async def raise_pause(self) -> Frame:
        return await self.send("pause.raise")

    async def raise_overwhelm(self) -> Frame:
        return await self.send("overwhelm.raise")

    async def set_ready(self, ready: bool = True) -> Frame:
        return await self.send("ready.set", ready=ready)

    # parts, stage 2 on
    async def add_part(self, name: str, kind: str = "unsure", x: float = 0.5,
                       y: float = 0.5) -> str:
        """Add a private part; returns its id."""
        return await self._add(
            "parts", "part.add", {"name": name, "kind": kind, "x": x, "y": y},
            lambda v: v.get("owner") == self.role and v.get("kind") == kind
            and v.get("x") == x and v.get("y") == y,
        )

    async def edit_part(self, part_id: str, *, name: str | None = None,
                        kind: str | None = None) -> Frame:
        args: dict[str, Any] = {"id": part_id}
        if name is not None:
            args["name"] = name
        if kind is not None:
            args["kind"] = kind
        return await self.send("part.edit", **args)

    async def move(self, part_id: str, x: float, y: float) -> Frame:
        return await self.send("part.move", id=part_id, x=x, y=y)

    async def remove_part(self, part_id: str) -> Frame:
        return await self.send("part.remove", id=part_id)

    async def reveal(self, part_id: str) -> Frame:
        return await self.send("part.reveal", id=part_id)

    async def reveal_all(self) -> Frame:
        return await self.send("part.reveal_all")

    async def withdraw(self, part_id: str) -> Frame:
        return await self.send("part.withdraw", id=part_id)

    # stage 3 on
    async def blend(self, part_id: str, level: int) -> Frame:
        return await self.send("part.blend", id=part_id, level=level)

    async def add_link(self, kind: Literal["protects", "reacts_to"], source: str,
                       target: str) -> str:
        """Draw a link from one of your parts; returns its id."""
        return await self._add(
            "links", "link.add", {"kind": kind, "source": source, "target": target},
            lambda v: (v.get("kind"), v.get("source"), v.get("target")) == (kind, source, target),
        )

    async def remove_link(self, link_id: str) -> Frame:
        return await self.send("link.remove", id=link_id)

    # stage 4 on
    async def set_checkin(self, scores: Mapping[str, int], note: str = "") -> Frame:
        return await self.send("checkin.set", scores=dict(scores), note=note)

    async def reveal_checkin(self) -> Frame:
        return await self.send("checkin.reveal")

    async def withdraw_checkin(self) -> Frame:
        return await self.send("checkin.withdraw")

    # stage 5
    async def set_need(self, part_id: str, text: str) -> Frame:
        return await self.send("need.set", part=part_id, text=text)

    async def remove_need(self, part_id: str) -> Frame:
        return await self.send("need.remove", part=part_id)

    async def make_request(self, part_id: str, text: str) -> Frame:
        return await self.send("request.make", part=part_id, text=text)

    async def answer_request(self, part_id: str,
                             answer: Literal["yes", "not_yet", "lets_talk"],
                             note: str = "") -> Frame:
        return await self.send("request.answer", part=part_id, answer=answer, note=note)

    # therapist
    async def set_stage(self, stage: int, confirm: bool = False) -> Frame:
        return await self.send("stage.set", stage=stage, confirm=confirm)

    async def add_agreement(self, text: str) -> str:
        """Write an agreement; returns its id."""
        return await self._add("agreements", "agreement.add", {"text": text},
                               lambda v: not v.get("acks"))

    async def edit_agreement(self, agreement_id: str, text: str) -> Frame:
        return await self.send("agreement.edit", id=agreement_id, text=text)

    async def remove_agreement(self, agreement_id: str) -> Frame:
        return await self.send("agreement.remove", id=agreement_id)

    async def spotlight(self, part_id: str | None) -> Frame:
        return await self.send("spotlight.set", part=part_id)

    async def freeze(self, frozen: bool = True) -> Frame:
        return await self.send("freeze.set", frozen=frozen)

    async def clear_pause(self) -> Frame:
        return await self.send("pause.clear")

    async def clear_overwhelm(self, partner: Literal["a", "b"]) -> Frame:
        return await self.send("overwhelm.clear", partner=partner)

    async def add_note(self, text: str) -> str:
        """Write a private therapist note; returns its id."""
        return await self._add("notes", "note.add", {"text": text}, lambda v: True)

    async def edit_note(self, note_id: str, text: str) -> Frame:
        return await self.send("note.edit", id=note_id, text=text)

    async def remove_note(self, note_id: str) -> Frame:
        return await self.send("note.remove", id=note_id)

    async def update_partner(self, partner: Literal["a", "b"], *, name: str | None = None,
                             color: str | None = None) -> Frame:
        args: dict[str, Any] = {"partner": partner}
        if name is not None:
            args["name"] = name
        if color is not None:
            args["color"] = color
        return await self.send("partner.update", **args)
