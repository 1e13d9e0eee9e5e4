"""The HTTP API: create a room, replace a partner's link, export, end the session; and the
protocol document (rooms/protocol.py) for clients."""

from __future__ import annotations

import hmac
import logging
import time
from typing import Any

import msgspec
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rooms.errors import (
    BadRequest,
    Forbidden,
    LimitExceeded,
    RoomEnded,
    RoomError,
    Unauthorized,
)
from rooms.export import export_for, room_from_export
from rooms.machine import new_room
from rooms.model import PARTNERS, ROLES, Partner, PartnerInfo, Role
from rooms.protocol import document as protocol_document
from rooms.views import snapshot_for
from rooms.wire import field_of

from . import metrics
from .export_render import render_cycle, render_export
from .settings import Settings
from .store import Auth, Store, new_entity_id, new_room_id, new_secret, secret_hash

log = logging.getLogger("partsboard.api")

MAX_BODY = 2 * 1024 * 1024


class PartnerBody(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    color: str = "#6b7280"


class CreateBody(msgspec.Struct, forbid_unknown_fields=True):
    partners: dict[Partner, PartnerBody] | None = None
    therapist_sees_drafts: bool = True
    continue_from: dict[str, Any] | None = None


class EndBody(msgspec.Struct):
    confirm: bool = False


def error_response(error: RoomError) -> JSONResponse:
    return JSONResponse(error.to_wire(), status_code=error.http_status,
                        headers={"Cache-Control": "no-store"})


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


async def _body(request: Request, schema: type[Any]) -> Any:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise LimitExceeded("The request is too large.", field="body")
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        return msgspec.json.decode(raw or b"{}", type=schema)
    except msgspec.ValidationError as error:
        raise BadRequest(field=field_of(error, schema.__struct_fields__) or "body") from None
    except msgspec.DecodeError:
        raise BadRequest("The body must be JSON.", field="body") from None


class Api:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.protocol = protocol_document()

    def routes(self) -> list[Route]:
        return [
            Route("/api/protocol", self.describe_protocol, methods=["GET"]),
            Route("/api/rooms", self.create_room, methods=["POST"]),
            Route("/api/rooms/{room_id}/links/{partner}", self.replace_link, methods=["POST"]),
            Route("/api/rooms/{room_id}/export", self.export, methods=["POST"]),
            Route("/api/rooms/{room_id}/cycle", self.cycle, methods=["POST"]),
            Route("/api/rooms/{room_id}/end", self.end, methods=["POST"]),
        ]

    def _base_url(self, request: Request) -> str:
        return self.settings.public_url or str(request.base_url).rstrip("/")

    def _link(self, request: Request, room_id: str, secret: str) -> str:
        return f"{self._base_url(request)}/r/{room_id}#{secret}"

    async def _auth(self, request: Request, *, therapist: bool = False) -> Auth:
        secret = _bearer(request)
        room_id = request.path_params["room_id"]
        auth = await self.store.authenticate(room_id, secret) if secret else None
        if auth is None:
            raise RoomEnded()
        if therapist and auth.role != "therapist":
            raise Forbidden()
        return auth

    async def _guard(self, request: Request, handler: Any) -> Response:
        try:
            response: Response = await handler(request)
            return response
        except RoomError as error:
            return error_response(error)
        except (RedisError, OSError, TimeoutError) as error:
            log.warning("request failed (%s)", type(error).__name__)
            return error_response(RoomError())

    async def describe_protocol(self, request: Request) -> Response:
        return JSONResponse(self.protocol, headers={"Cache-Control": "no-cache"})

    async def create_room(self, request: Request) -> Response:
        return await self._guard(request, self._create_room)

    async def _create_room(self, request: Request) -> Response:
        key = self.settings.therapist_key
        if key and not hmac.compare_digest(_bearer(request).encode(), key.encode()):
            raise Unauthorized("The practice key is not right.")
        body: CreateBody = await _body(request, CreateBody)
        room_id = new_room_id()
        epoch, now = await self.store.new_epoch(room_id), time.time()
        if body.continue_from is not None:
            room = room_from_export(body.continue_from, room_id=room_id, epoch=epoch, now=now,
                                    limits=self.settings.limits, stages=self.settings.stages,
                                    new_id=new_entity_id)
        else:
            if body.partners is None or set(body.partners) != set(PARTNERS):
                raise BadRequest("Both partners need a name.", field="partners")
            room = new_room(
                room_id=room_id, epoch=epoch, now=now,
                partners={p: PartnerInfo(b.name, b.color) for p, b in body.partners.items()},
                therapist_sees_drafts=body.therapist_sees_drafts,
                stages=self.settings.stages, limits=self.settings.limits,
            )
        secrets_by_role: dict[Role, str] = {role: new_secret() for role in ROLES}
        await self.store.create(room, {r: secret_hash(s) for r, s in secrets_by_role.items()})
        metrics.ROOMS_CREATED.inc()
        log.info("room created: room=%s", room_id)
        links = {role: self._link(request, room_id, s) for role, s in secrets_by_role.items()}
        return JSONResponse({"room": room_id, "epoch": epoch, "links": links}, status_code=201,
                            headers={"Cache-Control": "no-store"})

    async def replace_link(self, request: Request) -> Response:
        return await self._guard(request, self._replace_link)

    async def _replace_link(self, request: Request) -> Response:
        await self._auth(request, therapist=True)
        partner = request.path_params["partner"]
        if partner not in PARTNERS:
            raise BadRequest(field="partner")
        secret = new_secret()
        room_id = request.path_params["room_id"]
        if not await self.store.relink(room_id, partner, secret_hash(secret)):
            raise RoomEnded()
        log.info("link replaced: room=%s role=%s", room_id, partner)
        return JSONResponse({"link": self._link(request, room_id, secret)},
                            headers={"Cache-Control": "no-store"})

    async def export(self, request: Request) -> Response:
        return await self._guard(request, self._export)

    async def _export(self, request: Request) -> Response:
        auth = await self._auth(request)
        fmt = request.query_params.get("format", "json")
        room = await self.store.load(request.path_params["room_id"])
        if room is None:
            raise RoomEnded()
        body, content_type, filename = render_export(export_for(room, auth.role, time.time()), fmt)
        return Response(body, media_type=content_type, headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        })

    async def cycle(self, request: Request) -> Response:
        return await self._guard(request, self._cycle)

    async def _cycle(self, request: Request) -> Response:
        """The viewer's protective cycle as SVG, drawn from their own live view only (what
        their board shows); 204 when they see no "reacts to" link."""
        auth = await self._auth(request)
        room = await self.store.load(request.path_params["room_id"])
        if room is None:
            raise RoomEnded()
        picture = render_cycle(snapshot_for(room, auth.role)["colls"])
        if picture is None:
            return Response(status_code=204, headers={"Cache-Control": "no-store"})
        return Response(picture, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})

    async def end(self, request: Request) -> Response:
        return await self._guard(request, self._end)

    async def _end(self, request: Request) -> Response:
        await self._auth(request, therapist=True)
        body: EndBody = await _body(request, EndBody)
        if not body.confirm:
            raise BadRequest("Ending the session needs confirming.", field="confirm")
        room_id = request.path_params["room_id"]
        if not await self.store.end(room_id):
            raise RoomEnded()
        metrics.ROOMS_ENDED.inc()
        log.info("room ended: room=%s", room_id)
        return Response(status_code=204, headers={"Cache-Control": "no-store"})
