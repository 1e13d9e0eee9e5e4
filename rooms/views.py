"""Privacy in one place: who may see each item, and what each viewer receives.

A view is a plain dict, the same shape for every viewer:

    {"seq": int, "viewer": role, "counts": {...}, "colls": {coll: {id: value}}}

An entity of a collection is visible to exactly the roles of its audience.
Every committed change becomes one Event listing each entity that changed in
value or audience, with its audience before and after. `event_for` turns it
into what one viewer may know: the new value where they are in the audience,
a removal where they were and are no longer, and nothing otherwise, with the
counts of what is not yet shared that they may know. A viewer who may know
nothing of the change gets a placeholder carrying only the sequence number,
the actor's role and those counts, so every viewer still receives every
sequence number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import msgspec

from .model import PARTNERS, ROLES, Part, Role, Room

Audience = frozenset[Role]
EVERYONE: Audience = frozenset(ROLES)
THERAPIST_ONLY: Audience = frozenset({"therapist"})
NOBODY: Audience = frozenset()

COLLECTIONS = (
    "room", "partners", "agreements", "parts", "links", "feelings",
    "checkins", "needs", "turns", "uturns", "notes", "overwhelm", "ready",
)


class Change(msgspec.Struct, frozen=True, array_like=True, gc=False):
    coll: str
    id: str
    value: Any
    audience: tuple[Role, ...]
    before: tuple[Role, ...]


class Event(msgspec.Struct, frozen=True, gc=False):
    seq: int
    op: str
    actor: Role
    at: float
    changes: tuple[Change, ...]
    counts: dict[str, dict[str, int]]


def drafts_audience(room: Room, owner: Role, with_therapist: bool = False) -> Audience:
    if with_therapist or room.settings.therapist_sees_drafts:
        return frozenset({owner, "therapist"})
    return frozenset({owner})


def written_audience(room: Room, owner: Role, shared: bool,
                     with_therapist: bool = False) -> Audience:
    """Who may see what a partner wrote: everyone once shared; else its owner, and the
    therapist too when the room lets the therapist see drafts or the owner shared it
    with the therapist."""
    return EVERYONE if shared else drafts_audience(room, owner, with_therapist)


def part_audience(room: Room, part: Part) -> Audience:
    return written_audience(room, part.owner, part.shared, part.with_therapist)


def _part_id_audience(room: Room, part_id: str) -> Audience:
    part = room.parts.get(part_id)
    return part_audience(room, part) if part is not None else NOBODY


def _members(room: Room, coll: str) -> Mapping[str, Any]:
    if coll == "room":
        return {"board": room.board, "settings": room.settings}
    members: Mapping[str, Any] = getattr(room, coll)
    return members


def audience_of(room: Room, coll: str, key: str, value: Any) -> Audience:
    """Who may see one entity of the room. The one place that decides it."""
    if coll in ("room", "partners", "agreements", "turns"):
        return EVERYONE
    if coll == "uturns":
        return EVERYONE if value.shared else frozenset({"therapist", value.partner})
    if coll == "parts":
        return part_audience(room, value)
    if coll == "links":
        return _part_id_audience(room, value.source) & _part_id_audience(room, value.target)
    if coll == "feelings":
        return _part_id_audience(room, value.part)
    if coll == "checkins":
        return written_audience(room, value.owner, value.shared)
    if coll == "needs":
        return _part_id_audience(room, value.part) & written_audience(room, value.owner,
                                                                       value.shared)
    if coll == "notes":
        return THERAPIST_ONLY
    if coll == "overwhelm":
        return frozenset({"therapist", value.by})
    if coll == "ready":
        return frozenset({"therapist", key})  # type: ignore[arg-type]
    raise KeyError(coll)


def entities(room: Room, coll: str) -> Iterator[tuple[str, Any, Audience]]:
    """(id, struct, audience) of every entity in one collection of the room."""
    for key, value in _members(room, coll).items():
        yield key, value, audience_of(room, coll, key, value)


# Who may learn how many of each kind of a partner's items are not yet shared (SPEC §3:
# those who may not see an item learn only that it exists). Everyone counts a partner's
# parts, check-in and needs; the therapist alone counts their feelings toward parts and
# their U-turn answers, of which the other partner learns nothing, not even that they exist.
COUNT_AUDIENCE: dict[str, Audience] = {
    "parts": EVERYONE, "checkin": EVERYONE, "needs": EVERYONE,
    "feelings": THERAPIST_ONLY, "uturns": THERAPIST_ONLY,
}


def counts(room: Room) -> dict[str, dict[str, int]]:
    """Every count of what is not yet shared, per partner: numbers, never content. Each
    viewer receives only the counts `counts_for` gives them."""
    out: dict[str, dict[str, int]] = {p: dict.fromkeys(COUNT_AUDIENCE, 0) for p in PARTNERS}
    for part in room.parts.values():
        if not part.shared:
            out[part.owner]["parts"] += 1
    for checkin in room.checkins.values():
        if not checkin.shared:
            out[checkin.owner]["checkin"] = 1
    for need in room.needs.values():
        if not need.shared:
            out[need.owner]["needs"] += 1
    for _, feeling, audience in entities(room, "feelings"):
        if audience != EVERYONE:
            out[feeling.owner]["feelings"] += 1
    for _, uturn, audience in entities(room, "uturns"):
        if uturn.answer and audience != EVERYONE:
            out[uturn.partner]["uturns"] += 1
    return out


def counts_for(all_counts: Mapping[str, Mapping[str, int]],
               viewer: Role) -> dict[str, dict[str, int]]:
    return {partner: {kind: n for kind, n in kinds.items() if viewer in COUNT_AUDIENCE[kind]}
            for partner, kinds in all_counts.items()}


def _wire(value: Any) -> Any:
    return msgspec.to_builtins(value)


def snapshot_for(room: Room, viewer: Role) -> dict[str, Any]:
    colls: dict[str, dict[str, Any]] = {}
    for coll in COLLECTIONS:
        colls[coll] = {key: _wire(value) for key, value, audience in entities(room, coll)
                       if viewer in audience}
    return {"seq": room.seq, "viewer": viewer, "counts": counts_for(counts(room), viewer),
            "colls": colls}


# Entities whose audience follows the parts they name, by collection.
_PART_REFERENCES: dict[str, Callable[[Any], tuple[str, ...]]] = {
    "links": lambda link: (link.source, link.target),
    "feelings": lambda feeling: (feeling.part,),
    "needs": lambda need: (need.part,),
}


def _changed_keys(before: Mapping[str, Any], after: Mapping[str, Any]) -> set[str]:
    # The reducer keeps every unchanged entity as the very same object.
    return {key for key in before.keys() | after.keys() if before.get(key) is not after.get(key)}


def make_event(old: Room, new: Room, actor: Role, op: str, at: float) -> Event:
    """The change from `old` to `new`: each entity whose value or audience changed.

    An entity's audience depends only on itself, except that links, feelings and needs follow
    the parts they name; so only entities that are new objects, or that name a part
    that is, need their audiences compared."""
    changes: list[Change] = []
    changed_parts = _changed_keys(old.parts, new.parts) if old.parts is not new.parts else set()
    for coll in COLLECTIONS:
        before, after = _members(old, coll), _members(new, coll)
        keys = _changed_keys(before, after) if before is not after else set()
        references = _PART_REFERENCES.get(coll)
        if changed_parts and references is not None:
            for members in (before, after):
                keys.update(key for key, value in members.items()
                            if changed_parts.intersection(references(value)))
        for key in sorted(keys):
            was, now = before.get(key), after.get(key)
            was_audience = audience_of(old, coll, key, was) if was is not None else NOBODY
            now_audience = audience_of(new, coll, key, now) if now is not None else NOBODY
            if was is not None and now is not None and was_audience == now_audience and (
                was is now or was == now
            ):
                continue
            changes.append(Change(
                coll,
                key,
                _wire(now) if now is not None else None,
                tuple(sorted(now_audience)) if now is not None else (),
                tuple(sorted(was_audience)) if was is not None else (),
            ))
    return Event(new.seq, op, actor, at, tuple(changes), counts(new))


def event_for(event: Event, viewer: Role) -> dict[str, Any]:
    visible = [
        [change.coll, change.id, change.value if viewer in change.audience else None]
        for change in event.changes
        if viewer in change.audience or viewer in change.before
    ]
    seen_counts = counts_for(event.counts, viewer)
    if not visible:
        return {"seq": event.seq, "hidden": True, "owner": event.actor, "counts": seen_counts}
    return {
        "seq": event.seq,
        "op": event.op,
        "actor": event.actor,
        "at": event.at,
        "changes": visible,
        "counts": seen_counts,
    }


class GapError(Exception):
    """A view was handed an event that does not follow its sequence number."""


def apply_event(view: dict[str, Any], event: dict[str, Any]) -> None:
    """Apply one viewer's event to that viewer's view, in place (clients use this)."""
    if event["seq"] != view["seq"] + 1:
        raise GapError(f"expected seq {view['seq'] + 1}, got {event['seq']}")
    for coll, key, value in event.get("changes", ()):
        items = view["colls"].setdefault(coll, {})  # a collection new to this client
        if value is None:
            items.pop(key, None)
        else:
            items[key] = value
    view["counts"] = event["counts"]
    view["seq"] = event["seq"]
