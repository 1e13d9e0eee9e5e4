"""One client behaviour: the browser's client and the Python client, driven through the same
scripted transcripts, do the same things (docs/protocol.md, section 12, "What a client does").

A scripted server (websockets, in this process) plays a transcript one connection at a
time: it welcomes or refuses a hello, sends events with a duplicate and a gap, acks a
command, closes with 1013, 4429, 1008, 4408, 4404, 4409 or 4000, and records what the client
did on each connection: the resume of its hello, the commands it sent (ids numbered by first
appearance, so a resend shows as the same number) and how the connection ended (the server's
close code, or "client" when the client dropped it). The events are real ones, made by the
pure core for partner "a".

The same server serves a bare page holding the protocol document and the browser client's
modules, so `client/web/connection.js` runs unchanged in Chromium (Playwright) while
`client.Client` runs in this process. Each test plays its transcript to both and asserts
that both did exactly what the transcript expects: the same connections, resumes, resends
and closes, the same mirror at the checkpoints, the same end and the same fate of the
command sent before the first connection.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import msgspec
import pytest
from playwright.async_api import Browser, Page, async_playwright
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from client import Client, LinkNotValid, SessionEnded, SessionLost
from rooms import actions, machine, wire
from rooms.errors import (
    BadFrame,
    Busy,
    Internal,
    LimitExceeded,
    RoomEnded,
    RoomLost,
    Unauthorized,
)
from rooms.model import PartnerInfo, Role, Room
from rooms.protocol import document
from rooms.views import event_for, snapshot_for
from server.pages import msgpack_dist_dir
from tests.browser.browser_helpers import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "client" / "web"
ROOM = "conformance-room"
SECRET = "conformance-secret"
EPOCH = "epoch-one"
WAIT = 30.0


# ---------------------------------------------------------------- a story made by the core

@dataclass
class Story:
    """Partner a's events and views of one room, made by rooms.machine."""

    rooms: list[Room]
    events: list[dict[str, Any]]  # events[n] is the `ev` frame of seq n + 1

    def ev(self, seq: int) -> dict[str, Any]:
        return self.events[seq - 1]

    def view(self, seq: int) -> dict[str, Any]:
        return snapshot_for(self.rooms[seq], "a")


def make_story() -> Story:
    room = machine.new_room(
        room_id=ROOM, epoch=EPOCH, now=1_000.0, therapist_sees_drafts=True,
        partners={"a": PartnerInfo("Alex", "#1f6fb2"), "b": PartnerInfo("Sam", "#b3541e")})
    ids = (f"id{n}" for n in itertools.count())
    steps: list[tuple[Role, str, dict[str, Any]]] = [
        ("therapist", "stage.set", {"stage": 2, "confirm": True}),
        ("a", "part.add", {"name": "The Lookout", "kind": "manager"}),  # id0
        ("a", "part.add", {"name": "The Quiet One", "kind": "exile"}),  # id1
        ("a", "part.reveal", {"id": "id0"}),
        ("b", "part.add", {"name": "The Runner", "kind": "firefighter"}),  # a placeholder for a
        ("a", "pause.raise", {}),  # the command the client sent before it connected
        ("therapist", "agreement.add", {"text": "We slow down when either of us asks."}),
        ("therapist", "note.add", {"text": "A private note."}),  # a placeholder for a
    ]
    rooms, events = [room], []
    for actor, op, args in steps:
        room, event = machine.apply(room, actor, actions.command(op, **args),
                                    machine.Context(1_000.0 + len(rooms), lambda: next(ids)))
        rooms.append(room)
        events.append(wire.event(event_for(event, "a")))
    return Story(rooms, events)


STORY = make_story()
# Seq 7, as a later server could send it: it also changes a collection this client never saw.
NEW_COLLECTION = ["later", "k1", {"id": "k1", "what": "a collection new to this client"}]
STORY.events[6] = {**STORY.ev(7), "changes": [*STORY.ev(7)["changes"], NEW_COLLECTION]}


def plain(value: Any) -> Any:
    """As a client decodes it: tuples become lists."""
    return msgspec.msgpack.decode(msgspec.msgpack.encode(value))


def board_of(view: dict[str, Any]) -> dict[str, Any]:
    return plain({key: view[key] for key in ("colls", "counts", "seq")})


def mirror_at_seq_7() -> dict[str, Any]:
    board = board_of(STORY.view(7))
    board["colls"]["later"] = {"k1": NEW_COLLECTION[2]}
    return board


# ---------------------------------------------------------------- the scripted server

class Conn:
    """One connection to the scripted server, as the act playing it sees it."""

    def __init__(self, script: Script, ws: ServerConnection) -> None:
        self.script = script
        self.ws = ws
        self.record: dict[str, Any] = {"resume": None, "cmds": [], "ended": None}
        script.log.append(self.record)

    async def _recv(self) -> dict[str, Any]:
        async with asyncio.timeout(WAIT):
            frame = wire.decode_server(await self.ws.recv())
        if frame.get("t") == "cmd":
            number = self.script.ids.setdefault(frame["id"], f"c{len(self.script.ids) + 1}")
            self.record["cmds"].append(f"{frame['op']} {number}")
            self.script.last_cmd_id = frame["id"]
        return frame

    async def hello(self) -> None:
        frame = await self._recv()
        assert frame["t"] == "hello" and (frame["room"], frame["secret"]) == (ROOM, SECRET)
        resume = frame.get("resume")
        self.record["resume"] = None if resume is None else [resume["epoch"], resume["seq"]]

    async def cmd(self) -> str:
        """Wait for the next command; its id."""
        while (frame := await self._recv())["t"] != "cmd":
            pass
        return str(frame["id"])

    async def send(self, *frames: dict[str, Any]) -> None:
        for frame in frames:
            await self.ws.send(wire.encode(frame))

    async def welcome(self, *, view: dict[str, Any] | None = None,
                      replay: list[dict[str, Any]] | None = None, seq: int,
                      epoch: str = EPOCH) -> None:
        await self.send(wire.welcome("a", ROOM, epoch, view, replay, seq,
                                     {"therapist": 1, "a": 1, "b": 0}))

    async def close(self, code: int, *frames: dict[str, Any]) -> None:
        await self.send(*frames)
        self.record["ended"] = code
        await self.ws.close(code)

    async def dropped_by_client(self) -> None:
        """Read until the client closes the connection."""
        try:
            while True:
                await self._recv()
        except ConnectionClosed:
            self.record["ended"] = "client"

    async def checkpoint(self, name: str) -> None:
        """Let the test read the client's mirror now, and wait until it has."""
        self.script.reached[name].set()
        async with asyncio.timeout(WAIT):
            await self.script.released[name].wait()


Act = Callable[[Conn], Awaitable[None]]


@dataclass
class Script:
    acts: list[Act]
    checkpoints: tuple[str, ...] = ()
    log: list[dict[str, Any]] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)
    last_cmd_id: str = ""
    reached: dict[str, asyncio.Event] = field(default_factory=dict)
    released: dict[str, asyncio.Event] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.checkpoints:
            self.reached[name] = asyncio.Event()
            self.released[name] = asyncio.Event()

    async def handler(self, ws: ServerConnection) -> None:
        conn = Conn(self, ws)
        number = len(self.log) - 1
        if number >= len(self.acts):
            conn.record["ended"] = "unexpected connection"
            await ws.wait_closed()  # no welcome: a client that should have stopped hangs here
            return
        await self.acts[number](conn)


def serve_file(request: Request) -> Response | None:
    """The page and the browser client's modules, for requests that are not the websocket."""
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return None
    path = request.path.split("?", 1)[0]
    if path == "/":
        served = json.dumps(document()).replace("<", "\\u003c")
        body = (f'<!doctype html><html><head><script type="application/json" id="protocol">'
                f"{served}</script></head><body></body></html>").encode()
        content_type = "text/html; charset=utf-8"
    else:
        if path.startswith("/static/vendor/msgpack/"):
            file = msgpack_dist_dir() / path.removeprefix("/static/vendor/msgpack/")
        else:
            file = WEB / path.removeprefix("/static/")
        if ".." in path or not file.is_file():
            return Response(404, "Not Found", Headers({"Content-Length": "0"}), b"")
        body = file.read_bytes()
        content_type = "text/javascript; charset=utf-8"
    return Response(200, "OK", Headers({"Content-Type": content_type,
                                        "Content-Length": str(len(body))}), body)


@dataclass
class Running:
    script: Script
    server: Server

    @property
    def base(self) -> str:
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"


async def start_script(script: Script) -> Running:
    server = await serve(script.handler, "127.0.0.1", 0,
                         subprotocols=[Subprotocol(wire.SUBPROTOCOL)],
                         process_request=lambda _, request: serve_file(request),
                         compression=None)
    return Running(script, server)


# ---------------------------------------------------------------- the two clients

class Driver(Protocol):
    async def start(self, base: str) -> None: ...
    async def mirror(self, seq: int) -> dict[str, Any]: ...
    async def outcome(self) -> tuple[str, str]: ...
    async def stop(self) -> None: ...


class PythonDriver:
    STOPS = {SessionEnded: "ended", LinkNotValid: "invalid_link", SessionLost: "lost"}

    async def start(self, base: str) -> None:
        self.client = Client(f"{base}/r/{ROOM}#{SECRET}")
        self.command = asyncio.create_task(self.client.send("pause.raise"))
        await asyncio.sleep(0)  # the command waits in the pending table
        self.starting = asyncio.create_task(self.client.start())

    async def mirror(self, seq: int) -> dict[str, Any]:
        await self.client.wait_seq(seq, timeout=WAIT)
        return self.client.board()

    async def outcome(self) -> tuple[str, str]:
        reason = await self.client.wait_closed(timeout=WAIT)
        try:
            command = f"acked:{(await self.command)['seq']}"
        except Exception:
            command = "failed"
        return self.STOPS.get(type(reason), type(reason).__name__), command

    async def stop(self) -> None:
        await self.client.close()
        for task in (self.command, self.starting):
            task.cancel()
        await asyncio.gather(self.command, self.starting, return_exceptions=True)


START_JS = """async ({ url, room, secret }) => {
  const { RoomClient } = await import("/static/connection.js");
  const client = new RoomClient({ room, secret, url });
  const seen = { terminal: null, command: null };
  client.addEventListener("terminal", (e) => { seen.terminal = e.detail.terminal; });
  client.send("pause.raise").then(
    (ack) => { seen.command = `acked:${ack.seq}`; },
    () => { seen.command = "failed"; });
  client.start();
  window.conformance = { client, seen };
}"""


class BrowserDriver:
    # The page says "closed" for a link that stopped working after it got in, "invalid" for
    # one that never did: both are the one stop of close 4404.
    STOPS = {"ended": "ended", "invalid": "invalid_link", "closed": "invalid_link",
             "lost": "lost"}

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.errors: list[str] = []

    async def start(self, base: str) -> None:
        self.context = await self.browser.new_context()
        self.page: Page = await self.context.new_page()
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        await self.page.goto(f"{base}/")
        await self.page.evaluate(START_JS, {"url": f"{base.replace('http', 'ws', 1)}/ws",
                                            "room": ROOM, "secret": SECRET})

    async def mirror(self, seq: int) -> dict[str, Any]:
        await self.page.wait_for_function(
            "(seq) => { const v = window.conformance.client.view; return v && v.seq >= seq; }",
            arg=seq, timeout=WAIT * 1000)
        view: dict[str, Any] = await self.page.evaluate("() => window.conformance.client.view")
        return board_of(view)

    async def outcome(self) -> tuple[str, str]:
        await self.page.wait_for_function(
            "() => window.conformance.seen.terminal && window.conformance.seen.command",
            timeout=WAIT * 1000)
        seen = await self.page.evaluate("() => window.conformance.seen")
        return self.STOPS.get(seen["terminal"], seen["terminal"]), seen["command"]

    async def stop(self) -> None:
        await self.context.close()
        assert not self.errors, f"JavaScript errors in the page: {self.errors}"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM,
                                                    args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Played:
    log: list[dict[str, Any]]
    mirrors: dict[str, dict[str, Any]]
    outcome: tuple[str, str]


async def play(make_script: Callable[[], Script], driver: Driver,
               at: dict[str, int]) -> Played:
    """Play a fresh copy of the transcript to one client; what it did."""
    script = make_script()
    running = await start_script(script)
    mirrors: dict[str, dict[str, Any]] = {}
    try:
        await driver.start(running.base)
        for name in script.checkpoints:
            async with asyncio.timeout(WAIT):
                await script.reached[name].wait()
            mirrors[name] = await driver.mirror(at[name])
            script.released[name].set()
        outcome = await driver.outcome()
    finally:
        await driver.stop()
        running.server.close()
        await running.server.wait_closed()
    return Played(script.log, mirrors, outcome)


async def both(make_script: Callable[[], Script], browser: Browser,
               at: dict[str, int] | None = None) -> tuple[Played, Played]:
    python = await play(make_script, PythonDriver(), at or {})
    page = await play(make_script, BrowserDriver(browser), at or {})
    return python, page


# ---------------------------------------------------------------- the transcripts

def story_script() -> Script:
    async def gap_and_duplicate(c: Conn) -> None:
        await c.hello()
        await c.welcome(view=STORY.view(0), seq=0)
        await c.cmd()
        # ev 2 twice (the second is ignored), then 5 after 3: a gap, so the client drops.
        await c.send(STORY.ev(1), STORY.ev(2), STORY.ev(2), STORY.ev(3), STORY.ev(5))
        await c.dropped_by_client()

    async def replay_then_try_again(c: Conn) -> None:
        await c.hello()
        await c.welcome(replay=[STORY.ev(3), STORY.ev(4), STORY.ev(5)], seq=5)
        await c.cmd()
        await c.close(1013, wire.refusal(Internal()))

    async def too_many(c: Conn) -> None:
        await c.hello()
        await c.close(4429, wire.refusal(LimitExceeded("Too many connections for this role.")))

    async def ack_then_policy(c: Conn) -> None:
        await c.hello()
        await c.welcome(replay=[], seq=5)
        command_id = await c.cmd()
        await c.send(STORY.ev(6), wire.ack(command_id, 6))
        await c.close(1008, wire.refusal(BadFrame("The frame could not be read.")))

    async def new_things_then_too_slow(c: Conn) -> None:
        await c.hello()
        await c.welcome(replay=[], seq=6)
        await c.send(wire.presence({"therapist": 1, "a": 2, "b": 0}),
                     {"t": "from_a_later_version", "x": 1}, STORY.ev(7))
        await c.checkpoint("seq 7")
        await c.close(4408)

    async def whole_view_then_ended(c: Conn) -> None:
        await c.hello()
        await c.welcome(view=STORY.view(8), seq=8)  # the log no longer reached back
        await c.checkpoint("seq 8")
        await c.close(4000, wire.ended())

    return Script([gap_and_duplicate, replay_then_try_again, too_many, ack_then_policy,
                   new_things_then_too_slow, whole_view_then_ended],
                  checkpoints=("seq 7", "seq 8"))


async def test_both_clients_live_through_the_same_session_alike(browser: Browser) -> None:
    python, page = await both(story_script, browser, {"seq 7": 7, "seq 8": 8})
    expected_log = [
        {"resume": None, "cmds": ["pause.raise c1"], "ended": "client"},
        {"resume": [EPOCH, 3], "cmds": ["pause.raise c1"], "ended": 1013},
        {"resume": [EPOCH, 5], "cmds": [], "ended": 4429},
        {"resume": [EPOCH, 5], "cmds": ["pause.raise c1"], "ended": 1008},
        {"resume": [EPOCH, 6], "cmds": [], "ended": 4408},
        {"resume": [EPOCH, 7], "cmds": [], "ended": 4000},
    ]
    assert python.log == expected_log
    assert page.log == expected_log
    expected_mirrors = {"seq 7": mirror_at_seq_7(), "seq 8": board_of(STORY.view(8))}
    assert python.mirrors == expected_mirrors
    assert page.mirrors == expected_mirrors
    assert python.outcome == page.outcome == ("ended", "acked:6")


def refused_script() -> Script:
    async def bad_hello(c: Conn) -> None:
        await c.hello()
        await c.close(1008, wire.refusal(Unauthorized()))

    async def not_now(c: Conn) -> None:
        await c.hello()
        await c.close(1013, wire.refusal(Internal()))

    async def not_valid(c: Conn) -> None:
        await c.hello()
        await c.close(4404, wire.refusal(RoomEnded()))

    return Script([bad_hello, not_now, not_valid])


async def test_before_a_welcome_only_a_stop_close_stops(browser: Browser) -> None:
    """An error frame decides nothing (`unauthorized` before a 1008 is retried like any
    1008); "not now" is retried; an invalid link stops."""
    python, page = await both(refused_script, browser)
    expected = [{"resume": None, "cmds": [], "ended": 1008},
                {"resume": None, "cmds": [], "ended": 1013},
                {"resume": None, "cmds": [], "ended": 4404}]
    assert python.log == page.log == expected
    assert python.outcome == page.outcome == ("invalid_link", "failed")


def lost_script() -> Script:
    async def server_restarts(c: Conn) -> None:
        await c.hello()
        await c.welcome(view=STORY.view(0), seq=0)
        await c.cmd()
        await c.close(1011)

    async def another_life_of_the_room(c: Conn) -> None:
        await c.hello()
        await c.welcome(replay=[], seq=0, epoch="epoch-two")
        await c.dropped_by_client()

    return Script([server_restarts, another_life_of_the_room])


async def test_a_welcome_of_another_epoch_is_the_room_lost(browser: Browser) -> None:
    python, page = await both(lost_script, browser)
    expected = [{"resume": None, "cmds": ["pause.raise c1"], "ended": 1011},
                {"resume": [EPOCH, 0], "cmds": [], "ended": "client"}]
    assert python.log == page.log == expected
    assert python.outcome == page.outcome == ("lost", "failed")


@pytest.mark.parametrize(("code", "refusal", "stop"), [
    (4409, RoomLost(), "lost"),
    (4404, RoomEnded("This link was replaced by your therapist."), "invalid_link"),
    (4000, None, "ended"),
])
async def test_each_stop_close_in_a_session_stops_both(
        browser: Browser, code: int, refusal: Any, stop: str) -> None:
    def script() -> Script:
        async def then_stop(c: Conn) -> None:
            await c.hello()
            await c.welcome(view=STORY.view(0), seq=0)
            await c.cmd()
            await c.close(code, *([wire.refusal(refusal)] if refusal is not None else []))

        return Script([then_stop])

    python, page = await both(script, browser)
    expected = [{"resume": None, "cmds": ["pause.raise c1"], "ended": code}]
    assert python.log == page.log == expected
    assert python.outcome == page.outcome == (stop, "failed")


def busy_script() -> Script:
    async def busy_twice_then_acked(c: Conn) -> None:
        await c.hello()
        await c.welcome(view=STORY.view(5), seq=5)
        command_id = await c.cmd()
        for _ in range(2):
            await c.send(wire.refusal(Busy(retry_after=0.05), command_id))
            assert await c.cmd() == command_id
        await c.send(STORY.ev(6), wire.ack(command_id, 6))
        await c.checkpoint("seq 6")
        await c.close(4000, wire.ended())

    return Script([busy_twice_then_acked], checkpoints=("seq 6",))


async def test_a_busy_command_is_sent_again_under_its_id_until_acked(browser: Browser) -> None:
    python, page = await both(busy_script, browser, {"seq 6": 6})
    expected = [{"resume": None, "cmds": ["pause.raise c1"] * 3, "ended": 4000}]
    assert python.log == page.log == expected
    assert python.mirrors == page.mirrors == {"seq 6": board_of(STORY.view(6))}
    assert python.outcome == page.outcome == ("ended", "acked:6")
