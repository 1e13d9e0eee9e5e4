"""Presence across processes: each person once, healed when a process dies."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
import redis.asyncio as aioredis
from crash_helpers import join, make_room

from client import Client

pytestmark = pytest.mark.timeout(120)

FAST_PRESENCE = {"PARTSBOARD_PRESENCE_TTL": "1.5", "PARTSBOARD_SWEEP_INTERVAL": "0.5"}


async def test_a_dead_process_leaves_no_ghost_members(server_factory) -> None:
    steady = await server_factory.start(FAST_PRESENCE)
    doomed = await server_factory.start(FAST_PRESENCE)
    room = await make_room(steady.base_url, 0)
    therapist = await join(room, "therapist", steady.base_url, steady.base_url)
    tabs = [await join(room, "a", doomed.base_url, steady.base_url) for _ in range(2)]
    phone = await join(room, "b", steady.base_url, steady.base_url)
    await therapist.wait_for(lambda _: therapist.presence == {"therapist": 1, "a": 2, "b": 1})
    doomed.kill()  # no goodbye from its connections
    await therapist.wait_for(lambda _: therapist.presence.get("a") == 0, timeout=15)
    assert therapist.presence == {"therapist": 1, "a": 0, "b": 1}
    await phone.wait_for(lambda _: phone.presence == {"therapist": 1, "a": 0, "b": 1})
    for client in (therapist, *tabs, phone):
        await client.close()


async def test_a_dead_process_is_forgotten_when_its_entries_expire(
        server_factory, redis_url) -> None:
    """The bound of docs/protocol.md (the presence TTL after the dead process's last
    heartbeat) holds however far off the survivor's own next heartbeat is: the survivor
    here refreshes only every 20 s, the doomed process's entries expire 2 s after its last
    heartbeat, and the survivor must see them go when they expire."""
    survivor = await server_factory.start({"PARTSBOARD_PRESENCE_TTL": "60"})
    doomed = await server_factory.start({"PARTSBOARD_PRESENCE_TTL": "2"})
    room = await make_room(survivor.base_url, 0)
    therapist = await join(room, "therapist", survivor.base_url, survivor.base_url)
    await join(room, "a", doomed.base_url, survivor.base_url)
    await therapist.wait_for(lambda _: therapist.presence.get("a") == 1)
    doomed.kill()
    async with aioredis.Redis.from_url(redis_url) as client:
        entries = await client.zrange(f"pb:{{{room.id}}}:presence", 0, -1, withscores=True)
    expiry_ms = max(score for member, score in entries if member.endswith(b"|a"))
    await therapist.wait_for(lambda _: therapist.presence.get("a") == 0, timeout=10)
    seen_ms = time.time() * 1000
    assert seen_ms >= expiry_ms, "a live entry was counted out before it expired"
    assert therapist.presence == {"therapist": 1, "a": 0, "b": 0}
    await therapist.close()


async def test_tabs_count_per_role_and_leaving_is_seen_at_once(server_factory) -> None:
    first = await server_factory.start()
    second = await server_factory.start()
    room = await make_room(first.base_url, 0)
    therapist = await join(room, "therapist", first.base_url, first.base_url)
    tab = await join(room, "b", first.base_url, first.base_url)
    other_tab = await join(room, "b", second.base_url, first.base_url)
    await therapist.wait_for(lambda _: therapist.presence.get("b") == 2)
    await other_tab.close()
    await therapist.wait_for(lambda _: therapist.presence.get("b") == 1)
    await tab.close()
    await therapist.wait_for(lambda _: therapist.presence.get("b") == 0)
    await therapist.close()


async def test_a_room_with_people_in_it_is_not_idle(server_factory, redis_url) -> None:
    short = await server_factory.start({"PARTSBOARD_IDLE_TTL": "2",
                                        "PARTSBOARD_PRESENCE_TTL": "1.5"})
    room = await make_room(short.base_url, 0)
    therapist = await join(room, "therapist", short.base_url, short.base_url)
    state = f"pb:{{{room.id}}}:state"
    async with aioredis.Redis.from_url(redis_url) as client:
        # Without the heartbeat the room would be gone at this moment (Redis's own clock).
        idle_deadline = await client.pexpiretime(state)
        assert idle_deadline > 0
        while True:
            seconds, micros = await client.time()
            assert await client.exists(state), "a room with someone in it expired"
            if seconds * 1000 + micros // 1000 > idle_deadline:
                break
            await asyncio.sleep(0.05)
        assert await client.pexpiretime(state) > idle_deadline
    await therapist.close()
    deadline = asyncio.get_running_loop().time() + 15
    with redis.Redis.from_url(redis_url) as client:
        while client.exists(f"pb:{{{room.id}}}:state"):
            assert asyncio.get_running_loop().time() < deadline, "the empty room never expired"
            await asyncio.sleep(0.2)


async def test_a_full_link_lets_a_new_window_in_once_a_place_frees(server) -> None:
    room = await make_room(server.base_url, 0)
    windows = [await join(room, "b", server.base_url, server.base_url) for _ in range(8)]
    ninth = asyncio.create_task(join(room, "b", server.base_url, server.base_url))
    await asyncio.sleep(1.0)
    assert not ninth.done(), "a ninth window got in while eight were open"
    await windows.pop().close()
    latecomer = await asyncio.wait_for(ninth, 30)
    assert latecomer.connected and latecomer.anomalies == []
    for client in (*windows, latecomer):
        await client.close()


async def test_a_one_shot_client_also_waits_for_a_place(server) -> None:
    room = await make_room(server.base_url, 0)
    windows = [await join(room, "a", server.base_url, server.base_url) for _ in range(8)]
    one_shot = asyncio.create_task(Client.connect(room.links["a"], resume=False))
    await asyncio.sleep(1.0)
    assert not one_shot.done()
    await windows.pop().close()
    latecomer = await asyncio.wait_for(one_shot, 30)
    assert latecomer.connected
    for client in (*windows, latecomer):
        await client.close()
