"""One Redis connection of its own that every commit of this process is written to the
moment it is made, its replies handed back in order as they arrive; a member's handshake and
presence round trips (the room loaded, the secret checked, the entry added or removed) and the
drag publishes go on it too.

Through the pool, each commit paid for a checkout and a return, the retry wrapper, the
script object and a reply read by the caller's own coroutines: about a third of a
command's CPU, and several turns of the event loop. On the line a commit costs a write
and a future. Its replies are parsed as they arrive, in the transport's own callback (no
reader task to wake, a turn of the event loop sooner for the caller), with the parser and
error classes redis-py's hiredis parser uses. A handshake's two pipelines cost half as
much on the line as through the pool.

The connection is the pool's kind (TLS, a Unix socket, Sentinel's master discovery, the
password and the database all come with it) but not the pool's: commits never wait for a
free connection, and the pool's connections are left to everything else. A connection
that breaks, or owes a reply for longer than the socket time-out, fails every command still
waiting for its reply, with a ConnectionError; each is then written once more on a new
connection, as redis-py's retry would, so only commands
that are safe to send twice go on the line (a resent commit is found by its command id, or
refused for its seq; presence entries are set, not added to). Only for one Redis (a
cluster routes each room to its shard) without durable acks (WAIT counts the writes of the
connection it is sent on, so durable commits go through the pool).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, cast

import hiredis
from redis._parsers import BaseParser
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

# Past this much unsent, a write waits for the socket (bounded by the socket time-out).
WRITE_BUFFER_LIMIT = 1 << 20
_INCOMPLETE = object()  # hiredis: the rest of the reply has not arrived


class CommitLine:
    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._open: _Open | None = None
        self._opening = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False

    async def call(self, *args: Any) -> Any:
        """Send one command and return its reply (raise its error)."""
        return (await self.batch((args,)))[0]

    async def batch(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Send commands in one write and return their replies in order (raise the first
        error among them). Only for commands that are safe to send twice: a connection that
        breaks before every reply is in has the whole batch sent again."""
        try:
            return await self._batch(commands)
        except RedisConnectionError:
            return await self._batch(commands)

    async def _batch(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        line = self._open
        if line is None or not line.usable:
            line = await self._reopen()
        connection = line.connection
        packed = (connection.pack_command(*commands[0]) if len(commands) == 1
                  else connection.pack_commands(commands))
        loop = asyncio.get_running_loop()
        replies: list[asyncio.Future[Any]] = [loop.create_future() for _ in commands]
        try:
            # Written in the caller's step: redis-py's send_packed_command bounds a write
            # with wait_for, which runs it as a task a turn later and resumes the caller a
            # turn after that, two waits for a busy event loop on every commit.
            line.write(packed, replies)
            if line.transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
                async with asyncio.timeout(connection.socket_timeout):
                    await line.writable()
        except BaseException as error:
            for reply in replies:
                reply.cancel()  # nobody will await them
            self._broken(line, error)
            if isinstance(error, Exception):
                # Any failed write (uvloop's RuntimeError on a closed transport, say)
                # leaves this connection unusable.
                raise RedisConnectionError(
                    f"writing to the commit connection failed ({type(error).__name__})"
                ) from error
            raise
        if len(replies) == 1:
            return [await replies[0]]
        try:
            return [await reply for reply in replies]
        finally:
            for reply in replies:  # after an error, or the caller's cancellation
                if not reply.done():
                    reply.cancel()  # its reply is skipped when it comes
                elif not reply.cancelled():
                    reply.exception()  # retrieved: no warning for the ones not raised

    async def _reopen(self) -> _Open:
        async with self._opening:
            if self._closed:
                raise RedisConnectionError("the commit line is closed")
            line = self._open
            if line is not None:
                if line.usable:
                    return line
                self._broken(line, RedisConnectionError("disconnected"))
            connection: AbstractConnection = self._pool.make_connection()  # type: ignore[no-untyped-call]
            await connection.connect()  # type: ignore[no-untyped-call]
            line = self._open = _Open(connection, self._broken)
            return line

    def _broken(self, line: _Open, error: BaseException) -> None:
        """Every commit still waiting on this connection fails; the next one opens another."""
        if line.broken:
            return
        line.broken = True
        if self._open is line:
            self._open = None
        line.stop_timer()
        while line.replies:
            waiting = line.replies.popleft()
            if not waiting.done():
                waiting.set_exception(RedisConnectionError(
                    f"the commit connection broke ({type(error).__name__})"))
        closing = asyncio.ensure_future(line.connection.disconnect(nowait=True))
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        self._closed = True
        line = self._open
        if line is not None:
            self._broken(line, asyncio.CancelledError())
        for closing in list(self._closing):
            with contextlib.suppress(Exception):
                await closing


class _Open(asyncio.Protocol):
    """One connection of the line, once redis-py connected it, as its transport's protocol:
    the replies it still owes, oldest first, each handed to its caller as it arrives."""

    def __init__(self, connection: AbstractConnection,
                 broken: Callable[[_Open, BaseException], None]) -> None:
        self.connection = connection
        self.replies: deque[asyncio.Future[Any]] = deque()
        self.broken = False
        self._on_broken = broken
        self._loop = asyncio.get_running_loop()
        self._timeout: float = connection.socket_timeout or 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._progress = 0.0  # when the oldest reply owed began to be waited for
        self._writable: asyncio.Future[None] | None = None  # while the transport is full
        encoder = connection.encoder
        self._parser = hiredis.Reader(
            protocolError=InvalidResponse, replyError=BaseParser.parse_error,
            notEnoughData=_INCOMPLETE,
            **({"encoding": encoder.encoding, "errors": encoder.encoding_errors}
               if encoder.decode_responses else {}))
        writer = connection._writer
        assert writer is not None
        self.transport = writer.transport
        # The streams' protocol still hears of the end, so that redis-py's own view of
        # the connection (and its disconnect) stays right.
        self._streams = cast(asyncio.Protocol, self.transport.get_protocol())
        self.transport.set_protocol(self)

    @property
    def usable(self) -> bool:
        return not self.broken and not self.transport.is_closing()

    def write(self, packed: list[bytes], replies: list[asyncio.Future[Any]]) -> None:
        if not self.replies:
            self._progress = self._loop.time()
        self.replies.extend(replies)
        self.transport.writelines(packed)
        if self._timer is None and self._timeout:
            self._timer = self._loop.call_at(self._progress + self._timeout, self._check_time)

    async def writable(self) -> None:
        if self._writable is not None:
            await asyncio.shield(self._writable)

    def data_received(self, data: bytes) -> None:
        parser, replies = self._parser, self.replies
        parser.feed(data)
        try:
            while (reply := parser.gets()) is not _INCOMPLETE:
                if isinstance(reply, RedisConnectionError) or not replies:
                    # LOADING, MASTERDOWN: this server cannot answer now (redis-py drops the
                    # connection too); or a reply nobody asked for: the line is lost.
                    self._on_broken(self, reply if isinstance(reply, BaseException)
                                    else InvalidResponse("a reply nobody asked for"))
                    return
                waiting = replies.popleft()
                if waiting.done():  # its caller gave up
                    continue
                if isinstance(reply, ResponseError):
                    waiting.set_exception(reply)
                else:
                    waiting.set_result(reply)
        except InvalidResponse as error:
            self._on_broken(self, error)
            return
        self._progress = self._loop.time()

    def _check_time(self) -> None:
        self._timer = None
        if self.broken or not self.replies:
            return
        due = self._progress + self._timeout
        if self._loop.time() >= due:
            self._on_broken(self, RedisTimeoutError("no reply in time"))
        else:
            self._timer = self._loop.call_at(due, self._check_time)

    def stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    def eof_received(self) -> bool:
        self._streams.eof_received()
        return False

    def connection_lost(self, error: Exception | None) -> None:
        self.resume_writing()
        self._on_broken(self, error or RedisConnectionError("closed by the server"))
        self._streams.connection_lost(error)
