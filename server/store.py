"""Redis: every key of a room under one hash tag, one Lua script per commit.

Keys of room R (all share the tag {R}, so a room lives on one cluster shard):
    pb:{R}:meta      hash: epoch, seq, deadline (ms), h:<role> secret hashes
    pb:{R}:state     msgpack Room
    pb:{R}:log       stream of committed events, entry id "<seq>-1", capped
    pb:{R}:cmds      hash "<role>:<command id>" -> seq (dedupe of resent commands)
    pb:{R}:presence  zset "<process>|<connection>|<role>" -> expiry (ms)
Channel pb:{R}:ch (sharded pub/sub: SPUBLISH, SSUBSCRIBE) carries messages tagged by their
first byte:
    E  a committed event: length-prefixed origin (the committing process), then the event
    D  a live drag (DragMessage), sent only when other processes have members
    P  presence changed: recount (then the origin of the process that changed it)
    X  the room ended      R  a link was replaced

Every write refreshes every key's TTL to min(idle time-out, hard deadline - now),
so no key ever exists without one and a room never outlives its deadline.

The same code runs on one Redis and on a Redis Cluster: every call touches one room's
keys (one hash slot), and work over many rooms (the heartbeat, the sweep) is grouped by
the node that holds them (`by_node`), never a command across slots. Redis 7.0 or later is
required (sharded pub/sub), checked at start-up.

Durable acks (`durable_replicas` > 0, PARTSBOARD_DURABLE_ACKS): a commit is followed on the
same connection by WAIT for that many replicas, so a primary's crash loses no acknowledged
command, and its event is published only once they confirmed it: members see only what a
replica holds too, so a failover leaves their rooms intact. A commit the replicas did not
confirm in time is applied but neither acknowledged nor published (`CommitResult.durable`
is False; members get it with the next event, from the log). A resent command that is
found committed refreshes the room's TTLs, a write, so its WAIT covers the first
attempt's commit too.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import AskError, MovedError, NoScriptError, RedisError, TryAgainError

from rooms.model import ROLES, Role, Room
from rooms.views import Event

from .commit_line import CommitLine
from .redis_urls import RedisClient, WaitingRedisCluster

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


# A room as read for a member who joins: its state, and the events after the seq it
# resumes from (None when not asked, or when the log no longer reaches back).
Loaded = tuple[Room | None, list[bytes] | None]

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
# (channel '': publish nothing; durable acks publish once the replicas confirmed)
COMMIT_LUA = _TTL_LUA + """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then return {'gone'} end
if epoch ~= ARGV[1] then return {'lost'} end
if ARGV[5] ~= '' then
  local prior = redis.call('HGET', KEYS[4], ARGV[5])
  if prior then
    local ttl = ttl_of(KEYS[1], tonumber(ARGV[6]))
    if ttl > 0 then refresh(ttl) end
    return {'dup', tonumber(prior)}
  end
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
if ARGV[8] ~= '' then redis.call('SPUBLISH', ARGV[8], ARGV[9]) end
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
redis.call('SPUBLISH', ARGV[1], ARGV[2])
return 1
"""

# KEYS: meta state log cmds presence; ARGV: role new_hash idle_ms channel message
RELINK_LUA = _TTL_LUA + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'h:' .. ARGV[1], ARGV[2])
local ttl = ttl_of(KEYS[1], tonumber(ARGV[3]))
if ttl > 0 then refresh(ttl) end
redis.call('SPUBLISH', ARGV[4], ARGV[5])
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
    durable: bool = True  # False: the replicas durable acks ask for did not confirm it


@dataclass
class Auth:
    role: Role
    epoch: str
    secret_hash: str


MIN_REDIS = (7, 0)
_SCRIPTS = (COMMIT_LUA, TOUCH_LUA, END_LUA, RELINK_LUA)


class Store:
    def __init__(self, client: RedisClient, *, idle_ttl: float, max_lifetime: float,
                 log_length: int, control: RedisClient | None = None,
                 durable_replicas: int = 0, durable_timeout: float = 1.0) -> None:
        self.redis = client
        self.cluster = client if isinstance(client, WaitingRedisCluster) else None
        # The presence heartbeat, recounts and the sweep's reads run on their own
        # connections, so that commands filling the main pool never starve them.
        self.control = control if control is not None else client
        self.durable_replicas = durable_replicas
        self.durable_timeout_ms = int(durable_timeout * 1000)
        self._node_clients: dict[str, aioredis.Redis] = {}
        # This process, as named in what it publishes and in its presence entries.
        self.origin = origin = f"{os.getpid()}-{secrets.token_hex(4)}"
        # Published events name the process that committed them, which then skips its
        # own copy (it delivered the event already) without decoding it.
        self.event_prefix = TAG_EVENT + bytes([len(origin.encode())]) + origin.encode()
        self.presence_message = TAG_PRESENCE + origin.encode()
        self.idle_ms = int(idle_ttl * 1000)
        self.lifetime_ms = int(max_lifetime * 1000)
        self.log_length = log_length
        self._commit = client.register_script(COMMIT_LUA)
        self._touch = client.register_script(TOUCH_LUA)
        self._end = client.register_script(END_LUA)
        self._relink = client.register_script(RELINK_LUA)
        self._line = (CommitLine(client.connection_pool)
                      if isinstance(client, aioredis.Redis) and not durable_replicas else None)

    async def start(self) -> None:
        if self.cluster is not None:  # the slot map, before routing by key
            await self.cluster.initialize()
            if isinstance(self.control, WaitingRedisCluster):
                await self.control.initialize()

    async def close(self) -> None:
        if self._line is not None:
            await self._line.close()
        for node_client in self._node_clients.values():
            await node_client.aclose()
        await self.redis.aclose()
        if self.control is not self.redis:
            await self.control.aclose()

    # -- nodes ------------------------------------------------------------------------------

    def node_of(self, room_id: str) -> str:
        """The node holding the room (its cluster primary's host:port; "" on one Redis)."""
        if self.cluster is None:
            return ""
        return str(self.cluster.owner(Keys(room_id).meta).name)

    def by_node(self, room_ids: list[str]) -> list[list[str]]:
        """The rooms grouped by the node holding them (one group on one Redis)."""
        groups: dict[str, list[str]] = {}
        for room_id in room_ids:
            try:
                node = self.node_of(room_id)
            except LookupError:  # its slot has no owner right now (a failover)
                node = "?"
            groups.setdefault(node, []).append(room_id)
        return list(groups.values())

    def _client_of(self, node: str) -> aioredis.Redis:
        """A plain client of one cluster node (host:port), or the one Redis."""
        if self.cluster is None:
            assert isinstance(self.redis, aioredis.Redis)
            return self.redis
        found = self._node_clients.get(node)
        if found is None:
            host, _, port = node.rpartition(":")
            found = self._node_clients[node] = self.cluster.node_client(
                host, int(port), pool_size=self.cluster.pool_size, retry=True)
        return found

    async def _run_ids(self, room_ids: list[str]) -> dict[str, str]:
        """The run id of the Redis node that holds (or would hold) each room."""
        found: dict[str, str] = {}
        for group in self.by_node(room_ids):
            if self.cluster is not None:
                node = self.cluster.owner(Keys(group[0]).meta)
                info = await self.cluster.info("server", target_nodes=node)
            else:
                info = await self.redis.info("server")
            found.update(dict.fromkeys(group, str(info.get("run_id", ""))))
        return found

    async def _replies(self, pipe: Any) -> list[Any]:
        """A non-transactional pipeline's replies, as `pipe.execute()` gives them; sent on
        the line when there is one. Only for commands that are safe to send twice."""
        if self._line is None:
            return list(await pipe.execute())
        stack = pipe.command_stack
        replies = await self._line.batch([args for args, _ in stack])
        callbacks = self.redis.response_callbacks
        parsed = []
        for (args, options), reply in zip(stack, replies, strict=True):
            callback = callbacks.get(args[0])
            if callback is not None:
                options.pop("keys", None)  # redis-py's client-side cache key, not a parser option
                reply = callback(reply, **options)
            parsed.append(reply)
        return parsed

    async def _pipelined(self, client: RedisClient,
                         build: Callable[[Any], None]) -> list[Any]:
        """Run one pipeline (scripts called by their sha); a node that does not know a
        script yet (a new node, or a replica just promoted) is taught them all first."""
        for attempt in range(2):
            async with client.pipeline(transaction=False) as pipe:
                build(pipe)
                try:
                    return list(await pipe.execute())
                except NoScriptError:
                    if attempt:
                        raise
                    await self.load_scripts(client)
        raise AssertionError("unreachable")

    async def load_scripts(self, client: RedisClient | None = None) -> None:
        """SCRIPT LOAD every script (on every primary of a cluster), through ``client``."""
        for text in _SCRIPTS:
            await (client or self.redis).script_load(text)

    # -- the Redis itself -------------------------------------------------------------------

    async def ping(self) -> bool:
        """Redis answers (on a cluster: at least one primary answers)."""
        if self.cluster is None:
            return bool(await self.redis.ping())
        answers = await asyncio.gather(
            *(self.cluster.ping(target_nodes=node) for node in self.cluster.get_primaries()),
            return_exceptions=True)
        return any(answer is True for answer in answers)

    async def versions(self) -> list[tuple[int, ...]]:
        """The server version of the Redis (of every primary of a cluster)."""
        if self.cluster is None:
            infos = [await self.redis.info("server")]
        else:
            by_node = await self.cluster.info("server", target_nodes=RedisCluster.PRIMARIES)
            infos = list(by_node.values())
        return [tuple(int(part) for part in str(info.get("redis_version", "0")).split(".")[:2])
                for info in infos]

    async def replicas(self) -> list[int]:
        """How many replicas each primary has connected."""
        if self.cluster is None:
            infos = [await self.redis.info("replication")]
        else:
            by_node = await self.cluster.info("replication",
                                              target_nodes=RedisCluster.PRIMARIES)
            infos = list(by_node.values())
        return [int(info.get("connected_slaves", 0)) for info in infos]

    # A room's epoch names the Redis run that created it. When the room is gone, it was
    # lost (Redis restarted empty, or a failover reached a replica that never had it) if
    # the Redis that would hold it now is another run, and ended (or expired) otherwise.
    # Each question reads the run id afresh: whoever noticed a restart first, every path
    # that finds the room gone gives the same answer.

    async def new_epoch(self, room_id: str) -> str:
        run = (await self._run_ids([room_id]))[room_id]
        return f"{run[:12]}.{secrets.token_urlsafe(6)}"

    async def was_lost(self, room_id: str, epoch: str) -> bool:
        """Whether a room that is gone (or has another epoch) was lost rather than ended."""
        return (await self.were_lost([(room_id, epoch)]))[0]

    async def were_lost(self, rooms: list[tuple[str, str]]) -> list[bool]:
        """was_lost for many (room id, epoch) pairs, reading the run id once."""
        if not rooms:
            return []
        runs = await self._run_ids([room_id for room_id, _ in rooms])
        return [epoch.split(".", 1)[0] != runs[room_id][:12] for room_id, epoch in rooms]

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
            values, members = await self._replies(pipe)
        return _match_secret(values, secret), _role_counts(members)

    async def room_exists(self, room_id: str) -> bool:
        if not room_id or len(room_id) > 64:
            return False
        return bool(await self.redis.exists(Keys(room_id).meta))

    async def load(self, room_id: str) -> Room | None:
        key = Keys(room_id).state
        blob: Any = (await self._line.call("GET", key) if self._line is not None
                     else await self.redis.get(key))
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
        args: list[Any] = [
            before.epoch, before.seq, _room_encoder.encode(after), event_blob,
            command_field, self.idle_ms, self.log_length, keys.channel,
            self.event_prefix + event_blob,
        ]
        replicas = self.durable_replicas
        if replicas:
            reply, replicas = await self._commit_and_wait(keys, args)
            if reply[0] == b"ok" and replicas >= self.durable_replicas:
                await self.redis.spublish(keys.channel, args[-1])
        elif self._line is not None:
            reply = await self._commit_on_line(keys.all(), args)
        else:
            reply = await self._commit(keys=keys.all(), args=args)
        outcome: Any = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
        return CommitResult(outcome, int(reply[1]) if len(reply) > 1 else 0,
                            durable=replicas >= self.durable_replicas)

    async def _commit_on_line(self, keys: list[str], args: list[Any]) -> Any:
        assert self._line is not None
        try:
            return await self._line.call("EVALSHA", self._commit.sha, len(keys), *keys, *args)
        except NoScriptError:  # a Redis restarted without its scripts: the script loads it
            return await self._commit(keys=keys, args=args)

    async def _commit_and_wait(self, keys: Keys, args: list[Any]) -> tuple[Any, int]:
        """The commit script, then WAIT on the same connection (to the node that holds the
        room: WAIT counts the writes of its own connection)."""
        node, asking = self.node_of(keys.room), False
        args = [*args[:-2], "", b""]  # published once confirmed
        for attempt in range(8):
            try:
                async with self._client_of(node).pipeline(transaction=False) as pipe:
                    if asking:
                        pipe.execute_command("ASKING")
                    pipe.evalsha(self._commit.sha, len(keys.all()), *keys.all(), *args)
                    pipe.wait(self.durable_replicas, self.durable_timeout_ms)
                    replies = await pipe.execute()
                return replies[-2], int(replies[-1])
            except NoScriptError:
                await self.load_scripts()
            except MovedError:  # the slot has another owner now
                assert self.cluster is not None
                await self.cluster.nodes_manager.initialize()
                node, asking = self.node_of(keys.room), False
            except AskError as error:  # the room's keys are on the node importing the slot
                node, asking = f"{error.host}:{error.port}", True
            except TryAgainError:  # a slot half migrated: wait for its keys to move
                await asyncio.sleep(0.02 * (attempt + 1))
        raise RedisError("the commit was redirected too many times")

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

    async def publish_drag(self, room_id: str, message: DragMessage) -> int:
        """How many subscribers of the room's channel (this process's among them) got it."""
        channel, payload = Keys(room_id).channel, TAG_DRAG + _room_encoder.encode(message)
        if self._line is not None:
            return int(await self._line.call("SPUBLISH", channel, payload))
        return int(await self.redis.spublish(channel, payload))

    def foreign_event(self, message: bytes) -> Event | None:
        """The event an E message carries; None when this process committed it (it was
        delivered here already)."""
        if message.startswith(self.event_prefix):
            return None
        return decode_event(message[2 + message[1]:])

    # presence: a zset per room, members refreshed by their process's heartbeat

    async def heartbeat(self, rooms: dict[str, list[str]], ttl_s: float,
                        chunk: int = 200) -> dict[str, Present]:
        """For many rooms at once (of one node: see `by_node`): refresh this process's
        presence entries and the rooms' TTLs (a room with people in it is not idle), and
        read who is present."""
        now_ms = _presence_clock()
        expiry = now_ms + int(ttl_s * 1000)
        present: dict[str, Present] = {}
        room_ids = list(rooms)
        for start in range(0, len(room_ids), chunk):
            batch = room_ids[start:start + chunk]

            def build(pipe: Any, batch: list[str] = batch) -> None:
                for room_id in batch:
                    keys = Keys(room_id)
                    pipe.zremrangebyscore(keys.presence, "-inf", now_ms)
                    if rooms[room_id]:
                        pipe.zadd(keys.presence, dict.fromkeys(rooms[room_id], expiry))
                    pipe.pexpire(keys.presence, int(ttl_s * 3000))
                    # (redis-py refuses pipe.evalsha in a cluster pipeline, not the command)
                    pipe.execute_command("EVALSHA", self._touch.sha, len(keys.all()),
                                         *keys.all(), self.idle_ms)
                    _read_present(pipe, keys, now_ms)

            replies = await self._pipelined(self.control, build)
            position = 0
            for room_id in batch:
                position += 4 if rooms[room_id] else 3
                present[room_id] = _present(replies[position])
                position += 1
        return present

    async def presence_join(self, room_id: str, member: str, ttl_s: float, *,
                            state: bool = False,
                            since: int | None = None) -> tuple[Present, Loaded]:
        """Add a connection to the room's presence, tell the other processes, and
        return who is present now, with (when asked) the room's state and the events
        after `since` (None when the log no longer reaches back): one round trip."""
        keys = Keys(room_id)
        now_ms = _presence_clock()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(keys.presence, "-inf", now_ms)
            pipe.zadd(keys.presence, {member: now_ms + int(ttl_s * 1000)})
            pipe.pexpire(keys.presence, int(ttl_s * 3000))
            _read_present(pipe, keys, now_ms)
            pipe.spublish(keys.channel, self.presence_message)
            if state:
                pipe.get(keys.state)
            if since is not None:
                pipe.xrange(keys.log, min=f"{since + 1}-1", max="+")
            replies = await self._replies(pipe)
        room = _room_decoder.decode(replies[5]) if state and replies[5] is not None else None
        events = _events_after(replies[-1], since) if since is not None else None
        return _present(replies[3]), (room, events)

    async def presence_leave(self, room_id: str, member: str) -> Present:
        keys = Keys(room_id)
        now_ms = _presence_clock()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrem(keys.presence, member)
            _read_present(pipe, keys, now_ms)
            pipe.spublish(keys.channel, self.presence_message)
            replies = await self._replies(pipe)
        return _present(replies[1])

    async def presence_remove(self, room_id: str, member: str) -> None:
        if self._line is not None:
            await self._line.call("ZREM", Keys(room_id).presence, member)
        else:
            await self.redis.zrem(Keys(room_id).presence, member)

    async def presence_counts(self, room_id: str) -> Present:
        entries: Any = await self.control.zrangebyscore(
            Keys(room_id).presence, _presence_clock(), "+inf", withscores=True)
        return _present(entries)

    async def persistence_settings(self) -> dict[str, str] | None:
        """Redis's disk persistence settings (of any cluster node that persists), or None
        when CONFIG is not allowed."""
        try:
            found: list[Any]
            if self.cluster is None:
                found = [await self.redis.config_get("*")]
            else:
                by_node: Any = await self.cluster.config_get(
                    "*", target_nodes=RedisCluster.ALL_NODES)
                found = list(by_node.values())
        except aioredis.ResponseError:
            return None
        settings = [{"save": str(c.get("save", "")), "appendonly": str(c.get("appendonly", ""))}
                    for c in found]
        persisting = [s for s in settings if s["save"] or s["appendonly"] == "yes"]
        return (persisting or settings)[0]


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
