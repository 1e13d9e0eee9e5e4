"""One websocket connection's life: handshake, then a reader, a runner and a writer.

The handshake authenticates the hello, joins the room's LiveRoom through the hub
and sends the welcome. Then tasks: the reader decodes the client's frames as they
come (drags go straight to the LiveRoom) and queues commands with the time they
arrived; the runner runs them in order (server/commands.py; the whole path is
drawn in server/live_room.py), started eagerly (server/eager.py) so that a command's
write to Redis goes out in the reader's step; the writer drains a queue of encoded
frames.

Thousands of connections sit idle most of the time, so an idle one holds little:
two tasks (the runner exists only while commands wait), plain lists and futures
rather than asyncio queues and events (an empty deque costs 760 bytes), slots.

A command that waited longer than the commit wait (queued here, for its room's
lock or for a commit slot) is answered `busy`, which costs almost nothing, so a
process that falls behind sheds work instead of letting every answer come later
and later. Order is kept: once a command is answered busy, every later command
of the connection is answered busy too until the first one comes back (clients
resend them in order), or BUSY_EPISODE seconds have passed.

Nothing else ever waits on this connection. Fan-out pushes a frame to the writer's
queue; while the writer is parked with nothing queued, the frame is sent at once in the
pusher's own step instead (a socket that takes it without waiting, as nearly every one
does, costs no wake-up of the writer; a send that has to wait is finished by a task the
writer waits for before its queue, so order is kept). A queue holding `send_queue` frames
is cut (it resumes when it comes back) only when its reader stopped reading, that is when
a send waits because the socket takes no more; a queue that grew because this process is
behind (frames pushed before the writer's first turn) is left to drain, up to
SERVER_BEHIND_FACTOR times as many frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import Any, cast

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.types import Message, Receive, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from rooms import wire
from rooms.actions import parse_args
from rooms.errors import (
    BadFrame,
    Busy,
    Close,
    Internal,
    LimitExceeded,
    RateLimited,
    RoomEnded,
    RoomError,
    RoomLost,
)
from rooms.model import Role
from rooms.views import event_for, snapshot_for

from . import metrics
from .commands import execute
from .eager import Stepped, start_eagerly
from .hub import Hub
from .live_room import LiveRoom
from .settings import Settings
from .store import Store, decode_event

log = logging.getLogger("partsboard.session")

SERVER_BEHIND_FACTOR = 16
BUSY_EPISODE = 10.0  # seconds a connection answers busy while waiting for the first resend


class TokenBucket:
    """Burst up to `burst`, refilled at `rate` per second."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def _sent(read_at: float) -> None:
    """A frame went out; a drag's (read_at set) is timed from its sender's frame."""
    if read_at:
        metrics.DRAG_RELAY.observe(time.perf_counter() - read_at)


class Connection:
    __slots__ = ("busy_first", "busy_pause", "busy_until", "close_code", "close_frame",
                 "commands", "done", "drag_flood", "drags", "hub", "last_seq", "live",
                 "outbox", "patience", "presence_id", "receive_message", "received", "role",
                 "room_id", "runner", "running", "secret_hash", "send_message", "sending",
                 "sent_later", "settings", "store", "unsent", "writer_idle", "ws")

    def __init__(self, websocket: WebSocket, settings: Settings, store: Store,
                 hub: Hub, receive: Receive, send: Send) -> None:
        self.ws = websocket  # the handshake and the close
        self.receive_message = receive  # the live frames, in and out
        self.send_message = send
        self.settings = settings
        self.store = store
        self.hub = hub
        self.live: LiveRoom | None = None
        self.role: Role = "therapist"
        self.room_id = ""
        self.secret_hash = ""
        self.presence_id = ""
        self.last_seq = -1
        # Frames for the writer in order, and how many of those it took are not sent yet.
        # A drag's frame carries when its sender's frame was read (0.0 for other frames).
        self.outbox: list[tuple[int | None, bytes, float]] = []
        self.unsent = 0
        self.writer_idle: asyncio.Future[None] | None = None  # the writer waits for a frame
        # True while a send waits (the writer's, or one begun at once): only a socket that
        # takes no more (its reader stopped reading) makes a send wait.
        self.sending = False
        # A send begun at once that had to wait: the writer finishes it before the queue.
        self.sent_later: asyncio.Task[None] | None = None
        self.commands = TokenBucket(settings.command_rate, settings.command_burst)
        self.drags = TokenBucket(settings.drag_rate, settings.drag_burst)
        # Excess drags are dropped quietly; only a real flood (twice the rate) earns strikes.
        self.drag_flood = TokenBucket(settings.drag_rate, settings.drag_burst)
        # Patience for refused frames: a burst of mistakes is forgiven, a stream is not.
        self.patience = TokenBucket(settings.strike_rate, settings.bad_frames_allowed)
        # Commands as they arrived: when, the frame, and whether the rate limit refused it
        # (answered in its turn, so that every command is answered in the order sent), and
        # the task running them while there are any.
        self.received: list[tuple[float, wire.Cmd, bool]] = []
        self.runner: asyncio.Task[None] | None = None
        self.running = False  # the runner's loop has not returned (the task may be None)
        # The busy episode: the first command answered busy, the pause asked for, the end.
        self.busy_first: str | None = None
        self.busy_pause = 0.0
        self.busy_until = 0.0
        self.close_code: int | None = None
        self.close_frame: bytes | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # ------------------------------------------------------------ Member protocol

    def push(self, seq: int | None, frame: bytes, read_at: float = 0.0) -> None:
        if self.close_code is not None:
            return
        parked = self.writer_idle
        if parked is not None and not parked.done():
            self._send_now(seq, frame, read_at)
            return
        queued = len(self.outbox) + self.unsent
        if queued >= self.settings.send_queue:
            if self.sending or queued >= self.settings.send_queue * SERVER_BEHIND_FACTOR:
                metrics.SLOW_CONSUMERS.inc()
                self.shut(Close.RESYNC)
                return
            if queued == self.settings.send_queue:
                metrics.SERVER_BEHIND.inc()
        self.outbox.append((seq, frame, read_at))
        self._wake_writer()

    def _wake_writer(self) -> None:
        idle, self.writer_idle = self.writer_idle, None
        if idle is not None and not idle.done():
            idle.set_result(None)

    def _send_now(self, seq: int | None, frame: bytes, read_at: float) -> None:
        """Send in the caller's step; the writer is parked, so nothing is queued before it."""
        if not self._due(seq):
            return
        # uvicorn's send and Starlette's wrapper of it are coroutine functions.
        sending = cast(Coroutine[Any, Any, None],
                       self.send_message({"type": "websocket.send", "bytes": frame}))
        try:
            waits_for = sending.send(None)
        except StopIteration:
            _sent(read_at)
            return
        except Exception:
            self._finish()
            return
        self.sending = True
        self.sent_later = asyncio.ensure_future(Stepped(sending, waits_for))
        self._wake_writer()

    def _due(self, seq: int | None) -> bool:
        """Whether a frame is still to be sent: an event this connection was already sent
        (a replay that met a live delivery) is not. Records the event's seq."""
        if seq is not None:
            if seq <= self.last_seq:
                return False
            self.last_seq = seq
        return True

    def shut(self, code: int, frame: bytes | None = None) -> None:
        if self.close_code is None:
            self.close_code = code
            self.close_frame = frame
        self._finish()

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    # ------------------------------------------------------------ life

    async def run(self) -> None:
        if not await self._accept():
            return
        try:
            await self._serve()
        finally:
            if self.live is not None:
                await self.hub.leave(self.live, self)

    async def _serve(self) -> None:
        if await self._greet():
            await self._live()

    async def _greet(self) -> bool:
        """Handshake and welcome (True once sent). Its own frame, so that nothing of the
        welcome stays referenced for the connection's life."""
        try:
            welcome = await self._handshake()
        except RoomError as error:
            await self._refuse(error)
            return False
        except TimeoutError:
            await self._refuse(BadFrame("No hello arrived in time."))
            return False
        except (RedisError, OSError) as error:
            log.warning("handshake failed (%s)", type(error).__name__)
            await self._refuse(RoomError())
            return False
        except WebSocketDisconnect:
            return False
        try:
            await self.ws.send_bytes(wire.encode(welcome))
        except (WebSocketDisconnect, RuntimeError, OSError):
            return False
        return True

    async def _live(self) -> None:
        tasks = (asyncio.create_task(self._read()), asyncio.create_task(self._write()))
        try:
            await asyncio.shield(self.done)
        finally:
            for task in (*tasks, self.runner, self.sent_later):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
        if self.close_code is not None:
            await self._close(self.close_code, self.close_frame)

    async def _accept(self) -> bool:
        origin = self.ws.headers.get("origin")
        if origin is not None and not self._origin_allowed(origin):
            metrics.CLOSES.labels("origin").inc()
            await self.ws.close(code=Close.POLICY)
            return False
        if wire.SUBPROTOCOL not in self.ws.scope.get("subprotocols", []):
            metrics.CLOSES.labels("subprotocol").inc()
            await self.ws.close(code=Close.POLICY)
            return False
        await self.ws.accept(subprotocol=wire.SUBPROTOCOL)
        return True

    def _origin_allowed(self, origin: str) -> bool:
        origin = origin.rstrip("/")
        if self.settings.allowed_origins:
            return origin in self.settings.allowed_origins
        host = self.ws.headers.get("host", "")
        return origin.split("://", 1)[-1] == host

    async def _handshake(self) -> dict[str, Any]:
        async with asyncio.timeout(self.settings.hello_timeout):  # no task, unlike wait_for
            message = await self.ws.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect()
        frame = wire.decode_client(message.get("bytes") or message.get("text") or b"",
                                   self.settings.max_frame_bytes)
        if not isinstance(frame, wire.Hello):
            raise BadFrame("The first frame must be hello.")
        # A reconnect storm queues here rather than exhausting the Redis pool.
        async with self.hub.handshakes:
            return await self._welcome_for(frame)

    async def _welcome_for(self, frame: wire.Hello) -> dict[str, Any]:
        auth, counts = await self.store.authenticate_and_count(frame.room, frame.secret)
        resume = frame.resume
        if auth is None:
            if resume is not None and await self.store.was_lost(frame.room, resume.epoch):
                raise RoomLost()
            raise RoomEnded()
        if resume is not None and resume.epoch != auth.epoch:
            raise RoomLost()
        self.role, self.room_id, self.secret_hash = auth.role, frame.room, auth.secret_hash
        if counts.get(self.role, 0) >= self.settings.connections_per_role:
            raise LimitExceeded("Too many connections for this role.")
        self.presence_id = self.hub.presence.member_id(self.role)
        since = resume.seq if resume is not None else None
        live, (room, blobs) = await self.hub.join(self.room_id, auth.epoch, self, since)
        self.live = live
        if room is None:
            raise RoomEnded()
        view: dict[str, Any] | None = None
        replay: list[dict[str, Any]] | None = None
        if resume is not None and resume.seq > room.seq:
            raise RoomLost()  # the client saw more than the store holds: it was rolled back
        if resume is not None:
            if blobs is not None:
                replay = [wire.event(event_for(decode_event(blob), self.role))
                          for blob in blobs]
                self.last_seq = replay[-1]["seq"] if replay else resume.seq
        if replay is None:
            view = snapshot_for(room, self.role)
            self.last_seq = room.seq
        return wire.welcome(self.role, self.room_id, auth.epoch, view, replay, self.last_seq,
                            dict(live.presence))

    async def _refuse(self, error: RoomError) -> None:
        metrics.BAD_FRAMES.labels(error.code).inc()
        await self._close(error.hello_close, wire.encode(wire.refusal(error)))

    async def _close(self, code: int, frame: bytes | None) -> None:
        metrics.CLOSES.labels(str(code)).inc()
        with contextlib.suppress(Exception):
            if frame is not None:
                await asyncio.wait_for(self.ws.send_bytes(frame), 1.0)
            await asyncio.wait_for(self.ws.close(code=code), 1.0)

    async def _write(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not self.outbox:
                    self.writer_idle = loop.create_future()
                    await self.writer_idle
                if self.sent_later is not None:
                    await self.sent_later
                    self.sent_later = None
                    self.sending = False
                await self._send_outbox()
        except asyncio.CancelledError:
            raise
        except Exception:
            self._finish()

    async def _send_outbox(self) -> None:
        batch, self.outbox = self.outbox, []
        self.unsent = len(batch)
        for seq, frame, read_at in batch:
            self.unsent -= 1
            if not self._due(seq):
                continue
            self.sending = True
            await self.send_message({"type": "websocket.send", "bytes": frame})
            self.sending = False
            _sent(read_at)

    async def _read(self) -> None:
        try:
            while await self._take(await self.receive_message()):
                pass
        except asyncio.CancelledError:
            raise
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
        self._finish()

    async def _take(self, message: Message) -> bool:
        """One message from the client; False once the connection ends."""
        if message["type"] == "websocket.disconnect":
            return False
        await self._on_frame(message.get("bytes") or message.get("text") or b"")
        return self.close_code is None

    def _strike(self) -> None:
        if not self.patience.take():
            self.shut(Close.POLICY, wire.encode(wire.refusal(
                BadFrame("Too many invalid or excess messages; disconnected."))))

    async def _on_frame(self, data: bytes | str) -> None:
        read_at = time.perf_counter()
        try:
            frame = wire.decode_client(data, self.settings.max_frame_bytes)
        except RoomError as error:
            metrics.BAD_FRAMES.labels(error.code).inc()
            self.push(None, wire.encode(wire.refusal(error)))
            self._strike()
            return
        if isinstance(frame, wire.Cmd):
            self._receive_command(frame)
        elif isinstance(frame, wire.Drag):
            await self._on_drag(frame, read_at)
        else:
            metrics.BAD_FRAMES.labels("bad_frame").inc()
            self.push(None, wire.encode(wire.refusal(BadFrame("Already said hello."))))
            self._strike()

    def _receive_command(self, frame: wire.Cmd) -> None:
        limited = not self.commands.take()
        self.received.append((time.monotonic(), frame, limited))
        if limited:
            self._strike()
        if not self.running and not self.done.done():
            # Its first step, in this one, writes the command to Redis a turn of the loop
            # sooner than a task created the usual way would.
            self.running = True
            runner = start_eagerly(self._run_commands())
            if self.running:  # else it answered every command in that step
                self.runner = runner

    async def _run_commands(self) -> None:
        try:
            while self.received:
                batch, self.received = self.received, []
                for arrived, frame, limited in batch:
                    # The connection's end stops this loop too, even if a cancellation was
                    # lost on the way (one that met a time-out in the same step).
                    if self.done.done():
                        return
                    if limited:
                        metrics.command_result("-", "rate_limited").inc()
                        self.push(None, wire.encode(wire.refusal(RateLimited(), frame.id)))
                    elif not self._busy_episode(frame.id):
                        await self._on_command(frame, arrived)
        finally:
            self.running = False
            self.runner = None

    def _busy_episode(self, command_id: str) -> bool:
        """Answer busy when an earlier command of this connection was and has not come
        back yet, so that the resent commands run in their first order."""
        if self.busy_first is None:
            return False
        if command_id == self.busy_first or time.monotonic() > self.busy_until:
            self.busy_first = None
            return False
        self._answer_busy("-", command_id)
        return True

    def _answer_busy(self, op_label: str, command_id: str) -> None:
        if self.busy_first is None:
            self.busy_first, self.busy_pause = command_id, self.hub.commits.pause()
            self.busy_until = time.monotonic() + BUSY_EPISODE
        self.hub.commits.told(self.busy_pause)
        metrics.BUSY.inc()
        metrics.command_result(op_label, "busy").inc()
        busy = Busy(retry_after=self.busy_pause)
        self.push(None, wire.encode(wire.refusal(busy, command_id)))

    async def _on_command(self, frame: wire.Cmd, arrived: float) -> None:
        op_label = "-"
        try:
            command = parse_args(frame.op, frame.args)
            op_label = command.op
            assert self.live is not None
            seq = await execute(self.live, self.role, frame.id, command, self.hub.commits,
                                waited=time.monotonic() - arrived)
        except Busy:
            self._answer_busy(op_label, frame.id)
            return
        except RoomError as error:
            metrics.command_result(op_label, error.code).inc()
            self.push(None, wire.encode(wire.refusal(error, frame.id)))
            if error.command_close is not None:
                self.shut(error.command_close)
            return
        except (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError):
            # Redis did not answer in time or could not be reached: maybe committed, maybe
            # not. Sent again under the same id, it is applied at most once.
            self._answer_busy(op_label, frame.id)
            return
        except RedisError as error:
            log.warning("command failed: op=%s error=%s", op_label, type(error).__name__)
            metrics.command_result(op_label, "internal").inc()
            self.push(None, wire.encode(wire.refusal(Internal(), frame.id)))
            return
        except Exception:
            log.exception("command failed: op=%s", op_label)
            metrics.command_result(op_label, "internal").inc()
            self.push(None, wire.encode(wire.refusal(Internal(), frame.id)))
            return
        metrics.COMMIT_SECONDS.observe(time.monotonic() - arrived)
        metrics.command_result(op_label, "ok").inc()
        self.push(None, wire.encode(wire.ack(frame.id, seq)))

    async def _on_drag(self, frame: wire.Drag, read_at: float) -> None:
        if not self.drags.take():
            metrics.drag_result("rate_limited").inc()
            if not self.drag_flood.take():
                self._strike()
            return
        try:
            assert self.live is not None
            routed = await self.live.drag(self, frame.part, frame.x, frame.y, read_at)
        except (RedisError, OSError):
            metrics.drag_result("error").inc()
            return
        metrics.drag_result("ok" if routed else "refused").inc()
