"""A wake-up at a given instant, to the microsecond, for the load generator.

The event loop's own timers (uvloop's and asyncio's) count whole milliseconds: a message due
in 0.6 ms would leave 0.4 ms late, and messages due within one millisecond would leave in a
clump. A Linux timerfd armed at the absolute due time wakes the loop's poll when it is due,
and the generator sleeps until then instead of holding its CPU: whatever shares the core
(Redis, the machine's own tasks) runs meanwhile and does not take the CPU from a generator
that is about to send.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import time

CLOCK_MONOTONIC = 1  # time.monotonic() and time.perf_counter() read it on Linux
TFD_NONBLOCK = os.O_NONBLOCK
TFD_CLOEXEC = os.O_CLOEXEC
TFD_TIMER_ABSTIME = 1
PR_SET_TIMERSLACK = 29


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _check(result: int) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    return result


def precise_wakeups() -> None:
    """The kernel may fire this thread's timers up to 50 µs late by default, to batch
    wake-ups; the generator asks for none of that slack."""
    _check(_libc.prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0))


class PreciseTimer:
    """One timerfd on the running loop; `until(when)` returns at `when` (perf_counter
    seconds) or, if it has passed, at once."""

    def __init__(self) -> None:
        if time.get_clock_info("perf_counter").implementation != "clock_gettime(CLOCK_MONOTONIC)":
            raise RuntimeError("perf_counter does not read CLOCK_MONOTONIC here")
        self._loop = asyncio.get_running_loop()
        self._fd = _check(_libc.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC))
        self._waiter: asyncio.Future[None] | None = None
        self._loop.add_reader(self._fd, self._fired)

    def _fired(self) -> None:
        try:
            os.read(self._fd, 8)
        except BlockingIOError:
            return
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def until(self, when: float) -> None:
        seconds, fraction = divmod(max(when, 0.0), 1.0)
        # it_value 0 would disarm the timer: a time in the past fires at once
        spec = _Itimerspec(_Timespec(0, 0),
                           _Timespec(int(seconds), max(int(fraction * 1e9), 1)))
        _check(_libc.timerfd_settime(self._fd, TFD_TIMER_ABSTIME, ctypes.byref(spec), None))
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def close(self) -> None:
        self._loop.remove_reader(self._fd)
        os.close(self._fd)
