"""One error tree; every class carries the stable wire code of the spec.

    RoomError
    ├── BadFrame        bad_frame      undecodable or malformed frame
    ├── BadRequest      bad_request    a field is missing or invalid (names it)
    ├── UnknownOp       unknown_op
    ├── Unauthorized    unauthorized   no or wrong secret
    ├── Forbidden       forbidden      the role may not do this
    ├── StageLocked     stage_locked   the current stage does not allow it
    ├── NotFound        not_found
    ├── LimitExceeded   limit
    ├── RateLimited     rate_limited
    ├── Frozen          frozen         the therapist froze the board
    ├── RoomEnded       room_ended     the session does not exist or has ended
    ├── RoomLost        room_lost      the store lost the room (epoch mismatch)
    └── Internal        internal       never carries details

Messages are fixed English sentences: they never echo user input, so no
clinical content can reach a client's error or a log line through them.
"""

from __future__ import annotations


class RoomError(Exception):
    code = "internal"
    default_message = "Something went wrong."

    def __init__(self, message: str | None = None, *, field: str | None = None,
                 command_id: str | None = None) -> None:
        self.message = message or self.default_message
        self.field = field
        self.command_id = command_id
        super().__init__(self.message)

    def to_wire(self) -> dict[str, str]:
        out = {"code": self.code, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        return out


class BadFrame(RoomError):
    code = "bad_frame"
    default_message = "The frame could not be read."


class BadRequest(RoomError):
    code = "bad_request"
    default_message = "A field is missing or invalid."


class UnknownOp(RoomError):
    code = "unknown_op"
    default_message = "This operation does not exist."


class Unauthorized(RoomError):
    code = "unauthorized"
    default_message = "This link is not valid."


class Forbidden(RoomError):
    code = "forbidden"
    default_message = "Your role cannot do this."


class StageLocked(RoomError):
    code = "stage_locked"
    default_message = "This is not available at the current stage."


class NotFound(RoomError):
    code = "not_found"
    default_message = "That item does not exist."


class LimitExceeded(RoomError):
    code = "limit"
    default_message = "A limit was reached."


class RateLimited(RoomError):
    code = "rate_limited"
    default_message = "Too many messages; slow down."


class Frozen(RoomError):
    code = "frozen"
    default_message = "The board is paused for editing by the therapist."


class RoomEnded(RoomError):
    code = "room_ended"
    default_message = "This session does not exist or has ended."


class RoomLost(RoomError):
    code = "room_lost"
    default_message = "This session was lost by the server; nothing of it was kept."


class Internal(RoomError):
    code = "internal"
    default_message = "Something went wrong on our side."


ERROR_CODES = frozenset(
    cls.code
    for cls in (
        BadFrame, BadRequest, UnknownOp, Unauthorized, Forbidden, StageLocked, NotFound,
        LimitExceeded, RateLimited, Frozen, RoomEnded, RoomLost, Internal,
    )
)
