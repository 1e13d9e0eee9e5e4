"""Privacy in one place: who may see each item, and what each viewer receives.

A view is a plain dict, the same shape for every viewer:

    {"seq": int, "viewer": role, "counts": {...}, "colls": {coll: {id: value}}}

An entity of a collection is visible to exactly the roles of its audience.
Every committed change becomes one Event listing each entity that changed in
value or audience, with its audience before and after. `event_for` turns it
into what one viewer may know: the new value where they are in the audience,
a removal where they were and are no longer, and nothing otherwise. A viewer
who may know nothing of the change gets a placeholder carrying only the
sequence number, the actor's role and the public counts, so every viewer
still receives every sequence number.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec

from .model import PARTNERS, ROLES, Part, Role, Room

Audience = frozenset[Role]
EVERYONE: Audience = frozenset(ROLES)
THERAPIST_ONLY: Audience = frozenset({"therapist"})
NOBODY: Audience = frozenset()

COLLECTIONS = (
    "room", "partners", "agreements", "parts", "links",
    "checkins", "needs", "notes", "overwhelm", "ready",
)


class Change(msgspec.Struct, frozen=True, array_like=True):
    coll: str
    id: str
    value: Any
    audience: tuple[Role, ...]
    before: tuple[Role, ...]


class Event(msgspec.Struct, frozen=True):
    seq: int
    op: str
    actor: Role
    at: float
    changes: tuple[Change, ...]
    counts: dict[str, dict[str, int]]


def drafts_audience(room: Room, owner: Role) -> Audience:
    if room.settings.therapist_sees_drafts:
        return frozenset({owner, "therapist"})
    return frozenset({owner})


def part_audience(room: Room, part: Part) -> Audience:
    return EVERYONE if part.shared else drafts_audience(room, part.owner)


def _part_id_audience(room: Room, part_id: str) -> Audience:
    part = room.parts.get(part_id)
    return part_audience(room, part) if part is not None else NOBODY


def entities(room: Room, coll: str) -> Iterator[tuple[str, Any, Audience]]:
    """(id, struct, audience) of every entity in one collection of the room."""
    if coll == "room":
        yield "board", room.board, EVERYONE
        yield "settings", room.settings, EVERYONE
    elif coll == "partners":
        for key, info in room.partners.items():
            yield key, info, EVERYONE
    elif coll == "agreements":
        for key, agreement in room.agreements.items():
            yield key, agreement, EVERYONE
    elif coll == "parts":
        for key, part in room.parts.items():
            yield key, part, part_audience(room, part)
    elif coll == "links":
        for key, link in room.links.items():
            audience = _part_id_audience(room, link.source) & _part_id_audience(room, link.target)
            yield key, link, audience
    elif coll == "checkins":
        for key, checkin in room.checkins.items():
            yield key, checkin, EVERYONE if checkin.shared else drafts_audience(room, checkin.owner)
    elif coll == "needs":
        for key, need in room.needs.items():
            yield key, need, _part_id_audience(room, need.part)
    elif coll == "notes":
        for key, note in room.notes.items():
            yield key, note, THERAPIST_ONLY
    elif coll == "overwhelm":
        for key, signal in room.overwhelm.items():
            yield key, signal, frozenset({"therapist", signal.by})
    elif coll == "ready":
        for key in room.ready:
            yield key, True, frozenset({"therapist", key})  # type: ignore[arg-type]
    else:
        raise KeyError(coll)


def counts(room: Room) -> dict[str, dict[str, int]]:
    """What anyone may know of what is not yet shared: numbers, never content."""
    out: dict[str, dict[str, int]] = {p: {"parts": 0, "checkin": 0} for p in PARTNERS}
    for part in room.parts.values():
        if not part.shared:
            out[part.owner]["parts"] += 1
    for checkin in room.checkins.values():
        if not checkin.shared:
            out[checkin.owner]["checkin"] = 1
    return out


def _wire(value: Any) -> Any:
    return msgspec.to_builtins(value)


def snapshot_for(room: Room, viewer: Role) -> dict[str, Any]:
    colls: dict[str, dict[str, Any]] = {}
    for coll in COLLECTIONS:
        colls[coll] = {key: _wire(value) for key, value, audience in entities(room, coll)
                       if viewer in audience}
    return {"seq": room.seq, "viewer": viewer, "counts": counts(room), "colls": colls}


# Collections whose audience depends on the parts, so they must be diffed when parts change.
_DEPENDS_ON_PARTS = ("links", "needs")


def make_event(old: Room, new: Room, actor: Role, op: str, at: float) -> Event:
    changes: list[Change] = []
    parts_changed = old.parts is not new.parts
    for coll in COLLECTIONS:
        attr = "board" if coll == "room" else coll
        if getattr(old, attr) is getattr(new, attr) and not (
            coll in _DEPENDS_ON_PARTS and parts_changed
        ):
            continue
        before = {key: (value, audience) for key, value, audience in entities(old, coll)}
        after = {key: (value, audience) for key, value, audience in entities(new, coll)}
        for key in sorted(before.keys() | after.keys()):
            was, now = before.get(key), after.get(key)
            if was is not None and now is not None and was[1] == now[1] and (
                was[0] is now[0] or was[0] == now[0]
            ):
                continue
            changes.append(Change(
                coll,
                key,
                _wire(now[0]) if now is not None else None,
                tuple(sorted(now[1])) if now is not None else (),
                tuple(sorted(was[1])) if was is not None else (),
            ))
    return Event(new.seq, op, actor, at, tuple(changes), counts(new))


def event_for(event: Event, viewer: Role) -> dict[str, Any]:
    visible = [
        [change.coll, change.id, change.value if viewer in change.audience else None]
        for change in event.changes
        if viewer in change.audience or viewer in change.before
    ]
    if not visible:
        return {"seq": event.seq, "hidden": True, "owner": event.actor, "counts": event.counts}
    return {
        "seq": event.seq,
        "op": event.op,
        "actor": event.actor,
        "at": event.at,
        "changes": visible,
        "counts": event.counts,
    }


class GapError(Exception):
    """A view was handed an event that does not follow its sequence number."""


def apply_event(view: dict[str, Any], event: dict[str, Any]) -> None:
    """Apply one viewer's event to that viewer's view, in place (clients use this)."""
    if event["seq"] != view["seq"] + 1:
        raise GapError(f"expected seq {view['seq'] + 1}, got {event['seq']}")
    for coll, key, value in event.get("changes", ()):
        if value is None:
            view["colls"][coll].pop(key, None)
        else:
            view["colls"][coll][key] = value
    view["counts"] = event["counts"]
    view["seq"] = event["seq"]
