"""Adapters that let other frameworks drive structgen, all through ``Runtime``.

* ``structgen.integrations.langchain`` — ``ChatStructgen``, a langchain-core chat model
  (``pip install "structgen[langchain]"``; langchain is imported only by that module).
* ``structgen.testing`` — the pytest plugin (fixtures, ``assert_valid``).

``shared_runtime`` is the one process-wide ``Runtime`` per (model, device) that both use when no
runtime is given, so a process loads the embedded default model at most once.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_runtimes: dict[tuple[str | None, str], Any] = {}


def shared_runtime(model_path: str | None = None, device: str = "auto") -> Any:
    """The process-wide ``Runtime`` for ``model_path`` (None: the embedded default) on ``device``.

    Loaded on first call (thread-safe), then returned as is; ``device="auto"`` resolves to
    ``"cuda"`` when available, else ``"cpu"``, so ``"auto"`` and ``"cpu"`` share one runtime on a
    CPU machine. The runtime lives until the process exits; do not ``shutdown()`` it.
    """
    key = (None if model_path is None else str(model_path), _resolve(device))
    with _lock:
        rt = _runtimes.get(key)
        if rt is None:
            from ..engine.runtime import Runtime

            rt = _runtimes[key] = Runtime(key[0], device=key[1])
        return rt


def _resolve(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
