"""Canaries: clinical text typed in a full session never reaches a log, an error, the
metrics, or a file the server wrote; after the session ends no key of the room remains.

Every free text of a whole five-stage session is a unique canary (display names,
agreements, notes, part names, check-in notes, needs, requests, answers), and so are the
arguments of refused commands (too long, bad kinds, wrong stage, wrong role, frozen...),
bad frames and bad HTTP requests. Each canary ends in 16 random hex digits: that token is
what is searched for, so a canary cut short or re-encoded is still found.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis
from faults_helpers import (
    BINARY,
    CLOSE_INVALID_LINK,
    CLOSE_TOO_BIG,
    WAIT,
    Announced,
    Raw,
    Trio,
    close_all_raws,
    decoded,
    mirrors_match_fresh_snapshots,
    open_trio,
    pack,
    room_keys,
    room_seq,
    server_alive,
)

from client.errors import SessionEnded
from client.http import end_session, export
from client.links import parse_link
from rooms import wire
from rooms.actions import (
    AgreementAck,
    AgreementAdd,
    AgreementEdit,
    CheckinReveal,
    CheckinSet,
    FreezeSet,
    LinkAdd,
    NeedSelf,
    NeedSet,
    NoteAdd,
    NoteEdit,
    OverwhelmClear,
    OverwhelmRaise,
    PartAdd,
    PartBlend,
    PartEdit,
    PartnerUpdate,
    PartRemove,
    PartReveal,
    PartRevealAll,
    PauseClear,
    PauseRaise,
    ReadySet,
    RequestAnswer,
    RequestMake,
    SpotlightSet,
    StageSet,
)
from rooms.errors import RoomError
from rooms.model import SELF_QUALITIES

pytestmark = pytest.mark.timeout(180)

MAX_SCAN = 256 * 1024 * 1024  # bytes read of one changed file at most


class Canaries:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def __call__(self, label: str) -> str:
        value = f"{label}-{secrets.token_hex(8)}"
        self.values[value[-16:]] = value
        return value

    @property
    def tokens(self) -> list[str]:
        return list(self.values)

    def found_in(self, data: bytes | str) -> list[str]:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        return [self.values[token] for token in self.values if token in text]


# -- files written during the test -----------------------------------------------------------

Stamps = dict[str, tuple[int, int, int]]


def stamps(roots: Iterable[Path], exclude: Iterable[Path]) -> Stamps:
    """(mtime, size, inode) of every regular file under the roots, outside `exclude`."""
    skip = [str(path) for path in exclude]
    out: Stamps = {}
    for root in roots:
        for folder, dirs, files in os.walk(root, onerror=lambda _: None):
            dirs[:] = [d for d in dirs
                       if not any(os.path.join(folder, d).startswith(s) for s in skip)]
            for name in files:
                path = os.path.join(folder, name)
                if any(path.startswith(s) for s in skip):
                    continue
                try:
                    info = os.lstat(path)
                except OSError:
                    continue
                if os.path.isfile(path) and not os.path.islink(path):
                    out[path] = (info.st_mtime_ns, info.st_size, info.st_ino)
    return out


def scanned(pid: int, own_tmp: Path) -> tuple[list[Path], list[Path]]:
    """Where to look: the server's working directory and /tmp; not this test's own
    temporary directories (the server's log, checked apart, is there) nor the machinery
    running this session (/tmp/bash_*)."""
    cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    tmp = Path("/tmp")
    return [cwd, tmp], [own_tmp, *tmp.glob("bash_jobs*"), *tmp.glob("bash_tool_*")]


def open_files(pid: int) -> set[str]:
    """Regular files a process holds open (its writes may not show in an mtime yet)."""
    out: set[str] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir() if fd_dir.exists() else ():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("/") and os.path.isfile(target):
            out.add(target)
    return out


def leaks_in_files(paths: Iterable[str], canaries: Canaries) -> list[str]:
    found: list[str] = []
    for path in sorted(paths):
        try:
            with open(path, "rb") as handle:
                data = handle.read(MAX_SCAN)
        except OSError:
            continue
        found += [f"{path}: {value}" for value in canaries.found_in(data)]
    return found


# -- Redis, after the end --------------------------------------------------------------------


async def redis_contents(url: str) -> list[tuple[bytes, bytes]]:
    """Every key left in Redis with its contents, whatever its type."""
    client = aioredis.Redis.from_url(url)
    out: list[tuple[bytes, bytes]] = []
    try:
        async for key in client.scan_iter(count=1000):
            kind = (await client.type(key)).decode()  # type: ignore[union-attr]
            if kind == "string":
                value: Any = await client.get(key)
            elif kind == "hash":
                value = await client.hgetall(key)
            elif kind == "stream":
                value = await client.xrange(key)
            elif kind == "zset":
                value = await client.zrange(key, 0, -1, withscores=True)
            elif kind == "set":
                value = await client.smembers(key)
            elif kind == "list":
                value = await client.lrange(key, 0, -1)
            else:
                value = kind
            out.append((key, repr(value).encode()))
    finally:
        await client.aclose()
    return out


# -- the session -----------------------------------------------------------------------------


class Refusals:
    def __init__(self, redis_url: str, room: str) -> None:
        self.redis_url = redis_url
        self.room = room

    async def __call__(self, client: Any, op: str, args: dict[str, Any], code: str) -> None:
        """Send a command the server must refuse (with this code); it changes nothing."""
        before = await room_seq(self.redis_url, self.room)
        with pytest.raises(RoomError) as refusal:
            await client.send_unchecked(op, args)
        assert refusal.value.code == code, (op, refusal.value.code, refusal.value.message)
        assert await room_seq(self.redis_url, self.room) == before


def scores(level: int) -> dict[str, int]:
    return dict.fromkeys(SELF_QUALITIES, level)


async def play_session(trio: Trio, c: Canaries, redis_url: str) -> None:
    """All five stages, every free text a canary; refusals carry canaries too."""
    refused = Refusals(redis_url, trio.room)
    t, a, b = trio.therapist, trio.a, trio.b
    # 1. Creating a Safe Space
    calm = await t.create(AgreementAdd(text=c("agreement")))
    spare = await t.create(AgreementAdd(text=c("agreement-spare")))
    await t.run(AgreementEdit(id=spare, text=c("agreement-edited")))
    await a.run(AgreementAck(id=calm))
    await b.run(AgreementAck(id=calm))
    await a.run(PauseRaise())
    await t.run(PauseClear())
    await b.run(OverwhelmRaise())
    await t.run(OverwhelmClear(partner="b"))
    await a.run(ReadySet(ready=True))
    note = await t.create(NoteAdd(text=c("note")))
    await t.run(NoteEdit(id=note, text=c("note-edited")))
    await t.run(PartnerUpdate(partner="a", name=c("rename-a")[:40]))
    await refused(a, "part.add", {"name": c("part-too-early"), "kind": "exile"}, "stage_locked")
    await refused(a, "note.add", {"text": c("note-by-partner")}, "forbidden")
    await refused(t, "agreement.add", {"text": c("agreement-too-long") + "y" * 2000}, "limit")
    await refused(t, "note.edit", {"id": "missing", "text": c("note-missing")}, "not_found")
    await refused(t, "partner.update", {"partner": "b", "color": c("colour")}, "bad_request")
    await refused(t, "partner.update", {"partner": "b", "name": c("name-too-long") * 3},
                  "limit")
    await refused(t, "agreement.add", {"text": c("agreement-with-control") + "\x07"},
                  "bad_request")
    # 2. Identifying Parts
    await t.run(StageSet(stage=2))
    hidden = await a.create(PartAdd(name=c("part-private"), kind="exile", x=0.2, y=0.3))
    alarm = await a.create(PartAdd(name=c("part-shared"), kind="firefighter"))
    await a.run(PartEdit(id=alarm, name=c("part-renamed")))
    await a.run(PartReveal(id=alarm))
    quiet = await b.create(PartAdd(name=c("part-b"), kind="firefighter"))
    kid = await b.create(PartAdd(name=c("part-b-second"), kind="manager"))
    await b.run(PartRevealAll())
    scrap = await b.create(PartAdd(name=c("part-removed"), kind="unsure"))
    await b.run(PartRemove(id=scrap))
    for step in range(4):
        await a.drag(hidden, step / 10, 0.4)
        await a.drag(alarm, step / 10, 0.6)
    await refused(a, "part.add", {"name": c("part-too-long") + "x" * 100, "kind": "exile"},
                  "limit")
    await refused(a, "part.add", {"name": c("part-bad-kind"), "kind": c("kind")},
                  "bad_request")
    await refused(a, "part.edit", {"id": kid, "name": c("part-not-mine")}, "not_found")
    await refused(a, "checkin.set", {"scores": scores(5), "note": c("checkin-early")},
                  "stage_locked")
    await refused(a, "part.add", {"name": c("part-unknown-arg"), c("arg-name")[:40]: 1},
                  "bad_request")
    await refused(a, c("op")[:40], {"name": c("unknown-op-arg")}, "unknown_op")
    await t.run(SpotlightSet(part=alarm))
    await t.run(FreezeSet(frozen=True))
    await refused(a, "part.add", {"name": c("part-frozen"), "kind": "exile"}, "frozen")
    await t.run(FreezeSet(frozen=False))
    # 3. Unblending
    await t.run(StageSet(stage=3))
    await a.run(PartBlend(id=alarm, level=7))
    await a.create(LinkAdd(kind="protects", source=alarm, target=hidden))
    await b.create(LinkAdd(kind="reacts_to", source=quiet, target=alarm))
    # 4. Accessing the Self
    await t.run(StageSet(stage=4))
    await a.run(CheckinSet(scores=scores(6), note=c("checkin-a")))  # never shared
    await b.run(CheckinSet(scores=scores(7), note=c("checkin-b")))
    await b.run(CheckinReveal())
    # 5. Working with Parts in the Relationship
    await t.run(StageSet(stage=5))
    await a.run(NeedSet(part=alarm, text=c("need-a")))
    await a.send("need.reveal", part=alarm)
    await a.run(NeedSelf(part=alarm, text=c("self-a")))
    await a.run(RequestMake(part=alarm, text=c("request-a")))
    await b.run(RequestAnswer(part=alarm, answer="not_yet", note=c("answer-b")))
    await refused(a, "request.make", {"part": hidden, "text": c("request-private")},
                  "not_found")  # a private part has no need to turn into a request
    await refused(b, "request.answer", {"part": alarm, "answer": c("answer"), "note": "n"},
                  "bad_request")
    await refused(b, "need.set", {"part": "missing", "text": c("need-missing")}, "not_found")
    await refused(a, "note.add", {"text": c("note-by-partner-late")}, "forbidden")


async def bad_frames(trio: Trio, c: Canaries) -> list[dict[str, Any]]:
    """Bad frames and handshakes carrying canaries; returns every error frame received."""
    errors: list[dict[str, Any]] = []
    raw = await Raw.open(trio.links["a"])
    for data in (
        c("text-frame"),
        b"\xc1" + c("garbage").encode(),
        pack({"t": c("frame-type")}),
        pack({"t": "cmd", "id": "k1", "op": "part.add", "args": {"name": c("huge") * 1500}}),
        pack({"t": "cmd", "id": "k2", "op": "pause.raise", "args": {}, c("frame-key"): 1}),
        pack({"t": "cmd", "id": "k3", "op": "part.add", "args": {"name": [c("list-name")]}}),
        b"\x91" * 50_000 + pack(c("deep")),
        pack({"t": "drag", "part": c("drag-part"), "x": 0.5, "y": 0.5}),
        pack({"t": "drag", "part": c("drag-part-nan"), "x": float("nan"), "y": 0.5}),
        pack({"t": "hello", "room": c("hello-room"), "secret": c("hello-secret")}),
    ):
        await raw.send(data)
    await raw.probe()
    errors += raw.errors
    await raw.close()
    # Handshakes with canaries for the room id and the secret.
    for hello in (wire.hello(c("handshake-room"), c("handshake-secret")),
                  wire.hello(trio.room, c("handshake-secret-2"))):
        raw = await Raw.open(trio.links["b"], hello=False)
        await raw.send(hello)
        assert await raw.closed() == CLOSE_INVALID_LINK
        errors += raw.errors
    # An oversized frame full of canaries.
    raw = await Raw.open(trio.links["b"])
    oversized = pack({"t": "cmd", "id": "k4", "op": "note.add",
                      "args": {"text": c("oversized") * 3000}})
    await raw.send_announced(Announced(BINARY, len(oversized), oversized[:8192]))
    assert await raw.closed() == CLOSE_TOO_BIG
    errors += raw.errors
    await close_all_raws()
    return errors


async def bad_http(base_url: str, trio: Trio, c: Canaries) -> list[bytes]:
    """Refused HTTP requests carrying canaries; returns every response body."""
    a = parse_link(trio.links["a"])
    bodies: list[bytes] = []
    async with httpx.AsyncClient(timeout=WAIT) as http:
        for body in (
            {"partners": {"a": {"name": c("http-name"), "color": c("http-colour")},
                          "b": {"name": c("http-name-b"), "color": "#000000"}}},
            {"partners": {"a": {"name": c("http-long") * 5, "color": "#000000"},
                          "b": {"name": "B", "color": "#000000"}}},
            {"partners": {"a": {"name": "A"}, c("http-role"): {"name": c("http-name-c")}}},
            {"continue_from": {"format": c("http-export-format"), "parts": [c("http-part")]}},
            {c("http-field"): c("http-value")},
        ):
            response = await http.post(f"{base_url}/api/rooms", json=body,
                                       headers={"Authorization": "Bearer test-key"})
            assert 400 <= response.status_code < 500, (response.status_code, response.text)
            bodies.append(response.content)
        response = await http.post(f"{base_url}/api/rooms",
                                   content=b"{" + c("http-json").encode(),
                                   headers={"Authorization": "Bearer test-key",
                                            "Content-Type": "application/json"})
        assert 400 <= response.status_code < 500
        bodies.append(response.content)
        response = await http.post(f"{a.http_base}/api/rooms/{a.room}/export",
                                   params={"format": c("http-format")},
                                   headers={"Authorization": f"Bearer {a.secret}"})
        assert response.status_code == 400
        bodies.append(response.content)
        response = await http.post(f"{a.http_base}/api/rooms/{a.room}/end",
                                   json={"confirm": True},
                                   headers={"Authorization": f"Bearer {c('http-secret')}"})
        assert response.status_code == 404
        bodies.append(response.content)
    return bodies


async def test_canaries_never_reach_logs_errors_metrics_or_files(
        server: Any, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    c = Canaries()
    roots, exclude = scanned(server.pid, tmp_path_factory.getbasetemp())
    before = await asyncio.to_thread(stamps, roots, exclude)

    trio = await open_trio(server.base_url, partners={
        "a": (c("name-a"), "#c2410c"), "b": (c("name-b"), "#0f766e")})
    try:
        await play_session(trio, c, redis_url)
        errors = await bad_frames(trio, c)
        bodies = await bad_http(server.base_url, trio, c)
        for role in ("therapist", "a", "b"):  # downloads: to the person, never to a file
            for fmt in ("json", "md", "html"):
                await export(trio.links[role], fmt)
        await mirrors_match_fresh_snapshots(trio)
        await server_alive(server)

        # The session really carried the canaries (so their absence elsewhere means
        # something): the therapist's board shows the shared ones.
        shown = msgspec.json.encode(trio.therapist.view)
        assert c.found_in(shown), "no canary reached the board"

        # Errors received by anyone: none quotes a canary.
        for client in trio.all:
            errors += [f for f in decoded(client) if f.get("t") == "error"]
        assert len(errors) >= 10
        leaked = [(f, c.found_in(msgspec.json.encode(f))) for f in errors]
        assert not [pair for pair in leaked if pair[1]], "an error frame quotes typed text"
        for body in bodies:
            assert not c.found_in(body), f"an HTTP error quotes typed text: {body[:200]!r}"

        # Metrics carry no content.
        async with httpx.AsyncClient(timeout=WAIT) as http:
            metrics = (await http.get(f"{server.base_url}/metrics")).text
        assert "partsboard_commands_total" in metrics
        assert not c.found_in(metrics), "typed text in /metrics"

        # The session ends: everyone is told, and no key of the room remains.
        await end_session(trio.links["therapist"])
        for client in trio.all:
            assert isinstance(await client.wait_closed(), SessionEnded)
        assert await room_keys(redis_url, trio.room) == []
        for key, value in await redis_contents(redis_url):
            assert not c.found_in(key + value), f"typed text left in Redis under {key!r}"
    finally:
        await trio.close()

    # The server's log: no canary (and nothing went wrong).
    log = server.log_text()
    assert not c.found_in(log), f"typed text in the server log: {c.found_in(log)[:3]}"
    assert "Traceback" not in log

    # Files the server (or its Redis) wrote or changed during the test: no canary.
    after = await asyncio.to_thread(stamps, roots, exclude)
    changed = {path for path, stamp in after.items() if before.get(path) != stamp}
    held = {path for path in open_files(server.pid)
            if not any(path.startswith(str(e)) for e in exclude)}
    leaks = await asyncio.to_thread(leaks_in_files, changed | held, c)
    assert not leaks, "typed text written to disk:\n" + "\n".join(leaks[:20])
    assert len(c.tokens) >= 60
