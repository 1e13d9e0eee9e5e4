"""Partsboard on a Redis Cluster (3 primaries, 3 replicas, shared by the session: see
tests/conftest.py), with two server processes.

Every room lives in one hash slot (its keys and channel share one hash tag), rooms spread
over every shard, and a whole session runs as on one Redis. The cluster's failures are
the point: a primary killed (its replica takes over), a room's slot moved to another
primary, a subscriber connection killed on one shard. Every member sees every event in
order or is told plainly that the room was lost; never a silent gap.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import os
import random
import re
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager

import pytest
import redis
from crash_helpers import (
    Room,
    assert_invariants,
    join,
    make_room,
    metric,
    partner_load,
    room_seq,
    settle,
    therapist_load,
)
from faults_helpers import assert_log_clean
from redis_backends import LocalCluster, admin
from test_sentinel import (
    SERVER_ENV,
    Tally,
    board,
    every_part,
    member_states,
    partner_adds,
    snapshots,
    therapist_edits,
)

from client.errors import SessionEnded, SessionLost
from client.http import end_session
from rooms.actions import AgreementAdd, PartAdd, StageSet
from server.local_redis import LocalRedis
from server.store import END_LUA, TOUCH_LUA, Keys

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


# -- a primary killed ----------------------------------------------------------------------


async def until(check: Callable[[], Awaitable[bool]], what: str, within: float = WAIT) -> None:
    deadline = time.monotonic() + within
    while True:
        if await check():
            return
        assert time.monotonic() < deadline, f"{what}: not within {within:.0f} s"
        await asyncio.sleep(0.05)


async def _true(value: bool) -> bool:
    return value


def is_primary(node: LocalRedis) -> bool:
    with redis.Redis(port=node.port, socket_timeout=5) as client:
        return bool(client.execute_command("ROLE")[0] == b"master")


def seq_on(node: LocalRedis, room_id: str) -> int:
    """The room's seq as this node holds it (a replica too: READONLY)."""
    with redis.Redis(port=node.port, socket_timeout=5) as client:
        client.execute_command("READONLY")
        return int(client.hget(Keys(room_id).meta, "seq") or -1)


@pytest.mark.parametrize("durable", [True, False], ids=["durable-acks", "async-replication"])
async def test_a_primary_killed_under_steady_commands(
        server_factory, redis_url: str, redis_cluster: LocalCluster, durable: bool,
        request: pytest.FixtureRequest) -> None:
    """kill -9 of the primary that holds a live room; its replica takes over, and the
    killed node comes back as its replica. With durable acks every acknowledged command
    is in the room exactly once and every member carries on: no member had seen an event
    the replica lacked. Without, Redis replicates after acknowledging, so a process that
    delivered an event the replica lacked tells its members the room was lost, and the
    others carry on with an intact room; which one each run produced is asserted against
    what the replica held, and recorded. No member ever sees a gap."""
    env = {**SERVER_ENV, **({"PARTSBOARD_DURABLE_ACKS": "1"} if durable else {})}
    servers = [await server_factory.start(env), await server_factory.start(env)]
    origin = servers[0].base_url
    room = await make_room(origin, 0)
    members = [await join(room, "therapist", servers[0].base_url, origin),
               await join(room, "a", servers[1].base_url, origin),
               await join(room, "b", servers[0].base_url, origin)]
    therapist, a, b = members
    agreement = await therapist.create(AgreementAdd(text="We take turns"))
    await therapist.run(StageSet(stage=2))
    primary = redis_cluster.node_of_key(Keys(room.id).meta)
    [replica] = redis_cluster.replicas_of(primary)

    tally, stop, rng = Tally(), asyncio.Event(), random.Random(12)
    tasks = [asyncio.create_task(partner_adds(a, "ka", stop, tally, rng)),
             asyncio.create_task(partner_adds(b, "kb", stop, tally, rng)),
             asyncio.create_task(therapist_edits(therapist, agreement, stop, tally))]
    try:
        await until(lambda: _true(len(tally.acked) >= 8), "commands flow before the kill")
        acked_before = len(tally.acked)
        seen_before = max(client.seq for client in members)
        await asyncio.to_thread(primary.kill)  # SIGKILL, mid-traffic
        killed_at = time.monotonic()
        # What the replica holds now is what it will serve once promoted.
        kept = await asyncio.to_thread(seq_on, replica, room.id)
        await until(lambda: asyncio.to_thread(is_primary, replica),
                    "the replica takes over", within=60)
        promoted_after = time.monotonic() - killed_at
        tally.failed_over.set()
        # The killed node comes back (as an orchestrator would restart it) and rejoins as
        # the new primary's replica: until then, durable acks have no replica to wait for
        # and the room's commands are answered busy.
        await asyncio.to_thread(redis_cluster.bring_back, primary)
        await until(lambda: _true(tally.acked_after_failover >= 10
                                  or all(c.terminal is not None for c in members)),
                    f"commands are acked again: {member_states(members)}", within=60)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), WAIT)

    for client in members:
        assert client.anomalies == [], f"{client.role} saw a gap: {client.anomalies[:5]}"
        assert client.terminal is None or isinstance(client.terminal, SessionLost), (
            f"{client.role}: {client.terminal!r}")
    outcome = {str(c.role): "lost" if c.terminal is not None else "intact" for c in members}
    if durable:
        assert seen_before <= kept, "a member saw an event that no replica held"
        assert set(outcome.values()) == {"intact"}, f"{outcome}: {tally}"
    # One LiveRoom per process: its members share its verdict, lost only if it had
    # delivered an event that the promoted replica never had.
    for process in ((therapist, b), (a,)):
        verdicts = {outcome[str(client.role)] for client in process}
        assert len(verdicts) == 1, f"members of one process differ: {outcome}"
        if verdicts == {"lost"}:
            assert max(client.seq for client in process) > kept, (
                f"told lost, yet the replica held every event they saw ({kept}): {outcome}")
    intact = [client for client in members if client.terminal is None]
    if intact:
        seq = await room_seq(redis_url, room.id)
        fresh = await snapshots(room)
        for client in intact:
            await client.wait_seq(seq, timeout=WAIT)
            assert board(client) == fresh[str(client.role)], f"{client.role}'s board differs"
        counts = collections.Counter(p["name"] for p in every_part(fresh).values())
        assert not [name for name, n in counts.items() if n > 1], "applied twice"
        assert not set(counts) - set(tally.acked) - set(tally.refused), "never sent"
        missing = [name for name in tally.acked if counts[name] != 1]
        if durable or len(intact) == len(members):
            assert not missing, f"acked but not in the room (a silent gap): {missing}"
    summary = (f"cluster failover ({'durable acks' if durable else 'async replication'}): "
               f"outcome={outcome} promoted_after={promoted_after:.1f}s kept_seq={kept} "
               f"seen_before_kill={seen_before} "
               f"acked_before_kill={acked_before} acked_total={len(tally.acked)} "
               f"acks_after_failover={tally.acked_after_failover} refused={dict(tally.codes)}")
    print(summary)
    request.node.user_properties.append(("cluster_failover", summary))
    for client in members:
        await client.close()
    for server in servers:
        assert_log_clean(server)


async def test_acked_writes_a_failover_lost_are_told_plainly(
        server_factory, redis_url: str, redis_cluster: LocalCluster) -> None:
    """Deterministic: the room's replica is paused and its link cut before three acked
    commands, then its primary is killed, so the promoted replica lacks them. Every member
    (on both processes) is told the room was lost; nobody sees a gap or a shorter board."""
    servers = [await server_factory.start(SERVER_ENV), await server_factory.start(SERVER_ENV)]
    origin = servers[0].base_url
    room = await make_room(origin, 0)
    members = [await join(room, "therapist", servers[0].base_url, origin),
               await join(room, "a", servers[1].base_url, origin),
               await join(room, "b", servers[0].base_url, origin)]
    therapist, a, _ = members
    await therapist.run(StageSet(stage=2))
    await a.create(PartAdd(name="kept"))
    primary = redis_cluster.node_of_key(Keys(room.id).meta)
    [replica] = redis_cluster.replicas_of(primary)
    with redis.Redis(port=primary.port) as client:
        assert client.wait(1, 5000) == 1
        os.kill(replica.pid, signal.SIGSTOP)
        assert client.client_kill_filter(_type="replica") == 1
    try:
        for n in range(3):
            await a.create(PartAdd(name=f"acked-then-lost-{n}"))  # on the primary only
        for client in members:
            await client.wait_seq(a.seq, timeout=WAIT)  # delivered on both processes
    finally:
        primary.kill()
        os.kill(replica.pid, signal.SIGCONT)
    await until(lambda: asyncio.to_thread(is_primary, replica), "the replica takes over",
                within=60)
    assert await asyncio.to_thread(seq_on, replica, room.id) < a.seq
    for client in members:
        reason = await client.wait_closed(timeout=WAIT)
        assert isinstance(reason, SessionLost), f"{client.role}: {reason!r}"
        assert client.anomalies == [], f"{client.role} saw a gap: {client.anomalies[:5]}"


# -- a slot moved --------------------------------------------------------------------------


def shard_subscribers(node: LocalRedis, channel: str) -> int:
    with redis.Redis(port=node.port, socket_timeout=5) as client:
        return int(client.pubsub_shardnumsub(channel)[0][1])


async def test_a_live_rooms_slot_moved_to_another_primary(
        server_factory, redis_url: str, redis_cluster: LocalCluster) -> None:
    """A reshard moves the room's slot during a session: commands carry on, nothing is
    lost, no member sees a gap, and both processes' subscriptions follow the slot."""
    servers = [await server_factory.start(SERVER_ENV), await server_factory.start(SERVER_ENV)]
    origin = servers[0].base_url
    room = await make_room(origin, 0)
    therapist = await join(room, "therapist", servers[0].base_url, origin)
    a = await join(room, "a", servers[1].base_url, origin)
    await join(room, "b", servers[0].base_url, origin)
    await therapist.run(StageSet(stage=2))
    channel = Keys(room.id).channel
    slot = redis_cluster.keyslot(channel)
    source = redis_cluster.node_of_slot(slot)
    target = next(node for node in redis_cluster.primaries() if node is not source)
    assert shard_subscribers(source, channel) == 2  # one link per process

    stop = asyncio.Event()
    load = [asyncio.create_task(partner_load(a, room, "moved", stop, random.Random(5))),
            asyncio.create_task(therapist_load(therapist, stop))]
    try:
        await until(lambda: _true(len(room.added) >= 5), "commands flow before the move")
        await asyncio.to_thread(redis_cluster.move_slot, slot, target)
        moved_at = len(room.added)
        await until(lambda: asyncio.to_thread(
            lambda: shard_subscribers(target, channel) == 2
            and shard_subscribers(source, channel) == 0), "the subscriptions follow the slot")
        await until(lambda: _true(len(room.added) >= moved_at + 5), "commands flow after")
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*load), WAIT)
    assert redis_cluster.node_of_key(Keys(room.id).meta) is target
    await assert_invariants([room], redis_url, origin, origin)
    assert all(client.reconnects == 0 for _, client in room.members), "a member reconnected"
    for server in servers:
        assert_log_clean(server)
    for _, client in room.members:
        await client.close()


# -- a subscriber connection killed ---------------------------------------------------------


def pubsub_clients(node: LocalRedis) -> list[int]:
    with redis.Redis(port=node.port, socket_timeout=5) as client:
        return sorted(int(c["id"]) for c in client.client_list(_type="pubsub"))


async def test_a_subscriber_killed_on_one_shard_resubscribes_and_fills_the_gap(
        server_factory, redis_url: str, redis_cluster: LocalCluster) -> None:
    """Rooms on every shard, observed from another process: that process holds one
    subscriber connection per shard (not one per room). Killing the subscribers on one
    shard again and again costs its observers nothing (resubscribed, gaps filled, no
    reconnect), and the other shards' subscriptions are not touched."""
    writer = await server_factory.start()
    reader = await server_factory.start({"PARTSBOARD_SWEEP_INTERVAL": "0.5"})
    origin = writer.base_url
    rooms: list[Room] = []
    while {redis_cluster.node_of_key(Keys(r.id).meta).port for r in rooms} != {
            node.port for node in redis_cluster.primaries()}:
        rooms.append(await make_room(origin, len(rooms)))
    for room in rooms:
        therapist = await join(room, "therapist", writer.base_url, origin)
        await join(room, "a", writer.base_url, origin)
        await join(room, "b", reader.base_url, origin)
        await therapist.run(StageSet(stage=2))
    for node in redis_cluster.primaries():
        assert len(pubsub_clients(node)) == 2, "not one subscriber per process and shard"
    victim = redis_cluster.node_of_key(Keys(rooms[0].id).meta)
    others = {node.port: pubsub_clients(node) for node in redis_cluster.primaries()
              if node is not victim}
    stop = asyncio.Event()
    load = [asyncio.create_task(partner_load(dict(room.members)["a"], room, f"r{n}", stop,
                                             random.Random(n)))
            for n, room in enumerate(rooms)]
    try:
        for _ in range(10):
            await asyncio.sleep(0.2)
            with redis.Redis(port=victim.port) as admin:
                assert admin.client_kill_filter(_type="pubsub") >= 1
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*load), WAIT)
    await settle(rooms, redis_url)
    assert await metric(reader.base_url, "partsboard_resubscribes_total") >= 1
    for room in rooms:
        for _, client in room.members:
            assert client.reconnects == 0, "a member had to reconnect to catch up"
    await assert_invariants(rooms, redis_url, origin, origin)
    assert {port: pubsub_clients(node) for port, node in
            ((n.port, n) for n in redis_cluster.primaries() if n is not victim)} == others
    for room in rooms:
        for _, client in room.members:
            await client.close()


# -- never a command across slots ----------------------------------------------------------


TAG = re.compile(rb"pb:\{([^}]*)\}")
ENTRY = re.compile(rb"^[0-9.]+ \[\d+ ([^\]]+)\] \"([^\"]+)\"")


@contextmanager
def monitored(nodes: list[LocalRedis]) -> Iterator[dict[int, list[bytes]]]:
    """What every node executes meanwhile (MONITOR), one raw line per command: filled in
    when the block ends (Redis buffers a monitor's lines until it reads them)."""
    seen: dict[int, list[bytes]] = {}
    with ExitStack() as stack:
        monitors = {node.port: stack.enter_context(
            redis.Redis(port=node.port, socket_timeout=30).monitor()) for node in nodes}
        yield seen
        for port, monitor in monitors.items():
            marker = f"end-of-monitoring-{port}"
            with redis.Redis(port=port) as client:
                client.echo(marker)
            lines = seen[port] = []
            while True:
                line = monitor.connection.read_response(disable_decoding=True)
                if marker.encode() in line:
                    break
                lines.append(line)


def rooms_per_command(lines: list[bytes]) -> Iterator[tuple[set[bytes], bytes]]:
    """The rooms each command names (its keys, its channel), a MULTI ... EXEC block being
    one command (a script's own calls, shown as from "lua", count one by one)."""
    blocks: dict[bytes, list[bytes]] = {}
    for line in lines:
        entry = ENTRY.match(line)
        assert entry is not None, line[:200]
        client, name = entry[1], entry[2].upper()
        if name == b"MULTI":
            blocks[client] = []
        elif client in blocks:
            if name != b"EXEC":
                blocks[client].append(line)
                continue
            block = blocks.pop(client)
            yield {tag for each in block for tag in TAG.findall(each)}, b" / ".join(block)
        else:
            yield set(TAG.findall(line)), line


async def test_heartbeat_sweep_and_end_touch_one_room_per_command(
        server_factory, redis_url: str, redis_cluster: LocalCluster) -> None:
    """Rooms on every shard with members on two processes, under a fast heartbeat and
    sweep, then ended. Every command Redis executes (as MONITOR shows it on each primary,
    a script's own calls and a transaction as a whole included) names the keys and
    channel of one room at most, and no node refused a command across slots; the
    heartbeat's and the sweep's work reached every primary."""
    env = {"PARTSBOARD_PRESENCE_TTL": "1.5", "PARTSBOARD_SWEEP_INTERVAL": "0.5"}
    servers = [await server_factory.start(env), await server_factory.start(env)]
    origin = servers[0].base_url
    primaries = redis_cluster.primaries()
    for node in primaries:
        with redis.Redis(port=node.port) as client:
            client.config_resetstat()
    cluster = admin(redis_url)
    # More rooms than the heartbeat's slices, so that its pipelines hold several rooms.
    rooms = list(await asyncio.gather(*(make_room(origin, n) for n in range(24))))
    assert {redis_cluster.node_of_key(Keys(r.id).meta).port for r in rooms} == {
        node.port for node in primaries}
    try:
        with monitored(primaries) as seen:
            await asyncio.gather(*(join(room, role, server.base_url, origin)
                                   for room in rooms for role, server in
                                   zip(("therapist", "a"), servers, strict=True)))

            def expiries() -> list[float]:
                return [min(score for _, score in cluster.zrange(
                    Keys(room.id).presence, 0, -1, withscores=True)) for room in rooms]

            first = await asyncio.to_thread(expiries)
            await until(lambda: asyncio.to_thread(
                lambda: all(now > then for now, then in zip(expiries(), first, strict=True))),
                "every room's presence refreshed by a heartbeat")
            await asyncio.gather(*(end_session(room.links["therapist"]) for room in rooms))
            for room in rooms:
                for _, client in room.members:
                    assert isinstance(await client.wait_closed(), SessionEnded)
    finally:
        cluster.close()

    def sha(script: str) -> bytes:
        return hashlib.sha1(script.encode()).hexdigest().encode()

    for node in primaries:
        lines = seen[node.port]
        for named, line in rooms_per_command(lines):
            assert len(named) <= 1, f"a command across rooms on {node.port}: {line[:300]!r}"
        for what, needle in (("the heartbeat's touch", b'"EVALSHA" "' + sha(TOUCH_LUA)),
                             ("the sweep's read", b'" "seq" "epoch"'),
                             ("the end", b'"EVALSHA" "' + sha(END_LUA))):
            assert any(needle in line for line in lines), f"{what} never reached {node.port}"
        with redis.Redis(port=node.port) as client:
            errors = client.info("errorstats")
        assert "errorstat_CROSSSLOT" not in errors, f"{node.port} refused: {errors}"
    for server in servers:
        assert_log_clean(server)
        assert "failed" not in server.log_text(), server.log_tail()
