"""``RequestHandle``: the caller's view of a submitted request (result, stream, cancel).

The engine thread calls ``_attach``, ``_update`` and ``_fail``; everything else is for callers,
from any thread.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Iterator

from .request import GenerationResult


class RequestHandle:
    """Result, streamed text and cancellation of one request."""

    def __init__(self, runtime: Any, stop: tuple[str, ...] = ()):
        self._runtime = runtime
        self._hold = max((len(s) for s in stop), default=1) - 1  # chars that could start a stop string
        self._done = threading.Event()
        self._deltas: queue.Queue[str | None] = queue.Queue()
        self._sent = 0
        self._seq = None
        self._cancelled = False
        self._result: GenerationResult | None = None
        self._error: BaseException | None = None

    # ---- callers -------------------------------------------------------------------------------
    def result(self, timeout: float | None = None) -> GenerationResult:
        """Block until the request finishes; raise what made it fail, or ``TimeoutError``."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"the request did not finish within {timeout} s")
        if self._error is not None:
            raise self._error
        return self._result

    def stream(self) -> Iterator[str]:
        """Text deltas as they are produced; joined, they equal ``result().text``."""
        while True:
            delta = self._deltas.get()
            if delta is None:
                break
            yield delta
        if self._error is not None:
            raise self._error

    def cancel(self) -> None:
        """Ask the engine to stop this request; it finishes with reason "abort"."""
        self._cancelled = True
        if self._seq is not None:
            self._seq.cancelled = True
        self._runtime._wake()

    def done(self) -> bool:
        return self._done.is_set()

    # ---- engine thread -------------------------------------------------------------------------
    def _attach(self, seq: Any) -> None:
        self._seq = seq
        if self._cancelled:
            seq.cancelled = True

    def _update(self, seq: Any) -> None:
        text = seq.text
        if not seq.finished:
            text = text.rstrip("\ufffd")
            text = text[: max(0, len(text) - self._hold)]
        if len(text) > self._sent:
            self._deltas.put(text[self._sent :])
            self._sent = len(text)
        if seq.finished:
            self._result = seq.result()
            self._deltas.put(None)
            self._done.set()

    def _fail(self, error: BaseException) -> None:
        self._error = error
        self._deltas.put(None)
        self._done.set()
