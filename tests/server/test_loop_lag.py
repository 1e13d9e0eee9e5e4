"""The event-loop lag monitor: a loop held for a while shows as lag; every garbage collection
is timed by its generation; /metrics serves both."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable

import httpx
import pytest
from live_rooms import open_room
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from server.loop_lag import GcPauses, LoopLagMonitor
from server.metrics import DRAG_BUCKETS, LightHistogram

HOLD = 0.15


def _spin(seconds: float) -> None:
    """Hold the loop as a long computation does: `seconds` of this thread's CPU time."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


@pytest.mark.parametrize("hold", [time.sleep, _spin], ids=["blocked", "computing"])
async def test_a_held_loop_is_recorded_as_lag_and_told_apart_when_off_cpu(
        hold: Callable[[float], None]) -> None:
    samples: list[tuple[float, float]] = []
    sampling, held = asyncio.Event(), asyncio.Event()
    off_cpu: list[float] = []

    def observe(lag: float) -> None:
        samples.append((lag, off_cpu[-1] if off_cpu else 0.0))
        sampling.set()

    def observe_off_cpu(part: float) -> None:
        off_cpu.append(part)
        samples[-1] = (samples[-1][0], part)
        if samples[-1][0] >= HOLD / 2:
            held.set()

    monitor = LoopLagMonitor(observe, interval=0.01, observe_off_cpu=observe_off_cpu)
    monitor.start()
    try:
        await sampling.wait()
        # The timer due meanwhile runs late.
        asyncio.get_running_loop().call_soon(hold, HOLD)
        await asyncio.wait_for(held.wait(), 30)
    finally:
        await monitor.stop()
    lag, part = max(samples)
    assert lag >= HOLD - 0.01
    assert 0 <= part <= lag
    if hold is time.sleep:  # blocked in a system call: off the CPU nearly throughout
        assert part >= HOLD - 0.05, (lag, part)
    else:  # HOLD of CPU time spent inside the window: at most the rest was off the CPU
        assert part <= max(lag - HOLD, 0.0) + 1e-3, (lag, part)


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


def test_the_light_histogram_exports_what_prometheus_own_would() -> None:
    registry = CollectorRegistry()
    reference = Histogram("reference_seconds", "x", buckets=DRAG_BUCKETS, registry=registry)
    light = LightHistogram("light_seconds", "x", DRAG_BUCKETS, registry=registry)
    for value in (0.00005, 0.0001, 0.0003, 0.0003, 0.002, 0.05, 0.25, 3.0):
        reference.observe(value)
        light.observe(value)
    text = generate_latest(registry).decode()

    def series(name: str) -> list[str]:
        return sorted(line.replace(name, "x") for line in text.splitlines()
                      if line.startswith(name) and "_created" not in line)

    assert series("reference_seconds") == series("light_seconds")
    assert 'light_seconds_bucket{le="0.00025"} 2.0' in text


async def test_metrics_time_each_drag_delivered_inside_the_server(server) -> None:
    room = await open_room(server.base_url, record=True)
    t, a, b = room.therapist, room.a, room.b
    try:
        await t.send("stage.set", stage=2)
        shared = (await a.send("part.add", name="A part", kind="manager"))["changes"][0][1]
        await a.send("part.reveal", id=shared)
        await b.wait_seq(a.seq)
        await t.wait_seq(a.seq)
        async with httpx.AsyncClient() as http:
            before = (await http.get(f"{server.base_url}/metrics")).text
            for step in range(20):
                await a.drag(shared, 0.3 + step / 100, 0.5)
            for _ in range(200):
                if all(watcher.drags.get(shared, {}).get("x") == 0.49 for watcher in (t, b)):
                    break
                await asyncio.sleep(0.02)
            after = (await http.get(f"{server.base_url}/metrics")).text
    finally:
        await room.close()

    def value(text: str, name: str) -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name + " "))

    routed = (value(after, 'partsboard_drags_total{result="ok"}')
              - value(before, 'partsboard_drags_total{result="ok"}'))
    timed = (value(after, "partsboard_drag_relay_seconds_count")
             - value(before, "partsboard_drag_relay_seconds_count"))
    assert routed > 0
    assert timed == 2 * routed  # the therapist and b each got every one; a, dragging, none
    assert 0 < value(after, "partsboard_drag_relay_seconds_sum") < 60
