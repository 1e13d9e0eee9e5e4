"""The local mirror of one viewer's board, kept by the rules every client follows (no I/O).

docs/protocol.md, section 12, "What a client does": an event whose seq is the mirror's
seq + 1 is applied; one the mirror already has is ignored (and noted: a correct server
never sends one); one that leaves a gap is never applied, and OutOfStep tells the
connection to drop and resume at once. A welcome's view replaces the mirror; its replay is
applied by the same rules, and a gap in it asks for a whole view. A welcome of another
epoch is the room lost. The browser's client/web/connection.js does the same.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

from rooms.views import apply_event

from .errors import SessionLost

View = dict[str, Any]
Frame = dict[str, Any]

RECENT_EVENTS: Final = 4096


class OutOfStep(Exception):
    """Drop this connection and resume at once; with fresh=True ask for a whole view."""

    def __init__(self, fresh: bool = False) -> None:
        super().__init__()
        self.fresh = fresh


class Mirror:
    """One viewer's view, its epoch and role, and the events it applied lately.

    `applied(event)` is called for each event applied, in order, replayed ones included;
    `anomaly(text)` for each surprise (a duplicate, a gap, an odd welcome)."""

    def __init__(self, room: str, *, applied: Callable[[Frame], None],
                 anomaly: Callable[[str], None]) -> None:
        self.room = room
        self.role: str | None = None
        self.epoch: str | None = None
        self.view: View | None = None
        self.fresh = False  # the next hello asks for a whole view, not a replay
        self._recent: OrderedDict[int, Frame] = OrderedDict()
        self._applied = applied
        self._anomaly = anomaly

    @property
    def seq(self) -> int:
        return int(self.view["seq"]) if self.view is not None else 0

    def resume(self) -> tuple[str, int] | None:
        """What the next hello resumes from, if anything."""
        if self.view is None or self.epoch is None or self.fresh:
            return None
        return self.epoch, self.seq

    def event_of(self, seq: int) -> Frame | None:
        """The event of a recent seq that this mirror applied (None for one a whole view
        brought)."""
        return self._recent.get(seq)

    def welcome(self, frame: Frame) -> None:
        if frame.get("room") != self.room:
            raise SessionLost("The server answered for another room.")
        epoch = frame.get("epoch")
        if self.epoch is not None and epoch != self.epoch:
            raise SessionLost()
        if self.role is not None and frame.get("role") != self.role:
            self._anomaly("the role changed across a reconnect")
        self.epoch = epoch
        self.role = frame.get("role")
        view, replay = frame.get("view"), frame.get("replay")
        if view is not None:
            self.view = view
            self.fresh = False
        elif self.view is None or not isinstance(replay, list):
            self._anomaly("a welcome with neither a view nor a replay to apply")
            raise OutOfStep(fresh=True)
        else:
            for event in replay:
                try:
                    self._apply(dict(event, t="ev"))
                except OutOfStep:
                    raise OutOfStep(fresh=True) from None
        if isinstance(frame.get("seq"), int) and frame["seq"] != self.seq:
            self._anomaly(f"welcome seq {frame['seq']} but the mirror is at {self.seq}")

    def event(self, frame: Frame) -> None:
        if self.view is None:
            self._anomaly("an event before any view")
            raise OutOfStep(fresh=True)
        self._apply(frame)

    def _apply(self, event: Frame) -> None:
        assert self.view is not None
        seq = event.get("seq")
        expected = self.seq + 1
        if isinstance(seq, int) and seq < expected:
            self._anomaly(f"duplicate: expected seq {expected}, got {seq}")
            return
        if seq != expected:
            self._anomaly(f"gap: expected seq {expected}, got {seq}")
            raise OutOfStep()
        apply_event(self.view, event)
        self._recent[expected] = event
        while len(self._recent) > RECENT_EVENTS:
            self._recent.popitem(last=False)
        self._applied(event)

    def keys(self) -> dict[str, set[str]]:
        """The ids held now, per collection."""
        colls: dict[str, dict[str, Any]] = (self.view or {}).get("colls", {})
        return {coll: set(items) for coll, items in colls.items()}

    def new_item(self, event: Frame, before: dict[str, set[str]]) -> str:
        """The id of the one item `event` made, given the ids held before it was sent.

        After a resume with a whole view the event is unknown: the item is then the one
        new id of the mirror, of this viewer's own if others made some meanwhile."""
        if not event.get("resynced"):
            made = [str(key) for coll, key, value in event.get("changes", ())
                    if value is not None and key not in before.get(coll, set())]
        else:
            colls = (self.view or {}).get("colls", {})
            new = [(str(key), value) for coll, items in colls.items()
                   for key, value in items.items() if key not in before.get(coll, set())]
            made = [key for key, _ in new]
            if len(made) > 1:
                made = [key for key, value in new if value.get("owner") in (None, self.role)]
        if len(made) != 1:
            raise LookupError(f"the event of seq {event.get('seq')} made no one new item")
        return made[0]
