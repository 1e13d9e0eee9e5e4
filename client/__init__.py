"""Partsboard's asyncio Python client: join links, the HTTP API and live sessions.

    from client import Client, create_room
    from rooms.actions import PartAdd, PartReveal

    room = await create_room("http://127.0.0.1:8000", key=KEY)
    async with Client(room.links["a"]) as alex:
        part = await alex.create(PartAdd(name="The Planner", kind="manager"))
        await alex.run(PartReveal(id=part))

`client/` never imports `server/`; it shares only the pure core (`rooms/`).
"""

from __future__ import annotations

from .backoff import backoff
from .errors import (
    BadLink,
    ClientClosed,
    ClientError,
    ConnectionLost,
    LinkNotValid,
    SessionEnded,
    SessionLost,
    error_for,
)
from .http import CreatedRoom, create_room, end_session, export, replace_link
from .links import JoinLink, parse_link
from .session import Client

__all__ = [
    "BadLink",
    "Client",
    "ClientClosed",
    "ClientError",
    "ConnectionLost",
    "CreatedRoom",
    "JoinLink",
    "LinkNotValid",
    "SessionEnded",
    "SessionLost",
    "backoff",
    "create_room",
    "end_session",
    "error_for",
    "export",
    "parse_link",
    "replace_link",
]
