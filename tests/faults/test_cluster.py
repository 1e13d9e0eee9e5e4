"""Partsboard on a Redis Cluster (3 primaries, 3 replicas, shared by the session: see
tests/conftest.py), with two server processes.

Every room lives in one hash slot (its keys and channel share one hash tag), rooms spread
over every shard, and a whole session runs as on one Redis. The cluster's failures are
the point: a primary killed (its replica takes over), a room's slot moved to another
primary, a subscriber connection killed on one shard. Every member sees every event in
order or is told plainly that the room was lost; never a silent gap.
"""

from __future__ import annotations

import pytest
import redis
from crash_helpers import make_room
from redis_backends import LocalCluster

from server.store import Keys

pytestmark = [pytest.mark.timeout(180),
              pytest.mark.parametrize("redis_url", ["cluster"], indirect=True)]

WAIT = 30.0  # a guard against hangs, never a measured expectation


async def test_rooms_spread_over_every_shard_each_in_one_slot(
        server_factory, redis_url: str, redis_cluster: LocalCluster) -> None:
    server = await server_factory.start()
    rooms = [await make_room(server.base_url, n) for n in range(24)]
    owners = set()
    for room in rooms:
        keys = Keys(room.id)
        slots = {redis_cluster.keyslot(key) for key in (*keys.all(), keys.channel)}
        assert len(slots) == 1, "a room's keys are in more than one slot"
        [slot] = slots
        owner = redis_cluster.node_of_slot(slot)
        owners.add(owner.port)
        with redis.Redis(port=owner.port) as client:
            stored = int(client.execute_command("CLUSTER COUNTKEYSINSLOT", slot))
            assert stored >= 2, "the room is not on the node that serves its slot"
            assert client.exists(keys.meta, keys.state) == 2
    assert owners == {node.port for node in redis_cluster.primaries()}
