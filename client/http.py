"""The HTTP API: create a room, replace a partner's link, export, end the session.

Each call takes a join link (or the base URL for creation) and speaks for the
role whose secret it carries. A refusal raises the RoomError subclass of the
JSON body's "code" (by HTTP status when the body has none), with `.status`.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote

import httpx

from rooms.errors import RoomError

from .errors import error_for
from .links import parse_link

DEMO_PARTNERS: Final[Mapping[str, tuple[str, str]]] = {
    "a": ("Alex", "#c2410c"),
    "b": ("Sam", "#0f766e"),
}
EXPORT_FORMATS: Final = ("json", "md", "html")
TIMEOUT: Final = 15.0

_STATUS_CODES: Final = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "room_ended",
    409: "room_lost",
    410: "room_ended",
    413: "limit",
    422: "bad_request",
    429: "rate_limited",
}


@dataclass(frozen=True)
class CreatedRoom:
    room: str
    epoch: str
    links: Mapping[str, str] = field(repr=False)  # carry secrets

    @property
    def therapist(self) -> str:
        return self.links["therapist"]

    @property
    def a(self) -> str:
        return self.links["a"]

    @property
    def b(self) -> str:
        return self.links["b"]


@asynccontextmanager
async def _http(client: httpx.AsyncClient | None) -> AsyncIterator[httpx.AsyncClient]:
    if client is not None:
        yield client
        return
    async with httpx.AsyncClient(timeout=TIMEOUT) as own:
        yield own


def _bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def error_from_response(response: httpx.Response) -> RoomError:
    code: object = None
    message: object = None
    field_name: object = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        inner = body.get("error")
        source = inner if isinstance(inner, dict) else body
        code = source.get("code", inner if isinstance(inner, str) else None)
        message = source.get("message")
        field_name = source.get("field")
    if not isinstance(code, str):
        code = _STATUS_CODES.get(response.status_code, "internal")
    error = error_for(code, message, field_name)
    error.status = response.status_code  # type: ignore[attr-defined]
    return error


def _check(response: httpx.Response, *expected: int) -> None:
    if response.status_code not in expected:
        raise error_from_response(response)


def _partners_body(partners: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for role, info in partners.items():
        if isinstance(info, Mapping):
            out[role] = {"name": info["name"], "color": info["color"]}
        else:
            name, color = info
            out[role] = {"name": name, "color": color}
    return out


async def create_room(
    base_url: str,
    *,
    key: str | None = None,
    partners: Mapping[str, Any] = DEMO_PARTNERS,
    therapist_sees_drafts: bool = False,
    continue_from: Mapping[str, Any] | bytes | str | None = None,
    client: httpx.AsyncClient | None = None,
) -> CreatedRoom:
    """POST /api/rooms. partners: {"a": (name, "#rrggbb"), "b": ...} (or {"name", "color"})."""
    body: dict[str, Any] = {
        "partners": _partners_body(partners),
        "therapist_sees_drafts": therapist_sees_drafts,
    }
    if continue_from is not None:
        body["continue_from"] = (
            json.loads(continue_from) if isinstance(continue_from, bytes | str)
            else dict(continue_from)
        )
    async with _http(client) as http:
        response = await http.post(
            f"{base_url.rstrip('/')}/api/rooms", json=body, headers=_bearer(key)
        )
    _check(response, 200, 201)
    data = response.json()
    links = data["links"]
    return CreatedRoom(
        room=data["room"],
        epoch=data["epoch"],
        links={role: links[role] for role in ("therapist", "a", "b")},
    )


async def replace_link(
    therapist_link: str, partner: str, *, client: httpx.AsyncClient | None = None
) -> str:
    """POST /api/rooms/{id}/links/{partner}: a new link; the partner's old one stops working."""
    link = parse_link(therapist_link)
    async with _http(client) as http:
        response = await http.post(
            f"{link.http_base}/api/rooms/{link.room}/links/{partner}",
            headers=_bearer(link.secret),
        )
    _check(response, 200, 201)
    new: str = response.json()["link"]
    return new


_FILENAME_STAR = re.compile(r"filename\*\s*=\s*[^']*'[^']*'([^;]+)", re.IGNORECASE)
_FILENAME = re.compile(r'filename\s*=\s*(?:"([^"]*)"|([^;]+))', re.IGNORECASE)


def filename_of(content_disposition: str | None) -> str:
    if not content_disposition:
        return ""
    star = _FILENAME_STAR.search(content_disposition)
    if star:
        return unquote(star.group(1).strip())
    plain = _FILENAME.search(content_disposition)
    if plain:
        return (plain.group(1) if plain.group(1) is not None else plain.group(2)).strip()
    return ""


async def export(
    link: str, fmt: str = "json", *, client: httpx.AsyncClient | None = None
) -> tuple[bytes, str, httpx.Headers]:
    """POST /api/rooms/{id}/export?format=fmt as the link's role -> (body, filename, headers)."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}")
    parsed = parse_link(link)
    async with _http(client) as http:
        response = await http.post(
            f"{parsed.http_base}/api/rooms/{parsed.room}/export",
            params={"format": fmt},
            headers=_bearer(parsed.secret),
        )
    _check(response, 200)
    return (
        response.content,
        filename_of(response.headers.get("content-disposition")),
        response.headers,
    )


async def end_session(therapist_link: str, *, client: httpx.AsyncClient | None = None) -> None:
    """POST /api/rooms/{id}/end with the therapist's confirmation."""
    link = parse_link(therapist_link)
    async with _http(client) as http:
        response = await http.post(
            f"{link.http_base}/api/rooms/{link.room}/end",
            json={"confirm": True},
            headers=_bearer(link.secret),
        )
    _check(response, 200, 204)
