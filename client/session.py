"""One person's live session: connect, mirror the board, send commands, survive drops.

Theory of operation. One background task owns the websocket. It connects,
says hello (with the mirror's epoch and seq when it has one), takes the
welcome (a full view, or the replay of the events it missed), resends every
command that has no ack yet under its original id, and then reads frames
until the connection ends. It follows the one client behaviour of
docs/protocol.md (section 12, "What a client does"), as the browser's client
does: the mirror (client/mirror.py) applies events in order and says when the
connection must resume; after a close, rooms.errors.CLOSES says whether to stop
(the session ended, the link is not valid, the room was lost), wait or resume,
with the backoff of rooms.protocol.BACKOFF. close() stops it too.

Commands are the structs of rooms.actions, one place for each command's
arguments. `run()` (or `send(op, **args)`) may be called at any time, connected
or not: the command waits in the pending table and goes out with the next
resend (and again, under the same id, after the pause a `busy` answer asks
for). It returns once both its ack and the event of the acked seq have
reached the mirror, so afterwards the caller's own `view` already shows it;
`create()` returns the id of the item a command made.

    async with Client(link) as alex:
        part = await alex.create(PartAdd(name="The Planner", kind="manager"))
        await alex.run(PartReveal(id=part))
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Origin, Subprotocol

from rooms import wire
from rooms.actions import Command, args_of, parse_args
from rooms.errors import Busy, then_after

from .backoff import backoff
from .errors import CLOSE_ERRORS, ClientClosed, ConnectionLost, SessionEnded, error_for
from .links import JoinLink, parse_link
from .mirror import Frame, Mirror, OutOfStep, View
from .subscription import Subscription

AUTO: Final = "auto"
MAX_FRAME: Final = 16 * 1024 * 1024
KEEP_ANOMALIES: Final = 1000
MAX_RETRY_AFTER: Final = 30.0  # seconds: a longer pause asked for is taken as the default


@dataclass(frozen=True)
class _Ended:
    """How one connection ended: welcomed or not, the server's close code (None when no
    connection was made or no close frame came), and whether this client dropped it to
    resume at once because its mirror was out of step."""

    welcomed: bool
    close_code: int | None
    resync: bool = False


@dataclass(eq=False)
class _Pending:
    id: str
    op: str
    frame: bytes
    future: asyncio.Future[Frame]
    sent_on: int = -1  # number of the connection it was last sent on
    seq: int | None = None  # the acked seq


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
        self.mirror = Mirror(self.room, applied=self._applied, anomaly=self._anomaly)
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
        self._ended_seen = False
        self._pending: dict[str, _Pending] = {}
        self._sends: set[asyncio.Task[None]] = set()
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
    def view(self) -> View | None:
        """This viewer's board as the server sent it (None before the first welcome)."""
        return self.mirror.view

    @property
    def role(self) -> str | None:
        return self.mirror.role

    @property
    def epoch(self) -> str | None:
        return self.mirror.epoch

    @property
    def seq(self) -> int:
        return self.mirror.seq

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

    async def run(self, command: Command) -> Frame:
        """Send one of the command structs of rooms.actions (validated locally, like send);
        return the viewer's event of its acked seq.

            await alex.run(PartReveal(id=part))
        """
        args = args_of(command)
        parse_args(command.op, args)
        return await self._submit(command.op, args)

    async def create(self, command: Command) -> str:
        """Run a command that makes one new item (a part, link, agreement, note...) and
        return the new item's id.

            part = await alex.create(PartAdd(name="The Planner", kind="manager"))
        """
        before = self.mirror.keys()
        return self.mirror.new_item(await self.run(command), before)

    async def send_unchecked(self, op: str, args: Mapping[str, Any]) -> Frame:
        """Like send() without local validation (for testing the server's own checks)."""
        return await self._submit(op, dict(args))

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
        return wire.hello(self.room, self.link.secret, self.mirror.resume())

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
            except OutOfStep as out_of_step:
                self.mirror.fresh = self.mirror.fresh or out_of_step.fresh
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
            sub.put(frame)
        return frame

    def _on_frame(self, data: bytes | str) -> None:
        frame = self._decode(data)
        if frame is None:
            return
        kind = frame.get("t")
        if kind == "ev":
            self.mirror.event(frame)
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
        self.mirror.welcome(frame)
        if isinstance(frame.get("presence"), dict):
            self.presence = frame["presence"]
        self._resolve_reached()
        self._notify()

    def _applied(self, event: Frame) -> None:
        for sub in self._event_subs:
            sub.put(event)
        for pending in [p for p in self._pending.values() if p.seq == event["seq"]]:
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
        if frame.get("code") == Busy.code:
            retry_after = frame.get("retry_after")
            if not isinstance(retry_after, int | float) or not 0 <= retry_after <= MAX_RETRY_AFTER:
                retry_after = Busy.DEFAULT_RETRY_AFTER
            asyncio.get_running_loop().call_later(retry_after, self._send_again, pending,
                                                  self._conn_no)
            return
        error = error_for(frame.get("code"), frame.get("message"), frame.get("field"))
        self._pending.pop(pending.id, None)
        if not pending.future.done():
            pending.future.set_exception(error)

    def _send_again(self, pending: _Pending, conn_no: int) -> None:
        """A command answered busy goes out again, same id, on the connection that said
        busy (after a reconnect, the welcome's resend has sent it already)."""
        ws = self._ws
        if (self._pending.get(pending.id) is not pending or conn_no != self._conn_no
                or not self._ready or ws is None):
            return
        pending.sent_on = self._conn_no
        task = asyncio.get_running_loop().create_task(self._send_quietly(ws, pending.frame))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    @staticmethod
    async def _send_quietly(ws: ClientConnection, frame: bytes) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(frame)

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
        event = self.mirror.event_of(pending.seq)
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
            sub.finish(None if quiet else error)
        self._notify()
