"""A deterministic stand-in for ``structgen.Runtime`` (submit/generate/score/tokenizer/stats).

Requests are queued to an "engine" thread that completes them in batches: it waits until
``gate`` requests are pending (or ``gate_timeout`` seconds passed), then answers every pending
request at once and records the batch size. A test can therefore tell requests that were
submitted together (one batch of n) from requests submitted one after the other (batches of 1).

Outputs come from ``responder(prompt, constraint, request) -> str`` (default: ``"r<crc>"``
followed by ``"\\nmore"``, so a ``stop="\\n"`` cuts it). The prefix cache is simulated per
character: a prompt's cached tokens are its longest common prefix with an earlier prompt+output.
"""

from __future__ import annotations

import queue
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from structgen.constraints import Choice, as_constraint
from structgen.engine.request import GenerationResult


class CharTokenizer:
    """One token per character; no chat template (programs fall back to ChatML)."""

    chat_template = None

    def encode(self, text: str, add_special_tokens: bool = False) -> list:
        return [ord(c) for c in text]


def default_responder(prompt: str, constraint: Any, request: Any) -> str:
    if isinstance(constraint, Choice):
        return constraint.options[zlib.crc32(prompt.encode()) % len(constraint.options)]
    return f"r{zlib.crc32(prompt.encode()) % 1000}\nmore"


@dataclass
class _Pending:
    request: Any
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None


class FakeHandle:
    def __init__(self, pending: _Pending):
        self._p = pending

    def result(self, timeout: float | None = None) -> GenerationResult:
        if not self._p.done.wait(timeout if timeout is not None else 30):
            raise TimeoutError("fake runtime did not answer")
        return self._p.result

    def stream(self):
        text = self.result().text
        for i in range(0, len(text), 2):
            time.sleep(0.01)  # like a decode step, so a reader sees the text grow
            yield text[i:i + 2]

    def cancel(self) -> None:
        pass


class FakeRuntime:
    def __init__(self, responder: Callable = default_responder, gate: int = 1, gate_timeout: float = 2.0,
                 scores: Callable | None = None, reject: Callable | None = None):
        self.tokenizer = CharTokenizer()
        self.responder = responder
        self.gate, self.gate_timeout = gate, gate_timeout
        self.scores = scores
        self.reject = reject  # reject(constraint) -> Exception | None, raised by submit (like a compile error)
        self.requests: list = []
        self.batches: list = []
        self.score_calls: list = []
        self._seen: list = []
        self._stats = {"prompt_tokens": 0, "cached_prompt_tokens": 0, "generated_tokens": 0}
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._engine, daemon=True).start()

    # ---- the Runtime contract ------------------------------------------------------------
    def submit(self, request: Any) -> FakeHandle:
        request.sampling()  # validates like the real runtime
        constraint = as_constraint(request.constraint)
        if self.reject is not None and (err := self.reject(constraint)) is not None:
            raise err
        pending = _Pending(request)
        with self._lock:
            self.requests.append(request)
        self._queue.put(pending)
        return FakeHandle(pending)

    def generate(self, prompts: list, constraint: Any = None, **sampling: Any) -> list:
        from structgen.engine.request import GenerateRequest

        handles = [self.submit(GenerateRequest(p, constraint=constraint, **sampling)) for p in prompts]
        return [h.result() for h in handles]

    def score(self, prefix: str, continuations: list, raw: bool = True) -> list:
        with self._lock:
            self.score_calls.append((prefix, list(continuations)))
        if self.scores is not None:
            return list(self.scores(prefix, continuations))
        return [-float(len(c)) for c in continuations]

    def stats(self) -> dict:
        with self._lock:
            return dict(self._stats, batches=list(self.batches))

    def shutdown(self) -> None:
        pass

    # ---- the fake engine -----------------------------------------------------------------
    def _engine(self) -> None:
        while True:
            batch = [self._queue.get()]
            deadline = time.monotonic() + self.gate_timeout
            while len(batch) < self.gate and time.monotonic() < deadline:
                try:
                    batch.append(self._queue.get(timeout=0.01))
                except queue.Empty:
                    pass
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            with self._lock:
                self.batches.append(len(batch))
            for p in batch:
                p.result = self._answer(p.request)
                p.done.set()

    def _answer(self, req: Any) -> GenerationResult:
        prompt = req.prompt
        if req.max_tokens == 0:
            text, finish = "", "length"
        else:
            text, finish = self.responder(prompt, as_constraint(req.constraint), req), "stop"
            stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or ())
            cuts = [text.find(s) for s in stops if s in text]
            if cuts:
                text = text[: min(cuts)]
        with self._lock:
            cached = max((_common(prompt, s) for s in self._seen), default=0)
            self._seen.append(prompt + text)
            self._stats["prompt_tokens"] += len(prompt)
            self._stats["cached_prompt_tokens"] += cached
            self._stats["generated_tokens"] += len(text)
        return GenerationResult(text=text, token_ids=[ord(c) for c in text], finish_reason=finish,
                                prompt_tokens=len(prompt), cached_tokens=cached, completion_tokens=len(text),
                                logprobs=[-0.5] * len(text) if req.logprobs else None)


def _common(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
