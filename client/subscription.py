"""Async iterators the client feeds: every frame, or every applied event, from now on."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Final, TypeVar

T = TypeVar("T")


class _End:
    pass


_END: Final = _End()


class Subscription(AsyncIterator[T]):
    """An async iterator fed by the client from the moment it was created.

    It ends when the client is closed and raises the session's terminal error
    (SessionEnded, LinkNotValid, SessionLost, ConnectionLost) otherwise.
    Unread items queue up without bound: read what you subscribe to, or close it.
    """

    def __init__(self, owner: list[Subscription[T]]) -> None:
        self._queue: asyncio.Queue[T | _End] = asyncio.Queue()
        self._owner = owner
        self._error: BaseException | None = None
        owner.append(self)

    def put(self, item: T) -> None:
        self._queue.put_nowait(item)

    def finish(self, error: BaseException | None) -> None:
        self._error = error
        self._queue.put_nowait(_END)

    def close(self) -> None:
        with contextlib.suppress(ValueError):
            self._owner.remove(self)

    def __aiter__(self) -> Subscription[T]:
        return self

    async def __anext__(self) -> T:
        item = await self._queue.get()
        if isinstance(item, _End):
            self._queue.put_nowait(item)  # stay finished
            self.close()
            if self._error is not None:
                raise self._error
            raise StopAsyncIteration
        return item
