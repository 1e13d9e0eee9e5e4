"""The baseline: a minimal relay on the same stack as Partsboard.

Starlette + uvicorn + redis-py asyncio pub/sub + msgpack (msgspec). A client's
first frame is {"t": "hello", "room": ..., "secret": ...}; the relay answers
{"t": "welcome"}. Every later {"t": "cmd"} or {"t": "drag"} frame is published
as-is to the room's channel; every message on that channel is sent to every
local socket of the room (the sender included). A cmd is answered with
{"t": "ack", "id": ...} once its PUBLISH has returned. No validation, no
persistence, no privacy: only publish-to-room and fan-out, so it is the floor
that Partsboard is measured against.

One pub/sub connection per process, one subscription per room with local
sockets. Each socket has a bounded send queue drained by its own task, as in
Partsboard (a socket whose queue overflows is closed), so one slow reader
never stalls the fan-out to everyone else. Run it as its own process:

    python -m bench.relay --port 8100 --redis redis://127.0.0.1:6380/0
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, Histogram, generate_latest
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from server.loop_lag import LAG_BUCKETS, LoopLagMonitor

log = logging.getLogger("bench.relay")
# The same event-loop lag histogram as the server's, under the same name, so the
# benchmark reads both alike.
LOOP_LAG = Histogram("partsboard_event_loop_lag_seconds", "Event-loop lag",
                     buckets=LAG_BUCKETS)
LOOP_LAG_OFF_CPU = Histogram("partsboard_event_loop_lag_off_cpu_seconds",
                             "Event-loop lag while the loop's thread did not run",
                             buckets=LAG_BUCKETS)

PREFIX = "relay:"


class Frame(msgspec.Struct):
    """The only fields the relay looks at; everything else passes through as bytes."""

    t: str = ""
    room: str = ""
    id: str | None = None


_decode = msgspec.msgpack.Decoder(Frame).decode
_encode = msgspec.msgpack.Encoder().encode
WELCOME = _encode({"t": "welcome"})


SEND_QUEUE = 512  # frames, as Partsboard's default PARTSBOARD_SEND_QUEUE
POOL_SIZE = 64  # Redis connections, as Partsboard's default PARTSBOARD_REDIS_POOL
CLOSE_TOO_SLOW = 4408


class Client:
    """One socket and its send queue."""

    __slots__ = ("queue", "ws")

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(SEND_QUEUE)

    def push(self, frame: bytes) -> None:
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.queue = asyncio.Queue(1)
            self.queue.put_nowait(None)  # the writer closes the socket

    async def write(self) -> None:
        while True:
            frame = await self.queue.get()
            if frame is None:
                await self.ws.close(CLOSE_TOO_SLOW)
                return
            await self.ws.send_bytes(frame)


def redis_client(url: str, pool_size: int) -> Redis:
    """A waiting pool of `pool_size` connections (5 s time-out), as Partsboard's server
    has (server/redis_urls.py): under load, publishers queue instead of opening ever more
    connections."""
    return Redis.from_pool(BlockingConnectionPool.from_url(
        url, max_connections=pool_size, timeout=5.0, socket_connect_timeout=5.0))


class Hub:
    """This process's one pub/sub connection and its rooms' local sockets."""

    def __init__(self, redis: Redis, pubsub_client: Redis) -> None:
        self.redis = redis
        self.pubsub_client = pubsub_client
        self.pubsub: PubSub = pubsub_client.pubsub()
        self.rooms: dict[str, set[Client]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # Give the PubSub its connection before any concurrent subscribe: with a waiting
        # pool, two first subscribes racing would each take a connection of their own.
        await self.pubsub.subscribe(PREFIX + "-")
        self._reader = asyncio.create_task(self._read())

    async def join(self, room: str, ws: Client) -> None:
        sockets = self.rooms.get(room)
        if sockets is None:
            sockets = self.rooms[room] = set()
            sockets.add(ws)
            await self.pubsub.subscribe(PREFIX + room)
        else:
            sockets.add(ws)

    async def leave(self, room: str, ws: Client) -> None:
        sockets = self.rooms.get(room)
        if sockets is None:
            return
        sockets.discard(ws)
        if not sockets:
            del self.rooms[room]
            with contextlib.suppress(Exception):
                await self.pubsub.unsubscribe(PREFIX + room)

    async def _read(self) -> None:
        skip = len(PREFIX)
        while True:
            try:
                message = await self.pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("pub/sub read failed; retrying", exc_info=True)
                await asyncio.sleep(0.1)
                continue
            if message is None or message.get("type") != "message":
                continue
            room = message["channel"][skip:].decode()
            data: bytes = message["data"]
            for client in self.rooms.get(room, ()):
                client.push(data)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        with contextlib.suppress(Exception):
            await self.pubsub.aclose()  # type: ignore[no-untyped-call]
        await self.redis.aclose()
        await self.pubsub_client.aclose()


def create_app(redis_url: str) -> Starlette:
    hub: Hub | None = None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal hub
        hub = Hub(redis_client(redis_url, POOL_SIZE), redis_client(redis_url, 4))
        await hub.redis.ping()
        await hub.start()
        lag = LoopLagMonitor(LOOP_LAG.observe, observe_off_cpu=LOOP_LAG_OFF_CPU.observe)
        lag.start()
        try:
            yield
        finally:
            await lag.stop()
            await hub.close()

    async def healthz(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def relay(ws: WebSocket) -> None:
        assert hub is not None
        offered = ws.scope.get("subprotocols") or []
        await ws.accept(subprotocol=offered[0] if offered else None)
        room: str | None = None
        client = Client(ws)
        writer: asyncio.Task[None] | None = None
        try:
            hello = _decode(await ws.receive_bytes())
            if hello.t != "hello" or not hello.room:
                await ws.close(1008)
                return
            room = hello.room
            channel = PREFIX + room
            client.push(WELCOME)  # first in the queue, sent once subscribed
            await hub.join(room, client)
            writer = asyncio.create_task(client.write())
            publish = hub.redis.publish
            while True:
                data = await ws.receive_bytes()
                frame = _decode(data)
                try:
                    if frame.t == "cmd":
                        await publish(channel, data)
                        client.push(_encode({"t": "ack", "id": frame.id}))
                    elif frame.t == "drag":
                        await publish(channel, data)
                except RedisError:
                    log.warning("publish failed")  # no ack: the message is lost
        except (WebSocketDisconnect, msgspec.DecodeError, KeyError, RuntimeError):
            pass
        finally:
            if room is not None:
                await hub.leave(room, client)
            if writer is not None:
                writer.cancel()
                with contextlib.suppress(BaseException):
                    await writer

    routes: list[Any] = [Route("/healthz", healthz), Route("/metrics", metrics),
                         WebSocketRoute("/ws", relay)]
    return Starlette(routes=routes, lifespan=lifespan)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.relay", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--redis", required=True, help="redis URL")
    parser.add_argument("--loop", default="auto", help="uvicorn event loop (auto, asyncio, uvloop)")
    parser.add_argument("--http", default="auto", help="uvicorn HTTP (auto, h11, httptools)")
    parser.add_argument("--ws", default="auto", help="uvicorn websocket implementation")
    parser.add_argument("--no-deflate", action="store_true",
                        help="do not offer permessage-deflate")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    uvicorn.run(create_app(args.redis), host=args.host, port=args.port, log_level="warning",
                loop=args.loop, http=args.http, ws=args.ws,
                ws_per_message_deflate=not args.no_deflate, access_log=False)


if __name__ == "__main__":
    main()
