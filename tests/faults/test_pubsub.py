"""The pub/sub link's watchdog: a subscription that stays connected but stops delivering
is noticed (its own pings stop coming back) and replaced, without members reconnecting."""

from __future__ import annotations

import asyncio

import pytest
from crash_helpers import join, make_room, metric
from faults_helpers import WAIT, log_mark
from stall_proxy import StallProxy

from server.local_redis import LocalRedis

pytestmark = pytest.mark.timeout(120)


async def test_a_subscription_that_goes_quiet_is_replaced(
        server_factory, redis_server: LocalRedis) -> None:
    async with StallProxy("127.0.0.1", redis_server.port) as proxy:
        server = await server_factory.start({"REDIS_URL": proxy.url,
                                             "PARTSBOARD_SWEEP_INTERVAL": "0.5"})
        other = await server_factory.start()  # straight to Redis, not through the proxy
        room = await make_room(server.base_url, 0)
        member = await join(room, "therapist", server.base_url, server.base_url)
        partner = await join(room, "a", other.base_url, server.base_url)
        await partner.send("ready.set", ready=True)
        await member.wait_seq(partner.seq)
        mark = log_mark(server)
        resubscribed = await metric(server.base_url, "partsboard_resubscribes_total")

        [stalled] = proxy.stall_subscribers()  # open, but nothing reaches the server
        await asyncio.wait_for(stalled.closed_by_client.wait(), WAIT)  # the server gave it up
        assert "pub/sub missed its own ping" in server.log_text()[mark:]
        assert await metric(server.base_url, "partsboard_resubscribes_total") > resubscribed
        await asyncio.wait_for(proxy.new_subscriber.wait(), WAIT)
        [fresh] = proxy.open_subscribers()
        assert not fresh.stalled

        # The new subscription carries the other process's events; nobody reconnected.
        for ready in (False, True):
            await partner.send("ready.set", ready=ready)
            await member.wait_seq(partner.seq)
        assert member.reconnects == 0 and member.anomalies == []
        for client in (member, partner):
            await client.close()
