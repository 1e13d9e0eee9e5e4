"""Pub/sub links: one subscriber connection per Redis node holding rooms with members here.

Every message of a room goes out with SPUBLISH on the room's channel (server/store.py), and a
process listens with SSUBSCRIBE (sharded pub/sub: Redis 7.0 or later). On one Redis (plain or
behind Sentinel) there is one link; on a Redis Cluster there is one per primary that owns
the slot of a room with members here, and each channel is carried by its slot owner's link.

A link is one connection. When it fails (the connection drops, or it stays open but stops
delivering: see the watchdog below), or when Redis pushes an unsubscribe because the
channel's slot moved to another node (a reshard, or a failover that demoted the node), its
channels are handed back and placed again: on the link of whoever owns their slot now (the
cluster's slot map is read again first), with backoff while no node will take them. Once a
channel placed again is subscribed, the hub sweeps its room (server/hub.py), filling from
the room's event log whatever was published meanwhile: no member sees a gap.

Watchdog: every interval a link sends PING on its subscribed connection; a pong that has not
come back one interval later (a stalled proxy or network) fails the link as if it dropped.

subscribe() returns once Redis has confirmed the subscription (the hub loads a room only
after it, so no event falls between the two), or raises TimeoutError.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from . import metrics
from .redis_urls import RedisClient, WaitingRedisCluster, closed_transport

log = logging.getLogger("partsboard.pubsub")

OnMessage = Callable[[bytes, bytes], Awaitable[None]]
OnResubscribed = Callable[[list[str]], Awaitable[None]]

SINGLE = ""  # the link's name on a Redis that is not a cluster


class PubSubLinks:
    def __init__(self, client: RedisClient, *, on_message: OnMessage,
                 on_resubscribed: OnResubscribed, ping_interval: float,
                 timeout: float = 10.0) -> None:
        """``client``: for this only (its connections are held by subscriptions); a
        cluster client routes channels to their slot's owner."""
        self.client = client
        self.cluster = client if isinstance(client, WaitingRedisCluster) else None
        self.on_message = on_message
        self.on_resubscribed = on_resubscribed
        self.ping_interval = ping_interval
        self.timeout = timeout
        self.wanted: set[str] = set()
        self.links: dict[str, Link] = {}
        self._node_clients: dict[str, aioredis.Redis] = {}
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._orphans: set[str] = set()
        self._orphaned = asyncio.Event()
        self._resweep: set[str] = set()  # placed again: sweep the room once subscribed
        self._delays = _backoff()  # between attempts to place channels; reset by a success
        self._rehomer: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self.cluster is not None:
            await self.cluster.initialize()  # the slot map, before any routing
        self._rehomer = asyncio.create_task(self._rehome_forever(), name="pubsub-rehome")

    async def stop(self) -> None:
        if self._rehomer is not None:
            self._rehomer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._rehomer
        for link in list(self.links.values()):
            await link.stop()
        self.links.clear()
        for node_client in self._node_clients.values():
            await node_client.aclose()

    async def subscribe(self, channel: str) -> None:
        self.wanted.add(channel)
        waiter = self._waiters.get(channel)
        if waiter is None or waiter.done():
            waiter = self._waiters[channel] = asyncio.get_running_loop().create_future()
        await self._place(channel)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.timeout)
        finally:
            if self._waiters.get(channel) is waiter and waiter.done():
                del self._waiters[channel]

    async def unsubscribe(self, channel: str) -> None:
        self.wanted.discard(channel)
        self._resweep.discard(channel)
        for link in list(self.links.values()):
            if channel in link.channels:
                await link.remove(channel)
        if channel in self.wanted:  # wanted again while we unsubscribed
            await self._place(channel)

    # ------------------------------------------------------------ placing channels

    async def _place(self, channel: str) -> None:
        name, host, port = self._owner(channel)
        link = self.links.get(name)
        if link is None:
            link = self.links[name] = Link(self, name, self._client_for(name, host, port))
            link.start()
        await link.add(channel)

    def _owner(self, channel: str) -> tuple[str, str, int]:
        if self.cluster is None:
            return SINGLE, "", 0
        node = self.cluster.owner(channel)
        return str(node.name), str(node.host), int(node.port)

    def _client_for(self, name: str, host: str, port: int) -> aioredis.Redis:
        if self.cluster is None:
            assert isinstance(self.client, aioredis.Redis)
            return self.client
        node_client = self._node_clients.get(name)
        if node_client is None:
            node_client = self._node_clients[name] = self.cluster.node_client(host, port)
        return node_client

    def retire(self, link: Link) -> None:
        """A link left with no channel closes: a node without rooms here has no link."""
        if self.links.get(link.name) is link:
            del self.links[link.name]
        task = asyncio.create_task(link.stop())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    def hand_back(self, link: Link, channels: set[str]) -> None:
        """Channels a link no longer carries (it failed, or their slot moved)."""
        if self.links.get(link.name) is link and not link.alive:
            del self.links[link.name]
        wanted = channels & self.wanted
        self._orphans |= wanted
        self._resweep |= wanted
        self._orphaned.set()

    async def _rehome_forever(self) -> None:
        while True:
            await self._orphaned.wait()
            await asyncio.sleep(next(self._delays))
            self._orphaned.clear()
            if self.cluster is not None:
                try:
                    await self.cluster.nodes_manager.initialize()  # who owns which slot now
                except (RedisError, OSError) as error:
                    log.warning("reading the cluster's slots failed (%s)", type(error).__name__)
                    self._orphaned.set()
                    continue
            orphans, self._orphans = self._orphans & self.wanted, set()
            for channel in orphans:
                try:
                    await self._place(channel)
                except (RedisError, OSError, LookupError) as error:
                    log.warning("placing a channel failed (%s)", type(error).__name__)
                    self._orphans.add(channel)
                    self._orphaned.set()

    def confirmed(self, channels: list[str]) -> list[str]:
        """Redis confirmed these subscriptions: wake their subscribe() calls; returns the
        ones placed again (their rooms need a sweep)."""
        self._delays = _backoff()
        swept = []
        for channel in channels:
            waiter = self._waiters.get(channel)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            if channel in self._resweep:
                self._resweep.discard(channel)
                swept.append(channel)
        return swept


class Link:
    """One subscriber connection and the channels it carries."""

    def __init__(self, owner: PubSubLinks, name: str, client: aioredis.Redis) -> None:
        self.owner = owner
        self.name = name
        self.client = client
        self.channels: set[str] = set()
        self.alive = True
        self._pubsub: Any = None  # redis-py's PubSub, once connected
        self._task: asyncio.Task[None] | None = None
        self._pings_sent = 0
        self._pings_seen = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"pubsub-link {self.name}")

    async def stop(self) -> None:
        self.alive = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._close()

    async def add(self, channel: str) -> None:
        self.channels.add(channel)
        if self._pubsub is not None:  # else connecting subscribes every channel
            await self._send(self._pubsub.ssubscribe, channel)

    async def remove(self, channel: str) -> None:
        self.channels.discard(channel)
        if self._pubsub is not None:
            await self._send(self._pubsub.sunsubscribe, channel)
        if not self.channels and self.alive:
            self.owner.retire(self)

    async def _send(self, command: Callable[[str], Awaitable[Any]], channel: str) -> None:
        try:
            await command(channel)
        except (RedisError, OSError) as error:
            # The reader hears of it too and fails the link.
            log.warning("pub/sub command failed (%s)", type(error).__name__)

    async def _run(self) -> None:
        pubsub: Any = self.client.pubsub()
        try:
            # One first command makes the connection; only then may add() use this PubSub
            # (two first commands at once would each open a connection).
            await pubsub.connect()
            await pubsub.ping(str(self._pings_sent))
            self._pubsub = pubsub
            for channel in list(self.channels):
                await pubsub.ssubscribe(channel)
            await self._read(pubsub)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            raise
        except (RedisError, OSError, ConnectionError) as error:
            metrics.RESUBSCRIBES.inc()
            log.warning("pubsub connection lost (%s); resubscribing", type(error).__name__)
        except Exception as error:
            metrics.RESUBSCRIBES.inc()
            if closed_transport(error):
                log.warning("pubsub connection lost (%s); resubscribing", type(error).__name__)
            else:
                log.exception("pubsub listener failed; resubscribing")
        self.alive = False
        self._pubsub = None
        with contextlib.suppress(Exception):
            await pubsub.aclose()
        self.owner.hand_back(self, set(self.channels))

    async def _read(self, pubsub: Any) -> None:
        next_ping = time.monotonic() + self.owner.ping_interval
        while True:
            message = await pubsub.get_message(timeout=min(1.0, self.owner.ping_interval))
            if message is not None:
                await self._on(message)
            now = time.monotonic()
            if now >= next_ping:
                next_ping = now + self.owner.ping_interval
                if self._pings_seen < self._pings_sent - 1:  # one interval of slack
                    log.warning("pub/sub missed its own ping; resubscribing")
                    raise ConnectionError("the subscription stopped delivering")
                self._pings_sent += 1
                await pubsub.ping(str(self._pings_sent))

    async def _on(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "smessage":
            await self.owner.on_message(message["channel"], message["data"])
        elif kind == "pong":
            with contextlib.suppress(ValueError):
                self._pings_seen = max(self._pings_seen, int(message["data"]))
        elif kind == "ssubscribe":
            swept = self.owner.confirmed([message["channel"].decode()])
            if swept:
                await self.owner.on_resubscribed(swept)
        elif kind == "sunsubscribe":
            channel = message["channel"].decode()
            if channel in self.channels:  # pushed by Redis: the slot has another owner
                self.channels.discard(channel)
                self.owner.hand_back(self, {channel})

    async def _close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()


def _backoff(initial: float = 0.05, cap: float = 2.0) -> Iterator[float]:
    delay = initial
    while True:
        yield delay
        delay = min(cap, delay * 2)
