"""Acked writes lost in a Sentinel failover must be told plainly (SessionLost), never a
silent gap. Deterministic: the replica's link is cut (and the replica paused) before three
acked commands, then the master is SIGKILLed, so the promoted replica lacks them.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import redis
from crash_helpers import join, make_room
from test_sentinel import SERVER_ENV, SentinelSet, sentinel_set  # noqa: F401 (fixture)

from client.errors import SessionLost
from rooms.actions import FreezeSet, PartAdd, StageSet


async def test_acked_writes_lost_in_a_failover_are_told_plainly(
        sentinel_set: SentinelSet, server_factory: Any) -> None:  # noqa: F811
    server = await server_factory.start({"REDIS_URL": sentinel_set.url, **SERVER_ENV})
    room = await make_room(server.base_url, 0)
    members = [await join(room, role, server.base_url, server.base_url)
               for role in ("therapist", "a", "b")]
    therapist, a, b = members
    await therapist.run(StageSet(stage=2))
    await a.create(PartAdd(name="kept"))
    with redis.Redis.from_url(sentinel_set.master.url) as master:
        assert master.wait(1, 5000) == 1
        os.kill(sentinel_set.replica.pid, signal.SIGSTOP)
        assert master.client_kill_filter(_type="replica") == 1
    try:
        for n in range(3):
            await a.create(PartAdd(name=f"acked-then-lost-{n}"))  # acked by the master only
    finally:
        sentinel_set.master.kill()
        os.kill(sentinel_set.replica.pid, signal.SIGCONT)

    async def promoted() -> bool:
        address = await asyncio.to_thread(sentinel_set.master_address)
        return address[1] == sentinel_set.replica.port

    for _ in range(300):
        if await promoted():
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("Sentinel never promoted the replica")
    # Whatever the members do next, each must end up told the session was lost.
    for client in (b, therapist):
        try:
            if client is b:
                await client.create(PartAdd(name="after"))
            else:
                await client.run(FreezeSet(frozen=True))
        except Exception:
            pass
    for client in members:
        reason = await client.wait_closed(timeout=30)
        assert isinstance(reason, SessionLost), f"{client.role}: {reason!r} ({client.anomalies})"
