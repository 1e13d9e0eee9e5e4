"""`python -m server`: run Partsboard (with a throwaway local Redis when REDIS_URL is unset)."""

from __future__ import annotations

import dataclasses
import logging
import sys

import uvicorn

from .app import create_app
from .local_redis import LocalRedis
from .settings import Settings, SettingsError


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    log = logging.getLogger("partsboard")
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        log.error("configuration error: %s", error)
        return 2
    local: LocalRedis | None = None
    if settings.redis_url is None:
        local = LocalRedis().start()
        log.info("REDIS_URL is not set: started a throwaway local Redis (%s, persistence off) "
                 "on port %d; it stops with this server", local.binary.name, local.port)
        settings = dataclasses.replace(settings, redis_url=local.url)
    base = settings.public_url or f"http://{settings.host}:{settings.port}"
    log.info("therapist start page: %s/", base)
    if settings.dev_mode:
        log.warning("no PARTSBOARD_THERAPIST_KEY set: development mode, no practice key needed")
    # uvicorn re-raises SIGTERM once it has shut down, so cleanup lives in the app's
    # lifespan, not in a `finally` here.
    app = create_app(settings, on_shutdown=local.stop if local is not None else None)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        ws_max_size=settings.max_frame_bytes,
        # No per-message deflate: what one partner writes and what the other keeps private
        # would share a compression context on a connection, so a frame's length (visible
        # through TLS) could tell the private text. It also spares a deflate per frame.
        ws_per_message_deflate=False,
        ws_ping_interval=settings.ping_interval,
        ws_ping_timeout=settings.ping_timeout,
        access_log=False,
        log_level="warning",  # uvicorn logs two lines per websocket at info
        proxy_headers=True,
        # A restart meets every client reconnecting at once; a short accept queue would
        # drop their SYNs and leave them waiting on TCP retransmits for seconds.
        backlog=settings.listen_backlog,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
