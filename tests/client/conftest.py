"""Fixtures for client tests against a real server (see tests/conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest
from client_helpers import PARTNERS, RoomMaker

from client import CreatedRoom, create_room


@pytest.fixture
def key(server: Any) -> str:
    value: str = server.env["PARTSBOARD_THERAPIST_KEY"]
    return value


@pytest.fixture
def make_room(server: Any, key: str) -> RoomMaker:
    async def make(**options: Any) -> CreatedRoom:
        options.setdefault("partners", PARTNERS)
        return await create_room(server.base_url, key=key, **options)

    return make


@pytest.fixture
async def room(make_room: RoomMaker) -> CreatedRoom:
    return await make_room()
