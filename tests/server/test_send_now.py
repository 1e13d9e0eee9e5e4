"""A frame for a member whose writer is parked is sent in the pusher's own step; a send
that has to wait is finished by a task (server/session.py's _finish_started). These
check that finishing a coroutine stepped once behaves as awaiting it would have."""

from __future__ import annotations

import asyncio

import pytest

from server.session import _finish_started


async def stepped_once(coroutine):
    """Step `coroutine` as a pusher does; returns the task that finishes it."""
    waits_for = coroutine.send(None)
    return asyncio.ensure_future(_finish_started(coroutine, waits_for))


async def test_a_send_that_waits_finishes_once_its_socket_takes_more() -> None:
    writable = asyncio.Event()
    written: list[bytes] = []

    async def send(frame: bytes) -> None:
        await writable.wait()
        await asyncio.sleep(0)  # a bare yield on the way
        written.append(frame)

    task = await stepped_once(send(b"x"))
    await asyncio.sleep(0.01)
    assert written == [] and not task.done()
    writable.set()
    await asyncio.wait_for(task, 1)
    assert written == [b"x"]


async def test_an_error_inside_the_send_reaches_whoever_waits_for_it() -> None:
    future = asyncio.get_running_loop().create_future()
    seen: list[str] = []

    async def send() -> None:
        try:
            await future
        except ConnectionResetError:
            seen.append("inside")
            raise

    task = await stepped_once(send())
    future.set_exception(ConnectionResetError())
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(task, 1)
    assert seen == ["inside"]


@pytest.mark.parametrize("waits_at", ["future", "bare yield"])
async def test_cancelling_the_task_cancels_the_send_where_it_waits(waits_at: str) -> None:
    # A future wakes the task through the future; a bare yield only through the exception
    # thrown into the coroutine.
    never = asyncio.get_running_loop().create_future()
    seen: list[str] = []

    async def send() -> None:
        try:
            await (never if waits_at == "future" else asyncio.sleep(0))
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        seen.append("went on")

    task = await stepped_once(send())
    await asyncio.sleep(0)  # the task's first step hands the wait to the loop
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"]
    assert never.cancelled() == (waits_at == "future")
