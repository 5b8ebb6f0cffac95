"""Owned background tasks: every task has an owner, a name, and an end.

A TaskSet is what an object that starts tasks of its own (a runtime's reapers and log pumps,
the podman event stream) holds instead of a bare ``set``: ``spawn`` names the task and keeps it
until it is done, a task that dies of an exception is logged there and then (an expected
failure is handled inside the task; one that escapes is a bug, so it is said loudly rather
than lost), and ``close`` cancels what is left and waits for it. kopf's ``aiotasks`` in small.

It sits below every other module: nothing here knows about pods.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from typing import Any


class TaskSet:
    def __init__(self, logger: logging.Logger) -> None:
        self._log = logger
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        """Start an owned task: kept until done, cancelled and awaited by ``close``."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._log.error("task %r failed", task.get_name(), exc_info=exc)

    async def close(self) -> None:
        """Cancel every task still running and wait until all have ended."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[asyncio.Task[None]]:
        return iter(list(self._tasks))
