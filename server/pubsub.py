"""The pub/sub link: one subscriber connection to Redis, kept alive and kept honest.

It subscribes to the channels it is asked for (the rooms with members here, see
server/hub.py) and hands every message to the hub. When the connection drops it
reconnects with backoff, subscribes its channels again and hands them to the hub,
which compares those rooms with Redis (messages published meanwhile are lost). A
link is one connection; with sharded pub/sub there would be one per shard, each
with its own channels and watchdog.

Pub/sub loses messages only with its connection, but a connection can also stay
open and stop delivering (a stalled proxy or network). So every interval the
link publishes a ping to its own channel over another connection; a ping that
does not come back within one more interval makes it reconnect as if the
connection had dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from . import metrics

log = logging.getLogger("partsboard.pubsub")

OnMessage = Callable[[bytes, bytes], Awaitable[None]]
OnConnected = Callable[[list[str]], Awaitable[None]]


class PubSubLink:
    def __init__(self, client: aioredis.Redis, own_channel: str, *, on_message: OnMessage,
                 on_connected: OnConnected, ping_interval: float) -> None:
        self.client = client
        self.own_channel = own_channel.encode()
        self.on_message = on_message
        self.on_connected = on_connected
        self.ping_interval = ping_interval
        self.channels: set[str] = set()
        self._pubsub: Any = None
        self._connected = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._pings_sent = 0
        self._pings_seen = 0
        self._deaf = False

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._listen(), name="pubsub-listen"),
                       asyncio.create_task(self._watch(), name="pubsub-watchdog")]
        await asyncio.wait_for(self._connected.wait(), timeout=10)

    async def stop(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()

    async def subscribe(self, channel: str) -> None:
        self.channels.add(channel)
        # While the connection is down, reconnecting subscribes every wanted channel.
        with contextlib.suppress(RedisError, OSError, AttributeError):
            await self._pubsub.subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)
        with contextlib.suppress(RedisError, OSError, AttributeError):
            await self._pubsub.unsubscribe(channel)
        if channel in self.channels:  # wanted again while we unsubscribed
            await self.subscribe(channel)

    async def _listen(self) -> None:
        delays = _backoff()
        while not self._closing:
            try:
                # Subscribing first makes the connection; only then may subscribe() use
                # this PubSub (two first subscribes at once can each open a connection,
                # and nobody would read the second one).
                pubsub = self.client.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self.own_channel)
                self._pubsub = pubsub
                channels = list(self.channels)
                for channel in channels:
                    await pubsub.subscribe(channel)
                self._connected.set()
                delays = _backoff()
                self._pings_seen = self._pings_sent
                await self.on_connected(channels)
                while not self._closing:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message["type"] == "message":
                        if message["channel"] == self.own_channel:
                            self._pings_seen = max(self._pings_seen, int(message["data"]))
                        else:
                            await self.on_message(message["channel"], message["data"])
                    if self._deaf:
                        self._deaf = False
                        raise ConnectionError("the subscription stopped delivering")
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as error:
                metrics.RESUBSCRIBES.inc()
                log.warning("pubsub connection lost (%s); resubscribing", type(error).__name__)
                await self._drop()
                await asyncio.sleep(next(delays))
            except Exception:
                log.exception("pubsub listener failed; restarting it")
                await self._drop()
                await asyncio.sleep(next(delays))

    async def _drop(self) -> None:
        # Until the next connection, subscribe() only records the channel: used again, a
        # closed PubSub would open a connection of its own that nobody reads.
        pubsub, self._pubsub = self._pubsub, None
        with contextlib.suppress(Exception):
            await pubsub.aclose()

    async def _watch(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.ping_interval)
            if self._pings_seen < self._pings_sent - 1:  # one interval of slack for a busy loop
                log.warning("pub/sub missed its own ping; resubscribing")
                self._deaf = True
                continue
            self._pings_sent += 1
            try:
                await self.client.publish(self.own_channel, str(self._pings_sent))
            except (RedisError, OSError) as error:
                log.warning("pub/sub ping failed (%s)", type(error).__name__)


def _backoff(initial: float = 0.05, cap: float = 2.0) -> Iterator[float]:
    delay = initial
    while True:
        yield delay
        delay = min(cap, delay * 2)
