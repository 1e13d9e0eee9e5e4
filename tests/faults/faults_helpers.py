"""Shared pieces of the bad-input, fuzz and canary tests (tests/faults).

- ``Raw``: one websocket spoken to by hand (any bytes, any first frame), recording every
  frame the server sends back and how the connection ended.
- ``Trio``: the room's normal members (real ``client.Client`` mirrors, recording frames);
  ``carries_on`` proves after each bad-input case that the server is alive, that a normal
  member can still send commands, that every member receives them, and that none of the
  bad input's answers reached anybody else.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis
from crash_helpers import room_seq as room_seq  # shared with the crash tests
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Origin, Subprotocol

from client import Client
from client.http import create_room
from client.links import parse_link
from rooms import wire
from rooms.actions import AgreementAdd

KEY: Final = "test-key"
WAIT: Final = 10.0  # a guard against hangs, never a measured expectation
AUTO: Final = "auto"
CLOSE_POLICY: Final = 1008
CLOSE_TOO_BIG: Final = 1009
CLOSE_INVALID_LINK: Final = 4404
CLOSE_TOO_MANY: Final = 4429

Frame = dict[str, Any]

_probe_ids = itertools.count()
_open_raws: list[Raw] = []  # every Raw not yet closed, so a failing test leaks no socket


def canary(label: str) -> str:
    """A unique string that can only appear somewhere if that text was sent there."""
    return f"{label}-{secrets.token_hex(8)}"


def pack(value: Any) -> bytes:
    return msgspec.msgpack.encode(value)


def normal(value: Any) -> Any:
    return msgspec.msgpack.decode(msgspec.msgpack.encode(value))


board = Client.board


def decoded(client: Client) -> list[Frame]:
    out: list[Frame] = []
    for raw in client.raw_frames:
        frame = msgspec.msgpack.decode(raw)
        if isinstance(frame, dict):
            out.append(frame)
    return out


# -- raw websockets ------------------------------------------------------------------------


class Closed(Exception):
    """The server closed a Raw connection while the test waited for a frame."""

    def __init__(self, code: int | None, frames: Sequence[Frame]) -> None:
        self.code = code
        super().__init__(f"closed with {code}; last frames: {list(frames)[-3:]}")


CONTINUATION, TEXT, BINARY = 0x0, 0x1, 0x2


@dataclass(frozen=True)
class Announced:
    """One websocket frame as the bytes that announce it: its header, with the payload length
    it claims, and only the first bytes of that payload (`head`)."""

    opcode: int  # CONTINUATION, TEXT or BINARY
    length: int
    head: bytes = b""
    fin: bool = True

    def encode(self) -> bytes:
        first = (0x80 if self.fin else 0x00) | self.opcode
        if self.length < 126:
            size = bytes([0x80 | self.length])
        elif self.length < 1 << 16:
            size = bytes([0x80 | 126]) + self.length.to_bytes(2, "big")
        else:
            size = bytes([0x80 | 127]) + self.length.to_bytes(8, "big")
        mask = secrets.token_bytes(4)
        key = int.from_bytes((mask * (len(self.head) // 4 + 1))[: len(self.head)], "big")
        masked = (int.from_bytes(self.head, "big") ^ key).to_bytes(len(self.head), "big")
        return bytes([first]) + size + mask + masked


class Raw:
    """A hand-driven websocket. ``frames`` holds every decoded frame the server sent."""

    def __init__(self, ws: ClientConnection, link: str) -> None:
        self.ws = ws
        self.link = link
        self.frames: list[Frame] = []
        self.undecodable: list[bytes | str] = []
        self.welcome: Frame | None = None

    @classmethod
    async def open(cls, link: str, *, hello: bool = True, origin: str | None = AUTO,
                   subprotocols: Sequence[str] | None = (wire.SUBPROTOCOL,)) -> Raw:
        """Connect (as a browser on the link's page would, by default) and say hello."""
        parsed = parse_link(link)
        ws = await connect(
            parsed.ws_url,
            subprotocols=[Subprotocol(s) for s in subprotocols] if subprotocols else None,
            origin=Origin(parsed.origin if origin == AUTO else origin) if origin else None,
            compression=None, max_size=None, open_timeout=WAIT, close_timeout=2,
        )
        raw = cls(ws, link)
        _open_raws.append(raw)
        if hello:
            await ws.send(wire.hello(parsed.room, parsed.secret))
            raw.welcome = await raw.wait(lambda f: f.get("t") in ("welcome", "error"))
            if raw.welcome.get("t") != "welcome":
                code = await raw.closed()
                await raw.close()
                raise Closed(code, raw.frames)
        return raw

    @property
    def role(self) -> str:
        assert self.welcome is not None
        return str(self.welcome["role"])

    @property
    def errors(self) -> list[Frame]:
        return [f for f in self.frames if f.get("t") == "error"]

    async def send(self, data: bytes | str | Iterable[bytes]) -> None:
        """Send a frame; the server may close while a large one is still being written
        (1009 after the first bytes of an oversized frame), which `closed()` then reports."""
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(data)

    async def send_announced(self, *frames: Announced) -> None:
        """Write frames straight to the socket, each only as far as its `head`.

        The server refuses an oversized frame by the length its header announces. Writing no
        more of it than the server reads before refusing leaves nothing unread in the
        server's socket; a close with unread data is a TCP reset, which can destroy the
        1009 close frame before it reaches this side."""
        self.ws.transport.write(b"".join(frame.encode() for frame in frames))

    async def cmd(self, command_id: str, op: str, args: dict[str, Any] | None = None) -> None:
        await self.ws.send(wire.cmd(command_id, op, args or {}))

    async def next(self, timeout: float = WAIT) -> Frame:  # noqa: ASYNC109
        while True:
            try:
                data = await asyncio.wait_for(self.ws.recv(), timeout)
            except ConnectionClosed:
                raise Closed(self.ws.close_code, self.frames) from None
            try:
                frame = msgspec.msgpack.decode(data) if isinstance(data, bytes) else None
            except msgspec.DecodeError:
                frame = None
            if not isinstance(frame, dict):
                self.undecodable.append(data)
                continue
            self.frames.append(frame)
            return frame

    async def wait(self, predicate: Callable[[Frame], object],
                   timeout: float = WAIT) -> Frame:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.next()
                if predicate(frame):
                    return frame

    async def answer(self, command_id: str) -> Frame:
        """The ack or the error that names this command id."""
        return await self.wait(
            lambda f: f.get("t") in ("ack", "error") and f.get("id") == command_id)

    async def error(self) -> Frame:
        return await self.wait(lambda f: f.get("t") == "error")

    async def closed(self, timeout: float = WAIT) -> int | None:  # noqa: ASYNC109
        """Read until the server closes; return the close code."""
        async with asyncio.timeout(timeout):
            with contextlib.suppress(Closed):
                while True:
                    await self.next()
        return self.ws.close_code

    async def probe(self) -> Frame:
        """Prove the connection is still read, after every frame sent before: an unknown
        op is answered naming its id (refused as rate-limited just after a burst)."""
        probe_id = f"probe-{next(_probe_ids)}"
        await self.cmd(probe_id, "probe.nothing")
        answer = await self.answer(probe_id)
        assert answer.get("code") in ("unknown_op", "rate_limited"), answer
        return answer

    async def close(self) -> None:
        with contextlib.suppress(ValueError):
            _open_raws.remove(self)
        with contextlib.suppress(Exception):
            await self.ws.close()


async def close_all_raws() -> None:
    for raw in list(_open_raws):
        await raw.close()


# -- the room's normal members -------------------------------------------------------------


@dataclass
class Trio:
    therapist: Client
    a: Client
    b: Client
    links: dict[str, str]
    room: str
    agreement: str = ""
    checks: int = 0
    extra: list[Client] = field(default_factory=list)
    origin: str | None = AUTO

    @property
    def all(self) -> list[Client]:
        return [self.therapist, self.a, self.b, *self.extra]

    async def close(self) -> None:
        for client in self.all:
            await client.close()
        await close_all_raws()


async def open_trio(base_url: str, *, partners: dict[str, tuple[str, str]] | None = None,
                    therapist_sees_drafts: bool = True, origin: str | None = AUTO) -> Trio:
    created = await create_room(base_url, key=KEY, partners=partners or {
        "a": ("Robin", "#c2410c"), "b": ("Kai", "#0f766e")},
        therapist_sees_drafts=therapist_sees_drafts)
    links = dict(created.links)
    clients = {role: await Client.connect(links[role], record=True, origin=origin)
               for role in ("therapist", "a", "b")}
    trio = Trio(clients["therapist"], clients["a"], clients["b"], links, created.room,
                origin=origin)
    trio.agreement = await trio.therapist.create(AgreementAdd(text="We take turns"))
    return trio


async def server_alive(server: Any) -> None:
    """The process runs and answers GET /healthz (a bare HTTP/1.0 request: cheap enough
    to ask after every case)."""
    assert server.running, f"the server died; log tail:\n{server.log_tail()}"
    async with asyncio.timeout(WAIT):
        reader, writer = await asyncio.open_connection(server.host, server.port)
        try:
            writer.write(f"GET /healthz HTTP/1.0\r\nHost: {server.host}\r\n\r\n".encode())
            await writer.drain()
            status = await reader.readline()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    assert status.split()[1:2] == [b"200"], status


async def carries_on(trio: Trio, server: Any, case: str = "") -> None:
    """The server is up; a normal member's command reaches every member; nobody else was
    answered for the bad input; every mirror is whole. The sender takes turns."""
    await server_alive(server)
    trio.checks += 1
    sender = (trio.therapist, trio.a, trio.b)[trio.checks % 3]
    if sender is trio.therapist:
        text = f"We take turns ({trio.checks})"
        event = await sender.send("agreement.edit", id=trio.agreement, text=text)
        seen_by: list[Client] = trio.all

        def shows(view: dict[str, Any]) -> bool:
            return bool(view["colls"]["agreements"][trio.agreement]["text"] == text)
    else:
        role = str(sender.role)
        ready = not bool((sender.view or {})["colls"]["ready"].get(role))
        event = await sender.send("ready.set", ready=ready)
        seen_by = [trio.therapist, sender]

        def shows(view: dict[str, Any]) -> bool:
            return bool(view["colls"]["ready"].get(role)) == ready
    for client in trio.all:
        view = await client.wait_seq(event["seq"])
        if client in seen_by:
            assert shows(view), f"{client.role} missed {sender.role}'s command after {case}"
        assert client.terminal is None and client.connected, f"{client.role} lost after {case}"
        assert client.anomalies == [], f"{client.role}: {client.anomalies} after {case}"
        errors = [f for f in decoded(client) if f.get("t") == "error"]
        assert errors == [], f"{client.role} received errors meant for another: {errors}"


async def mirrors_match_fresh_snapshots(trio: Trio) -> None:
    for client in trio.all:
        fresh = await Client.connect(trio.links[str(client.role)], resume=False,
                                     origin=trio.origin)
        try:
            await client.wait_seq(fresh.seq)
            assert board(fresh) == board(client), f"{client.role}'s mirror differs"
        finally:
            await fresh.close()


async def fresh_view(link: str) -> dict[str, Any]:
    fresh = await Client.connect(link, resume=False)
    try:
        assert fresh.view is not None
        return normal(fresh.view)  # type: ignore[no-any-return]
    finally:
        await fresh.close()


LOG_ALARMS: Final = ("Traceback", "ERROR", "CRITICAL", "Exception in ASGI")


def log_mark(server: Any) -> int:
    """Where the server's log ends now (to check only what a test added to it)."""
    return len(server.log_text())


def assert_log_clean(server: Any, since: int = 0) -> None:
    text = server.log_text()[since:]
    for alarm in LOG_ALARMS:
        assert alarm not in text, f"{alarm!r} in the server log:\n{text[-6000:]}"


def root_conftest(config: Any) -> Any:
    """tests/conftest.py as loaded by pytest (its ServerFactory starts real servers)."""
    target = Path(__file__).resolve().parents[1] / "conftest.py"
    for plugin in config.pluginmanager.get_plugins():
        path = getattr(plugin, "__file__", None)
        if path and Path(path).resolve() == target:
            return plugin
    raise LookupError("tests/conftest.py is not loaded")


async def room_keys(redis_url: str, room_id: str) -> list[bytes]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        return [key async for key in client.scan_iter(match=f"*{room_id}*", count=1000)]
    finally:
        await client.aclose()


async def refused(link: str, **options: Any) -> str:
    """Try to join; return how the server refused ("http <status>", "close <code>"...).

    Fails the test if the server welcomes the connection."""
    try:
        raw = await Raw.open(link, **options)
    except InvalidStatus as error:
        return f"http {error.response.status_code}"
    except InvalidHandshake as error:
        return f"handshake {type(error).__name__}"
    except Closed as error:
        return f"close {error.code}"
    await raw.close()
    raise AssertionError(f"the server welcomed a connection it should refuse: {raw.welcome}")
