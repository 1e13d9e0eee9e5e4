"""A TCP proxy in front of Redis that can make subscriber connections go quiet.

Every connection is forwarded both ways. A connection that has sent SUBSCRIBE is a
subscriber; `stall_subscribers()` stops forwarding what Redis sends on the subscriber
connections open at that moment, while keeping them open: the subscription stays
connected but delivers nothing, as behind a stalled network or middlebox. Connections
made later are forwarded normally.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

CHUNK = 65536


@dataclass(eq=False)
class Pair:
    subscriber: bool = False
    stalled: bool = False
    closed_by_client: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)


class StallProxy:
    def __init__(self, redis_host: str, redis_port: int) -> None:
        self.redis_host = redis_host
        self.redis_port = redis_port
        self.pairs: list[Pair] = []
        self.new_subscriber = asyncio.Event()  # set when a connection first subscribes
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def __aenter__(self) -> StallProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for pair in self.pairs:
            for writer in pair.writers:
                writer.close()
            for task in pair.tasks:
                task.cancel()
            for task in pair.tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self._server.wait_closed()

    def open_subscribers(self) -> list[Pair]:
        return [pair for pair in self.pairs
                if pair.subscriber and not pair.closed_by_client.is_set()]

    def stall_subscribers(self) -> list[Pair]:
        """Stop forwarding to the subscriber connections open now; return them."""
        self.new_subscriber.clear()
        stalled = self.open_subscribers()
        for pair in stalled:
            pair.stalled = True
        return stalled

    async def _serve(self, client_reader: asyncio.StreamReader,
                     client_writer: asyncio.StreamWriter) -> None:
        redis_reader, redis_writer = await asyncio.open_connection(
            self.redis_host, self.redis_port)
        pair = Pair(writers=[client_writer, redis_writer])
        self.pairs.append(pair)
        pair.tasks = [asyncio.create_task(self._upstream(pair, client_reader, redis_writer)),
                      asyncio.create_task(self._downstream(pair, redis_reader, client_writer))]

    async def _upstream(self, pair: Pair, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(CHUNK):
                if not pair.subscriber and b"SUBSCRIBE" in data.upper():
                    pair.subscriber = True
                    self.new_subscriber.set()
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            pair.closed_by_client.set()
            writer.close()

    async def _downstream(self, pair: Pair, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(CHUNK):
                if pair.stalled:
                    continue  # swallowed: the connection stays open, nothing arrives
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()
