"""The moves IFS couples therapists use (issue 11), through machine.apply and the views:
a part's details, more kinds of links, sharing in two steps.

The generic checks of every op (roles, stages, frozen board, bad args) are in
test_commands.py; these are the rules of each move.
"""

from __future__ import annotations

import msgspec
from rooms_helpers import Session

from rooms import model, views
from rooms.errors import BadRequest, Forbidden, LimitExceeded, NotFound
from rooms.export import NOT_ASKED_BEFORE, digest_of, export_for, room_from_export
from rooms.model import Limits
from rooms.stages import UTURN_PROMPT

# ------------------------------------------------------------------ a part's details


def test_details_follow_the_parts_visibility() -> None:
    s = Session(stage=2, drafts=False)
    part = s.part("a", "Watcher", kind="manager")
    s.do("a", "part.details", id=part, job="keeps watch", fear="surprises")
    for viewer in ("b", "therapist"):
        assert part not in s.view(viewer)["colls"]["parts"]
    ev = s.do("a", "part.details", id=part, intent="wants me safe")
    assert views.event_for(ev, "b")["hidden"] is True
    s.do("a", "part.reveal", id=part)
    seen = s.view("b")["colls"]["parts"][part]
    assert (seen["job"], seen["fear"], seen["intent"], seen["age"]) == (
        "keeps watch", "surprises", "wants me safe", "")
    s.do("a", "part.details", id=part, job="", age=" 12 ")  # empty clears, nil keeps
    part_now = s.room.parts[part]
    assert (part_now.job, part_now.fear, part_now.age) == ("", "surprises", "12")


def test_only_an_exile_carries_a_burden() -> None:
    s = Session(stage=2)
    guard = s.part("b", "Guard", kind="firefighter")
    assert s.refuse("b", "part.details", BadRequest, id=guard, burden="shame").field == "burden"
    s.do("b", "part.details", id=guard, burden="")  # clearing is always fine
    young = s.part("b", "Young one", kind="exile")
    s.do("b", "part.details", id=young, burden="I'm too much")
    s.do("b", "part.edit", id=young, kind="unsure")
    assert s.room.parts[young].burden == "I'm too much"  # kept if it is an exile again


def test_detail_length_limit() -> None:
    s = Session(stage=2, limits=Limits(detail_length=10))
    part = s.part("a")
    assert s.refuse("a", "part.details", LimitExceeded, id=part,
                    fear="x" * 11).field == "fear"
    s.do("a", "part.details", id=part, fear="x" * 10)


def test_details_of_the_other_partners_part_are_not_found() -> None:
    s = Session(stage=2)
    theirs = s.part("b", shared=True)
    assert s.refuse("a", "part.details", NotFound, id=theirs, job="x").field == "id"


# ------------------------------------------------------------------ kinds of links


def test_polarized_and_allied_join_two_of_ones_own_parts_either_way() -> None:
    s = Session(stage=3)
    speak, peace = s.part("a", "Speaks up"), s.part("a", "Keeps the peace")
    theirs = s.part("b", "Quiet", shared=True)
    for kind in ("polarized_with", "allied_with"):
        assert s.refuse("a", "link.add", BadRequest, kind=kind, source=speak,
                        target=theirs).field == "target"
        link = s.link("a", kind, speak, peace)
        # No direction: the same pair the other way round is the same link.
        assert s.refuse("a", "link.add", BadRequest, kind=kind, source=peace,
                        target=speak).field == "target"
        assert s.room.links[link].kind == kind
    s.link("a", "reacts_to", peace, speak)  # a reaction has a direction, and is another kind


def test_a_label_is_short_and_on_one_line() -> None:
    s = Session(stage=3, limits=Limits(name_length=12))
    x, y = s.part("b"), s.part("b")
    assert s.refuse("b", "link.add", LimitExceeded, kind="protects", source=x, target=y,
                    label="x" * 13).field == "label"
    link = s.link("b", "protects", x, y)
    assert s.room.links[link].label == ""
    s.do("b", "link.edit", id=link, label=" shields ")
    assert s.room.links[link].label == "shields"
    assert s.refuse("a", "link.edit", NotFound, id=link, label="mine").field == "id"


# ------------------------------------------------------------------ sharing in two steps


def test_sharing_with_the_therapist_first_then_with_everyone() -> None:
    s = Session(stage=2, drafts=False)
    part = s.part("a", "Storm", kind="firefighter")
    ev = s.do("a", "part.reveal", id=part, to="therapist")
    assert part in s.view("therapist")["colls"]["parts"]
    assert views.event_for(ev, "b")["hidden"] is True
    assert s.view("b")["counts"]["a"]["parts"] == 1  # still not shared with b
    assert s.room.parts[part].with_therapist and not s.room.parts[part].shared
    s.do("a", "part.reveal", id=part)
    assert part in s.view("b")["colls"]["parts"]
    # Taking it back one step leaves it with the therapist; all the way, with its owner.
    ev = s.do("a", "part.withdraw", id=part, to="therapist")
    assert views.event_for(ev, "b")["changes"] == [["parts", part, None]]
    assert part in s.view("therapist")["colls"]["parts"]
    ev = s.do("a", "part.withdraw", id=part)
    assert views.event_for(ev, "therapist")["changes"] == [["parts", part, None]]
    assert part not in s.view("therapist")["colls"]["parts"]
    ev = s.do("a", "part.withdraw", id=part)  # nothing left to take back
    assert views.event_for(ev, "a").get("hidden") is True


def test_sharing_with_the_therapist_never_narrows_a_shared_part() -> None:
    s = Session(stage=2, drafts=False)
    part = s.part("b", shared=True)
    ev = s.do("b", "part.reveal", id=part, to="therapist")
    assert ev.changes == ()
    assert part in s.view("a")["colls"]["parts"]


def test_a_link_follows_the_two_step_visibility_of_its_parts() -> None:
    s = Session(stage=3, drafts=False)
    guard, young = s.part("a", "Guard"), s.part("a", "Young")
    link = s.link("a", "protects", guard, young)
    s.do("a", "part.reveal", id=guard, to="therapist")
    assert link not in s.view("therapist")["colls"]["links"]
    ev = s.do("a", "part.reveal", id=young, to="therapist")
    assert sorted(c[:2] for c in views.event_for(ev, "therapist")["changes"]) == [
        ["links", link], ["parts", young]]


def test_sharing_an_exile_needs_confirming() -> None:
    s = Session(stage=2)
    exile = s.do("a", "part.add", name="Little one", kind="exile").changes[0].id
    for to in ("therapist", "everyone"):
        error = s.refuse("a", "part.reveal", BadRequest, id=exile, to=to)
        assert (error.code, error.field) == ("bad_request", "confirm")
    assert s.refuse("a", "part.reveal_all", BadRequest).field == "confirm"
    s.do("a", "part.reveal", id=exile, to="therapist", confirm=True)
    s.do("a", "part.reveal_all", confirm=True)
    assert s.room.parts[exile].shared
    s.part("a", "Planner", kind="manager")
    s.do("a", "part.reveal_all")  # no exile left unshared: no question to ask


# ------------------------------------------------------------------ feel-toward


def test_feelings_toward_a_part_are_kept_with_their_time() -> None:
    s = Session(stage=3, drafts=False)
    part = s.part("b", "Shutter", kind="firefighter")
    s.do("b", "part.feel", id=part, other="annoyed")
    first = s.now
    s.do("b", "part.feel", id=part, qualities={"curiosity": True, "compassion": True})
    history = sorted(s.room.feelings.values(), key=lambda f: f.order)
    assert [(f.at, f.qualities, f.other) for f in history] == [
        (first, (), "annoyed"), (s.now, ("curiosity", "compassion"), "")]
    # Private with the part; shared with it; gone with it.
    assert s.view("a")["colls"]["feelings"] == s.view("therapist")["colls"]["feelings"] == {}
    ev = s.do("b", "part.reveal", id=part)
    assert {c[0] for c in views.event_for(ev, "a")["changes"]} == {"parts", "feelings"}
    assert len(s.view("a")["colls"]["feelings"]) == 2
    ev = s.do("b", "part.remove", id=part)
    assert s.room.feelings == {}
    assert sorted(c[0] for c in views.event_for(ev, "a")["changes"]) == [
        "feelings", "feelings", "parts"]


def test_a_blended_feeling_can_become_a_new_part_linked_to_the_first() -> None:
    s = Session(stage=3)
    critic = s.part("a", "Critic", kind="manager", shared=True)
    assert s.refuse("a", "part.feel", BadRequest, id=critic, qualities={"calm": True},
                    new_part="Calm one").field == "new_part"  # Self is not a part
    ev = s.do("a", "part.feel", id=critic, other="I want it gone", new_part="Eraser",
              new_kind="firefighter", new_link="polarized_with")
    (eraser,) = set(s.room.parts) - {critic}
    assert (s.room.parts[eraser].name, s.room.parts[eraser].shared) == ("Eraser", False)
    (link,) = s.room.links.values()
    assert (link.kind, link.source, link.target) == ("polarized_with", eraser, critic)
    assert views.event_for(ev, "b")["changes"] == [
        ["feelings", next(iter(s.room.feelings)), msgspec.to_builtins(
            next(iter(s.room.feelings.values())))]]  # only the shared part's answer
    # The follow-up way: the same through part.add and link.add.
    s.do("a", "part.feel", id=critic, other="scared of it")
    scared = s.part("a", "Scared one")
    s.link("a", "reacts_to", scared, critic)


def test_feel_toward_limits_and_nothing_half_done() -> None:
    s = Session(stage=3, limits=Limits(feelings_per_part=1, parts_per_partner=1))
    part = s.part("a")
    before = s.room
    assert s.refuse("a", "part.feel", LimitExceeded, id=part, other="x",
                    new_part="one too many").field == "parts"
    assert s.room is before  # the answer itself was not kept either
    s.do("a", "part.feel", id=part, qualities={"calm": True})
    assert s.refuse("a", "part.feel", LimitExceeded, id=part,
                    other="x").field == "feelings"
    theirs = s.part("b", shared=True)
    assert s.refuse("a", "part.feel", NotFound, id=theirs, other="x").field == "id"


# ------------------------------------------------------------------ check-in history


def scores(level: int) -> dict[str, int]:
    return dict.fromkeys(model.SELF_QUALITIES, level)


def test_check_ins_keep_a_bounded_history_shared_as_a_whole() -> None:
    s = Session(stage=4, drafts=False, limits=Limits(checkins_kept=2))
    for level, note in ((3, "tight"), (5, "softer"), (7, "open"), (8, "here")):
        s.do("a", "checkin.set", scores=scores(level), note=note)
    checkin = s.room.checkins["a"]
    assert (checkin.scores["calm"], checkin.note, checkin.at) == (8, "here", s.now)
    assert [(p.scores["calm"], p.note) for p in checkin.history] == [(5, "softer"),
                                                                     (7, "open")]
    assert [p.at for p in checkin.history] == [s.now - 2, s.now - 1]
    assert "a" not in s.view("b")["colls"]["checkins"]
    assert "a" not in s.view("therapist")["colls"]["checkins"]  # owner-only drafts
    s.do("a", "checkin.reveal")
    assert len(s.view("b")["colls"]["checkins"]["a"]["history"]) == 2
    ev = s.do("a", "checkin.set", scores=scores(9))
    assert views.event_for(ev, "b")["changes"][0][2]["history"][-1]["note"] == "here"
    s.do("a", "checkin.withdraw")
    assert "a" not in s.view("b")["colls"]["checkins"]


# ------------------------------------------------------------------ stage 5 in IFIO's order


def test_a_request_comes_after_what_ones_own_self_can_offer() -> None:
    s = Session(stage=5)
    part = s.part("a", "Left one", kind="exile", shared=True)
    s.need("a", part, "to know you come back", self_offer=None)
    error = s.refuse("a", "request.make", BadRequest, part=part, text="tell me when")
    assert (error.code, error.field) == ("bad_request", "self_offer")
    assert s.refuse("b", "need.self", NotFound, part=part, text="mine").field == "part"
    s.do("a", "need.self", part=part, text="I can tell it I am here")
    s.do("a", "request.make", part=part, text="tell me when")


def test_not_yet_and_lets_talk_are_revisited_with_the_history_kept() -> None:
    s = Session(stage=5, limits=Limits(answers_kept=2))
    part = s.part("b", "Wall", shared=True)
    s.need("b", part, "time")
    s.do("b", "request.make", part=part, text="ten minutes")
    s.do("a", "request.answer", part=part, answer="not_yet", note="scary")
    first = s.now
    s.do("a", "request.answer", part=part, answer="lets_talk")
    s.do("b", "request.make", part=part, text="five minutes")  # asked anew
    s.do("a", "request.answer", part=part, answer="yes", note="ok")
    need = s.room.needs[part]
    assert (need.request, need.answer, need.answer_note, need.answered_at) == (
        "five minutes", "yes", "ok", s.now)
    assert [(p.request, p.answer, p.note) for p in need.answers] == [
        ("ten minutes", "not_yet", "scary"), ("ten minutes", "lets_talk", "")]
    assert need.answers[0].at == first
    s.do("a", "request.answer", part=part, answer="yes", note="still")
    assert [p.answer for p in s.room.needs[part].answers] == ["lets_talk", "yes"]  # bounded
    assert s.view("a")["colls"]["needs"][part]["answers"][-1]["note"] == "ok"


def test_an_earlier_schemas_request_continues_with_a_fixed_sentence() -> None:
    s = Session(stage=5)
    part = s.part("a", "Left one", shared=True)
    s.need("a", part, "to know")
    s.do("a", "request.make", part=part, text="tell me")
    doc = export_for(s.room, "therapist", 5.0)
    doc["schema"] = "partsboard.export/2"
    for need in doc["needs"]:
        for field in ("self_offer", "answered_at", "answers"):
            need.pop(field)
    doc["digest"] = digest_of(doc)
    need = next(iter(room_from_export(doc, room_id="r", epoch="e", now=1.0).needs.values()))
    assert (need.request, need.self_offer) == ("tell me", NOT_ASKED_BEFORE)


# ------------------------------------------------------------------ speaker and listener


def test_a_full_turn_seen_by_all_three() -> None:
    s = Session(stage=3, drafts=False)
    alarm = s.part("a", "Alarm", shared=True)
    hidden = s.part("a", "Hidden")
    s.do("therapist", "turn.start", speaker="a")
    assert s.refuse("therapist", "turn.start", BadRequest, speaker="b").field == "speaker"
    assert s.refuse("b", "turn.speak", Forbidden, text="me first").code == "forbidden"
    assert s.refuse("b", "turn.reflect", BadRequest, text="too soon").field == "text"
    assert s.refuse("a", "turn.speak", NotFound, text="x", part=hidden).field == "part"
    s.do("a", "turn.speak", text="A part of me feels scared when you go quiet.", part=alarm)
    s.do("b", "turn.reflect", text="What I heard is that you are angry.")
    s.do("a", "turn.confirm", heard=False, correction="scared, not angry")
    s.do("a", "turn.speak", text="It is trying to keep me from being left.", part=alarm)
    (turn,) = s.room.turns.values()
    assert (turn.reflection, turn.heard, turn.correction) == ("", None, "")
    s.do("b", "turn.reflect", text="What I heard is that it keeps you from being left.")
    s.do("a", "turn.confirm", heard=True)
    for viewer in ("a", "b", "therapist"):
        assert s.view(viewer)["colls"]["turns"][turn.id]["heard"] is True
    s.do("therapist", "turn.end", swap=True)
    (new,) = [t for t in s.room.turns.values() if t.ended_at is None]
    assert (new.speaker, new.listener) == ("b", "a")
    s.do("a", "part.withdraw", id=alarm)  # the turn no longer names a part b cannot see
    assert s.room.turns[turn.id].part is None
    assert s.room.turns[turn.id].spoken.startswith("It is trying")


def test_a_u_turn_answer_is_private_to_that_partner_and_the_therapist() -> None:
    s = Session(stage=3, drafts=False)
    ev = s.do("therapist", "uturn.ask", partner="b", prompt="")
    (uturn,) = s.room.uturns.values()
    assert uturn.prompt == UTURN_PROMPT
    assert views.event_for(ev, "a")["hidden"] is True
    assert s.refuse("a", "uturn.answer", NotFound, id=uturn.id, text="x").to_wire() == \
        s.refuse("a", "uturn.answer", NotFound, id="never", text="x").to_wire()
    assert s.refuse("b", "uturn.share", BadRequest, id=uturn.id).field == "id"
    s.do("b", "uturn.answer", id=uturn.id, text="my critic wants to win")
    assert s.view("therapist")["colls"]["uturns"][uturn.id]["answer"] == "my critic wants to win"
    assert s.view("a")["colls"]["uturns"] == {}
    s.do("b", "uturn.share", id=uturn.id)
    assert s.view("a")["colls"]["uturns"][uturn.id]["answer"] == "my critic wants to win"
    ev = s.do("b", "uturn.share", id=uturn.id, shared=False)
    assert views.event_for(ev, "a")["changes"] == [["uturns", uturn.id, None]]


# ------------------------------------------------------------------ not yet shared


def test_the_therapist_alone_counts_feelings_and_u_turn_answers_not_yet_shared() -> None:
    s = Session(stage=3, drafts=False)
    part = s.part("a", "Hidden")  # the therapist does not see it: only how many
    s.do("a", "part.feel", id=part, qualities={"calm": True})
    s.do("a", "part.feel", id=part, other="cross")
    uturn = s.do("therapist", "uturn.ask", partner="b").changes[0].id
    assert (s.view("therapist")["counts"]["a"]["feelings"],
            s.view("therapist")["counts"]["b"]["uturns"]) == (2, 0)  # asked, not answered
    s.do("b", "uturn.answer", id=uturn, text="tight chest")
    assert s.view("therapist")["counts"]["b"]["uturns"] == 1
    for viewer in ("a", "b"):  # the partners' counts are what everyone may know
        assert s.view(viewer)["counts"] == {p: {"parts": int(p == "a"), "checkin": 0, "needs": 0}
                                            for p in ("a", "b")}
    s.do("a", "part.reveal", id=part)
    s.do("b", "uturn.share", id=uturn)
    assert (s.view("therapist")["counts"]["a"]["feelings"],
            s.view("therapist")["counts"]["b"]["uturns"]) == (0, 0)


# ------------------------------------------------------------------ the therapist as scribe


def test_what_the_therapist_writes_is_the_partners_until_they_share_it() -> None:
    s = Session(stage=3, drafts=False)
    ev = s.do("therapist", "scribe.part_add", partner="a", name="The Rescuer", kind="manager")
    (part,) = s.room.parts
    assert views.event_for(ev, "b")["hidden"] is True
    assert s.view("a")["colls"]["parts"][part]["by_therapist"] is True
    s.do("therapist", "scribe.part_edit", id=part, job="steps in first")
    theirs = s.part("b", "Quiet", shared=True)
    ev = s.do("therapist", "scribe.link_add", kind="reacts_to", source=part, target=theirs)
    assert views.event_for(ev, "b")["hidden"] is True
    (link,) = s.room.links
    assert s.view("a")["colls"]["links"][link]["by_therapist"] is True
    s.do("therapist", "scribe.part_add", partner="a", name="The Other")
    (other,) = set(s.room.parts) - {part, theirs}
    s.do("therapist", "scribe.link_add", kind="protects", source=other, target=part)
    # The partner changes it, accepts it (the mark goes, from the links drawn from it too,
    # not from those drawn from a part not yet accepted), and shares it when ready.
    s.do("a", "part.edit", id=part, name="My Rescuer")
    ev = s.do("a", "part.accept", id=part)
    assert {c.id: c.value["by_therapist"] for c in ev.changes if c.coll == "links"} == {
        link: False}
    assert [v.by_therapist for v in s.room.links.values() if v.source == other] == [True]
    assert s.refuse("therapist", "scribe.part_edit", NotFound, id=part,
                    name="x").field == "id"  # accepted: the partner's own now
    s.do("a", "part.reveal", id=part)
    assert s.view("b")["colls"]["parts"][part]["job"] == "steps in first"


def test_a_scribed_part_taken_back_is_not_found_for_the_therapist() -> None:
    s = Session(stage=3, drafts=False)
    part = s.do("therapist", "scribe.part_add", partner="b", name="Hider").changes[0].id
    s.do("b", "part.withdraw", id=part)  # back to the partner alone
    assert part not in s.view("therapist")["colls"]["parts"]
    for op, args in (("scribe.part_edit", {"id": part}),
                     ("scribe.link_add", {"kind": "protects", "source": part,
                                          "target": part})):
        error = s.refuse("therapist", op, NotFound, **args)
        ghost = {k: "never" if v == part else v for k, v in args.items()}
        assert error.to_wire() == s.refuse("therapist", op, NotFound, **ghost).to_wire()
    s.do("b", "part.remove", id=part)  # removing is the partner's too


# ------------------------------------------------------------------ export


def test_details_and_labels_continue_into_a_new_room() -> None:
    s = Session(stage=3)
    young = s.part("a", "Young", kind="exile", shared=True)
    guard = s.part("a", "Guard", kind="manager", shared=True)
    s.do("a", "part.details", id=young, burden="I'll be left", age="four")
    s.do("a", "part.details", id=guard, job="watches", intent="safety")
    s.link("a", "polarized_with", guard, young)
    link = next(iter(s.room.links))
    s.do("a", "link.edit", id=link, label="near / far")
    s.do("a", "part.feel", id=young, other="protective")
    s.do("a", "part.feel", id=young, qualities={"compassion": True})
    s.do("therapist", "stage.set", stage=4)
    s.do("a", "checkin.set", scores=scores(4))
    s.do("a", "checkin.set", scores=scores(6), note="later")
    s.do("a", "checkin.reveal")
    s.do("therapist", "turn.start", speaker="a")
    s.do("a", "turn.speak", text="a part of me is scared", part=young)
    s.do("b", "turn.reflect", text="what I heard is scared")
    s.do("a", "turn.confirm", heard=True)
    s.do("therapist", "turn.end", swap=True)
    s.do("therapist", "uturn.ask", partner="b")
    u_shared = next(iter(s.room.uturns))
    s.do("b", "uturn.answer", id=u_shared, text="my wall went up")
    s.do("b", "uturn.share", id=u_shared)
    s.do("therapist", "uturn.ask", partner="a", prompt="what happens now?")
    s.do("therapist", "stage.set", stage=5)
    s.need("a", young, "to be remembered")
    s.do("a", "request.make", part=young, text="ask about my day")
    s.do("b", "request.answer", part=young, answer="not_yet")
    s.do("b", "request.answer", part=young, answer="yes", note="gladly")
    scribed = s.do("therapist", "scribe.part_add", partner="b", name="Fixer").changes[0].id
    drawn = s.do("therapist", "scribe.link_add", kind="reacts_to", source=scribed,
                 target=guard).changes[0].id
    s.do("b", "part.reveal", id=scribed)
    held = s.part("b", "Held back", kind="manager")
    s.do("b", "part.reveal", id=held, to="therapist")
    doc = export_for(s.room, "therapist", 5.0)
    assert held not in {part["id"] for part in doc["parts"]}  # the shared board only
    assert [p["scores"]["calm"] for p in doc["checkins"][0]["history"]] == [4]
    room = room_from_export(doc, room_id="next", epoch="e2", now=9.0)
    assert room.parts[young] == s.room.parts[young]
    assert room.parts[scribed] == s.room.parts[scribed]  # the scribe's mark kept
    assert [msgspec.structs.replace(t, id="", order=0) for t in room.turns.values()] == [
        msgspec.structs.replace(t, id="", order=0) for t in s.room.turns.values()]
    assert [u.answer for u in room.uturns.values()] == ["my wall went up"]  # shared only
    assert room.needs[young] == msgspec.structs.replace(s.room.needs[young],
                                                        order=room.needs[young].order)
    assert room.parts[guard] == s.room.parts[guard]
    assert room.links[link].label == "near / far"
    assert (room.links[link].by_therapist, room.links[drawn].by_therapist) == (False, True)
    assert [(f.at, f.qualities, f.other) for f in room.feelings.values()] == [
        (f.at, f.qualities, f.other) for f in s.room.feelings.values()]
    again = export_for(room, "therapist", 5.0)
    assert again["parts"] == doc["parts"]
    assert [(k["kind"], k["label"]) for k in again["links"]] == [
        ("polarized_with", "near / far"), ("reacts_to", "")]
