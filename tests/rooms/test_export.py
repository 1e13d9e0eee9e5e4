"""Export documents (rooms.export): privacy, the digest, and seeding a new room from one."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rooms import actions, machine, views
from rooms.errors import BadRequest, RoomError
from rooms.export import (
    DAMAGED,
    INVALID,
    NOT_AN_EXPORT,
    NOT_THERAPIST,
    SCHEMA,
    WRONG_VERSION,
    digest_of,
    export_for,
    room_from_export,
)
from rooms.model import SELF_QUALITIES, Limits, PartnerInfo, Role, Room
from rooms.stages import DEFAULT_STAGES

EXPORTED_AT = 1_795_000_000.5
MESSAGES = {DAMAGED, INVALID, NOT_AN_EXPORT, NOT_THERAPIST, WRONG_VERSION}
SCORES = {quality: 6 for quality in SELF_QUALITIES}


class Ids:
    """Fresh ids like a server's: unique, and none a substring of another."""

    def __init__(self, prefix: str = "id") -> None:
        self.prefix = prefix
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        return f"{self.prefix}{self.count:06d}x"


class Board:
    """A room driven through machine.apply, as the server would."""

    def __init__(self, *, drafts: bool = True, names: tuple[str, str] = ("Kit", "Noor"),
                 stage: int = 5) -> None:
        self.ids = Ids()
        self.now = 2_000.0
        self.room = machine.new_room(
            room_id="export-room", epoch="epoch-1",
            partners={"a": PartnerInfo(names[0], "#2a6f97"), "b": PartnerInfo(names[1], "#a4133c")},
            therapist_sees_drafts=drafts, now=self.now,
        )
        if stage > 1:
            self.do("therapist", "stage.set", stage=stage)

    def do(self, actor: Role, op: str, **args: Any) -> views.Event:
        self.now += 1.0
        self.room, event = machine.apply(
            self.room, actor, actions.command(op, **args), machine.Context(self.now, self.ids),
        )
        return event

    def try_do(self, actor: Role, op: str, **args: Any) -> None:
        try:
            self.do(actor, op, **args)
        except RoomError:
            pass

    def new(self, actor: Role, op: str, coll: str, **args: Any) -> str:
        event = self.do(actor, op, **args)
        (key,) = [change.id for change in event.changes if change.coll == coll]
        return key

    def part(self, owner: Role, name: str, kind: str = "unsure", *, shared: bool) -> str:
        part_id = self.new(owner, "part.add", "parts", name=name, kind=kind, x=0.25, y=0.75)
        if shared:
            self.do(owner, "part.reveal", id=part_id, confirm=True)
        return part_id


def full_board(drafts: bool = True) -> tuple[Board, dict[str, str]]:
    """A board with something of everything, shared and not shared."""
    board = Board(drafts=drafts)
    ids: dict[str, str] = {}
    ids["agreement"] = board.new("therapist", "agreement.add", "agreements",
                                 text="Each of us can ask for a pause.")
    board.do("a", "agreement.ack", id=ids["agreement"])
    ids["critic"] = board.part("a", "The Sharp Critic", "manager", shared=True)
    ids["small"] = board.part("a", "The Small Scared One", "exile", shared=True)
    ids["a_draft"] = board.part("a", "Kit's unshared draft", "firefighter", shared=False)
    ids["wall"] = board.part("b", "The Wall", "firefighter", shared=True)
    ids["b_draft"] = board.part("b", "Noor's unshared draft", "exile", shared=False)
    ids["withdrawn"] = board.part("b", "Noor's withdrawn part", "manager", shared=True)
    board.do("b", "part.blend", id=ids["wall"], level=8)
    ids["protects"] = board.new("a", "link.add", "links", kind="protects",
                                source=ids["critic"], target=ids["small"])
    ids["cycle"] = board.new("a", "link.add", "links", kind="reacts_to",
                             source=ids["critic"], target=ids["wall"])
    ids["private_link"] = board.new("a", "link.add", "links", kind="protects",
                                    source=ids["a_draft"], target=ids["small"])
    ids["b_private_link"] = board.new("b", "link.add", "links", kind="protects",
                                      source=ids["b_draft"], target=ids["wall"])
    board.do("b", "need.set", part=ids["wall"], text="To have time to think before answering")
    board.do("b", "need.reveal", part=ids["wall"])
    board.do("b", "need.self", part=ids["wall"], text="I can give myself the time")
    board.do("b", "request.make", part=ids["wall"], text="Give me ten minutes, then ask again")
    board.do("a", "request.answer", part=ids["wall"], answer="yes", note="I can do that")
    board.do("b", "need.set", part=ids["withdrawn"], text="Noor's need of a withdrawn part")
    board.do("b", "part.withdraw", id=ids["withdrawn"])
    board.do("a", "need.set", part=ids["critic"], text="A need Kit keeps to himself")
    board.do("a", "checkin.set", scores=SCORES, note="Kit's check-in, not shared")
    board.do("b", "checkin.set", scores=SCORES, note="Noor's check-in, shared")
    board.do("b", "checkin.reveal")
    ids["note"] = board.new("therapist", "note.add", "notes", text="Therapist's private note")
    return board, ids


def text_of(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False)


def ids_of(items: list[dict[str, Any]], key: str = "id") -> set[str]:
    return {str(item[key]) for item in items}


def refused(doc: object, **kwargs: Any) -> BadRequest:
    with pytest.raises(BadRequest) as info:
        room_from_export(doc, room_id="new-room", epoch="epoch-2", now=9_000.0, **kwargs)
    error = info.value
    assert type(error) is BadRequest
    assert error.field == "continue_from"
    assert error.message in MESSAGES
    # Nothing chained that could carry a validator's message about the content.
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__
    return error


def seeded(doc: object, **kwargs: Any) -> Room:
    return room_from_export(doc, room_id="new-room", epoch="epoch-2", now=9_000.0, **kwargs)


def via_file(doc: dict[str, Any]) -> dict[str, Any]:
    """What the server gets back when the downloaded JSON file is uploaded again."""
    out: dict[str, Any] = json.loads(json.dumps(doc))
    return out


def like_javascript(value: Any) -> Any:
    """JSON.parse then JSON.stringify in a browser writes 2.0 as 2."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: like_javascript(item) for key, item in value.items()}
    if isinstance(value, list):
        return [like_javascript(item) for item in value]
    return value


def reseal(doc: dict[str, Any]) -> dict[str, Any]:
    doc["digest"] = digest_of(doc)
    return doc


# ---------------------------------------------------------------- the documents


def test_therapist_document_shape() -> None:
    board, ids = full_board()
    doc = export_for(board.room, "therapist", EXPORTED_AT)
    assert doc["schema"] == SCHEMA == "partsboard.export/3"
    assert (doc["kind"], doc["viewer"], doc["exported_at"]) == ("therapist", "therapist",
                                                                EXPORTED_AT)
    assert doc["stage"] == 5
    assert doc["stage_names"] == [info.name for info in board.room.settings.stages]
    assert [change["stage"] for change in doc["stage_history"]] == [1, 5]
    assert doc["partners"] == {"a": {"name": "Kit", "color": "#2a6f97"},
                               "b": {"name": "Noor", "color": "#a4133c"}}
    assert doc["settings"] == {"therapist_sees_drafts": True}
    agreement, note = board.room.agreements[ids["agreement"]], board.room.notes[ids["note"]]
    assert doc["agreements"] == [{"id": ids["agreement"], "order": agreement.order,
                                  "text": "Each of us can ask for a pause.", "acks": ["a"]}]
    assert doc["notes"] == [{"id": ids["note"], "text": "Therapist's private note",
                             "at": note.at, "order": note.order}]
    assert doc["digest"] == digest_of(doc)
    assert len(doc["digest"]) == 64
    assert via_file(doc) == doc  # plain JSON, nothing lost on the way


@pytest.mark.parametrize("drafts", [True, False])
def test_therapist_export_holds_the_shared_board_only(drafts: bool) -> None:
    board, ids = full_board(drafts)
    doc = export_for(board.room, "therapist", EXPORTED_AT)
    assert ids_of(doc["parts"]) == {ids["critic"], ids["small"], ids["wall"]}
    assert all(part["shared"] for part in doc["parts"])
    assert ids_of(doc["links"]) == {ids["protects"], ids["cycle"]}
    assert ids_of(doc["needs"], "part") == {ids["wall"]}
    assert doc["needs"][0]["answer"] == "yes"
    assert [checkin["owner"] for checkin in doc["checkins"]] == ["b"]
    text = text_of(doc)
    for private in ("unshared draft", "withdrawn", "Kit's check-in", "Kit keeps", ids["a_draft"],
                    ids["b_draft"], ids["private_link"], ids["b_private_link"]):
        assert private not in text
    # The therapist's live view does hold the drafts when the room allows it; the export not.
    live = views.snapshot_for(board.room, "therapist")["colls"]["parts"]
    assert (ids["a_draft"] in live) is drafts


@pytest.mark.parametrize("partner", ["a", "b"])
def test_partner_export_is_exactly_their_own_view(partner: Role) -> None:
    board, ids = full_board()
    doc = export_for(board.room, partner, EXPORTED_AT)
    assert (doc["kind"], doc["viewer"]) == ("partner", partner)
    assert "notes" not in doc
    colls = json.loads(json.dumps(views.snapshot_for(board.room, partner)))["colls"]
    for coll in ("agreements", "parts", "links", "needs"):
        assert doc[coll] == list(colls[coll].values())
    assert doc["checkins"] == [colls["checkins"][key] for key in sorted(colls["checkins"])]
    assert doc["digest"] == digest_of(doc)
    text = text_of(doc)
    assert "Therapist's private note" not in text and ids["note"] not in text
    own, other = ("Kit", "Noor") if partner == "a" else ("Noor", "Kit")
    own_draft = ids["a_draft"] if partner == "a" else ids["b_draft"]
    other_draft = ids["b_draft"] if partner == "a" else ids["a_draft"]
    assert f"{own}'s unshared draft" in text and own_draft in ids_of(doc["parts"])
    assert f"{other}'s unshared draft" not in text and other_draft not in text
    assert not any(part["shared"] for part in doc["parts"] if part["id"] == own_draft)


def test_partner_export_of_each_side_holds_private_links_checkins_and_needs() -> None:
    board, ids = full_board()
    a_doc, b_doc = (export_for(board.room, p, EXPORTED_AT) for p in ("a", "b"))
    assert ids["private_link"] in ids_of(a_doc["links"])
    assert ids["private_link"] not in text_of(b_doc)
    assert ids["b_private_link"] in ids_of(b_doc["links"])
    assert ids["b_private_link"] not in text_of(a_doc)
    assert "Kit's check-in, not shared" in text_of(a_doc)
    assert "Kit's check-in, not shared" not in text_of(b_doc)
    assert "Noor's need of a withdrawn part" in text_of(b_doc)
    assert "Noor's need of a withdrawn part" not in text_of(a_doc)
    assert "A need Kit keeps to himself" in text_of(a_doc)
    assert "A need Kit keeps to himself" not in text_of(b_doc)
    (kit_need,) = [need for need in a_doc["needs"] if need["part"] == ids["critic"]]
    assert kit_need["shared"] is False


def test_export_reads_no_clock_and_is_deterministic() -> None:
    board, _ = full_board()
    first = export_for(board.room, "therapist", EXPORTED_AT)
    assert export_for(board.room, "therapist", EXPORTED_AT) == first
    later = export_for(board.room, "therapist", EXPORTED_AT + 60)
    assert later["exported_at"] == EXPORTED_AT + 60 and later["digest"] != first["digest"]


# ---------------------------------------------------------------- seeding a new room


def unordered(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items without their `order` (a continued room numbers them anew), still listed
    in that order."""
    return [{key: value for key, value in item.items() if key != "order"} for item in items]


def shared_board(doc: dict[str, Any]) -> dict[str, Any]:
    """What must survive export -> new room -> export, in the same order."""
    return {
        "parts": doc["parts"],
        "links": unordered(doc["links"]),
        "needs": unordered(doc["needs"]),
        "agreements": [agreement["text"] for agreement in doc["agreements"]],
        "partners": doc["partners"],
        "notes": unordered(doc["notes"]),
        "settings": doc["settings"],
    }


def relabelled(doc: dict[str, Any]) -> dict[str, Any]:
    """shared_board with every id replaced by its position, to compare across new ids."""
    board = shared_board(doc)
    label = {part["id"]: f"part{n}" for n, part in enumerate(doc["parts"])}
    label.update({link["id"]: f"link{n}" for n, link in enumerate(doc["links"])})
    label.update({note["id"]: f"note{n}" for n, note in enumerate(doc["notes"])})

    def swap(item: dict[str, Any]) -> dict[str, Any]:
        return {key: label.get(value, value) if key in ("id", "part", "source", "target")
                else value for key, value in item.items()}

    for coll in ("parts", "links", "needs", "notes"):
        board[coll] = [swap(item) for item in board[coll]]
    return board


def test_a_new_room_from_the_therapist_export() -> None:
    board, ids = full_board()
    doc = export_for(board.room, "therapist", EXPORTED_AT)
    room = seeded(via_file(doc))
    assert (room.id, room.epoch, room.created_at) == ("new-room", "epoch-2", 9_000.0)
    # The room was rebuilt by the reducer's commands, and goes on after them.
    assert room.seq > 0
    assert room.stage == 1
    assert [(c.stage, c.seq, c.at) for c in room.board.history] == [(1, room.seq, 9_000.0)]
    assert not room.board.frozen and room.board.spotlight is None and room.board.pauses == ()
    assert room.settings.therapist_sees_drafts is True
    assert room.checkins == {} and room.ready == {} and room.overwhelm == {}
    assert [a.acks for a in room.agreements.values()] == [()]  # acknowledged anew
    assert all(part.shared for part in room.parts.values())
    assert set(room.parts) == {ids["critic"], ids["small"], ids["wall"]}
    again = export_for(room, "therapist", EXPORTED_AT)
    assert shared_board(again) == shared_board(doc)


def test_the_new_room_carries_on_like_any_room() -> None:
    board, _ = full_board()
    room = seeded(via_file(export_for(board.room, "therapist", EXPORTED_AT)), new_id=Ids("n"))
    ctx = machine.Context(9_001.0, Ids("later"))
    (agreement_id,) = room.agreements
    room, _ = machine.apply(room, "b", actions.command("agreement.ack", id=agreement_id), ctx)
    room, _ = machine.apply(room, "therapist", actions.command("stage.set", stage=5), ctx)
    by_name = {part.name: part.id for part in room.parts.values()}
    room, _ = machine.apply(room, "b", actions.command(
        "link.add", kind="reacts_to", source=by_name["The Wall"],
        target=by_name["The Sharp Critic"]), ctx)
    room, _ = machine.apply(room, "b", actions.command(
        "request.make", part=by_name["The Wall"], text="A new question"), ctx)
    need = room.needs[by_name["The Wall"]]
    assert (need.request, need.answer, need.answer_note) == ("A new question", None, "")


def test_new_ids_are_handed_out_and_references_follow() -> None:
    board, _ = full_board()
    doc = export_for(board.room, "therapist", EXPORTED_AT)
    room = seeded(via_file(doc), new_id=Ids("fresh"))
    assert all(key.startswith("fresh") for coll in (room.parts, room.links, room.agreements,
                                                    room.notes) for key in coll)
    again = export_for(room, "therapist", EXPORTED_AT)
    assert relabelled(again) == relabelled(doc)


def test_a_file_that_went_through_a_browser_still_verifies() -> None:
    board, _ = full_board()
    doc = export_for(board.room, "therapist", 1_795_000_000.0)
    js = like_javascript(via_file(doc))
    assert isinstance(js["exported_at"], int) and isinstance(doc["exported_at"], float)
    room = seeded(js)
    assert shared_board(export_for(room, "therapist", 1.0)) == shared_board(doc)


def test_drafts_setting_comes_from_the_document() -> None:
    board, _ = full_board(drafts=False)
    room = seeded(via_file(export_for(board.room, "therapist", EXPORTED_AT)))
    assert room.settings.therapist_sees_drafts is False


def test_room_limits_and_stages_are_the_new_rooms_own() -> None:
    board, _ = full_board()
    doc = via_file(export_for(board.room, "therapist", EXPORTED_AT))
    stages = DEFAULT_STAGES[::-1]
    limits = Limits(parts_per_partner=2)
    room = seeded(doc, limits=limits, stages=stages)
    assert room.settings.stages == stages and room.settings.limits == limits


# ---------------------------------------------------------------- refusing bad documents


def _doc() -> dict[str, Any]:
    board, _ = full_board()
    return via_file(export_for(board.room, "therapist", EXPORTED_AT))


def _part_of(doc: dict[str, Any], owner: str) -> dict[str, Any]:
    part: dict[str, Any] = next(p for p in doc["parts"] if p["owner"] == owner)
    return part


Tamper = Callable[[dict[str, Any]], Any]

UNSEALED: dict[str, Tamper] = {
    "changed part name": lambda d: _part_of(d, "a").update(name="Something else"),
    "changed note": lambda d: d["notes"][0].update(text="Another note"),
    "changed agreement": lambda d: d["agreements"][0].update(text="Another agreement"),
    "dropped a link": lambda d: d["links"].pop(),
    "changed partner": lambda d: d["partners"]["a"].update(name="Someone"),
    "changed drafts setting": lambda d: d["settings"].update(therapist_sees_drafts=False),
    "no digest": lambda d: d.pop("digest"),
    "digest of another file": lambda d: d.update(digest="0" * 64),
    "digest not hex": lambda d: d.update(digest="z" * 64),
}


@pytest.mark.parametrize("tamper", UNSEALED.values(), ids=list(UNSEALED))
def test_a_changed_document_without_a_new_digest_is_refused(tamper: Tamper) -> None:
    doc = _doc()
    assert seeded(copy.deepcopy(doc))  # the untouched document is fine
    tamper(doc)
    error = refused(doc)
    assert "Something else" not in str(error) and "Someone" not in str(error)


def _over_limit_parts(doc: dict[str, Any]) -> None:
    template = _part_of(doc, "a")
    for n in range(61):
        doc["parts"].append({**template, "id": f"extra{n}"})


def _dangling_need(doc: dict[str, Any]) -> None:
    doc["needs"][0]["part"] = "no-such-part"


def _duplicate_part_id(doc: dict[str, Any]) -> None:
    doc["parts"].append(dict(doc["parts"][0]))


def _link_to_itself(doc: dict[str, Any]) -> None:
    doc["links"][0]["target"] = doc["links"][0]["source"]


def _protects_the_other_partner(doc: dict[str, Any]) -> None:
    link = next(link for link in doc["links"] if link["kind"] == "protects")
    link["target"] = _part_of(doc, "b")["id"]


def _link_owned_by_the_other(doc: dict[str, Any]) -> None:
    doc["links"][0]["owner"] = "b"


def _duplicate_link(doc: dict[str, Any]) -> None:
    doc["links"].append({**doc["links"][0], "id": "another-link"})


SEALED: dict[str, Tamper] = {
    "wrong schema": lambda d: d.update(schema="partsboard.export/4"),
    "unknown need field": lambda d: d["needs"][0].update(secret="x"),
    "unshared need": lambda d: d["needs"][0].update(shared=False),
    "note without an answer": lambda d: d["needs"][0].update(answer=None),
    "two needs of one part": lambda d: d["needs"].append(dict(d["needs"][0])),
    "two check-ins of one partner": lambda d: d["checkins"].append(dict(d["checkins"][0])),
    "duplicate note id": lambda d: d["notes"].append(dict(d["notes"][0])),
    "order as text": lambda d: d["agreements"][0].update(order="1"),
    "negative order": lambda d: d["links"][0].update(order=-1),
    "not a partsboard schema": lambda d: d.update(schema="something/1"),
    "partner kind": lambda d: d.update(kind="partner", viewer="a"),
    "therapist kind, partner viewer": lambda d: d.update(viewer="a"),
    "unknown top-level field": lambda d: d.update(extra=1),
    "unknown part field": lambda d: _part_of(d, "a").update(secret="x"),
    "dangling link source": lambda d: d["links"][0].update(source="no-such-part"),
    "dangling link target": lambda d: d["links"][0].update(target="no-such-part"),
    "dangling need": _dangling_need,
    "link to itself": _link_to_itself,
    "protects the other partner's part": _protects_the_other_partner,
    "link owned by the other partner": _link_owned_by_the_other,
    "duplicate link": _duplicate_link,
    "duplicate part id": _duplicate_part_id,
    "duplicate agreement id": lambda d: d["agreements"].append(dict(d["agreements"][0])),
    "too many parts": _over_limit_parts,
    "too many agreements": lambda d: d["agreements"].extend(
        {"id": f"ag{n}", "text": "more", "acks": []} for n in range(31)),
    "part name too long": lambda d: _part_of(d, "a").update(name="x" * 81),
    "part name with a line break": lambda d: _part_of(d, "a").update(name="two\nlines"),
    "empty part name": lambda d: _part_of(d, "a").update(name="   "),
    "note too long": lambda d: d["notes"][0].update(text="x" * 2001),
    "display name too long": lambda d: d["partners"]["a"].update(name="x" * 41),
    "bad colour": lambda d: d["partners"]["a"].update(color="red;background:url(x)"),
    "one partner only": lambda d: d["partners"].pop("b"),
    "a third partner": lambda d: d["partners"].update(c={"name": "C", "color": "#000000"}),
    "wrong part kind": lambda d: _part_of(d, "a").update(kind="villain"),
    "wrong link kind": lambda d: d["links"][0].update(kind="hates"),
    "wrong owner": lambda d: _part_of(d, "a").update(owner="c"),
    "unshared part": lambda d: _part_of(d, "a").update(shared=False),
    "x out of the board": lambda d: _part_of(d, "a").update(x=1.5),
    "x as text": lambda d: _part_of(d, "a").update(x="0.5"),
    "shared as text": lambda d: _part_of(d, "a").update(shared="yes"),
    "blend over 10": lambda d: _part_of(d, "b").update(blend=11),
    "blend as bool": lambda d: _part_of(d, "b").update(blend=True),
    "stage as text": lambda d: d.update(stage="5"),
    "stage 6": lambda d: d.update(stage=6),
    "four stage names": lambda d: d["stage_names"].pop(),
    "parts not a list": lambda d: d.update(parts={"x": 1}),
    "answer without a request": lambda d: d["needs"][0].update(request=None),
    "unknown answer": lambda d: d["needs"][0].update(answer="maybe"),
    "unshared check-in": lambda d: d["checkins"][0].update(shared=False),
    "check-in with a ninth quality": lambda d: d["checkins"][0]["scores"].update(grace=5),
    "check-in score over 10": lambda d: d["checkins"][0]["scores"].update(calm=11),
    "id too long": lambda d: _part_of(d, "a").update(id="x" * 65),
    "control character": lambda d: d["agreements"][0].update(text="bell\x07"),
    "lone surrogate": lambda d: d["agreements"][0].update(text="half \ud800"),
}


@pytest.mark.parametrize("tamper", SEALED.values(), ids=list(SEALED))
def test_an_invalid_document_is_refused_even_with_a_fresh_digest(tamper: Tamper) -> None:
    doc = _doc()
    tamper(doc)
    try:
        reseal(doc)
    except ValueError:  # what JSON cannot carry cannot be sealed either
        doc["digest"] = "0" * 64
    assert refused(doc).message != DAMAGED  # refused for what it says, not for its digest


def test_messages_say_what_is_wrong_without_quoting_the_file() -> None:
    doc = _doc()
    assert refused([doc]).message == NOT_AN_EXPORT
    assert refused("partsboard.export/1").message == NOT_AN_EXPORT
    assert refused(reseal({**doc, "schema": "partsboard.export/9"})).message == WRONG_VERSION
    board, _ = full_board()
    assert refused(via_file(export_for(board.room, "a", 1.0))).message == NOT_THERAPIST
    changed = copy.deepcopy(doc)
    _part_of(changed, "a")["name"] = "<script>x</script>"
    error = refused(changed)
    assert error.message == DAMAGED and "script" not in repr(error.to_wire())
    resealed = reseal(changed)
    resealed["parts"][0]["x"] = "<script>x</script>"
    assert "script" not in repr(refused(reseal(resealed)).to_wire())


def test_limits_of_the_new_room_apply_to_the_document() -> None:
    doc = _doc()
    refused(copy.deepcopy(doc), limits=Limits(parts_per_partner=1))
    refused(copy.deepcopy(doc), limits=Limits(agreements=0))
    refused(copy.deepcopy(doc), limits=Limits(notes=0))
    refused(copy.deepcopy(doc), limits=Limits(name_length=5))
    refused(copy.deepcopy(doc), limits=Limits(links_per_partner=1))
    assert seeded(doc, limits=Limits(parts_per_partner=2, links_per_partner=2))


def test_a_new_id_maker_that_repeats_itself_is_caught() -> None:
    refused(_doc(), new_id=lambda: "same")


# ---------------------------------------------------------------- property: random boards

# Mostly usable words (any script, punctuation, symbols), sometimes anything at all.
WORDS = st.text(st.characters(codec="utf-8", categories=["L", "N", "P", "S", "Zs"]),
                min_size=1, max_size=16).filter(str.strip)
ANY_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
NAMES = st.one_of(WORDS, WORDS, WORDS, ANY_TEXT)
KINDS = st.sampled_from(["manager", "firefighter", "exile", "unsure"])
PARTNER_ROLES: tuple[Role, Role] = ("a", "b")


def _pick(data: st.DataObject, options: list[str]) -> str:
    return data.draw(st.sampled_from(options or ["missing-id"]))


def _parts(board: Board, owner: Role | None = None, *, shared: bool | None = None) -> list[str]:
    return [key for key, part in board.room.parts.items()
            if (owner is None or part.owner == owner)
            and (shared is None or part.shared == shared)]


def _often(data: st.DataObject) -> bool:
    return data.draw(st.integers(0, 3)) > 0


def grow_board(board: Board, data: st.DataObject) -> None:
    """Steps most of which succeed, so boards have parts, links, needs and answers."""
    for partner in PARTNER_ROLES:
        for _ in range(data.draw(st.integers(0, 6))):
            board.try_do(partner, "part.add", name=data.draw(NAMES), kind=data.draw(KINDS),
                         x=data.draw(st.floats(0, 1)), y=data.draw(st.floats(0, 1)))
        for part_id in _parts(board, partner):
            if data.draw(st.booleans()):
                board.try_do(partner, "part.reveal", id=part_id, confirm=True)
            if data.draw(st.booleans()):
                board.try_do(partner, "part.blend", id=part_id, level=data.draw(st.integers(0, 10)))
    for partner in PARTNER_ROLES:
        for _ in range(data.draw(st.integers(0, 5))):
            source = _pick(data, _parts(board, partner))
            target = _pick(data, [key for key in _parts(board)
                                  if key in _parts(board, partner) or key in _parts(board,
                                                                                    shared=True)])
            kind = "protects" if board.room.parts.get(target, None) is not None and \
                board.room.parts[target].owner == partner else "reacts_to"
            board.try_do(partner, "link.add", kind=kind, source=source, target=target)
        for part_id in _parts(board, partner, shared=True):
            if _often(data):
                board.try_do(partner, "need.set", part=part_id, text=data.draw(NAMES))
                if _often(data):
                    board.try_do(partner, "need.reveal", part=part_id)
                if _often(data):
                    board.try_do(partner, "need.self", part=part_id, text=data.draw(NAMES))
                if _often(data):
                    board.try_do(partner, "request.make", part=part_id, text=data.draw(NAMES))
        if data.draw(st.booleans()):
            board.try_do(partner, "checkin.set", note=data.draw(NAMES),
                         scores={q: data.draw(st.integers(0, 10)) for q in SELF_QUALITIES})
            if data.draw(st.booleans()):
                board.try_do(partner, "checkin.reveal")
    for partner in PARTNER_ROLES:
        other: Role = "b" if partner == "a" else "a"
        for part_id in _parts(board, other, shared=True):
            if _often(data):
                board.try_do(partner, "request.answer", part=part_id, note=data.draw(NAMES),
                             answer=data.draw(st.sampled_from(["yes", "not_yet", "lets_talk"])))
    for _ in range(data.draw(st.integers(0, 3))):
        board.try_do("therapist", "agreement.add", text=data.draw(NAMES))
    for _ in range(data.draw(st.integers(0, 3))):
        board.try_do("therapist", "note.add", text=data.draw(NAMES))
    for agreement_id in list(board.room.agreements):
        for partner in PARTNER_ROLES:
            if data.draw(st.booleans()):
                board.try_do(partner, "agreement.ack", id=agreement_id)


def random_step(board: Board, data: st.DataObject) -> None:
    """Any step at all, refused or not: withdrawals, removals, edits after the fact."""
    room = board.room
    who: Role = data.draw(st.sampled_from(PARTNER_ROLES))
    parts = list(room.parts)
    op = data.draw(st.sampled_from([
        "part.add", "part.reveal", "part.reveal_all", "part.withdraw",
        "part.remove", "part.edit", "part.move", "part.blend", "link.add", "link.remove",
        "checkin.set", "checkin.reveal", "checkin.withdraw", "need.set", "need.remove",
        "need.self", "request.make", "request.answer", "need.reveal", "need.withdraw",
        "agreement.add", "agreement.ack",
        "agreement.edit", "agreement.remove", "note.add", "note.edit", "partner.update",
    ]))
    if op == "part.add":
        board.try_do(who, op, name=data.draw(NAMES), kind=data.draw(KINDS),
                     x=data.draw(st.floats(0, 1)), y=data.draw(st.floats(0, 1)))
    elif op == "part.reveal":
        board.try_do(who, op, id=_pick(data, parts), confirm=data.draw(st.booleans()))
    elif op == "part.reveal_all":
        board.try_do(who, op, confirm=True)
    elif op in ("part.withdraw", "part.remove"):
        board.try_do(who, op, id=_pick(data, parts))
    elif op in ("checkin.reveal", "checkin.withdraw"):
        board.try_do(who, op)
    elif op == "part.edit":
        board.try_do(who, op, id=_pick(data, parts), name=data.draw(NAMES))
    elif op == "part.move":
        board.try_do(who, op, id=_pick(data, parts), x=data.draw(st.floats(0, 1)),
                     y=data.draw(st.floats(0, 1)))
    elif op == "part.blend":
        board.try_do(who, op, id=_pick(data, parts), level=data.draw(st.integers(0, 10)))
    elif op == "link.add":
        board.try_do(who, op, kind=data.draw(st.sampled_from(["protects", "reacts_to"])),
                     source=_pick(data, parts), target=_pick(data, parts))
    elif op == "link.remove":
        board.try_do(who, op, id=_pick(data, list(room.links)))
    elif op == "checkin.set":
        scores = {q: data.draw(st.integers(0, 10)) for q in SELF_QUALITIES}
        board.try_do(who, op, scores=scores, note=data.draw(NAMES))
    elif op in ("need.set", "need.self", "request.make"):
        board.try_do(who, op, part=_pick(data, parts), text=data.draw(NAMES))
    elif op in ("need.remove", "need.reveal", "need.withdraw"):
        board.try_do(who, op, part=_pick(data, parts))
    elif op == "request.answer":
        board.try_do(who, op, part=_pick(data, parts), note=data.draw(NAMES),
                     answer=data.draw(st.sampled_from(["yes", "not_yet", "lets_talk"])))
    elif op == "agreement.add":
        board.try_do("therapist", op, text=data.draw(NAMES))
    elif op == "agreement.ack":
        board.try_do(who, op, id=_pick(data, list(room.agreements)))
    elif op == "agreement.edit":
        board.try_do("therapist", op, id=_pick(data, list(room.agreements)),
                     text=data.draw(NAMES))
    elif op == "agreement.remove":
        board.try_do("therapist", op, id=_pick(data, list(room.agreements)))
    elif op == "note.add":
        board.try_do("therapist", op, text=data.draw(NAMES))
    elif op == "note.edit":
        board.try_do("therapist", op, id=_pick(data, list(room.notes)), text=data.draw(NAMES))
    elif op == "partner.update":
        board.try_do("therapist", op, partner=who, name=data.draw(NAMES))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), drafts=st.booleans(), steps=st.integers(0, 12))
def test_random_boards_export_privately_and_round_trip(data: st.DataObject, drafts: bool,
                                                        steps: int) -> None:
    board = Board(drafts=drafts)
    grow_board(board, data)
    for _ in range(steps):
        random_step(board, data)
    room = board.room

    doc = export_for(room, "therapist", EXPORTED_AT)
    shared = {key for key, part in room.parts.items() if part.shared}
    assert ids_of(doc["parts"]) == shared
    assert ids_of(doc["links"]) == {
        key for key, link in room.links.items() if {link.source, link.target} <= shared}
    assert ids_of(doc["needs"], "part") == {
        key for key, need in room.needs.items() if need.shared and key in shared}
    assert all(checkin["shared"] for checkin in doc["checkins"])
    assert ids_of(doc["notes"]) == set(room.notes)

    for partner in PARTNER_ROLES:
        mine = export_for(room, partner, EXPORTED_AT)
        visible = {key for key, part in room.parts.items()
                   if part.shared or part.owner == partner}
        assert ids_of(mine["parts"]) == visible
        assert "notes" not in mine
        assert all(checkin["shared"] or checkin["owner"] == partner
                   for checkin in mine["checkins"])

    for new_id in (None, Ids("n")):
        file = data.draw(st.sampled_from([via_file(doc), like_javascript(via_file(doc))]))
        again = export_for(seeded(file, new_id=new_id), "therapist", EXPORTED_AT)
        if new_id is None:
            assert shared_board(again) == shared_board(doc)
        else:
            assert relabelled(again) == relabelled(doc)
        assert again["stage"] == 1 and again["checkins"] == []
        assert all(agreement["acks"] == [] for agreement in again["agreements"])


# ---------------------------------------------------------------- the order things were made


class Countdown(Ids):
    """Fresh ids that sort the opposite way to the order they are handed out."""

    def __call__(self) -> str:
        self.count += 1
        return f"{self.prefix}{999_999 - self.count:06d}x"


AGREEMENTS = ("Either of us can pause.", "We speak for parts.", "No blaming.",
              "What is said here stays here.")
NEEDS = ("Noor needs time", "Kit needs rest", "Kit needs quiet")
NOTES = ("First note", "Second note", "Third note")


def ordered_board() -> Board:
    board = Board()
    board.ids = Countdown()
    for text in AGREEMENTS:
        board.new("therapist", "agreement.add", "agreements", text=text)
    assert sorted(board.room.agreements) != list(board.room.agreements)
    kit = board.part("a", "Kit's part", shared=True)
    noor = board.part("b", "Noor's part", shared=True)
    kit2 = board.part("a", "Kit's second part", shared=True)
    for owner, kind, source, target in (("b", "reacts_to", noor, kit),
                                        ("a", "reacts_to", kit, noor),
                                        ("a", "protects", kit2, kit)):
        board.new(owner, "link.add", "links", kind=kind, source=source, target=target)
    for owner, part, text in zip(("b", "a", "a"), (noor, kit2, kit), NEEDS, strict=True):
        board.do(owner, "need.set", part=part, text=text)
        board.do(owner, "need.reveal", part=part)
    for text in NOTES:
        board.new("therapist", "note.add", "notes", text=text)
    return board


def test_agreements_and_the_rest_export_in_the_order_they_were_made() -> None:
    board = ordered_board()
    for viewer in ("therapist", "a", "b"):
        doc = export_for(board.room, viewer, EXPORTED_AT)
        assert [a["text"] for a in doc["agreements"]] == list(AGREEMENTS)
        for coll in ("agreements", "links", "needs", *(("notes",) * (viewer == "therapist"))):
            orders = [item["order"] for item in doc[coll]]
            assert orders == sorted(orders) and len(doc[coll]) == len(set(orders)) > 1, coll
    doc = export_for(board.room, "therapist", EXPORTED_AT)
    assert [n["text"] for n in doc["notes"]] == list(NOTES)
    assert [n["text"] for n in doc["needs"]] == list(NEEDS)


def test_a_continued_room_keeps_the_order_and_what_comes_next_comes_after() -> None:
    doc = export_for(ordered_board().room, "therapist", EXPORTED_AT)
    for new_id in (None, Ids("fresh"), Countdown("back")):
        room = seeded(via_file(doc), new_id=new_id)
        again = export_for(room, "therapist", EXPORTED_AT)
        assert [a["text"] for a in again["agreements"]] == list(AGREEMENTS)
        assert relabelled(again) == relabelled(doc)
        ctx = machine.Context(9_001.0, Ids("later"))
        room, _ = machine.apply(room, "therapist",
                                actions.command("agreement.add", text="Added next week"), ctx)
        later = export_for(room, "therapist", EXPORTED_AT)
        assert [a["text"] for a in later["agreements"]] == [*AGREEMENTS, "Added next week"]
    # The order comes from `order`, not from where an item stands in the file.
    shuffled = via_file(doc)
    for coll in ("agreements", "links", "needs", "notes"):
        shuffled[coll].reverse()
    again = export_for(seeded(reseal(shuffled)), "therapist", EXPORTED_AT)
    assert [a["text"] for a in again["agreements"]] == list(AGREEMENTS)
    assert relabelled(again) == relabelled(doc)


def as_previous_version(doc: dict[str, Any]) -> dict[str, Any]:
    """The document as `partsboard.export/1` wrote it: no `order`, needs without `shared`."""
    old = copy.deepcopy(doc)
    old["schema"] = "partsboard.export/1"
    for coll in ("agreements", "links", "needs", "notes"):
        for item in old[coll]:
            item.pop("order")
    for need in old["needs"]:
        need.pop("shared")
    return reseal(old)


def test_last_weeks_export_of_the_previous_version_still_continues() -> None:
    board, _ = full_board()
    doc = via_file(export_for(board.room, "therapist", EXPORTED_AT))
    old = as_previous_version(doc)
    room = seeded(old)
    assert shared_board(export_for(room, "therapist", EXPORTED_AT)) == shared_board(doc)
    assert all(need.shared for need in room.needs.values()) and room.needs
    # Its lists are the order to keep.
    ordered = via_file(export_for(ordered_board().room, "therapist", EXPORTED_AT))
    again = export_for(seeded(as_previous_version(ordered)), "therapist", EXPORTED_AT)
    assert [a["text"] for a in again["agreements"]] == list(AGREEMENTS)
    # Checked as strictly as today's.
    bad = copy.deepcopy(old)
    bad["links"][0]["target"] = bad["links"][0]["source"]
    assert refused(reseal(bad)).message == INVALID
    assert refused({**old, "digest": "0" * 64}).message == DAMAGED


def test_a_partner_saves_their_copy_during_the_ending_moment() -> None:
    board, _ = full_board()
    before = {viewer: export_for(board.room, viewer, EXPORTED_AT) for viewer in ("a", "b")}
    board.do("therapist", "ending.start")
    assert board.room.board.ending is not None
    for partner in ("a", "b"):
        assert export_for(board.room, partner, EXPORTED_AT) == before[partner]


@pytest.mark.parametrize("fmt", ["json", "md", "html"])
@pytest.mark.parametrize("viewer", ["therapist", "a", "b"])
def test_every_format_lists_things_in_the_order_they_were_made(viewer: Role, fmt: str) -> None:
    from server.export_render import render_export

    body, _, _ = render_export(export_for(ordered_board().room, viewer, EXPORTED_AT), fmt)
    text = body.decode("utf-8")
    for texts in (AGREEMENTS, NEEDS, *((NOTES,) * (viewer == "therapist"))):
        where = [text.index(item) for item in texts]
        assert where == sorted(where), texts


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_an_unshared_need_is_marked_in_its_owners_copy_and_absent_from_the_others(
        fmt: str) -> None:
    from server.export_render import render_export

    board, _ = full_board()
    need = "A need Kit keeps to himself"
    copies = {viewer: render_export(export_for(board.room, viewer, EXPORTED_AT), fmt)[0]
              .decode("utf-8") for viewer in ("therapist", "a", "b")}
    (line,) = [line for line in copies["a"].splitlines() if need in line]
    assert "not shared" in line
    assert need not in copies["b"] and need not in copies["therapist"]
    (shared,) = [line for line in copies["b"].splitlines() if "To have time to think" in line]
    assert "not shared" not in shared
