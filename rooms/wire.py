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

from .errors import BadFrame, BadRequest, RoomError
from .model import Role
from .types import Coordinate, Id, Text

SUBPROTOCOL: Final = "partsboard.v1"
MAX_FRAME_BYTES: Final = 64 * 1024

Token = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
OpName = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
Scalar = None | bool | int | float | Text
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
    id: Id
    op: OpName
    args: Args = {}


class Drag(msgspec.Struct, frozen=True, tag_field="t", tag="drag"):
    part: Token
    x: Coordinate
    y: Coordinate


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
        refusal: BadFrame | BadRequest = _validation_error(error)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        # msgspec raises UnicodeDecodeError, not DecodeError, for invalid UTF-8 in a string.
        refusal = BadFrame()
    else:
        if isinstance(frame, Drag) and (frame.x != frame.x or frame.y != frame.y):
            raise BadRequest(field="x")
        return frame
    # Every refused command names its id, so the sender can match the refusal.
    refusal.command_id = command_id_of(bytes(data))
    raise refusal
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


_FIXED_WIDTH = {
    0xC0: 0, 0xC2: 0, 0xC3: 0, 0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8,
    0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8, 0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9, 0xD8: 17,
}
_LENGTH_PREFIXED = {  # type byte -> (width of the length, extra bytes after it)
    0xC4: (1, 0), 0xC5: (2, 0), 0xC6: (4, 0), 0xC7: (1, 1), 0xC8: (2, 1), 0xC9: (4, 1),
    0xD9: (1, 0), 0xDA: (2, 0), 0xDB: (4, 0),
}
_CONTAINERS = {0xDC: (2, 1), 0xDD: (4, 1), 0xDE: (2, 2), 0xDF: (4, 2)}


class _Scanner:
    """Walks msgpack bytes without recursion, however deep they nest."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("truncated")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def _uint(self, width: int) -> int:
        return int.from_bytes(self._take(width), "big")

    def header(self) -> tuple[str, int]:
        """The next item's kind ("str", "map", "array", "scalar") and its length or size."""
        b = self._take(1)[0]
        if b <= 0x7F or b >= 0xE0:
            return "scalar", 0
        if 0x80 <= b <= 0x8F:
            return "map", b & 0x0F
        if 0x90 <= b <= 0x9F:
            return "array", b & 0x0F
        if 0xA0 <= b <= 0xBF:
            return "str", b & 0x1F
        if b in _FIXED_WIDTH:
            self._take(_FIXED_WIDTH[b])
            return "scalar", 0
        if b in _LENGTH_PREFIXED:
            width, extra = _LENGTH_PREFIXED[b]
            length = self._uint(width) + extra
            if b in (0xD9, 0xDA, 0xDB):
                return "str", length
            self._take(length)
            return "scalar", 0
        if b in _CONTAINERS:
            width, per_item = _CONTAINERS[b]
            return ("map" if per_item == 2 else "array"), self._uint(width)
        raise ValueError("invalid type byte")

    def text(self, length: int) -> str:
        return self._take(length).decode()

    def skip_value(self) -> None:
        remaining = 1
        while remaining:
            remaining -= 1
            kind, size = self.header()
            if kind == "str":
                self._take(size)
            elif kind == "map":
                remaining += 2 * size
            elif kind == "array":
                remaining += size


def command_id_of(data: bytes) -> str | None:
    """The id of a refused command frame, read as leniently as possible, or None."""
    scanner = _Scanner(data)
    found: dict[str, str] = {}
    try:
        kind, entries = scanner.header()
        if kind != "map":
            return None
        for _ in range(entries):
            kind, size = scanner.header()
            if kind != "str":
                return None
            key = scanner.text(size)
            if key in ("t", "id"):
                kind, size = scanner.header()
                if kind != "str":
                    return None
                found[key] = scanner.text(size)
            else:
                scanner.skip_value()
            if len(found) == 2:
                break
    except (ValueError, UnicodeDecodeError):
        return None
    command_id = found.get("id")
    if found.get("t") != "cmd" or command_id is None or not 1 <= len(command_id) <= 64:
        return None
    return command_id


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


def event(viewed: dict[str, Any]) -> dict[str, Any]:
    """An `ev` frame: one committed event as one viewer may know it (rooms/views.py)."""
    return {"t": "ev", **viewed}


def ack(command_id: str, seq: int) -> dict[str, Any]:
    return {"t": "ack", "id": command_id, "seq": seq}


def dragged(part: str, x: float, y: float, by: Role) -> dict[str, Any]:
    return {"t": "drag", "part": part, "x": x, "y": y, "by": by}


def presence(counts: dict[str, int]) -> dict[str, Any]:
    return {"t": "presence", "presence": counts}


def ended() -> dict[str, Any]:
    return {"t": "ended"}


def refusal(error: RoomError, command_id: str | None = None) -> dict[str, Any]:
    """An `error` frame for a refusal; `command_id` defaults to the one the error names."""
    frame: dict[str, Any] = {"t": "error", "code": error.code, "message": error.message}
    command_id = command_id or error.command_id
    if command_id is not None:
        frame["id"] = command_id
    if error.field is not None:
        frame["field"] = error.field
    if error.retry_after is not None:
        frame["retry_after"] = error.retry_after
    return frame
