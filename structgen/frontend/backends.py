"""What a program runs on: a ``Backend`` wraps an in-process ``Runtime`` or a remote server.

The interpreter needs five things from a backend, all thread-safe:

- ``submit(prompt, constraint, sampling) -> handle`` with ``handle.result()`` (a
  ``GenerationResult``-like object: ``text``, ``finish_reason``, ``prompt_tokens``,
  ``cached_tokens``, ``completion_tokens``, ``logprobs``) and ``handle.stream()`` (text deltas);
  ``prompt`` is the program's full text so far, used raw (the program renders roles itself).
- ``score(prefix, continuations) -> list[float]`` (sum of log-probs per continuation), or
  ``can_score = False``.
- ``num_tokens(text)`` for length normalisation in ``select``.
- ``prefill(prompt)``: put the prompt's KV in the prefix cache (used before ``fork``).
- ``chat_template``: a ``ChatTemplate``.

``set_default_backend`` stores what ``f.run()`` uses when no ``runtime=`` is given.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from ..errors import ProgramError
from .chat_template import ChatTemplate


class Backend:
    """Base class; subclasses implement the methods the module docstring lists."""

    can_score = False
    chat_template: ChatTemplate

    def submit(self, prompt: str, constraint: Any, sampling: dict) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def score(self, prefix: str, continuations: list) -> list:
        raise ProgramError(f"{type(self).__name__} cannot score continuations; use constrained select")

    def num_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)

    def prefill(self, prompt: str) -> None:
        """Default: nothing (the backend has no prefix cache we can warm)."""

    def stats(self) -> dict:
        return {}


class RuntimeBackend(Backend):
    """Adapter over an in-process ``structgen.Runtime`` (or any object with its contract)."""

    can_score = True

    def __init__(self, runtime: Any):
        self.runtime = runtime
        self.tokenizer = getattr(runtime, "tokenizer", None)
        self.chat_template = ChatTemplate.from_tokenizer(self.tokenizer)

    def _request(self, prompt: str, constraint: Any, sampling: dict) -> Any:
        from ..engine.request import GenerateRequest

        return GenerateRequest(prompt, constraint=constraint, raw=True, **sampling)

    def submit(self, prompt: str, constraint: Any, sampling: dict) -> Any:
        return self.runtime.submit(self._request(prompt, constraint, sampling))

    def score(self, prefix: str, continuations: list) -> list:
        return list(self.runtime.score(prefix, list(continuations), raw=True))

    def num_tokens(self, text: str) -> int:
        if self.tokenizer is None:
            return super().num_tokens(text)
        return max(1, len(self.tokenizer.encode(text, add_special_tokens=False)))

    def prefill(self, prompt: str) -> None:
        """One ``max_tokens=0`` request, so the prompt's KV lands in the radix cache (skipped when it is off)."""
        config = getattr(self.runtime, "config", None)
        if getattr(config, "radix_cache", True):
            self.submit(prompt, None, {"max_tokens": 0}).result()

    def stats(self) -> dict:
        return dict(self.runtime.stats())


_wrapped: weakref.WeakKeyDictionary[Any, Backend] = weakref.WeakKeyDictionary()
_wrap_lock = threading.Lock()


def as_backend(obj: Any) -> Backend:
    """A ``Backend`` for ``obj``: a Backend as is, a Runtime wrapped once (the wrapper is cached)."""
    if isinstance(obj, Backend):
        return obj
    if not hasattr(obj, "submit"):
        raise ProgramError(
            f"cannot run a program on {obj!r}: pass a structgen.Runtime(...) or structgen.RemoteRuntime(url)"
        )
    with _wrap_lock:
        try:
            backend = _wrapped.get(obj)
        except TypeError:  # unhashable or not weak-referenceable: wrap every time
            return RuntimeBackend(obj)
        if backend is None:
            backend = RuntimeBackend(obj)
            _wrapped[obj] = backend
        return backend


class _DefaultBackend:
    """Holder of the process-wide default backend (set once by the user, read by ``run``)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._backend: Backend | None = None

    def set(self, obj: Any) -> None:
        backend = None if obj is None else as_backend(obj)
        with self._lock:
            self._backend = backend

    def get(self) -> Backend | None:
        with self._lock:
            return self._backend


_default = _DefaultBackend()


def set_default_backend(runtime: Any) -> None:
    """Make ``runtime`` (a ``Runtime``, ``RemoteRuntime`` or ``Backend``; None clears) the default."""
    _default.set(runtime)


def get_default_backend() -> Backend | None:
    """The backend set by ``set_default_backend``, or None."""
    return _default.get()


def resolve_backend(runtime: Any = None) -> Backend:
    """``runtime`` as a Backend, else the default; raises ``ProgramError`` when there is neither."""
    if runtime is not None:
        return as_backend(runtime)
    backend = get_default_backend()
    if backend is None:
        raise ProgramError(
            "no backend to run the program on: call structgen.set_default_backend(structgen.Runtime()) "
            "or pass runtime=... to run()"
        )
    return backend
