"""Frames on the wire: binary msgpack, one map per websocket message.

Client to server frames are decoded straight into typed structs whose shape
bounds the nesting depth (a command's args are at most a map of maps of
scalars), so no frame, however deep or large, reaches any code as anything
but a typed value or a BadFrame / BadRequest error.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated, Any, Final

import msgspec

from .errors import BadFrame, BadRequest
from .model import Role

SUBPROTOCOL: Final = "partsboard.v1"
MAX_FRAME_BYTES: Final = 64 * 1024
MAX_STRING: Final = 20_000

Str = Annotated[str, msgspec.Meta(max_length=MAX_STRING)]
Token = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
CommandId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
OpName = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
Scalar = None | bool | int | float | Str
ArgValue = Scalar | dict[Annotated[str, msgspec.Meta(max_length=40)], Scalar]
Args = Annotated[dict[Annotated[str, msgspec.Meta(max_length=40)], ArgValue],
                 msgspec.Meta(max_length=32)]


class Resume(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    epoch: Token
    seq: Annotated[int, msgspec.Meta(ge=0)]


class Hello(msgspec.Struct, frozen=True, tag_field="t", tag="hello"):
    room: Token
    secret: Token
    resume: Resume | None = None


class Cmd(msgspec.Struct, frozen=True, tag_field="t", tag="cmd"):
    id: CommandId
    op: OpName
    args: Args = {}


class Drag(msgspec.Struct, frozen=True, tag_field="t", tag="drag"):
    part: Token
    x: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
    y: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


ClientFrame = Hello | Cmd | Drag

_client_decoder = msgspec.msgpack.Decoder(ClientFrame)
_encoder = msgspec.msgpack.Encoder()
_any_decoder = msgspec.msgpack.Decoder()


def decode_client(data: bytes | str, max_bytes: int = MAX_FRAME_BYTES) -> ClientFrame:
    """Decode one client frame or raise BadFrame (BadRequest for a known frame type
    with a bad field, so the client learns which field)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise BadFrame("Frames must be binary msgpack.")
    if len(data) > max_bytes:
        raise BadFrame("The frame is too large.")
    try:
        frame: ClientFrame = _client_decoder.decode(data)
    except msgspec.ValidationError as error:
        raise _validation_error(error) from None
    except (msgspec.DecodeError, RecursionError):
        raise BadFrame() from None
    if isinstance(frame, Drag) and (frame.x != frame.x or frame.y != frame.y):
        raise BadRequest(field="x")
    return frame


def field_of(error: msgspec.ValidationError, fields: Collection[str]) -> str | None:
    """The top-level field a msgspec validation error is about, never its value.

    msgspec's message quotes an unknown key as it was sent, and a key can itself
    look like a path, so only one of the schema's own field names (`fields`) is
    ever returned."""
    message = str(error)
    for marker in ("at `$.", "in `$.", "missing required field `"):
        if marker in message:
            name = message.rsplit(marker, 1)[1].split("`", 1)[0].split(".", 1)[0]
            name = name.split("[", 1)[0]
            return name if name in fields else None
    return None


_FRAME_FIELDS: Final = frozenset({"t"}).union(
    *(cls.__struct_fields__ for cls in (Hello, Cmd, Drag))
)


def _validation_error(error: msgspec.ValidationError) -> BadFrame | BadRequest:
    field = field_of(error, _FRAME_FIELDS)
    if field is None or field == "t":
        return BadFrame("Unknown frame type.")
    return BadRequest(field=field)


def encode(frame: dict[str, Any]) -> bytes:
    return _encoder.encode(frame)


def decode_server(data: bytes) -> dict[str, Any]:
    """Decode a frame the server sent (clients and tests)."""
    out = _any_decoder.decode(data)
    if not isinstance(out, dict):
        raise BadFrame()
    return out


def hello(room: str, secret: str, resume: tuple[str, int] | None = None) -> bytes:
    frame: dict[str, Any] = {"t": "hello", "room": room, "secret": secret}
    if resume is not None:
        frame["resume"] = {"epoch": resume[0], "seq": resume[1]}
    return encode(frame)


def cmd(command_id: str, op: str, args: dict[str, Any]) -> bytes:
    return encode({"t": "cmd", "id": command_id, "op": op, "args": args})


def drag(part: str, x: float, y: float) -> bytes:
    return encode({"t": "drag", "part": part, "x": x, "y": y})


# Server frames, built in one place so their shapes stay documented here.

def welcome(role: Role, room: str, epoch: str, view: dict[str, Any] | None,
            replay: list[dict[str, Any]] | None, seq: int,
            presence: dict[str, int]) -> dict[str, Any]:
    return {"t": "welcome", "role": role, "room": room, "epoch": epoch, "seq": seq,
            "view": view, "replay": replay, "presence": presence}


def ack(command_id: str, seq: int) -> dict[str, Any]:
    return {"t": "ack", "id": command_id, "seq": seq}


def error(code: str, message: str, command_id: str | None = None,
          field: str | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"t": "error", "code": code, "message": message}
    if command_id is not None:
        frame["id"] = command_id
    if field is not None:
        frame["field"] = field
    return frame
