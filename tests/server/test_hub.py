"""The hub in-process against a real Redis: joins that race a failure never go deaf."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from rooms.machine import new_room
from rooms.model import PartnerInfo
from server.hub import Hub
from server.store import Keys, Store


class Listener:
    """A stand-in for a websocket connection: it records what the hub pushes."""

    def __init__(self, name: str) -> None:
        self.role = "therapist"
        self.secret_hash = ""
        self.presence_id = f"test|{name}|therapist"
        self.frames: list[bytes] = []

    def push(self, seq: int | None, frame: bytes) -> None:
        self.frames.append(frame)

    def shut(self, code: int, frame: bytes | None = None) -> None:
        pass


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


async def test_joins_waiting_on_a_failed_first_join_never_join_a_dead_feed(hub: Hub) -> None:
    room_id = await make_room(hub.store)
    state = Keys(room_id).state
    await hub.store.redis.delete(state)
    await hub.store.redis.rpush(state, "not a room")  # GET now fails: WRONGTYPE
    await hub.store.redis.expire(state, 60)
    listeners = [Listener(str(n)) for n in range(3)]
    results = await asyncio.gather(*(hub.join(room_id, "e", listener) for listener in listeners),
                                   return_exceptions=True)
    for listener, result in zip(listeners, results, strict=True):
        if isinstance(result, BaseException):
            assert isinstance(result, RedisError)
        else:  # a join that succeeded must be on the feed that events reach
            assert listener in hub.feeds[room_id].members
    assert any(isinstance(result, BaseException) for result in results)
    assert all(isinstance(result, BaseException) for result in results), (
        "the room cannot be loaded, so no join may succeed")


async def test_a_member_joining_as_the_last_one_leaves_stays_subscribed(hub: Hub) -> None:
    room_id = await make_room(hub.store)
    first, second = Listener("first"), Listener("second")
    await hub.join(room_id, "e", first)
    leaving = asyncio.create_task(hub.leave(room_id, first))
    await hub.join(room_id, "e", second)
    await leaving
    assert second in hub.feeds[room_id].members
    await hub.store.publish(room_id, b"P")  # any message on the room's channel
    for _ in range(50):
        if hub.feeds[room_id].recount_pending or second.frames:
            break
        await asyncio.sleep(0.02)
    numsub = await hub.store.redis.pubsub_numsub(Keys(room_id).channel)
    assert numsub[0][1] == 1, "the room's channel lost its subscriber"
