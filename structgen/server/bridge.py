"""Asyncio bridge over the runtime's blocking ``RequestHandle`` API.

The runtime is thread-safe and batches everything submitted to it, so handlers submit and then
wait in worker threads: the event loop never blocks and requests from many clients join the same
continuous batch. Every wait holds one thread of a dedicated pool (sized for the number of
requests in flight, not the number of cores). Whoever stops waiting early (a client that went
away, a cancelled task) cancels the handles, which frees their sequences in the runtime.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence

log = logging.getLogger(__name__)

_END = object()


class ClientDisconnected(Exception):
    """The HTTP client went away before its answer was ready."""


class RuntimeBridge:
    """``submit`` / ``results`` / ``stream`` as coroutines; ``max_threads`` bounds concurrent waits."""

    def __init__(self, runtime: Any, *, max_threads: int = 1024, poll_s: float = 0.25):
        self.runtime = runtime
        self.poll_s = poll_s
        self._pool = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="structgen-wait")

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def submit(self, requests: Sequence[Any]) -> list[Any]:
        """Submit all ``requests`` (compiling their constraints) off the loop; all or none.

        A constraint or request error from the runtime propagates after the handles already
        submitted have been cancelled.
        """
        return await self._call(self._submit_all, list(requests))

    def _submit_all(self, requests: list[Any]) -> list[Any]:
        handles: list[Any] = []
        try:
            for r in requests:
                handles.append(self.runtime.submit(r))
        except BaseException:
            cancel_all(handles)
            raise
        return handles

    async def results(self, handles: Sequence[Any], is_disconnected: Callable[[], Awaitable[bool]]) -> list[Any]:
        """Wait for every handle's ``GenerationResult``; cancel them all if the client goes away.

        Raises ``ClientDisconnected`` when ``is_disconnected()`` turns true first. Cancelling the
        awaiting task (server shutdown) also cancels the handles.
        """
        futures = [asyncio.ensure_future(self._call(h.result)) for h in handles]
        finished = False
        try:
            pending = set(futures)
            while pending:
                _, pending = await asyncio.wait(pending, timeout=self.poll_s)
                if pending and await is_disconnected():
                    raise ClientDisconnected()
            out = [f.result() for f in futures]
            finished = True
            return out
        finally:
            if not finished:
                cancel_all(handles)

    async def stream(self, handle: Any) -> AsyncIterator[str]:
        """Text deltas of ``handle`` as the runtime produces them (a thread drains ``stream()``)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        def push(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                handle.cancel()

        def drain() -> None:
            try:
                for delta in handle.stream():
                    push(delta)
                push(_END)
            except BaseException as e:  # handed to the consumer, which re-raises it
                push(e)

        self._pool.submit(drain)
        while True:
            item = await queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    async def result(self, handle: Any) -> Any:
        """The finished handle's ``GenerationResult`` (waits in a worker thread)."""
        return await self._call(handle.result)

    def close(self) -> None:
        """Stop the worker pool without waiting (the runtime's shutdown ends pending waits)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def cancel_all(handles: Sequence[Any]) -> None:
    """Cancel every handle; a cancel that fails is logged, never raised."""
    for h in handles:
        try:
            h.cancel()
        except Exception:  # pragma: no cover - defensive: keep cancelling the rest
            log.exception("cancelling a request failed")
