"""The capped event log: gaps are filled from it while it reaches back, and whoever it no
longer reaches back for gets a fresh snapshot instead (a resume gets a `view`, a live room's
members are closed 4408 and resume)."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
import websockets
from hub_helpers import WAIT, Listener, make_room, open_store
from live_rooms import open_room

from rooms import wire
from rooms.actions import parse_args
from rooms.errors import Close
from server.commands import execute
from server.live_room import LiveRoom
from server.store import Keys, Store, decode_event

pytestmark = pytest.mark.timeout(120)

LOG_LENGTH = 10
# Redis trims a capped stream (XADD MAXLEN ~) a whole node at a time (100 entries by
# default), so a log capped at 10 is certain to have lost its first entry only well past 100.
BEYOND_THE_LOG = 250


async def first_logged_seq(admin: aioredis.Redis, room_id: str) -> int:
    [(entry_id, _)] = await admin.xrange(Keys(room_id).log, count=1)
    return int(entry_id.split(b"-")[0])


async def test_a_resume_older_than_the_event_log_gets_a_fresh_view(
        server_factory, admin: aioredis.Redis) -> None:
    server = await server_factory.start({"PARTSBOARD_LOG_LENGTH": str(LOG_LENGTH),
                                         "PARTSBOARD_COMMAND_RATE": "1000",
                                         "PARTSBOARD_COMMAND_BURST": "1000"})
    room = await open_room(server.base_url)
    t = room.therapist
    try:
        note = (await t.send("note.add", text="first"))["changes"][0][1]
        early = t.seq
        for batch in range(BEYOND_THE_LOG // 50):
            await asyncio.gather(*(t.send("note.edit", id=note, text=f"edit {batch}.{n}")
                                   for n in range(50)))
        late = t.seq - 3
        assert early + 1 < await first_logged_seq(admin, t.room) <= late + 1
        secret = room.links["therapist"].split("#", 1)[1]
        welcomes = {}
        for since in (early, late):
            async with websockets.connect(server.ws_url,
                                          subprotocols=[wire.SUBPROTOCOL]) as ws:
                await ws.send(wire.hello(t.room, secret, (t.epoch, since)))
                welcomes[since] = wire.decode_server(await ws.recv())
        fresh = welcomes[early]
        assert fresh["replay"] is None and fresh["seq"] == t.seq
        assert fresh["view"]["colls"]["notes"][note]["text"] == t.view["colls"]["notes"][note][
            "text"]
        resumed = welcomes[late]
        assert resumed["view"] is None
        assert [event["seq"] for event in resumed["replay"]] == [late + 1, late + 2, late + 3]
    finally:
        await room.close()


async def commit_edits(live: LiveRoom, count: int, tag: str) -> None:
    """`count` events: the first adds a note, the others edit it."""
    await execute(live, "therapist", f"{tag}-0", parse_args("note.add", {"text": tag}))
    assert live.room is not None
    note = next(key for key, value in live.room.notes.items() if value.text == tag)
    for n in range(1, count):
        await execute(live, "therapist", f"{tag}-{n}",
                      parse_args("note.edit", {"id": note, "text": f"{tag} {n}"}))


async def other_process(store: Store, room_id: str) -> LiveRoom:
    live = LiveRoom(room_id, "", store)
    room = await store.load(room_id)
    assert room is not None
    live.start_from(room)
    return live


async def test_a_live_room_fills_gaps_from_the_log_and_resyncs_when_it_no_longer_reaches(
        redis_url: str, admin: aioredis.Redis) -> None:
    async with (open_store(redis_url, log_length=LOG_LENGTH) as here,
                open_store(redis_url, log_length=LOG_LENGTH) as there):
        room_id = await make_room(here)
        live = await other_process(here, room_id)
        member = Listener("here")
        live.members.add(member)
        # Another process commits; this one hears nothing of it (no pub/sub here)...
        elsewhere = await other_process(there, room_id)
        await commit_edits(elsewhere, 3, "heard-late")
        # ...until the newest event arrives: the gap before it is filled from the log.
        [blob] = await there.events_since(room_id, 2) or []
        await live.deliver(decode_event(blob))
        assert member.event_seqs() == [1, 2, 3] and not member.closed.done()

        await commit_edits(elsewhere, BEYOND_THE_LOG, "missed")
        assert await first_logged_seq(admin, room_id) > 4
        await live.catch_up(elsewhere.delivered)  # what the sweep does
        assert await asyncio.wait_for(member.closed, WAIT) == Close.RESYNC
        assert member.event_seqs() == [1, 2, 3], "events were sent across the gap"
        current = live.current_room()
        assert current is not None and current.seq == elsewhere.delivered == 3 + BEYOND_THE_LOG
        # Delivery carries on from the fresh state.
        newcomer = Listener("newcomer")
        live.members.add(newcomer)
        await commit_edits(elsewhere, 1, "after")
        await live.catch_up(elsewhere.delivered)
        assert newcomer.event_seqs() == [elsewhere.delivered]
