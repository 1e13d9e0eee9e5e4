"""Errors a client sees, on top of the core's one error tree (rooms/errors.py).

    RoomError (rooms.errors)              every refusal by the server, by wire code
    ├── RoomEnded
    │   ├── SessionEnded                  the therapist ended the session (close 4000)
    │   └── LinkNotValid                  wrong, replaced or stale link (close 4404)
    └── RoomLost
        └── SessionLost                   the store lost the room (close 4409, epoch mismatch)
    ClientError
    ├── ConnectionLost                    could not connect, or gave up reconnecting
    └── ClientClosed                      this client was closed by its owner
    BadLink (ValueError)                  not a join link

Messages are fixed sentences: they never quote a link (it carries a secret)
or anything a person typed.
"""

from __future__ import annotations

from rooms.errors import CLOSES, ERRORS, Close, Internal, RoomEnded, RoomError, RoomLost


class SessionEnded(RoomEnded):
    default_message = "The therapist ended this session."


class LinkNotValid(RoomEnded):
    default_message = "This link is not valid, or the session does not exist or has ended."


class SessionLost(RoomLost):
    pass


class ClientError(Exception):
    pass


class ConnectionLost(ClientError):
    def __init__(self, message: str = "The connection to the server was lost.",
                 *, close_code: int | None = None) -> None:
        self.close_code = close_code
        suffix = f" (close code {close_code})" if close_code is not None else ""
        super().__init__(message + suffix)


class ClientClosed(ClientError):
    def __init__(self) -> None:
        super().__init__("This client was closed.")


class BadLink(ValueError):
    pass


CLOSE_ERRORS: dict[int, type[RoomError]] = {
    Close.ENDED: SessionEnded,
    Close.INVALID_LINK: LinkNotValid,
    Close.LOST: SessionLost,
}
assert set(CLOSE_ERRORS) == {code for code, rule in CLOSES.items() if rule.then == "stop"}


def error_for(code: object, message: object = None, field: object = None) -> RoomError:
    """The RoomError subclass instance for a wire error code (unknown codes are internal)."""
    cls = ERRORS.get(code, Internal) if isinstance(code, str) else Internal
    return cls(
        message if isinstance(message, str) and message else None,
        field=field if isinstance(field, str) else None,
    )
