"""Export documents: what a person takes home, and how a therapist's copy seeds a new room.

`export_for(room, viewer, exported_at)` builds a plain, JSON-able, versioned
document (schema `partsboard.export/3`), an `ExportDoc` made of the model's own
structs, so the document's schema is the model's:

- the therapist's copy holds the *shared* board only (whatever everyone in the
  room could see: shared parts, links between shared parts, shared check-ins,
  shared needs of shared parts), the agreements with their acknowledgements,
  the stage history and the therapist's notes. Partners' drafts never enter it,
  even when the room lets the therapist see drafts;
- a partner's copy holds exactly that partner's own view (the same audience
  rule as `views.snapshot_for(room, partner)`), their private items included,
  and never the therapist's notes.

Agreements, links, needs and notes are listed in the order they were made.
Every document ends with a `digest`: the SHA-256 of a canonical encoding of
everything else (see `digest_of`). It is a checksum against damaged or
hand-edited files, not a signature.

`room_from_export(doc, ...)` turns a therapist's document back into a fresh
room by applying the reducer's own commands to a new room, in the order the
items were made: the agreements, the shared parts with their blend levels,
links, needs, requests and answers, and the therapist's notes. So a document
can hold nothing the reducer would refuse, and the new room lists everything
in the document's order. The new room then starts at stage 1 with a fresh
history and unacknowledged agreements; Self check-ins (checked like any other
item, then dropped), spotlight, pauses and readiness belong to the session they
were made in. Its sequence number is that of the commands that rebuilt it, so
whatever is made next comes after what was carried over. Any invalid document
raises BadRequest(field="continue_from") with a fixed message.

A document of an earlier schema (`partsboard.export/2`, or `/1`: needs without
`shared`, items without `order`) continues too: its needs were all shared, and
its lists are in the order to keep.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from hashlib import sha256
from typing import Annotated, Any, Final, Literal, TypeVar

import msgspec

from .actions import command
from .errors import BadRequest, RoomError
from .machine import DEFAULT_LIMITS, Context, apply, new_room
from .model import (
    FIRST_STAGE,
    LAST_STAGE,
    PART_DETAILS,
    PARTNERS,
    Agreement,
    BoardState,
    CheckIn,
    Feeling,
    Limits,
    Link,
    Need,
    Note,
    Part,
    Partner,
    PartnerInfo,
    Role,
    Room,
    StageChange,
    StageInfo,
    StageNumber,
    Struct,
    Turn,
    UTurn,
    other_partner,
)
from .stages import DEFAULT_STAGES
from .views import EVERYONE, Audience, entities

SCHEMA: Final = "partsboard.export/3"
# Earlier schemas continue too: /2 lacks what /3 added (all of it optional), /1 also
# lacks `shared` on needs and `order` on items.
PREVIOUS_SCHEMAS: Final = ("partsboard.export/2", "partsboard.export/1")
OLDEST_SCHEMA: Final = PREVIOUS_SCHEMAS[-1]
FIELD: Final = "continue_from"

# Fixed messages: they never echo anything from the document.
NOT_AN_EXPORT: Final = "This is not a Partsboard export file."
WRONG_VERSION: Final = "This export file is from a version of Partsboard that cannot be read here."
NOT_THERAPIST: Final = "Only a therapist's export can start a new session."
DAMAGED: Final = "This export file was changed or damaged, so it cannot be used."
INVALID: Final = "This export file contains something that cannot be used."
NOT_ASKED_BEFORE: Final = "(Not asked in the earlier session.)"

# ---------------------------------------------------------------- the document


class ExportSettings(Struct, frozen=True):
    therapist_sees_drafts: bool


class ExportDoc(Struct, frozen=True):
    """One person's export; its items are the model's structs, in the order made."""

    schema: str
    kind: Literal["therapist", "partner"]
    viewer: Role
    exported_at: float
    stage: StageNumber
    stage_names: Annotated[tuple[str, ...], msgspec.Meta(min_length=LAST_STAGE,
                                                         max_length=LAST_STAGE)]
    stage_history: tuple[StageChange, ...]
    partners: dict[Partner, PartnerInfo]
    settings: ExportSettings
    agreements: tuple[Agreement, ...]
    parts: tuple[Part, ...]
    links: tuple[Link, ...]
    checkins: tuple[CheckIn, ...]
    needs: tuple[Need, ...]
    feelings: tuple[Feeling, ...] = ()  # schema /3 on
    turns: tuple[Turn, ...] = ()
    uturns: tuple[UTurn, ...] = ()
    notes: tuple[Note, ...] | msgspec.UnsetType = msgspec.UNSET  # the therapist's only
    digest: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")] | msgspec.UnsetType = (
        msgspec.UNSET)


Made = TypeVar("Made", Agreement, Link, Feeling, Need, Note, Turn, UTurn)


def in_order(items: Iterable[Made]) -> list[Made]:
    """Items in the order they were made."""
    return sorted(items, key=lambda item: item.order)


# ---------------------------------------------------------------- export


def export_for(room: Room, viewer: Role, exported_at: float) -> dict[str, Any]:
    """The export document of one viewer, digest included."""

    def sees(audience: Audience) -> bool:
        # The therapist takes home the shared board only, never a draft.
        return audience == EVERYONE if viewer == "therapist" else viewer in audience

    def visible(coll: str) -> list[Any]:
        return [value for _, value, audience in entities(room, coll) if sees(audience)]

    doc = ExportDoc(
        schema=SCHEMA,
        kind="therapist" if viewer == "therapist" else "partner",
        viewer=viewer,
        exported_at=exported_at,
        stage=room.stage,
        stage_names=tuple(info.name for info in room.settings.stages),
        stage_history=room.board.history,
        partners={partner: room.partners[partner] for partner in PARTNERS},
        settings=ExportSettings(room.settings.therapist_sees_drafts),
        agreements=tuple(in_order(visible("agreements"))),
        parts=tuple(visible("parts")),
        links=tuple(in_order(visible("links"))),
        feelings=tuple(in_order(visible("feelings"))),
        turns=tuple(in_order(visible("turns"))),
        uturns=tuple(in_order(visible("uturns"))),
        checkins=tuple(sorted(visible("checkins"), key=lambda checkin: checkin.owner)),
        needs=tuple(in_order(visible("needs"))),
        notes=tuple(in_order(room.notes.values())) if viewer == "therapist" else msgspec.UNSET,
    )
    # The document is what JSON gives back: lists, not tuples.
    body: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(doc))
    body["digest"] = digest_of(body)
    return body


def _canonical(value: Any) -> Any:
    # A float with no fraction is written as an integer, so a document that went
    # through a JavaScript JSON.parse/stringify (which writes 1.0 as 1) keeps its digest.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    return value


def digest_of(doc: Mapping[str, Any]) -> str:
    """SHA-256 hex of everything but `digest`: JSON with sorted keys, no spaces,
    UTF-8, integral numbers written without a fraction.

    Raises TypeError or ValueError for what JSON cannot carry (NaN, lone surrogates).
    """
    body = {key: value for key, value in doc.items() if key != "digest"}
    text = json.dumps(_canonical(body), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False)
    return sha256(text.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------- import


def room_from_export(
    doc: object,
    *,
    room_id: str,
    epoch: str,
    now: float,
    limits: Limits = DEFAULT_LIMITS,
    stages: tuple[StageInfo, ...] = DEFAULT_STAGES,
    new_id: Callable[[], str] | None = None,
) -> Room:
    """A new room at stage 1 seeded from a therapist's export document.

    With `new_id`, every part, link, agreement and note gets a fresh id from it
    (references follow); without, the document's ids are kept.
    """
    try:
        parsed = _parse(doc)
        return _rebuild(parsed, room_id=room_id, epoch=epoch, now=now, limits=limits,
                        stages=stages, new_id=new_id)
    except BadRequest as error:
        if error.field == FIELD:
            raise
        raise _refuse(INVALID) from None
    except RoomError:
        raise _refuse(INVALID) from None


def _refuse(message: str) -> BadRequest:
    return BadRequest(message, field=FIELD)


def _parse(doc: object) -> ExportDoc:
    if not isinstance(doc, Mapping):
        raise _refuse(NOT_AN_EXPORT)
    schema = doc.get("schema")
    if not isinstance(schema, str) or not schema.startswith("partsboard.export/"):
        raise _refuse(NOT_AN_EXPORT)
    if schema != SCHEMA and schema not in PREVIOUS_SCHEMAS:
        raise _refuse(WRONG_VERSION)
    if doc.get("kind") != "therapist" or doc.get("viewer") != "therapist":
        raise _refuse(NOT_THERAPIST)
    try:
        expected = digest_of(doc)
    except (TypeError, ValueError):
        raise _refuse(INVALID) from None
    if doc.get("digest") != expected:
        raise _refuse(DAMAGED)
    try:
        parsed = msgspec.convert(_upgraded(doc), ExportDoc)
    except msgspec.ValidationError:
        # msgspec's message may quote the document; none of it leaves here.
        raise _refuse(INVALID) from None
    shared = [item.shared for items in (parsed.parts, parsed.checkins, parsed.needs,
                                        parsed.uturns)
              for item in items]
    if not all(shared):
        raise _refuse(INVALID)  # a therapist's export holds the shared board only
    return parsed


def _upgraded(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A document of an earlier schema in today's shape. In /1 every need was visible
    to everyone, so shared; items without `order` keep the order listed. Before /3 no
    one was asked what their own Self could offer before a request: those requests carry
    a fixed sentence that says so, so they continue."""
    out = dict(doc)
    needs = doc.get("needs")
    if doc["schema"] == SCHEMA or not isinstance(needs, list):
        return out
    upgraded = []
    for need in needs:
        if isinstance(need, Mapping):
            if doc["schema"] == OLDEST_SCHEMA:
                need = {"shared": True, **need}
            if need.get("request") is not None:
                need = {"self_offer": NOT_ASKED_BEFORE, **need}
        upgraded.append(need)
    out["needs"] = upgraded
    return out


class _Rebuild:
    """A new room grown by the reducer's own commands, one item of the document at a time."""

    def __init__(self, room: Room, now: float, new_id: Callable[[], str] | None) -> None:
        self.room = room
        self.now = now
        self.new_id = new_id

    def do(self, actor: Role, op: str, *, made: str = "", at: float | None = None,
           **args: Any) -> None:
        ctx = Context(self.now if at is None else at, lambda: made)
        self.room, _ = apply(self.room, actor, command(op, **args), ctx)

    def make(self, actor: Role, op: str, coll: str, old_id: str | None = None, *,
             at: float | None = None, **args: Any) -> str:
        """Apply a command that must add one item to `coll` (under a fresh id when the
        document gave one); the new item's id."""
        made = "" if old_id is None else old_id if self.new_id is None else self.new_id()
        before = len(getattr(self.room, coll))
        self.do(actor, op, made=made, at=at, **args)
        if len(getattr(self.room, coll)) != before + 1:
            raise _refuse(INVALID)  # an item the document (or new_id) gave twice
        return made


def _rebuild(doc: ExportDoc, *, room_id: str, epoch: str, now: float, limits: Limits,
             stages: tuple[StageInfo, ...], new_id: Callable[[], str] | None) -> Room:
    built = _Rebuild(new_room(
        room_id=room_id, epoch=epoch, partners=doc.partners,
        therapist_sees_drafts=doc.settings.therapist_sees_drafts, now=now,
        stages=stages, limits=limits,
    ), now, new_id)
    built.do("therapist", "stage.set", stage=LAST_STAGE)  # every command unlocked

    for agreement in in_order(doc.agreements):
        built.make("therapist", "agreement.add", "agreements", agreement.id,
                   text=agreement.text)
    part_ids: dict[str, str] = {}
    for part in doc.parts:
        # A part the therapist wrote keeps its mark: the therapist writes it again.
        new = built.make("therapist", "scribe.part_add", "parts", part.id,
                         partner=part.owner, name=part.name, kind=part.kind, x=part.x,
                         y=part.y) if part.by_therapist else built.make(
            part.owner, "part.add", "parts", part.id, name=part.name, kind=part.kind,
            x=part.x, y=part.y)
        part_ids[part.id] = new
        details = {field: getattr(part, field) for field in PART_DETAILS
                   if getattr(part, field)}
        if details:
            built.do(part.owner, "part.details", id=new, **details)
        if part.with_therapist:
            built.do(part.owner, "part.reveal", id=new, to="therapist", confirm=True)
        built.do(part.owner, "part.reveal", id=new, confirm=True)
        if part.blend is not None:
            built.do(part.owner, "part.blend", id=new, level=part.blend)

    def part_id(old: str) -> str:
        if old not in part_ids:
            raise _refuse(INVALID)
        return part_ids[old]

    for link in in_order(doc.links):
        # A link the therapist drew keeps its mark the same way as its part.
        built.make("therapist" if link.by_therapist else link.owner,
                   "scribe.link_add" if link.by_therapist else "link.add", "links", link.id,
                   kind=link.kind, source=part_id(link.source), target=part_id(link.target),
                   label=link.label)
    for feeling in in_order(doc.feelings):
        built.make(feeling.owner, "part.feel", "feelings", feeling.id, at=feeling.at,
                   id=part_id(feeling.part), qualities=dict.fromkeys(feeling.qualities, True),
                   other=feeling.other)
    for need in in_order(doc.needs):
        of = part_id(need.part)
        built.make(need.owner, "need.set", "needs", part=of, text=need.text)
        if need.self_offer is not None:
            built.do(need.owner, "need.self", part=of, text=need.self_offer)
        built.do(need.owner, "need.reveal", part=of)
        for past in need.answers:
            built.do(need.owner, "request.make", part=of, text=past.request)
            built.do(other_partner(need.owner), "request.answer", part=of, at=past.at,
                     answer=past.answer, note=past.note)
        if need.request is not None:
            built.do(need.owner, "request.make", part=of, text=need.request)
        if need.answer is not None:
            built.do(other_partner(need.owner), "request.answer", part=of,
                     at=need.answered_at, answer=need.answer, note=need.answer_note)
        elif need.answer_note or need.answered_at is not None:
            raise _refuse(INVALID)  # no command writes a note without an answer
    for turn in in_order(doc.turns):
        built.make("therapist", "turn.start", "turns", turn.id, at=turn.at,
                   speaker=turn.speaker)
        if turn.spoken:
            built.do(turn.speaker, "turn.speak", text=turn.spoken,
                     part=None if turn.part is None else part_id(turn.part))
        if turn.reflection:
            built.do(turn.listener, "turn.reflect", text=turn.reflection)
        if turn.heard is not None:
            built.do(turn.speaker, "turn.confirm", heard=turn.heard,
                     correction=turn.correction)
        if turn.ended_at is not None:
            built.do("therapist", "turn.end", at=turn.ended_at)
    for uturn in in_order(doc.uturns):
        made = built.make("therapist", "uturn.ask", "uturns", uturn.id, at=uturn.at,
                          partner=uturn.partner, prompt=uturn.prompt)
        if uturn.answer:
            built.do(uturn.partner, "uturn.answer", at=uturn.answered_at, id=made,
                     text=uturn.answer)
        built.do(uturn.partner, "uturn.share", id=made)
    notes = () if isinstance(doc.notes, msgspec.UnsetType) else doc.notes
    for note in in_order(notes):
        built.make("therapist", "note.add", "notes", note.id, at=note.at, text=note.text)
    if len({checkin.owner for checkin in doc.checkins}) != len(doc.checkins):
        raise _refuse(INVALID)  # one check-in per partner
    for checkin in doc.checkins:
        for scores, text in [(p.scores, p.note) for p in checkin.history] + [
                (checkin.scores, checkin.note)]:
            built.do(checkin.owner, "checkin.set", scores=scores, note=text)

    room = built.room
    board = BoardState(stage=FIRST_STAGE, history=(StageChange(FIRST_STAGE, room.seq, now),))
    return msgspec.structs.replace(room, board=board, checkins={}, ready={})

