"""The IFS moves of issue 11 played live by all three roles (shared by the live tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from live_rooms import Trio, canary, open_room, scores

from client import Client


@dataclass
class Moves:
    """What the moves sent, and the texts each role must never receive."""

    sent: set[str] = field(default_factory=set)
    never: dict[str, list[str]] = field(default_factory=lambda: {"a": [], "b": [],
                                                                 "therapist": []})
    ids: dict[str, str] = field(default_factory=dict)


def made(event: dict[str, Any], coll: str) -> str:
    (key,) = [change[1] for change in event["changes"] if change[0] == coll]
    return str(key)


async def open_ifs_room(base_url: str) -> Trio:
    """A room at stage 5 whose therapist does not see drafts; b's check-in is shared."""
    room = await open_room(base_url, record=True, therapist_sees_drafts=False)
    await room.therapist.send("stage.set", stage=5)
    await room.b.send("checkin.set", scores=scores(4))
    await room.b.send("checkin.reveal")
    return room


async def play_ifs_moves(room: Trio) -> Moves:
    """Every command of issue 11, from the role that sends it, in a room at stage 5 whose
    therapist does not see drafts. Leaves no private part behind (the counts stay)."""
    t, a, b = room.therapist, room.a, room.b
    moves = Moves()

    async def do(client: Client, op: str, **args: object) -> dict[str, Any]:
        moves.sent.add(op)
        return await client.send(op, **args)

    # A part's details, shared in two steps; a draft's details reach no one.
    young = made(await a.send("part.add", name=canary("young"), kind="exile"), "parts")
    burden = canary("burden")
    await do(a, "part.details", id=young, burden=burden, age="five")
    await do(a, "part.reveal", id=young, to="therapist", confirm=True)
    await t.wait_for(lambda v: young in v["colls"]["parts"])
    await do(a, "part.withdraw", id=young, to="therapist")
    await b.wait_seq(a.seq)
    assert young not in b.view["colls"]["parts"]
    assert burden.encode() not in b"".join(b.raw_frames), "a draft's burden reached b"
    guard = made(await a.send("part.add", name=canary("guard"), kind="manager"), "parts")
    await a.send("part.reveal", id=guard)
    # A polarity with a label.
    link = made(await do(a, "link.add", kind="allied_with", source=guard, target=young,
                         label="together"), "links")
    await do(a, "link.edit", id=link, label=canary("label-while-private"))
    # Feel-toward: a blended feeling becomes a new private part, linked to the first.
    hidden_part = canary("the-annoyed-one")
    await do(a, "part.feel", id=young, other="annoyed", new_part=hidden_part,
             new_link="polarized_with")
    new_part = next(key for key, p in a.view["colls"]["parts"].items()
                    if p["name"] == hidden_part)
    hidden_feeling = canary("feeling-toward-a-draft")
    await a.send("part.feel", id=new_part, other=hidden_feeling)
    moves.never["b"] += [hidden_feeling, hidden_part, new_part]
    moves.never["therapist"] += [hidden_feeling, hidden_part, new_part]
    await do(a, "part.feel", id=guard, qualities={"curiosity": True, "calm": True})
    await do(a, "part.reveal", id=young, confirm=True)
    moves.ids |= {"young": young, "guard": guard, "link": link}
    # Check-in history (b's check-in is shared: its history too).
    await b.send("checkin.set", scores=scores(6), note="later")
    # Stage 5 in IFIO's order, with an answer revisited.
    await a.send("need.set", part=young, text="to know you come back")
    await a.send("need.reveal", part=young)
    await do(a, "need.self", part=young, text="I can remind it I am here")
    await do(a, "request.make", part=young, text="tell me when you'll be back")
    await b.wait_for(lambda v: (v["colls"]["needs"].get(young) or {}).get("request"))
    await do(b, "request.answer", part=young, answer="lets_talk")
    await do(b, "request.answer", part=young, answer="yes", note="gladly")
    # Speaking for parts, with a listener; a U-turn kept private, one shared.
    await do(t, "turn.start", speaker="a")
    await do(a, "turn.speak", part=young, text="A part of me feels scared when you go quiet.")
    await b.wait_for(lambda v: any(turn["spoken"] for turn in v["colls"]["turns"].values()))
    await do(b, "turn.reflect", text="What I heard is that a part of you gets scared.")
    await a.wait_for(lambda v: any(turn["reflection"] for turn in v["colls"]["turns"].values()))
    await do(a, "turn.confirm", heard=True)
    await do(t, "turn.end", swap=True)
    await t.send("turn.end")
    kept = made(await do(t, "uturn.ask", partner="b"), "uturns")
    private_answer = canary("uturn-private")
    await b.wait_for(lambda v: kept in v["colls"]["uturns"])
    await do(b, "uturn.answer", id=kept, text=private_answer)
    moves.never["a"].append(private_answer)
    shared = made(await t.send("uturn.ask", partner="b", prompt="What is up for you?"), "uturns")
    await b.wait_for(lambda v: shared in v["colls"]["uturns"])
    await b.send("uturn.answer", id=shared, text="my wall went up")
    await do(b, "uturn.share", id=shared)
    moves.ids |= {"uturn_kept": kept, "uturn_shared": shared}
    # The therapist as scribe writes for b: b and the therapist see it, a never does.
    scribed_name, scribed_job = canary("written-for-b"), canary("its-job")
    scribed = made(await do(t, "scribe.part_add", partner="b", name=scribed_name,
                            kind="manager"), "parts")
    await do(t, "scribe.part_edit", id=scribed, job=scribed_job)
    await do(t, "scribe.link_add", kind="reacts_to", source=scribed, target=guard)
    await b.wait_for(lambda v: (v["colls"]["parts"].get(scribed) or {}).get("job"))
    assert b.view["colls"]["parts"][scribed]["by_therapist"] is True
    await do(b, "part.accept", id=scribed)
    moves.never["a"] += [scribed_name, scribed_job, scribed]
    # The parts made here go again, so the room's counts are as before.
    await a.send("part.remove", id=new_part)
    await b.send("part.remove", id=scribed)
    return moves
