"""Runs one command: apply it to the room with the pure core and commit it atomically.

Within a process, commands to one room run one at a time (the LiveRoom's command
lock) against its cached room; across processes the commit's version check
decides, and the loser reloads and re-applies. A refusal is only given after
checking the copy is current, so a stale copy never refuses what the room
allows. A command id that was already committed returns its first sequence
number and changes nothing again, even when re-applying it now would be refused
(a part removed by the first attempt). The path of a command through the server
is drawn in server/live_room.py.
"""

from __future__ import annotations

import time
from typing import NoReturn

from rooms.actions import Command
from rooms.errors import Internal, RoomEnded, RoomError, RoomLost
from rooms.machine import Context, apply
from rooms.model import Role

from . import metrics
from .live_room import LiveRoom
from .store import encode_event, new_entity_id

MAX_ATTEMPTS = 8


async def execute(live: LiveRoom, role: Role, command_id: str, command: Command) -> int:
    """Commit one command to the room and deliver its event here; returns its seq."""
    store = live.store
    field = f"{role}:{command_id}"
    async with live.command_lock:
        room = live.room
        if room is None or room.seq < live.delivered:
            room = await store.load(live.id)
        for _ in range(MAX_ATTEMPTS):
            if room is None:
                raise RoomEnded()
            try:
                changed, event = apply(room, role, command, Context(time.time(), new_entity_id))
            except RoomError:
                # A refusal must rest on the room as committed, not on a stale copy.
                fresh = await store.load(live.id)
                if fresh is not None and fresh.seq != room.seq:
                    room = fresh
                    continue
                prior = await store.prior_seq(live.id, field)
                if prior is not None:
                    await live.catch_up(prior)
                    return prior
                raise
            result = await store.commit(room, changed, encode_event(event), field)
            if result.outcome == "ok":
                live.room = changed
                await live.deliver(event)
                return result.seq
            if result.outcome == "dup":
                # Committed by an earlier attempt whose reply was lost (a retry after a
                # dropped Redis connection): this process may not have delivered it yet.
                await live.catch_up(result.seq)
                return result.seq
            if result.outcome == "conflict":
                metrics.COMMIT_CONFLICTS.inc()
                if result.seq < room.seq:
                    # Redis is behind what was committed and acknowledged: a failover
                    # lost writes. Say so; never build on the shorter history.
                    _lose(live)
                room = await store.load(live.id)
                continue
            live.room = None
            if result.outcome == "lost" or await store.was_lost(live.id, room.epoch):
                _lose(live)
            raise RoomEnded()
        raise Internal()


def _lose(live: LiveRoom) -> NoReturn:
    live.lose()
    raise RoomLost()
