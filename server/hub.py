"""This process's rooms: a LiveRoom for each room with members here.

The hub opens a LiveRoom (server/live_room.py) on a room's first join here,
subscribed through the pub/sub links (server/pubsub.py) before the room is
loaded so no event falls between them, and drops it with the last leave. It
routes each pub/sub message to its room, and it sweeps: it compares rooms with
Redis and fills what pub/sub did not bring, so a process whose subscription
silently dropped messages still catches up. It sweeps a room whenever its
channel is subscribed again (a link reconnected, or the room's slot moved to
another node), and a bounded, rotating share of every room every interval: a
second line of defence that costs the same at any scale. A sweep reads Redis
one node at a time (server/store.py groups rooms by node), so a node that is
down delays only its own rooms. Presence is server/presence.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.exceptions import RedisError

from . import metrics
from .commands import CommitSlots
from .live_room import LiveRoom, Member
from .presence import Presence
from .pubsub import PubSubLinks
from .redis_urls import RedisClient
from .store import (
    TAG_DRAG,
    TAG_ENDED,
    TAG_EVENT,
    TAG_PRESENCE,
    TAG_RELINK,
    Keys,
    Loaded,
    Store,
    decode_drag,
    room_of_channel,
)

log = logging.getLogger("partsboard.hub")

# Every interval the sweep reads up to SWEEP_TICKS * SWEEP_SLICE rooms, a slice per tick:
# small pipelines often rather than one big one that holds the event loop.
SWEEP_TICKS = 4
SWEEP_SLICE = 25


class Hub:
    def __init__(self, store: Store, pubsub_client: RedisClient, *,
                 sweep_interval: float = 2.0, presence_ttl: float = 15.0,
                 concurrent_handshakes: int = 32, commit_slots: int = 32,
                 commit_wait: float = 1.0) -> None:
        self.store = store
        self.sweep_interval = sweep_interval
        self.rooms: dict[str, LiveRoom] = {}
        self.presence = Presence(store, self.rooms, ttl=presence_ttl)
        self.link = PubSubLinks(pubsub_client, on_message=self._on_message,
                                on_resubscribed=self._resubscribed,
                                ping_interval=sweep_interval)
        # A reconnect storm queues its handshakes here rather than exhausting the Redis pool.
        self.handshakes = asyncio.Semaphore(concurrent_handshakes)
        # Commands queue here, and are answered busy past commit_wait, not in the pool.
        self.commits = CommitSlots(commit_slots, commit_wait)
        self._sweeper: asyncio.Task[None] | None = None
        self._sweep_cursor = 0

    async def start(self) -> None:
        await self.link.start()
        self.presence.start()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="hub-sweep")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._sweeper
        await self.presence.stop()
        await self.link.stop()
        await self.presence.forget_all()

    # ------------------------------------------------------------ members

    async def join(self, room_id: str, epoch: str, member: Member,
                   since: int | None = None) -> tuple[LiveRoom, Loaded]:
        """Join the member to the room here, and the room it starts from: the cached one
        when it is what the members were last sent and no replay is asked, else read
        fresh, with the events after `since`, in the presence join's round trip."""
        while True:
            live = self.rooms.get(room_id)
            if live is None:
                live = await self._open(room_id, epoch)
            else:
                await live.ready.wait()
            # A member only ever joins the room that is current here (one whose opening
            # failed, or that emptied meanwhile, would never hear of events), and nothing
            # awaits between this check and joining it.
            if self.rooms.get(room_id) is live:
                live.members.add(member)
                break
        metrics.CONNECTIONS.inc()
        current = live.current_room() if since is None else None
        try:
            loaded = await self.presence.join(live, member, state=current is None,
                                              since=since)
        except BaseException:
            await self._drop(live, member)
            raise
        return live, (current, None) if current is not None else loaded

    async def _open(self, room_id: str, epoch: str) -> LiveRoom:
        live = self.rooms[room_id] = LiveRoom(room_id, epoch, self.store)
        try:
            await self.link.subscribe(Keys(room_id).channel)
            room = await self.store.load(room_id)
            if room is not None:
                live.start_from(room)
        except BaseException:
            if self.rooms.get(room_id) is live:
                del self.rooms[room_id]
                await self.link.unsubscribe(Keys(room_id).channel)
            raise
        finally:
            live.ready.set()
        return live

    async def leave(self, live: LiveRoom, member: Member) -> None:
        if await self._drop(live, member):
            await self.presence.leave(live, member)

    async def _drop(self, live: LiveRoom, member: Member) -> bool:
        if member not in live.members:
            return False
        live.members.discard(member)
        metrics.CONNECTIONS.dec()
        if not live.members and self.rooms.get(live.id) is live:
            del self.rooms[live.id]
            await self.link.unsubscribe(Keys(live.id).channel)
        return True

    # ------------------------------------------------------------ pub/sub

    async def _on_message(self, channel: bytes, data: bytes) -> None:
        live = self.rooms.get(room_of_channel(channel))
        if live is None or not data:
            return
        tag = data[:1]
        if tag == TAG_EVENT:
            event = self.store.foreign_event(data)
            if event is not None:
                await live.deliver(event)
        elif tag == TAG_DRAG:
            message = decode_drag(data)
            if message.origin != self.store.origin:
                live.remote_drag(message)
        elif tag == TAG_PRESENCE:
            # This process's own changes were counted by their own round trip.
            if data != self.store.presence_message:
                self.presence.recount_soon(live)
        elif tag == TAG_ENDED:
            live.end()
        elif tag == TAG_RELINK:
            role, new_hash = data[1:].decode().split(":", 1)
            live.relinked(role, new_hash)

    # ------------------------------------------------------------ sweep

    async def _resubscribed(self, channels: list[str]) -> None:
        await self.sweep([room_of_channel(channel) for channel in channels])

    async def sweep(self, room_ids: list[str]) -> None:
        """Catch these rooms up with Redis; tell members of rooms that vanished. One node
        at a time: a node that fails leaves its rooms for the next sweep, not the others."""
        failed: BaseException | None = None
        for group in self.store.by_node(room_ids):
            try:
                await self._sweep(group)
            except (RedisError, OSError) as error:
                failed = error
        if failed is not None:
            raise failed

    async def _sweep(self, room_ids: list[str]) -> None:
        rooms = [live for room_id in room_ids if (live := self.rooms.get(room_id)) is not None]
        if not rooms:
            return
        # What was delivered before the read is committed, so Redis's seq can only be
        # lower than that if it lost writes; events delivered during the read prove nothing.
        delivered = [live.delivered for live in rooms]
        rows = await self.store.meta_seq_epoch([live.id for live in rooms])
        gone = [(live.id, live.epoch) for live, row in zip(rooms, rows, strict=True)
                if row is None]
        lost = dict(zip(gone, await self.store.were_lost(gone), strict=True))
        for live, row, was_delivered in zip(rooms, rows, delivered, strict=True):
            if row is None:
                if lost[live.id, live.epoch]:
                    live.lose()
                else:
                    live.end()
            elif row[1] != live.epoch:
                live.lose()
            elif row[0] < was_delivered:  # Redis lost acknowledged writes
                live.lose()
            else:
                await live.catch_up(row[0])

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval / SWEEP_TICKS)
            try:
                await self.sweep(self._next_slice())
            except (RedisError, OSError) as error:
                log.warning("sweep failed (%s)", type(error).__name__)
            except Exception:
                log.exception("sweep failed")

    def _next_slice(self) -> list[str]:
        room_ids = list(self.rooms)
        if len(room_ids) <= SWEEP_SLICE:
            return room_ids
        start = self._sweep_cursor % len(room_ids)
        self._sweep_cursor = start + SWEEP_SLICE
        return (room_ids + room_ids)[start:start + SWEEP_SLICE]
