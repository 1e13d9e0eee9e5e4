"""Who is connected, across processes, healed when a process dies.

Each connection is an entry of its room's presence set in Redis (see
server/store.py) that expires unless its process refreshes it: a heartbeat
refreshes every entry of this process every third of the TTL (and the rooms'
TTLs with it: a room with people in it is not idle), a slice of the rooms at a
time spread over that third (one pipeline over every room would hold the event
loop for tens of milliseconds at once), so the entries of a
process that died without a goodbye disappear within one TTL. A join or leave
anywhere publishes P on the room's channel and every other process recounts; the
process that made the change shows the counts its own round trip read. Two changes of
one room in flight here at once may come back in either order, so the last of them
recounts. The counts reach members through their LiveRoom (server/live_room.py). A death
publishes nothing, so every count also says when its first entry expires, and
the room is recounted then: a dead process's members are forgotten one TTL
after its last heartbeat, not at some later heartbeat of a survivor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Coroutine, Mapping
from typing import Any

from redis.exceptions import RedisError

from .live_room import LiveRoom, Member
from .store import Loaded, Present, Store

log = logging.getLogger("partsboard.presence")

COALESCE = 0.05
HEARTBEAT_SLICES = 20  # per round: each refreshes every 20th room


class Presence:
    def __init__(self, store: Store, rooms: Mapping[str, LiveRoom], *, ttl: float) -> None:
        self.store = store
        self.rooms = rooms
        self.ttl = ttl
        self._recounting: set[str] = set()
        # room id -> this process's presence changes of the room in flight; rooms where
        # two of them overlapped (recounted once the last is back)
        self._in_flight: dict[str, int] = {}
        self._overlapped: set[str] = set()
        self._expiries: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def member_id(self, role: str) -> str:
        return f"{self.store.origin}|{secrets.token_hex(6)}|{role}"

    async def join(self, live: LiveRoom, member: Member, *, state: bool = False,
                   since: int | None = None) -> Loaded:
        """Count the member in; reads the room too when asked (Store.presence_join)."""
        async with self._changing(live):
            present, loaded = await self.store.presence_join(
                live.id, member.presence_id, self.ttl, state=state, since=since)
            self._show(live, present)
        return loaded

    async def leave(self, live: LiveRoom, member: Member) -> None:
        with contextlib.suppress(RedisError, OSError):
            async with self._changing(live):
                self._show(live, await self.store.presence_leave(live.id, member.presence_id))

    @contextlib.asynccontextmanager
    async def _changing(self, live: LiveRoom) -> AsyncIterator[None]:
        room_id = live.id
        if self._in_flight.get(room_id):
            self._overlapped.add(room_id)
        self._in_flight[room_id] = self._in_flight.get(room_id, 0) + 1
        try:
            yield
        finally:
            self._in_flight[room_id] -= 1
            if not self._in_flight[room_id]:
                del self._in_flight[room_id]
                if room_id in self._overlapped:
                    self._overlapped.discard(room_id)
                    if self.rooms.get(room_id) is live:
                        self.recount_soon(live)

    async def forget_all(self) -> None:
        """At shutdown: remove this process's entries at once rather than let them expire."""
        for live in list(self.rooms.values()):
            for member in list(live.members):
                with contextlib.suppress(RedisError, OSError):
                    await self.store.presence_remove(live.id, member.presence_id)

    def recount_soon(self, live: LiveRoom) -> None:
        # Joins and leaves come in bursts (a reconnect storm): one recount per burst.
        if live.id in self._recounting:
            return
        self._recounting.add(live.id)

        async def recount() -> None:
            await asyncio.sleep(COALESCE)
            self._recounting.discard(live.id)
            with contextlib.suppress(RedisError, OSError):
                self._show(live, await self.store.presence_counts(live.id))

        self._spawn(recount())

    def _show(self, live: LiveRoom, present: Present) -> None:
        live.show_presence(present.counts)
        timer = self._expiries.pop(live.id, None)
        if timer is not None:
            timer.cancel()
        if present.next_expiry_ms is None or not live.members:
            return
        delay = max(0.0, present.next_expiry_ms / 1000 - time.time()) + COALESCE
        self._expiries[live.id] = asyncio.get_running_loop().call_later(
            delay, self._expired, live)

    def _expired(self, live: LiveRoom) -> None:
        self._expiries.pop(live.id, None)
        if self.rooms.get(live.id) is live:
            self.recount_soon(live)

    def start(self) -> None:
        self._spawn(self._heartbeat_forever())

    async def stop(self) -> None:
        for timer in self._expiries.values():
            timer.cancel()
        self._expiries.clear()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _heartbeat_forever(self) -> None:
        while True:
            # A room that joins during a round was refreshed by its join; it is in the next.
            room_ids = list(self.rooms)
            for number in range(HEARTBEAT_SLICES):
                await asyncio.sleep(self.ttl / 3 / HEARTBEAT_SLICES)
                rooms = {room_id: [member.presence_id for member in live.members]
                         for room_id in room_ids[number::HEARTBEAT_SLICES]
                         if (live := self.rooms.get(room_id)) is not None}
                if rooms:
                    await self._beat(rooms)

    async def _beat(self, rooms: dict[str, list[str]]) -> None:
        # One node at a time: a node that is down delays only its own rooms.
        for group in self.store.by_node(list(rooms)):
            try:
                found = await self.store.heartbeat({r: rooms[r] for r in group}, self.ttl)
            except (RedisError, OSError) as error:
                log.warning("heartbeat failed (%s)", type(error).__name__)
                continue
            for room_id, present in found.items():
                live = self.rooms.get(room_id)
                if live is not None:
                    self._show(live, present)
