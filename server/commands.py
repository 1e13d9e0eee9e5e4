"""Runs one command: apply it to the room with the pure core and commit it atomically.

Within a process, commands to one room run one at a time against a cached
copy of the room; across processes the commit's version check decides, and
the loser reloads and re-applies. A refusal is only given after checking the
copy is current, so a stale copy never refuses what the room allows. A
command id that was already committed returns its first sequence number and
changes nothing again, even when re-applying it now would be refused (a part
removed by the first attempt).
"""

from __future__ import annotations

import asyncio
import time
from typing import NoReturn

from rooms.actions import Command
from rooms.errors import Internal, RoomEnded, RoomError, RoomLost
from rooms.machine import Context, apply
from rooms.model import Role, Room

from . import metrics
from .hub import Hub
from .store import Store, encode_event, new_entity_id

MAX_ATTEMPTS = 8


class Executor:
    def __init__(self, store: Store, hub: Hub) -> None:
        self.store = store
        self.hub = hub
        self._rooms: dict[str, Room] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def forget(self, room_id: str) -> None:
        self._rooms.pop(room_id, None)
        lock = self._locks.get(room_id)
        if lock is not None and not lock.locked():
            del self._locks[room_id]

    def _lose(self, room_id: str) -> NoReturn:
        self._rooms.pop(room_id, None)
        self.hub.room_lost(room_id)
        raise RoomLost()

    async def execute(self, room_id: str, role: Role, command_id: str, command: Command) -> int:
        field = f"{role}:{command_id}"
        lock = self._locks.setdefault(room_id, asyncio.Lock())
        async with lock:
            room = self._rooms.get(room_id)
            if room is None or room.seq < self.hub.seen_seq(room_id):
                room = await self.store.load(room_id)
            for _ in range(MAX_ATTEMPTS):
                if room is None:
                    raise RoomEnded()
                try:
                    changed, event = apply(room, role, command, Context(time.time(), new_entity_id))
                except RoomError:
                    # A refusal must rest on the room as committed, not on a stale copy.
                    fresh = await self.store.load(room_id)
                    if fresh is not None and fresh.seq != room.seq:
                        room = fresh
                        continue
                    prior = await self.store.prior_seq(room_id, field)
                    if prior is not None:
                        return prior
                    raise
                result = await self.store.commit(room, changed, encode_event(event), field)
                if result.outcome == "ok":
                    self._rooms[room_id] = changed
                    await self.hub.deliver(room_id, event)
                    return result.seq
                if result.outcome == "dup":
                    return result.seq
                if result.outcome == "conflict":
                    metrics.COMMIT_CONFLICTS.inc()
                    if result.seq < room.seq:
                        # Redis is behind what was committed and acknowledged: a failover
                        # lost writes. Say so; never build on the shorter history.
                        self._lose(room_id)
                    room = await self.store.load(room_id)
                    continue
                self._rooms.pop(room_id, None)
                if result.outcome == "gone":
                    await self.store.refresh_run_id()
                if result.outcome == "lost" or not self.store.epoch_is_from_this_run(room.epoch):
                    self._lose(room_id)
                raise RoomEnded()
            raise Internal()
