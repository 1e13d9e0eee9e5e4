"""The hub in-process against a real Redis: joins that race a failure never go deaf."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from rooms.errors import Close
from rooms.machine import new_room
from rooms.model import PartnerInfo
from server.hub import Hub
from server.store import Keys, Store

WAIT = 10.0  # a guard against hangs, never a measured expectation


class Listener:
    """A stand-in for a websocket connection: it records what the hub pushes."""

    def __init__(self, name: str) -> None:
        self.role = "therapist"
        self.secret_hash = ""
        self.presence_id = f"test|{name}|therapist"
        self.frames: list[bytes] = []
        self.closed: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def push(self, seq: int | None, frame: bytes) -> None:
        self.frames.append(frame)

    def shut(self, code: int, frame: bytes | None = None) -> None:
        if not self.closed.done():
            self.closed.set_result(code)


@pytest.fixture
async def admin(redis_url: str):
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def hub(redis_url: str):
    client = aioredis.Redis.from_url(redis_url)
    pubsub_client = aioredis.Redis.from_url(redis_url)
    store = Store(client, idle_ttl=60, max_lifetime=120, log_length=100)
    await store.refresh_run_id()
    hub = Hub(store, pubsub_client, sweep_interval=0.2, presence_ttl=5)
    await hub.start()
    yield hub
    await hub.stop()
    await client.aclose()
    await pubsub_client.aclose()


async def make_room(store: Store) -> str:
    room = new_room(room_id="r" * 22, epoch=store.new_epoch(), now=0.0,
                    therapist_sees_drafts=True,
                    partners={"a": PartnerInfo("Ana", "#112233"),
                              "b": PartnerInfo("Ben", "#445566")})
    await store.create(room, {})
    return room.id


async def test_joins_waiting_on_a_failed_first_join_never_join_a_dead_room(
        hub: Hub, admin: aioredis.Redis) -> None:
    room_id = await make_room(hub.store)
    state = Keys(room_id).state
    await admin.delete(state)
    await admin.rpush(state, "not a room")  # GET now fails: WRONGTYPE
    await admin.expire(state, 60)
    listeners = [Listener(str(n)) for n in range(3)]
    results = await asyncio.gather(*(hub.join(room_id, "e", listener) for listener in listeners),
                                   return_exceptions=True)
    assert all(isinstance(result, RedisError) for result in results), (
        "the room cannot be loaded, so no join may succeed")
    assert room_id not in hub.rooms
    channel = Keys(room_id).channel.encode()
    async with asyncio.timeout(WAIT):  # a room that failed to open leaves no subscription
        while True:
            if channel not in await admin.pubsub_channels():
                break
            await asyncio.sleep(0.02)


async def test_a_member_joining_as_the_last_one_leaves_stays_subscribed(
        hub: Hub, admin: aioredis.Redis) -> None:
    room_id = await make_room(hub.store)
    first, second = Listener("first"), Listener("second")
    live = await hub.join(room_id, "e", first)
    leaving = asyncio.create_task(hub.leave(live, first))
    await hub.join(room_id, "e", second)
    await leaving
    assert second in hub.rooms[room_id].members
    # The room's channel still delivers: the therapist's link replaced elsewhere closes it.
    await admin.publish(Keys(room_id).channel, b"Rtherapist:another-hash")
    assert await asyncio.wait_for(second.closed, WAIT) == Close.INVALID_LINK
    numsub = await admin.pubsub_numsub(Keys(room_id).channel)
    assert numsub[0][1] == 1
