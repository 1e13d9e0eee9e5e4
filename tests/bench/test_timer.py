"""The generator's timer: it wakes at the instant asked, not before, and sleeps meanwhile."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from bench.timer import PreciseTimer, precise_wakeups

Waits = tuple[list[float], float, float, int]


async def _waits() -> Waits:
    timer = PreciseTimer()
    fd = timer._fd
    late: list[float] = []
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for ahead in (0.0004, 0.0013, 0.02, 0.2):
        due = time.perf_counter() + ahead
        await asyncio.wait_for(timer.until(due), 10)
        late.append(time.perf_counter() - due)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    await asyncio.wait_for(timer.until(time.perf_counter() - 1.0), 10)  # passed: at once
    timer.close()
    return late, wall, cpu, fd


@pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
def test_the_timer_wakes_no_earlier_than_asked_and_holds_no_cpu_while_it_waits(
        run: Callable[[Coroutine[Any, Any, Waits]], Waits]) -> None:
    precise_wakeups()
    late, wall, cpu, fd = run(_waits())
    assert all(lateness >= 0.0 for lateness in late), late
    assert cpu < wall / 2, (cpu, wall)  # it slept in the loop's poll; it did not spin
    with pytest.raises(OSError):
        os.fstat(fd)  # closed
