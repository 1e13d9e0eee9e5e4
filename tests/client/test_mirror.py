"""The mirror's rules without a connection (client/mirror.py): events in order, duplicates
ignored, gaps and unusable welcomes answered with OutOfStep, another epoch is the room
lost, and the id of the item a command made found with or without its event."""

from __future__ import annotations

from typing import Any

import pytest

from client import SessionLost
from client.mirror import Mirror, OutOfStep

ROOM = "room-1"


def view(seq: int, **colls: dict[str, Any]) -> dict[str, Any]:
    return {"seq": seq, "viewer": "a", "counts": {},
            "colls": {"parts": {}, "links": {}, **colls}}


def ev(seq: int, *changes: list[Any]) -> dict[str, Any]:
    return {"t": "ev", "seq": seq, "op": "part.add", "actor": "a", "at": 1.0,
            "changes": list(changes), "counts": {"seq": seq}}


def welcome(*, view: dict[str, Any] | None = None, replay: list[dict[str, Any]] | None = None,
            epoch: str = "e1") -> dict[str, Any]:
    return {"t": "welcome", "role": "a", "room": ROOM, "epoch": epoch, "seq": 0,
            "view": view, "replay": replay, "presence": {}}


class Watched:
    def __init__(self) -> None:
        self.applied: list[int] = []
        self.anomalies: list[str] = []
        self.mirror = Mirror(ROOM, applied=lambda e: self.applied.append(e["seq"]),
                             anomaly=self.anomalies.append)


def part(pid: str, owner: str = "a") -> list[Any]:
    return ["parts", pid, {"id": pid, "owner": owner, "name": "x"}]


def test_events_apply_in_order_a_duplicate_is_ignored_and_a_gap_is_out_of_step() -> None:
    w = Watched()
    w.mirror.welcome(welcome(view=view(0)))
    w.mirror.event(ev(1, part("p1")))
    w.mirror.event(ev(1, part("p1")))
    assert (w.applied, w.mirror.seq) == ([1], 1)
    assert w.anomalies == ["duplicate: expected seq 2, got 1"]
    with pytest.raises(OutOfStep) as gap:
        w.mirror.event(ev(3, part("p3")))
    assert not gap.value.fresh
    assert w.mirror.seq == 1 and "p3" not in w.mirror.view["colls"]["parts"]  # type: ignore[index]
    assert w.mirror.resume() == ("e1", 1)


def test_a_replay_skips_what_the_mirror_has_and_a_gap_in_it_asks_for_a_whole_view() -> None:
    w = Watched()
    w.mirror.welcome(welcome(view=view(0)))
    w.mirror.event(ev(1, part("p1")))
    w.mirror.welcome(welcome(replay=[ev(1, part("p1")), ev(2, part("p2"))]))
    assert w.applied == [1, 2]
    with pytest.raises(OutOfStep) as gap:
        w.mirror.welcome(welcome(replay=[ev(4, part("p4"))]))
    assert gap.value.fresh
    w.mirror.fresh = True
    assert w.mirror.resume() is None


@pytest.mark.parametrize(("has_mirror", "unusable"), [
    (False, welcome()),  # neither a view nor a replay
    (True, welcome()),  # a mirror, but nothing to bring it on
    (False, welcome(replay=[ev(1)])),  # a replay, but no mirror to apply it to
])
def test_a_welcome_without_a_view_to_start_from_asks_for_one(
        has_mirror: bool, unusable: dict[str, Any]) -> None:
    w = Watched()
    if has_mirror:
        w.mirror.welcome(welcome(view=view(0)))
    with pytest.raises(OutOfStep) as out:
        w.mirror.welcome(unusable)
    assert out.value.fresh


def test_another_epoch_or_room_is_the_session_lost() -> None:
    w = Watched()
    w.mirror.welcome(welcome(view=view(0)))
    with pytest.raises(SessionLost):
        w.mirror.welcome(welcome(view=view(0), epoch="e2"))
    with pytest.raises(SessionLost):
        w.mirror.welcome({**welcome(view=view(0)), "room": "another"})


def test_a_change_to_a_collection_new_to_the_client_creates_it() -> None:
    w = Watched()
    w.mirror.welcome(welcome(view=view(0)))
    w.mirror.event(ev(1, ["later", "k", {"id": "k"}]))
    assert w.mirror.view["colls"]["later"] == {"k": {"id": "k"}}  # type: ignore[index]


def test_the_new_item_is_found_in_its_event_or_after_a_whole_view() -> None:
    w = Watched()
    w.mirror.welcome(welcome(view=view(0, parts={"p0": part("p0")[2]})))
    before = w.mirror.keys()
    made = ev(1, part("p0"), part("p1"))  # an event may also change items held before
    w.mirror.event(made)
    assert w.mirror.new_item(made, before) == "p1"

    # A whole view replaced the mirror: the event is unknown; others made items meanwhile.
    before = w.mirror.keys()
    w.mirror.welcome(welcome(view=view(9, parts={
        "p0": part("p0")[2], "p1": part("p1")[2], "p2": part("p2", owner="b")[2],
        "p3": part("p3")[2]})))
    resynced = {"t": "ev", "seq": 5, "op": "part.add", "changes": [], "resynced": True}
    assert w.mirror.new_item(resynced, before) == "p3"
    with pytest.raises(LookupError):
        w.mirror.new_item(ev(10), w.mirror.keys())
