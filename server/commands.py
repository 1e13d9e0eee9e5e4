"""Runs one command: apply it to the room with the pure core and commit it atomically.

Within a process, commands to one room run one at a time (the LiveRoom's command
lock) against its cached room; across processes the commit's version check
decides, and the loser reloads and re-applies. A refusal is only given after
checking the copy is current, so a stale copy never refuses what the room
allows. A command id that was already committed returns its first sequence
number and changes nothing again, even when re-applying it now would be refused
(a part removed by the first attempt). The path of a command through the server
is drawn in server/live_room.py.

Overload is answered, never waited out: a command waits at most `wait` seconds for
its room's lock and for one of the process's commit slots (fewer than the Redis
pool's connections, so commits never queue inside the pool); past that it gets
`busy` with a pause to wait (CommitSlots.pause), and the client sends it again under
the same id. Once it holds both, its Redis work is never cut short.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import time
from typing import NoReturn

from rooms.actions import Command
from rooms.errors import Busy, Internal, RoomEnded, RoomError, RoomLost
from rooms.machine import Context, apply
from rooms.model import Role

from . import metrics
from .live_room import LiveRoom
from .store import CommitResult, encode_event, new_entity_id

MAX_ATTEMPTS = 8
NOT_REPLICATED = "This change is not yet safe on a second server; it will be sent again."


MAX_PAUSE = 5.0  # seconds; well under the clients' limit and the session's busy episode
RATE_WINDOW = 0.5  # seconds over which the commit rate is sampled while commands queue
RATE_TTL = 5.0  # seconds a sample counts: an old one says nothing of the load now


class CommitSlots:
    """How many commands of this process may be at work on Redis at once, how long one
    waits for its turn (room lock and slot together) before it is answered busy, and how
    long a command answered busy should stay away.

    The pause is the time the commands ahead of it take at the rate commits complete now:
    those waiting for a turn and those told to come back and not yet due, over the
    commit rate measured while commands queued. So under a long overload the clients
    come back about when their turn comes (once or twice each) instead of every second;
    jittered so that a crowd does not come back at one moment. Never under half the
    commit wait (a room's lock held up by a slow Redis) nor over MAX_PAUSE."""

    def __init__(self, slots: int, wait: float) -> None:
        self.semaphore = asyncio.Semaphore(slots)
        self.wait = wait
        self.waiting = 0  # commands waiting for their room's lock and a slot
        self._away: list[float] = []  # heap: when each command answered busy is due back
        self._rate = 0.0  # commits per second while commands queued (0: not measured)
        self._rate_at = 0.0
        self._finished = 0
        self._mark = (time.monotonic(), 0)
        self.queued = False  # a command waited or was answered busy since the mark

    def finished(self) -> None:
        self._finished += 1
        now = time.monotonic()
        since, count = self._mark
        if now - since >= RATE_WINDOW:
            if self.queued:
                sample = (self._finished - count) / (now - since)
                fresh = self._rate and now - self._rate_at < RATE_TTL
                self._rate = (self._rate + sample) / 2 if fresh else sample
                self._rate_at = now
            self._mark, self.queued = (now, self._finished), False

    def pause(self) -> float:
        """The pause for a command answered busy now (see the class)."""
        self.queued = True
        now = time.monotonic()
        while self._away and self._away[0] <= now:
            heapq.heappop(self._away)
        ahead = self.waiting + len(self._away)
        measured = self._rate and now - self._rate_at < RATE_TTL
        base = ahead / self._rate if measured else self.wait
        return round(min(MAX_PAUSE, max(self.wait / 2, base)) * random.uniform(0.75, 1.25), 3)

    def told(self, pause: float) -> None:
        """A command was answered busy with this pause: it is away until then."""
        heapq.heappush(self._away, time.monotonic() + pause)


async def execute(live: LiveRoom, role: Role, command_id: str, command: Command,
                  slots: CommitSlots | None = None, waited: float = 0.0) -> int:
    """Commit one command to the room and deliver its event here; returns its seq.
    `waited`: how long it already waited since it arrived. Without `slots` it waits for
    the room's lock as long as it takes."""
    lock = live.command_lock
    if slots is None:
        async with lock:
            return await _execute(live, role, command_id, command)
    if waited >= slots.wait:
        raise Busy()
    contended = lock.locked() or slots.semaphore.locked()
    if contended:
        slots.queued = True
    if contended or slots.waiting:
        await _wait_for_turn(lock, slots, slots.wait - waited)
    else:  # nothing holds or awaits either: both are taken at once, no time-out needed
        await lock.acquire()
        await slots.semaphore.acquire()
    try:
        return await _execute(live, role, command_id, command)
    finally:
        slots.semaphore.release()
        lock.release()
        slots.finished()


async def _wait_for_turn(lock: asyncio.Lock, slots: CommitSlots, wait: float) -> None:
    """The room's lock, then a commit slot, within `wait` seconds (else Busy)."""
    slots.waiting += 1
    try:
        async with asyncio.timeout(wait):
            await lock.acquire()
            try:
                await slots.semaphore.acquire()
            except BaseException:
                lock.release()
                raise
    except TimeoutError:
        raise Busy() from None
    finally:
        slots.waiting -= 1


async def _execute(live: LiveRoom, role: Role, command_id: str, command: Command) -> int:
    store = live.store
    field = f"{role}:{command_id}"
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
            if result.durable:  # else not yet: members see only what replicas hold
                await live.deliver(event)
            return _acknowledged(result)
        if result.outcome == "dup":
            # Committed by an earlier attempt whose reply was lost (a retry after a dropped
            # Redis connection, a resend after busy): this process may not have delivered it.
            await live.catch_up(result.seq)
            return _acknowledged(result)
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


def _acknowledged(result: CommitResult) -> int:
    if not result.durable:
        # Applied, but durable acks asked for replicas that did not confirm it in time: not
        # acknowledged. The client sends it again under the same id: applied once, and
        # acknowledged once the replicas confirm.
        metrics.NOT_REPLICATED.inc()
        raise Busy(NOT_REPLICATED)
    return result.seq


def _lose(live: LiveRoom) -> NoReturn:
    live.lose()
    raise RoomLost()
