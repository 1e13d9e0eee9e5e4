"""Pieces for tests of the hub and live rooms in-process, against a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
import redis.asyncio as aioredis

from rooms.machine import new_room
from rooms.model import PartnerInfo
from server.store import Store

WAIT = 10.0  # a guard against hangs, never a measured expectation


class Listener:
    """A stand-in for a websocket connection: it records what it is pushed and its close."""

    def __init__(self, name: str) -> None:
        self.role = "therapist"
        self.secret_hash = ""
        self.presence_id = f"test|{name}|therapist"
        self.frames: list[bytes] = []
        self.closed: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def push(self, seq: int | None, frame: bytes, read_at: float = 0.0) -> None:
        self.frames.append(frame)

    def shut(self, code: int, frame: bytes | None = None) -> None:
        if not self.closed.done():
            self.closed.set_result(code)

    def event_seqs(self) -> list[int]:
        frames = [msgspec.msgpack.decode(frame) for frame in self.frames]
        return [frame["seq"] for frame in frames if frame["t"] == "ev"]


@asynccontextmanager
async def open_store(redis_url: str, *, log_length: int = 100) -> AsyncIterator[Store]:
    """A Store on its own Redis client, as one server process has."""
    store = Store(aioredis.Redis.from_url(redis_url), idle_ttl=60, max_lifetime=120,
                  log_length=log_length)
    try:
        yield store
    finally:
        await store.close()


async def make_room(store: Store, room_id: str = "r" * 22) -> str:
    room = new_room(room_id=room_id, epoch=await store.new_epoch(room_id), now=0.0,
                    therapist_sees_drafts=True,
                    partners={"a": PartnerInfo("Ana", "#112233"),
                              "b": PartnerInfo("Ben", "#445566")})
    await store.create(room, {})
    return room.id


async def epoch_of(store: Store, room_id: str) -> str:
    """The room's epoch as Redis holds it: a member joined under another epoch would be told
    the room was lost by the next sweep."""
    row = (await store.meta_seq_epoch([room_id]))[0]
    assert row is not None
    return str(row[1])


async def command_calls(admin: aioredis.Redis, command: str) -> int:
    """How many times Redis has run this command (INFO commandstats, scripts' calls included)."""
    stats = await admin.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))
