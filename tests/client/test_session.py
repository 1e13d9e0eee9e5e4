"""The client against a real server: every command, refusals, resend, resume, endings."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from client_helpers import SCORES, fresh_view, parts_named, settle

from client import (
    Client,
    ClientClosed,
    ConnectionLost,
    CreatedRoom,
    LinkNotValid,
    SessionEnded,
    SessionLost,
    end_session,
    parse_link,
    replace_link,
)
from client.links import make_link
from rooms import geometry, wire
from rooms.actions import (
    AgreementAck,
    AgreementAdd,
    AgreementEdit,
    AgreementRemove,
    CheckinReveal,
    CheckinSet,
    CheckinWithdraw,
    FreezeSet,
    LinkAdd,
    LinkRemove,
    NeedRemove,
    NeedSelf,
    NeedSet,
    NoteAdd,
    NoteEdit,
    NoteRemove,
    OverwhelmClear,
    OverwhelmRaise,
    PartAdd,
    PartBlend,
    PartEdit,
    PartMove,
    PartnerUpdate,
    PartRemove,
    PartReveal,
    PartRevealAll,
    PartWithdraw,
    PauseClear,
    PauseRaise,
    ReadySet,
    RequestAnswer,
    RequestMake,
    SpotlightSet,
    StageSet,
)
from rooms.errors import (
    BadRequest,
    Forbidden,
    Frozen,
    NotFound,
    RoomEnded,
    StageLocked,
    UnknownOp,
)
from server.local_redis import LocalRedis, free_port


def colls(client: Client) -> dict[str, Any]:
    assert client.view is not None
    out: dict[str, Any] = client.view["colls"]
    return out


# A new part's fields beyond its name, kind, place, sharing and blend (issue 11).
UNWRITTEN = {"with_therapist": False, "job": "", "fear": "", "age": "", "intent": "",
             "burden": "", "by_therapist": False}


async def test_three_roles_every_command_round_trips(room: CreatedRoom) -> None:
    async with Client(room.therapist) as t, Client(room.a) as a, Client(room.b) as b:
        assert (t.role, a.role, b.role) == ("therapist", "a", "b")
        assert t.epoch == a.epoch == b.epoch == room.epoch
        assert t.room == a.room == b.room == room.room
        await t.wait_for(lambda _: t.presence == {"therapist": 1, "a": 1, "b": 1})

        # Stage 1: agreements, notes, partners, pause, overwhelm, ready.
        agreement = await t.create(AgreementAdd(text="We take turns to speak."))
        assert colls(t)["agreements"][agreement] == {
            "id": agreement, "text": "We take turns to speak.", "acks": [], "order": t.seq}
        event = await t.run(AgreementEdit(id=agreement, text="We take turns, and listen."))
        assert (event["op"], event["actor"]) == ("agreement.edit", "therapist")
        assert event["seq"] == t.seq
        await a.run(AgreementAck(id=agreement))
        await b.run(AgreementAck(id=agreement))
        await t.wait_for(lambda v: v["colls"]["agreements"][agreement]["acks"] == ["a", "b"])
        extra = await t.create(AgreementAdd(text="A second one."))
        await t.run(AgreementRemove(id=extra))
        assert extra not in colls(t)["agreements"]

        note = await t.create(NoteAdd(text="Both arrived settled."))
        await t.run(NoteEdit(id=note, text="Both arrived settled and on time."))
        assert colls(t)["notes"][note]["text"] == "Both arrived settled and on time."
        await settle(t, a, b)
        assert colls(a)["notes"] == {} and colls(b)["notes"] == {}
        await t.run(NoteRemove(id=note))
        assert colls(t)["notes"] == {}

        await t.run(PartnerUpdate(partner="a", name="Robin R.", color="#2563eb"))
        await a.wait_for(lambda v: v["colls"]["partners"]["a"] ==
                         {"name": "Robin R.", "color": "#2563eb"})

        await a.run(PauseRaise())
        await b.wait_for(lambda v: [p["by"] for p in v["colls"]["room"]["board"]["pauses"]]
                         == ["a"])
        await t.run(PauseClear())
        await b.wait_for(lambda v: v["colls"]["room"]["board"]["pauses"] == [])

        await b.run(OverwhelmRaise())
        await t.wait_for(lambda v: "b" in v["colls"]["overwhelm"])
        await t.run(OverwhelmClear(partner="b"))
        assert "b" not in colls(t)["overwhelm"]
        await settle(t, a, b)
        assert colls(a)["overwhelm"] == {}

        await a.run(ReadySet())
        await t.wait_for(lambda v: v["colls"]["ready"] == {"a": True})
        await a.run(ReadySet(ready=False))
        assert colls(a)["ready"] == {}

        with pytest.raises(StageLocked):
            await a.create(PartAdd(name="Too early"))
        with pytest.raises(Forbidden):
            await a.run(StageSet(stage=2))

        # Stage 2: parts, private first.
        await t.run(StageSet(stage=2))
        p1 = await a.create(PartAdd(name="The Worrier", kind="manager", x=0.1, y=0.2))
        p2 = await a.create(PartAdd(name="The Sulker", kind="firefighter"))
        q1 = await b.create(PartAdd(name="The Fixer", kind="manager", x=0.8, y=0.2))
        q2 = await b.create(PartAdd(name="The Small One", kind="exile", x=0.9, y=0.9))
        # Cards rest on the nearest free place of their owner's side (rooms/geometry.py).
        first = geometry.settle("a", geometry.Position(0.1, 0.2), ())
        assert colls(a)["parts"][p1] == {
            "id": p1, "owner": "a", "name": "The Worrier", "kind": "manager",
            "x": first.x, "y": first.y, "shared": False, "blend": None, **UNWRITTEN}
        await b.wait_for(lambda v: v["counts"]["a"]["parts"] == 2)
        assert p1 not in colls(b)["parts"] and p1 not in colls(t)["parts"]

        await a.run(PartEdit(id=p1, name="The Worrier Too"))
        await a.run(PartEdit(id=p1, kind="exile"))
        await a.run(PartEdit(id=p1, kind="manager"))
        p2_at = colls(a)["parts"][p2]
        moved = geometry.settle("a", geometry.Position(0.3, 0.4),
                                [geometry.Position(p2_at["x"], p2_at["y"])])
        await a.run(PartMove(id=p1, x=0.3, y=0.4))
        assert colls(a)["parts"][p1] == {
            "id": p1, "owner": "a", "name": "The Worrier Too", "kind": "manager",
            "x": moved.x, "y": moved.y, "shared": False, "blend": None, **UNWRITTEN}
        await a.run(PartReveal(id=p1))
        await b.wait_for(lambda v: v["colls"]["parts"].get(p1, {}).get("name") == "The Worrier Too")
        await a.drag(p1, 0.31, 0.41)
        await b.wait_for(lambda _: p1 in b.drags)
        assert (b.drags[p1]["x"], b.drags[p1]["y"], b.drags[p1]["by"]) == (0.31, 0.41, "a")
        await b.run(PartRevealAll(confirm=True))  # The Small One is an exile
        await a.wait_for(lambda v: {q1, q2} <= v["colls"]["parts"].keys())
        await a.run(PartWithdraw(id=p1))
        await b.wait_for(lambda v: p1 not in v["colls"]["parts"])
        await a.run(PartReveal(id=p1))
        await a.run(PartReveal(id=p2))
        gone = await a.create(PartAdd(name="Short-lived"))
        await a.run(PartRemove(id=gone))
        assert gone not in colls(a)["parts"]
        with pytest.raises(NotFound):
            await a.run(PartReveal(id=gone))

        await t.wait_for(lambda v: p1 in v["colls"]["parts"])
        await t.run(SpotlightSet(part=p1))
        await a.wait_for(lambda v: v["colls"]["room"]["board"]["spotlight"] == p1)
        await t.run(SpotlightSet(part=None))
        await t.run(FreezeSet(frozen=True))
        with pytest.raises(Frozen):
            await a.run(PartMove(id=p1, x=0.5, y=0.5))
        await t.run(FreezeSet(frozen=False))

        # Stage 3: blending and links, the protective cycle.
        await t.run(StageSet(stage=3))
        await a.run(PartBlend(id=p1, level=7))
        assert colls(a)["parts"][p1]["blend"] == 7
        protects = await a.create(LinkAdd(kind="protects", source=p1, target=p2))
        cycle = await a.create(LinkAdd(kind="reacts_to", source=p1, target=q1))
        back = await b.create(LinkAdd(kind="reacts_to", source=q1, target=p1))
        await b.wait_for(lambda v: {protects, cycle} <= v["colls"]["links"].keys())
        assert colls(b)["links"][cycle] == {
            "id": cycle, "owner": "a", "kind": "reacts_to", "source": p1, "target": q1,
            "order": colls(b)["links"][protects]["order"] + 1, "label": "", "by_therapist": False}
        await a.run(LinkRemove(id=protects))
        await b.wait_for(lambda v: protects not in v["colls"]["links"])
        await a.wait_for(lambda v: back in v["colls"]["links"])

        # Stage 4: the Self check-in, private, revealed, withdrawn.
        await t.run(StageSet(stage=4))
        await a.run(CheckinSet(scores=SCORES, note="Steadier than last week."))
        await b.wait_for(lambda v: v["counts"]["a"]["checkin"] == 1)
        assert "a" not in colls(b)["checkins"]
        await a.run(CheckinReveal())
        await b.wait_for(lambda v: v["colls"]["checkins"].get("a", {}).get("note") ==
                         "Steadier than last week.")
        await a.run(CheckinWithdraw())
        await b.wait_for(lambda v: "a" not in v["colls"]["checkins"])

        # Stage 5: needs and requests.
        await t.run(StageSet(stage=5))
        await b.run(NeedSet(part=q1, text="To rest sometimes."))
        await b.run(NeedRemove(part=q1))
        assert q1 not in colls(b)["needs"]
        await b.run(NeedSet(part=q1, text="To be thanked."))
        await b.send("need.reveal", part=q1)
        await b.run(NeedSelf(part=q1, text="I can thank myself."))
        await b.run(RequestMake(part=q1, text="Say thanks when I fix something."))
        await a.wait_for(lambda v: (v["colls"]["needs"].get(q1) or {}).get("request") ==
                         "Say thanks when I fix something.")
        await a.run(RequestAnswer(part=q1, answer="not_yet", note="Soon."))
        await b.wait_for(lambda v: v["colls"]["needs"][q1]["answer"] == "not_yet")

        # Going back a stage needs the therapist to confirm.
        with pytest.raises(BadRequest) as refused:
            await t.run(StageSet(stage=4))
        assert refused.value.field == "confirm"
        await t.run(StageSet(stage=4, confirm=True))
        await t.run(StageSet(stage=5))

        # Every mirror equals what a fresh connection of the same role receives.
        await settle(t, a, b)
        for client, link in ((t, room.therapist), (a, room.a), (b, room.b)):
            assert await fresh_view(link) == client.view
            assert client.anomalies == []
            assert client.reconnects == 0


async def test_local_validation_sends_nothing(room: CreatedRoom) -> None:
    async with Client(room.therapist) as t, Client(room.a, record=True) as a:
        with pytest.raises(BadRequest) as bad:
            await a.send("part.add", name=5)
        assert bad.value.field == "name"
        with pytest.raises(UnknownOp):
            await a.send("part.explode")
        with pytest.raises(BadRequest):
            await a.run(PartMove(id="some-part", x=2.0, y=0.5))
        with pytest.raises(BadRequest):
            await a.send("checkin.set", scores={"calm": 11})
        assert a.pending == 0
        event = await t.run(FreezeSet(frozen=False))  # the first command that reached the server
        assert event["seq"] == 1
        frames = [wire.decode_server(f) for f in a.raw_frames]
        assert all(f["t"] != "error" for f in frames)


async def test_server_refusals_map_to_error_classes(room: CreatedRoom) -> None:
    async with Client(room.a) as a, Client(room.b) as b:
        with pytest.raises(BadRequest) as bad:
            await a.send_unchecked("agreement.ack", {"id": 7})
        assert bad.value.field == "id"
        with pytest.raises(UnknownOp):
            await a.send_unchecked("part.explode", {})
        with pytest.raises(Forbidden):
            await a.send("note.add", text="not for partners")
        with pytest.raises(StageLocked):
            await b.run(PartBlend(id="whatever", level=3))
        with pytest.raises(NotFound):
            await a.run(AgreementAck(id="no-such-agreement"))
        assert a.seq == 0 and a.pending == 0 and a.errors == []


async def test_a_wrong_or_unknown_link_is_not_valid(room: CreatedRoom) -> None:
    link = parse_link(room.a)
    for bad in (make_link(link.http_base, link.room, "x" * 43),
                make_link(link.http_base, "no-such-room-0000000000", link.secret)):
        with pytest.raises(LinkNotValid):
            await Client.connect(bad)


async def test_a_replaced_link_stops_at_once(room: CreatedRoom) -> None:
    async with Client(room.a) as old:
        new_link = await replace_link(room.therapist, "a")
        assert isinstance(await old.wait_closed(), LinkNotValid)
        with pytest.raises(LinkNotValid):
            await old.run(PauseRaise())
        with pytest.raises(LinkNotValid):
            await Client.connect(room.a)
        async with Client(new_link) as new:
            assert new.role == "a"
            await new.run(PauseRaise())


async def test_ending_the_session_reaches_every_waiter(room: CreatedRoom) -> None:
    async with Client(room.therapist) as t, Client(room.a) as a:
        events = a.events()
        frames = a.frames()
        await t.create(AgreementAdd(text="We end on time."))
        await end_session(room.therapist)
        assert isinstance(await a.wait_closed(), SessionEnded)
        assert isinstance(await t.wait_closed(), SessionEnded)
        seen = []
        with pytest.raises(SessionEnded):
            async for event in events:
                seen.append(event["seq"])
        assert seen == [1]
        kinds = []
        with pytest.raises(SessionEnded):
            async for frame in frames:
                kinds.append(frame["t"])
        assert "ended" in kinds
        with pytest.raises(SessionEnded):
            await a.run(PauseRaise())
        with pytest.raises(RoomEnded):  # LinkNotValid is a RoomEnded too
            await Client.connect(room.a)


async def test_close_is_clean_and_ends_iterators_quietly(room: CreatedRoom) -> None:
    a = await Client.connect(room.a)
    events = a.events()
    await a.close()
    assert [e async for e in events] == []
    assert isinstance(a.terminal, ClientClosed)
    with pytest.raises(ClientClosed):
        await a.run(PauseRaise())
    await a.close()  # twice is fine


async def test_no_server_means_connection_lost_once_the_client_gives_up() -> None:
    client = Client(f"http://127.0.0.1:{free_port()}/r/room#secret", give_up_after=0.5)
    with pytest.raises(ConnectionLost, match="Could not connect"):
        await client.start()
    assert client.reconnects >= 1  # it tried again before giving up


# -- resend and resume ------------------------------------------------------------------------


async def test_resend_after_a_lost_ack_applies_once(room: CreatedRoom) -> None:
    """The command reaches the server, the connection dies before the answer comes back."""
    async with Client(room.therapist) as t, Client(room.a) as a:
        await t.run(StageSet(stage=2))
        await a.wait_seq(1)
        assert a._ws is not None
        a._ws.transport.pause_reading()  # the ack and the event stay unread
        adding = asyncio.create_task(a.create(PartAdd(name="The Watcher", kind="manager")))
        await t.wait_seq(2)  # committed: the therapist saw seq 2 go by
        a._ws.transport.abort()  # the network drops, no close handshake
        part = await adding
        assert a.reconnects >= 1
        assert parts_named(a, "The Watcher") == [part]
        event = await a.run(PauseRaise())
        assert event["seq"] == 3  # the resend committed nothing twice
        await settle(t, a)
        assert await fresh_view(room.a) == a.view
        assert a.anomalies == []


async def test_commands_sent_while_disconnected_go_out_on_reconnect(room: CreatedRoom) -> None:
    async with Client(room.therapist) as t, Client(room.a) as a:
        await t.run(StageSet(stage=2))
        await a.wait_seq(1)
        assert a._ws is not None
        a._ws.transport.abort()
        parts = await asyncio.gather(*(a.create(PartAdd(name=f"Part {n}")) for n in range(5)))
        assert len(set(parts)) == 5
        assert set(parts) <= colls(a)["parts"].keys()
        assert a.seq == 6
        assert await fresh_view(room.a) == a.view
        assert a.anomalies == []


async def test_aborts_mid_burst_apply_every_command_exactly_once(room: CreatedRoom) -> None:
    async with Client(room.therapist) as t, Client(room.a) as a:
        await t.run(StageSet(stage=2))
        await a.wait_seq(1)
        burst = 14  # a side of the board holds 15 parts
        adding = [asyncio.create_task(a.create(PartAdd(name=f"Burst {n}"))) for n in range(burst)]
        for _ in range(2):
            await asyncio.sleep(0)  # let some frames out
            assert a._ws is not None
            before = a.reconnects
            a._ws.transport.abort()
            await a.wait_for(lambda _: a.reconnects > before and a.connected)  # noqa: B023
        parts = await asyncio.gather(*adding)
        assert len(set(parts)) == burst
        for n, part in enumerate(parts):
            assert parts_named(a, f"Burst {n}") == [part]
        assert a.seq == 1 + burst  # one stage change and the parts, nothing twice
        event = await a.run(PauseRaise())
        assert event["seq"] == 2 + burst
        await settle(t, a)
        assert await fresh_view(room.a) == a.view
        assert a.anomalies == []


async def test_resume_replays_exactly_what_was_missed(room: CreatedRoom) -> None:
    async with Client(room.therapist) as t, Client(room.a, record=True) as a:
        events = a.events()
        await t.create(AgreementAdd(text="One."))
        await a.wait_seq(1)
        assert a._ws is not None
        a._ws.transport.pause_reading()
        for text in ("Two.", "Three.", "Four."):
            await t.create(AgreementAdd(text=text))
        a._ws.transport.abort()
        await a.wait_seq(t.seq)
        welcomes = [f for f in a.decoded_frames() if f["t"] == "welcome"]
        assert len(welcomes) == 2
        assert welcomes[1]["view"] is None
        assert [e["seq"] for e in welcomes[1]["replay"]] == [2, 3, 4]
        assert [(await anext(events))["seq"] for _ in range(4)] == [1, 2, 3, 4]
        assert await fresh_view(room.a) == a.view
        assert a.anomalies == []


async def test_an_event_out_of_order_is_never_applied_and_the_client_resumes(
    room: CreatedRoom,
) -> None:
    async with Client(room.therapist) as t, Client(room.a, record=True) as a:
        first = await t.create(AgreementAdd(text="One."))
        await t.create(AgreementAdd(text="Two."))
        await a.wait_seq(2)
        assert a.view is not None
        a.view["seq"] = 1  # as if seq 2 had never arrived: the next event is a gap
        a.view["colls"]["agreements"] = {first: a.view["colls"]["agreements"][first]}
        await t.create(AgreementAdd(text="Three."))
        await a.wait_for(lambda v: len(v["colls"]["agreements"]) == 3)
        assert a.anomalies == ["gap: expected seq 2, got 3"]
        assert a.reconnects == 1
        welcomes = [f for f in a.decoded_frames() if f["t"] == "welcome"]
        assert [e["seq"] for e in welcomes[-1]["replay"]] == [2, 3]
        assert await fresh_view(room.a) == a.view


async def test_clients_ride_through_a_server_restart(server: Any, room: CreatedRoom) -> None:
    async with Client(room.therapist) as t, Client(room.a) as a, Client(room.b) as b:
        await t.run(StageSet(stage=2))
        await settle(t, a, b)
        await asyncio.to_thread(server.terminate)
        adding = asyncio.create_task(a.create(PartAdd(name="The Night Owl", kind="firefighter")))
        await server.astart()
        part = await adding
        await a.run(PartReveal(id=part))
        await t.wait_for(lambda v: part in v["colls"]["parts"])
        await settle(t, a, b)
        for client, link in ((t, room.therapist), (a, room.a), (b, room.b)):
            assert client.reconnects >= 1
            assert client.anomalies == []
            assert await fresh_view(link) == client.view
        assert parts_named(b, "The Night Owl") == [part]


async def test_without_resume_a_lost_connection_is_final(room: CreatedRoom) -> None:
    a = await Client.connect(room.a, resume=False)
    try:
        assert a._ws is not None
        a._ws.transport.abort()
        lost = await a.wait_closed()
        assert isinstance(lost, ConnectionLost)
        assert lost.close_code == 1006
        with pytest.raises(ConnectionLost):
            await a.run(PauseRaise())
    finally:
        await a.close()


async def test_redis_losing_the_room_is_session_lost(
    room: CreatedRoom, redis_server: LocalRedis
) -> None:
    async with Client(room.a) as a:
        await a.run(PauseRaise())
        redis_server.restart()  # no persistence: every room is gone, under a new run id
        if a._ws is not None:  # unless the server told it already, make it resume
            a._ws.transport.abort()
        assert isinstance(await a.wait_closed(timeout=30), SessionLost)
        with pytest.raises(SessionLost):
            await a.run(PauseRaise())
