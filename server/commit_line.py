"""One Redis connection of its own that every commit of this process is written to the
moment it is made, its replies read back in order by one task; a member's handshake and
presence round trips (the room loaded, the secret checked, the entry added or removed) and the
drag publishes go on it too.

Through the pool, each commit paid for a checkout and a return, the retry wrapper, the
script object and a reply read by the caller's own coroutines: about a third of a
command's CPU, and several turns of the event loop. On the line a commit costs a write
and a future, and one wake-up of the reader takes every reply that arrived together. A
handshake's two pipelines cost half as much on the line as through the pool.

The connection is the pool's kind (TLS, a Unix socket, Sentinel's master discovery, the
password and the database all come with it) but not the pool's: commits never wait for a
free connection, and the pool's connections are left to everything else. A connection
that breaks fails every command still waiting for its reply, with a ConnectionError; each
is then written once more on a new connection, as redis-py's retry would, so only commands
that are safe to send twice go on the line (a resent commit is found by its command id, or
refused for its seq; presence entries are set, not added to). Only for one Redis (a
cluster routes each room to its shard) without durable acks (WAIT counts the writes of the
connection it is sent on, so durable commits go through the pool).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from typing import Any

from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

# Past this much unsent, a write waits for the socket (bounded by the socket time-out).
WRITE_BUFFER_LIMIT = 1 << 20


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
        if line is None or not line.connection.is_connected:
            line = await self._reopen()
        connection = line.connection
        packed = (connection.pack_command(*commands[0]) if len(commands) == 1
                  else connection.pack_commands(commands))
        loop = asyncio.get_running_loop()
        replies: list[asyncio.Future[Any]] = [loop.create_future() for _ in commands]
        line.replies.extend(replies)  # before the write: the reader may take them at once
        try:
            # Written in the caller's step: redis-py's send_packed_command bounds a write
            # with wait_for, which runs it as a task a turn later and resumes the caller a
            # turn after that, two waits for a busy event loop on every commit.
            writer = connection._writer
            if writer is None:
                raise RedisConnectionError("the commit connection is closed")
            writer.writelines(packed)
            if writer.transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
                async with asyncio.timeout(connection.socket_timeout):
                    await writer.drain()
        except BaseException as error:
            for reply in replies:
                reply.cancel()  # nobody will await them
            self._broken(line, error)
            if isinstance(error, Exception):
                # Any failed write (no writer, or uvloop's RuntimeError on a closed
                # transport) leaves this connection unusable.
                raise RedisConnectionError(
                    f"writing to the commit connection failed ({type(error).__name__})"
                ) from error
            raise
        parked = line.parked
        if parked is not None and not parked.done():
            parked.set_result(None)
        if len(replies) == 1:
            return [await replies[0]]
        try:
            return [await reply for reply in replies]
        finally:
            for reply in replies:  # after an error, or the caller's cancellation
                if not reply.done():
                    reply.cancel()  # the reader skips it
                elif not reply.cancelled():
                    reply.exception()  # retrieved: no warning for the ones not raised

    async def _reopen(self) -> _Open:
        async with self._opening:
            if self._closed:
                raise RedisConnectionError("the commit line is closed")
            line = self._open
            if line is not None:
                if line.connection.is_connected:
                    return line
                self._broken(line, RedisConnectionError("disconnected"))
            connection: AbstractConnection = self._pool.make_connection()  # type: ignore[no-untyped-call]
            await connection.connect()  # type: ignore[no-untyped-call]
            line = self._open = _Open(connection)
            line.reader = asyncio.create_task(self._read(line), name="commit-line")
            return line

    async def _read(self, line: _Open) -> None:
        connection, replies = line.connection, line.replies
        try:
            while True:
                if not replies:
                    line.parked = asyncio.get_running_loop().create_future()
                    await line.parked
                    line.parked = None
                    continue
                try:
                    reply = await connection.read_response()
                except ResponseError as error:  # the command's own error (NOSCRIPT, say)
                    reply = error
                waiting = replies.popleft()
                if waiting.done():  # its caller was cancelled
                    continue
                if isinstance(reply, ResponseError):
                    waiting.set_exception(reply)
                else:
                    waiting.set_result(reply)
        except BaseException as error:
            self._broken(line, error)
            if not isinstance(error, Exception):
                raise

    def _broken(self, line: _Open, error: BaseException) -> None:
        """Every commit still waiting on this connection fails; the next one opens another."""
        if line.broken:
            return
        line.broken = True
        if self._open is line:
            self._open = None
        if line.reader is not None and line.reader is not asyncio.current_task():
            line.reader.cancel()
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
            if line.reader is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await line.reader
        for closing in list(self._closing):
            with contextlib.suppress(Exception):
                await closing


class _Open:
    """One connection of the line, with the replies it still owes, oldest first."""

    __slots__ = ("broken", "connection", "parked", "reader", "replies")

    def __init__(self, connection: AbstractConnection) -> None:
        self.connection = connection
        self.replies: deque[asyncio.Future[Any]] = deque()
        self.reader: asyncio.Task[None] | None = None
        self.parked: asyncio.Future[None] | None = None  # the reader, waiting for a write
        self.broken = False
