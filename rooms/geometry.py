"""The board's geometry, the same for every screen: one logical surface, cards sized in it.

The board is a surface of fixed aspect (width / height = ASPECT). A card's size is a
fraction of it (CARD_W of its width, CARD_H of its height), so a layout without
collisions on one screen has none on any: the browser scales the whole surface, never the
cards alone. A part's stored position (x, y), both 0..1, puts the card's top-left corner at
that fraction of the free room: left = x * (1 - CARD_W) of the width, top = y * (1 - CARD_H)
of the height, so a card never sticks out of the board.

Each partner's cards live on their own side (partner a left of the middle, b right of it,
GAP apart). So cards of the two partners never meet, and placing a card needs only its
owner's own parts: a settled position never depends on, and so never reveals, anything of
the other partner (where their private cards lie, or that they exist).

Here, lengths are in units of the board's width (the board is 1 wide, 1 / ASPECT high).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Final, NamedTuple

from .model import Partner

ASPECT: Final = 1.2
CARD_W: Final = 0.15
CARD_H: Final = 0.18
GAP: Final = 0.02  # the least room between two cards of one partner, either way
PRECISION: Final = 4  # decimal places of a stored position

HEIGHT: Final = 1 / ASPECT
_CARD_HEIGHT: Final = CARD_H * HEIGHT
_FREE_W: Final = 1 - CARD_W
_FREE_H: Final = (1 - CARD_H) * HEIGHT
_STEP_X: Final = CARD_W + GAP
_STEP_Y: Final = _CARD_HEIGHT + GAP
_EPS: Final = 1e-3


class Position(NamedTuple):
    x: float
    y: float


class Box(NamedTuple):
    """A card's top-left corner, in board widths."""

    left: float
    top: float


def box(position: Position) -> Box:
    return Box(position.x * _FREE_W, position.y * _FREE_H)


def position(card: Box) -> Position:
    return Position(round(card.left / _FREE_W, PRECISION), round(card.top / _FREE_H, PRECISION))


def side(partner: Partner) -> tuple[float, float]:
    """The range of a card's left edge on this partner's side."""
    if partner == "a":
        return 0.0, 0.5 - GAP / 2 - CARD_W
    return 0.5 + GAP / 2, 1 - CARD_W


def _clamp(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


def on_side(partner: Partner, wanted: Position) -> Position:
    low, high = side(partner)
    card = box(wanted)
    return position(Box(_clamp(card.left, low, high), _clamp(card.top, 0.0, _FREE_H)))


def _apart(card: Box, other: Box) -> bool:
    return (abs(card.left - other.left) >= _STEP_X - _EPS
            or abs(card.top - other.top) >= _STEP_Y - _EPS)


def apart(one: Position, other: Position) -> bool:
    """Whether two cards at these positions lie GAP apart or more (so neither covers the
    other)."""
    return _apart(box(one), box(other))


def slots(partner: Partner) -> list[Box]:
    """The places a card of this partner can rest: a grid on their side, GAP apart, rows
    from the top, columns from the middle of the board outwards (a partner's first cards
    sit near the other partner's)."""
    low, high = side(partner)
    columns = int((high - low + _EPS) / _STEP_X) + 1
    rows = int((_FREE_H + _EPS) / _STEP_Y) + 1
    lefts = [high - i * _STEP_X for i in range(columns)] if partner == "a" \
        else [low + i * _STEP_X for i in range(columns)]
    return [Box(left, row * _STEP_Y) for row in range(rows) for left in lefts]


PLACES_PER_SIDE: Final = len(slots("a"))


def settle(partner: Partner, wanted: Position, others: Iterable[Position]) -> Position:
    """Where a card of this partner dropped at `wanted` comes to rest, given the partner's
    other cards: the nearest slot that no other card covers (ties: the higher, then the
    one nearer the middle). The grid is what makes this safe: however the cards were
    dropped, a side with fewer cards than slots always has a free one. A full side puts the
    card on the nearest slot, over another."""
    left0, top0 = box(on_side(partner, wanted))
    taken = [box(p) for p in others]
    table = _slot_table(partner)
    # The slot's index last: equal keys keep the grid's order, as a stable sort would.
    ordered = sorted((round((left - left0) ** 2 + (top - top0) ** 2, 9), top, off_middle, i)
                     for i, (left, top, off_middle) in enumerate(table))
    for *_, i in ordered:
        left, top, _ = table[i]
        if all(abs(left - other.left) >= _STEP_X - _EPS or abs(top - other.top) >= _STEP_Y - _EPS
               for other in taken):
            return position(Box(left, top))
    left, top, _ = table[ordered[0][-1]]
    return position(Box(left, top))


@cache
def _slot_table(partner: Partner) -> tuple[tuple[float, float, float], ...]:
    """Each slot's left, top and distance from the middle, in the grid's order."""
    middle = 0.5 - CARD_W / 2
    return tuple((c.left, c.top, abs(c.left - middle)) for c in slots(partner))


def tidy(partner: Partner, parts: Sequence[str], protects: Iterable[tuple[str, str]],
         current: Mapping[str, Position]) -> dict[str, Position]:
    """A tidy layout of one partner's parts on their side: a protector sits in a row above
    every part it protects (following "protects" links, a cycle broken where it closes);
    within a row, parts keep their present left-to-right order. Rows wrap at the side's
    width; when the side is full, the rest settle where they fit."""
    guards: dict[str, set[str]] = {part: set() for part in parts}
    for protector, protected in protects:
        if protector in guards and protected in guards and protector != protected:
            guards[protector].add(protected)
    depth: dict[str, int] = {}

    def level(part: str, path: frozenset[str]) -> int:
        if part not in depth:
            below = [level(q, path | {part}) for q in sorted(guards[part]) if q not in path]
            depth[part] = 1 + max(below, default=-1)
        return depth[part]

    for part in sorted(parts):
        level(part, frozenset())
    lefts = sorted({slot.left for slot in slots(partner)})
    columns = len(lefts)
    order = sorted(parts, key=lambda p: (-depth[p], current[p].x, current[p].y, p))
    rows: list[list[str]] = []
    for part in order:
        if not rows or depth[rows[-1][0]] != depth[part] or len(rows[-1]) == columns:
            rows.append([])
        rows[-1].append(part)
    placed: dict[str, Position] = {}
    for number, row in enumerate(rows):
        # Each row leans toward the middle of the board, where the partners' parts meet.
        first = columns - len(row) if partner == "a" else 0
        for column, part in enumerate(row, start=first):
            wanted = position(Box(lefts[column], number * _STEP_Y))
            placed[part] = settle(partner, wanted, placed.values())
    return placed


def document() -> dict[str, float]:
    """The facts a browser needs to draw the same board."""
    return {"aspect": ASPECT, "card_w": CARD_W, "card_h": CARD_H, "gap": GAP}
