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
SWEEP_SLICE = 100
RECENT_EVENTS = 256
PRESENCE_COALESCE = 0.05


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
    failed: bool = False
    recount_pending: bool = False
    # seq -> commit time of recent events: a different event under a seq already
    # delivered means Redis lost acknowledged writes (a failover) and reused the seq.
    recent: dict[int, float] = field(default_factory=dict)

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
                 process_id: str | None = None,
                 sweep_interval: float = 2.0, presence_ttl: float = 15.0,
                 concurrent_handshakes: int = 32) -> None:
        self.store = store
        self.pubsub_client = pubsub_client
        self.sweep_interval = sweep_interval
        self.presence_ttl = presence_ttl
        self.process_id = process_id or f"{os.getpid()}-{secrets.token_hex(4)}"
        self.feeds: dict[str, Feed] = {}
        self._pubsub: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = asyncio.Event()
        self._closing = False
        self._own_channel = f"pb:hub:{self.process_id}".encode()
        self._pings_sent = 0
        self._pings_seen = 0
        self._deaf = False
        self._sweep_cursor = 0
        self._recounts: set[asyncio.Task[None]] = set()
        self.handshakes = asyncio.Semaphore(concurrent_handshakes)

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
        while True:
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
                    feed.failed = True
                    if self.feeds.get(room_id) is feed:
                        del self.feeds[room_id]
                    raise
                finally:
                    feed.ready.set()
                if loaded is not None:
                    feed.last_seq = loaded.seq
                    feed.learn_parts(loaded)
            else:
                await feed.ready.wait()
            # A member only ever joins the feed that is current for the room (one whose
            # first join failed, or that emptied meanwhile, would never hear of events),
            # and nothing awaits between this check and joining it.
            if feed.failed or self.feeds.get(room_id) is not feed:
                continue
            feed.members.add(member)
            break
        metrics.CONNECTIONS.inc()
        self._show_presence(feed, await self.store.presence_join(
            room_id, member.presence_id, self.presence_ttl))
        return feed, loaded

    async def leave(self, room_id: str, member: Member) -> bool:
        """Unregister a member; True when the room has no member left in this process."""
        feed = self.feeds.get(room_id)
        if feed is None or member not in feed.members:
            return feed is None
        feed.members.discard(member)
        metrics.CONNECTIONS.dec()
        if not feed.members:
            del self.feeds[room_id]
            with contextlib.suppress(Exception):
                await self._pubsub.unsubscribe(Keys(room_id).channel)
            if room_id in self.feeds:  # someone joined again while we unsubscribed
                with contextlib.suppress(Exception):
                    await self._pubsub.subscribe(Keys(room_id).channel)
        with contextlib.suppress(RedisError, OSError):
            self._show_presence(feed, await self.store.presence_leave(
                room_id, member.presence_id))
        return not feed.members

    # ------------------------------------------------------------ events

    async def deliver(self, room_id: str, event: Event) -> None:
        feed = self.feeds.get(room_id)
        if feed is None:
            return
        if event.seq <= feed.last_seq:
            seen = feed.recent.get(event.seq)
            if seen is not None and seen != event.at:
                self.room_lost(room_id)
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
        feed.recent[event.seq] = event.at
        feed.recent.pop(event.seq - RECENT_EVENTS, None)
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

    async def drag(self, room_id: str, sender: Member, part: str, x: float, y: float) -> bool:
        feed = self.feeds.get(room_id)
        if feed is None:
            return False
        known = feed.parts.get(part)
        if known is None or known[0] != sender.role or not feed.drags_allowed:
            return False
        body = {"t": "drag", "part": part, "x": x, "y": y, "by": sender.role}
        self._fan_out_drag(feed, body, known[1], exclude=sender)
        # Drags are not stored: other processes only need them when they have members.
        if sum(feed.presence.values()) > len(feed.members):
            await self.store.publish(room_id, TAG_DRAG + _drag_encoder.encode(
                {"p": self.process_id, "d": body}))
        return True

    def _fan_out_drag(self, feed: Feed, body: dict[str, Any], audience: frozenset[str],
                      exclude: Member | None) -> None:
        frame = wire.encode(body)
        for member in list(feed.members):
            # The same person's other tabs see the drag; the dragging connection does not.
            if member.role in audience and member is not exclude:
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
        self._fan_out_drag(feed, body, known[1], exclude=None)

    # ------------------------------------------------------------ pub/sub

    async def _listen(self) -> None:
        delays = _backoff()
        while not self._closing:
            try:
                # Subscribing first makes the connection; only then may joins use this
                # PubSub (two first subscribes at once can each open a connection, and
                # nobody would read the second one).
                pubsub = self.pubsub_client.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self._own_channel)
                self._pubsub = pubsub
                for room_id in list(self.feeds):
                    await self._pubsub.subscribe(Keys(room_id).channel)
                self._subscribed.set()
                delays = _backoff()
                self._pings_seen = self._pings_sent
                await self.sweep()
                while not self._closing:
                    message = await self._pubsub.get_message(timeout=1.0)
                    if message is not None and message["type"] == "message":
                        await self._on_message(message["channel"], message["data"])
                    if self._deaf:
                        self._deaf = False
                        raise ConnectionError("the subscription stopped delivering")
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
        if channel == self._own_channel:
            self._pings_seen = max(self._pings_seen, int(data))
            return
        room_id = room_of_channel(channel)
        feed = self.feeds.get(room_id)
        if feed is None or not data:
            return
        tag, payload = data[:1], data[1:]
        if tag == TAG_EVENT:
            if data.startswith(self.store.event_prefix):
                return  # committed here, and delivered here already
            await self.deliver(room_id, decode_event(payload[1 + payload[0]:]))
        elif tag == TAG_DRAG:
            self._remote_drag(feed, payload)
        elif tag == TAG_PRESENCE:
            self._recount_soon(feed)
        elif tag == TAG_ENDED:
            self._close_all(feed, CLOSE_ENDED, wire.encode({"t": "ended"}))
        elif tag == TAG_RELINK:
            role, new_hash = payload.decode().split(":", 1)
            for member in list(feed.members):
                if member.role == role and member.secret_hash != new_hash:
                    member.shut(CLOSE_INVALID_LINK, wire.encode(wire.error(
                        "room_ended", "This link was replaced by your therapist.")))

    def room_lost(self, room_id: str) -> None:
        """Tell every member here plainly: the store no longer holds what they saw."""
        feed = self.feeds.get(room_id)
        if feed is not None:
            log.warning("room lost by the store: room=%s", room_id)
            self._close_all(feed, CLOSE_LOST, wire.encode(_LOST_FRAME))

    def _close_all(self, feed: Feed, code: int, frame: bytes | None) -> None:
        for member in list(feed.members):
            member.shut(code, frame)

    # ------------------------------------------------------------ sweep

    async def sweep(self, room_ids: list[str] | None = None) -> None:
        """Catch up feeds (all by default) with Redis; tell members of rooms that vanished."""
        if room_ids is None:
            room_ids = list(self.feeds)
        if not room_ids:
            return
        # What was delivered before the read is committed, so Redis's seq can only be
        # lower than that if it lost writes; events delivered during the read prove nothing.
        delivered = {room_id: feed.last_seq for room_id in room_ids
                     if (feed := self.feeds.get(room_id)) is not None}
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
            if seq < delivered.get(room_id, -1):  # Redis lost acknowledged writes
                self.room_lost(room_id)
                continue
            if seq > feed.last_seq:
                async with feed.lock:
                    if seq > feed.last_seq:
                        await self._fill_gap(feed, seq)

    async def _sweep_forever(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.sweep_interval)
            try:
                await self._check_hearing()
                await self.sweep(self._next_slice())
            except (RedisError, OSError) as error:
                log.warning("sweep failed (%s)", type(error).__name__)
            except Exception:
                log.exception("sweep failed")

    async def _check_hearing(self) -> None:
        """Pub/sub loses messages only with its connection, and the listener then
        resubscribes and sweeps everything. A ping to this process's own channel each
        interval proves the subscription still delivers; one that never comes back
        makes the listener reconnect (and sweep) as if the connection had dropped."""
        if self._pings_seen < self._pings_sent - 1:  # one interval of slack for a busy loop
            log.warning("pub/sub missed its own ping; resubscribing")
            self._deaf = True
            return
        self._pings_sent += 1
        await self.store.redis.publish(self._own_channel, str(self._pings_sent))

    def _next_slice(self) -> list[str]:
        # A bounded, rotating share of the rooms is also compared with Redis every
        # interval: a second line of defence that costs the same at any scale.
        room_ids = list(self.feeds)
        if len(room_ids) <= SWEEP_SLICE:
            return room_ids
        start = self._sweep_cursor % len(room_ids)
        self._sweep_cursor = start + SWEEP_SLICE
        return (room_ids + room_ids)[start:start + SWEEP_SLICE]

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

    def _recount_soon(self, feed: Feed) -> None:
        # Joins and leaves come in bursts (a reconnect storm): one recount per burst.
        if feed.recount_pending:
            return
        feed.recount_pending = True

        async def recount() -> None:
            await asyncio.sleep(PRESENCE_COALESCE)
            feed.recount_pending = False
            with contextlib.suppress(RedisError, OSError):
                self._show_presence(feed, await self.store.presence_counts(feed.room_id))

        task = asyncio.create_task(recount())
        self._recounts.add(task)
        task.add_done_callback(self._recounts.discard)

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

