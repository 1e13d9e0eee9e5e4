"""This process's window on Redis pub/sub: one subscription per room with local members.

Each room with members here has a Feed holding the last sequence number it
delivered. An event is delivered only in order: an older one is dropped as a
duplicate, a newer one that leaves a gap first fills the gap from the room's
event log. The same path serves events committed by this process (handed over
directly after the commit, for latency) and those arriving through pub/sub, so
whichever comes first wins and the other is dropped. A sweep compares every
feed with the room's sequence number in Redis, so a process whose subscription
silently dropped messages still catches up: it never goes deaf.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from rooms import wire
from rooms.errors import RoomLost
from rooms.model import ROLES, Role, Room
from rooms.stages import DRAG_RULE
from rooms.views import Event, entities, event_for

from . import metrics
from .store import (
    TAG_DRAG,
    TAG_ENDED,
    TAG_EVENT,
    TAG_PRESENCE,
    TAG_RELINK,
    Keys,
    Store,
    decode_event,
    room_of_channel,
)

log = logging.getLogger("partsboard.hub")

CLOSE_ENDED = 4000
CLOSE_INVALID_LINK = 4404
CLOSE_RESYNC = 4408
CLOSE_LOST = 4409


class Member(Protocol):
    role: Role
    secret_hash: str
    presence_id: str

    def push(self, seq: int | None, frame: bytes) -> None: ...
    def shut(self, code: int, frame: bytes | None = None) -> None: ...


@dataclass
class Feed:
    room_id: str
    epoch: str
    last_seq: int
    members: set[Member] = field(default_factory=set)
    # part id -> (owner, audience): enough to route a live drag without the room state
    parts: dict[str, tuple[str, frozenset[str]]] = field(default_factory=dict)
    presence: dict[str, int] = field(default_factory=dict)
    drags_allowed: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def learn_parts(self, room: Room) -> None:
        self.parts = {key: (part.owner, audience)
                      for key, part, audience in entities(room, "parts")}
        self.learn_board(room.board.stage, room.board.frozen)

    def learn_board(self, stage: int, frozen: bool) -> None:
        self.drags_allowed = stage >= DRAG_RULE.stage and not frozen


_LOST_FRAME = wire.error(RoomLost.code, RoomLost.default_message)
_drag_encoder = msgspec.msgpack.Encoder()
_drag_decoder = msgspec.msgpack.Decoder()


class Hub:
    def __init__(self, store: Store, pubsub_client: aioredis.Redis, *,
                 sweep_interval: float = 2.0, presence_ttl: float = 15.0) -> None:
        self.store = store
        self.pubsub_client = pubsub_client
        self.sweep_interval = sweep_interval
        self.presence_ttl = presence_ttl
        self.process_id = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.feeds: dict[str, Feed] = {}
        self._pubsub: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = asyncio.Event()
        self._closing = False

    # ------------------------------------------------------------ life

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="hub-listen"),
            asyncio.create_task(self._sweep_forever(), name="hub-sweep"),
            asyncio.create_task(self._heartbeat_forever(), name="hub-heartbeat"),
        ]
        await asyncio.wait_for(self._subscribed.wait(), timeout=10)

    async def stop(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for feed in list(self.feeds.values()):
            for member in list(feed.members):
                with contextlib.suppress(RedisError, OSError):
                    await self.store.presence_remove(feed.room_id, member.presence_id)
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()

    # ------------------------------------------------------------ members

    async def join(self, room_id: str, epoch: str, member: Member) -> tuple[Feed, Room | None]:
        """Register a member. Returns the feed, and the room state when this join
        loaded it (the first member of a room here), so the caller can reuse it."""
        loaded: Room | None = None
        feed = self.feeds.get(room_id)
        if feed is None:
            feed = Feed(room_id, epoch, last_seq=-1)
            self.feeds[room_id] = feed
            try:
                with contextlib.suppress(RedisError, OSError, AttributeError):
                    # If the subscription is down, the listener resubscribes every feed.
                    await self._pubsub.subscribe(Keys(room_id).channel)
                loaded = await self.store.load(room_id)
            except BaseException:
                self.feeds.pop(room_id, None)
                feed.ready.set()
                raise
            if loaded is not None:
                feed.last_seq = loaded.seq
                feed.learn_parts(loaded)
            feed.ready.set()
        else:
            await feed.ready.wait()
        feed.members.add(member)
        metrics.CONNECTIONS.inc()
        await self.store.presence_put(room_id, [member.presence_id], self.presence_ttl)
        await self._presence_changed(feed, announce=True)
        return feed, loaded

    async def leave(self, room_id: str, member: Member) -> bool:
        """Unregister a member; True when the room has no member left in this process."""
        feed = self.feeds.get(room_id)
        if feed is None or member not in feed.members:
            return feed is None
        feed.members.discard(member)
        metrics.CONNECTIONS.dec()
        with contextlib.suppress(RedisError, OSError):
            await self.store.presence_remove(room_id, member.presence_id)
        if not feed.members:
            self.feeds.pop(room_id, None)
            with contextlib.suppress(Exception):
                await self._pubsub.unsubscribe(Keys(room_id).channel)
        with contextlib.suppress(RedisError, OSError):
            await self._presence_changed(feed, announce=True)
        return not feed.members

    # ------------------------------------------------------------ events

    async def deliver(self, room_id: str, event: Event) -> None:
        feed = self.feeds.get(room_id)
        if feed is None:
            return
        if event.seq <= feed.last_seq:
            return
        if event.seq == feed.last_seq + 1 and not feed.lock.locked():
            self._fan_out(feed, event)
            return
        async with feed.lock:
            if event.seq > feed.last_seq + 1:
                await self._fill_gap(feed, event.seq - 1)
            if event.seq == feed.last_seq + 1:
                self._fan_out(feed, event)

    async def _fill_gap(self, feed: Feed, upto: int) -> None:
        blobs = await self.store.events_since(feed.room_id, feed.last_seq)
        if blobs is None:
            # The log no longer reaches back: members resume and get a snapshot.
            metrics.RESYNCS.inc()
            for member in list(feed.members):
                member.shut(CLOSE_RESYNC)
            room = await self.store.load(feed.room_id)
            if room is not None:
                feed.last_seq = room.seq
                feed.learn_parts(room)
            return
        metrics.GAPS_FILLED.inc()
        for blob in blobs:
            event = decode_event(blob)
            if event.seq == feed.last_seq + 1 and event.seq <= upto:
                self._fan_out(feed, event)

    def _fan_out(self, feed: Feed, event: Event) -> None:
        feed.last_seq = event.seq
        for change in event.changes:
            if change.coll == "parts":
                if change.value is None:
                    feed.parts.pop(change.id, None)
                else:
                    feed.parts[change.id] = (change.value["owner"], frozenset(change.audience))
            elif change.coll == "room" and change.id == "board":
                feed.learn_board(change.value["stage"], change.value["frozen"])
        frames: dict[Role, bytes] = {}
        for member in list(feed.members):
            frame = frames.get(member.role)
            if frame is None:
                body = event_for(event, member.role)
                body["t"] = "ev"
                frame = frames[member.role] = wire.encode(body)
            member.push(event.seq, frame)
        metrics.EVENTS_OUT.inc(len(feed.members))

    # ------------------------------------------------------------ drags

    async def drag(self, room_id: str, actor: Role, part: str, x: float, y: float) -> bool:
        feed = self.feeds.get(room_id)
        if feed is None:
            return False
        known = feed.parts.get(part)
        if known is None or known[0] != actor or not feed.drags_allowed:
            return False
        body = {"t": "drag", "part": part, "x": x, "y": y, "by": actor}
        self._fan_out_drag(feed, body, known[1], exclude_role=None)
        # Drags are not stored: other processes only need them when they have members.
        if sum(feed.presence.values()) > len(feed.members):
            await self.store.publish(room_id, TAG_DRAG + _drag_encoder.encode(
                {"p": self.process_id, "d": body}))
        return True

    def _fan_out_drag(self, feed: Feed, body: dict[str, Any], audience: frozenset[str],
                      exclude_role: Role | None) -> None:
        frame = wire.encode(body)
        for member in list(feed.members):
            if member.role in audience and member.role != exclude_role:
                member.push(None, frame)

    def _remote_drag(self, feed: Feed, payload: bytes) -> None:
        message = _drag_decoder.decode(payload)
        if message.get("p") == self.process_id:
            return
        body = message["d"]
        # Route with this process's own view of the part, which has seen every
        # earlier event on the channel (a part withdrawn just before is not leaked).
        known = feed.parts.get(body["part"])
        if known is None or known[0] != body["by"] or not feed.drags_allowed:
            return
        self._fan_out_drag(feed, body, known[1], exclude_role=None)

    # ------------------------------------------------------------ pub/sub

    async def _listen(self) -> None:
        delays = _backoff()
        while not self._closing:
            try:
                self._pubsub = self.pubsub_client.pubsub(ignore_subscribe_messages=True)
                await self._pubsub.subscribe(f"pb:hub:{self.process_id}")
                for room_id in list(self.feeds):
                    await self._pubsub.subscribe(Keys(room_id).channel)
                self._subscribed.set()
                delays = _backoff()
                await self.sweep()
                while not self._closing:
                    message = await self._pubsub.get_message(timeout=1.0)
                    if message is not None and message["type"] == "message":
                        await self._on_message(message["channel"], message["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as error:
                metrics.RESUBSCRIBES.inc()
                log.warning("pubsub connection lost (%s); resubscribing", type(error).__name__)
                with contextlib.suppress(Exception):
                    await self._pubsub.aclose()
                await asyncio.sleep(next(delays))
            except Exception:
                log.exception("hub listener failed; restarting it")
                await asyncio.sleep(next(delays))

    async def _on_message(self, channel: bytes, data: bytes) -> None:
        room_id = room_of_channel(channel)
        feed = self.feeds.get(room_id)
        if feed is None or not data:
            return
        tag, payload = data[:1], data[1:]
        if tag == TAG_EVENT:
            await self.deliver(room_id, decode_event(payload))
        elif tag == TAG_DRAG:
            self._remote_drag(feed, payload)
        elif tag == TAG_PRESENCE:
            await self._presence_changed(feed, announce=False)
        elif tag == TAG_ENDED:
            self._close_all(feed, CLOSE_ENDED, wire.encode({"t": "ended"}))
        elif tag == TAG_RELINK:
            role, new_hash = payload.decode().split(":", 1)
            for member in list(feed.members):
                if member.role == role and member.secret_hash != new_hash:
                    member.shut(CLOSE_INVALID_LINK, wire.encode(wire.error(
                        "room_ended", "This link was replaced by your therapist.")))

    def _close_all(self, feed: Feed, code: int, frame: bytes | None) -> None:
        for member in list(feed.members):
            member.shut(code, frame)

    # ------------------------------------------------------------ sweep

    async def sweep(self) -> None:
        """Catch up every feed with Redis; tell members of rooms that vanished."""
        if not self.feeds:
            return
        room_ids = list(self.feeds)
        rows = await self.store.meta_seq_epoch(room_ids)
        run_changed = False
        if any(row is None for row in rows):
            previous = self.store.run_id
            run_changed = await self.store.refresh_run_id() != previous
        for room_id, row in zip(room_ids, rows, strict=True):
            feed = self.feeds.get(room_id)
            if feed is None:
                continue
            if row is None or row[1] != feed.epoch:
                lost = run_changed or row is not None
                code = CLOSE_LOST if lost else CLOSE_ENDED
                frame = wire.encode(_LOST_FRAME if lost else {"t": "ended"})
                self._close_all(feed, code, frame)
                continue
            seq = row[0]
            if seq > feed.last_seq:
                async with feed.lock:
                    if seq > feed.last_seq:
                        await self._fill_gap(feed, seq)

    async def _sweep_forever(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.sweep_interval)
            try:
                await self.sweep()
            except (RedisError, OSError) as error:
                log.warning("sweep failed (%s)", type(error).__name__)
            except Exception:
                log.exception("sweep failed")

    # ------------------------------------------------------------ presence

    async def _heartbeat_forever(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.presence_ttl / 3)
            rooms = {room_id: [m.presence_id for m in feed.members]
                     for room_id, feed in self.feeds.items()}
            if not rooms:
                continue
            try:
                counts = await self.store.heartbeat(rooms, self.presence_ttl)
            except (RedisError, OSError) as error:
                log.warning("heartbeat failed (%s)", type(error).__name__)
                continue
            for room_id, present in counts.items():
                feed = self.feeds.get(room_id)
                if feed is not None:
                    self._show_presence(feed, present)

    async def _presence_changed(self, feed: Feed, *, announce: bool) -> None:
        counts = await self.store.presence_counts(feed.room_id)
        if announce:
            await self.store.publish(feed.room_id, TAG_PRESENCE)
        self._show_presence(feed, counts)

    def _show_presence(self, feed: Feed, counts: dict[str, int]) -> None:
        if counts != feed.presence:
            feed.presence = counts
            frame = wire.encode({"t": "presence", "presence": counts})
            for member in list(feed.members):
                member.push(None, frame)

    def seen_seq(self, room_id: str) -> int:
        feed = self.feeds.get(room_id)
        return feed.last_seq if feed else -1

    def role_connections(self, room_id: str) -> dict[str, int]:
        feed = self.feeds.get(room_id)
        return dict(feed.presence) if feed else dict.fromkeys(ROLES, 0)


def _backoff(initial: float = 0.05, cap: float = 2.0) -> Any:
    delay = initial
    while True:
        yield delay
        delay = min(cap, delay * 2)

