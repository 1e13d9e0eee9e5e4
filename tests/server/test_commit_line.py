"""Commits made in one turn of the event loop go to Redis together, in one pipeline: each
still applied once, answered on its own, and a Redis that forgot the commit script or
stopped answering still gets every command an answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from hub_helpers import Listener, make_room, open_store
from redis.exceptions import ConnectionError as RedisConnectionError

from rooms.actions import parse_args
from server.commands import execute
from server.live_room import LiveRoom
from server.local_redis import free_port
from server.store import Store

pytestmark = pytest.mark.timeout(60)

ROOMS = 24


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[Store]:
    async with open_store(redis_url) as opened:
        yield opened


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


def _count_pipelines(store: Store) -> list[int]:
    """How many commands each pipeline of the store's client carried."""
    sizes: list[int] = []
    client = store.redis
    original = client.pipeline

    def counting(*args: Any, **kwargs: Any) -> Any:
        pipe = original(*args, **kwargs)
        execute_pipe = pipe.execute

        async def counted(*a: Any, **k: Any) -> Any:
            sizes.append(len(pipe.command_stack))
            return await execute_pipe(*a, **k)

        pipe.execute = counted
        return pipe

    client.pipeline = counting  # type: ignore[method-assign]
    return sizes


async def _add_a_note_in_each(rooms: list[tuple[LiveRoom, Listener]]) -> list[Any]:
    """Every room's therapist adds a note, all at once: their seqs, or what they raised."""
    return await asyncio.gather(
        *(execute(live, "therapist", f"c{index}",
                  parse_args("note.add", {"text": f"note {index}"}))
          for index, (live, _) in enumerate(rooms)), return_exceptions=True)


async def test_commits_of_one_turn_share_a_round_trip_and_each_lands_once(
        store: Store, rooms: list[tuple[LiveRoom, Listener]]) -> None:
    sizes = _count_pipelines(store)
    assert await _add_a_note_in_each(rooms) == [1] * ROOMS
    assert sizes == [ROOMS]  # one round trip for all of them
    for live, member in rooms:
        assert member.event_seqs() == [1]
        assert (await store.load(live.id)).seq == 1  # type: ignore[union-attr]
        assert len(await store.events_since(live.id, 0) or []) == 1
    # Sent again under the same ids (a resend after a lost answer): nothing applied twice.
    assert await _add_a_note_in_each(rooms) == [1] * ROOMS
    assert [member.event_seqs() for _, member in rooms] == [[1]] * ROOMS


async def test_a_round_after_redis_forgot_the_commit_script_still_commits_each(
        store: Store, rooms: list[tuple[LiveRoom, Listener]]) -> None:
    await store.redis.script_flush()
    assert await _add_a_note_in_each(rooms) == [1] * ROOMS
    assert [member.event_seqs() for _, member in rooms] == [[1]] * ROOMS


async def test_a_round_redis_does_not_answer_fails_each_of_its_commands(
        store: Store, rooms: list[tuple[LiveRoom, Listener]]) -> None:
    dead = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0",
                                   socket_connect_timeout=2)
    store.redis = dead
    try:
        results = await _add_a_note_in_each(rooms)
    finally:
        await dead.aclose()
    assert all(isinstance(result, RedisConnectionError) for result in results), results
    assert [member.frames for _, member in rooms] == [[]] * ROOMS


async def test_a_round_cancelled_before_it_starts_releases_its_commands(
        store: Store, rooms: list[tuple[LiveRoom, Listener]]) -> None:
    waiting = asyncio.ensure_future(_add_a_note_in_each(rooms))
    for _ in range(20):  # a few turns: the commands reach the round, which has not run
        if store._next_round is not None:
            break
        await asyncio.sleep(0)
    assert store._next_round is not None
    store._next_round.cancel()  # as a shutdown would, before the round took its callers
    results = await asyncio.wait_for(waiting, 10)
    assert all(isinstance(result, asyncio.CancelledError) for result in results), results
    assert await _add_a_note_in_each(rooms) == [1] * ROOMS  # the next round goes ahead
