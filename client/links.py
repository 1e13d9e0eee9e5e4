"""Join links: "<base>/r/<room>#<secret>", the secret kept in the URL fragment."""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import urlsplit, urlunsplit

from .errors import BadLink

MAX_TOKEN = 128


class JoinLink(NamedTuple):
    http_base: str
    ws_url: str
    room: str
    secret: str

    def __repr__(self) -> str:  # the secret never reaches a log or a test report
        return (f"JoinLink(http_base={self.http_base!r}, ws_url={self.ws_url!r}, "
                f"room={self.room!r}, secret=<hidden>)")

    @property
    def origin(self) -> str:
        """The Origin a browser on this link's room page would send."""
        parts = urlsplit(self.http_base)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def url(self) -> str:
        return make_link(self.http_base, self.room, self.secret)


def make_link(http_base: str, room: str, secret: str) -> str:
    return f"{http_base.rstrip('/')}/r/{room}#{secret}"


def parse_link(link: str) -> JoinLink:
    """Split a join link into (http_base, ws_url, room, secret); raise BadLink if it is none."""
    if not isinstance(link, str):
        raise BadLink("A join link is a string.")
    try:
        parts = urlsplit(link.strip())
    except ValueError:
        raise BadLink("This is not a join link.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.netloc:
        raise BadLink("A join link starts with http:// or https://.")
    prefix, sep, room = parts.path.rstrip("/").rpartition("/r/")
    if not sep or not room or "/" in room or len(room) > MAX_TOKEN:
        raise BadLink("A join link looks like <base>/r/<room>#<secret>.")
    secret = parts.fragment
    if not secret or len(secret) > MAX_TOKEN:
        raise BadLink("This join link has no valid secret after '#'.")
    http_base = urlunsplit((scheme, parts.netloc, prefix, "", ""))
    ws_scheme = "wss" if scheme == "https" else "ws"
    ws_url = urlunsplit((ws_scheme, parts.netloc, prefix + "/ws", "", ""))
    return JoinLink(http_base, ws_url, room, secret)
