"""The demo couple (shared/DOMAIN.md) played through all five stages by three clients.

Alex and Sam, together eight years, stuck in a pursue-withdraw cycle; their
therapist leads. One plain line is printed per step, so a new user can watch
a session move (and open the therapist's link in a browser to see it live).
Ending the session deletes the room, so the caller decides when that happens
(`until_start`, `until_end`): after Enter, after some seconds, or at once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rooms.actions import (
    AgreementAck,
    AgreementAdd,
    CheckinReveal,
    CheckinSet,
    LinkAdd,
    LinkEdit,
    NeedReveal,
    NeedSelf,
    NeedSet,
    NoteAdd,
    PartAccept,
    PartAdd,
    PartBlend,
    PartDetails,
    PartFeel,
    PartMove,
    PartReveal,
    PartRevealAll,
    PauseClear,
    PauseRaise,
    ReadySet,
    RequestAnswer,
    RequestMake,
    ScribeLinkAdd,
    ScribePartAdd,
    SpotlightSet,
    StageSet,
    TurnConfirm,
    TurnEnd,
    TurnReflect,
    TurnSpeak,
    TurnStart,
    UturnAnswer,
    UturnAsk,
    UturnShare,
)

from .http import DEMO_PARTNERS, create_room, end_session, export
from .session import Client

AGREEMENTS = (
    "Either of us can take a pause at any time.",
    "We speak for our parts, not from them.",
    "No blaming: we stay curious about each other's parts.",
)

# Each partner's parts; the exile is shared last, when its owner is ready.
ALEX_PARTS = (
    PartAdd(name="The Planner", kind="manager", x=0.15, y=0.2),
    PartAdd(name="The Alarm", kind="firefighter", x=0.3, y=0.45),
    PartAdd(name="The one who gets left", kind="exile", x=0.2, y=0.75),
)
SAM_PARTS = (
    PartAdd(name="The Quiet One", kind="firefighter", x=0.7, y=0.45),
    PartAdd(name="The Good Kid", kind="manager", x=0.85, y=0.2),
    PartAdd(name="The one who is never enough", kind="exile", x=0.8, y=0.75),
)


class Demo:
    def __init__(self, therapist: Client, alex: Client, sam: Client, pace: float,
                 say: Callable[[str], None]) -> None:
        self.t, self.alex, self.sam = therapist, alex, sam
        self.pace = pace
        self.say = say
        self.stage = 1

    async def step(self, line: str) -> None:
        self.say(f"[stage {self.stage}] {line}")
        if self.pace > 0:
            await asyncio.sleep(self.pace)

    async def both_ready(self) -> None:
        await self.alex.run(ReadySet())
        await self.sam.run(ReadySet())
        await self.t.wait_for(lambda v: v["colls"]["ready"].keys() >= {"a", "b"})
        await self.step("Alex and Sam are both ready for the next step")

    async def move_to(self, stage: int) -> None:
        await self.t.run(StageSet(stage=stage))
        self.stage = stage
        view = await self.t.wait_seq(self.t.seq)
        name = view["colls"]["room"]["settings"]["stages"][stage - 1]["name"]
        await self.step(f"the therapist moves the room to stage {stage}: {name}")

    async def speak_and_listen(self, parts: dict[str, str]) -> None:
        t, alex, sam = self.t, self.alex, self.sam
        await t.run(TurnStart(speaker="a"))
        await self.step("the therapist gives Alex the floor; Sam listens")
        await alex.run(TurnSpeak(part=parts["The Alarm"], text=(
            "A part of me feels scared when you go quiet. "
            "It is trying to keep me from being left.")))
        await self.step("Alex speaks for The Alarm: a part of me feels scared when you go quiet")
        await sam.wait_for(lambda v: any(turn["spoken"] for turn in v["colls"]["turns"].values()))
        await sam.run(TurnReflect(text="What I heard is that when I go quiet, "
                                       "a part of you gets scared you'll be left."))
        await self.step("Sam reflects: what I heard is...")
        await alex.run(TurnConfirm(heard=True))
        await self.step("Alex feels heard")
        await t.run(TurnEnd(swap=True))
        await self.step("the therapist swaps: Sam speaks, Alex listens")
        await sam.run(TurnSpeak(part=parts["The Quiet One"], text=(
            "A part of me goes quiet when voices rise. It is trying to keep the peace.")))
        await alex.wait_for(lambda v: any(
            turn["spoken"] and turn["speaker"] == "b" for turn in v["colls"]["turns"].values()))
        await alex.run(TurnReflect(text="What I heard is that your quiet is keeping the peace."))
        await sam.run(TurnConfirm(heard=True))
        await t.run(TurnEnd())
        await self.step("Sam feels heard; the therapist ends the turn")
        uturn = await t.create(UturnAsk(partner="b"))
        await self.step("the therapist invites Sam to a U-turn: what is happening inside you?")
        await sam.run(UturnAnswer(id=uturn, text="The Good Kid is worried I said it wrong."))
        await sam.run(UturnShare(id=uturn))
        await self.step("Sam answers, then shares the answer with Alex")

    async def run(self) -> None:
        t, alex, sam = self.t, self.alex, self.sam

        # 1. Creating a Safe Space
        await self.step("therapist, Alex and Sam are connected")
        agreements = []
        for text in AGREEMENTS:
            agreements.append(await t.create(AgreementAdd(text=text)))
            await self.step(f"the therapist writes an agreement: {text}")
        for agreement in agreements:
            await alex.run(AgreementAck(id=agreement))
            await sam.run(AgreementAck(id=agreement))
        await t.wait_for(lambda v: all(
            v["colls"]["agreements"][a]["acks"] == ["a", "b"] for a in agreements))
        await self.step("Alex and Sam acknowledge every agreement")
        await self.both_ready()

        # 2. Identifying Parts
        await self.move_to(2)
        parts: dict[str, str] = {}
        for who, client, plan in (("Alex", alex, ALEX_PARTS), ("Sam", sam, SAM_PARTS)):
            for part in plan:
                parts[part.name] = await client.create(part)
                await self.step(f"{who} adds a part, not yet shared: {part.name} ({part.kind})")
        await alex.run(PartDetails(
            id=parts["The Alarm"], job="Makes sure Sam hears me.",
            fear="That I will be left alone with no warning.", age="About fourteen.",
            intent="Wants me to stay connected."))
        await self.step("Alex writes The Alarm's job, fear, age and what it wants for Alex")
        await alex.run(PartDetails(id=parts["The one who gets left"], age="Very young.",
                                   burden="\"I'll be left.\""))
        await self.step("Alex writes what The one who gets left carries: \"I'll be left.\"")
        await alex.run(PartReveal(id=parts["The Planner"]))
        await alex.run(PartReveal(id=parts["The Alarm"]))
        await self.step("Alex shares The Planner and The Alarm")
        await alex.drag(parts["The Alarm"], 0.4, 0.45)
        await alex.run(PartMove(id=parts["The Alarm"], x=0.42, y=0.45))
        await self.step("Alex moves The Alarm closer to the middle")
        written = await t.create(ScribePartAdd(partner="b", name="The Peacekeeper",
                                               kind="manager", x=0.9, y=0.45))
        await self.step("the therapist, as scribe, writes The Peacekeeper for Sam: "
                        "only Sam and the therapist see it")
        await sam.wait_for(lambda v: written in v["colls"]["parts"])
        await sam.run(PartRevealAll(confirm=True))
        await self.step("Sam shares all of Sam's parts, the exile too, after a gentle check")
        exile = parts["The one who gets left"]
        await alex.run(PartReveal(id=exile, to="therapist", confirm=True))
        await self.step("Alex shares The one who gets left with the therapist first")
        await t.wait_for(lambda v: exile in v["colls"]["parts"])
        await alex.run(PartReveal(id=exile, confirm=True))
        await self.step("Alex, when ready, shares The one who gets left with Sam too")
        await sam.wait_for(lambda v: set(parts.values()) <= v["colls"]["parts"].keys())
        await self.both_ready()

        # 3. Unblending
        await self.move_to(3)
        for client, name, level in (
            (alex, "The Alarm", 8), (alex, "The Planner", 6), (alex, "The one who gets left", 4),
            (sam, "The Quiet One", 7), (sam, "The Good Kid", 5),
            (sam, "The one who is never enough", 3),
        ):
            await client.run(PartBlend(id=parts[name], level=level))
            who = "Alex" if client is alex else "Sam"
            await self.step(f"{who}: {name} is blended at {level} of 10")
        for client, source, target in (
            (alex, "The Planner", "The one who gets left"),
            (alex, "The Alarm", "The one who gets left"),
            (sam, "The Quiet One", "The one who is never enough"),
            (sam, "The Good Kid", "The one who is never enough"),
        ):
            await client.create(LinkAdd(kind="protects", source=parts[source],
                                        target=parts[target]))
            await self.step(f"{source} protects {target}")
        drawn = await t.create(ScribeLinkAdd(kind="protects", source=written,
                                             target=parts["The one who is never enough"]))
        await self.step("the therapist, as scribe, draws for Sam: The Peacekeeper protects "
                        "The one who is never enough")
        await sam.wait_for(lambda v: drawn in v["colls"]["links"])
        await sam.run(PartAccept(id=written))
        await self.step("Sam keeps The Peacekeeper, and the arrow drawn from it, as Sam's own")
        polarity = await alex.create(LinkAdd(kind="polarized_with", source=parts["The Planner"],
                                             target=parts["The Alarm"]))
        await alex.run(LinkEdit(id=polarity, label="plan it all / sound the alarm"))
        await self.step("The Planner is polarized with The Alarm: plan it all / sound the alarm")
        await sam.create(LinkAdd(kind="allied_with", source=parts["The Good Kid"],
                                 target=parts["The Quiet One"], label="keep the peace"))
        await self.step("The Good Kid is allied with The Quiet One: keep the peace")
        await t.run(SpotlightSet(part=parts["The Alarm"]))
        await self.step("the therapist spotlights The Alarm")
        await alex.create(LinkAdd(kind="reacts_to", source=parts["The Alarm"],
                                  target=parts["The Quiet One"]))
        await self.step("the cycle: The Alarm reacts to The Quiet One")
        await sam.create(LinkAdd(kind="reacts_to", source=parts["The Quiet One"],
                                 target=parts["The Alarm"]))
        await self.step("the cycle: The Quiet One reacts to The Alarm")
        await sam.run(PauseRaise())
        await t.wait_for(lambda v: v["colls"]["room"]["board"]["pauses"] != [])
        await self.step("Sam asks for a pause; everyone sees it")
        await t.run(PauseClear())
        await self.step("after a breath, the therapist clears the pause")
        await alex.run(PartBlend(id=parts["The Alarm"], level=3))
        await sam.run(PartBlend(id=parts["The Quiet One"], level=4))
        await self.step("The Alarm and The Quiet One step back a little (3 and 4 of 10)")
        await alex.run(PartFeel(id=parts["The Alarm"], other="annoyed, I want it to stop",
                                new_part="The one who wants it gone", new_kind="manager"))
        await self.step("asked how Alex feels toward The Alarm: annoyed; Alex adds "
                        "The one who wants it gone, which reacts to The Alarm")
        await alex.run(PartFeel(id=parts["The Alarm"],
                                qualities={"curiosity": True, "compassion": True}))
        await self.step("after it steps back, Alex feels curious and compassionate "
                        "toward The Alarm: Self is here")
        await self.speak_and_listen(parts)
        await t.run(SpotlightSet(part=None))
        await t.create(NoteAdd(text="The cycle is visible to both; the pause was used well."))
        await self.step("the therapist writes a private note")
        await self.both_ready()

        # 4. Accessing the Self
        await self.move_to(4)
        await alex.run(CheckinSet(
            scores={"calm": 6, "curiosity": 7, "compassion": 6, "confidence": 5, "courage": 6,
                    "clarity": 6, "creativity": 5, "connectedness": 6},
            note="Calmer now that I can see The Alarm.",
        ))
        await sam.run(CheckinSet(
            scores={"calm": 7, "curiosity": 6, "compassion": 7, "confidence": 5, "courage": 5,
                    "clarity": 6, "creativity": 6, "connectedness": 5},
            note="I can stay in the room.",
        ))
        await self.step("Alex and Sam fill in their Self check-ins, not yet shared")
        await alex.run(CheckinReveal())
        await sam.run(CheckinReveal())
        await self.step("Alex and Sam share their check-ins")
        await self.both_ready()

        # 5. Working with Parts in the Relationship
        await self.move_to(5)
        await alex.run(NeedSet(part=exile, text="To know Sam is coming back."))
        await self.step("Alex writes what The one who gets left needs, not yet shared")
        await alex.run(NeedReveal(part=exile))
        await self.step("Alex shares it: The one who gets left needs to know Sam is coming back")
        await alex.run(NeedSelf(part=exile, text="I can remind it that I am here, "
                                "and that I come back too."))
        await self.step("Alex first writes what Alex's own Self can offer The one who gets left")
        await alex.run(RequestMake(part=exile,
                                   text="When you need space, tell me when you'll be back."))
        await self.step("Alex asks: when you need space, tell me when you'll be back")
        await sam.wait_for(lambda v: (v["colls"]["needs"].get(exile) or {}).get("request"))
        await sam.run(RequestAnswer(part=exile, answer="yes", note="I can do that."))
        await self.step("Sam answers: yes")
        await alex.run(CheckinSet(
            scores={"calm": 8, "curiosity": 8, "compassion": 7, "confidence": 6, "courage": 7,
                    "clarity": 7, "creativity": 6, "connectedness": 8},
            note="More room inside, and closer to Sam.",
        ))
        await self.step("Alex checks in with the Self again before the end: "
                        "Alex's Self grows on the board")
        await self.both_ready()

        # Everyone ends on the same board.
        final = t.seq
        for client in (alex, sam):
            await client.wait_seq(final)
        need = (await alex.wait_seq(final))["colls"]["needs"][exile]
        assert need["answer"] == "yes", "the request's answer did not reach Alex"
        await self.step(f"all three boards agree at sequence number {final}")


Wait = Callable[[], Awaitable[None]]


async def at_once() -> None:
    pass


async def run_demo(base: str, key: str | None, *, pace: float = 0.3, export_json: bool = False,
                   say: Callable[[str], None] = print, until_start: Wait = at_once,
                   until_end: Wait = at_once) -> None:
    """Create a room, play the demo in it, then end it: `until_start` is awaited after the
    links are shown, `until_end` after the last step, while the room is still there."""
    room = await create_room(base, key=key, partners=DEMO_PARTNERS)
    say("Room created. Join links (each carries its own secret):")
    for role, label in (("therapist", "therapist"), ("a", "Alex"), ("b", "Sam")):
        say(f"  {label:<9} {room.links[role]}")
    say("Open the therapist's link in a browser to watch the session live.")
    clients: list[Client] = []
    try:
        await until_start()
        for role in ("therapist", "a", "b"):
            clients.append(await Client.connect(room.links[role]))
        therapist, alex, sam = clients
        await Demo(therapist, alex, sam, pace=pace, say=say).run()
        await until_end()
        if export_json:
            body, filename, _ = await export(room.therapist, "json")
            json.loads(body)  # a JSON document, or this raises
            path = Path.cwd() / (Path(filename).name or "partsboard-export.json")
            path.write_bytes(body)
            say(f"The therapist's JSON export is saved as {path.name}")
        await end_session(room.therapist)
        for client in clients:
            await client.wait_closed()
        say("The therapist ended the session; nothing of it is kept on the server.")
    finally:
        for client in clients:
            await client.close()


def describe_error(error: BaseException) -> str:
    code: Any = getattr(error, "code", None)
    return f"{type(error).__name__}" + (f" ({code})" if code else "")
