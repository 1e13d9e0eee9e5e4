"""Shared pieces of the crash and recovery tests."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
from redis_backends import async_admin

from client import Client
from client.backoff import backoff
from client.http import create_room
from rooms.actions import PartAdd

KEY = "test-key"


def normal(value: Any) -> Any:
    return msgspec.msgpack.decode(msgspec.msgpack.encode(value))


board = Client.board


@dataclass
class Room:
    id: str
    links: dict[str, str]
    members: list[tuple[str, Client]] = field(default_factory=list)
    added: list[str] = field(default_factory=list)


async def make_room(base_url: str, n: int) -> Room:
    created = await create_room(base_url, key=KEY, partners={
        "a": (f"Ari{n}", "#c2410c"), "b": (f"Bo{n}", "#0f766e")})
    return Room(created.room, dict(created.links))


def quick_backoff() -> Iterator[float]:
    return backoff(cap=0.4)  # tests restart servers often; don't wait the full cap


async def join(room: Room, role: str, base_url: str, origin_base: str, **options: Any) -> Client:
    link = room.links[role].replace(origin_base, base_url)
    options.setdefault("delays", quick_backoff)
    client = await Client.connect(link, record=True, give_up_after=90, **options)
    room.members.append((role, client))
    return client


async def room_seq(redis_url: str, room_id: str) -> int:
    """The room's committed seq, in the Redis (Sentinel master, cluster) behind the URL."""
    client = async_admin(redis_url)
    try:
        value = await client.hget(f"pb:{{{room_id}}}:meta", "seq")
    finally:
        await client.aclose()
    assert value is not None, "the room is gone"
    return int(value)


async def settle(rooms: Iterable[Room], redis_url: str, within: float = 30.0) -> None:
    """Wait until every member has applied every committed event of its room."""
    for room in rooms:
        seq = await room_seq(redis_url, room.id)
        for _, client in room.members:
            await client.wait_seq(seq, timeout=within)


async def assert_invariants(rooms: Iterable[Room], redis_url: str, base_url: str,
                            origin_base: str) -> None:
    """Zero gaps, zero duplicates, boards equal to fresh snapshots, acked adds exactly once."""
    rooms = list(rooms)
    await settle(rooms, redis_url)
    for room in rooms:
        for role, client in room.members:
            assert client.anomalies == [], f"{role}: {client.anomalies[:5]}"
            assert client.terminal is None
        snapshots = {}
        for role in ("therapist", "a", "b"):
            fresh = await Client.connect(room.links[role].replace(origin_base, base_url),
                                         resume=False)
            try:
                snapshots[role] = board(fresh)
            finally:
                await fresh.close()
        for role, client in room.members:
            assert board(client) == snapshots[role], f"{role}'s board differs from a snapshot"
        parts = {pid: part for snap in snapshots.values()
                 for pid, part in snap["colls"]["parts"].items()}
        names = [part["name"] for part in parts.values()]
        assert sorted(names) == sorted(room.added), (
            f"an acked add is missing or doubled: {sorted(names)} != {sorted(room.added)}")


async def partner_load(client: Client, room: Room, tag: str, stop: asyncio.Event,
                       rng: random.Random) -> None:
    n = 0
    mine: list[tuple[str, str]] = []
    while not stop.is_set():
        n += 1
        name = f"{tag}-{n}"
        part = await client.create(PartAdd(name=name, kind="unsure", x=rng.random(),
                                           y=rng.random()))
        room.added.append(name)
        mine.append((part, name))
        await client.send("part.reveal", id=part)
        for _ in range(3):
            await client.drag(part, rng.random(), rng.random())
            await asyncio.sleep(0.01)
        await client.send("part.move", id=part, x=rng.random(), y=rng.random())
        await asyncio.sleep(0.2)  # about 15 commands a second: brisk, within the rate limit
        if len(mine) > 10:  # stay well within the per-partner part limit
            oldest, oldest_name = mine.pop(0)
            await client.send("part.remove", id=oldest)
            room.added.remove(oldest_name)


async def therapist_load(client: Client, stop: asyncio.Event) -> None:
    n = 0
    notes: list[str] = []
    while not stop.is_set():
        n += 1
        event = await client.send("note.add", text=f"observation {n}")
        notes.append(event["changes"][0][1])
        if len(notes) > 20:
            await client.send("note.remove", id=notes.pop(0))
        await asyncio.sleep(0.1)


async def wait_connected(clients: Iterable[Client], within: float = 30.0) -> None:
    async with asyncio.timeout(within):
        for client in clients:
            while not client.connected:
                if client.terminal is not None:
                    raise client.terminal
                await asyncio.sleep(0.02)


def small_buffer_socket(host: str, port: int) -> socket.socket:
    """A connected TCP socket with a tiny receive buffer: a reader that soon stalls."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, port))
    sock.setblocking(False)
    return sock


async def metric(base_url: str, name: str) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{base_url}/metrics")).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total
