"""Overload is answered plainly: a command that cannot be committed in time gets `busy`
with a pause to wait, the client sends it again under the same id, and it lands once."""

from __future__ import annotations

import asyncio

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis
from hub_helpers import Listener, make_room, open_store
from live_rooms import decoded_frames, event_seqs, open_room

from client import Client
from rooms.actions import NoteAdd, parse_args
from rooms.machine import Context, apply
from server import commands
from server.commands import MAX_PAUSE, CommitSlots
from server.hub import Hub
from server.redis_urls import make_client
from server.store import Keys, Store, encode_event, new_entity_id
from tests.faults.crash_helpers import metric

pytestmark = pytest.mark.timeout(120)

PAUSE_MS = 1500
WRITERS = 4


async def test_commands_held_up_past_the_wait_are_answered_busy_and_land_once(
        server_factory, admin: aioredis.Redis) -> None:
    server = await server_factory.start({"PARTSBOARD_REDIS_POOL": "4",
                                         "PARTSBOARD_COMMIT_WAIT": "0.2"})
    room = await open_room(server.base_url)
    tabs = [await Client.connect(room.links["therapist"], record=True) for _ in range(WRITERS)]
    try:
        # Redis holds every write for a while: the first command to reach it holds its
        # room, and the others are answered busy until Redis answers again.
        await admin.execute_command("CLIENT", "PAUSE", PAUSE_MS, "WRITE")
        texts = [f"note {n}" for n in range(WRITERS)]
        await asyncio.gather(*(tab.send("note.add", text=text)
                               for tab, text in zip(tabs, texts, strict=True)))
        busy = [frame for tab in tabs for frame in decoded_frames(tab)
                if frame.get("t") == "error"]
        assert busy and {frame["code"] for frame in busy} == {"busy"}
        # About the commit wait while no commit rate is measured; never past the cap.
        assert 0.15 <= busy[0]["retry_after"] <= 0.25
        assert all(0 < frame["retry_after"] <= MAX_PAUSE * 1.25 for frame in busy)
        for client in [room.therapist, *tabs]:  # a therapist's notes are the therapist's
            await client.wait_seq(max(tab.seq for tab in tabs))
            notes = client.view["colls"].get("notes", {})
            assert sorted(note["text"] for note in notes.values()) == texts, \
                "a busy command was lost or applied twice"
        assert await metric(server.base_url, "partsboard_busy_total") == len(busy)
        assert 'result="internal"' not in await metrics_text(server.base_url)
    finally:
        for tab in tabs:
            await tab.close()
        await room.close()


def test_a_busy_pause_is_the_time_the_commands_ahead_take_at_the_commit_rate(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(commands.time, "monotonic", lambda: clock[0])
    slots = CommitSlots(4, wait=1.0)
    assert 0.75 <= slots.pause() <= 1.25, "no rate measured yet: about the commit wait"
    for _ in range(120):  # 200 commits/s while commands queue
        clock[0] += 0.005
        slots.finished()
    for _ in range(400):
        slots.told(slots.pause())
    # 400 commands away, at 200/s: 2 s, jittered by a quarter either way
    assert all(1.5 <= slots.pause() <= 2.5 for _ in range(50))
    for _ in range(2000):
        slots.told(slots.pause())
    assert all(MAX_PAUSE * 0.75 <= slots.pause() <= MAX_PAUSE * 1.25 for _ in range(50))
    clock[0] += MAX_PAUSE * 2  # every one of them is due back, and the rate is old news
    assert 0.75 <= slots.pause() <= 1.25


async def metrics_text(base_url: str) -> str:
    async with httpx.AsyncClient() as http:
        return (await http.get(f"{base_url}/metrics")).text


async def commit_unheard(store: Store, room_id: str, count: int) -> int:
    """Commit `count` therapist notes straight into Redis, announced on a channel nobody
    hears: a server learns of them only when its sweep finds the room behind. Returns the
    last seq."""
    room = await store.load(room_id)
    assert room is not None
    keys = Keys(room_id)
    for n in range(count):
        changed, event = apply(room, "therapist", parse_args("note.add", {"text": f"n{n}"}),
                               Context(0.0, new_entity_id))
        reply = await store._commit(keys=keys.all(), args=[
            room.epoch, room.seq, msgspec.msgpack.encode(changed), encode_event(event),
            f"therapist:unheard-{n}", store.idle_ms, store.log_length, "pb:{nobody}:ch", b""])
        assert reply[0] == b"ok"
        room = changed
    return room.seq


async def test_a_server_that_falls_behind_does_not_cut_members_who_read(
        server_factory, redis_url: str) -> None:
    # The sweep delivers all the missed events at once, far more frames than the send
    # queue holds: members who read get them all, in order, and none is cut.
    server = await server_factory.start({"PARTSBOARD_SEND_QUEUE": "8",
                                         "PARTSBOARD_SWEEP_INTERVAL": "0.2"})
    room = await open_room(server.base_url, record=True)
    try:
        start = room.therapist.seq
        async with open_store(redis_url) as store:
            last = await commit_unheard(store, room.therapist.room, 40)
        for client in room.all:
            await client.wait_seq(last, timeout=30)
            assert client.reconnects == 0 and client.anomalies == []
        assert event_seqs(room.therapist)[-40:] == list(range(start + 1, last + 1))
        assert await metric(server.base_url, "partsboard_slow_consumers_total") == 0
    finally:
        await room.close()


async def test_heartbeat_and_sweep_never_wait_behind_a_full_pool(
        redis_url: str, admin: aioredis.Redis) -> None:
    main = make_client(redis_url, pool_size=2, timeout=60)
    control = make_client(redis_url, pool_size=2, timeout=60)
    store = Store(main, idle_ttl=60, max_lifetime=120, log_length=100, control=control)
    hub = Hub(store, aioredis.Redis.from_url(redis_url), sweep_interval=60, presence_ttl=0.6)
    await hub.start()
    held = []
    try:
        room_id = await make_room(store)
        live, _ = await hub.join(room_id, "", Listener("member"))
        member = next(iter(live.members)).presence_id
        joined = await admin.zscore(Keys(room_id).presence, member)
        # Commands hold every connection of the main pool (as a burst of them would).
        held = [await main.connection_pool.get_connection() for _ in range(2)]
        for _ in range(200):  # the heartbeat, every ttl / 3, moves the expiry on
            if await admin.zscore(Keys(room_id).presence, member) != joined:
                break
            await asyncio.sleep(0.05)
        assert await admin.zscore(Keys(room_id).presence, member) != joined, \
            "the heartbeat waited for the main pool"
        await asyncio.wait_for(hub.sweep([room_id]), 10)
    finally:
        for connection in held:
            await main.connection_pool.release(connection)
        await hub.stop()
        await store.close()
        await hub.link.client.aclose()


def edit_texts(client: Client) -> list[str]:
    """The texts the therapist's note took, in the order of the events that set them."""
    texts = []
    for frame in decoded_frames(client):
        for change in frame.get("changes", ()) if frame.get("t") == "ev" else ():
            if change[0] == "notes" and change[2] is not None:
                texts.append(change[2]["text"])
    return texts


async def test_commands_answered_busy_still_run_in_the_order_they_were_sent(
        server_factory, admin: aioredis.Redis) -> None:
    server = await server_factory.start({"PARTSBOARD_COMMIT_WAIT": "1.0"})
    room = await open_room(server.base_url, record=True)
    t = room.therapist
    try:
        note = await t.create(NoteAdd(text="edit 0"))
        frames = t.frames()
        # The first edit holds the room while Redis holds its write; the second waits
        # behind it past the commit wait and is answered busy...
        await admin.execute_command("CLIENT", "PAUSE", 2500, "WRITE")
        first = asyncio.create_task(t.send("note.edit", id=note, text="edit 1"))
        second = asyncio.create_task(t.send("note.edit", id=note, text="edit 2"))
        async for frame in frames:
            if frame.get("t") == "error" and frame.get("code") == "busy":
                break
        # ...and a third, sent before the second comes back, must not overtake it.
        third = asyncio.create_task(t.send("note.edit", id=note, text="edit 3"))
        await asyncio.gather(first, second, third)
        await t.wait_seq(t.seq)
        assert edit_texts(t) == ["edit 0", "edit 1", "edit 2", "edit 3"]
        assert t.view["colls"]["notes"][note]["text"] == "edit 3"
    finally:
        await room.close()
