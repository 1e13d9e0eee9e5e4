"""Tasks whose first step runs in the caller's step, as Python 3.12's eager tasks do.

A task made with `create_task` takes its first step a turn of the event loop later, and
on a busy loop a turn is a wait of its own: a command's write to Redis, begun from the
reader, went out only once every other callback ready then had run. Started eagerly it
goes out in the reader's step. During that first step the new task is the current task,
so a time-out entered there (`asyncio.timeout`, redis-py's connect) belongs to the task
that goes on awaiting, not to the caller.
"""

from __future__ import annotations

import asyncio
import contextvars
from asyncio.tasks import _enter_task, _leave_task
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")

_NOT_STEPPED = object()


class Stepped(Coroutine[Any, Any, T]):
    """The rest of a coroutine whose first step already ran: what it yielded then (the
    future it waits for) is yielded again at once, and from there on the coroutine is
    driven as `await` would drive it; an exception thrown in before that goes into the
    coroutine too, which a wrapping `async def` would swallow unstarted."""

    __slots__ = ("_coroutine", "_first")

    def __init__(self, coroutine: Coroutine[Any, Any, T], first: Any = _NOT_STEPPED) -> None:
        self._coroutine = coroutine
        self._first = first  # what the first step yielded, once it ran

    def step(self) -> None:
        """Run the first step here (if the coroutine finishes in it, its result or
        exception comes out of the next `send`)."""
        try:
            self._first = self._coroutine.send(None)
        except BaseException as ended:  # handed on to whoever drives this
            self._first = _Ended(ended)

    def send(self, value: Any) -> Any:
        first, self._first = self._first, _NOT_STEPPED
        if first is _NOT_STEPPED:
            return self._coroutine.send(value)
        if isinstance(first, _Ended):
            raise first.error
        return first

    def throw(self, *error: Any) -> Any:
        first, self._first = self._first, _NOT_STEPPED
        if isinstance(first, _Ended):
            raise first.error
        return self._coroutine.throw(*error)

    def close(self) -> None:
        self._coroutine.close()

    def __await__(self) -> Generator[Any, None, T]:
        return self

    def __iter__(self) -> Stepped[T]:
        return self

    def __next__(self) -> Any:
        return self.send(None)


class _Ended:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def start_eagerly(coroutine: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """A task for `coroutine`, its first step already run, as the task, in the task's
    context."""
    loop = asyncio.get_running_loop()
    stepped = Stepped(coroutine)
    context = contextvars.copy_context()
    task: asyncio.Task[T] = loop.create_task(stepped, context=context)
    caller = asyncio.current_task(loop)
    if caller is not None:
        _leave_task(loop, caller)
    _enter_task(loop, task)
    try:
        context.run(stepped.step)
    finally:
        _leave_task(loop, task)
        if caller is not None:
            _enter_task(loop, caller)
    return task
