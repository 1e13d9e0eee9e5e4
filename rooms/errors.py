"""One error tree; every class carries its stable wire code, its HTTP status and the
close codes that follow it on a websocket, like h11's errors carry `error_status_hint`.

                                         HTTP  close after   close after
                                               a hello       a command
    RoomError
    ├── BadFrame        bad_frame        400   1008          -
    ├── BadRequest      bad_request      400   1008          -
    ├── UnknownOp       unknown_op       400   1008          -
    ├── Unauthorized    unauthorized     401   1008          -
    ├── Forbidden       forbidden        403   1008          -
    ├── StageLocked     stage_locked     409   1008          -
    ├── NotFound        not_found        404   1008          -
    ├── LimitExceeded   limit            413   4429          -
    ├── RateLimited     rate_limited     429   1008          -
    ├── Frozen          frozen           409   1008          -
    ├── RoomEnded       room_ended       404   4404          4000
    ├── RoomLost        room_lost        404   4409          4409
    ├── Busy            busy             503   1013          -
    └── Internal        internal         500   1013          -

A refused hello always closes; a refused command leaves the connection open unless the
room is gone. `busy` is not a refusal of the command itself: the server could not commit
it in time, and the client sends it again under the same id (applied at most once) after
the pause the error's `retry_after` names. Every close code a connection can end with,
and what a client does after it, is in CLOSES below: the one table the clients and
docs/protocol.md follow.

Messages are fixed English sentences: they never echo user input, so no
clinical content can reach a client's error or a log line through them.
"""

from __future__ import annotations

import enum
from typing import Literal, NamedTuple


class Close(enum.IntEnum):
    ENDED = 4000
    INVALID_LINK = 4404
    RESYNC = 4408
    LOST = 4409
    TOO_MANY = 4429
    POLICY = 1008
    TOO_BIG = 1009
    TRY_AGAIN = 1013


Then = Literal["stop", "wait", "resume"]
"""What a client does after a close: stop for good; wait (reconnect with backoff, even
before its first welcome: the server said "not now"); resume (reconnect with backoff and
resume). A close not in the table is a lost connection: resume."""


class CloseRule(NamedTuple):
    then: Then
    meaning: str


CLOSES: dict[int, CloseRule] = {
    Close.ENDED: CloseRule("stop", "the therapist ended the session"),
    Close.INVALID_LINK: CloseRule(
        "stop", "the link is not valid: no such session, a wrong secret, or a replaced link"),
    Close.RESYNC: CloseRule(
        "resume", "too slow: the client stopped reading, or a gap could not be filled"),
    Close.LOST: CloseRule("stop", "the server lost the session; nothing of it was kept"),
    Close.TOO_MANY: CloseRule("wait", "too many connections for this role"),
    Close.POLICY: CloseRule("resume", "a bad or missing hello, garbage, or a flood"),
    Close.TOO_BIG: CloseRule("resume", "a frame larger than the server accepts"),
    Close.TRY_AGAIN: CloseRule("wait", "the server could not reach its store; try again"),
}


def then_after(code: int | None) -> Then:
    """What a client does after a close with this code (None: no close frame at all)."""
    rule = CLOSES.get(code) if code is not None else None
    return rule.then if rule is not None else "resume"


class RoomError(Exception):
    code = "internal"
    default_message = "Something went wrong."
    # A bare RoomError is `internal`: our fault (the store is away, say), so try again.
    http_status = 500
    hello_close: Close = Close.TRY_AGAIN
    command_close: Close | None = None
    retry_after: float | None = None  # seconds; only `busy` asks for a pause

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
    http_status = 400
    hello_close = Close.POLICY


class BadRequest(RoomError):
    code = "bad_request"
    default_message = "A field is missing or invalid."
    http_status = 400
    hello_close = Close.POLICY


class UnknownOp(RoomError):
    code = "unknown_op"
    default_message = "This operation does not exist."
    http_status = 400
    hello_close = Close.POLICY


class Unauthorized(RoomError):
    code = "unauthorized"
    default_message = "This link is not valid."
    http_status = 401
    hello_close = Close.POLICY


class Forbidden(RoomError):
    code = "forbidden"
    default_message = "Your role cannot do this."
    http_status = 403
    hello_close = Close.POLICY


class StageLocked(RoomError):
    code = "stage_locked"
    default_message = "This is not available at the current stage."
    http_status = 409
    hello_close = Close.POLICY


class NotFound(RoomError):
    code = "not_found"
    default_message = "That item does not exist."
    http_status = 404
    hello_close = Close.POLICY


class LimitExceeded(RoomError):
    code = "limit"
    default_message = "A limit was reached."
    http_status = 413
    hello_close = Close.TOO_MANY


class RateLimited(RoomError):
    code = "rate_limited"
    default_message = "Too many messages; slow down."
    http_status = 429
    hello_close = Close.POLICY


class Frozen(RoomError):
    code = "frozen"
    default_message = "The board is paused for editing by the therapist."
    http_status = 409
    hello_close = Close.POLICY


class RoomEnded(RoomError):
    code = "room_ended"
    default_message = "This session does not exist or has ended."
    http_status = 404
    hello_close = Close.INVALID_LINK
    command_close = Close.ENDED


class RoomLost(RoomError):
    code = "room_lost"
    default_message = "This session was lost by the server; nothing of it was kept."
    http_status = 404
    hello_close = Close.LOST
    command_close = Close.LOST


class Busy(RoomError):
    code = "busy"
    default_message = "The server is busy and did not apply this; it will be sent again."
    http_status = 503
    DEFAULT_RETRY_AFTER = 0.5

    def __init__(self, message: str | None = None, *, field: str | None = None,
                 command_id: str | None = None,
                 retry_after: float = DEFAULT_RETRY_AFTER) -> None:
        super().__init__(message, field=field, command_id=command_id)
        self.retry_after = retry_after


class Internal(RoomError):
    code = "internal"
    default_message = "Something went wrong on our side."


ERRORS: dict[str, type[RoomError]] = {
    cls.code: cls
    for cls in (
        BadFrame, BadRequest, UnknownOp, Unauthorized, Forbidden, StageLocked, NotFound,
        LimitExceeded, RateLimited, Frozen, RoomEnded, RoomLost, Busy, Internal,
    )
}
ERROR_CODES = frozenset(ERRORS)
