"""Helpers for tests that drive live rooms over real websockets."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import msgspec

from client import Client
from client.http import create_room
from rooms.model import SELF_QUALITIES

KEY = "test-key"


def canary(label: str) -> str:
    """A unique string that can only appear in a frame if that text was sent there."""
    return f"{label}-{secrets.token_hex(6)}"


@dataclass
class Trio:
    therapist: Client
    a: Client
    b: Client
    links: dict[str, str]

    @property
    def all(self) -> list[Client]:
        return [self.therapist, self.a, self.b]

    async def close(self) -> None:
        for client in self.all:
            await client.close()


async def open_room(base_url: str, *, therapist_sees_drafts: bool = True,
                    bases: dict[str, str] | None = None, record: bool = False,
                    names: tuple[str, str] = ("Robin", "Kai")) -> Trio:
    created = await create_room(base_url, key=KEY, partners={
        "a": (names[0], "#c2410c"), "b": (names[1], "#0f766e")},
        therapist_sees_drafts=therapist_sees_drafts)
    links = dict(created.links)
    clients = {}
    for role in ("therapist", "a", "b"):
        link = links[role]
        if bases and role in bases:
            link = link.replace(base_url, bases[role])
        clients[role] = await Client.connect(link, record=record)
    return Trio(clients["therapist"], clients["a"], clients["b"], links)


board = Client.board


def decoded_frames(client: Client) -> list[dict[str, Any]]:
    return [msgspec.msgpack.decode(raw) for raw in client.raw_frames]


def event_seqs(client: Client) -> list[int]:
    """Sequence numbers this client received, from its welcome on (replays included)."""
    seqs: list[int] = []
    for frame in decoded_frames(client):
        if frame.get("t") == "welcome":
            if frame.get("view") is not None and not seqs:
                seqs.append(frame["seq"])
            for ev in frame.get("replay") or ():
                seqs.append(ev["seq"])
        elif frame.get("t") == "ev":
            seqs.append(frame["seq"])
    return seqs


def scores(level: int) -> dict[str, int]:
    return {quality: level for quality in SELF_QUALITIES}


@dataclass
class Script:
    """Texts typed during a scripted session, by who may see them."""

    private_a: list[str] = field(default_factory=list)
    private_ids_a: list[str] = field(default_factory=list)
    shared: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
