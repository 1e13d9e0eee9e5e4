"""Fixtures for in-process tests of the server's parts against the test Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from hub_helpers import open_store

from server.hub import Hub


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def hub(redis_url: str) -> AsyncIterator[Hub]:
    pubsub_client = aioredis.Redis.from_url(redis_url)
    async with open_store(redis_url) as store:
        hub = Hub(store, pubsub_client, sweep_interval=0.2, presence_ttl=5)
        await hub.start()
        yield hub
        await hub.stop()
    await pubsub_client.aclose()
