"""Every command of rooms.stages.OPERATIONS through machine.apply.

For each op: allowed (right role, right stage, valid args -> new room, seq+1,
the event lists the change); refused by role, by stage, by a frozen board,
by limits and for bad args, each time with the room unchanged (compared as
msgpack bytes). Then the domain rules of SPEC sections 1-3.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from rooms_helpers import ALL_OPS, SCORES_OK, Session, changed, encoded, normalised

from rooms import actions, machine, model, views
from rooms.errors import (
    BadRequest,
    Forbidden,
    Frozen,
    LimitExceeded,
    NotFound,
    RoomError,
    StageLocked,
)
from rooms.model import Limits, PartnerInfo, Role, Room
from rooms.stages import LAST_STAGE, OPERATIONS, UTURN_PROMPT

Check = Callable[[Session, Room, views.Event], None]
Scenario = tuple[Role, dict[str, Any], Check]

# ------------------------------------------------------------------ one allowed case per op
# Each scenario gets a session at the op's own stage, builds what the command needs and
# returns (actor, args, check). `check(session, room_before, event)` asserts the effect.


def sc_stage_set(s: Session) -> Scenario:
    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.stage == 3
        assert s.room.board.history[-1] == model.StageChange(3, s.room.seq, s.now)
        assert changed(ev, "room")["board"]["stage"] == 3
    return "therapist", {"stage": 3}, check


def sc_agreement_add(s: Session) -> Scenario:
    def check(s: Session, old: Room, ev: views.Event) -> None:
        (new_id,) = set(s.room.agreements) - set(old.agreements)
        made = s.room.seq  # the order of an item is the seq of the command that made it
        assert s.room.agreements[new_id] == model.Agreement(new_id, "Speak for parts.",
                                                            order=made)
        assert changed(ev, "agreements") == {new_id: {"id": new_id, "text": "Speak for parts.",
                                                      "acks": [], "order": made}}
    return "therapist", {"text": "  Speak for parts.  "}, check


def sc_agreement_edit(s: Session) -> Scenario:
    agreement = s.agreement("No blaming.")
    made = s.room.seq
    s.do("a", "agreement.ack", id=agreement)

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.agreements[agreement] == model.Agreement(agreement, "No blame, please.",
                                                               order=made)
        assert changed(ev, "agreements")[agreement]["text"] == "No blame, please."
    return "therapist", {"id": agreement, "text": "No blame, please."}, check


def sc_agreement_remove(s: Session) -> Scenario:
    agreement = s.agreement()

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert agreement not in s.room.agreements
        assert changed(ev, "agreements") == {agreement: None}
    return "therapist", {"id": agreement}, check


def sc_agreement_ack(s: Session) -> Scenario:
    agreement = s.agreement()
    s.do("a", "agreement.ack", id=agreement)

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.agreements[agreement].acks == ("a", "b")
        assert changed(ev, "agreements")[agreement]["acks"] == ["a", "b"]
    return "b", {"id": agreement}, check


def sc_spotlight_set(s: Session) -> Scenario:
    s.do("therapist", "stage.set", stage=2)
    part = s.part("a", "The Worrier", shared=True)

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.board.spotlight == part
        assert changed(ev, "room")["board"]["spotlight"] == part
    return "therapist", {"part": part}, check


def sc_freeze_set(s: Session) -> Scenario:
    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.board.frozen is True
        assert changed(ev, "room")["board"]["frozen"] is True
    return "therapist", {"frozen": True}, check


def sc_pause_raise(s: Session) -> Scenario:
    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.board.pauses == (model.Pause("b", s.now),)
        assert changed(ev, "room")["board"]["pauses"] == [{"by": "b", "at": s.now}]
    return "b", {}, check


def sc_pause_clear(s: Session) -> Scenario:
    s.do("a", "pause.raise")
    s.do("b", "pause.raise")

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.board.pauses == ()
        assert changed(ev, "room")["board"]["pauses"] == []
    return "therapist", {}, check


def sc_overwhelm_raise(s: Session) -> Scenario:
    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.overwhelm == {"a": model.Overwhelm("a", s.now)}
        assert changed(ev, "overwhelm") == {"a": {"by": "a", "at": s.now, "seen_at": None}}
    return "a", {}, check


def sc_overwhelm_ack(s: Session) -> Scenario:
    s.do("b", "overwhelm.raise")
    raised = s.now

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.overwhelm == {"b": model.Overwhelm("b", raised, seen_at=s.now)}
        assert changed(ev, "overwhelm") == {"b": {"by": "b", "at": raised, "seen_at": s.now}}
    return "therapist", {"partner": "b"}, check


def sc_overwhelm_clear(s: Session) -> Scenario:
    s.do("b", "overwhelm.raise")
    s.do("a", "overwhelm.raise")

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert set(s.room.overwhelm) == {"a"}
        assert changed(ev, "overwhelm") == {"b": None}
    return "therapist", {"partner": "b"}, check


def sc_ending_start(s: Session) -> Scenario:
    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.board.ending == model.Ending(s.now)
        assert changed(ev, "room")["board"]["ending"] == {"at": s.now}
    return "therapist", {}, check


def sc_ending_cancel(s: Session) -> Scenario:
    s.do("therapist", "ending.start")

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.board.ending is None
        assert changed(ev, "room")["board"]["ending"] is None
    return "therapist", {}, check


def sc_ready_set(s: Session) -> Scenario:
    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.ready == {"a": True}
        assert changed(ev, "ready") == {"a": True}
    return "a", {"ready": True}, check


def sc_turn_start(s: Session) -> Scenario:
    def check(s: Session, old: Room, ev: views.Event) -> None:
        (turn,) = s.room.turns.values()
        assert (turn.speaker, turn.listener, turn.at, turn.ended_at) == ("b", "a", s.now, None)
        assert changed(ev, "turns")[turn.id]["speaker"] == "b"
    return "therapist", {"speaker": "b"}, check


def _open_turn(s: Session, speaker: Role = "a", *, spoken: bool = False,
               reflected: bool = False) -> str:
    event = s.do("therapist", "turn.start", speaker=speaker)
    (turn,) = [c.id for c in event.changes if c.coll == "turns"]
    listener = "b" if speaker == "a" else "a"
    if spoken:
        s.do(speaker, "turn.speak", text="A part of me feels scared when you go quiet.")
    if reflected:
        s.do(listener, "turn.reflect", text="What I heard is that a part of you is scared.")
    return turn


def sc_turn_speak(s: Session) -> Scenario:
    turn = _open_turn(s, "a")
    part = s.part("a", "Alarm", shared=True)

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert (s.room.turns[turn].spoken, s.room.turns[turn].part) == ("It is loud.", part)
        assert changed(ev, "turns")[turn]["spoken"] == "It is loud."
    return "a", {"text": "It is loud.", "part": part}, check


def sc_turn_reflect(s: Session) -> Scenario:
    turn = _open_turn(s, "b", spoken=True)

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.turns[turn].reflection == "What I heard is fear."
    return "a", {"text": "What I heard is fear."}, check


def sc_turn_confirm(s: Session) -> Scenario:
    turn = _open_turn(s, "a", spoken=True, reflected=True)

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert (s.room.turns[turn].heard, s.room.turns[turn].correction) == (
            False, "more sad than scared")
    return "a", {"heard": False, "correction": "more sad than scared"}, check


def sc_turn_end(s: Session) -> Scenario:
    turn = _open_turn(s, "a", spoken=True)

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.turns[turn].ended_at == s.now
        (new,) = set(s.room.turns) - {turn}
        assert (s.room.turns[new].speaker, s.room.turns[new].listener) == ("b", "a")
    return "therapist", {"swap": True}, check


def sc_uturn_ask(s: Session) -> Scenario:
    def check(s: Session, old: Room, ev: views.Event) -> None:
        (uturn,) = s.room.uturns.values()
        assert (uturn.partner, uturn.prompt, uturn.shared) == ("a", UTURN_PROMPT, False)
        assert set(changed(ev, "uturns")) == {uturn.id}
    return "therapist", {"partner": "a"}, check


def _uturn(s: Session, partner: Role, answer: str = "") -> str:
    event = s.do("therapist", "uturn.ask", partner=partner)
    (uturn,) = [c.id for c in event.changes if c.coll == "uturns"]
    if answer:
        s.do(partner, "uturn.answer", id=uturn, text=answer)
    return uturn


def sc_uturn_answer(s: Session) -> Scenario:
    uturn = _uturn(s, "b")

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert (s.room.uturns[uturn].answer, s.room.uturns[uturn].answered_at) == (
            "my critic is up", s.now)
    return "b", {"id": uturn, "text": "my critic is up"}, check


def sc_uturn_share(s: Session) -> Scenario:
    uturn = _uturn(s, "a", "a part of me wants to run")

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.uturns[uturn].shared is True
        assert views.event_for(ev, "b")["changes"][0][2]["answer"] == "a part of me wants to run"
    return "a", {"id": uturn}, check


def sc_note_add(s: Session) -> Scenario:
    def check(s: Session, old: Room, ev: views.Event) -> None:
        (new_id,) = set(s.room.notes)
        assert s.room.notes[new_id] == model.Note(new_id, "Both tense today.", s.now,
                                                  order=s.room.seq)
        assert changed(ev, "notes")[new_id]["text"] == "Both tense today."
    return "therapist", {"text": "Both tense today."}, check


def sc_note_edit(s: Session) -> Scenario:
    note = s.note("first")
    written, made = s.now, s.room.seq

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.notes[note] == model.Note(note, "second", written, order=made)
        assert changed(ev, "notes")[note]["text"] == "second"
    return "therapist", {"id": note, "text": "second"}, check


def sc_note_remove(s: Session) -> Scenario:
    note = s.note()

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.notes == {}
        assert changed(ev, "notes") == {note: None}
    return "therapist", {"id": note}, check


def sc_partner_update(s: Session) -> Scenario:
    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.partners["a"] == PartnerInfo("Jo", "#00ff00")
        assert s.room.partners["b"] == old.partners["b"]
        assert changed(ev, "partners") == {"a": {"name": "Jo", "color": "#00ff00"}}
    return "therapist", {"partner": "a", "name": " Jo ", "color": "#00ff00"}, check


def sc_part_add(s: Session) -> Scenario:
    def check(s: Session, old: Room, ev: views.Event) -> None:
        (new_id,) = set(s.room.parts)
        # Dropped on the other partner's side: it rests on the nearest slot of its own.
        part = model.Part(new_id, "b", "The Critic", "manager", 0.6, 0.9951)
        assert s.room.parts[new_id] == part
        assert changed(ev, "parts") == {new_id: normalised(part)}
    return "b", {"name": "The Critic", "kind": "manager", "x": 0.1, "y": 0.9}, check


def sc_part_edit(s: Session) -> Scenario:
    part = s.part("a", "Shy one", kind="unsure")

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert (s.room.parts[part].name, s.room.parts[part].kind) == ("Scared one", "exile")
        assert changed(ev, "parts")[part]["name"] == "Scared one"
    return "a", {"id": part, "name": "Scared one", "kind": "exile"}, check


def sc_part_move(s: Session) -> Scenario:
    part = s.part("a")

    def check(s: Session, old: Room, ev: views.Event) -> None:
        # As far right as partner a's side goes.
        assert (s.room.parts[part].x, s.room.parts[part].y) == (0.4, 0.0)
        assert changed(ev, "parts")[part]["x"] == 0.4
    return "a", {"id": part, "x": 1, "y": 0.0}, check


def sc_part_remove(s: Session) -> Scenario:
    part = s.part("b")

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.parts == {}
        assert changed(ev, "parts") == {part: None}
    return "b", {"id": part}, check


def sc_part_details(s: Session) -> Scenario:
    part = s.part("b", "Little one", kind="exile")

    def check(s: Session, old: Room, ev: views.Event) -> None:
        got = s.room.parts[part]
        assert (got.job, got.fear, got.age, got.burden) == ("", "being alone", "six", "too much")
        assert changed(ev, "parts")[part]["burden"] == "too much"
    return "b", {"id": part, "fear": " being alone ", "age": "six", "burden": "too much"}, check


def _scribed(s: Session, partner: Role, name: str = "Written for you") -> str:
    event = s.do("therapist", "scribe.part_add", partner=partner, name=name)
    (part,) = [c.id for c in event.changes if c.coll == "parts"]
    return part


def sc_part_accept(s: Session) -> Scenario:
    part = _scribed(s, "a")

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.parts[part].by_therapist is False
        assert changed(ev, "parts")[part]["by_therapist"] is False
    return "a", {"id": part}, check


def sc_scribe_part_add(s: Session) -> Scenario:
    def check(s: Session, old: Room, ev: views.Event) -> None:
        (part,) = s.room.parts.values()
        assert (part.owner, part.name, part.kind) == ("b", "The Fixer", "manager")
        assert (part.shared, part.with_therapist, part.by_therapist) == (False, True, True)
        assert views.event_for(ev, "a")["hidden"] is True
    return "therapist", {"partner": "b", "name": "The Fixer", "kind": "manager"}, check


def sc_scribe_part_edit(s: Session) -> Scenario:
    part = _scribed(s, "b")

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert (s.room.parts[part].name, s.room.parts[part].job) == ("Fixer", "fixes it")
    return "therapist", {"id": part, "name": "Fixer", "job": "fixes it"}, check


def sc_scribe_link_add(s: Session) -> Scenario:
    source, target = _scribed(s, "a", "One"), _scribed(s, "a", "Two")

    def check(s: Session, old: Room, ev: views.Event) -> None:
        (link,) = s.room.links.values()
        assert (link.owner, link.kind, link.source, link.target, link.by_therapist) == (
            "a", "polarized_with", source, target, True)
    return "therapist", {"kind": "polarized_with", "source": source, "target": target}, check


def sc_part_reveal(s: Session) -> Scenario:
    part = s.part("a", "Pleaser")

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.parts[part].shared is True
        assert changed(ev, "parts")[part]["shared"] is True
    return "a", {"id": part}, check


def sc_part_reveal_all(s: Session) -> Scenario:
    mine = [s.part("a", "one"), s.part("a", "two")]
    theirs = s.part("b", "three")

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert all(s.room.parts[p].shared for p in mine)
        assert s.room.parts[theirs].shared is False
        assert set(changed(ev, "parts")) == set(mine)
    return "a", {}, check


def sc_part_withdraw(s: Session) -> Scenario:
    part = s.part("b", "Storm", shared=True)

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.parts[part].shared is False
        assert changed(ev, "parts")[part]["shared"] is False
    return "b", {"id": part}, check


def sc_part_tidy(s: Session) -> Scenario:
    exile, protector = s.part("b", "Small"), s.part("b", "Guard")
    s.do("b", "part.move", id=protector, x=1, y=1)
    theirs = s.part("a", "Elsewhere")

    def check(s: Session, old: Room, ev: views.Event) -> None:
        parts = s.room.parts
        assert set(changed(ev, "parts")) <= {exile, protector}
        assert parts[theirs] == old.parts[theirs]
        assert parts[protector].y == parts[exile].y == 0.0  # no links: one row, at the top
    return "b", {}, check


def sc_part_blend(s: Session) -> Scenario:
    part = s.part("a")

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.parts[part].blend == 7
        assert changed(ev, "parts")[part]["blend"] == 7
    return "a", {"id": part, "level": 7}, check


def sc_link_add(s: Session) -> Scenario:
    source, target = s.part("a", "Guard"), s.part("a", "Little one")

    def check(s: Session, old: Room, ev: views.Event) -> None:
        (link_id,) = set(s.room.links)
        assert s.room.links[link_id] == model.Link(link_id, "a", "protects", source, target,
                                                   order=s.room.seq)
        assert changed(ev, "links")[link_id]["source"] == source
    return "a", {"kind": "protects", "source": source, "target": target}, check


def sc_part_feel(s: Session) -> Scenario:
    part = s.part("a", "Critic", kind="manager")

    def check(s: Session, old: Room, ev: views.Event) -> None:
        (feeling,) = s.room.feelings.values()
        assert feeling == model.Feeling(feeling.id, part, "a", s.now, ("curiosity",), "tired",
                                        order=s.room.seq)
        assert changed(ev, "feelings")[feeling.id]["qualities"] == ["curiosity"]
    return "a", {"id": part, "qualities": {"curiosity": True, "calm": False},
                 "other": "tired"}, check


def sc_link_edit(s: Session) -> Scenario:
    link = s.link("b", "polarized_with", s.part("b"), s.part("b"))

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.links[link].label == "speak up / keep the peace"
        assert changed(ev, "links")[link]["label"] == "speak up / keep the peace"
    return "b", {"id": link, "label": "speak up / keep the peace"}, check


def sc_link_remove(s: Session) -> Scenario:
    link = s.link("a", "protects", s.part("a"), s.part("a"))

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.links == {}
        assert changed(ev, "links") == {link: None}
    return "a", {"id": link}, check


def sc_checkin_set(s: Session) -> Scenario:
    scores = {q: i for i, q in enumerate(model.SELF_QUALITIES)}

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.checkins["b"] == model.CheckIn("b", scores, "steady", shared=False,
                                                     at=s.now)
        assert changed(ev, "checkins")["b"]["scores"] == scores
    return "b", {"scores": scores, "note": "steady"}, check


def sc_checkin_reveal(s: Session) -> Scenario:
    s.do("a", "checkin.set", scores=SCORES_OK)

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.checkins["a"].shared is True
        assert changed(ev, "checkins")["a"]["shared"] is True
    return "a", {}, check


def sc_checkin_withdraw(s: Session) -> Scenario:
    s.do("a", "checkin.set", scores=SCORES_OK)
    s.do("a", "checkin.reveal")

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.checkins["a"].shared is False
        assert changed(ev, "checkins")["a"]["shared"] is False
    return "a", {}, check


def sc_need_set(s: Session) -> Scenario:
    part = s.part("a", "Lonely one", shared=True)

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.needs[part] == model.Need(part, "a", "to be seen", shared=False,
                                                order=s.room.seq)
        assert changed(ev, "needs")[part]["text"] == "to be seen"
    return "a", {"part": part, "text": "to be seen"}, check


def sc_need_reveal(s: Session) -> Scenario:
    part = s.part("b", shared=True)
    s.need("b", part, "quiet", shared=False)

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.needs[part].shared is True
        assert changed(ev, "needs")[part]["shared"] is True
        assert views.event_for(ev, "a")["changes"] == [
            ["needs", part, msgspec.to_builtins(s.room.needs[part])]]
    return "b", {"part": part}, check


def sc_need_withdraw(s: Session) -> Scenario:
    part = s.part("a", shared=True)
    s.need("a", part, "company")

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.needs[part].shared is False
        assert views.event_for(ev, "b")["changes"] == [["needs", part, None]]
    return "a", {"part": part}, check


def sc_need_self(s: Session) -> Scenario:
    part = s.part("b", shared=True)
    s.need("b", part, "rest", shared=False, self_offer=None)

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.needs[part].self_offer == "I can rest too"
        assert changed(ev, "needs")[part]["self_offer"] == "I can rest too"
    return "b", {"part": part, "text": " I can rest too "}, check


def sc_need_remove(s: Session) -> Scenario:
    part = s.part("b", shared=True)
    s.do("b", "need.set", part=part, text="rest")

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.needs == {}
        assert changed(ev, "needs") == {part: None}
    return "b", {"part": part}, check


def sc_request_make(s: Session) -> Scenario:
    part = s.part("a", shared=True)
    s.need("a", part, "reassurance")

    def check(s: Session, old: Room, ev: views.Event) -> None:
        assert s.room.needs[part].request == "say when you'll be back"
        assert changed(ev, "needs")[part]["request"] == "say when you'll be back"
    return "a", {"part": part, "text": "say when you'll be back"}, check


def sc_request_answer(s: Session) -> Scenario:
    part = s.part("a", shared=True)
    s.need("a", part, "reassurance")
    s.do("a", "request.make", part=part, text="check in with me")

    def check(s: Session, old: Room, ev: views.Event) -> None:
        need = s.room.needs[part]
        assert (need.answer, need.answer_note) == ("yes", "gladly")
        assert changed(ev, "needs")[part]["answer"] == "yes"
    return "b", {"part": part, "answer": "yes", "note": "gladly"}, check


SCENARIOS: dict[str, Callable[[Session], Scenario]] = {
    "stage.set": sc_stage_set,
    "agreement.add": sc_agreement_add,
    "agreement.edit": sc_agreement_edit,
    "agreement.remove": sc_agreement_remove,
    "agreement.ack": sc_agreement_ack,
    "spotlight.set": sc_spotlight_set,
    "freeze.set": sc_freeze_set,
    "pause.raise": sc_pause_raise,
    "pause.clear": sc_pause_clear,
    "overwhelm.raise": sc_overwhelm_raise,
    "overwhelm.ack": sc_overwhelm_ack,
    "overwhelm.clear": sc_overwhelm_clear,
    "ending.start": sc_ending_start,
    "ending.cancel": sc_ending_cancel,
    "ready.set": sc_ready_set,
    "turn.start": sc_turn_start,
    "turn.speak": sc_turn_speak,
    "turn.reflect": sc_turn_reflect,
    "turn.confirm": sc_turn_confirm,
    "turn.end": sc_turn_end,
    "uturn.ask": sc_uturn_ask,
    "uturn.answer": sc_uturn_answer,
    "uturn.share": sc_uturn_share,
    "note.add": sc_note_add,
    "note.edit": sc_note_edit,
    "note.remove": sc_note_remove,
    "partner.update": sc_partner_update,
    "part.add": sc_part_add,
    "part.edit": sc_part_edit,
    "part.move": sc_part_move,
    "part.remove": sc_part_remove,
    "part.details": sc_part_details,
    "part.accept": sc_part_accept,
    "scribe.part_add": sc_scribe_part_add,
    "scribe.part_edit": sc_scribe_part_edit,
    "scribe.link_add": sc_scribe_link_add,
    "part.reveal": sc_part_reveal,
    "part.reveal_all": sc_part_reveal_all,
    "part.withdraw": sc_part_withdraw,
    "part.tidy": sc_part_tidy,
    "part.blend": sc_part_blend,
    "link.add": sc_link_add,
    "part.feel": sc_part_feel,
    "link.edit": sc_link_edit,
    "link.remove": sc_link_remove,
    "checkin.set": sc_checkin_set,
    "checkin.reveal": sc_checkin_reveal,
    "checkin.withdraw": sc_checkin_withdraw,
    "need.set": sc_need_set,
    "need.self": sc_need_self,
    "need.remove": sc_need_remove,
    "need.reveal": sc_need_reveal,
    "need.withdraw": sc_need_withdraw,
    "request.make": sc_request_make,
    "request.answer": sc_request_answer,
}

FREEZABLE = tuple(op for op in ALL_OPS if OPERATIONS[op].freezable)
NOT_FREEZABLE = tuple(op for op in ALL_OPS if not OPERATIONS[op].freezable)
WRONG_ROLES = [
    (op, role) for op in ALL_OPS for role in model.ROLES if role not in OPERATIONS[op].roles
]
LOWER_STAGES = [
    (op, stage) for op in ALL_OPS for stage in range(1, OPERATIONS[op].stage)
]


def prepared(op: str, *, drafts: bool = True) -> tuple[Session, Role, dict[str, Any], Check]:
    session = Session(drafts=drafts, stage=OPERATIONS[op].stage, names=("Noor", "Tomas"))
    actor, args, check = SCENARIOS[op](session)
    return session, actor, args, check


def test_every_operation_has_a_scenario_and_a_schema() -> None:
    assert set(SCENARIOS) == set(OPERATIONS) == set(actions.COMMANDS)
    assert {rule.stage for rule in OPERATIONS.values()} == set(range(1, LAST_STAGE + 1))


@pytest.mark.parametrize("drafts", [True, False], ids=["drafts", "owner-only"])
@pytest.mark.parametrize("op", ALL_OPS)
def test_allowed(op: str, drafts: bool) -> None:
    s, actor, args, check = prepared(op, drafts=drafts)
    old, old_bytes = s.room, encoded(s.room)
    event = s.do(actor, op, **args)
    assert encoded(old) == old_bytes, "apply mutated the room it was given"
    assert s.room.seq == old.seq + 1
    assert event.changes, "an effective command must list what changed"
    assert event.at == s.now
    check(s, old, event)
    # The event's changes are exactly the difference between the two snapshots.
    for viewer in model.ROLES:
        view = normalised(views.snapshot_for(old, viewer))
        views.apply_event(view, normalised(views.event_for(event, viewer)))
        assert view == s.view(viewer)


@pytest.mark.parametrize(("op", "role"), WRONG_ROLES)
def test_refused_by_role(op: str, role: Role) -> None:
    s, actor, args, _ = prepared(op)
    error = s.refuse(role, op, Forbidden, **args)
    assert error.to_wire() == {"code": "forbidden", "message": error.message}
    s.do(actor, op, **args)  # the same command from the right role is fine


@pytest.mark.parametrize(("op", "stage"), LOWER_STAGES)
def test_refused_by_stage(op: str, stage: int) -> None:
    s, actor, args, _ = prepared(op)
    s.do("therapist", "stage.set", stage=stage, confirm=True)
    assert s.refuse(actor, op, StageLocked, **args).code == "stage_locked"
    s.do("therapist", "stage.set", stage=OPERATIONS[op].stage)
    s.do(actor, op, **args)  # unlocked again


@pytest.mark.parametrize("stage", range(1, LAST_STAGE + 1))
def test_a_capability_stays_unlocked_in_later_stages(stage: int) -> None:
    for op in ALL_OPS:
        if OPERATIONS[op].stage > stage:
            continue
        s, actor, args, _ = prepared(op)
        if op != "stage.set":
            s.do("therapist", "stage.set", stage=stage, confirm=True)
        s.do(actor, op, **args)


@pytest.mark.parametrize("op", FREEZABLE)
def test_refused_when_frozen(op: str) -> None:
    s, actor, args, _ = prepared(op)
    s.do("therapist", "freeze.set", frozen=True)
    assert s.refuse(actor, op, Frozen, **args).code == "frozen"
    s.do("therapist", "freeze.set", frozen=False)
    s.do(actor, op, **args)


@pytest.mark.parametrize("op", NOT_FREEZABLE)
def test_not_freezable_ops_work_on_a_frozen_board(op: str) -> None:
    s, actor, args, check = prepared(op)
    if op != "freeze.set":
        s.do("therapist", "freeze.set", frozen=True)
    old = s.room
    event = s.do(actor, op, **args)
    check(s, old, event)


def test_freezable_ops_are_exactly_the_partner_ops_from_stage_2() -> None:
    for op, rule in OPERATIONS.items():
        assert rule.freezable == (rule.roles == frozenset({"a", "b"}) and rule.stage >= 2), op


def test_role_is_checked_before_stage_and_frozen() -> None:
    s = Session()
    s.do("therapist", "freeze.set", frozen=True)
    s.refuse("therapist", "part.add", Forbidden, name="x")
    s.refuse("a", "part.add", StageLocked, name="x")
    s.do("therapist", "stage.set", stage=2)
    s.refuse("a", "part.add", Frozen, name="x")


def test_stage_is_checked_before_the_arguments() -> None:
    s = Session()
    s.refuse("a", "part.edit", StageLocked, id="does-not-exist")
    s.refuse("a", "need.set", StageLocked, part="does-not-exist", text="")


# ------------------------------------------------------------------ bad arguments

DROP = object()

# (op, overrides of the scenario's valid args, field named by the BadRequest)
BAD_ARGS: list[tuple[str, dict[str, Any], str]] = [
    ("stage.set", {"stage": DROP}, "stage"),
    ("stage.set", {"stage": "2"}, "stage"),
    ("stage.set", {"stage": True}, "stage"),
    ("stage.set", {"stage": 0}, "stage"),
    ("stage.set", {"stage": 6}, "stage"),
    ("stage.set", {"stage": 2.5}, "stage"),
    ("stage.set", {"confirm": "yes"}, "confirm"),
    ("agreement.add", {"text": DROP}, "text"),
    ("agreement.add", {"text": ""}, "text"),
    ("agreement.add", {"text": " \n\t "}, "text"),
    ("agreement.add", {"text": 5}, "text"),
    ("agreement.add", {"text": "one\x00two"}, "text"),
    ("agreement.add", {"text": "x" * 20_001}, "text"),
    ("agreement.add", {"extra": 1}, "args"),
    ("agreement.edit", {"id": DROP}, "id"),
    ("agreement.edit", {"id": ""}, "id"),
    ("agreement.edit", {"id": "i" * 65}, "id"),
    ("agreement.edit", {"text": "\x1b[31m"}, "text"),
    ("agreement.remove", {"id": None}, "id"),
    ("agreement.ack", {"id": 3}, "id"),
    ("spotlight.set", {"part": ""}, "part"),
    ("spotlight.set", {"part": ["x"]}, "part"),
    ("freeze.set", {"frozen": DROP}, "frozen"),
    ("freeze.set", {"frozen": "yes"}, "frozen"),
    ("freeze.set", {"frozen": 1}, "frozen"),
    ("pause.raise", {"by": "a"}, "args"),
    ("pause.clear", {"now": True}, "args"),
    ("pause.clear", {"partner": "therapist"}, "partner"),
    ("overwhelm.ack", {"partner": "c"}, "partner"),
    ("overwhelm.ack", {"partner": DROP}, "partner"),
    ("ending.start", {"seconds": 60}, "args"),
    ("ending.cancel", {"now": True}, "args"),
    ("overwhelm.raise", {"level": 3}, "args"),
    ("overwhelm.clear", {"partner": "c"}, "partner"),
    ("overwhelm.clear", {"partner": "therapist"}, "partner"),
    ("overwhelm.clear", {"partner": DROP}, "partner"),
    ("ready.set", {"ready": "no"}, "ready"),
    ("turn.start", {"speaker": "therapist"}, "speaker"),
    ("turn.speak", {"text": ""}, "text"),
    ("turn.speak", {"part": 3}, "part"),
    ("turn.reflect", {"text": DROP}, "text"),
    ("turn.confirm", {"heard": "yes"}, "heard"),
    ("turn.confirm", {"heard": True, "correction": "no"}, "correction"),
    ("turn.end", {"swap": 1}, "swap"),
    ("uturn.ask", {"partner": DROP}, "partner"),
    ("uturn.ask", {"prompt": "\x00"}, "prompt"),
    ("uturn.answer", {"text": " "}, "text"),
    ("uturn.share", {"shared": "no"}, "shared"),
    ("note.add", {"text": None}, "text"),
    ("note.add", {"text": ""}, "text"),
    ("note.edit", {"text": DROP}, "text"),
    ("note.edit", {"text": "bell\x07"}, "text"),
    ("note.remove", {"id": DROP}, "id"),
    ("partner.update", {"partner": DROP}, "partner"),
    ("partner.update", {"color": "red"}, "color"),
    ("partner.update", {"color": "#12345"}, "color"),
    ("partner.update", {"color": "#1234567"}, "color"),
    ("partner.update", {"name": ""}, "name"),
    ("partner.update", {"name": "Jo\nAnn"}, "name"),
    ("part.add", {"name": DROP}, "name"),
    ("part.add", {"name": "   "}, "name"),
    ("part.add", {"name": "two\nlines"}, "name"),
    ("part.add", {"kind": "boss"}, "kind"),
    ("part.add", {"x": 1.5}, "x"),
    ("part.add", {"y": -0.01}, "y"),
    ("part.add", {"x": float("nan")}, "x"),
    ("part.add", {"y": float("inf")}, "y"),
    ("part.add", {"x": "0.5"}, "x"),
    ("part.add", {"shared": True}, "args"),
    ("part.edit", {"kind": "protector"}, "kind"),
    ("part.edit", {"name": "tab\there"}, "name"),
    ("part.edit", {"id": DROP}, "id"),
    ("part.move", {"y": DROP}, "y"),
    ("part.move", {"x": float("-inf")}, "x"),
    ("part.move", {"x": None}, "x"),
    ("part.remove", {"id": DROP}, "id"),
    ("part.reveal", {"id": ["x"]}, "id"),
    ("part.reveal", {"to": "b"}, "to"),
    ("part.reveal", {"confirm": "yes"}, "confirm"),
    ("part.details", {"job": 3}, "job"),
    ("part.accept", {"id": None}, "id"),
    ("scribe.part_add", {"partner": "therapist"}, "partner"),
    ("scribe.part_add", {"name": ""}, "name"),
    ("scribe.part_edit", {"burden": "too much"}, "burden"),
    ("scribe.link_add", {"kind": "hates"}, "kind"),
    ("part.details", {"fear": "\x00"}, "fear"),
    ("part.details", {"name": "x"}, "args"),
    ("part.withdraw", {"to": "everyone"}, "to"),
    ("part.reveal_all", {"all": True}, "args"),
    ("part.tidy", {"all": True}, "args"),
    ("part.withdraw", {"id": {}}, "id"),
    ("part.blend", {"level": 11}, "level"),
    ("part.blend", {"level": -1}, "level"),
    ("part.blend", {"level": 5.5}, "level"),
    ("part.blend", {"level": DROP}, "level"),
    ("link.add", {"kind": "loves"}, "kind"),
    ("link.add", {"kind": DROP}, "kind"),
    ("link.add", {"source": DROP}, "source"),
    ("link.add", {"target": ""}, "target"),
    ("link.add", {"label": "two\nlines"}, "label"),
    ("part.feel", {"qualities": {"joy": True}}, "qualities"),
    ("part.feel", {"qualities": {}, "other": " "}, "qualities"),
    ("part.feel", {"qualities": ["calm"]}, "qualities"),
    ("part.feel", {"other": "a\x00"}, "other"),
    ("part.feel", {"new_part": "Fixer", "new_link": "protects"}, "new_link"),
    ("part.feel", {"new_part": "Fixer\nPart"}, "new_part"),
    ("part.feel", {"new_kind": "self"}, "new_kind"),
    ("link.edit", {"label": DROP}, "label"),
    ("link.edit", {"label": "tab\there"}, "label"),
    ("link.remove", {"id": DROP}, "id"),
    ("checkin.set", {"scores": DROP}, "scores"),
    ("checkin.set", {"scores": {q: 5 for q in model.SELF_QUALITIES[:7]}}, "scores"),
    ("checkin.set", {"scores": {**SCORES_OK, "joy": 5}}, "scores"),
    ("checkin.set", {"scores": {**SCORES_OK, "calm": 11}}, "scores"),
    ("checkin.set", {"scores": {**SCORES_OK, "calm": -1}}, "scores"),
    ("checkin.set", {"scores": [5] * 8}, "scores"),
    ("checkin.set", {"note": "\x00"}, "note"),
    ("checkin.set", {"note": 1}, "note"),
    ("checkin.reveal", {"now": 1}, "args"),
    ("checkin.withdraw", {"x": None}, "args"),
    ("need.set", {"text": DROP}, "text"),
    ("need.set", {"text": "  "}, "text"),
    ("need.set", {"part": ""}, "part"),
    ("need.self", {"text": ""}, "text"),
    ("need.self", {"part": DROP}, "part"),
    ("need.remove", {"part": DROP}, "part"),
    ("need.reveal", {"part": None}, "part"),
    ("need.withdraw", {"part": "p" * 65}, "part"),
    ("request.make", {"text": ""}, "text"),
    ("request.make", {"text": "\x7f"}, "text"),
    ("request.make", {"part": 7}, "part"),
    ("request.answer", {"answer": "maybe"}, "answer"),
    ("request.answer", {"answer": DROP}, "answer"),
    ("request.answer", {"note": "\x01"}, "note"),
]


def test_every_operation_has_bad_args_cases() -> None:
    assert {op for op, _, _ in BAD_ARGS} == set(OPERATIONS)


@pytest.mark.parametrize(("op", "overrides", "field"), BAD_ARGS,
                         ids=[f"{op}-{i}" for i, (op, _, _) in enumerate(BAD_ARGS)])
def test_bad_args(op: str, overrides: dict[str, Any], field: str) -> None:
    s, actor, args, _ = prepared(op)
    bad = {**args, **overrides}
    bad = {k: v for k, v in bad.items() if v is not DROP}
    error = s.refuse(actor, op, BadRequest, **bad)
    assert error.field == field
    assert error.to_wire() == {"code": "bad_request", "message": error.message, "field": field}
    s.do(actor, op, **args)  # the valid version goes through


def test_unknown_op_is_refused_before_anything() -> None:
    from rooms.errors import UnknownOp
    for op in ("part.delete", "", "PART.ADD", "stage.set "):
        with pytest.raises(UnknownOp):
            actions.parse_args(op, {})


# ------------------------------------------------------------------ not found


NOT_FOUND: list[tuple[str, Role, dict[str, Any], str]] = [
    ("agreement.edit", "therapist", {"id": "nope", "text": "x"}, "id"),
    ("agreement.remove", "therapist", {"id": "nope"}, "id"),
    ("agreement.ack", "a", {"id": "nope"}, "id"),
    ("spotlight.set", "therapist", {"part": "nope"}, "part"),
    ("overwhelm.ack", "therapist", {"partner": "a"}, "partner"),
    ("note.edit", "therapist", {"id": "nope", "text": "x"}, "id"),
    ("turn.end", "therapist", {}, "turn"),
    ("turn.speak", "a", {"text": "x"}, "turn"),
    ("uturn.answer", "a", {"id": "nope", "text": "x"}, "id"),
    ("uturn.share", "a", {"id": "nope"}, "id"),
    ("note.remove", "therapist", {"id": "nope"}, "id"),
    ("part.edit", "a", {"id": "nope", "name": "x"}, "id"),
    ("part.move", "a", {"id": "nope", "x": 0, "y": 0}, "id"),
    ("part.remove", "a", {"id": "nope"}, "id"),
    ("part.reveal", "a", {"id": "nope"}, "id"),
    ("part.withdraw", "a", {"id": "nope"}, "id"),
    ("part.blend", "a", {"id": "nope", "level": 1}, "id"),
    ("part.details", "a", {"id": "nope", "job": "x"}, "id"),
    ("part.accept", "a", {"id": "nope"}, "id"),
    ("scribe.part_edit", "therapist", {"id": "nope", "name": "x"}, "id"),
    ("scribe.link_add", "therapist", {"kind": "protects", "source": "nope", "target": "x"},
     "source"),
    ("link.edit", "a", {"id": "nope", "label": "x"}, "id"),
    ("part.feel", "a", {"id": "nope", "other": "x"}, "id"),
    ("link.add", "a", {"kind": "protects", "source": "nope", "target": "nope"}, "source"),
    ("link.remove", "a", {"id": "nope"}, "id"),
    ("checkin.reveal", "a", {}, "checkin"),
    ("checkin.withdraw", "b", {}, "checkin"),
    ("need.set", "a", {"part": "nope", "text": "x"}, "part"),
    ("need.self", "a", {"part": "nope", "text": "x"}, "part"),
    ("need.remove", "a", {"part": "nope"}, "part"),
    ("need.reveal", "a", {"part": "nope"}, "part"),
    ("need.withdraw", "b", {"part": "nope"}, "part"),
    ("request.make", "a", {"part": "nope", "text": "x"}, "part"),
    ("request.answer", "b", {"part": "nope", "answer": "yes"}, "part"),
]


@pytest.mark.parametrize(("op", "actor", "args", "field"), NOT_FOUND,
                         ids=[row[0] for row in NOT_FOUND])
def test_unknown_ids_are_not_found(op: str, actor: Role, args: dict[str, Any], field: str) -> None:
    s = Session(stage=LAST_STAGE)
    s.part("a", "decoy", shared=True)
    assert s.refuse(actor, op, NotFound, **args).field == field


# ------------------------------------------------------------------ limits


def test_parts_per_partner_limit() -> None:
    s = Session(stage=2, limits=Limits(parts_per_partner=2))
    s.part("a")
    s.part("a", shared=True)
    assert s.refuse("a", "part.add", LimitExceeded, name="third").field == "parts"
    s.part("b")  # the limit is per partner
    s.do("a", "part.remove", id=next(iter(s.room.parts)))
    s.part("a")  # room again after a removal


def test_name_length_limit() -> None:
    s = Session(stage=2, limits=Limits(name_length=5))
    part = s.part("a", " abcde ")  # counted after trimming
    assert s.room.parts[part].name == "abcde"
    assert s.refuse("a", "part.add", LimitExceeded, name="abcdef").field == "name"
    assert s.refuse("a", "part.edit", LimitExceeded, id=part, name="abcdef").field == "name"


@pytest.mark.parametrize(("op", "field"), [
    ("agreement.add", "text"), ("agreement.edit", "text"), ("note.add", "text"),
    ("note.edit", "text"), ("checkin.set", "note"), ("need.set", "text"),
    ("request.make", "text"), ("request.answer", "note"), ("need.self", "text"),
])
def test_text_length_limit(op: str, field: str) -> None:
    s = Session(stage=OPERATIONS[op].stage, limits=Limits(text_length=20))
    actor, args, _ = SCENARIOS[op](s)
    error = s.refuse(actor, op, LimitExceeded, **{**args, field: "x" * 21})
    assert error.field == field
    assert error.to_wire()["code"] == "limit"
    s.do(actor, op, **{**args, field: "y" * 20})


def test_agreements_limit() -> None:
    s = Session(limits=Limits(agreements=2))
    first = s.agreement("one")
    s.agreement("two")
    assert s.refuse("therapist", "agreement.add", LimitExceeded, text="three").field \
        == "agreements"
    s.do("therapist", "agreement.remove", id=first)
    s.agreement("three")


def test_links_per_partner_limit() -> None:
    s = Session(stage=3, limits=Limits(links_per_partner=1))
    one, two, three = s.part("a"), s.part("a"), s.part("a")
    s.link("a", "protects", one, two)
    error = s.refuse("a", "link.add", LimitExceeded, kind="protects", source=two, target=three)
    assert error.field == "links"
    b1, b2 = s.part("b"), s.part("b")
    s.link("b", "protects", b1, b2)  # per partner


def test_notes_limit() -> None:
    s = Session(limits=Limits(notes=2))
    s.note("one")
    s.note("two")
    assert s.refuse("therapist", "note.add", LimitExceeded, text="three").field == "notes"


def test_display_name_limit() -> None:
    s = Session(limits=Limits(display_name_length=4))
    s.do("therapist", "partner.update", partner="b", name="Joan")
    assert s.refuse("therapist", "partner.update", LimitExceeded, partner="b",
                    name="Joann").field == "name"
    with pytest.raises(LimitExceeded):
        machine.new_room(
            room_id="r", epoch="e", now=0.0, therapist_sees_drafts=True,
            limits=Limits(display_name_length=4),
            partners={"a": PartnerInfo("Maximilian", "#000000"), "b": PartnerInfo("Li", "#ffffff")},
        )


def test_new_room_needs_both_partners_and_five_stages() -> None:
    with pytest.raises(BadRequest) as info:
        machine.new_room(room_id="r", epoch="e", now=0.0, therapist_sees_drafts=False,
                         partners={"a": PartnerInfo("Ana", "#000000")})
    assert info.value.field == "partners"
    from rooms.stages import DEFAULT_STAGES
    with pytest.raises(BadRequest) as info:
        machine.new_room(room_id="r", epoch="e", now=0.0, therapist_sees_drafts=False,
                         stages=DEFAULT_STAGES[:4],
                         partners={"a": PartnerInfo("Ana", "#000000"),
                                   "b": PartnerInfo("Bo", "#000000")})
    assert info.value.field == "stages"


def test_new_room_starts_empty_at_stage_one() -> None:
    s = Session(names=("Alex", "Sam"), drafts=False)
    room = s.room
    assert (room.seq, room.stage, room.board.frozen, room.board.pauses) == (0, 1, False, ())
    assert room.board.ending is None
    assert room.board.history == (model.StageChange(1, 0, 1_000.0),)
    assert room.settings.therapist_sees_drafts is False
    assert list(room.partners) == ["a", "b"]
    assert room.partners["b"].name == "Sam"
    assert (room.parts, room.links, room.notes, room.agreements) == ({}, {}, {}, {})


# ------------------------------------------------------------------ domain rules

OWN_PART_OPS: list[tuple[str, dict[str, Any]]] = [
    ("part.edit", {"name": "mine now"}),
    ("part.move", {"x": 0.1, "y": 0.1}),
    ("part.remove", {}),
    ("part.reveal", {}),
    ("part.withdraw", {}),
    ("part.blend", {"level": 3}),
    ("part.details", {"job": "keeps me safe"}),
    ("part.feel", {"qualities": {"calm": True}}),
    ("part.accept", {}),
]


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "private"])
@pytest.mark.parametrize(("op", "extra"), OWN_PART_OPS, ids=[op for op, _ in OWN_PART_OPS])
def test_partners_only_touch_their_own_parts(op: str, extra: dict[str, Any],
                                             shared: bool) -> None:
    s = Session(stage=3)
    theirs = s.part("a", "Hers", shared=shared)
    error = s.refuse("b", op, NotFound, id=theirs, **extra)
    # A private part of the other partner answers exactly like an id that never existed.
    missing = s.refuse("b", op, NotFound, id="never-existed", **extra)
    assert error.to_wire() == missing.to_wire() == {
        "code": "not_found", "message": error.message, "field": "id"}


def test_need_only_for_own_shared_part() -> None:
    s = Session(stage=5)
    theirs = s.part("a", shared=True)
    hidden = s.part("a")
    assert s.refuse("b", "need.set", NotFound, part=theirs, text="x").field == "part"
    assert s.refuse("b", "need.set", NotFound, part=hidden, text="x").field == "part"
    draft = s.part("b")
    assert s.refuse("b", "need.set", BadRequest, part=draft, text="x").field == "part"
    s.do("a", "need.set", part=theirs, text="x")
    for _ in ("while private", "once shared"):
        # The other partner's need answers like one that never existed.
        for op, args in (("need.remove", {}), ("need.reveal", {}), ("need.withdraw", {}),
                         ("request.make", {"text": "x"})):
            error = s.refuse("b", op, NotFound, part=theirs, **args)
            assert error.to_wire() == s.refuse("b", op, NotFound, part="never", **args).to_wire()
            assert error.field == "part"
        s.do("a", "need.reveal", part=theirs)


@pytest.mark.parametrize("drafts", [True, False], ids=["drafts", "owner-only"])
def test_a_need_is_private_until_its_owner_shares_it(drafts: bool) -> None:
    s = Session(stage=5, drafts=drafts)
    part = s.part("a", "The Worrier", shared=True)
    event = s.do("a", "need.set", part=part, text="to hear it will be all right")
    assert part in s.view("a")["colls"]["needs"]
    assert (part in s.view("therapist")["colls"]["needs"]) is drafts
    assert s.view("b")["colls"]["needs"] == {}
    assert views.event_for(event, "b") == {"seq": event.seq, "hidden": True, "owner": "a",
                                           "counts": views.counts_for(event.counts, "b")}
    # Like a part not yet shared, only that it exists is public.
    assert s.view("b")["counts"]["a"]["needs"] == 1
    # A request needs a shared need; the refusal names the part, like the other need refusals.
    assert s.refuse("a", "request.make", BadRequest, part=part, text="ask").field == "part"
    assert s.refuse("b", "request.answer", NotFound, part=part, answer="yes").field == "part"

    event = s.do("a", "need.reveal", part=part)
    assert changed(event, "needs")[part]["shared"] is True
    assert s.view("b")["colls"]["needs"][part]["text"] == "to hear it will be all right"
    assert s.view("b")["counts"]["a"]["needs"] == 0
    assert s.do("a", "need.reveal", part=part).changes == ()  # shared already
    s.do("a", "need.self", part=part, text="I can sit with the worry")
    s.do("a", "request.make", part=part, text="tell me it will be all right")
    s.do("b", "request.answer", part=part, answer="not_yet", note="soon")

    # Withdrawn, the need leaves the other partner's board with its request and answer,
    # and answering it is refused like a need that never existed.
    event = s.do("a", "need.withdraw", part=part)
    assert views.event_for(event, "b")["changes"] == [["needs", part, None]]
    assert (part in s.view("therapist")["colls"]["needs"]) is drafts
    withdrawn = s.refuse("b", "request.answer", NotFound, part=part, answer="yes")
    missing = s.refuse("b", "request.answer", NotFound, part="never", answer="yes")
    assert withdrawn.to_wire() == missing.to_wire()
    assert s.refuse("a", "request.make", BadRequest, part=part, text="again").field == "part"
    assert s.do("a", "need.withdraw", part=part).changes == ()  # private already
    # Shared again, it comes back whole: request and answer included.
    event = s.do("a", "need.reveal", part=part)
    need = changed(event, "needs")[part]
    assert (need["request"], need["answer"], need["answer_note"]) == (
        "tell me it will be all right", "not_yet", "soon")
    # Rewriting a shared need keeps it shared.
    s.do("a", "need.set", part=part, text="to hear it, now and then")
    assert s.view("b")["colls"]["needs"][part]["text"] == "to hear it, now and then"


def test_a_need_of_a_withdrawn_part_cannot_be_shared() -> None:
    s = Session(stage=5)
    part = s.part("b", shared=True)
    s.need("b", part, shared=False)
    s.do("b", "part.withdraw", id=part)
    assert s.refuse("b", "need.reveal", BadRequest, part=part).field == "part"
    s.do("b", "part.reveal", id=part)
    s.do("b", "need.reveal", part=part)
    s.do("b", "part.withdraw", id=part)
    assert s.view("a")["colls"]["needs"] == {}
    s.do("b", "need.withdraw", part=part)  # taking it back is always possible


def test_link_source_must_be_own_part() -> None:
    s = Session(stage=3)
    theirs, mine = s.part("a", shared=True), s.part("b", shared=True)
    for kind in ("protects", "reacts_to"):
        error = s.refuse("b", "link.add", NotFound, kind=kind, source=theirs, target=mine)
        assert error.field == "source"


def test_protects_only_between_own_parts() -> None:
    s = Session(stage=3)
    guard, young = s.part("a", "Guard"), s.part("a", "Young")
    other = s.part("b", "Other", shared=True)
    assert s.refuse("a", "link.add", BadRequest, kind="protects", source=guard,
                    target=other).field == "target"
    assert s.refuse("a", "link.add", BadRequest, kind="protects", source=guard,
                    target=guard).field == "target"
    link = s.link("a", "protects", guard, young)  # private parts are fine for their owner
    assert s.room.links[link].owner == "a"
    assert s.refuse("a", "link.add", BadRequest, kind="protects", source=guard,
                    target=young).field == "target"  # no duplicates
    s.link("a", "protects", young, guard)  # the other direction is another link


def test_reacts_to_an_own_part_or_the_other_partners_shared_part() -> None:
    s = Session(stage=3)
    mine, mine2 = s.part("a", "Alarm"), s.part("a", "Planner", shared=True)
    private_other = s.part("b", "Draft")
    shared_other = s.part("b", "Quiet", shared=True)
    s.link("a", "reacts_to", mine, mine2)  # one part of a person reacting to another
    missing = s.refuse("a", "link.add", NotFound, kind="reacts_to", source=mine,
                       target="never-existed")
    private = s.refuse("a", "link.add", NotFound, kind="reacts_to", source=mine,
                       target=private_other)
    assert private.to_wire() == missing.to_wire()
    assert private.field == "target"
    link = s.link("a", "reacts_to", mine, shared_other)
    assert s.room.links[link] == model.Link(link, "a", "reacts_to", mine, shared_other,
                                            order=s.room.seq)


def test_a_link_onto_a_withdrawn_part_is_not_found_for_its_owner_too() -> None:
    s = Session(stage=3, drafts=False)
    mine, theirs = s.part("a", "Alarm"), s.part("b", "Quiet", shared=True)
    link = s.link("a", "reacts_to", mine, theirs)
    s.do("b", "part.withdraw", id=theirs)
    assert link not in s.view("a")["colls"]["links"]
    withdrawn = s.refuse("a", "link.remove", NotFound, id=link)
    assert withdrawn.to_wire() == s.refuse("a", "link.remove", NotFound, id="gone").to_wire()
    s.do("b", "part.reveal", id=theirs)
    assert link in s.view("a")["colls"]["links"]
    s.do("a", "link.remove", id=link)


def test_link_remove_only_own_links() -> None:
    s = Session(stage=3)
    x, y = s.part("a", shared=True), s.part("a", shared=True)
    link = s.link("a", "protects", x, y)
    assert s.refuse("b", "link.remove", NotFound, id=link).field == "id"
    s.do("a", "link.remove", id=link)


@pytest.mark.parametrize("drafts", [True, False])
def test_spotlight_only_a_shared_part(drafts: bool) -> None:
    s = Session(stage=2, drafts=drafts)
    draft = s.part("a", "Draft")
    missing = s.refuse("therapist", "spotlight.set", NotFound, part="never-existed")
    assert s.refuse("therapist", "spotlight.set", NotFound, part=draft).to_wire() \
        == missing.to_wire()
    s.do("a", "part.reveal", id=draft)
    s.do("therapist", "spotlight.set", part=draft)
    assert s.room.board.spotlight == draft
    s.do("therapist", "spotlight.set", part=None)
    assert s.room.board.spotlight is None


def test_spotlight_goes_out_when_the_part_is_withdrawn() -> None:
    s = Session(stage=2)
    part = s.part("b", shared=True)
    s.do("therapist", "spotlight.set", part=part)
    event = s.do("b", "part.withdraw", id=part)
    assert s.room.board.spotlight is None
    assert changed(event, "room")["board"]["spotlight"] is None


def test_moving_back_a_stage_needs_confirm() -> None:
    s = Session(stage=4)
    error = s.refuse("therapist", "stage.set", BadRequest, stage=3)
    assert error.field == "confirm"
    s.refuse("therapist", "stage.set", BadRequest, stage=1, confirm=False)
    s.do("therapist", "stage.set", stage=5)  # forward needs no confirming
    s.do("therapist", "stage.set", stage=2, confirm=True)
    assert [change.stage for change in s.room.board.history] == [1, 4, 5, 2]


def test_setting_the_same_stage_changes_nothing_visible() -> None:
    s = Session(stage=2)
    s.do("a", "ready.set")
    history = s.room.board.history
    event = s.do("therapist", "stage.set", stage=2)
    assert event.changes == ()
    assert s.room.board.history == history
    assert s.room.ready == {"a": True}


def test_ready_marks_reset_when_the_stage_changes() -> None:
    s = Session(stage=2)
    s.do("a", "ready.set")
    s.do("b", "ready.set", ready=True)
    assert s.room.ready == {"a": True, "b": True}
    s.do("b", "ready.set", ready=False)
    assert s.room.ready == {"a": True}
    s.do("b", "ready.set")
    event = s.do("therapist", "stage.set", stage=3)
    assert s.room.ready == {}
    assert changed(event, "ready") == {"a": None, "b": None}
    s.do("a", "ready.set")
    s.do("therapist", "stage.set", stage=2, confirm=True)
    assert s.room.ready == {}


def test_ready_is_seen_by_the_therapist_and_that_partner_only() -> None:
    s = Session()
    event = s.do("a", "ready.set")
    assert s.view("therapist")["colls"]["ready"] == {"a": True}
    assert s.view("a")["colls"]["ready"] == {"a": True}
    assert s.view("b")["colls"]["ready"] == {}
    assert views.event_for(event, "b")["hidden"] is True


@pytest.mark.parametrize("drafts", [True, False])
def test_withdraw_hides_needs_and_links_from_the_other_partner(drafts: bool) -> None:
    s = Session(stage=5, drafts=drafts)
    left = s.part("a", "Left-behind one", shared=True)
    s.need("a", left, "to know you come back")
    s.do("a", "request.make", part=left, text="tell me when")
    quiet = s.part("b", "Quiet one", shared=True)
    link = s.link("b", "reacts_to", quiet, left)
    assert link in s.view("b")["colls"]["links"]
    assert left in s.view("b")["colls"]["needs"]

    event = s.do("a", "part.withdraw", id=left)
    seen = views.event_for(event, "b")
    assert sorted(map(tuple, seen["changes"])) == sorted(
        [("parts", left, None), ("needs", left, None), ("links", link, None)])
    view_b = s.view("b")
    assert left not in view_b["colls"]["parts"]
    assert view_b["colls"]["needs"] == {}
    assert view_b["colls"]["links"] == {}
    assert view_b["counts"]["a"]["parts"] == 1
    # The owner keeps seeing their part and its need; the therapist does when drafts are on.
    assert left in s.view("a")["colls"]["needs"]
    assert (left in s.view("therapist")["colls"]["needs"]) is drafts
    # b cannot answer a request of a part that is no longer shared, and the refusal is
    # the same as for a part that never existed: it does not confirm the part is still there.
    withdrawn = s.refuse("b", "request.answer", NotFound, part=left, answer="yes")
    missing = s.refuse("b", "request.answer", NotFound, part="never-existed", answer="yes")
    assert withdrawn.to_wire() == missing.to_wire()
    s.do("a", "part.reveal", id=left)
    assert link in s.view("b")["colls"]["links"]
    s.do("b", "request.answer", part=left, answer="yes")


def test_removing_a_part_removes_its_links_needs_and_spotlight() -> None:
    s = Session(stage=5)
    core = s.part("a", "Core", shared=True)
    keeper = s.part("a", "Keeper", shared=True)
    other = s.part("b", "Other", shared=True)
    protects = s.link("a", "protects", keeper, core)
    reacts = s.link("b", "reacts_to", other, core)
    unrelated = s.link("a", "reacts_to", keeper, other)
    s.do("a", "need.set", part=core, text="safety")
    s.do("a", "need.set", part=keeper, text="rest")
    s.do("therapist", "spotlight.set", part=core)

    event = s.do("a", "part.remove", id=core)
    assert core not in s.room.parts
    assert set(s.room.links) == {unrelated}
    assert set(s.room.needs) == {keeper}
    assert s.room.board.spotlight is None
    assert changed(event, "links") == {protects: None, reacts: None}
    assert changed(event, "needs") == {core: None}
    for viewer in model.ROLES:
        assert core not in s.view(viewer)["colls"]["parts"]


def test_agreement_edit_resets_acks_only_when_the_text_changes() -> None:
    s = Session()
    agreement = s.agreement("Either of us can pause.")
    s.do("a", "agreement.ack", id=agreement)
    s.do("b", "agreement.ack", id=agreement)
    s.do("b", "agreement.ack", id=agreement)  # twice is once
    assert s.room.agreements[agreement].acks == ("a", "b")
    s.do("therapist", "agreement.edit", id=agreement, text=" Either of us can pause. ")
    assert s.room.agreements[agreement].acks == ("a", "b")
    s.do("therapist", "agreement.edit", id=agreement, text="Anyone can pause.")
    assert s.room.agreements[agreement].acks == ()
    assert s.view("b")["colls"]["agreements"][agreement]["acks"] == []


def test_request_answer_only_by_the_other_partner() -> None:
    s = Session(stage=5)
    part = s.part("b", shared=True)
    s.need("b", part, "space")
    assert s.refuse("a", "request.answer", NotFound, part=part, answer="yes").field == "part"
    s.do("b", "request.make", part=part, text="let me have an hour")
    assert s.refuse("b", "request.answer", NotFound, part=part, answer="yes").field == "part"
    s.refuse("therapist", "request.answer", Forbidden, part=part, answer="yes")
    s.do("a", "request.answer", part=part, answer="lets_talk", note="how long?")
    assert (s.room.needs[part].answer, s.room.needs[part].answer_note) == ("lets_talk", "how long?")
    # A new request is a new question.
    s.do("b", "request.make", part=part, text="half an hour")
    need = s.room.needs[part]
    assert (need.request, need.answer, need.answer_note) == ("half an hour", None, "")
    # Editing the need keeps the request and its answer.
    s.do("a", "request.answer", part=part, answer="not_yet")
    s.do("b", "need.set", part=part, text="quiet")
    assert (s.room.needs[part].text, s.room.needs[part].answer) == ("quiet", "not_yet")


def test_checkin_needs_all_eight_scores() -> None:
    s = Session(stage=4)
    for missing in model.SELF_QUALITIES:
        scores = {q: 3 for q in model.SELF_QUALITIES if q != missing}
        assert s.refuse("a", "checkin.set", BadRequest, scores=scores).field == "scores"
    s.refuse("a", "checkin.set", BadRequest, scores={})
    s.do("a", "checkin.set", scores={q: 10 for q in model.SELF_QUALITIES})
    s.do("a", "checkin.set", scores={q: 0 for q in reversed(model.SELF_QUALITIES)})
    checkin = s.room.checkins["a"]
    assert list(checkin.scores) == list(model.SELF_QUALITIES)
    assert set(checkin.scores.values()) == {0}


def test_checkin_stays_shared_when_rewritten() -> None:
    s = Session(stage=4, drafts=False)
    s.do("b", "checkin.set", scores=SCORES_OK, note="first")
    assert "b" not in s.view("a")["colls"]["checkins"]
    assert "b" not in s.view("therapist")["colls"]["checkins"]
    assert s.view("a")["counts"]["b"]["checkin"] == 1
    s.do("b", "checkin.reveal")
    s.do("b", "checkin.set", scores=SCORES_OK, note="second")
    assert s.view("a")["colls"]["checkins"]["b"]["note"] == "second"
    s.do("b", "checkin.withdraw")
    assert "b" not in s.view("a")["colls"]["checkins"]


def test_both_partners_pauses_are_kept_and_cleared_one_or_all() -> None:
    s = Session()
    s.do("b", "pause.raise")
    b_at = s.now
    s.do("a", "pause.raise")
    a_at = s.now
    s.do("a", "pause.raise")  # raising again keeps the first moment
    both = [{"by": "b", "at": b_at}, {"by": "a", "at": a_at}]
    for viewer in model.ROLES:
        assert s.view(viewer)["colls"]["room"]["board"]["pauses"] == both
    event = s.do("therapist", "pause.clear", partner="b")
    assert s.room.board.pauses == (model.Pause("a", a_at),)
    assert changed(event, "room")["board"]["pauses"] == [{"by": "a", "at": a_at}]
    # Clearing a pause that is not up changes nothing; every viewer gets a placeholder.
    event = s.do("therapist", "pause.clear", partner="b")
    assert event.changes == ()
    s.do("b", "pause.raise")
    s.do("therapist", "pause.clear")
    assert s.room.board.pauses == ()


def test_overwhelm_is_quiet() -> None:
    s = Session()
    event = s.do("b", "overwhelm.raise")
    assert set(s.view("therapist")["colls"]["overwhelm"]) == {"b"}
    assert set(s.view("b")["colls"]["overwhelm"]) == {"b"}
    assert s.view("a")["colls"]["overwhelm"] == {}
    assert views.event_for(event, "a") == {
        "seq": event.seq, "hidden": True, "owner": "b",
        "counts": views.counts_for(event.counts, "a")}
    # The acknowledgement reaches the partner who raised it, and only them.
    event = s.do("therapist", "overwhelm.ack", partner="b")
    assert views.event_for(event, "a")["hidden"] is True
    seen_by_b = normalised(views.event_for(event, "b"))["changes"]
    assert seen_by_b == [["overwhelm", "b", {"by": "b", "at": s.now - 1, "seen_at": s.now}]]


def test_overwhelm_is_seen_only_once_acknowledged_and_clearing_is_separate() -> None:
    s = Session()
    s.do("a", "overwhelm.raise")
    raised = s.now
    assert s.view("a")["colls"]["overwhelm"]["a"]["seen_at"] is None
    s.do("therapist", "overwhelm.ack", partner="a")
    seen = s.now
    assert s.view("a")["colls"]["overwhelm"]["a"] == {"by": "a", "at": raised, "seen_at": seen}
    # Acknowledging or raising again changes nothing: the first moments stay.
    assert s.do("therapist", "overwhelm.ack", partner="a").changes == ()
    assert s.do("a", "overwhelm.raise").changes == ()
    assert s.room.overwhelm["a"] == model.Overwhelm("a", raised, seen)
    s.do("therapist", "overwhelm.clear", partner="a")
    assert s.view("a")["colls"]["overwhelm"] == {}
    # A signal raised anew has not been seen yet.
    s.do("a", "overwhelm.raise")
    assert s.room.overwhelm["a"].seen_at is None
    # Nothing to acknowledge for a partner who raised nothing.
    assert s.refuse("therapist", "overwhelm.ack", NotFound, partner="b").field == "partner"


def test_the_ending_moment_is_shown_to_everyone_until_cancelled() -> None:
    s = Session(stage=3)
    s.do("therapist", "ending.start")
    started = s.now
    for viewer in model.ROLES:
        assert s.view(viewer)["colls"]["room"]["board"]["ending"] == {"at": started}
    assert s.do("therapist", "ending.start").changes == ()  # the moment keeps its start
    s.part("a", "still working")  # the board goes on working meanwhile
    s.do("therapist", "ending.cancel")
    assert s.room.board.ending is None
    assert s.do("therapist", "ending.cancel").changes == ()
    for partner in model.PARTNERS:
        s.refuse(partner, "ending.start", Forbidden)
        s.refuse(partner, "ending.cancel", Forbidden)


def test_notes_are_the_therapists_alone() -> None:
    s = Session(stage=5)
    note = s.note("watch the cycle")
    s.do("therapist", "note.edit", id=note, text="cycle seen")
    for viewer in ("a", "b"):
        assert s.view(viewer)["colls"]["notes"] == {}
    assert s.view("therapist")["colls"]["notes"][note]["text"] == "cycle seen"


def test_reveal_all_and_counts() -> None:
    s = Session(stage=2, drafts=False, names=("Alex", "Sam"))
    planner = s.part("a", "The Planner", kind="manager")
    s.part("a", "The Alarm", kind="firefighter")
    quiet = s.part("b", "The Quiet One", kind="firefighter")
    assert s.view("b")["counts"] == {"a": {"parts": 2, "checkin": 0, "needs": 0},
                                     "b": {"parts": 1, "checkin": 0, "needs": 0}}
    assert list(s.view("b")["colls"]["parts"]) == [quiet]
    assert s.view("therapist")["colls"]["parts"] == {}
    s.do("a", "part.reveal", id=planner)
    s.do("a", "part.reveal_all")
    assert s.view("b")["counts"]["a"]["parts"] == 0
    assert {p["name"] for p in s.view("b")["colls"]["parts"].values()} == {
        "The Planner", "The Alarm", "The Quiet One"}
    assert s.view("a")["counts"]["b"]["parts"] == 1


def test_therapist_updates_partner_name_and_color_separately() -> None:
    s = Session()
    s.do("therapist", "partner.update", partner="b", color="#ABCDEF")
    assert s.room.partners["b"] == PartnerInfo("Ola", "#abcdef")  # colours are stored lowercased
    s.do("therapist", "partner.update", partner="b", name="Ola M.")
    assert s.room.partners["b"] == PartnerInfo("Ola M.", "#abcdef")


def test_error_messages_never_echo_the_input() -> None:
    canary = "CANARY-7f3a"
    s = Session(stage=5, limits=Limits(text_length=20, name_length=20))
    attempts: list[tuple[Role, str, dict[str, Any]]] = [
        ("a", "part.add", {"name": canary * 3}),
        ("a", "part.add", {"name": canary + "\nmore"}),
        ("a", "part.add", {"name": canary, "kind": canary}),
        ("a", "part.edit", {"id": canary, "name": "x"}),
        ("therapist", "agreement.add", {"text": canary * 3}),
        ("therapist", "agreement.edit", {"id": canary, "text": canary}),
        ("therapist", "spotlight.set", {"part": canary}),
        ("therapist", "partner.update", {"partner": "a", "color": canary}),
        ("a", "link.add", {"kind": canary, "source": canary, "target": canary}),
        ("a", "checkin.set", {"scores": {canary: 1}, "note": canary}),
        ("b", "request.answer", {"part": canary, "answer": canary}),
        ("a", "pause.raise", {canary: canary}),
        ("a", "part.add", {"name": "x", "at `$." + canary: 1}),
    ]
    for actor, op, args in attempts:
        with pytest.raises(RoomError) as info:
            machine.apply(s.room, actor, actions.command(op, **args), s.ctx())
        error = info.value
        assert canary not in repr(error.to_wire()) + str(error) + repr(error.args), op


# ------------------------------------------------------------------ the order things were made


class Countdown:
    """Fresh ids that sort the opposite way to the order they are handed out, so a list
    sorted by id (or by a dict's keys) comes out backwards."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        return f"id{999_999 - self.count:06d}q"


def test_items_keep_the_order_they_were_made_in_every_view() -> None:
    s = Session(stage=5)
    s.ids = Countdown()  # type: ignore[assignment]
    agreements = [s.agreement(text) for text in ("First", "Second", "Third", "Fourth")]
    s.do("therapist", "agreement.remove", id=agreements.pop(1))
    s.do("therapist", "agreement.edit", id=agreements[1], text="Third, reworded")  # keeps its place
    parts = [s.part(owner, shared=True) for owner in ("a", "b", "a", "b")]
    links = [s.link("a", "reacts_to", parts[0], parts[1]),
             s.link("b", "protects", parts[3], parts[1]),
             s.link("a", "protects", parts[2], parts[0])]
    for part, owner in ((parts[3], "b"), (parts[0], "a"), (parts[1], "b")):
        s.need(owner, part)
    s.do("b", "need.remove", part=parts[3])
    s.need("b", parts[3], "written again, so it comes last")
    needs = [parts[0], parts[1], parts[3]]
    notes = [s.note(text) for text in ("one", "two", "three")]
    assert sorted(agreements) != agreements  # the ids alone would give another order
    made = {"agreements": agreements, "links": links, "needs": needs}
    for viewer in model.ROLES:
        colls = s.view(viewer)["colls"]
        for coll, keys in made.items():
            by_order = sorted(colls[coll].values(), key=lambda item: item["order"])
            assert [item.get("id", item.get("part")) for item in by_order] == keys, (viewer, coll)
            assert list(colls[coll]) == keys  # and the view itself lists them so
    colls = s.view("therapist")["colls"]
    assert [note["id"] for note in sorted(colls["notes"].values(),
                                          key=lambda note: note["order"])] == notes
    orders = [s.room.agreements[key].order for key in agreements]
    assert orders == sorted(orders) and len(set(orders)) == len(orders)
