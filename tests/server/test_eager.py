"""Coroutines stepped once in their caller's step (server/eager.py): a frame sent in the
pusher's own step whose send has to wait, finished by a task; a connection's command
runner started eagerly. Finishing them behaves as awaiting them would have."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from server.eager import Stepped, start_eagerly


async def stepped_once(coroutine):
    """Step `coroutine` as a pusher does; returns the task that finishes it."""
    waits_for = coroutine.send(None)
    return asyncio.ensure_future(Stepped(coroutine, waits_for))


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


async def test_an_eager_task_runs_its_first_step_before_it_is_returned_as_that_task() -> None:
    steps: list[object] = []
    gate = asyncio.get_running_loop().create_future()

    async def command() -> str:
        steps.append(asyncio.current_task())
        await gate
        steps.append(asyncio.current_task())
        return "committed"

    caller = asyncio.current_task()
    task = start_eagerly(command())
    assert steps == [task] and task is not caller
    assert asyncio.current_task() is caller
    gate.set_result(None)
    assert await asyncio.wait_for(task, 1) == "committed"
    assert steps == [task, task]


async def test_a_time_out_entered_in_the_first_step_cancels_the_task_not_its_caller() -> None:
    seen: list[str] = []

    async def command() -> None:
        try:
            async with asyncio.timeout(0.05):
                await asyncio.sleep(10)
        except TimeoutError:
            seen.append("timed out")

    task = start_eagerly(command())
    await asyncio.sleep(0.2)  # the caller goes on, and is not cancelled when it fires
    assert task.done() and task.exception() is None
    assert seen == ["timed out"]


async def test_an_eager_task_cancelled_before_its_next_step_cancels_the_coroutine() -> None:
    never = asyncio.get_running_loop().create_future()
    seen: list[str] = []

    async def command() -> None:
        try:
            await never
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        seen.append("went on")

    task = start_eagerly(command())
    task.cancel()  # before the loop took the task's own first step
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"]


@pytest.mark.parametrize("ends", ["returns", "raises"])
async def test_an_eager_task_that_ends_in_its_first_step_hands_on_its_outcome(
        ends: str) -> None:
    ran: list[str] = []

    async def command() -> str:
        ran.append("ran")
        if ends == "raises":
            raise LookupError("refused")
        return "answered"

    task = start_eagerly(command())
    assert ran == ["ran"]
    if ends == "raises":
        with pytest.raises(LookupError):
            await task
    else:
        assert await task == "answered"


async def test_an_eager_task_keeps_its_context_variables_to_itself() -> None:
    variable: contextvars.ContextVar[str] = contextvars.ContextVar("variable", default="caller")
    later = asyncio.get_running_loop().create_future()

    async def command() -> str:
        variable.set("task")
        await later
        return variable.get()

    task = start_eagerly(command())
    assert variable.get() == "caller"
    later.set_result(None)
    assert await task == "task"
