"""Redis Sentinel (SPEC 8): the server finds its master through Sentinel, and finds the new
one by itself after a failover.

Each test starts its own Sentinel set (tests/redis_backends.py: a master, its replica and
one Sentinel watching them as service ``pb``). The server runs with
``REDIS_URL=redis+sentinel://127.0.0.1:<sentinel port>/pb``. Replication is
diskless on both sides, so no session content reaches a disk. The session Redis is never
written to (``server_factory`` only starts it); these tests check themselves that every key
left in their own master and replica has a TTL.

Which outcome a failover must have depends on what the replica held when the master died:

- the replica had every write the master had acknowledged (the failover test pauses writes
  on the master until its replica caught up, then kills it, mid-traffic): "intact". Every
  command acked before or after the failover is in the room exactly once, every command
  refused meanwhile (``internal``) at most once, every member's board equals a fresh
  snapshot, no member saw a gap or a duplicate, and nobody was told the room was lost;
- the replica missed acknowledged writes (Redis replicates asynchronously;
  test_sentinel_lost_writes.py cuts the replica's link before three acked commands):
  "lost-and-told". Every member is told so plainly (SessionLost, close 4409) instead of
  carrying on with a silent gap.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from crash_helpers import Room, board, join, make_room, normal
from faults_helpers import assert_log_clean, root_conftest
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import MaxConnectionsError
from redis_backends import SERVICE, WAIT, SentinelSet, eventually, info

from client import Client
from rooms.actions import (
    AgreementAck,
    AgreementAdd,
    AgreementEdit,
    PartAdd,
    PartMove,
    PartReveal,
    SpotlightSet,
    StageSet,
)
from rooms.errors import RoomError
from server.local_redis import LocalRedis
from server.redis_urls import BlockingSentinelConnectionPool, make_client

pytestmark = pytest.mark.timeout(120)

SERVER_ENV = {"PARTSBOARD_MAX_PARTS": "500", "PARTSBOARD_SWEEP_INTERVAL": "0.5"}


async def until(check: Callable[[], Awaitable[bool]], what: str, within: float = WAIT) -> None:
    deadline = time.monotonic() + within
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within:.0f} s")
        await asyncio.sleep(0.05)


@pytest.fixture
def sentinel_set(tmp_path: Path) -> Iterator[SentinelSet]:
    workdir = tmp_path / "sentinel"
    workdir.mkdir(mode=0o700)
    found = SentinelSet.start(workdir)
    try:
        yield found
    finally:
        found.stop()


@contextlib.contextmanager
def logs_on_failure(sentinel_set: SentinelSet, server_factory: Any) -> Iterator[None]:
    """On failure, print the servers' and Sentinel's logs (pytest shows them)."""
    try:
        yield
    except BaseException:
        for server in server_factory.servers:
            print(f"--- server log ({server.log_path.name}):\n{server.log_tail(300)}")
        print(f"--- sentinel log:\n{sentinel_set.log_tail()}")
        raise


def member_states(members: list[Client]) -> str:
    return "; ".join(
        f"{c.role}: seq={c.seq} connected={c.connected} pending={c.pending} "
        f"reconnects={c.reconnects} terminal={c.terminal!r} anomalies={c.anomalies[:3]}"
        for c in members)


def assert_every_key_has_a_ttl(config: pytest.Config, nodes: list[LocalRedis]) -> None:
    keys_without_ttl = root_conftest(config).keys_without_ttl
    assert nodes, "no Redis node is left to check"
    for node in nodes:
        untimed = keys_without_ttl(node.url)
        assert not untimed, f"keys without a TTL on port {node.port}: {sorted(untimed)[:20]}"


async def readyz(base_url: str) -> int:
    async with httpx.AsyncClient(timeout=5) as http:
        return (await http.get(f"{base_url}/readyz")).status_code


async def snapshots(room: Room) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for role in ("therapist", "a", "b"):
        fresh = await Client.connect(room.links[role], resume=False)
        try:
            out[role] = board(fresh)
        finally:
            await fresh.close()
    return out


def every_part(snapshots: dict[str, Any]) -> dict[str, Any]:
    """Every part in the room: the union of what each viewer sees (drafts are private)."""
    return {pid: part for snap in snapshots.values()
            for pid, part in snap["colls"]["parts"].items()}


async def committed_seq(node: LocalRedis, room_id: str) -> int:
    def read() -> int:
        with redis.Redis.from_url(node.url, socket_timeout=5) as client:
            value = client.hget(f"pb:{{{room_id}}}:meta", "seq")
        assert value is not None, "the room is gone"
        return int(value)

    return await asyncio.to_thread(read)


# -- a small session through Sentinel -----------------------------------------------------


async def test_a_small_session_through_sentinel(
        sentinel_set: SentinelSet, server_factory: Any, request: pytest.FixtureRequest) -> None:
    with logs_on_failure(sentinel_set, server_factory):
        await small_session(sentinel_set, server_factory, request.config)


async def small_session(sentinel_set: SentinelSet, server_factory: Any,
                        config: pytest.Config) -> None:
    server = await server_factory.start({"REDIS_URL": sentinel_set.url, **SERVER_ENV})
    assert await readyz(server.base_url) == 200
    room = await make_room(server.base_url, 0)
    therapist = await join(room, "therapist", server.base_url, server.base_url)
    a = await join(room, "a", server.base_url, server.base_url)
    b = await join(room, "b", server.base_url, server.base_url)
    agreement = await therapist.create(AgreementAdd(text="We take turns"))
    await a.run(AgreementAck(id=agreement))
    await b.run(AgreementAck(id=agreement))
    await therapist.run(StageSet(stage=2))
    part = await a.create(PartAdd(name="sentinel-a-1", kind="manager", x=0.2, y=0.3))
    room.added.append("sentinel-a-1")
    await a.run(PartReveal(id=part))
    await b.create(PartAdd(name="sentinel-b-1", kind="exile", x=0.7, y=0.6))
    room.added.append("sentinel-b-1")
    await therapist.run(SpotlightSet(part=part))
    await a.run(PartMove(id=part, x=0.4, y=0.4))

    seq = await committed_seq(sentinel_set.master, room.id)
    for client in (therapist, a, b):
        await client.wait_seq(seq, timeout=WAIT)
        assert client.anomalies == [] and client.terminal is None
    fresh = await snapshots(room)
    for role, client in room.members:
        assert board(client) == fresh[role], f"{role}'s board differs from a snapshot"
    names = sorted(p["name"] for p in every_part(fresh).values())
    assert names == sorted(room.added)
    assert fresh["a"]["colls"]["agreements"][agreement]["acks"] == ["a", "b"]
    # The room lives on the master that Sentinel names, and its replica has it too.
    assert sentinel_set.master_address() == ("127.0.0.1", sentinel_set.master.port)
    with redis.Redis.from_url(sentinel_set.master.url) as admin:
        assert admin.wait(1, 5000) == 1
    assert await committed_seq(sentinel_set.replica, room.id) == seq
    for _, client in room.members:
        await client.close()
    assert_log_clean(server)
    assert_every_key_has_a_ttl(config, sentinel_set.nodes())


async def test_the_sentinel_pool_waits_for_a_free_connection(sentinel_set: SentinelSet) -> None:
    client = make_client(sentinel_set.url, pool_size=2, timeout=10.0)
    try:
        # Eight callers, each holding a connection for a moment (BLPOP on an empty list
        # times out after 0.1 s): the pool makes the other six wait their turn.
        answers = await asyncio.gather(*(client.blpop([f"nothing:{n}"], timeout=0.1)
                                         for n in range(8)))
        assert answers == [None] * 8
        pool = client.connection_pool
        assert isinstance(pool, BlockingSentinelConnectionPool)
        assert not pool._in_use_connections
        assert [(c.host, getattr(c, "port", None)) for c in pool._available_connections] == [
            ("127.0.0.1", sentinel_set.master.port)] * 2
    finally:
        await client.aclose()
    # The same load on redis-py's own Sentinel pool: the third caller is refused at once.
    manager = Sentinel([("127.0.0.1", sentinel_set.port)])  # type: ignore[no-untyped-call]
    plain = manager.master_for(SERVICE, max_connections=2)
    try:
        results = await asyncio.gather(
            *(plain.blpop([f"nothing:{n}"], timeout=0.1) for n in range(8)),
            return_exceptions=True)
        assert any(isinstance(r, MaxConnectionsError) for r in results), results
    finally:
        await plain.aclose()
        await manager.aclose()


# -- failover -------------------------------------------------------------------------------


@dataclass
class Tally:
    """What the members were told about their commands."""

    acked: list[str] = field(default_factory=list)  # names of acked part.add commands
    refused: list[str] = field(default_factory=list)  # names of refused part.add commands
    revealed: list[str] = field(default_factory=list)  # names of acked part.reveal commands
    edits: list[tuple[int, bool]] = field(default_factory=list)  # (edit number, acked)
    codes: collections.Counter[str] = field(default_factory=collections.Counter)
    acked_after_failover: int = 0
    lost: list[BaseException] = field(default_factory=list)  # why a member stopped
    failed_over: asyncio.Event = field(default_factory=asyncio.Event)

    def ack(self, name: str | None = None) -> None:
        if name is not None:
            self.acked.append(name)
        if self.failed_over.is_set():
            self.acked_after_failover += 1


async def partner_adds(client: Client, tag: str, stop: asyncio.Event, tally: Tally,
                       rng: random.Random) -> None:
    """Add (and reveal) parts with unique names, one every ~0.15 s, until stopped."""
    n = 0
    while not stop.is_set():
        n += 1
        name = f"{tag}-{n}"
        try:
            part = await client.create(PartAdd(name=name, kind="unsure", x=rng.random(),
                                               y=rng.random()))
            tally.ack(name)
            await client.run(PartReveal(id=part))
            tally.revealed.append(name)
            tally.ack()
        except RoomError as error:  # refused while Redis was away: not acked
            if client.terminal is not None:  # told the session is over: stop
                tally.lost.append(client.terminal)
                return
            tally.codes[error.code] += 1
            if name not in tally.acked:
                tally.refused.append(name)
        await asyncio.sleep(0.15)


async def therapist_edits(client: Client, agreement: str, stop: asyncio.Event,
                          tally: Tally) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        try:
            await client.run(AgreementEdit(id=agreement, text=f"We take turns ({n})"))
            tally.edits.append((n, True))
            tally.ack()
        except RoomError as error:
            if client.terminal is not None:
                tally.lost.append(client.terminal)
                return
            tally.edits.append((n, False))
            tally.codes[error.code] += 1
        await asyncio.sleep(0.2)


async def test_failover_the_server_follows_the_new_master_and_members_carry_on(
        sentinel_set: SentinelSet, server_factory: Any, request: pytest.FixtureRequest) -> None:
    with logs_on_failure(sentinel_set, server_factory):
        summary = await failover(sentinel_set, server_factory, request.config)
    print(summary)
    request.node.user_properties.append(("sentinel_failover", summary))


async def failover(sentinel_set: SentinelSet, server_factory: Any, config: pytest.Config) -> str:
    server = await server_factory.start({"REDIS_URL": sentinel_set.url, **SERVER_ENV})
    room = await make_room(server.base_url, 0)
    therapist = await join(room, "therapist", server.base_url, server.base_url)
    a = await join(room, "a", server.base_url, server.base_url)
    b = await join(room, "b", server.base_url, server.base_url)
    agreement = await therapist.create(AgreementAdd(text="We take turns"))
    await therapist.run(StageSet(stage=2))
    old_master = sentinel_set.master_address()
    new_master = ("127.0.0.1", sentinel_set.replica.port)

    tally = Tally()
    stop = asyncio.Event()
    rng = random.Random(8)
    tasks = [asyncio.create_task(partner_adds(a, "fa", stop, tally, rng)),
             asyncio.create_task(partner_adds(b, "fb", stop, tally, rng)),
             asyncio.create_task(therapist_edits(therapist, agreement, stop, tally))]
    try:
        await until(lambda: _true(len(tally.acked) >= 8), "commands flow before the failover")
        acked_before = len(tally.acked)
        await asyncio.to_thread(pause_writes_until_the_replica_caught_up, sentinel_set)
        await asyncio.to_thread(sentinel_set.master.kill)  # SIGKILL: a crash, mid-traffic
        killed_at = time.monotonic()

        async def promoted() -> bool:
            return await asyncio.to_thread(sentinel_set.master_address) != old_master

        await until(promoted, f"Sentinel promotes the replica\n{sentinel_set.log_tail()}")
        promoted_after = time.monotonic() - killed_at
        tally.failed_over.set()
        assert sentinel_set.master_address() == new_master
        # Members keep working on the new master.
        try:
            await until(lambda: _true(tally.acked_after_failover >= 10 or bool(tally.lost)),
                        "commands are acked again after the failover")
            assert not tally.lost, f"the replica had every acked write, yet: {tally.lost}"
        except AssertionError:
            seq = await committed_seq(sentinel_set.replica, room.id)
            raise AssertionError(
                f"commands are not acked again after the failover: the new master is at seq "
                f"{seq}; members: {member_states([therapist, a, b])}; {tally}") from None
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), WAIT)

    await until(lambda: _ready(server.base_url), "/readyz answers 200 after the failover")
    await until(lambda: asyncio.to_thread(sentinel_set.master_is_up),
                "Sentinel sees the new master as up")
    members = [therapist, a, b]
    seq = await committed_seq(sentinel_set.replica, room.id)
    for client in members:
        await client.wait_seq(seq, timeout=WAIT)
        assert client.anomalies == [], f"{client.role}: {client.anomalies[:5]}"
        assert client.terminal is None and client.connected, f"{client.role}: {client.terminal!r}"
    fresh = await snapshots(room)
    for role, client in room.members:
        assert board(client) == fresh[role], f"{role}'s board differs from a snapshot"
    counts = collections.Counter(p["name"] for p in every_part(fresh).values())
    doubled = [name for name, n in counts.items() if n > 1]
    missing = [name for name in tally.acked if counts[name] != 1]
    unknown = set(counts) - set(tally.acked) - set(tally.refused)
    assert not doubled, f"applied twice: {doubled}"
    assert not missing, f"acked but not in the room (a silent gap): {missing}"
    assert not unknown, f"in the room but never sent: {unknown}"
    hidden = [name for name in tally.revealed
              if not any(p["name"] == name and p["shared"]
                         for p in fresh["therapist"]["colls"]["parts"].values())]
    assert not hidden, f"acked reveals not in the room: {hidden}"
    # The agreement shows the last acked edit, or a later one that was refused
    # (``internal``: its reply was lost, not necessarily the write).
    text = normal(therapist.view)["colls"]["agreements"][agreement]["text"]
    last_acked = max((n for n, acked in tally.edits if acked), default=0)
    allowed = {f"We take turns ({n})" for n, acked in tally.edits
               if n == last_acked or (n > last_acked and not acked)}
    if last_acked == 0:
        allowed.add("We take turns")
    assert text in allowed, f"the agreement shows {text!r}, not one of {sorted(allowed)}"
    refused_applied = sum(counts[name] for name in tally.refused)
    summary = (f"sentinel failover: outcome=intact promoted_after={promoted_after:.1f}s "
               f"acked_before_kill={acked_before} acked_total={len(tally.acked)} "
               f"acks_after_failover={tally.acked_after_failover} "
               f"refused={dict(tally.codes)} refused_applied={refused_applied}")
    for client in members:
        await client.close()
    assert_log_clean(server)
    assert_every_key_has_a_ttl(config, sentinel_set.nodes())
    assert not sentinel_set.master.running and sentinel_set.nodes() == [sentinel_set.replica]
    return summary


def pause_writes_until_the_replica_caught_up(sentinel_set: SentinelSet) -> None:
    """CLIENT PAUSE WRITE on the master (writes wait instead of running) until its replica
    has processed everything the master wrote: every acknowledged write is on the replica."""
    with redis.Redis.from_url(sentinel_set.master.url, socket_timeout=5) as master:
        master.client_pause(int(WAIT * 1000), all=False)

        def caught_up() -> bool:
            written = master.info("replication")["master_repl_offset"]
            return bool(info(sentinel_set.replica, "replication")["slave_repl_offset"] == written)

        eventually(caught_up, "the replica has every write of the paused master")


async def _true(value: bool) -> bool:
    return value


async def _ready(base_url: str) -> bool:
    return await readyz(base_url) == 200


def test_nothing_of_the_session_reaches_a_disk(sentinel_set: SentinelSet) -> None:
    for node in (sentinel_set.master, sentinel_set.replica):
        with redis.Redis.from_url(node.url, decode_responses=True) as client:
            assert client.config_get("save") == {"save": ""}
            assert client.config_get("appendonly") == {"appendonly": "no"}
            assert client.config_get("repl-diskless-sync") == {"repl-diskless-sync": "yes"}
        assert node.dir is None or not node.dir.exists()
    with redis.Redis.from_url(sentinel_set.replica.url, decode_responses=True) as client:
        assert client.config_get("repl-diskless-load") == {"repl-diskless-load": "on-empty-db"}
    # Sentinel's own directory holds only its configuration and its log.
    assert sorted(os.listdir(sentinel_set.dir)) == ["sentinel.conf", "sentinel.log"]
