"""The Starlette application: routes, security headers, and the Redis/hub lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from rooms.geometry import PLACES_PER_SIDE

from . import metrics
from .api import Api
from .hub import Hub
from .loop_lag import GcPauses, LoopLagMonitor
from .pages import page_routes
from .redis_urls import RedisClient, make_client
from .session import Connection
from .settings import Settings
from .store import MIN_REDIS, Store

log = logging.getLogger("partsboard")

SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     b"connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; "
     b"frame-ancestors 'none'; form-action 'self'"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def redis_client(settings: Settings, url: str, *, pool_size: int,
                 retry: bool = True) -> RedisClient:
    # A waiting pool: under load, callers queue for a connection instead of failing.
    # redis://, rediss://, unix://, redis+sentinel:// (the master, found again on failover)
    # or redis+cluster:// (every primary, found again when slots move or fail over).
    return make_client(url, pool_size=pool_size, timeout=settings.redis_timeout, retry=retry)


def create_app(settings: Settings, *, on_shutdown: Callable[[], None] | None = None) -> Starlette:
    if settings.redis_url is None:
        raise ValueError("create_app needs settings.redis_url")
    client = redis_client(settings, settings.redis_url, pool_size=settings.redis_pool_size)
    # Pub/sub holds its own connection for as long as it listens, and never retries in
    # place: the hub must hear of every reconnect to fill what was missed meanwhile.
    pubsub_client = redis_client(settings, settings.redis_url, pool_size=4, retry=False)
    # The presence heartbeat and the sweep never wait behind commands for a connection.
    control_client = redis_client(settings, settings.redis_url, pool_size=4)
    store = Store(client, idle_ttl=settings.idle_ttl, max_lifetime=settings.max_lifetime,
                  log_length=settings.log_length, control=control_client,
                  durable_replicas=settings.durable_acks,
                  durable_timeout=settings.durable_timeout)
    hub = Hub(store, pubsub_client, sweep_interval=settings.sweep_interval,
              presence_ttl=settings.presence_ttl,
              concurrent_handshakes=max(1, settings.redis_pool_size // 2),
              commit_slots=max(1, settings.redis_pool_size // 2),
              commit_wait=settings.commit_wait)
    api = Api(settings, store)
    lag = LoopLagMonitor(metrics.LOOP_LAG.observe,
                         observe_off_cpu=metrics.LOOP_LAG_OFF_CPU.observe)
    gc_pauses = GcPauses(metrics.gc_pause)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.start()
        await store.load_scripts()  # rather than a NOSCRIPT round trip on first use
        too_old = [v for v in await store.versions() if v < MIN_REDIS]
        if too_old:
            raise RuntimeError("Partsboard needs Redis 7.0 or later (sharded pub/sub); this "
                               f"Redis is {'.'.join(map(str, min(too_old)))}")
        if settings.durable_acks and min(await store.replicas()) < settings.durable_acks:
            log.warning("PARTSBOARD_DURABLE_ACKS=%d but a Redis primary has fewer replicas "
                        "connected: commands will be refused until enough replicas confirm",
                        settings.durable_acks)
        persistence = await store.persistence_settings()
        if persistence is None:
            log.warning("could not read Redis persistence settings (CONFIG is disabled); "
                        "make sure Redis does not write session content to disk")
        elif persistence["save"] or persistence["appendonly"] == "yes":
            log.warning("Redis persists data to disk (save=%r appendonly=%s): session content "
                        "would reach a disk; turn persistence off for Partsboard",
                        persistence["save"], persistence["appendonly"])
        if settings.limits.parts_per_partner > PLACES_PER_SIDE:
            log.warning("PARTSBOARD_MAX_PARTS=%d is more than the %d places on a side of the "
                        "board: on a full side, cards will lie on each other",
                        settings.limits.parts_per_partner, PLACES_PER_SIDE)
        if settings.dev_mode:
            log.warning("DEVELOPMENT MODE: no PARTSBOARD_THERAPIST_KEY is set, so anyone who "
                        "can reach this server can create rooms")
        await hub.start()
        lag.start()
        gc_pauses.start()
        # Everything made so far lives as long as the process: keep it out of every
        # future collection, and collect the young generation less often.
        gc.collect()
        gc.freeze()
        gc.set_threshold(10_000, 20, 20)
        try:
            yield
        finally:
            gc_pauses.stop()
            await lag.stop()
            await hub.stop()
            await store.close()  # its clients too
            await pubsub_client.aclose()
            if on_shutdown is not None:
                on_shutdown()

    class WebSocketEndpoint:
        """/ws as a plain ASGI app (Starlette routes a non-function endpoint to it as is):
        a connection sends and receives its live frames through the server's own `send`
        and `receive`, not through WebSocket's methods, which cost two more coroutine
        layers per frame with their state checks, and Starlette's exception wrapper
        another (the app-level one stays)."""

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            websocket = WebSocket(scope, receive, send)
            await Connection(websocket, settings, store, hub, receive, send).run()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def readyz(request: Request) -> Response:
        try:
            if not await asyncio.wait_for(store.ping(), timeout=1.0):
                raise ConnectionError
        except (RedisError, OSError, TimeoutError):
            return JSONResponse({"ok": False, "redis": "unreachable"}, status_code=503)
        return JSONResponse({"ok": True, "redis": "ok"})

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    routes: list[Any] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
        WebSocketRoute("/ws", WebSocketEndpoint()),
        *api.routes(),
        *page_routes(),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.store = store
    app.add_middleware(SecurityHeaders)
    return app
