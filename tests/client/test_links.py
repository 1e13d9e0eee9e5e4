from __future__ import annotations

import pytest

from client.errors import BadLink
from client.links import JoinLink, make_link, parse_link


def test_plain_http_link() -> None:
    link = parse_link("http://127.0.0.1:8000/r/room123#s3cret")
    assert link == JoinLink("http://127.0.0.1:8000", "ws://127.0.0.1:8000/ws", "room123", "s3cret")
    http_base, ws_url, room, secret = link
    assert (http_base, ws_url, room, secret) == tuple(link)
    assert link.origin == "http://127.0.0.1:8000"


def test_https_link_under_a_path_prefix() -> None:
    link = parse_link("https://Example.org/boards/r/abc_DEF-1#tok-en_9")
    assert link.http_base == "https://Example.org/boards"
    assert link.ws_url == "wss://Example.org/boards/ws"
    assert (link.room, link.secret) == ("abc_DEF-1", "tok-en_9")
    assert link.origin == "https://Example.org"


def test_round_trip_and_surrounding_space() -> None:
    url = make_link("http://h:1/", "r1", "s1")
    assert url == "http://h:1/r/r1#s1"
    assert parse_link(f"  {url}\n").url == url


def test_trailing_slash_and_query_are_ignored() -> None:
    link = parse_link("http://h:1/r/r1/?x=1#s1")
    assert (link.http_base, link.room, link.secret) == ("http://h:1", "r1", "s1")


def test_repr_hides_the_secret() -> None:
    link = parse_link("http://h/r/room#very-secret-value")
    assert "very-secret-value" not in repr(link)
    assert "room" in repr(link)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "room#s3cr3tTok",
        "ftp://h/r/room#s3cr3tTok",
        "http:///r/room#s3cr3tTok",
        "http://h/room#s3cr3tTok",
        "http://h/r/#s3cr3tTok",
        "http://h/r/room",
        "http://h/r/room#",
        "http://h/r/a/b#s3cr3tTok",
        "http://h/r/room#" + "x" * 129,
        "http://h/r/" + "x" * 129 + "#s3cr3tTok",
    ],
)
def test_not_a_join_link(bad: str) -> None:
    with pytest.raises(BadLink) as caught:
        parse_link(bad)
    assert "s3cr3tTok" not in str(caught.value)


def test_error_never_quotes_the_link() -> None:
    with pytest.raises(BadLink) as caught:
        parse_link("gopher://h/r/room#top-secret-token")
    assert "top-secret-token" not in str(caught.value)
