"""The event-loop lag monitor: a loop held for a while shows as lag; every garbage collection
is timed by its generation; /metrics serves both."""

from __future__ import annotations

import asyncio
import gc
import time

import httpx

from server.loop_lag import GcPauses, LoopLagMonitor

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


def test_every_garbage_collection_is_timed_by_its_generation() -> None:
    pauses: list[tuple[int, float]] = []
    monitor = GcPauses(lambda generation, seconds: pauses.append((generation, seconds)))
    monitor.start()
    try:
        gc.collect(0)
        gc.collect()
    finally:
        monitor.stop()
    assert {0, 2} <= {generation for generation, _ in pauses}
    assert all(0 <= seconds < 60 for _, seconds in pauses)
    timed = len(pauses)
    gc.collect()
    assert len(pauses) == timed, "a collection was timed after the monitor stopped"


async def test_metrics_serve_the_loop_lag_histogram(server) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(200):
            text = (await http.get(f"{server.base_url}/metrics")).text
            counts = [line for line in text.splitlines()
                      if line.startswith("partsboard_event_loop_lag_seconds_count")]
            if counts and float(counts[0].rsplit(" ", 1)[1]) > 0:
                break
    assert 'partsboard_event_loop_lag_seconds_bucket{le="0.005"}' in text
    assert 'partsboard_gc_pause_seconds_bucket{generation="2",le="0.001"}' in text
    assert float(counts[0].rsplit(" ", 1)[1]) > 0
