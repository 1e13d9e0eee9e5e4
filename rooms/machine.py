"""The reducer: apply(room, actor, command, ctx) -> (room', event).

Checks run in a fixed order, cheapest and least revealing first: role, stage,
frozen board, then the arguments. Any refusal raises a RoomError before a
new room exists, so a refused command changes nothing. Parts and links of
the other partner that the actor may not see answer `not_found`, the same
as ids that never existed, so a refusal never confirms a private item.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import NamedTuple, TypeVar

import msgspec

from . import actions as a
from . import geometry
from .errors import BadRequest, Forbidden, Frozen, LimitExceeded, NotFound, StageLocked
from .model import (
    PART_DETAILS,
    PARTNERS,
    SELF_QUALITIES,
    Agreement,
    BoardState,
    CheckIn,
    Ending,
    Feeling,
    Limits,
    Link,
    LinkKind,
    Need,
    Note,
    Overwhelm,
    Part,
    PartKind,
    Partner,
    PartnerInfo,
    PastAnswer,
    PastCheckIn,
    Pause,
    Role,
    Room,
    Settings,
    StageChange,
    StageInfo,
    Turn,
    UTurn,
    other_partner,
)
from .stages import DEFAULT_STAGES, FIRST_STAGE, LAST_STAGE, OPERATIONS, UTURN_PROMPT
from .types import COLOR_PATTERN
from .views import Event, make_event, part_audience

T = TypeVar("T")
replace = msgspec.structs.replace
DEFAULT_LIMITS = Limits()
COLOR = re.compile(COLOR_PATTERN)


class Context(NamedTuple):
    """What the pure core cannot know by itself: the time and fresh ids."""

    now: float
    new_id: Callable[[], str]


def new_room(
    *,
    room_id: str,
    epoch: str,
    partners: Mapping[Partner, PartnerInfo],
    therapist_sees_drafts: bool,
    now: float,
    stages: tuple[StageInfo, ...] = DEFAULT_STAGES,
    limits: Limits = DEFAULT_LIMITS,
) -> Room:
    if len(stages) != LAST_STAGE:
        raise BadRequest("There must be five stages.", field="stages")
    checked = {
        partner: PartnerInfo(
            clean_text(info.name, limits.display_name_length, "name", single_line=True),
            checked_color(info.color),
        )
        for partner, info in partners.items()
    }
    if set(checked) != set(PARTNERS):
        raise BadRequest(field="partners")
    return Room(
        id=room_id,
        epoch=epoch,
        seq=0,
        created_at=now,
        settings=Settings(therapist_sees_drafts, stages, limits),
        board=BoardState(stage=FIRST_STAGE, history=(StageChange(FIRST_STAGE, 0, now),)),
        partners=dict(sorted(checked.items())),
    )


def apply(room: Room, actor: Role, command: a.Command, ctx: Context) -> tuple[Room, Event]:
    rule = OPERATIONS[command.op]
    if actor not in rule.roles:
        raise Forbidden()
    if room.stage < rule.stage:
        raise StageLocked()
    if rule.freezable and room.board.frozen:
        raise Frozen()
    changed = _HANDLERS[type(command)](room, actor, command, ctx)
    changed = replace(changed, seq=room.seq + 1)
    return changed, make_event(room, changed, actor, command.op, ctx.now)


# ---------------------------------------------------------------- helpers

def clean_text(text: str, limit: int, field: str, *, single_line: bool = False,
               allow_empty: bool = False) -> str:
    text = text.strip()
    if not text and not allow_empty:
        raise BadRequest("This cannot be empty.", field=field)
    if len(text) > limit:
        raise LimitExceeded("This text is too long.", field=field)
    allowed = "" if single_line else "\n\t\u2028\u2029"
    refused = ("Cc", "Zl", "Zp")  # control characters, and line breaks in a one-line name
    if any(unicodedata.category(ch) in refused and ch not in allowed for ch in text):
        raise BadRequest("This text contains control characters.", field=field)
    return text


def checked_color(color: str) -> str:
    if not COLOR.fullmatch(color):
        raise BadRequest("A colour is written like #1a2b3c.", field="color")
    return color.lower()


def _with(mapping: Mapping[str, T], key: str, value: T) -> dict[str, T]:
    out = dict(mapping)
    out[key] = value
    return out


def _without(mapping: Mapping[str, T], *keys: str) -> dict[str, T]:
    return {k: v for k, v in mapping.items() if k not in keys}


def _own_part(room: Room, actor: Role, part_id: str, field: str = "id") -> Part:
    part = room.parts.get(part_id)
    if part is None or part.owner != actor:
        raise NotFound(field=field)
    return part


def _visible_part(room: Room, actor: Role, part_id: str, field: str) -> Part:
    part = room.parts.get(part_id)
    if part is None or not (part.shared or part.owner == actor):
        raise NotFound(field=field)
    return part


def _sees(room: Room, actor: Role, part_id: str) -> bool:
    part = room.parts.get(part_id)
    return part is not None and (part.shared or part.owner == actor)


def _partner(actor: Role) -> Partner:
    assert actor in PARTNERS
    return actor


def _order(room: Room) -> int:
    """The order of an item made by the command being applied: the seq it will get."""
    return room.seq + 1


def _limits(room: Room) -> Limits:
    return room.settings.limits


def _set_board(room: Room, **changes: object) -> Room:
    return replace(room, board=replace(room.board, **changes))


def _drop_public_references(room: Room, part_ids: set[str]) -> Room:
    """What everyone sees stops naming parts that are no longer shared: the spotlight,
    and the part a turn spoke for."""
    if room.board.spotlight in part_ids:
        room = _set_board(room, spotlight=None)
    if any(t.part in part_ids for t in room.turns.values()):
        room = replace(room, turns={k: replace(t, part=None) if t.part in part_ids else t
                                    for k, t in room.turns.items()})
    return room


# ---------------------------------------------------------------- therapist

def _stage_set(room: Room, actor: Role, cmd: a.StageSet, ctx: Context) -> Room:
    if not FIRST_STAGE <= cmd.stage <= LAST_STAGE:
        raise BadRequest("There is no such stage.", field="stage")
    if cmd.stage == room.stage:
        return room
    if cmd.stage < room.stage and not cmd.confirm:
        raise BadRequest("Moving back a stage needs confirming.", field="confirm")
    history = (*room.board.history, StageChange(cmd.stage, room.seq + 1, ctx.now))
    return replace(_set_board(room, stage=cmd.stage, history=history), ready={})


def _agreement_add(room: Room, actor: Role, cmd: a.AgreementAdd, ctx: Context) -> Room:
    if len(room.agreements) >= _limits(room).agreements:
        raise LimitExceeded("No more agreements can be added.", field="agreements")
    text = clean_text(cmd.text, _limits(room).text_length, "text")
    agreement = Agreement(ctx.new_id(), text, order=_order(room))
    return replace(room, agreements=_with(room.agreements, agreement.id, agreement))


def _agreement(room: Room, agreement_id: str) -> Agreement:
    agreement = room.agreements.get(agreement_id)
    if agreement is None:
        raise NotFound(field="id")
    return agreement


def _agreement_edit(room: Room, actor: Role, cmd: a.AgreementEdit, ctx: Context) -> Room:
    old = _agreement(room, cmd.id)
    text = clean_text(cmd.text, _limits(room).text_length, "text")
    if text == old.text:
        return room
    # Acknowledgements were given to the old wording.
    new = replace(old, text=text, acks=())
    return replace(room, agreements=_with(room.agreements, old.id, new))


def _agreement_remove(room: Room, actor: Role, cmd: a.AgreementRemove, ctx: Context) -> Room:
    _agreement(room, cmd.id)
    return replace(room, agreements=_without(room.agreements, cmd.id))


def _agreement_ack(room: Room, actor: Role, cmd: a.AgreementAck, ctx: Context) -> Room:
    old = _agreement(room, cmd.id)
    partner = _partner(actor)
    if partner in old.acks:
        return room
    acks = tuple(sorted((*old.acks, partner)))
    return replace(room, agreements=_with(room.agreements, old.id, replace(old, acks=acks)))


def _spotlight_set(room: Room, actor: Role, cmd: a.SpotlightSet, ctx: Context) -> Room:
    if cmd.part is not None:
        part = room.parts.get(cmd.part)
        # Only a shared part can be in the spotlight; a draft answers like no part at all.
        if part is None or not part.shared:
            raise NotFound(field="part")
    return _set_board(room, spotlight=cmd.part)


def _freeze_set(room: Room, actor: Role, cmd: a.FreezeSet, ctx: Context) -> Room:
    return _set_board(room, frozen=cmd.frozen)


def _pause_raise(room: Room, actor: Role, cmd: a.PauseRaise, ctx: Context) -> Room:
    partner = _partner(actor)
    if any(pause.by == partner for pause in room.board.pauses):
        return room
    return _set_board(room, pauses=(*room.board.pauses, Pause(partner, ctx.now)))


def _pause_clear(room: Room, actor: Role, cmd: a.PauseClear, ctx: Context) -> Room:
    pauses = tuple(p for p in room.board.pauses if cmd.partner not in (None, p.by))
    if len(pauses) == len(room.board.pauses):
        return room
    return _set_board(room, pauses=pauses)


def _overwhelm_raise(room: Room, actor: Role, cmd: a.OverwhelmRaise, ctx: Context) -> Room:
    if actor in room.overwhelm:
        return room
    signal = Overwhelm(_partner(actor), ctx.now)
    return replace(room, overwhelm=_with(room.overwhelm, actor, signal))


def _overwhelm_ack(room: Room, actor: Role, cmd: a.OverwhelmAck, ctx: Context) -> Room:
    signal = room.overwhelm.get(cmd.partner)
    if signal is None:
        raise NotFound("There is no overwhelm signal to acknowledge.", field="partner")
    if signal.seen_at is not None:
        return room
    seen = replace(signal, seen_at=ctx.now)
    return replace(room, overwhelm=_with(room.overwhelm, cmd.partner, seen))


def _overwhelm_clear(room: Room, actor: Role, cmd: a.OverwhelmClear, ctx: Context) -> Room:
    return replace(room, overwhelm=_without(room.overwhelm, cmd.partner))


def _ending_start(room: Room, actor: Role, cmd: a.EndingStart, ctx: Context) -> Room:
    if room.board.ending is not None:
        return room
    return _set_board(room, ending=Ending(ctx.now))


def _ending_cancel(room: Room, actor: Role, cmd: a.EndingCancel, ctx: Context) -> Room:
    if room.board.ending is None:
        return room
    return _set_board(room, ending=None)


def _ready_set(room: Room, actor: Role, cmd: a.ReadySet, ctx: Context) -> Room:
    if cmd.ready:
        return replace(room, ready=_with(room.ready, actor, True))
    return replace(room, ready=_without(room.ready, actor))


def _note_add(room: Room, actor: Role, cmd: a.NoteAdd, ctx: Context) -> Room:
    if len(room.notes) >= _limits(room).notes:
        raise LimitExceeded("No more notes can be added.", field="notes")
    text = clean_text(cmd.text, _limits(room).text_length, "text")
    note = Note(ctx.new_id(), text, ctx.now, order=_order(room))
    return replace(room, notes=_with(room.notes, note.id, note))


def _note_edit(room: Room, actor: Role, cmd: a.NoteEdit, ctx: Context) -> Room:
    old = room.notes.get(cmd.id)
    if old is None:
        raise NotFound(field="id")
    note = replace(old, text=clean_text(cmd.text, _limits(room).text_length, "text"))
    return replace(room, notes=_with(room.notes, old.id, note))


def _note_remove(room: Room, actor: Role, cmd: a.NoteRemove, ctx: Context) -> Room:
    if cmd.id not in room.notes:
        raise NotFound(field="id")
    return replace(room, notes=_without(room.notes, cmd.id))


def _partner_update(room: Room, actor: Role, cmd: a.PartnerUpdate, ctx: Context) -> Room:
    old = room.partners[cmd.partner]
    name = old.name
    if cmd.name is not None:
        name = clean_text(cmd.name, _limits(room).display_name_length, "name", single_line=True)
    info = PartnerInfo(name, checked_color(cmd.color) if cmd.color is not None else old.color)
    return replace(room, partners=_with(room.partners, cmd.partner, info))


# ---------------------------------------------------------------- parts

def _part_add(room: Room, actor: Role, cmd: a.PartAdd, ctx: Context) -> Room:
    part = _new_part(room, _partner(actor), cmd.name, cmd.kind, cmd.x, cmd.y, ctx, "name")
    return _put_part(room, part)


def _new_part(room: Room, owner: Partner, name: str, kind: PartKind, x: float, y: float,
              ctx: Context, field: str, placed_by: Role | None = None) -> Part:
    most = _limits(room).parts_per_partner
    if sum(1 for p in room.parts.values() if p.owner == owner) >= most:
        raise LimitExceeded(f"This side of the board is full ({most} parts).", field="parts")
    name = clean_text(name, _limits(room).name_length, field, single_line=True)
    x, y = _settled(room, owner, None, geometry.Position(x, y), placed_by)
    return Part(ctx.new_id(), owner, name, kind, x, y)


def _settled(room: Room, owner: Partner, moving: str | None, wanted: geometry.Position,
             placed_by: Role | None = None) -> geometry.Position:
    """Where a card of `owner` dropped at `wanted` comes to rest: the nearest free spot on
    the owner's side, among the owner's own cards only (rooms/geometry.py says why), and of
    those only the ones `placed_by` can see, so the place tells them nothing of the rest."""
    others = (geometry.Position(p.x, p.y) for p in room.parts.values()
              if p.owner == owner and p.id != moving
              and (placed_by is None or placed_by in part_audience(room, p)))
    return geometry.settle(owner, wanted, others)


def _make_way(room: Room, newcomer: Part) -> Room:
    """Moves any card of the newcomer's owner that lies where it came to rest (a card the
    one who placed it could not see) to the nearest free place."""
    for part in sorted(room.parts.values(), key=lambda p: p.id):
        if part.id != newcomer.id and part.owner == newcomer.owner \
                and not geometry.apart(geometry.Position(part.x, part.y),
                                       geometry.Position(newcomer.x, newcomer.y)):
            x, y = _settled(room, part.owner, part.id, geometry.Position(part.x, part.y))
            room = _put_part(room, replace(part, x=x, y=y))
    return room


def _put_part(room: Room, part: Part) -> Room:
    return replace(room, parts=_with(room.parts, part.id, part))


def _part_edit(room: Room, actor: Role, cmd: a.PartEdit, ctx: Context) -> Room:
    part = _own_part(room, actor, cmd.id)
    if cmd.name is not None:
        name = clean_text(cmd.name, _limits(room).name_length, "name", single_line=True)
        part = replace(part, name=name)
    if cmd.kind is not None:
        part = replace(part, kind=cmd.kind)
    return _put_part(room, part)


def _part_move(room: Room, actor: Role, cmd: a.PartMove, ctx: Context) -> Room:
    part = _own_part(room, actor, cmd.id)
    x, y = _settled(room, part.owner, part.id, geometry.Position(cmd.x, cmd.y))
    if (x, y) == (part.x, part.y):
        return room
    return _put_part(room, replace(part, x=x, y=y))


def _part_tidy(room: Room, actor: Role, cmd: a.PartTidy, ctx: Context) -> Room:
    owner = _partner(actor)
    own = {k: v for k, v in room.parts.items() if v.owner == owner}
    protects = [(v.source, v.target) for v in room.links.values()
                if v.owner == owner and v.kind == "protects"]
    layout = geometry.tidy(owner, sorted(own), protects,
                           {k: geometry.Position(v.x, v.y) for k, v in own.items()})
    moved = {k: replace(own[k], x=x, y=y) for k, (x, y) in layout.items()
             if (x, y) != (own[k].x, own[k].y)}
    if not moved:
        return room
    return replace(room, parts={**room.parts, **moved})


def _part_remove(room: Room, actor: Role, cmd: a.PartRemove, ctx: Context) -> Room:
    part = _own_part(room, actor, cmd.id)
    links = {k: v for k, v in room.links.items() if part.id not in (v.source, v.target)}
    room = replace(
        room,
        parts=_without(room.parts, part.id),
        links=links,
        feelings={k: v for k, v in room.feelings.items() if v.part != part.id},
        needs=_without(room.needs, part.id),
    )
    return _drop_public_references(room, {part.id})


def _confirmed(cmd: a.PartReveal | a.PartRevealAll, parts: list[Part]) -> None:
    # Sharing an exile is a tender moment: clients ask first, and say so with `confirm`.
    if not cmd.confirm and any(part.kind == "exile" for part in parts):
        raise BadRequest("Sharing an exile needs confirming.", field="confirm")


def _part_reveal(room: Room, actor: Role, cmd: a.PartReveal, ctx: Context) -> Room:
    part = _own_part(room, actor, cmd.id)
    _confirmed(cmd, [part])
    if cmd.to == "therapist":
        changed = replace(part, with_therapist=True) if not part.shared else part
    else:
        changed = replace(part, shared=True)
    return room if changed == part else _put_part(room, changed)


def _part_reveal_all(room: Room, actor: Role, cmd: a.PartRevealAll, ctx: Context) -> Room:
    _confirmed(cmd, [p for p in room.parts.values() if p.owner == actor and not p.shared])
    parts = {
        k: replace(v, shared=True) if v.owner == actor and not v.shared else v
        for k, v in room.parts.items()
    }
    return replace(room, parts=parts)


def _part_withdraw(room: Room, actor: Role, cmd: a.PartWithdraw, ctx: Context) -> Room:
    part = _own_part(room, actor, cmd.id)
    changed = replace(part, shared=False, with_therapist=cmd.to == "therapist")
    if changed == part:
        return room
    return _drop_public_references(_put_part(room, changed), {part.id})


def _part_accept(room: Room, actor: Role, cmd: a.PartAccept, ctx: Context) -> Room:
    # Keeping a part keeps the links the therapist drew from it: they are the partner's too.
    part = _own_part(room, actor, cmd.id)
    if not part.by_therapist:
        return room
    links = {key: replace(link, by_therapist=False) if link.by_therapist and link.source == part.id
             else link for key, link in room.links.items()}
    return replace(_put_part(room, replace(part, by_therapist=False)), links=links)


# The therapist as scribe: what they write for a partner is that partner's, seen by the
# two of them (with_therapist) until the partner shares it; the therapist edits only what
# they wrote and the partner has not yet accepted.

def _scribe_part_add(room: Room, actor: Role, cmd: a.ScribePartAdd, ctx: Context) -> Room:
    part = _new_part(room, cmd.partner, cmd.name, cmd.kind, cmd.x, cmd.y, ctx, "name",
                     placed_by=actor)
    part = replace(part, with_therapist=True, by_therapist=True)
    return _make_way(_put_part(room, part), part)


def _scribed_part(room: Room, part_id: str, field: str) -> Part:
    part = room.parts.get(part_id)
    # A part its partner took back from the therapist answers like no part at all.
    if part is None or not part.by_therapist or "therapist" not in part_audience(room, part):
        raise NotFound(field=field)
    return part


def _scribe_part_edit(room: Room, actor: Role, cmd: a.ScribePartEdit, ctx: Context) -> Room:
    part = _scribed_part(room, cmd.id, "id")
    if cmd.name is not None:
        part = replace(part, name=clean_text(cmd.name, _limits(room).name_length, "name",
                                             single_line=True))
    if cmd.kind is not None:
        part = replace(part, kind=cmd.kind)
    return _put_part(room, _with_details(room, part, cmd))


def _scribe_link_add(room: Room, actor: Role, cmd: a.ScribeLinkAdd, ctx: Context) -> Room:
    # A link from a part the therapist wrote: seen by no one its source is hidden from.
    source = _scribed_part(room, cmd.source, "source")
    target = room.parts.get(cmd.target)
    if target is None or "therapist" not in part_audience(room, target) or (
            target.owner != source.owner and not target.shared):
        raise NotFound(field="target")
    return _add_link(room, source.owner, cmd.kind, source, target, _label(room, cmd.label),
                     ctx, by_therapist=True)


def _part_details(room: Room, actor: Role, cmd: a.PartDetails, ctx: Context) -> Room:
    part = _own_part(room, actor, cmd.id)
    return _put_part(room, _with_details(room, part, cmd))


def _with_details(room: Room, part: Part, cmd: a.PartDetails | a.ScribePartEdit) -> Part:
    changes = {}
    for field in PART_DETAILS:
        text = getattr(cmd, field)
        if text is not None:
            changes[field] = clean_text(text, _limits(room).detail_length, field,
                                        allow_empty=True)
    if changes.get("burden") and part.kind != "exile":
        raise BadRequest("Only an exile carries a burden.", field="burden")
    return replace(part, **changes)


def _part_blend(room: Room, actor: Role, cmd: a.PartBlend, ctx: Context) -> Room:
    part = _own_part(room, actor, cmd.id)
    return _put_part(room, replace(part, blend=cmd.level))


SYMMETRIC_LINKS = frozenset({"polarized_with", "allied_with"})


def _link_add(room: Room, actor: Role, cmd: a.LinkAdd, ctx: Context) -> Room:
    owner = _partner(actor)
    source = room.parts.get(cmd.source)
    if source is None or source.owner != owner:
        raise NotFound(field="source")
    target = _visible_part(room, actor, cmd.target, "target")
    return _add_link(room, owner, cmd.kind, source, target, _label(room, cmd.label), ctx)


def _add_link(room: Room, owner: Partner, kind: LinkKind, source: Part, target: Part,
              label: str, ctx: Context, *, by_therapist: bool = False) -> Room:
    # A part reacts to a part of either partner; the other kinds stay within one person.
    if kind != "reacts_to" and target.owner != owner:
        raise BadRequest("This kind of link joins two of your own parts.", field="target")
    if source.id == target.id:
        raise BadRequest("A part cannot link to itself.", field="target")
    ends = {(source.id, target.id)}
    if kind in SYMMETRIC_LINKS:
        ends.add((target.id, source.id))
    own_links = [v for v in room.links.values() if v.owner == owner]
    if any(v.kind == kind and (v.source, v.target) in ends for v in own_links):
        raise BadRequest("This link already exists.", field="target")
    if len(own_links) >= _limits(room).links_per_partner:
        raise LimitExceeded("No more links can be added.", field="links")
    link = Link(ctx.new_id(), owner, kind, source.id, target.id, order=_order(room),
                label=label, by_therapist=by_therapist)
    return replace(room, links=_with(room.links, link.id, link))


def _label(room: Room, label: str) -> str:
    return clean_text(label, _limits(room).name_length, "label", single_line=True,
                      allow_empty=True)


def _own_link(room: Room, actor: Role, link_id: str) -> Link:
    link = room.links.get(link_id)
    # A link onto a part the other partner has since withdrawn is hidden from its owner
    # too; it answers like a link that never existed, so the answer does not tell the
    # owner whether that part was withdrawn or removed. It comes back if the part does.
    if link is None or link.owner != actor or not _sees(room, actor, link.target):
        raise NotFound(field="id")
    return link


def _link_edit(room: Room, actor: Role, cmd: a.LinkEdit, ctx: Context) -> Room:
    link = _own_link(room, actor, cmd.id)
    label = _label(room, cmd.label)
    if label == link.label:
        return room
    return replace(room, links=_with(room.links, link.id, replace(link, label=label)))


def _link_remove(room: Room, actor: Role, cmd: a.LinkRemove, ctx: Context) -> Room:
    link = _own_link(room, actor, cmd.id)
    return replace(room, links=_without(room.links, link.id))


# ---------------------------------------------------------------- speaker and listener

def _open_turn(room: Room) -> Turn | None:
    return next((t for t in room.turns.values() if t.ended_at is None), None)


def _put_turn(room: Room, turn: Turn) -> Room:
    return replace(room, turns=_with(room.turns, turn.id, turn))


def _turn_start(room: Room, actor: Role, cmd: a.TurnStart, ctx: Context) -> Room:
    if _open_turn(room) is not None:
        raise BadRequest("End the open turn first.", field="speaker")
    return _start_turn(room, cmd.speaker, ctx)


def _start_turn(room: Room, speaker: Partner, ctx: Context) -> Room:
    if len(room.turns) >= _limits(room).turns:
        raise LimitExceeded("No more turns can be kept.", field="turns")
    turn = Turn(ctx.new_id(), speaker, other_partner(speaker), ctx.now, order=_order(room))
    return _put_turn(room, turn)


def _turn_end(room: Room, actor: Role, cmd: a.TurnEnd, ctx: Context) -> Room:
    turn = _open_turn(room)
    if turn is None:
        raise NotFound("There is no open turn.", field="turn")
    room = _put_turn(room, replace(turn, ended_at=ctx.now))
    return _start_turn(room, turn.listener, ctx) if cmd.swap else room


def _turn_of(room: Room, actor: Role, role: str) -> Turn:
    turn = _open_turn(room)
    if turn is None:
        raise NotFound("There is no open turn.", field="turn")
    if getattr(turn, role) != actor:
        raise Forbidden(f"Only the {role} does this in this turn.")
    return turn


def _turn_speak(room: Room, actor: Role, cmd: a.TurnSpeak, ctx: Context) -> Room:
    turn = _turn_of(room, actor, "speaker")
    text = clean_text(cmd.text, _limits(room).text_length, "text")
    if cmd.part is not None:
        # A turn is seen by everyone: only a shared part can be spoken for on it.
        part = room.parts.get(cmd.part)
        if part is None or part.owner != actor or not part.shared:
            raise NotFound(field="part")
    # Speaking again (after a correction) asks for a new reflection.
    return _put_turn(room, replace(turn, part=cmd.part, spoken=text, reflection="",
                                   heard=None, correction=""))


def _turn_reflect(room: Room, actor: Role, cmd: a.TurnReflect, ctx: Context) -> Room:
    turn = _turn_of(room, actor, "listener")
    if not turn.spoken:
        raise BadRequest("The speaker has not spoken yet.", field="text")
    text = clean_text(cmd.text, _limits(room).text_length, "text")
    return _put_turn(room, replace(turn, reflection=text, heard=None, correction=""))


def _turn_confirm(room: Room, actor: Role, cmd: a.TurnConfirm, ctx: Context) -> Room:
    turn = _turn_of(room, actor, "speaker")
    if not turn.reflection:
        raise BadRequest("The listener has not reflected yet.", field="heard")
    correction = clean_text(cmd.correction, _limits(room).text_length, "correction",
                            allow_empty=True)
    if cmd.heard and correction:
        raise BadRequest("A correction goes with not feeling heard.", field="correction")
    return _put_turn(room, replace(turn, heard=cmd.heard, correction=correction))


def _uturn_ask(room: Room, actor: Role, cmd: a.UturnAsk, ctx: Context) -> Room:
    if len(room.uturns) >= _limits(room).uturns:
        raise LimitExceeded("No more U-turns can be kept.", field="uturns")
    prompt = clean_text(cmd.prompt, _limits(room).text_length, "prompt", allow_empty=True)
    uturn = UTurn(ctx.new_id(), cmd.partner, prompt or UTURN_PROMPT, ctx.now,
                  order=_order(room))
    return replace(room, uturns=_with(room.uturns, uturn.id, uturn))


def _own_uturn(room: Room, actor: Role, uturn_id: str) -> UTurn:
    uturn = room.uturns.get(uturn_id)
    if uturn is None or uturn.partner != actor:
        raise NotFound(field="id")
    return uturn


def _uturn_answer(room: Room, actor: Role, cmd: a.UturnAnswer, ctx: Context) -> Room:
    uturn = _own_uturn(room, actor, cmd.id)
    text = clean_text(cmd.text, _limits(room).text_length, "text")
    uturn = replace(uturn, answer=text, answered_at=ctx.now)
    return replace(room, uturns=_with(room.uturns, uturn.id, uturn))


def _uturn_share(room: Room, actor: Role, cmd: a.UturnShare, ctx: Context) -> Room:
    uturn = _own_uturn(room, actor, cmd.id)
    if cmd.shared and not uturn.answer:
        raise BadRequest("Answer before sharing.", field="id")
    if uturn.shared == cmd.shared:
        return room
    return replace(room, uturns=_with(room.uturns, uturn.id, replace(uturn, shared=cmd.shared)))


# ---------------------------------------------------------------- feel-toward

def _part_feel(room: Room, actor: Role, cmd: a.PartFeel, ctx: Context) -> Room:
    part = _own_part(room, actor, cmd.id)
    if not set(cmd.qualities) <= set(SELF_QUALITIES):
        raise BadRequest("Self qualities are the 8 C's.", field="qualities")
    qualities = tuple(q for q in SELF_QUALITIES if cmd.qualities.get(q))
    other = clean_text(cmd.other, _limits(room).detail_length, "other", allow_empty=True)
    if not qualities and not other:
        raise BadRequest("Say at least one feeling.", field="qualities")
    if sum(1 for f in room.feelings.values() if f.part == part.id) \
            >= _limits(room).feelings_per_part:
        raise LimitExceeded("No more answers can be kept for this part.", field="feelings")
    feeling = Feeling(ctx.new_id(), part.id, part.owner, ctx.now, qualities, other,
                      order=_order(room))
    room = replace(room, feelings=_with(room.feelings, feeling.id, feeling))
    if cmd.new_part is None:
        return room
    # A feeling that is not Self's is another part, blended: add it beside the first.
    if not other:
        raise BadRequest("A new part comes from a feeling that is not Self's.",
                         field="new_part")
    blended = _new_part(room, part.owner, cmd.new_part, cmd.new_kind,
                        min(part.x + 0.08, 1.0), min(part.y + 0.08, 1.0), ctx, "new_part")
    return _add_link(_put_part(room, blended), part.owner, cmd.new_link, blended, part, "",
                     ctx)


# ---------------------------------------------------------------- Self check-in

def _checkin_set(room: Room, actor: Role, cmd: a.CheckinSet, ctx: Context) -> Room:
    if set(cmd.scores) != set(SELF_QUALITIES):
        raise BadRequest("Give a score for each of the 8 C's.", field="scores")
    note = clean_text(cmd.note, _limits(room).text_length, "note", allow_empty=True)
    owner = _partner(actor)
    old = room.checkins.get(owner)
    scores = {quality: cmd.scores[quality] for quality in SELF_QUALITIES}
    history: tuple[PastCheckIn, ...] = ()
    if old is not None:
        kept = _limits(room).checkins_kept
        history = (*old.history, PastCheckIn(old.scores, old.note, old.at))[-kept:] if kept \
            else ()
    checkin = CheckIn(owner, scores, note, shared=old.shared if old else False, at=ctx.now,
                      history=history)
    return replace(room, checkins=_with(room.checkins, owner, checkin))


def _set_checkin_shared(room: Room, actor: Role, shared: bool) -> Room:
    old = room.checkins.get(actor)
    if old is None:
        raise NotFound("There is no check-in yet.", field="checkin")
    if old.shared == shared:
        return room
    return replace(room, checkins=_with(room.checkins, actor, replace(old, shared=shared)))


def _checkin_reveal(room: Room, actor: Role, cmd: a.CheckinReveal, ctx: Context) -> Room:
    return _set_checkin_shared(room, actor, True)


def _checkin_withdraw(room: Room, actor: Role, cmd: a.CheckinWithdraw, ctx: Context) -> Room:
    return _set_checkin_shared(room, actor, False)


# ---------------------------------------------------------------- needs and requests

def _need_set(room: Room, actor: Role, cmd: a.NeedSet, ctx: Context) -> Room:
    part = _own_part(room, actor, cmd.part, "part")
    if not part.shared:
        raise BadRequest("Share this part before writing what it needs.", field="part")
    text = clean_text(cmd.text, _limits(room).text_length, "text")
    old = room.needs.get(part.id)
    need = replace(old, text=text) if old else Need(part.id, part.owner, text,
                                                    order=_order(room))
    return replace(room, needs=_with(room.needs, part.id, need))


def _own_need(room: Room, actor: Role, part_id: str) -> Need:
    need = room.needs.get(part_id)
    if need is None or need.owner != actor:
        raise NotFound(field="part")
    return need


def _need_self(room: Room, actor: Role, cmd: a.NeedSelf, ctx: Context) -> Room:
    need = _own_need(room, actor, cmd.part)
    text = clean_text(cmd.text, _limits(room).text_length, "text")
    return replace(room, needs=_with(room.needs, need.part, replace(need, self_offer=text)))


def _past_answers(room: Room, need: Need) -> tuple[PastAnswer, ...]:
    """The need's answers so far, the current one included, kept within the limit."""
    if need.answer is None or need.request is None:
        return need.answers
    past = PastAnswer(need.request, need.answer, need.answer_note, need.answered_at or 0.0)
    kept = _limits(room).answers_kept
    return (*need.answers, past)[-kept:] if kept else ()


def _need_remove(room: Room, actor: Role, cmd: a.NeedRemove, ctx: Context) -> Room:
    _own_need(room, actor, cmd.part)
    return replace(room, needs=_without(room.needs, cmd.part))


def _set_need_shared(room: Room, actor: Role, part_id: str, shared: bool) -> Room:
    need = _own_need(room, actor, part_id)
    if shared and not room.parts[need.part].shared:
        raise BadRequest("Share this part before sharing what it needs.", field="part")
    if need.shared == shared:
        return room
    return replace(room, needs=_with(room.needs, need.part, replace(need, shared=shared)))


def _need_reveal(room: Room, actor: Role, cmd: a.NeedReveal, ctx: Context) -> Room:
    return _set_need_shared(room, actor, cmd.part, True)


def _need_withdraw(room: Room, actor: Role, cmd: a.NeedWithdraw, ctx: Context) -> Room:
    return _set_need_shared(room, actor, cmd.part, False)


def _request_make(room: Room, actor: Role, cmd: a.RequestMake, ctx: Context) -> Room:
    need = _own_need(room, actor, cmd.part)
    if not room.parts[need.part].shared:
        raise BadRequest("Share this part before making a request.", field="part")
    if not need.shared:
        raise BadRequest("Share this need before making a request.", field="part")
    # IFIO's order: what one's own Self can offer the part comes before asking the partner.
    if need.self_offer is None:
        raise BadRequest("First write what your own Self can offer this part.",
                         field="self_offer")
    text = clean_text(cmd.text, _limits(room).text_length, "text")
    # A changed request is a new question: the earlier answer joins the history.
    need = replace(need, request=text, answer=None, answer_note="", answered_at=None,
                   answers=_past_answers(room, need))
    return replace(room, needs=_with(room.needs, need.part, need))


def _request_answer(room: Room, actor: Role, cmd: a.RequestAnswer, ctx: Context) -> Room:
    need = room.needs.get(cmd.part)
    # A need its asker may not see (not shared, or of a withdrawn part) answers exactly
    # like one that never existed.
    if need is None or need.owner != other_partner(_partner(actor)) \
            or not (need.shared and room.parts[need.part].shared):
        raise NotFound(field="part")
    if need.request is None:
        raise NotFound("There is no request to answer.", field="part")
    note = clean_text(cmd.note, _limits(room).text_length, "note", allow_empty=True)
    # Answering again (a "not yet" or "let's talk" revisited) keeps the earlier answer.
    need = replace(need, answer=cmd.answer, answer_note=note, answered_at=ctx.now,
                   answers=_past_answers(room, need))
    return replace(room, needs=_with(room.needs, need.part, need))


_HANDLERS: dict[type[a.Command], Callable[..., Room]] = {
    a.StageSet: _stage_set,
    a.AgreementAdd: _agreement_add,
    a.AgreementEdit: _agreement_edit,
    a.AgreementRemove: _agreement_remove,
    a.AgreementAck: _agreement_ack,
    a.SpotlightSet: _spotlight_set,
    a.FreezeSet: _freeze_set,
    a.PauseRaise: _pause_raise,
    a.PauseClear: _pause_clear,
    a.OverwhelmRaise: _overwhelm_raise,
    a.OverwhelmAck: _overwhelm_ack,
    a.OverwhelmClear: _overwhelm_clear,
    a.EndingStart: _ending_start,
    a.EndingCancel: _ending_cancel,
    a.ReadySet: _ready_set,
    a.TurnStart: _turn_start,
    a.TurnSpeak: _turn_speak,
    a.TurnReflect: _turn_reflect,
    a.TurnConfirm: _turn_confirm,
    a.TurnEnd: _turn_end,
    a.UturnAsk: _uturn_ask,
    a.UturnAnswer: _uturn_answer,
    a.UturnShare: _uturn_share,
    a.NoteAdd: _note_add,
    a.NoteEdit: _note_edit,
    a.NoteRemove: _note_remove,
    a.PartnerUpdate: _partner_update,
    a.PartAdd: _part_add,
    a.PartEdit: _part_edit,
    a.PartMove: _part_move,
    a.PartRemove: _part_remove,
    a.PartDetails: _part_details,
    a.PartAccept: _part_accept,
    a.ScribePartAdd: _scribe_part_add,
    a.ScribePartEdit: _scribe_part_edit,
    a.ScribeLinkAdd: _scribe_link_add,
    a.PartReveal: _part_reveal,
    a.PartRevealAll: _part_reveal_all,
    a.PartWithdraw: _part_withdraw,
    a.PartTidy: _part_tidy,
    a.PartBlend: _part_blend,
    a.PartFeel: _part_feel,
    a.LinkAdd: _link_add,
    a.LinkEdit: _link_edit,
    a.LinkRemove: _link_remove,
    a.CheckinSet: _checkin_set,
    a.CheckinReveal: _checkin_reveal,
    a.CheckinWithdraw: _checkin_withdraw,
    a.NeedSet: _need_set,
    a.NeedSelf: _need_self,
    a.NeedRemove: _need_remove,
    a.NeedReveal: _need_reveal,
    a.NeedWithdraw: _need_withdraw,
    a.RequestMake: _request_make,
    a.RequestAnswer: _request_answer,
}
assert set(_HANDLERS) == set(a.COMMANDS.values())
