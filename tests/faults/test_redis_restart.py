"""Redis restarted without persistence under a live service (issue 12's two defects).

An operator runs two server processes on one Redis and restarts Redis while rooms are in
use. Every room is gone, so:

- every member of a room in use is told the room was *lost* (``room_lost``, close 4409),
  never that it *ended* (close 4000), even while other clients are resuming and creating
  rooms on the same processes (any of which may be first to notice the new Redis run);
- the requests that follow right after the restart succeed: the pools' connections died
  with the old Redis, and a request that meets one reconnects and is tried once more
  instead of failing (no 500, no ``internal``, no 1013).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import websockets
from crash_helpers import join, make_room
from faults_helpers import log_mark

from client import Client
from client.errors import SessionLost
from client.links import parse_link
from rooms import wire
from server.local_redis import LocalRedis

pytestmark = pytest.mark.timeout(180)

KEY = "test-key"
WAIT = 30.0  # a guard against hangs, never a measured expectation
PARTNERS = {"a": {"name": "Ari", "color": "#c2410c"}, "b": {"name": "Bo", "color": "#0f766e"}}


async def post_room(http: httpx.AsyncClient, base_url: str) -> tuple[int, dict[str, Any]]:
    response = await http.post(f"{base_url}/api/rooms", json={"partners": PARTNERS},
                               headers={"Authorization": f"Bearer {KEY}"})
    body = response.json() if response.headers.get("content-type", "").startswith(
        "application/json") else {}
    return response.status_code, body


async def hello(link: str, resume: tuple[str, int] | None = None) -> tuple[str, int | None]:
    """One handshake by hand: what the server answered ("welcome" or an error code) and
    the close code when it closed instead of welcoming."""
    parsed = parse_link(link)
    async with websockets.connect(parsed.ws_url, subprotocols=[wire.SUBPROTOCOL],
                                  origin=parsed.origin, open_timeout=WAIT) as ws:
        await ws.send(wire.hello(parsed.room, parsed.secret, resume))
        answer = wire.decode_server(await asyncio.wait_for(ws.recv(), WAIT))
        if answer["t"] == "welcome":
            return "welcome", None
        with contextlib.suppress(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), WAIT)
        return str(answer.get("code")), ws.close_code


async def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while True:
        if check():
            return
        assert time.monotonic() < deadline, f"{what}: not within {WAIT:.0f} s"
        await asyncio.sleep(0.02)


async def test_members_are_told_lost_never_ended_while_others_resume_and_create(
        server_factory) -> None:
    with LocalRedis() as own:
        env = {"REDIS_URL": own.url, "PARTSBOARD_SWEEP_INTERVAL": "0.5"}
        servers = [await server_factory.start(env), await server_factory.start(env)]
        origin = servers[0].base_url
        rooms = [await make_room(origin, n) for n in range(4)]
        members: list[Client] = []
        for n, room in enumerate(rooms):
            for k, role in enumerate(("therapist", "a", "b")):
                members.append(await join(room, role, servers[(n + k) % 2].base_url, origin))
            await dict(room.members)["therapist"].send("stage.set", stage=2)
        # Someone whose connection dropped a moment ago resumes, again and again.
        resumer_room = await make_room(origin, 9)
        resumer = await Client.connect(resumer_room.links["a"])
        resume = (resumer.epoch, resumer.seq)
        await resumer.close()

        stop = asyncio.Event()
        answers: Counter[str] = Counter()

        async def create_forever(base_url: str) -> None:
            async with httpx.AsyncClient(timeout=WAIT) as http:
                while not stop.is_set():
                    try:
                        status, _ = await post_room(http, base_url)
                        answers[f"create {status}"] += 1
                    except httpx.TransportError:
                        answers["create transport"] += 1

        async def resume_forever(base_url: str) -> None:
            link = resumer_room.links["a"].replace(origin, base_url)
            while not stop.is_set():
                try:
                    code, close = await hello(link, resume)
                    answers[f"resume {code} {close}"] += 1
                except (OSError, websockets.WebSocketException):
                    answers["resume transport"] += 1

        churn = [asyncio.create_task(work(server.base_url))
                 for server in servers for work in (create_forever, create_forever,
                                                    resume_forever, resume_forever)]
        try:
            marks = [log_mark(server) for server in servers]
            await asyncio.to_thread(own.stop)
            # An outage long enough for the pub/sub links' backoff to grow (as a real Redis
            # restart is): the resumes and creations reach the new Redis first.
            for server, mark in zip(servers, marks, strict=True):
                await until(lambda s=server, m=mark: s.log_text()[m:].count(
                    "pubsub connection lost") >= 5, "the pub/sub link backs off")
            await asyncio.to_thread(own.start)
            reasons = await asyncio.gather(*(m.wait_closed(timeout=WAIT) for m in members))
        finally:
            stop.set()
            await asyncio.gather(*churn)
        told = Counter(type(reason).__name__ for reason in reasons)
        assert told == {"SessionLost": len(members)}, (told, answers)
        assert all(isinstance(reason, SessionLost) for reason in reasons)
        assert answers["resume room_lost 4409"] > 0, answers
        for server in servers:
            assert server.running


async def test_requests_right_after_a_restart_meet_no_dead_connection(server_factory) -> None:
    with LocalRedis() as own:
        env = {"REDIS_URL": own.url, "PARTSBOARD_REDIS_POOL": "16"}
        servers = [await server_factory.start(env), await server_factory.start(env)]
        origin = servers[0].base_url
        async with httpx.AsyncClient(timeout=WAIT) as http:
            # Fill both processes' pools with connections to the Redis about to restart.
            before = await asyncio.gather(*(post_room(http, servers[n % 2].base_url)
                                            for n in range(48)))
            assert {status for status, _ in before} == {201}
            warm = [await make_room(origin, n) for n in range(2)]
            clients = [await join(room, role, servers[k % 2].base_url, origin)
                       for room in warm for k, role in enumerate(("therapist", "a", "b"))]
            await asyncio.gather(*(client.send("ready.set", ready=True)
                                   for client in clients if client.role != "therapist"))

            await asyncio.to_thread(own.restart)
            created = await asyncio.gather(*(post_room(http, servers[n % 2].base_url)
                                             for n in range(24)))
        statuses = Counter(status for status, _ in created)
        assert statuses == {201: 24}, statuses
        links = [body["links"][role].replace(origin, servers[(n + k) % 2].base_url)
                 for n, (_, body) in enumerate(created)
                 for k, role in enumerate(("therapist", "a", "b"))]
        handshakes = await asyncio.gather(*(hello(link) for link in links))
        assert Counter(handshakes) == {("welcome", None): len(links)}
        joined = await asyncio.gather(*(Client.connect(link) for link in links[:24]))
        try:
            acks = await asyncio.gather(*(
                client.send("agreement.add", text="We take turns")
                if client.role == "therapist" else client.send("ready.set", ready=True)
                for client in joined), return_exceptions=True)
            refused = [repr(ack) for ack in acks if isinstance(ack, BaseException)]
            assert not refused, refused
        finally:
            for client in (*joined, *clients):
                await client.close()
        for server in servers:
            text = server.log_text()
            assert "Traceback" not in text, text[-4000:]
