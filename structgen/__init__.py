"""structgen: language-model output guaranteed to match a regex, a JSON Schema, a pydantic model
or a list of choices — batched, with a radix KV cache.

    import structgen as sg
    model = sg.load()                                   # embedded SmolLM2-135M-Instruct
    sg.generate(model, sg.Regex(r"\\d{3}-\\d{4}"), "A phone number:")

``import structgen`` stays light: the engine, torch and transformers load on first use.
"""

from __future__ import annotations

from typing import Any

from .constraints import Choice, JsonSchema, Regex
from .errors import (
    CompileLimitError,
    ConstraintError,
    GenerationError,
    ModelLoadError,
    ProgramError,
    RegexError,
    RequestError,
    SchemaError,
    StructgenError,
    TokenizerError,
    UnsupportedModelError,
)

__version__ = "0.1.0"

# name -> module that defines it, imported on first access.
_LAZY = {
    "load": "structgen.api",
    "generate": "structgen.api",
    "Runtime": "structgen.engine.runtime",
    "EngineConfig": "structgen.engine.runtime",
    "GenerateRequest": "structgen.engine.request",
    "GenerationResult": "structgen.engine.request",
    "launch_server": "structgen.server",
    "start_server": "structgen.server",
    "PydanticModel": "structgen.constraints",
    "function": "structgen.frontend",
    "gen": "structgen.frontend",
    "gen_int": "structgen.frontend",
    "gen_string": "structgen.frontend",
    "select": "structgen.frontend",
    "system": "structgen.frontend",
    "user": "structgen.frontend",
    "assistant": "structgen.frontend",
    "system_begin": "structgen.frontend",
    "system_end": "structgen.frontend",
    "user_begin": "structgen.frontend",
    "user_end": "structgen.frontend",
    "assistant_begin": "structgen.frontend",
    "assistant_end": "structgen.frontend",
    "image": "structgen.frontend",
    "video": "structgen.frontend",
    "set_default_backend": "structgen.frontend",
    "get_default_backend": "structgen.frontend",
    "RemoteRuntime": "structgen.frontend",
    "ProgramState": "structgen.frontend",
    "ForkGroup": "structgen.frontend",
    "Program": "structgen.frontend",
    "ChatTemplate": "structgen.frontend",
    "token_length_normalized": "structgen.frontend",
    "greedy_token_selection": "structgen.frontend",
}

__all__ = [
    "Choice", "JsonSchema", "Regex",
    "CompileLimitError", "ConstraintError", "GenerationError", "ModelLoadError", "ProgramError", "RegexError",
    "RequestError", "SchemaError", "StructgenError", "TokenizerError", "UnsupportedModelError",
    *_LAZY,
]  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'structgen' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
