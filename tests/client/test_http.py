"""The HTTP half of the client against a real server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from client_helpers import PARTNERS, RoomMaker, settle

from client import Client, CreatedRoom, create_room, end_session, export, replace_link
from client.http import filename_of
from rooms.actions import AgreementAck, AgreementAdd, PartAdd, PartReveal, StageSet
from rooms.errors import BadRequest, Forbidden, RoomEnded, Unauthorized


async def test_create_room_returns_three_links(room: CreatedRoom) -> None:
    assert set(room.links) == {"therapist", "a", "b"}
    assert len({link.split("#", 1)[1] for link in room.links.values()}) == 3
    assert all(f"/r/{room.room}#" in link for link in room.links.values())
    assert "#" not in repr(room)  # links carry secrets


async def test_a_wrong_key_is_unauthorized(server: Any) -> None:
    with pytest.raises(Unauthorized) as refused:
        await create_room(server.base_url, key="wrong", partners=PARTNERS)
    assert refused.value.status == 401  # type: ignore[attr-defined]


async def test_a_bad_colour_is_a_bad_request(make_room: RoomMaker) -> None:
    with pytest.raises(BadRequest):
        await make_room(partners={"a": ("Robin", "blue"), "b": ("Kai", "#15803d")})


async def test_exports_for_every_role_and_format(room: CreatedRoom) -> None:
    async with Client(room.therapist) as t, Client(room.a) as a:
        await t.run(StageSet(stage=2))
        await a.wait_seq(1)
        part = await a.create(PartAdd(name="The Lookout", kind="manager"))
        await a.run(PartReveal(id=part))
        await a.create(PartAdd(name="The Hidden One", kind="exile"))
        await settle(t, a)
    for role, link in room.links.items():
        for fmt in ("json", "md", "html"):
            body, filename, headers = await export(link, fmt)
            assert body
            assert filename.endswith({"json": ".json", "md": ".md", "html": ".html"}[fmt])
            assert not any(name in filename for name in ("Robin", "Kai", "Lookout"))
            assert "no-store" in headers["cache-control"]
            text = body.decode()
            assert "The Lookout" in text
            assert ("The Hidden One" in text) == (role == "a")
        json.loads((await export(link, "json"))[0])


async def test_continue_from_a_therapist_export(room: CreatedRoom, make_room: RoomMaker) -> None:
    async with Client(room.therapist) as t, Client(room.a) as a:
        agreement = await t.create(AgreementAdd(text="We keep to time."))
        await t.run(StageSet(stage=2))
        await a.wait_seq(2)
        await a.run(AgreementAck(id=agreement))
        part = await a.create(PartAdd(name="The Lookout", kind="manager"))
        await a.run(PartReveal(id=part))
        await settle(t, a)
    document, _, _ = await export(room.therapist, "json")
    later = await make_room(continue_from=document)
    assert later.room != room.room
    async with Client(later.a) as a2:
        assert a2.view is not None
        parts = a2.view["colls"]["parts"].values()
        assert [p["name"] for p in parts] == ["The Lookout"]
        texts = [g["text"] for g in a2.view["colls"]["agreements"].values()]
        assert texts == ["We keep to time."]


async def test_a_partner_cannot_replace_links_or_end(room: CreatedRoom) -> None:
    with pytest.raises(Forbidden):
        await replace_link(room.a, "b")
    with pytest.raises(Forbidden):
        await end_session(room.a)


async def test_end_session_then_everything_is_gone(room: CreatedRoom) -> None:
    await end_session(room.therapist)
    with pytest.raises(RoomEnded):
        await export(room.a, "json")
    with pytest.raises((RoomEnded, Unauthorized)):
        await end_session(room.therapist)


def test_filename_of_content_disposition() -> None:
    assert filename_of('attachment; filename="board.json"') == "board.json"
    assert filename_of("attachment; filename=board.md") == "board.md"
    assert filename_of("attachment; filename*=UTF-8''b%C3%B6ard.html") == "böard.html"
    assert filename_of(None) == ""
    assert filename_of("inline") == ""
