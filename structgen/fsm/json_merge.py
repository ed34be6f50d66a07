"""Merging a conjunction of schema objects ("atoms") into one flat description.

``allOf`` branches, ``$ref`` targets with sibling keywords and the chosen branch of an
``anyOf``/``oneOf`` all end up as atoms of one conjunction. Merging them (rather than
intersecting their text languages) keeps object properties in one order: ``{"properties":
{"a":...}}`` and ``{"required": ["b"]}`` become one object with ``a`` then ``b``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import SchemaError
from .json_numbers import Bounds, to_decimal

ANNOTATIONS = {
    "title", "description", "default", "examples", "example", "$comment", "$schema", "$id", "id",
    "$anchor", "deprecated", "readOnly", "writeOnly", "contentMediaType", "contentEncoding",
    "contentSchema", "discriminator", "$defs", "definitions", "$vocabulary", "$dynamicAnchor",
    "$recursiveAnchor", "xml", "externalDocs",
}
TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")
OBJECT_KEYS = ("properties", "patternProperties", "additionalProperties", "required", "propertyNames")
STRING_KEYS = ("minLength", "maxLength", "pattern", "format")
NUMBER_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
ARRAY_KEYS = ("items", "prefixItems", "additionalItems", "minItems", "maxItems", "contains", "uniqueItems")


@dataclass
class Atom:
    schema: dict
    ptr: str


@dataclass
class Merged:
    """What every atom of a conjunction requires, per instance type."""

    types: set | None = None
    enums: list = field(default_factory=list)  # list of (values, ptr)
    nots: list = field(default_factory=list)  # (schema, ptr)
    ifs: list = field(default_factory=list)  # (atom dict, ptr)
    min_len: int = 0
    max_len: int | None = None
    patterns: list = field(default_factory=list)  # (pattern, ptr)
    formats: list = field(default_factory=list)  # (format, ptr)
    bounds: Bounds = field(default_factory=Bounds)
    multiples: list = field(default_factory=list)  # (Decimal, ptr)
    obj_atoms: list = field(default_factory=list)  # Atom with object keywords
    min_props: int = 0
    max_props: int | None = None
    arr_atoms: list = field(default_factory=list)  # Atom with item keywords
    min_items: int = 0
    max_items: int | None = None
    contains: list = field(default_factory=list)  # (schema, lo, hi, ptr)
    unique: list = field(default_factory=list)  # ptr
    has_string: bool = False
    has_number: bool = False


def _type_set(atom: Atom) -> set | None:
    t = atom.schema.get("type")
    if t is None:
        return None
    names = [t] if isinstance(t, str) else list(t)
    out = set()
    for name in names:
        if name not in TYPES:
            raise SchemaError(f"unknown type {name!r}", keyword="type", pointer=atom.ptr)
        out.add(name)
    if "integer" in out or "number" in out:
        out.add("integer")
    if atom.schema.get("nullable") is True:
        out.add("null")
    return out


def merge(atoms: list[Atom]) -> Merged:
    """Fold the keywords of ``atoms`` into one ``Merged`` (an intersection)."""
    m = Merged()
    for a in atoms:
        s, ptr = a.schema, a.ptr
        ts = _type_set(a)
        if ts is not None:
            m.types = ts if m.types is None else _meet(m.types, ts)
        if "enum" in s:
            if not isinstance(s["enum"], list):
                raise SchemaError("enum must be an array", keyword="enum", pointer=ptr)
            m.enums.append((s["enum"], ptr))
        if "const" in s:
            m.enums.append(([s["const"]], ptr))
        if "not" in s and negated_required(s["not"]) is None and negate_schema(s["not"]) is None:
            m.nots.append((s["not"], ptr + "/not"))
        if "if" in s and negate_schema(s["if"]) is None:
            m.ifs.append((s, ptr))
        _merge_string(m, s, ptr)
        _merge_number(m, s, ptr)
        if any(k in s for k in OBJECT_KEYS):
            m.obj_atoms.append(a)
        m.min_props = max(m.min_props, int(s.get("minProperties", 0)))
        if "maxProperties" in s:
            m.max_props = _min(m.max_props, int(s["maxProperties"]))
        _merge_array(m, a)
    return m


def _meet(a: set, b: set) -> set:
    out = a & b
    if "number" in a and "integer" in b:
        out.add("integer")
    if "number" in b and "integer" in a:
        out.add("integer")
    return out


def _min(a: int | None, b: int) -> int:
    return b if a is None else min(a, b)


def _merge_string(m: Merged, s: dict, ptr: str) -> None:
    if "minLength" in s:
        m.min_len = max(m.min_len, int(s["minLength"]))
        m.has_string = True
    if "maxLength" in s:
        m.max_len = _min(m.max_len, int(s["maxLength"]))
        m.has_string = True
    if "pattern" in s:
        m.patterns.append((s["pattern"], ptr))
        m.has_string = True
    if "format" in s:
        m.formats.append((s["format"], ptr))
        m.has_string = True


def _merge_number(m: Merged, s: dict, ptr: str) -> None:
    b = m.bounds
    lo, ls, hi, hs = b.lo, b.lo_strict, b.hi, b.hi_strict

    def tighten_lo(x: Any, strict: bool):
        nonlocal lo, ls
        d = to_decimal(x)
        if lo is None or d > lo or (d == lo and strict):
            lo, ls = d, strict

    def tighten_hi(x: Any, strict: bool):
        nonlocal hi, hs
        d = to_decimal(x)
        if hi is None or d < hi or (d == hi and strict):
            hi, hs = d, strict

    if "minimum" in s:
        tighten_lo(s["minimum"], s.get("exclusiveMinimum") is True)
    if "maximum" in s:
        tighten_hi(s["maximum"], s.get("exclusiveMaximum") is True)
    if not isinstance(s.get("exclusiveMinimum", True), bool):
        tighten_lo(s["exclusiveMinimum"], True)
    if not isinstance(s.get("exclusiveMaximum", True), bool):
        tighten_hi(s["exclusiveMaximum"], True)
    if "multipleOf" in s:
        m.multiples.append((to_decimal(s["multipleOf"]), ptr))
    if any(k in s for k in NUMBER_KEYS):
        m.has_number = True
    m.bounds = Bounds(lo, ls, hi, hs)


def _merge_array(m: Merged, a: Atom) -> None:
    s, ptr = a.schema, a.ptr
    if any(k in s for k in ("items", "prefixItems", "additionalItems")):
        m.arr_atoms.append(a)
    m.min_items = max(m.min_items, int(s.get("minItems", 0)))
    if "maxItems" in s:
        m.max_items = _min(m.max_items, int(s["maxItems"]))
    if "contains" in s:
        lo = int(s.get("minContains", 1))
        hi = s.get("maxContains")
        m.contains.append((s["contains"], lo, None if hi is None else int(hi), ptr + "/contains"))
    if s.get("uniqueItems") is True:
        m.unique.append(ptr)


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values (1 == 1.0, but true != 1)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return to_decimal(a) == to_decimal(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def json_key(v: Any) -> Any:
    """A hashable key with ``json_key(a) == json_key(b)`` exactly when ``json_equal(a, b)``."""
    if isinstance(v, bool):
        return ("b", v)
    if isinstance(v, (int, float)):
        return ("n", to_decimal(v))
    if isinstance(v, list):
        return ("l", tuple(json_key(x) for x in v))
    if isinstance(v, dict):
        return ("d", frozenset((k, json_key(x)) for k, x in v.items()))
    return (type(v).__name__, v)


def json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "integer" if v == int(v) else "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def enum_values(m: Merged) -> list | None:
    """Values allowed by every enum/const of ``m`` and its type set (None when no enum)."""
    if not m.enums:
        return None
    values = list(m.enums[0][0])
    for other, _ in m.enums[1:]:
        keys = {json_key(w) for w in other}
        values = [v for v in values if json_key(v) in keys]
    if m.types is not None:
        values = [v for v in values if json_type(v) in m.types or (json_type(v) == "integer" and "number" in m.types)]
    out: dict = {}
    for v in values:
        out.setdefault(json_key(v), v)
    return list(out.values())


def absent(key: str) -> dict:
    return {"properties": {key: False}}


def negated_required(n: Any):
    """``not`` of a schema made only of ``required`` (or anyOf/allOf of such), as anyOf
    alternatives over "key absent" schemas; None for any other schema."""
    if not isinstance(n, dict):
        return None
    keys = set(n) - ANNOTATIONS
    if keys == {"required"} and n["required"]:
        return [absent(k) for k in n["required"]]
    if keys == {"anyOf"} and all(negated_required(b) for b in n["anyOf"]):
        return [{"allOf": [{"anyOf": negated_required(b)} for b in n["anyOf"]]}]
    if keys == {"allOf"} and all(negated_required(b) for b in n["allOf"]):
        return [alt for b in n["allOf"] for alt in negated_required(b)]
    return None


def negate_schema(n: Any) -> dict | None:
    """A schema equivalent to ``not n`` built from positive keywords, for ``n`` made only of
    ``type``/``properties``/``required`` (the usual ``if`` condition); None otherwise.

    not (type T and properties P and required R) =
        type not in T, or (object and some k in P present with a value failing P[k]),
        or (object and some k in R absent).
    """
    if not isinstance(n, dict) or not set(n) - ANNOTATIONS or set(n) - ANNOTATIONS - {"type", "properties", "required"}:
        return None
    alts: list = []
    if "type" in n:
        names = {n["type"]} if isinstance(n["type"], str) else set(n["type"])
        if "number" in names:
            names.add("integer")
        if "integer" in names and "number" not in names:
            return None  # "a number but not an integer" needs the complement form
        others = [t for t in TYPES if t not in names]
        if others:
            alts.append({"type": others})
        if "object" not in names:
            return {"anyOf": alts} if alts else {"anyOf": [False]}
    for k, sub in n.get("properties", {}).items():
        alts.append({"type": "object", "required": [k], "properties": {k: {"not": sub}}})
    for k in n.get("required", []):
        alts.append({"type": "object", "properties": {k: False}})
    return {"anyOf": alts} if alts else {"anyOf": [False]}
