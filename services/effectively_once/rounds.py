"""Domain-free kit for a service's background work.

`Rounds` runs a round of work again at once while there is more, else after `idle_s` or as
soon as it is woken (a wake during a round is kept for the next); `stop` ends it after the
round in hand. `Background` starts named tasks beside the API and resolves `failed` with the
first one that dies, so the process can exit non-zero and be restarted.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog

log = structlog.get_logger()


class Rounds:
    def __init__(self, idle_s: float) -> None:
        self._idle_s = idle_s
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, round_: Callable[[], Awaitable[bool]]) -> None:
        """`round_` returns True when more work is waiting."""
        while not self._stopping.is_set():
            self._wake.clear()
            if not await round_():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._idle_s)


class Background:
    def __init__(self, service: str) -> None:
        self._service = service
        self._tasks: list[asyncio.Task[None]] = []
        self._cancel: list[asyncio.Task[None]] = []
        self.failed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    def start(
        self,
        name: str,
        work: Callable[[], Coroutine[Any, Any, None]],
        *,
        cancel_on_stop: bool = False,
    ) -> None:
        """`cancel_on_stop`: work with nothing to drain (a gauge refresher) is cancelled;
        the rest is awaited by `join` once its own `stop` was called."""
        task = asyncio.create_task(work(), name=name)
        task.add_done_callback(self._watch)
        self._tasks.append(task)
        if cancel_on_stop:
            self._cancel.append(task)

    async def join(self) -> None:
        for task in self._cancel:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _watch(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self.failed.done():
            return
        error = task.exception()
        if error is not None:
            log.error(f"{self._service}_task_failed", task=task.get_name(), error=repr(error))
            self.failed.set_result(error)
