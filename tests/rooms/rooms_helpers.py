"""Shared helpers for the tests of the pure core (tests/rooms).

The module has a name of its own (not `helpers`) because tests/rooms has no
__init__.py: pytest puts this folder on sys.path, and a plain `helpers` could
clash with another test folder's module of the same name.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from rooms import actions, machine, model, views
from rooms.errors import RoomError
from rooms.model import Limits, PartnerInfo, Role, Room
from rooms.stages import OPERATIONS

ALL_OPS = tuple(sorted(OPERATIONS))
SCORES_OK = {quality: 5 for quality in model.SELF_QUALITIES}


def encoded(value: Any) -> bytes:
    """Canonical bytes of a room, view or event, to compare before and after."""
    return msgspec.msgpack.encode(value)


def normalised(value: Any) -> Any:
    """A msgpack roundtrip: tuples become lists, structs become dicts."""
    return msgspec.msgpack.decode(msgspec.msgpack.encode(value))


class IdMaker:
    """Server-like fresh ids: unique, fixed width, none a substring of another."""

    def __init__(self, prefix: str = "id") -> None:
        self.prefix = prefix
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        return f"{self.prefix}{self.count:06d}q"


class Session:
    """One room driven through machine.apply, with the time and ids a server would give."""

    def __init__(
        self,
        *,
        names: tuple[str, str] = ("Ren", "Ola"),
        drafts: bool = True,
        limits: Limits | None = None,
        stage: int = 1,
        id_prefix: str = "id",
    ) -> None:
        self.ids = IdMaker(id_prefix)
        self.now = 1_000.0
        self.room: Room = machine.new_room(
            room_id="room-under-test",
            epoch="epoch-1",
            partners={"a": PartnerInfo(names[0], "#336699"), "b": PartnerInfo(names[1], "#993366")},
            therapist_sees_drafts=drafts,
            now=self.now,
            limits=limits or Limits(),
        )
        if stage != 1:
            self.do("therapist", "stage.set", stage=stage, confirm=True)

    def ctx(self) -> machine.Context:
        self.now += 1.0
        return machine.Context(self.now, self.ids)

    def do(self, actor: Role, op: str, **args: Any) -> views.Event:
        """Apply a command that must succeed; checks seq+1 and returns the event."""
        before = self.room
        self.room, event = machine.apply(self.room, actor, actions.command(op, **args), self.ctx())
        assert self.room.seq == before.seq + 1
        assert event.seq == self.room.seq
        assert event.op == op
        assert event.actor == actor
        return event

    def refuse(self, actor: Role, op: str, error: type[RoomError], **args: Any) -> RoomError:
        """Apply a command that must be refused with `error`; checks nothing changed."""
        before = encoded(self.room)
        room = self.room
        with pytest.raises(error) as info:
            machine.apply(self.room, actor, actions.command(op, **args), self.ctx())
        assert self.room is room
        assert encoded(self.room) == before, "a refused command changed the room"
        assert type(info.value) is error
        return info.value

    # shortcuts that build the state a test needs

    def part(self, owner: Role, name: str = "a part", *, shared: bool = False,
             kind: str = "unsure") -> str:
        event = self.do(owner, "part.add", name=name, kind=kind, x=0.25, y=0.75)
        (part_id,) = [c.id for c in event.changes if c.coll == "parts"]
        if shared:
            self.do(owner, "part.reveal", id=part_id, confirm=True)
        return part_id

    def link(self, owner: Role, kind: str, source: str, target: str) -> str:
        event = self.do(owner, "link.add", kind=kind, source=source, target=target)
        (link_id,) = [c.id for c in event.changes if c.coll == "links"]
        return link_id

    def need(self, owner: Role, part: str, text: str = "to be heard", *,
             shared: bool = True, self_offer: str | None = "my own patience") -> None:
        self.do(owner, "need.set", part=part, text=text)
        if self_offer is not None:
            self.do(owner, "need.self", part=part, text=self_offer)
        if shared:
            self.do(owner, "need.reveal", part=part)

    def agreement(self, text: str = "We can pause at any time.") -> str:
        event = self.do("therapist", "agreement.add", text=text)
        (agreement_id,) = [c.id for c in event.changes if c.coll == "agreements"]
        return agreement_id

    def note(self, text: str = "a note") -> str:
        event = self.do("therapist", "note.add", text=text)
        (note_id,) = [c.id for c in event.changes if c.coll == "notes"]
        return note_id

    def view(self, viewer: Role) -> dict[str, Any]:
        out: dict[str, Any] = normalised(views.snapshot_for(self.room, viewer))
        return out


def changed(event: views.Event, coll: str) -> dict[str, Any]:
    """{id: new value} of the event's changes in one collection (None = removed),
    normalised as a client would decode them."""
    out: dict[str, Any] = normalised({c.id: c.value for c in event.changes if c.coll == coll})
    return out
