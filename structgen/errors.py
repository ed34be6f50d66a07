"""Typed errors. Each one says what the caller must fix; all are raised before any model work starts."""

from __future__ import annotations


class StructgenError(Exception):
    """Base class of every error structgen raises on purpose."""


class ConstraintError(StructgenError, ValueError):
    """A constraint (regex, schema, choices) cannot be compiled as given."""


class RegexError(ConstraintError):
    """A regular expression uses syntax that no finite automaton can express, or is malformed.

    ``construct`` names the offending construct (e.g. ``"lookahead"``), ``position`` is its
    offset in the pattern when known.
    """

    def __init__(self, message: str, *, construct: str | None = None, position: int | None = None):
        super().__init__(message)
        self.construct = construct
        self.position = position


class SchemaError(ConstraintError):
    """A JSON Schema keyword cannot be enforced, or the schema is invalid.

    ``keyword`` is the offending keyword (``"uniqueItems"``), ``pointer`` the JSON pointer of the
    schema object holding it (``"/properties/tags"``).
    """

    def __init__(self, message: str, *, keyword: str | None = None, pointer: str = ""):
        where = f" at {pointer or '/'}" if keyword is not None or pointer else ""
        kw = f" (keyword {keyword!r})" if keyword is not None else ""
        super().__init__(f"{message}{kw}{where}")
        self.keyword = keyword
        self.pointer = pointer


class CompileLimitError(ConstraintError):
    """Compiling a constraint exceeded a configured bound (states, expression size, time)."""


class TokenizerError(StructgenError, ValueError):
    """A tokenizer cannot be turned into an exact byte vocabulary."""


class ModelLoadError(StructgenError):
    """A model cannot be found, fetched or loaded."""


class UnsupportedModelError(ModelLoadError, ValueError):
    """The model architecture has no structgen implementation."""


class RequestError(StructgenError, ValueError):
    """A generation request is malformed (bad sampling options, prompt too long for the KV pool...)."""


class GenerationError(StructgenError):
    """A generation finished without satisfying its constraint (e.g. it hit max_tokens)."""

    def __init__(self, message: str, *, text: str = "", finish_reason: str = ""):
        super().__init__(message)
        self.text = text
        self.finish_reason = finish_reason


class ProgramError(StructgenError):
    """A structured-generation program misused its state (unknown variable, use after return...)."""


class OutOfSlots(StructgenError, RuntimeError):
    """The KV pool has fewer free slots than requested; nothing was allocated.

    ``requested`` and ``available`` say by how much; free slots (evict cached prefixes, preempt a
    request) or build a larger pool (``kv_cache_tokens``).
    """

    def __init__(self, requested: int, available: int):
        super().__init__(
            f"KV pool out of slots: requested {requested}, {available} free; "
            "free slots or create a larger pool (kv_cache_tokens)"
        )
        self.requested = requested
        self.available = available


class InvalidBatchError(StructgenError, ValueError):
    """A ``ForwardBatch`` is inconsistent (lengths, slots) or does not fit the model or pool."""


class KernelInputError(StructgenError, ValueError):
    """A kernel entry point got tensors of the wrong shape, device or backend (the message says the fix)."""


class KernelDtypeError(KernelInputError, TypeError):
    """A kernel entry point got a tensor of the wrong dtype (the message names the dtype expected)."""


class ServerStartError(StructgenError, RuntimeError):
    """The HTTP server could not start (port in use, startup failure); the log says why."""
