"""The event-loop lag monitor: a loop held for a while shows as lag, and /metrics serves it."""

from __future__ import annotations

import asyncio
import time

import httpx

from server.loop_lag import LoopLagMonitor

HOLD = 0.15


async def test_a_held_loop_is_recorded_as_lag() -> None:
    samples: list[float] = []
    sampling, held = asyncio.Event(), asyncio.Event()

    def observe(lag: float) -> None:
        samples.append(lag)
        sampling.set()
        if lag >= HOLD / 2:
            held.set()

    monitor = LoopLagMonitor(observe, interval=0.01)
    monitor.start()
    try:
        await sampling.wait()
        # Hold the loop as a long computation would: the timer due meanwhile runs late.
        asyncio.get_running_loop().call_soon(time.sleep, HOLD)
        await asyncio.wait_for(held.wait(), 30)
    finally:
        await monitor.stop()
    assert max(samples) >= HOLD - 0.01


async def test_metrics_serve_the_loop_lag_histogram(server) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(200):
            text = (await http.get(f"{server.base_url}/metrics")).text
            counts = [line for line in text.splitlines()
                      if line.startswith("partsboard_event_loop_lag_seconds_count")]
            if counts and float(counts[0].rsplit(" ", 1)[1]) > 0:
                break
    assert 'partsboard_event_loop_lag_seconds_bucket{le="0.005"}' in text
    assert float(counts[0].rsplit(" ", 1)[1]) > 0
