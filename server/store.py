"""Redis: every key of a room under one hash tag, one Lua script per commit.

Keys of room R (all share the tag {R}, so a room lives on one cluster shard):
    pb:{R}:meta      hash: epoch, seq, deadline (ms), h:<role> secret hashes
    pb:{R}:state     msgpack Room
    pb:{R}:log       stream of committed events, entry id "<seq>-1", capped
    pb:{R}:cmds      hash "<role>:<command id>" -> seq (dedupe of resent commands)
    pb:{R}:presence  zset "<process>|<connection>|<role>" -> expiry (ms)
Channel pb:{R}:ch carries messages tagged by their first byte:
    E  a committed event: length-prefixed origin (the committing process), then the event
    D  a live drag (DragMessage), sent only when other processes have members
    P  presence changed: recount      X  the room ended      R  a link was replaced

Every write refreshes every key's TTL to min(idle time-out, hard deadline - now),
so no key ever exists without one and a room never outlives its deadline.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
import redis.asyncio as aioredis

from rooms.model import ROLES, Role, Room
from rooms.views import Event

TAG_EVENT = b"E"
TAG_DRAG = b"D"
TAG_ENDED = b"X"
TAG_PRESENCE = b"P"
TAG_RELINK = b"R"



class DragMessage(msgspec.Struct, frozen=True, array_like=True):
    origin: str
    part: str
    x: float
    y: float
    by: Role


_room_encoder = msgspec.msgpack.Encoder()
_room_decoder = msgspec.msgpack.Decoder(Room)
_event_decoder = msgspec.msgpack.Decoder(Event)
_drag_decoder = msgspec.msgpack.Decoder(DragMessage)

_TTL_LUA = """
local function ttl_of(meta, idle)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local deadline = tonumber(redis.call('HGET', meta, 'deadline'))
  return math.min(idle, deadline - now), now
end
local function refresh(ttl)
  for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], ttl) end
end
"""

# KEYS: meta state log cmds presence
# ARGV: epoch expected_seq state event cmd_field idle_ms log_max channel message
COMMIT_LUA = _TTL_LUA + """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then return {'gone'} end
if epoch ~= ARGV[1] then return {'lost'} end
if ARGV[5] ~= '' then
  local prior = redis.call('HGET', KEYS[4], ARGV[5])
  if prior then return {'dup', tonumber(prior)} end
end
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq'))
if seq ~= tonumber(ARGV[2]) then return {'conflict', seq} end
local ttl = ttl_of(KEYS[1], tonumber(ARGV[6]))
if ttl <= 0 then
  redis.call('DEL', unpack(KEYS))
  return {'gone'}
end
local new_seq = seq + 1
redis.call('SET', KEYS[2], ARGV[3])
redis.call('HSET', KEYS[1], 'seq', new_seq)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], new_seq .. '-1', 'e', ARGV[4])
if ARGV[5] ~= '' then redis.call('HSET', KEYS[4], ARGV[5], new_seq) end
refresh(ttl)
redis.call('PUBLISH', ARGV[8], ARGV[9])
return {'ok', new_seq}
"""

# KEYS: meta state log cmds presence; ARGV: idle_ms
TOUCH_LUA = _TTL_LUA + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local ttl = ttl_of(KEYS[1], tonumber(ARGV[1]))
if ttl <= 0 then
  redis.call('DEL', unpack(KEYS))
  return 0
end
refresh(ttl)
return 1
"""

# KEYS: meta state log cmds presence; ARGV: channel message
END_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('DEL', unpack(KEYS))
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
"""

# KEYS: meta state log cmds presence; ARGV: role new_hash idle_ms channel message
RELINK_LUA = _TTL_LUA + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'h:' .. ARGV[1], ARGV[2])
local ttl = ttl_of(KEYS[1], tonumber(ARGV[3]))
if ttl > 0 then refresh(ttl) end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
"""


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def new_room_id() -> str:
    return secrets.token_urlsafe(16)


def new_entity_id() -> str:
    return secrets.token_urlsafe(9)


@dataclass(frozen=True)
class Keys:
    room: str

    @property
    def meta(self) -> str:
        return f"pb:{{{self.room}}}:meta"

    @property
    def state(self) -> str:
        return f"pb:{{{self.room}}}:state"

    @property
    def log(self) -> str:
        return f"pb:{{{self.room}}}:log"

    @property
    def cmds(self) -> str:
        return f"pb:{{{self.room}}}:cmds"

    @property
    def presence(self) -> str:
        return f"pb:{{{self.room}}}:presence"

    @property
    def channel(self) -> str:
        return f"pb:{{{self.room}}}:ch"

    def all(self) -> list[str]:
        return [self.meta, self.state, self.log, self.cmds, self.presence]


def room_of_channel(channel: bytes | str) -> str:
    name = channel.decode() if isinstance(channel, bytes) else channel
    return name[name.index("{") + 1 : name.index("}")]


class CommitResult(msgspec.Struct, frozen=True):
    outcome: Literal["ok", "dup", "conflict", "gone", "lost"]
    seq: int = 0


@dataclass
class Auth:
    role: Role
    epoch: str
    secret_hash: str


class Store:
    def __init__(self, client: aioredis.Redis, *, idle_ttl: float, max_lifetime: float,
                 log_length: int, control: aioredis.Redis | None = None) -> None:
        self.redis = client
        # The presence heartbeat, recounts and the sweep's reads run on their own
        # connections, so that commands filling the main pool never starve them.
        self.control = control if control is not None else client
        # This process, as named in what it publishes and in its presence entries.
        self.origin = origin = f"{os.getpid()}-{secrets.token_hex(4)}"
        # Published events name the process that committed them, which then skips its
        # own copy (it delivered the event already) without decoding it.
        self.event_prefix = TAG_EVENT + bytes([len(origin.encode())]) + origin.encode()
        self.idle_ms = int(idle_ttl * 1000)
        self.lifetime_ms = int(max_lifetime * 1000)
        self.log_length = log_length
        self._commit = client.register_script(COMMIT_LUA)
        self._touch = client.register_script(TOUCH_LUA)
        self._end = client.register_script(END_LUA)
        self._relink = client.register_script(RELINK_LUA)

    # A room's epoch names the Redis run that created it. When the room is gone, it was
    # lost (Redis restarted empty, or a failover reached a replica that never had it) if
    # the Redis that would hold it now is another run, and ended (or expired) otherwise.
    # Each question reads the run id afresh: whoever noticed a restart first, every path
    # that finds the room gone gives the same answer.

    async def new_epoch(self, room_id: str) -> str:
        return f"{(await self._run_id())[:12]}.{secrets.token_urlsafe(6)}"

    async def was_lost(self, room_id: str, epoch: str) -> bool:
        """Whether a room that is gone (or has another epoch) was lost rather than ended."""
        return (await self.were_lost([(room_id, epoch)]))[0]

    async def were_lost(self, rooms: list[tuple[str, str]]) -> list[bool]:
        """was_lost for many (room id, epoch) pairs, reading the run id once."""
        if not rooms:
            return []
        run = (await self._run_id())[:12]
        return [epoch.split(".", 1)[0] != run for _, epoch in rooms]

    async def _run_id(self) -> str:
        info = await self.redis.info("server")
        return str(info.get("run_id", ""))

    async def create(self, room: Room, secret_hashes: dict[Role, str]) -> None:
        keys = Keys(room.id)
        now_ms = await self._now_ms()
        ttl = min(self.idle_ms, self.lifetime_ms)
        meta: dict[Any, Any] = {
            "epoch": room.epoch,
            "seq": room.seq,
            "deadline": now_ms + self.lifetime_ms,
        }
        meta.update({f"h:{role}": digest for role, digest in secret_hashes.items()})
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.meta, mapping=meta)
            pipe.pexpire(keys.meta, ttl)
            pipe.set(keys.state, _room_encoder.encode(room), px=ttl)
            await pipe.execute()

    async def _now_ms(self) -> int:
        seconds, micros = await self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def authenticate(self, room_id: str, secret: str) -> Auth | None:
        fields = ["epoch", *(f"h:{role}" for role in ROLES)]
        values: list[Any] = await self.redis.hmget(Keys(room_id).meta, fields)
        return _match_secret(values, secret)

    async def authenticate_and_count(self, room_id: str,
                                     secret: str) -> tuple[Auth | None, dict[str, int]]:
        """The role a secret opens, and who is present in the room: one round trip."""
        keys = Keys(room_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.meta, ["epoch", *(f"h:{role}" for role in ROLES)])
            pipe.zrangebyscore(keys.presence, _presence_clock(), "+inf")
            values, members = await pipe.execute()
        return _match_secret(values, secret), _role_counts(members)

    async def load_and_replay(self, room_id: str,
                              since: int | None) -> tuple[Room | None, list[bytes] | None]:
        """The room, and when `since` is given the events after it (None when the log
        no longer reaches back): one round trip."""
        keys = Keys(room_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(keys.state)
            if since is not None:
                pipe.xrange(keys.log, min=f"{since + 1}-1", max="+")
            replies = await pipe.execute()
        room = _room_decoder.decode(replies[0]) if replies[0] is not None else None
        if since is None:
            return room, None
        return room, _events_after(replies[1], since)

    async def room_exists(self, room_id: str) -> bool:
        if not room_id or len(room_id) > 64:
            return False
        return bool(await self.redis.exists(Keys(room_id).meta))

    async def load(self, room_id: str) -> Room | None:
        blob: Any = await self.redis.get(Keys(room_id).state)
        return _room_decoder.decode(blob) if blob is not None else None

    async def meta_seq_epoch(self, room_ids: list[str]) -> list[tuple[int, str] | None]:
        async with self.control.pipeline(transaction=False) as pipe:
            for room_id in room_ids:
                pipe.hmget(Keys(room_id).meta, ["seq", "epoch"])
            rows = await pipe.execute()
        out: list[tuple[int, str] | None] = []
        for seq, epoch in rows:
            out.append(None if seq is None or epoch is None else (int(seq), epoch.decode()))
        return out

    async def commit(self, before: Room, after: Room, event_blob: bytes,
                     command_field: str) -> CommitResult:
        keys = Keys(before.id)
        reply = await self._commit(
            keys=keys.all(),
            args=[
                before.epoch, before.seq, _room_encoder.encode(after), event_blob,
                command_field, self.idle_ms, self.log_length, keys.channel,
                self.event_prefix + event_blob,
            ],
        )
        outcome: Any = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
        return CommitResult(outcome, int(reply[1]) if len(reply) > 1 else 0)

    async def prior_seq(self, room_id: str, command_field: str) -> int | None:
        value = await self.redis.hget(Keys(room_id).cmds, command_field)
        return int(value) if value is not None else None

    async def events_since(self, room_id: str, seq: int) -> list[bytes] | None:
        """Every event after `seq`, or None when the log no longer reaches back that far."""
        keys = Keys(room_id)
        entries: Any = await self.redis.xrange(keys.log, min=f"{seq + 1}-1", max="+")
        return _events_after(entries, seq)

    async def end(self, room_id: str) -> bool:
        keys = Keys(room_id)
        return bool(await self._end(keys=keys.all(), args=[keys.channel, TAG_ENDED]))

    async def relink(self, room_id: str, role: Role, new_hash: str) -> bool:
        keys = Keys(room_id)
        message = TAG_RELINK + f"{role}:{new_hash}".encode()
        return bool(await self._relink(
            keys=keys.all(), args=[role, new_hash, self.idle_ms, keys.channel, message]))

    async def publish_drag(self, room_id: str, message: DragMessage) -> None:
        await self.redis.publish(Keys(room_id).channel, TAG_DRAG + _room_encoder.encode(message))

    def foreign_event(self, message: bytes) -> Event | None:
        """The event an E message carries; None when this process committed it (it was
        delivered here already)."""
        if message.startswith(self.event_prefix):
            return None
        return decode_event(message[2 + message[1]:])

    # presence: a zset per room, members refreshed by their process's heartbeat

    async def heartbeat(self, rooms: dict[str, list[str]], ttl_s: float,
                        chunk: int = 200) -> dict[str, Present]:
        """For many rooms at once: refresh this process's presence entries and the
        room's TTLs (a room with people in it is not idle), and read who is present."""
        now_ms = _presence_clock()
        expiry = now_ms + int(ttl_s * 1000)
        present: dict[str, Present] = {}
        room_ids = list(rooms)
        for start in range(0, len(room_ids), chunk):
            batch = room_ids[start:start + chunk]
            async with self.control.pipeline(transaction=False) as pipe:
                for room_id in batch:
                    keys = Keys(room_id)
                    pipe.zremrangebyscore(keys.presence, "-inf", now_ms)
                    if rooms[room_id]:
                        pipe.zadd(keys.presence, dict.fromkeys(rooms[room_id], expiry))
                    pipe.pexpire(keys.presence, int(ttl_s * 3000))
                    await self._touch(keys=keys.all(), args=[self.idle_ms], client=pipe)
                    _read_present(pipe, keys, now_ms)
                replies = await pipe.execute()
            position = 0
            for room_id in batch:
                position += 4 if rooms[room_id] else 3
                present[room_id] = _present(replies[position])
                position += 1
        return present

    async def presence_join(self, room_id: str, member: str, ttl_s: float) -> Present:
        """Add a connection to the room's presence, tell the other processes, and
        return who is present now: one round trip."""
        keys = Keys(room_id)
        now_ms = _presence_clock()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(keys.presence, "-inf", now_ms)
            pipe.zadd(keys.presence, {member: now_ms + int(ttl_s * 1000)})
            pipe.pexpire(keys.presence, int(ttl_s * 3000))
            _read_present(pipe, keys, now_ms)
            pipe.publish(keys.channel, TAG_PRESENCE)
            replies = await pipe.execute()
        return _present(replies[3])

    async def presence_leave(self, room_id: str, member: str) -> Present:
        keys = Keys(room_id)
        now_ms = _presence_clock()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrem(keys.presence, member)
            _read_present(pipe, keys, now_ms)
            pipe.publish(keys.channel, TAG_PRESENCE)
            replies = await pipe.execute()
        return _present(replies[1])

    async def presence_remove(self, room_id: str, member: str) -> None:
        await self.redis.zrem(Keys(room_id).presence, member)

    async def presence_counts(self, room_id: str) -> Present:
        entries: Any = await self.control.zrangebyscore(
            Keys(room_id).presence, _presence_clock(), "+inf", withscores=True)
        return _present(entries)

    async def persistence_settings(self) -> dict[str, str] | None:
        """Redis's disk persistence settings, or None when CONFIG is not allowed."""
        try:
            save = await self.redis.config_get("save")
            aof = await self.redis.config_get("appendonly")
        except aioredis.ResponseError:
            return None
        return {"save": str(save.get("save", "")), "appendonly": str(aof.get("appendonly", ""))}


def _match_secret(values: list[Any], secret: str) -> Auth | None:
    if values[0] is None:
        return None
    digest = secret_hash(secret)
    for role, stored in zip(ROLES, values[1:], strict=True):
        if stored is not None and hmac.compare_digest(stored.decode(), digest):
            return Auth(role, values[0].decode(), digest)
    return None


def _events_after(entries: Any, seq: int) -> list[bytes] | None:
    blobs = [fields[b"e"] for _, fields in entries]
    if entries and int(entries[0][0].split(b"-")[0]) != seq + 1:
        return None
    return blobs


def _presence_clock() -> int:
    # Presence scores use each process's own clock (NTP keeps them well within the
    # presence TTL), which saves a round trip per join; room TTLs use Redis's TIME.
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Present:
    """Who is in a room (open connections per role), and when the first of those entries
    expires unless its process refreshes it: the counts may drop then, not before."""

    counts: dict[str, int]
    next_expiry_ms: int | None


def _read_present(pipe: Any, keys: Keys, now_ms: int) -> None:
    pipe.zrangebyscore(keys.presence, now_ms, "+inf", withscores=True)


def _present(entries: list[tuple[bytes, float]]) -> Present:
    return Present(_role_counts([member for member, _ in entries]),
                   int(entries[0][1]) if entries else None)


def _role_counts(members: list[bytes]) -> dict[str, int]:
    counts: dict[str, int] = dict.fromkeys(ROLES, 0)
    for member in members:
        role = member.decode().rsplit("|", 1)[-1]
        if role in counts:
            counts[role] += 1
    return counts


def decode_drag(message: bytes) -> DragMessage:
    return _drag_decoder.decode(message[1:])


def decode_event(blob: bytes) -> Event:
    return _event_decoder.decode(blob)


def encode_event(event: Event) -> bytes:
    return _room_encoder.encode(event)
