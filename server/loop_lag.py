"""Event-loop lag: how late a timer runs after its due time; and garbage collections.

Everything in a process shares one event loop, so anything that holds it (a long
computation, a collection, a big pipeline parsed in one go) delays every other
connection by as much. A timer due every `interval` measures that delay directly:
it cannot run before the loop is free again. The samples go to a Prometheus
histogram (`partsboard_event_loop_lag_seconds` in /metrics); the benchmark reads
it before and after each step.

The lag alone cannot tell a loop busy with work from a process that was not running
at all (descheduled, its CPU stolen by the hypervisor, or blocked in a system call). The
loop thread's CPU time over each sample's window bounds that: the lag minus that CPU time
is time the thread was provably off the CPU (`partsboard_event_loop_lag_off_cpu_seconds`).

Nor can it say what held the loop. Garbage collections are timed on their own
(gc.callbacks, around each one) into `partsboard_gc_pause_seconds` per generation, so
a lag that matches a collection's pause can be told from other stalls.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Callable

LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
GC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
              0.5, 1.0)


class LoopLagMonitor:
    def __init__(self, observe: Callable[[float], None], interval: float = 0.02,
                 observe_off_cpu: Callable[[float], None] | None = None) -> None:
        self.observe = observe
        self.observe_off_cpu = observe_off_cpu
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._sample_forever(), name="loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _sample_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval
            cpu = time.thread_time()
            await asyncio.sleep(self.interval)
            lag = max(loop.time() - due, 0.0)
            self.observe(lag)
            if self.observe_off_cpu is not None:
                # The thread ran at most this much in the whole window, lag included.
                self.observe_off_cpu(max(lag - (time.thread_time() - cpu), 0.0))


class GcPauses:
    """Times every garbage collection: observe(generation, seconds) after each one."""

    def __init__(self, observe: Callable[[int, float], None]) -> None:
        self.observe = observe
        self._started = 0.0

    def start(self) -> None:
        gc.callbacks.append(self._timed)

    def stop(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._timed)

    def _timed(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.observe(info["generation"], time.perf_counter() - self._started)
