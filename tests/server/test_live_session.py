"""Whole sessions over real websockets: every command, privacy on the wire, two processes."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
import websockets
from hub_helpers import command_calls, open_store
from ifs_moves import open_ifs_room, play_ifs_moves
from live_rooms import Script, Trio, board, canary, decoded_frames, event_seqs, open_room, scores
from redis_backends import BACKENDS, scan_all

from client import Client
from client.errors import SessionEnded
from client.http import end_session, export
from rooms import wire
from rooms.stages import OPERATIONS

pytestmark = pytest.mark.timeout(120)


async def play_every_command(room: Trio, script: Script) -> set[str]:
    """Drive one session through all five stages using every operation; returns the ops sent."""
    t, a, b = room.therapist, room.a, room.b
    sent: set[str] = set()

    async def do(client: Client, op: str, **args: object) -> dict:
        sent.add(op)
        return await client.send(op, **args)

    def new_id(event: dict) -> str:
        return event["changes"][0][1]

    # 1. Creating a Safe Space
    calm = new_id(await do(t, "agreement.add", text="Either of us can pause at any time"))
    spare = new_id(await do(t, "agreement.add", text="We speak for parts"))
    await do(t, "agreement.edit", id=spare, text="We speak for our parts, not from them")
    await do(t, "agreement.remove", id=spare)
    await do(a, "agreement.ack", id=calm)
    await do(b, "agreement.ack", id=calm)
    await do(a, "pause.raise")
    await do(b, "pause.raise")
    await do(t, "pause.clear", partner="a")
    await do(t, "pause.clear")
    await do(b, "overwhelm.raise")
    await do(t, "overwhelm.ack", partner="b")
    await do(t, "overwhelm.clear", partner="b")
    await do(a, "ready.set", ready=True)
    await do(b, "ready.set", ready=True)
    await do(a, "ready.set", ready=False)
    note = new_id(await do(t, "note.add", text=script.notes[0]))
    await do(t, "note.edit", id=note, text=script.notes[1])
    await do(t, "partner.update", partner="a", color="#b45309")
    # 2. Identifying Parts
    await do(t, "stage.set", stage=2)
    secret_name = script.private_a[0]
    hidden = new_id(await do(a, "part.add", name=secret_name, kind="exile", x=0.2, y=0.3))
    script.private_ids_a.append(hidden)
    alarm = new_id(await do(a, "part.add", name=script.shared[0], kind="firefighter"))
    await do(a, "part.edit", id=alarm, name=script.shared[1])
    await do(a, "part.move", id=alarm, x=0.25, y=0.6)
    await do(a, "part.reveal", id=alarm)
    quiet = new_id(await do(b, "part.add", name=script.shared[2], kind="firefighter"))
    kid = new_id(await do(b, "part.add", name=script.shared[3], kind="manager"))
    await do(b, "part.reveal_all")
    await do(b, "part.withdraw", id=kid)
    await do(b, "part.reveal", id=kid)
    scrap = new_id(await do(b, "part.add", name="to be removed", kind="unsure"))
    await do(b, "part.remove", id=scrap)
    await do(t, "spotlight.set", part=alarm)
    await do(t, "freeze.set", frozen=True)
    await do(t, "freeze.set", frozen=False)
    # 3. Unblending
    await do(t, "stage.set", stage=3)
    await do(a, "part.blend", id=alarm, level=7)
    await do(a, "part.blend", id=hidden, level=9)
    await do(a, "link.add", kind="protects", source=alarm, target=hidden)
    await do(a, "link.add", kind="reacts_to", source=alarm, target=quiet)
    await do(a, "part.tidy")
    back = new_id(await do(b, "link.add", kind="reacts_to", source=quiet, target=alarm))
    await do(b, "link.remove", id=back)
    await do(b, "link.add", kind="reacts_to", source=quiet, target=alarm)
    # 4. Accessing the Self
    await do(t, "stage.set", stage=4)
    await do(a, "checkin.set", scores=scores(6), note="a bit tense")
    await do(b, "checkin.set", scores=scores(7), note="steadier now")
    await do(b, "checkin.reveal")
    await do(a, "checkin.reveal")
    await do(a, "checkin.withdraw")
    await do(a, "checkin.set", scores=scores(5), note=script.private_a[1])  # never shared
    # 5. Working with Parts in the Relationship
    await do(t, "stage.set", stage=5)
    await do(a, "need.set", part=alarm, text="to know you are coming back")
    await do(a, "need.reveal", part=alarm)
    await do(a, "need.withdraw", part=alarm)
    await do(a, "need.reveal", part=alarm)
    await do(a, "need.self", part=alarm, text="I can breathe with it")
    await do(a, "request.make", part=alarm, text="when you need space, tell me when you'll be back")
    await do(b, "request.answer", part=alarm, answer="yes", note="I can do that")
    await do(b, "need.set", part=quiet, text="time")
    await do(b, "need.remove", part=quiet)
    await do(t, "stage.set", stage=4, confirm=True)
    await do(t, "stage.set", stage=5)
    await do(t, "note.remove", id=note)
    await do(t, "ending.start")
    await do(t, "ending.cancel")
    return sent


async def play_ifs_moves_in_a_room_of_their_own(base_url: str) -> set[str]:
    """Issue 11's moves (tests/server/test_live_ifs_moves.py checks what each viewer got),
    on connections of their own so neither script meets the command rate limit."""
    room = await open_ifs_room(base_url)
    try:
        return (await play_ifs_moves(room)).sent
    finally:
        await room.close()


async def assert_mirrors_match_fresh_snapshots(room: Trio) -> None:
    seq = max(client.seq for client in room.all)
    for client in room.all:
        await client.wait_seq(seq)
    for role, client in zip(("therapist", "a", "b"), room.all, strict=True):
        fresh = await Client.connect(room.links[role].replace(
            room.links[role].split("/r/")[0], client.link.http_base), resume=False)
        try:
            assert board(fresh) == board(client), f"{role}'s mirror differs from a snapshot"
        finally:
            await fresh.close()


async def test_a_whole_session_uses_every_command(server) -> None:
    room = await open_room(server.base_url, record=True)
    script = Script(private_a=[canary("draft"), canary("checkin")],
                    shared=[canary("alarm"), canary("alarm-renamed"), canary("quiet"),
                            canary("goodkid")],
                    notes=[canary("note"), canary("note-edited")])
    try:
        sent = await play_every_command(room, script)
        sent |= await play_ifs_moves_in_a_room_of_their_own(server.base_url)
        assert sent == set(OPERATIONS), f"not exercised: {set(OPERATIONS) - sent}"
        await assert_mirrors_match_fresh_snapshots(room)
        t_view, a_view, b_view = (c.view for c in room.all)
        assert t_view["colls"]["room"]["board"]["stage"] == 5
        alarm = next(p for p in b_view["colls"]["parts"].values() if p["name"] == script.shared[1])
        assert alarm["blend"] == 7 and alarm["shared"]
        assert b_view["colls"]["needs"][alarm["id"]]["answer"] == "yes"
        assert len(b_view["colls"]["links"]) == 2  # the cycle, both ways
        assert "a" not in b_view["colls"]["checkins"] and "b" in a_view["colls"]["checkins"]
        assert t_view["colls"]["notes"] == {} and b_view["colls"]["notes"] == {}
        for client in room.all:
            seqs = event_seqs(client)
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "gap or duplicate"
            assert client.anomalies == []
    finally:
        await room.close()


@pytest.mark.parametrize("therapist_sees_drafts", [True, False])
async def test_private_items_never_reach_those_who_may_not_see_them(
        server, therapist_sees_drafts: bool) -> None:
    room = await open_room(server.base_url, record=True,
                           therapist_sees_drafts=therapist_sees_drafts)
    script = Script(private_a=[canary("draft"), canary("checkin")],
                    shared=[canary("alarm"), canary("alarm-renamed"), canary("quiet"),
                            canary("goodkid")],
                    notes=[canary("note"), canary("note-edited")])
    try:
        await play_every_command(room, script)
        t, a, b = room.therapist, room.a, room.b
        # More private traffic: a draft that is edited, dragged, shared and withdrawn again.
        draft_name = canary("late-draft")
        late = (await a.send("part.add", name=draft_name, kind="manager"))["changes"][0][1]
        renamed = canary("late-draft-renamed")
        await a.send("part.edit", id=late, name=renamed)
        for step in range(5):
            await a.drag(late, 0.1 + step / 10, 0.5)
        await a.send("part.move", id=late, x=0.7, y=0.7)
        await a.send("part.reveal", id=late)
        revealed_at = b.seq if b.view else 0
        await a.send("part.withdraw", id=late)
        await b.wait_seq(a.seq)
        await t.wait_seq(a.seq)

        b_bytes = b"".join(b.raw_frames)
        never_for_b = [*script.private_a, draft_name, *script.private_ids_a, *script.notes]
        for text in never_for_b:
            assert text.encode() not in b_bytes, "a private item reached the other partner"
        # The late draft was shared once, then withdrawn: B saw it only in between.
        b_frames = decoded_frames(b)
        mentions = [f for f in b_frames if renamed.encode() in _raw(f)]
        assert all(f.get("t") == "ev" for f in mentions)
        assert late not in b.view["colls"]["parts"]
        assert revealed_at > 0

        t_bytes = b"".join(t.raw_frames)
        for text in script.notes:
            assert text.encode() in t_bytes  # the therapist's own notes reach the therapist
        if therapist_sees_drafts:
            assert draft_name.encode() in t_bytes and script.private_a[0].encode() in t_bytes
        else:
            for text in [*script.private_a, draft_name, *script.private_ids_a]:
                assert text.encode() not in t_bytes
        a_bytes = b"".join(a.raw_frames)
        for text in script.notes:
            assert text.encode() not in a_bytes
        # Counts tell that something exists, never what.
        assert b.view["counts"]["a"]["parts"] == 2
    finally:
        await room.close()


def _raw(frame: dict) -> bytes:
    import msgspec

    return msgspec.msgpack.encode(frame)


async def test_frames_are_never_compressed(server) -> None:
    # With per-message deflate, what one partner chose to write and what the other keeps
    # private would share one compression context on a connection, and the frames'
    # lengths, visible through TLS, could give the private text away.
    async with websockets.connect(server.ws_url, subprotocols=[wire.SUBPROTOCOL],
                                  compression="deflate") as ws:
        assert ws.response is not None
        offered = ws.request.headers.get("Sec-WebSocket-Extensions") if ws.request else None
        assert offered is not None and "permessage-deflate" in offered
        assert ws.response.headers.get("Sec-WebSocket-Extensions") is None


async def test_two_processes_on_one_redis_agree(server_factory) -> None:
    first = await server_factory.start()
    second = await server_factory.start()
    bases = {"therapist": first.base_url, "a": second.base_url, "b": first.base_url}
    room = await open_room(first.base_url, bases=bases, record=True)
    extra_a = await Client.connect(room.links["a"].replace(first.base_url, first.base_url),
                                   record=True)
    try:
        script = Script(private_a=[canary("draft"), canary("checkin")],
                        shared=[canary("p1"), canary("p2"), canary("p3"), canary("p4")],
                        notes=[canary("n1"), canary("n2")])
        await play_every_command(room, script)
        await assert_mirrors_match_fresh_snapshots(room)
        await extra_a.wait_seq(room.a.seq)
        # The same role on two processes receives byte-identical events in the same order.
        def events(client: Client) -> list[dict]:
            return [f for f in decoded_frames(client) if f.get("t") == "ev"]
        a_here = events(extra_a)
        a_there = events(room.a)
        overlap = min(len(a_here), len(a_there))
        assert a_here[-overlap:] == a_there[-overlap:]
        for client in [*room.all, extra_a]:
            seqs = event_seqs(client)
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        # Presence counts across processes: A has one connection on each.
        await room.therapist.wait_for(lambda _: room.therapist.presence.get("a") == 2)
    finally:
        await extra_a.close()
        await room.close()


@pytest.mark.parametrize("redis_url", BACKENDS, indirect=True)
async def test_a_whole_session_on_any_redis_across_two_processes(
        server_factory, redis_url: str) -> None:
    """All five stages with every command, privacy on the wire, a dropped connection
    resumed, an export and the end: the same on one Redis, behind Sentinel and on a
    cluster, with the members spread over two server processes."""
    first = await server_factory.start()
    second = await server_factory.start()
    room = await open_room(first.base_url, bases={"a": second.base_url}, record=True)
    script = Script(private_a=[canary("draft"), canary("checkin")],
                    shared=[canary("p1"), canary("p2"), canary("p3"), canary("p4")],
                    notes=[canary("n1"), canary("n2")])
    try:
        playing = asyncio.create_task(play_every_command(room, script))
        await room.a.wait_for(lambda view: view["colls"]["room"]["board"]["stage"] >= 3)
        assert room.a._ws is not None
        room.a._ws.transport.abort()  # the network drops; the client resumes on its own
        sent = await playing | await play_ifs_moves_in_a_room_of_their_own(second.base_url)
        assert sent == set(OPERATIONS)
        assert room.a.reconnects >= 1
        await assert_mirrors_match_fresh_snapshots(room)
        for client in room.all:
            seqs = event_seqs(client)
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "gap or duplicate"
            assert client.anomalies == []
        b_bytes = b"".join(room.b.raw_frames)
        for text in [*script.private_a, *script.private_ids_a, *script.notes]:
            assert text.encode() not in b_bytes, "a private item reached the other partner"
        body, _, _ = await export(room.links["b"])
        assert script.shared[1].encode() in body and script.private_a[0].encode() not in body
        await end_session(room.links["therapist"])
        for client in room.all:
            assert isinstance(await client.wait_closed(), SessionEnded)
        assert scan_all(redis_url, f"*{room.a.room}*") == [], "a key of the room was left"
    finally:
        await room.close()


@pytest.mark.parametrize("redis_url", BACKENDS, indirect=True)
async def test_ending_tells_everyone_and_leaves_no_key(server_factory, redis_url) -> None:
    first = await server_factory.start()
    second = await server_factory.start()
    room = await open_room(first.base_url, bases={"b": second.base_url})
    await room.a.send("pause.raise")
    await end_session(room.links["therapist"])
    for client in room.all:
        reason = await client.wait_closed()
        assert isinstance(reason, SessionEnded)
    assert scan_all(redis_url, f"*{room.a.room}*") == []
    with pytest.raises(Exception) as refused:
        await Client.connect(room.links["a"], give_up_after=2)
    assert "ended" in str(refused.value).lower() or "not valid" in str(refused.value).lower()
    await asyncio.sleep(0)


@pytest.mark.parametrize("therapist_sees_drafts", [True, False])
async def test_drags_reach_exactly_those_who_may_see_the_part(
        server_factory, therapist_sees_drafts: bool) -> None:
    first = await server_factory.start()
    second = await server_factory.start()
    room = await open_room(first.base_url, bases={"b": second.base_url}, record=True,
                           therapist_sees_drafts=therapist_sees_drafts)
    t, a, b = room.therapist, room.a, room.b
    try:
        await t.send("stage.set", stage=2)
        draft = (await a.send("part.add", name=canary("draft"), kind="exile"))["changes"][0][1]
        shared = (await a.send("part.add", name=canary("shared"), kind="manager"))["changes"][0][1]
        await a.send("part.reveal", id=shared)
        await b.wait_seq(a.seq)

        async def drag_until_seen(part: str, watcher: Client, x: float) -> None:
            for _ in range(50):
                await a.drag(part, x, 0.5)
                if watcher.drags.get(part, {}).get("x") == x:
                    return
                await asyncio.sleep(0.05)
            raise AssertionError("the drag never arrived")

        await drag_until_seen(shared, b, 0.31)  # across processes
        await drag_until_seen(shared, t, 0.32)
        for _ in range(10):
            await a.drag(draft, 0.41, 0.5)
        await b.drag(shared, 0.9, 0.9)  # not B's part: dropped
        await drag_until_seen(shared, b, 0.33)  # later drags arrive: earlier ones were sent
        assert draft not in b.drags
        assert (draft in t.drags) == therapist_sees_drafts
        assert all(frame.get("by") == "a" for frame in b.drags.values())
        await t.send("freeze.set", frozen=True)
        await b.wait_seq(t.seq)
        for _ in range(10):
            await a.drag(shared, 0.77, 0.5)
        await t.send("freeze.set", frozen=False)
        await b.wait_seq(t.seq)
        await drag_until_seen(shared, b, 0.34)
        seen_x = [f.get("x") for f in decoded_frames(b) if f.get("t") == "drag"]
        assert 0.77 not in seen_x, "a drag on a frozen board went out"
        assert 0.9 not in seen_x
    finally:
        await room.close()


async def test_a_dead_processs_members_keep_drags_off_redis_until_someone_can_hear_them(
        server_factory, redis_url) -> None:
    """After a crash the killed process's presence entries count until they expire, so the
    restarted one saw members elsewhere and published every drag to nobody (a storm of
    them while everyone resumed). A member who joins another process is heard at once."""
    first = await server_factory.start()
    second = await server_factory.start()
    room = await open_room(first.base_url)
    t, a, b = room.therapist, room.a, room.b
    admin = aioredis.Redis.from_url(redis_url)
    tab = None

    async def drag_seen_by_b(x: float) -> None:
        await asyncio.sleep(0.05)  # within the drag rate, as a person's pointer is
        await a.drag(part, x, 0.5)
        await b.wait_for(lambda _: b.drags.get(part, {}).get("x") == x)

    try:
        await t.send("stage.set", stage=2)
        part = (await a.send("part.add", name=canary("shared"), kind="manager"))["changes"][0][1]
        await a.send("part.reveal", id=part)
        await b.wait_seq(a.seq)
        async with open_store(redis_url) as dead_process:
            await dead_process.presence_join(a.room, "dead-1|0|b", 60)
        await a.wait_for(lambda _: a.presence.get("b") == 2)

        before = await command_calls(admin, "spublish")
        for step in range(20):
            await drag_seen_by_b(0.1 + step / 100)
        published = await command_calls(admin, "spublish") - before
        assert published <= 5, "drags went to Redis with nobody to hear them"

        # Right after a publish that found nobody (the pause begins), a member elsewhere.
        last = await command_calls(admin, "spublish")
        for step in range(100):
            await drag_seen_by_b(0.5 + step / 1000)
            if await command_calls(admin, "spublish") > last:
                break
        tab = await Client.connect(room.links["b"].replace(first.base_url, second.base_url))
        await a.wait_for(lambda _: a.presence.get("b") == 3)
        await a.drag(part, 0.77, 0.5)
        await tab.wait_for(lambda _: tab.drags.get(part, {}).get("x") == 0.77, timeout=5)
    finally:
        if tab is not None:
            await tab.close()
        await room.close()
        await admin.aclose()


async def test_a_drag_reaches_the_draggers_other_tabs_but_not_the_dragging_one(
        server_factory) -> None:
    first = await server_factory.start()
    second = await server_factory.start()
    room = await open_room(first.base_url, record=True)
    t, a = room.therapist, room.a
    tab_here = await Client.connect(room.links["a"], record=True)
    tab_there = await Client.connect(room.links["a"].replace(first.base_url, second.base_url),
                                     record=True)
    try:
        await t.send("stage.set", stage=2)
        part = (await a.send("part.add", name=canary("draft"), kind="exile"))["changes"][0][1]
        for tab in (tab_here, tab_there):
            await tab.wait_seq(a.seq)
        # The dragger's process knows of the tab on the other process (drags go to other
        # processes only when they have members there).
        await a.wait_for(lambda _: a.presence.get("a") == 3)
        for x in (0.21, 0.22):
            await a.drag(part, x, 0.5)
            for tab in (tab_here, tab_there):
                await tab.wait_for(lambda _, tab=tab, x=x: tab.drags.get(part, {}).get("x") == x)
        # Any echo of those drags would have reached the dragging connection before the
        # event and the ack of this later command.
        await a.send("part.move", id=part, x=0.22, y=0.5)
        assert part not in a.drags, "the dragging connection got its own drag back"
    finally:
        for client in (tab_here, tab_there):
            await client.close()
        await room.close()
