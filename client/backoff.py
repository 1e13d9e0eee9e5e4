"""Reconnect delays: exponential growth with full jitter, as a pure generator.

Full jitter (each delay uniform in [0, ceiling], the ceiling doubling up to a
cap) spreads a crowd of clients that lost the same server, so they do not all
knock again at the same instant. The schedule is rooms.protocol.BACKOFF, which the
browser's client follows too.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from rooms.protocol import BACKOFF

INITIAL, FACTOR, CAP = BACKOFF


def backoff(
    initial: float = INITIAL,
    factor: float = FACTOR,
    cap: float = CAP,
    *,
    rand: Callable[[], float] = random.random,
) -> Iterator[float]:
    """Yield delays in seconds forever: rand() * min(cap, initial * factor**n)."""
    if initial <= 0 or factor < 1 or cap < initial:
        raise ValueError("backoff needs 0 < initial <= cap and factor >= 1")
    ceiling = initial
    while True:
        yield rand() * ceiling
        ceiling = min(cap, ceiling * factor)
