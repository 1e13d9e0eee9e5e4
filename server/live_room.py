"""One room as this process serves it: its members here, and what they were sent.

The path of one command, and of what it changes, through this process:

    server/session.py     the reader decodes a frame (rooms/wire.py) and its args
          |               (rooms/actions.py)
    server/commands.py    under the room's command lock: apply it to the cached room
          |               (rooms/machine.py), commit it atomically (server/store.py)
    server/live_room.py   deliver the event in order: each member gets what its role
          |               may see (rooms/views.py) as an `ev` frame (rooms/wire.py)
    server/session.py     the member's bounded send queue; the writer sends it

Events committed by other processes arrive through the pub/sub link
(server/pubsub.py), which the hub (server/hub.py) routes to the same `deliver`.

A LiveRoom exists while the room has members in this process; the hub opens it
on the first join and drops it with the last leave, and its cache goes with it.
An event is delivered only in order: an older one is dropped as a duplicate, a
newer one that leaves a gap first fills the gap from the room's event log. Local
commits and pub/sub use the same path, so whichever comes first wins.

Two locks, never held the other way round: `command_lock` runs this process's
commands one at a time against the cached room (held across Redis round trips),
and `delivery_lock` keeps delivery in order while a gap is filled from the log. A
command delivers its own event while holding the command lock; deliveries from
pub/sub never wait for a command.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from rooms import wire
from rooms.errors import Close, RoomEnded, RoomLost
from rooms.model import Role, Room
from rooms.stages import DRAG_RULE
from rooms.views import Audience, Event, entities, event_for

from . import metrics
from .store import DragMessage, Store, decode_event

log = logging.getLogger("partsboard.room")

RECENT_EVENTS = 256
# How long drags stay off Redis once a publish found no other process listening.
UNHEARD_PAUSE = 1.0

# The few audiences there are, shared by every part of every room rather than one set each.
_AUDIENCES: dict[Audience, Audience] = {}


def _shared(audience: Audience) -> Audience:
    return _AUDIENCES.setdefault(audience, audience)

_ENDED_FRAME = wire.encode(wire.ended())
_LOST_FRAME = wire.encode(wire.refusal(RoomLost()))
_RELINKED_FRAME = wire.encode(wire.refusal(RoomEnded("This link was replaced by your therapist.")))


class Member(Protocol):
    role: Role
    secret_hash: str
    presence_id: str

    def push(self, seq: int | None, frame: bytes, read_at: float = 0.0) -> None: ...
    def shut(self, code: int, frame: bytes | None = None) -> None: ...


class LiveRoom:
    def __init__(self, room_id: str, epoch: str, store: Store) -> None:
        self.id = room_id
        self.epoch = epoch
        self.store = store
        self.members: set[Member] = set()
        # The newest committed state this process holds: loaded, or written by its own
        # last command. Events from other processes make it stale (room.seq < delivered).
        self.room: Room | None = None
        self.delivered = -1
        self.presence: dict[str, int] = {}
        self.ready = asyncio.Event()  # set once the hub has loaded the room (or failed to)
        self.command_lock = asyncio.Lock()
        self.delivery_lock = asyncio.Lock()
        # part id -> (owner, audience): enough to route a live drag without the room state
        self._parts: dict[str, tuple[str, Audience]] = {}
        self._drags_allowed = False
        self._drags_unheard_until = 0.0
        # seq -> commit time of recent events: a different event under a seq already
        # delivered means Redis lost acknowledged writes (a failover) and reused the seq.
        self._recent: dict[int, float] = {}

    def start_from(self, room: Room) -> None:
        """Take a freshly loaded room as the point delivery continues from."""
        self.room = room
        self.delivered = room.seq
        self._parts = {key: (part.owner, _shared(audience))
                       for key, part, audience in entities(room, "parts")}
        self._learn_board(room.board.stage, room.board.frozen)

    def current_room(self) -> Room | None:
        """The cached room when it is exactly what the members were last sent."""
        if self.room is not None and self.room.seq == self.delivered:
            return self.room
        return None

    def _learn_board(self, stage: int, frozen: bool) -> None:
        self._drags_allowed = stage >= DRAG_RULE.stage and not frozen

    # ------------------------------------------------------------ events

    async def deliver(self, event: Event) -> None:
        if event.seq <= self.delivered:
            seen = self._recent.get(event.seq)
            if seen is not None and seen != event.at:
                self.lose()
            return
        if event.seq == self.delivered + 1 and not self.delivery_lock.locked():
            self._fan_out(event)
            return
        async with self.delivery_lock:
            if event.seq > self.delivered + 1:
                await self._fill_gap(event.seq - 1)
            if event.seq == self.delivered + 1:
                self._fan_out(event)

    async def catch_up(self, seq: int) -> None:
        """Deliver every event up to `seq` (committed in Redis) not delivered yet."""
        if seq > self.delivered:
            async with self.delivery_lock:
                if seq > self.delivered:
                    await self._fill_gap(seq)

    async def _fill_gap(self, upto: int) -> None:
        blobs = await self.store.events_since(self.id, self.delivered)
        if blobs is None:
            # The log no longer reaches back: members resume and get a snapshot.
            metrics.RESYNCS.inc()
            self._close_all(Close.RESYNC, None)
            room = await self.store.load(self.id)
            if room is not None:
                self.start_from(room)
            return
        metrics.GAPS_FILLED.inc()
        for blob in blobs:
            event = decode_event(blob)
            if event.seq == self.delivered + 1 and event.seq <= upto:
                self._fan_out(event)

    def _fan_out(self, event: Event) -> None:
        self.delivered = event.seq
        self._recent[event.seq] = event.at
        self._recent.pop(event.seq - RECENT_EVENTS, None)
        for change in event.changes:
            if change.coll == "parts":
                if change.value is None:
                    self._parts.pop(change.id, None)
                else:
                    self._parts[change.id] = (change.value["owner"],
                                              _shared(frozenset(change.audience)))
            elif change.coll == "room" and change.id == "board":
                self._learn_board(change.value["stage"], change.value["frozen"])
        frames: dict[Role, bytes] = {}
        for member in list(self.members):
            frame = frames.get(member.role)
            if frame is None:
                frame = frames[member.role] = wire.encode(
                    wire.event(event_for(event, member.role)))
            member.push(event.seq, frame)
        metrics.EVENTS_OUT.inc(len(self.members))

    # ------------------------------------------------------------ drags

    async def drag(self, sender: Member, part: str, x: float, y: float,
                   read_at: float = 0.0) -> bool:
        """Route a live drag of one of the sender's parts; False when it is dropped.
        `read_at`: when its frame was read (perf_counter), for the relay time metric."""
        known = self._parts.get(part)
        if known is None or known[0] != sender.role or not self._drags_allowed:
            return False
        message = DragMessage(self.store.origin, part, x, y, sender.role)
        self._relay_drag(message, known[1], exclude=sender, read_at=read_at)
        # Drags are not stored: other processes only need them when they have members.
        if (sum(self.presence.values()) > len(self.members)
                and time.monotonic() >= self._drags_unheard_until):
            if await self.store.publish_drag(self.id, message) <= 1:
                # Only this process listens: the members counted elsewhere are a dead
                # process's, whose presence entries count until they expire (a restart's
                # storm would publish every drag of every room for that long).
                self._drags_unheard_until = time.monotonic() + UNHEARD_PAUSE
        return True

    def remote_drag(self, message: DragMessage) -> None:
        # Route with this process's own view of the part, which has seen every
        # earlier event on the channel (a part withdrawn just before is not leaked).
        known = self._parts.get(message.part)
        if known is None or known[0] != message.by or not self._drags_allowed:
            return
        self._relay_drag(message, known[1], exclude=None)

    def _relay_drag(self, message: DragMessage, audience: Audience,
                    exclude: Member | None, read_at: float = 0.0) -> None:
        frame = wire.encode(wire.dragged(message.part, message.x, message.y, message.by))
        for member in list(self.members):
            # The same person's other tabs see the drag; the dragging connection does not.
            if member.role in audience and member is not exclude:
                member.push(None, frame, read_at)

    # ------------------------------------------------------------ presence and endings

    def show_presence(self, counts: dict[str, int]) -> None:
        if counts != self.presence:
            self.presence = counts
            self._drags_unheard_until = 0.0  # someone may listen now
            frame = wire.encode(wire.presence(counts))
            for member in list(self.members):
                member.push(None, frame)

    def end(self) -> None:
        self._close_all(Close.ENDED, _ENDED_FRAME)

    def lose(self) -> None:
        """Tell every member here plainly: the store no longer holds what they saw."""
        self.room = None
        log.warning("room lost by the store: room=%s", self.id)
        self._close_all(Close.LOST, _LOST_FRAME)

    def relinked(self, role: str, new_hash: str) -> None:
        for member in list(self.members):
            if member.role == role and member.secret_hash != new_hash:
                member.shut(Close.INVALID_LINK, _RELINKED_FRAME)

    def _close_all(self, code: int, frame: bytes | None) -> None:
        for member in list(self.members):
            member.shut(code, frame)
