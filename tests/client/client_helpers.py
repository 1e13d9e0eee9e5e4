"""Helpers for the client's integration tests."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from client import Client, CreatedRoom

# Not the demo couple: tests must not only pass for the demo.
PARTNERS = {"a": ("Robin", "#1d4ed8"), "b": ("Kai", "#15803d")}

RoomMaker = Callable[..., Coroutine[Any, Any, CreatedRoom]]

SCORES = {
    "calm": 5, "curiosity": 6, "compassion": 7, "confidence": 4,
    "courage": 5, "clarity": 6, "creativity": 3, "connectedness": 8,
}


async def fresh_view(link: str) -> dict[str, Any]:
    """The viewer's board as a brand-new connection receives it."""
    async with Client(link) as fresh:
        assert fresh.view is not None
        return fresh.view


async def settle(*clients: Client) -> int:
    """Wait until every mirror reached the highest seq any of them has seen."""
    top = max(c.seq for c in clients)
    for c in clients:
        await c.wait_seq(top)
    return top


def parts_named(client: Client, name: str) -> list[str]:
    assert client.view is not None
    return [k for k, v in client.view["colls"]["parts"].items() if v["name"] == name]
