"""Kill things, cut things, restart things; then check hard invariants.

Invariants after every scenario: zero gaps and zero duplicate sequence numbers
seen by any client (the client records any as an anomaly), every acked add
present exactly once, every client's board equal to a fresh snapshot, and (by
the conftest) no Redis key without a TTL.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import Iterator

import msgspec
import pytest
import websockets
from crash_helpers import (
    Room,
    assert_invariants,
    join,
    make_room,
    metric,
    partner_load,
    settle,
    small_buffer_socket,
    therapist_load,
    wait_connected,
)
from redis_backends import BACKENDS, kill_subscribers

from client.backoff import backoff
from client.errors import SessionLost
from rooms import wire
from rooms.actions import PartAdd, StageSet
from server.local_redis import LocalRedis

pytestmark = pytest.mark.timeout(300)


KILLS = {"single": 20, "sentinel": 6, "cluster": 6}  # the suite's time goes to the first


def eager_backoff() -> Iterator[float]:
    # A killed server is back in about 0.7 s; with the usual 0.4 s cap its clients found it
    # 0.23 s later on average, a fifth of each round.
    return backoff(cap=0.1)


@pytest.mark.parametrize("redis_url", BACKENDS, indirect=True)
async def test_kill_nine_one_of_two_servers_again_and_again(
        server_factory, redis_url, request: pytest.FixtureRequest) -> None:
    kills = KILLS[request.node.callspec.params["redis_url"]]
    servers = [await server_factory.start(), await server_factory.start()]
    origin = servers[0].base_url
    rooms = [await make_room(origin, n) for n in range(3)]
    rng = random.Random(4)
    for n, room in enumerate(rooms):
        therapist = await join(room, "therapist", servers[0].base_url, origin,
                               delays=eager_backoff)
        await join(room, "a", servers[1].base_url, origin, delays=eager_backoff)
        await join(room, "b", servers[n % 2].base_url, origin, delays=eager_backoff)
        await therapist.run(StageSet(stage=2))
    stop = asyncio.Event()
    tasks = []
    for n, room in enumerate(rooms):
        clients = dict(room.members)
        tasks.append(asyncio.create_task(partner_load(clients["a"], room, f"r{n}a", stop, rng)))
        tasks.append(asyncio.create_task(partner_load(clients["b"], room, f"r{n}b", stop, rng)))
        tasks.append(asyncio.create_task(therapist_load(clients["therapist"], stop)))
    every_client = [c for room in rooms for _, c in room.members]
    try:
        for round_no in range(kills):
            await asyncio.sleep(0.3)
            victim = servers[round_no % 2]
            victim.kill()
            await victim.astart()
            await wait_connected(every_client)
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    assert sum(c.reconnects for c in every_client) >= kills
    await assert_invariants(rooms, redis_url, servers[0].base_url, origin)
    for room in rooms:
        for _, client in room.members:
            await client.close()


@pytest.mark.parametrize("redis_url", BACKENDS, indirect=True)
async def test_a_cut_network_mid_command_applies_it_once(server, redis_url) -> None:
    room = await make_room(server.base_url, 0)
    therapist = await join(room, "therapist", server.base_url, server.base_url)
    a = await join(room, "a", server.base_url, server.base_url)
    await join(room, "b", server.base_url, server.base_url)
    await therapist.run(StageSet(stage=2))
    for attempt in range(12):
        name = f"cut-{attempt}"
        await wait_connected([a])
        sending = asyncio.create_task(a.create(PartAdd(name=name)))
        await asyncio.sleep([0, 0.0005, 0.002, 0.01][attempt % 4])
        assert a._ws is not None
        a._ws.transport.abort()  # no close frame: the network just went away
        await asyncio.wait_for(sending, 30)
        room.added.append(name)
    await wait_connected([a])
    assert a.reconnects >= 12
    await assert_invariants([room], redis_url, server.base_url, server.base_url)
    for _, client in room.members:
        await client.close()


async def test_a_sleeping_laptop_is_cut_and_resumes(server_factory, redis_url) -> None:
    server = await server_factory.start({"PARTSBOARD_PING_INTERVAL": "0.3",
                                         "PARTSBOARD_PING_TIMEOUT": "0.3"})
    room = await make_room(server.base_url, 0)
    therapist = await join(room, "therapist", server.base_url, server.base_url)
    a = await join(room, "a", server.base_url, server.base_url)
    b = await join(room, "b", server.base_url, server.base_url)
    await therapist.run(StageSet(stage=2))
    await therapist.wait_for(lambda _: therapist.presence.get("b") == 1)
    assert b._ws is not None
    b._ws.transport.pause_reading()  # the lid closes: no reads, no pongs
    for n in range(10):
        part = await a.create(PartAdd(name=f"while-asleep-{n}"))
        room.added.append(f"while-asleep-{n}")
        await a.send("part.reveal", id=part)
        await asyncio.sleep(0.1)
    # The server cuts the silent connection when its ping goes unanswered: B leaves.
    await therapist.wait_for(lambda _: therapist.presence.get("b") == 0, timeout=30)
    assert b.seq < a.seq, "the sleeping client did not read"
    b._ws.transport.resume_reading()  # the lid opens
    await settle([room], redis_url)
    assert b.reconnects >= 1
    await assert_invariants([room], redis_url, server.base_url, server.base_url)
    for _, client in room.members:
        await client.close()


async def test_restarting_redis_tells_every_client_the_session_was_lost(server_factory) -> None:
    with LocalRedis() as own:
        first = await server_factory.start({"REDIS_URL": own.url})
        second = await server_factory.start({"REDIS_URL": own.url})
        room = await make_room(first.base_url, 0)
        clients = [await join(room, "therapist", first.base_url, first.base_url),
                   await join(room, "a", second.base_url, first.base_url),
                   await join(room, "b", first.base_url, first.base_url)]
        await clients[0].run(StageSet(stage=2))
        await asyncio.to_thread(own.restart)
        for client in clients:
            reason = await client.wait_closed(timeout=20)
            assert isinstance(reason, SessionLost), repr(reason)
        # A later reconnect with the old epoch hears the same, on either process.
        for base in (first.base_url, second.base_url):
            async with websockets.connect(base.replace("http", "ws") + "/ws",
                                          subprotocols=[wire.SUBPROTOCOL]) as ws:
                secret = room.links["a"].split("#", 1)[1]
                await ws.send(wire.hello(room.id, secret, (clients[1].epoch, clients[1].seq)))
                answer = wire.decode_server(await ws.recv())
                assert answer["code"] == "room_lost"
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await ws.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 4409
        assert first.running and second.running


@pytest.mark.parametrize("redis_url", BACKENDS, indirect=True)
async def test_a_killed_subscription_never_costs_a_sequence_number(
        server_factory, redis_url) -> None:
    writer_server = await server_factory.start()
    reader_server = await server_factory.start({"PARTSBOARD_SWEEP_INTERVAL": "0.5"})
    room = await make_room(writer_server.base_url, 0)
    origin = writer_server.base_url
    therapist = await join(room, "therapist", writer_server.base_url, origin)
    a = await join(room, "a", writer_server.base_url, origin)
    observers = [await join(room, "b", reader_server.base_url, origin),
                 await join(room, "therapist", reader_server.base_url, origin)]
    await therapist.run(StageSet(stage=2))
    stop = asyncio.Event()
    load = asyncio.create_task(partner_load(a, room, "flow", stop, random.Random(7)))
    try:
        for _ in range(10):
            await asyncio.sleep(0.2)
            assert kill_subscribers(redis_url) >= 1
    finally:
        stop.set()
        await asyncio.wait_for(load, 30)
    await settle([room], redis_url)
    for observer in observers:
        assert observer.reconnects == 0, "the observer had to reconnect to catch up"
    assert await metric(reader_server.base_url, "partsboard_resubscribes_total") >= 1
    await assert_invariants([room], redis_url, writer_server.base_url, origin)
    for _, client in room.members:
        await client.close()


async def test_a_reconnect_storm_of_three_hundred_clients(server, redis_url) -> None:
    base = server.base_url
    rooms = await asyncio.gather(*(make_room(base, n) for n in range(100)))
    semaphore = asyncio.Semaphore(50)

    async def seat(room: Room) -> None:
        async with semaphore:
            for role in ("therapist", "a", "b"):
                await join(room, role, base, base)
        therapist = dict(room.members)["therapist"]
        await therapist.run(StageSet(stage=2))
        name = f"{room.id[:6]}-before"
        await dict(room.members)["a"].create(PartAdd(name=name))
        room.added.append(name)

    await asyncio.gather(*(seat(room) for room in rooms))
    every_client = [c for room in rooms for _, c in room.members]
    server.kill()

    async def add_while_down(room: Room) -> None:
        name = f"{room.id[:6]}-during"
        await dict(room.members)["b"].create(PartAdd(name=name))
        room.added.append(name)

    queued = [asyncio.create_task(add_while_down(room)) for room in rooms]
    await server.astart()
    await wait_connected(every_client, within=60)
    await asyncio.wait_for(asyncio.gather(*queued), 60)
    assert all(c.reconnects >= 1 for c in every_client)
    await settle(rooms, redis_url)
    for client in every_client:
        assert client.anomalies == [] and client.terminal is None
    await assert_invariants(rooms[:10], redis_url, base, base)
    for client in every_client:
        await client.close()


async def test_a_reader_that_stalls_is_cut_and_never_holds_up_the_room(
        server_factory, redis_url) -> None:
    server = await server_factory.start({"PARTSBOARD_SEND_QUEUE": "16",
                                         "PARTSBOARD_COMMAND_RATE": "1000",
                                         "PARTSBOARD_COMMAND_BURST": "1000"})
    room = await make_room(server.base_url, 0)
    therapist = await join(room, "therapist", server.base_url, server.base_url)
    watcher = await join(room, "therapist", server.base_url, server.base_url)
    secret = room.links["therapist"].split("#", 1)[1]
    sock = small_buffer_socket("127.0.0.1", server.port)
    slow = await websockets.connect(server.ws_url, sock=sock, subprotocols=[wire.SUBPROTOCOL],
                                    max_size=None)
    await slow.send(wire.hello(room.id, secret))
    welcome = wire.decode_server(await slow.recv())
    epoch, last_seen = welcome["epoch"], welcome["seq"]
    slow.transport.pause_reading()
    note = (await therapist.send("note.add", text="first"))["changes"][0][1]
    # Fill every buffer between the server and the stalled reader (kernel buffers on
    # loopback reach a few MiB) with 2 KB events until the server cuts it.
    for _ in range(60):
        await asyncio.gather(*(therapist.send("note.edit", id=note,
                                              text=secrets.token_urlsafe(1400))
                               for _ in range(100)))
        if await metric(server.base_url, "partsboard_slow_consumers_total"):
            break
    await watcher.wait_seq(therapist.seq)  # the others were never held up
    assert await metric(server.base_url, "partsboard_slow_consumers_total") >= 1
    slow.transport.resume_reading()
    codes = []
    try:
        async for data in slow:
            frame = msgspec.msgpack.decode(data)
            if frame.get("t") == "ev":
                assert frame["seq"] == last_seen + 1
                last_seen = frame["seq"]
    except websockets.ConnectionClosed as closed:
        codes.append(closed.rcvd.code if closed.rcvd else None)
    codes.append(slow.close_code)
    assert 4408 in codes
    async with websockets.connect(server.ws_url, subprotocols=[wire.SUBPROTOCOL],
                                  max_size=None) as again:
        await again.send(wire.hello(room.id, secret, (epoch, last_seen)))
        resumed = wire.decode_server(await again.recv())
        replayed = [ev["seq"] for ev in resumed["replay"]]
        assert replayed == list(range(last_seen + 1, therapist.seq + 1))
    await assert_invariants([room], redis_url, server.base_url, server.base_url)
    for _, client in room.members:
        await client.close()


async def test_a_hello_while_redis_is_away_is_told_to_try_again(server_factory) -> None:
    with LocalRedis() as own:
        server = await server_factory.start({"REDIS_URL": own.url,
                                             "PARTSBOARD_REDIS_POOL": "4"})
        own.kill()
        async with websockets.connect(server.ws_url, subprotocols=[wire.SUBPROTOCOL]) as ws:
            await ws.send(wire.hello("x" * 22, "y" * 43))
            answer = wire.decode_server(await ws.recv())
            assert answer["code"] == "internal"
            assert "Redis" not in answer["message"] and "Error" not in answer["message"]
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        assert server.running
