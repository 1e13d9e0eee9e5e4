"""Export documents: what a person takes home, and how a therapist's copy seeds a new room.

`export_for(room, viewer, exported_at)` builds a plain, JSON-able, versioned
document (schema `partsboard.export/1`):

- the therapist's copy holds the *shared* board only (whatever everyone in the
  room could see: shared parts, links between shared parts, shared check-ins,
  needs of shared parts), the agreements with their acknowledgements, the
  stage history and the therapist's notes. Partners' drafts never enter it,
  even when the room lets the therapist see drafts;
- a partner's copy holds exactly that partner's own view
  (`views.snapshot_for(room, partner)`), their private items included, and
  never the therapist's notes.

Every document ends with a `digest`: the SHA-256 of a canonical encoding of
everything else (see `digest_of`). It is a checksum against damaged or
hand-edited files, not a signature: `room_from_export` also validates every
field strictly, so even a well-sealed document cannot smuggle anything into a
room that the reducer itself would refuse.

`room_from_export(doc, ...)` turns a therapist's document back into a fresh
room at stage 1: the partners and the drafts setting, the agreements (with
their acknowledgements cleared, since a new session acknowledges them anew),
the shared parts, links, needs, requests and answers, and the therapist's
notes. Self check-ins, the stage, spotlight, pause and readiness belong to
the session they were made in and start afresh. Any invalid document raises
BadRequest(field="continue_from") with a fixed message.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from hashlib import sha256
from typing import Annotated, Any, Final, Literal

import msgspec

from .errors import BadRequest, RoomError
from .machine import DEFAULT_LIMITS, clean_text, new_room
from .model import (
    PARTNERS,
    SELF_QUALITIES,
    Agreement,
    Answer,
    Limits,
    Link,
    LinkKind,
    Need,
    Note,
    Part,
    PartKind,
    Partner,
    PartnerInfo,
    Role,
    Room,
    StageInfo,
)
from .stages import DEFAULT_STAGES, FIRST_STAGE, LAST_STAGE
from .types import Color as _Color
from .types import Coordinate as _Coordinate
from .types import Id as _Id
from .types import Level as _Level
from .types import Text as _Str
from .views import EVERYONE, entities, snapshot_for

SCHEMA: Final = "partsboard.export/1"
FIELD: Final = "continue_from"

# Fixed messages: they never echo anything from the document.
NOT_AN_EXPORT: Final = "This is not a Partsboard export file."
WRONG_VERSION: Final = "This export file is from a version of Partsboard that cannot be read here."
NOT_THERAPIST: Final = "Only a therapist's export can start a new session."
DAMAGED: Final = "This export file was changed or damaged, so it cannot be used."
INVALID: Final = "This export file contains something that cannot be used."

# ---------------------------------------------------------------- export


def export_for(room: Room, viewer: Role, exported_at: float) -> dict[str, Any]:
    """The export document of one viewer, digest included."""
    if viewer == "therapist":
        doc = _therapist_body(room)
    else:
        doc = _partner_body(room, viewer)
    body: dict[str, Any] = {
        "schema": SCHEMA,
        "kind": "therapist" if viewer == "therapist" else "partner",
        "viewer": viewer,
        "exported_at": exported_at,
        "stage": room.stage,
        "stage_names": [info.name for info in room.settings.stages],
        "stage_history": msgspec.to_builtins(room.board.history),
        "partners": msgspec.to_builtins(dict(sorted(room.partners.items()))),
        "settings": {"therapist_sees_drafts": room.settings.therapist_sees_drafts},
        **doc,
    }
    body = _plain(body)
    body["digest"] = digest_of(body)
    return body


def _plain(value: Any) -> Any:
    """Lists for tuples, all the way down: the document is what JSON gives back."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _shared(room: Room, coll: str) -> list[Any]:
    """Whatever everyone in the room could see of one collection."""
    return [msgspec.to_builtins(value) for _, value, audience in entities(room, coll)
            if audience == EVERYONE]


def _therapist_body(room: Room) -> dict[str, Any]:
    return {
        "agreements": _shared(room, "agreements"),
        "parts": _shared(room, "parts"),
        "links": _shared(room, "links"),
        "checkins": sorted(_shared(room, "checkins"), key=lambda c: str(c["owner"])),
        "needs": _shared(room, "needs"),
        "notes": [msgspec.to_builtins(note) for note in room.notes.values()],
    }


def _partner_body(room: Room, partner: Role) -> dict[str, Any]:
    colls = snapshot_for(room, partner)["colls"]
    return {
        "agreements": list(colls["agreements"].values()),
        "parts": list(colls["parts"].values()),
        "links": list(colls["links"].values()),
        "checkins": [colls["checkins"][key] for key in sorted(colls["checkins"])],
        "needs": list(colls["needs"].values()),
    }


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


# ---------------------------------------------------------------- the document's schema

# Hard caps that bound the decoder (rooms/types.py); the room's own limits are checked
# afterwards.
_Time = Annotated[float, msgspec.Meta(ge=0.0)]
_StageNo = Annotated[int, msgspec.Meta(ge=FIRST_STAGE, le=LAST_STAGE)]
_Digest = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
_Many = msgspec.Meta(max_length=10_000)


class _Struct(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


class _StageChangeDoc(_Struct, frozen=True):
    stage: _StageNo
    seq: Annotated[int, msgspec.Meta(ge=0)]
    at: _Time


class _PartnerDoc(_Struct, frozen=True):
    name: _Str
    color: _Color


class _SettingsDoc(_Struct, frozen=True):
    therapist_sees_drafts: bool


class _AgreementDoc(_Struct, frozen=True):
    id: _Id
    text: _Str
    acks: Annotated[tuple[Partner, ...], msgspec.Meta(max_length=2)] = ()


class _PartDoc(_Struct, frozen=True):
    id: _Id
    owner: Partner
    name: _Str
    kind: PartKind
    x: _Coordinate
    y: _Coordinate
    shared: bool
    blend: _Level | None = None


class _LinkDoc(_Struct, frozen=True):
    id: _Id
    owner: Partner
    kind: LinkKind
    source: _Id
    target: _Id


class _CheckinDoc(_Struct, frozen=True):
    owner: Partner
    scores: Annotated[dict[_Str, _Level], msgspec.Meta(max_length=len(SELF_QUALITIES))]
    note: _Str
    shared: bool


class _NeedDoc(_Struct, frozen=True):
    part: _Id
    owner: Partner
    text: _Str
    request: _Str | None = None
    answer: Answer | None = None
    answer_note: _Str = ""
    shared: bool = True


class _NoteDoc(_Struct, frozen=True):
    id: _Id
    text: _Str
    at: _Time


class _ExportDoc(_Struct, frozen=True):
    schema: str
    kind: Literal["therapist", "partner"]
    viewer: Role
    exported_at: _Time
    stage: _StageNo
    stage_names: Annotated[tuple[_Str, ...], msgspec.Meta(min_length=LAST_STAGE,
                                                          max_length=LAST_STAGE)]
    stage_history: Annotated[tuple[_StageChangeDoc, ...], _Many]
    partners: dict[Partner, _PartnerDoc]
    settings: _SettingsDoc
    agreements: Annotated[tuple[_AgreementDoc, ...], _Many]
    parts: Annotated[tuple[_PartDoc, ...], _Many]
    links: Annotated[tuple[_LinkDoc, ...], _Many]
    checkins: Annotated[tuple[_CheckinDoc, ...], msgspec.Meta(max_length=2)]
    needs: Annotated[tuple[_NeedDoc, ...], _Many]
    digest: _Digest
    notes: Annotated[tuple[_NoteDoc, ...], _Many] = ()


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
        return _build(parsed, room_id=room_id, epoch=epoch, now=now, limits=limits,
                      stages=stages, new_id=new_id)
    except BadRequest as error:
        if error.field == FIELD:
            raise
        raise BadRequest(INVALID, field=FIELD) from None
    except RoomError:
        raise BadRequest(INVALID, field=FIELD) from None


def _refuse(message: str) -> BadRequest:
    return BadRequest(message, field=FIELD)


def _parse(doc: object) -> _ExportDoc:
    if not isinstance(doc, Mapping):
        raise _refuse(NOT_AN_EXPORT)
    schema = doc.get("schema")
    if not isinstance(schema, str) or not schema.startswith("partsboard.export/"):
        raise _refuse(NOT_AN_EXPORT)
    if schema != SCHEMA:
        raise _refuse(WRONG_VERSION)
    if doc.get("kind") != "therapist" or doc.get("viewer") != "therapist":
        raise _refuse(NOT_THERAPIST)
    try:
        parsed = msgspec.convert(dict(doc), _ExportDoc)
    except msgspec.ValidationError:
        # msgspec's message may quote the document; none of it leaves here.
        raise _refuse(INVALID) from None
    try:
        expected = digest_of(doc)
    except (TypeError, ValueError):
        raise _refuse(INVALID) from None
    if expected != parsed.digest:
        raise _refuse(DAMAGED)
    return parsed


def _text(text: str, limit: int, *, single_line: bool = False, allow_empty: bool = False) -> str:
    """The reducer's own text rules (length, no control characters), refused as INVALID."""
    if any(unicodedata.category(ch) == "Cs" for ch in text):
        raise _refuse(INVALID)
    try:
        return clean_text(text, limit, FIELD, single_line=single_line, allow_empty=allow_empty)
    except RoomError:
        raise _refuse(INVALID) from None


def _unique(ids: Iterable[str]) -> None:
    seen: set[str] = set()
    for key in ids:
        if key in seen:
            raise _refuse(INVALID)
        seen.add(key)


def _per_partner(owners: Iterable[Partner], limit: int) -> None:
    owners = list(owners)
    if any(owners.count(partner) > limit for partner in PARTNERS):
        raise _refuse(INVALID)


def _finite(*values: float) -> None:
    if not all(math.isfinite(value) for value in values):
        raise _refuse(INVALID)


def _check(doc: _ExportDoc, limits: Limits) -> None:
    """Everything the reducer would have refused, checked once more on the document."""
    _finite(doc.exported_at, *(change.at for change in doc.stage_history),
            *(note.at for note in doc.notes))
    if set(doc.partners) != set(PARTNERS):
        raise _refuse(INVALID)
    if len(doc.agreements) > limits.agreements or len(doc.notes) > limits.notes:
        raise _refuse(INVALID)
    for collection in (doc.agreements, doc.parts, doc.links, doc.notes):
        _unique(item.id for item in collection)
    _unique(need.part for need in doc.needs)
    _unique(checkin.owner for checkin in doc.checkins)
    for agreement in doc.agreements:
        _unique(agreement.acks)
    _per_partner((part.owner for part in doc.parts), limits.parts_per_partner)
    _per_partner((link.owner for link in doc.links), limits.links_per_partner)

    parts = {part.id: part for part in doc.parts}
    if not all(part.shared for part in doc.parts):
        raise _refuse(INVALID)  # a therapist's export holds the shared board only
    _finite(*(part.x for part in doc.parts), *(part.y for part in doc.parts))
    triples: set[tuple[str, str, str]] = set()
    for link in doc.links:
        source, target = parts.get(link.source), parts.get(link.target)
        if source is None or target is None or source.id == target.id:
            raise _refuse(INVALID)
        if source.owner != link.owner:
            raise _refuse(INVALID)
        if (link.kind == "protects") != (target.owner == link.owner):
            raise _refuse(INVALID)
        triple = (link.kind, link.source, link.target)
        if triple in triples:
            raise _refuse(INVALID)
        triples.add(triple)
    for need in doc.needs:
        part = parts.get(need.part)
        if part is None or part.owner != need.owner or not need.shared:
            raise _refuse(INVALID)
        if need.request is None and (need.answer is not None or need.answer_note):
            raise _refuse(INVALID)
        if need.answer is None and need.answer_note:
            raise _refuse(INVALID)
    for checkin in doc.checkins:
        if set(checkin.scores) != set(SELF_QUALITIES) or not checkin.shared:
            raise _refuse(INVALID)
        _text(checkin.note, limits.text_length, allow_empty=True)


def _build(doc: _ExportDoc, *, room_id: str, epoch: str, now: float, limits: Limits,
           stages: tuple[StageInfo, ...], new_id: Callable[[], str] | None) -> Room:
    _check(doc, limits)

    def fresh(old: str) -> str:
        return old if new_id is None else new_id()

    room = new_room(
        room_id=room_id,
        epoch=epoch,
        partners={
            partner: PartnerInfo(
                _text(info.name, limits.display_name_length, single_line=True), info.color,
            )
            for partner, info in doc.partners.items()
        },
        therapist_sees_drafts=doc.settings.therapist_sees_drafts,
        now=now,
        stages=stages,
        limits=limits,
    )

    agreements: dict[str, Agreement] = {}
    for agreement in doc.agreements:
        # A new session acknowledges its agreements anew.
        new = Agreement(fresh(agreement.id), _text(agreement.text, limits.text_length))
        agreements[new.id] = new

    part_ids: dict[str, str] = {}
    parts: dict[str, Part] = {}
    for part in doc.parts:
        part_ids[part.id] = fresh(part.id)
        parts[part_ids[part.id]] = Part(
            part_ids[part.id], part.owner,
            _text(part.name, limits.name_length, single_line=True),
            part.kind, part.x, part.y, shared=True, blend=part.blend,
        )

    links: dict[str, Link] = {}
    for link in doc.links:
        new_link = Link(fresh(link.id), link.owner, link.kind,
                        part_ids[link.source], part_ids[link.target])
        links[new_link.id] = new_link

    needs: dict[str, Need] = {}
    for need in doc.needs:
        request = None if need.request is None else _text(need.request, limits.text_length)
        needs[part_ids[need.part]] = Need(
            part_ids[need.part], need.owner, _text(need.text, limits.text_length),
            request, need.answer,
            _text(need.answer_note, limits.text_length, allow_empty=True), shared=True,
        )

    notes: dict[str, Note] = {}
    for note in doc.notes:
        new_note = Note(fresh(note.id), _text(note.text, limits.text_length), note.at)
        notes[new_note.id] = new_note

    if len(set(agreements)) != len(doc.agreements) or len(set(links)) != len(doc.links) or (
        len(set(parts)) != len(doc.parts) or len(set(notes)) != len(doc.notes)
    ):
        raise _refuse(INVALID)  # new_id handed out the same id twice
    return msgspec.structs.replace(
        room, agreements=agreements, parts=parts, links=links, needs=needs, notes=notes,
    )
