"""The board's geometry (rooms/geometry.py) and the reducer's use of it: cards come to rest
on free spots of their owner's side, deterministically, from their owner's parts alone."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st
from rooms_helpers import Session

from rooms import geometry
from rooms.errors import LimitExceeded
from rooms.geometry import CARD_H, CARD_W, HEIGHT, Position
from rooms.model import Partner, Room

coordinate = st.floats(0, 1)
spot = st.builds(Position, coordinate, coordinate)


def rect(p: Position) -> tuple[float, float, float, float]:
    left, top = geometry.box(p)
    return left, top, left + CARD_W, top + CARD_H * HEIGHT


def overlap(p: Position, q: Position) -> bool:
    a, b = rect(p), rect(q)
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def assert_no_collisions(room: Room) -> None:
    for p, q in itertools.combinations(room.parts.values(), 2):
        assert not overlap(Position(p.x, p.y), Position(q.x, q.y)), (p.id, q.id)


def test_a_card_rests_on_the_nearest_slot() -> None:
    settled = geometry.settle("a", Position(0.05, 0.2), [Position(0.4, 0.9)])
    assert settled == (0.0, 0.2488)


def test_a_drop_on_a_card_moves_the_least() -> None:
    # Straight onto another card: right beside it (right and below are as near; the higher
    # wins), touching no card.
    settled = geometry.settle("a", Position(0, 0), [Position(0, 0)])
    assert settled.y == 0.0
    assert geometry.box(settled).left == round(CARD_W + geometry.GAP, 3)
    # Slightly lower than another card: just below it.
    near = geometry.settle("a", Position(0.0, 0.05), [Position(0, 0)])
    assert near.x == 0.0 and not overlap(near, Position(0, 0))
    assert geometry.box(near).top < geometry.box(Position(0, 0)).top + 0.2


def test_cards_stay_on_their_owners_side() -> None:
    assert geometry.box(geometry.settle("a", Position(1, 0.5), [])).left + CARD_W < 0.5
    assert geometry.box(geometry.settle("b", Position(0, 0.5), [])).left > 0.5


def test_a_full_side_still_places_the_card_on_its_side() -> None:
    full = list(geometry.tidy("a", [f"p{i}" for i in range(40)], [],
                              {f"p{i}": Position(0, 0) for i in range(40)}).values())
    settled = geometry.settle("a", Position(0.9, 0.3), full)
    assert geometry.side("a")[0] <= geometry.box(settled).left <= geometry.side("a")[1] + 1e-6


def test_a_room_takes_as_many_parts_as_a_side_has_places_and_no_more() -> None:
    s = Session(stage=2)
    for i in range(len(geometry.slots("a"))):
        s.do("a", "part.add", name=f"p{i}", kind="manager", x=0.3, y=0.3)
    assert_no_collisions(s.room)
    assert s.refuse("a", "part.add", LimitExceeded, name="one more").field == "parts"


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), spot, st.booleans()), max_size=40))
def test_cards_dropped_anywhere_never_overlap(drops: list[tuple[Partner, Position, bool]]) -> None:
    """Up to a full side (one card per slot), however the cards are added and moved."""
    s = Session(stage=2)
    capacity = len(geometry.slots("a"))
    for owner, where, shared in drops:
        own = [p.id for p in s.room.parts.values() if p.owner == owner]
        part = own[len(own) // 2] if len(own) == capacity else s.part(owner, shared=shared)
        s.do(owner, "part.move", id=part, x=where.x, y=where.y)
        assert_no_collisions(s.room)


@settings(max_examples=40, deadline=None)
@given(st.lists(spot, max_size=8), st.lists(st.tuples(spot, st.booleans()), max_size=8), spot)
def test_where_a_card_settles_tells_nothing_of_the_other_partner(
        own: list[Position], theirs: list[tuple[Position, bool]], wanted: Position) -> None:
    """The same drop among the same own parts lands on the same spot whatever the other
    partner has (private or shared, anywhere): the position reveals none of it."""
    results = []
    for with_theirs in (False, True):
        s = Session(stage=2)
        for where in own:
            s.do("a", "part.move", id=s.part("a"), x=where.x, y=where.y)
        if with_theirs:
            for where, shared in theirs:
                s.do("b", "part.move", id=s.part("b", shared=shared), x=where.x, y=where.y)
        mover = s.part("a")
        s.do("a", "part.move", id=mover, x=wanted.x, y=wanted.y)
        results.append((s.room.parts[mover].x, s.room.parts[mover].y))
    assert results[0] == results[1]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(spot, st.booleans()), max_size=8), spot)
def test_where_the_scribe_puts_a_part_tells_the_therapist_nothing_of_hidden_drafts(
        partners: list[tuple[Position, bool]], wanted: Position) -> None:
    """With drafts hidden from the therapist, a part the therapist writes for a partner lands
    where it would if the partner's unshared parts were not there; an unshared card lying
    there makes way, so nothing overlaps."""
    results = []
    for with_drafts in (False, True):
        s = Session(stage=3, drafts=False)
        # The shared ones first, so they lie in the same places in both rooms.
        for where, shared in sorted(partners, key=lambda one: not one[1]):
            if shared or with_drafts:
                s.do("a", "part.move", id=s.part("a", shared=shared), x=where.x, y=where.y)
        s.do("therapist", "scribe.part_add", partner="a", name="written", kind="manager",
             x=wanted.x, y=wanted.y)
        written = next(p for p in s.room.parts.values() if p.name == "written")
        results.append((written.x, written.y))
        assert_no_collisions(s.room)
    assert results[0] == results[1]


def settle_as_specified(partner: Partner, wanted: Position,
                        others: list[Position]) -> Position:
    """settle() as its docstring says it, written plainly: every slot in order of distance
    from the drop (ties: the higher, then nearer the middle, then the grid's order), the
    first one that no other card covers, else the nearest."""
    start = geometry.box(geometry.on_side(partner, wanted))
    taken = [geometry.box(p) for p in others]
    middle = 0.5 - CARD_W / 2
    ordered = sorted(geometry.slots(partner), key=lambda c: (
        round((c.left - start.left) ** 2 + (c.top - start.top) ** 2, 9), c.top,
        abs(c.left - middle)))
    for candidate in ordered:
        if all(geometry._apart(candidate, other) for other in taken):
            return geometry.position(candidate)
    return geometry.position(ordered[0])


on_a_slot = st.builds(geometry.position, st.sampled_from(geometry.slots("a") + geometry.slots("b")))


@settings(max_examples=400)
@given(st.sampled_from(["a", "b"]), st.one_of(spot, on_a_slot),
       st.lists(st.one_of(spot, on_a_slot), max_size=geometry.PLACES_PER_SIDE + 2))
def test_settle_picks_the_slot_its_description_says(
        partner: Partner, wanted: Position, others: list[Position]) -> None:
    assert geometry.settle(partner, wanted, others) == settle_as_specified(
        partner, wanted, others)


def test_tidy_puts_protectors_above_what_they_protect() -> None:
    s = Session(stage=3)
    exile = s.part("a", "Little one", kind="exile")
    manager = s.part("a", "Planner", kind="manager")
    firefighter = s.part("a", "Alarm", kind="firefighter")
    loose = s.part("a", "Unsure", kind="unsure")
    theirs = s.part("b", "Theirs", shared=True)
    s.link("a", "protects", manager, exile)
    s.link("a", "protects", firefighter, manager)
    s.link("a", "reacts_to", firefighter, theirs)
    before_theirs = s.room.parts[theirs]
    s.do("a", "part.tidy")
    parts = s.room.parts
    assert parts[firefighter].y < parts[manager].y < parts[exile].y
    assert parts[loose].y == parts[exile].y  # protecting nothing: the bottom row
    assert parts[theirs] == before_theirs
    assert_no_collisions(s.room)
    # Tidy again: nothing moves, the same layout from the same parts.
    seq = s.room.seq
    event = s.do("a", "part.tidy")
    assert event.changes == () and s.room.seq == seq + 1


def test_tidy_survives_a_protects_cycle_and_a_crowd() -> None:
    s = Session(stage=3)
    ring = [s.part("b", f"p{i}") for i in range(3)]
    for one, two in zip(ring, ring[1:] + ring[:1], strict=True):
        s.link("b", "protects", one, two)
    s.do("b", "part.tidy")
    assert len({s.room.parts[p].y for p in ring}) == 3  # each above the one it protects
    for link in list(s.room.links):
        s.do("b", "link.remove", id=link)
    for i in range(len(geometry.slots("b")) - len(ring)):
        s.part("b", f"more {i}")
    s.do("b", "part.tidy")
    on_side = [geometry.box(Position(p.x, p.y)).left >= 0.5 for p in s.room.parts.values()]
    assert all(on_side)
    assert_no_collisions(s.room)  # a full side: one card on each place


def test_the_browser_gets_the_geometry_from_the_protocol_document() -> None:
    from rooms import protocol

    assert protocol.document()["board"] == geometry.document()
