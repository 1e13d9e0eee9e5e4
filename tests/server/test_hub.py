"""The hub in-process against a real Redis: joins that race a failure never go deaf, a
join that fails leaves nothing behind, a room is loaded once for its first member and its
first command, a resuming member's room and replay come with its presence join, and a
process recounts presence after other processes' changes and its own overlapping ones."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from hub_helpers import WAIT, Listener, command_calls, epoch_of, make_room
from redis.exceptions import RedisError

from rooms.actions import parse_args
from rooms.errors import Close
from server.commands import execute
from server.hub import Hub
from server.store import Keys, decode_event


async def test_joins_waiting_on_a_failed_first_join_never_join_a_dead_room(
        hub: Hub, admin: aioredis.Redis) -> None:
    room_id = await make_room(hub.store)
    state = Keys(room_id).state
    await admin.delete(state)
    await admin.rpush(state, "not a room")  # GET now fails: WRONGTYPE
    await admin.expire(state, 60)
    listeners = [Listener(str(n)) for n in range(3)]
    epoch = await epoch_of(hub.store, room_id)
    results = await asyncio.gather(*(hub.join(room_id, epoch, listener) for listener in listeners),
                                   return_exceptions=True)
    assert all(isinstance(result, RedisError) for result in results), (
        "the room cannot be loaded, so no join may succeed")
    assert room_id not in hub.rooms
    channel = Keys(room_id).channel.encode()
    async with asyncio.timeout(WAIT):  # a room that failed to open leaves no subscription
        while True:
            if channel not in await admin.pubsub_shardchannels():
                break
            await asyncio.sleep(0.02)


async def test_a_member_joining_as_the_last_one_leaves_stays_subscribed(
        hub: Hub, admin: aioredis.Redis) -> None:
    room_id = await make_room(hub.store)
    first, second = Listener("first"), Listener("second")
    epoch = await epoch_of(hub.store, room_id)
    live, _ = await hub.join(room_id, epoch, first)
    leaving = asyncio.create_task(hub.leave(live, first))
    await hub.join(room_id, epoch, second)
    await leaving
    assert second in hub.rooms[room_id].members
    # The room's channel still delivers: the therapist's link replaced elsewhere closes it.
    await admin.spublish(Keys(room_id).channel, b"Rtherapist:another-hash")
    assert await asyncio.wait_for(second.closed, WAIT) == Close.INVALID_LINK
    numsub = await admin.pubsub_shardnumsub(Keys(room_id).channel)
    assert numsub[0][1] == 1


async def test_a_rooms_first_command_runs_on_the_room_its_first_join_loaded(
        hub: Hub, admin: aioredis.Redis) -> None:
    room_id = await make_room(hub.store)
    epoch = await epoch_of(hub.store, room_id)
    before = await command_calls(admin, "get")
    live, _ = await hub.join(room_id, epoch, Listener("first"))
    seq = await execute(live, "therapist", "c1", parse_args("note.add", {"text": "hello"}))
    assert seq == 1
    assert await command_calls(admin, "get") - before == 1, (
        "the room was loaded again for its first command")


async def test_a_join_reads_the_room_and_the_events_after_its_seq_with_its_presence(
        hub: Hub, admin: aioredis.Redis) -> None:
    room_id = await make_room(hub.store)
    epoch = await epoch_of(hub.store, room_id)
    live, _ = await hub.join(room_id, epoch, Listener("first"))
    for n in range(3):
        await execute(live, "therapist", f"c{n}", parse_args("note.add", {"text": f"n{n}"}))
    stats = await admin.info("commandstats")
    _, (room, events) = await hub.join(room_id, epoch, Listener("resuming"), since=1)
    assert room is not None and room.seq == 3
    assert events is not None and [decode_event(blob).seq for blob in events] == [2, 3]
    _, (cached, no_replay) = await hub.join(room_id, epoch, Listener("new"))
    assert cached is live.room and no_replay is None, "a current cached room is not read again"
    after = await admin.info("commandstats")
    assert {name: after[name]["calls"] - stats.get(name, {"calls": 0})["calls"]
            for name in ("cmdstat_get", "cmdstat_xrange")} == {"cmdstat_get": 1,
                                                               "cmdstat_xrange": 1}


async def test_a_join_whose_presence_fails_leaves_nothing_behind(
        hub: Hub, admin: aioredis.Redis) -> None:
    room_id = await make_room(hub.store)
    epoch = await epoch_of(hub.store, room_id)
    await admin.set(Keys(room_id).presence, "not a sorted set", ex=60)  # ZADD: WRONGTYPE
    listener = Listener("member")
    try:
        await hub.join(room_id, epoch, listener)
    except RedisError:
        pass
    else:
        raise AssertionError("the presence join cannot succeed")
    assert room_id not in hub.rooms, "the member was left in the room"


async def test_a_process_recounts_after_other_processes_presence_changes_not_its_own(
        hub: Hub, admin: aioredis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    recounts: list[str] = []
    monkeypatch.setattr(hub.presence, "recount_soon", lambda live: recounts.append(live.id))
    room_id = await make_room(hub.store)
    epoch = await epoch_of(hub.store, room_id)
    member = Listener("a")
    member.role = "a"
    await hub.join(room_id, epoch, member)  # publishes this process's P
    channel = Keys(room_id).channel
    await admin.spublish(channel, b"Panother-process")
    await admin.spublish(channel, b"Ra:another-hash")  # heard after both P: closes `member`
    await asyncio.wait_for(member.closed, WAIT)
    assert recounts == [room_id], "only the other process's change is recounted"


async def test_presence_changes_in_flight_at_once_recount_when_the_last_is_back(
        hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    room_id = await make_room(hub.store)
    live, _ = await hub.join(room_id, await epoch_of(hub.store, room_id), Listener("first"))
    recounts: list[str] = []
    monkeypatch.setattr(hub.presence, "recount_soon", lambda live: recounts.append(live.id))
    # Their round trips may come back in either order: the last one's counts may be older.
    await asyncio.gather(hub.presence.join(live, Listener("x")),
                         hub.presence.join(live, Listener("y")))
    assert recounts == [room_id]
    await hub.presence.join(live, Listener("z"))
    assert recounts == [room_id], "a change with no other in flight is counted by its own read"
