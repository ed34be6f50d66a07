"""The batched decoding engine: ``Runtime`` (the entry point), ``EngineConfig``, requests and results.

Heavy modules (the model runner, torch) load on first use of these names.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "Runtime": ".runtime",
    "EngineConfig": ".runtime",
    "RequestHandle": ".handle",
    "Engine": ".engine",
    "GenerateRequest": ".request",
    "GenerationResult": ".request",
    "SamplingParams": ".request",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'structgen.engine' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
