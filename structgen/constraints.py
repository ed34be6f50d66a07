"""Constraint values a user passes: ``Regex``, ``JsonSchema``, ``Choice``.

Everywhere a constraint is accepted, a ``dict`` is taken as a JSON Schema and a pydantic model
class (or a dataclass / TypedDict that pydantic understands) as itself. ``as_constraint`` does
that normalisation; ``Constraint.key()`` is a stable string used for caching.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Sequence

from .errors import ConstraintError

WHITESPACE_POLICIES = ("default", "compact")
PROPERTY_ORDERS = ("schema", "any")


class Constraint:
    """Base class. Subclasses are frozen dataclasses; ``key()`` identifies the compiled language."""

    def key(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class Regex(Constraint):
    """Output must fully match ``pattern`` (Python ``re`` syntax, without lookaround/backreferences)."""

    pattern: str

    def __post_init__(self):
        if not isinstance(self.pattern, str):
            raise ConstraintError(f"Regex pattern must be a str, got {type(self.pattern).__name__}")

    def key(self) -> str:
        return "regex:" + _digest(self.pattern)


@dataclass(frozen=True)
class JsonSchema(Constraint):
    """Output must be JSON valid against ``schema``.

    whitespace: ``"default"`` accepts exactly what ``json.dumps(x)``, ``json.dumps(x,
        separators=(",", ":"))`` and ``json.dumps(x, indent=2)`` print, mixed per position:
        nothing before ``:``/``,``; after ``:`` nothing or one space; after ``,`` nothing, one
        space or a line break; after ``{``/``[`` and before ``}``/``]`` nothing or a line break
        (``{}``/``[]`` when empty). A line break is ``\n`` plus the indentation ``indent=2`` gives
        the level that follows (two spaces per nesting level, to level 20); no tabs, no ``\r``,
        none around the top-level value. ``"compact"`` allows no
        whitespace outside strings. ``enum``/``const`` strings are generated only as
        ``json.dumps(s, ensure_ascii=False)`` or ``json.dumps(s)`` spell them.
    strict: when True, a keyword that cannot be enforced raises ``SchemaError``; when False it is
        dropped with a warning listing what was dropped.
    property_order: ``"schema"`` generates an object's declared properties in schema order,
        then its additional ones. ``"any"`` accepts the declared properties in any order (each
        at most once, every required one present) with additional ones, where the schema allows
        them, anywhere between; at most ``MAX_ANY_ORDER_PROPERTIES`` (256) declared properties
        per object, else ``SchemaError``.
    """

    schema: Any
    whitespace: str = "default"
    strict: bool = True
    max_recursion_depth: int = 3
    property_order: str = "schema"
    _text: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self):
        schema = self.schema
        if isinstance(schema, str):
            try:
                schema = json.loads(schema)
            except json.JSONDecodeError as e:
                raise ConstraintError(f"JSON Schema string is not valid JSON: {e}") from None
            object.__setattr__(self, "schema", schema)
        if not isinstance(schema, (dict, bool)):
            raise ConstraintError(f"JSON Schema must be a dict, bool or JSON string, got {type(schema).__name__}")
        if self.whitespace not in WHITESPACE_POLICIES:
            raise ConstraintError(f"whitespace must be one of {WHITESPACE_POLICIES}, got {self.whitespace!r}")
        if not isinstance(self.max_recursion_depth, int) or self.max_recursion_depth < 0:
            raise ConstraintError("max_recursion_depth must be a non-negative int")
        if self.property_order not in PROPERTY_ORDERS:
            raise ConstraintError(f"property_order must be one of {PROPERTY_ORDERS}, got {self.property_order!r}")
        object.__setattr__(self, "_text", json.dumps(schema, sort_keys=False, separators=(",", ":")))

    def __hash__(self):
        return hash((self._text, self.whitespace, self.strict, self.max_recursion_depth, self.property_order))

    def __eq__(self, other):
        return isinstance(other, JsonSchema) and self.key() == other.key()

    def key(self) -> str:
        opts = f"{self.whitespace}|{self.strict}|{self.max_recursion_depth}"
        if self.property_order != "schema":  # keys of schema-order constraints stay as they were
            opts += f"|order={self.property_order}"
        return "json:" + _digest(opts + "|" + self._text)


@dataclass(frozen=True)
class Choice(Constraint):
    """Output must be exactly one of ``options`` (non-empty strings)."""

    options: tuple[str, ...]

    def __init__(self, options: Sequence[str]):
        if isinstance(options, str) or not isinstance(options, Sequence) or not options:
            raise ConstraintError("Choice needs a non-empty list of strings")
        for o in options:
            if not isinstance(o, str):
                raise ConstraintError(f"Choice options must be str, got {type(o).__name__}: {o!r}")
        object.__setattr__(self, "options", tuple(options))

    def key(self) -> str:
        return "choice:" + _digest(json.dumps(self.options))


@dataclass(frozen=True)
class PydanticModel(Constraint):
    """A pydantic model class (or a type pydantic can build a ``TypeAdapter`` for)."""

    model: Any
    whitespace: str = "default"
    strict: bool = True

    def json_schema(self) -> JsonSchema:
        from .fsm.pydantic import schema_of

        return JsonSchema(schema_of(self.model), whitespace=self.whitespace, strict=self.strict)

    def key(self) -> str:
        return "pydantic:" + self.json_schema().key()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def is_pydantic_like(obj: Any) -> bool:
    """True for a pydantic BaseModel subclass, a dataclass type or a TypedDict type."""
    import dataclasses

    if not isinstance(obj, type):
        return False
    try:
        from pydantic import BaseModel

        if issubclass(obj, BaseModel):
            return True
    except ImportError:  # pragma: no cover
        pass
    if dataclasses.is_dataclass(obj):
        return True
    return bool(getattr(obj, "__annotations__", None)) and hasattr(obj, "__total__")


def as_constraint(obj: Any) -> Constraint | None:
    """Normalise what a user passed: None, Constraint, dict (JSON Schema), pydantic-like class, list of str."""
    if obj is None or isinstance(obj, Constraint):
        return obj
    if isinstance(obj, (dict, bool)):
        return JsonSchema(obj)
    if is_pydantic_like(obj):
        return PydanticModel(obj)
    if isinstance(obj, (list, tuple)) and obj and all(isinstance(o, str) for o in obj):
        return Choice(obj)
    raise ConstraintError(
        f"cannot use {obj!r} as a constraint: pass structgen.Regex(...), structgen.JsonSchema(...), "
        "structgen.Choice([...]), a JSON Schema dict, or a pydantic model class"
    )
