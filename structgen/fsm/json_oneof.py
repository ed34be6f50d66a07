"""``oneOf``: "exactly one branch" is "any branch" when no value can satisfy two branches.

Disjointness is proved per pair of branches by either
- the first byte of their texts (a JSON value's first byte fixes its type, numbers aside), or
- a discriminator: a property required by both whose ``const``/``enum`` value sets are disjoint.
Otherwise, when every branch is complement-safe, the exact form
``∪_i (B_i ∖ ∪_{j≠i} B_j)`` is used; else the keyword cannot be enforced.
"""

from __future__ import annotations

from typing import Any

from ..errors import SchemaError
from .json_merge import json_key, negate_schema

_CLASSES = {
    "object": b"{", "array": b"[", "string": b'"', "boolean": b"tf", "null": b"n", "number": b"-0123456789",
}


def one_of(builder, alts: list, where: str):
    """None when the branches are pairwise disjoint (then oneOf = anyOf); a list of replacement
    ``anyOf`` branches when every branch has a positive negation (``B_i`` and not the others);
    else the exact xor ``Result``, or (strict=False, not provable) None after recording the drop."""
    from .json_build import Result

    if len(alts) < 2:
        return None
    results = [builder.compile_full(a, f"{where}/{i}") for i, a in enumerate(alts)]
    firsts = [_first_classes(builder.pool, r.expr) for r in results]
    discs = [_discriminators(builder, a) for a in alts]
    finite = [_finite_values(builder, a, 0) for a in alts]
    overlapping = [
        (i, j)
        for i in range(len(alts))
        for j in range(i + 1, len(alts))
        if not (firsts[i].isdisjoint(firsts[j]) or _disc_disjoint(discs[i], discs[j])
                or _values_disjoint(finite[i], finite[j]))
    ]
    if not overlapping:
        return None
    negated = [negate_schema(a) for a in alts]
    if all(n is not None for n in negated):  # B_i and not B_j (j != i), all positive keywords
        return [{"allOf": [a] + [n for j, n in enumerate(negated) if j != i]} for i, a in enumerate(alts)]
    if all(r.complete for r in results):
        p = builder.pool
        parts = []
        for i, r in enumerate(results):
            others = {x.expr for j, x in enumerate(results) if j != i}
            if r.expr in others or builder.anyv in others:
                continue
            parts.append(p.diff(r.expr, p.alt_of(others)))
        return Result(p.alt_of(parts), True)
    builder.drop("oneOf", where, "oneOf branches may overlap and cannot be complemented exactly "
                 "(add a const discriminator property or make the branches disjoint)")
    return None


def _first_classes(pool, expr: int) -> set:
    mask = 0
    for m, _ in pool.row(expr):
        mask |= m
    return {name for name, chars in _CLASSES.items() if any(mask >> c & 1 for c in chars)}


def _discriminators(builder, schema: Any, depth: int = 0) -> dict[str, list]:
    """Required properties with a finite value set (const/enum), following allOf and $ref."""
    if not isinstance(schema, dict) or depth > 4:
        return {}
    out: dict[str, list] = {}
    if "$ref" in schema:
        try:
            target, _ = builder.refs.resolve(schema["$ref"], "")
        except SchemaError:
            target = None
        out.update(_discriminators(builder, target, depth + 1))
    for sub in schema.get("allOf", []):
        out.update(_discriminators(builder, sub, depth + 1))
    props = schema.get("properties", {})
    for key in schema.get("required", []):
        values = _finite_values(builder, props.get(key), depth)
        if values is not None:
            out[key] = values
    return out


def _finite_values(builder, prop: Any, depth: int) -> list | None:
    if not isinstance(prop, dict) or depth > 4:
        return None
    if "const" in prop:
        return [prop["const"]]
    if isinstance(prop.get("enum"), list):
        return prop["enum"]
    if "$ref" in prop:
        try:
            target, _ = builder.refs.resolve(prop["$ref"], "")
        except SchemaError:
            return None
        return _finite_values(builder, target, depth + 1)
    return None


def _values_disjoint(a: list | None, b: list | None) -> bool:
    return a is not None and b is not None and _no_common_value(a, b)


def _disc_disjoint(a: dict, b: dict) -> bool:
    for key, va in a.items():
        vb = b.get(key)
        if vb is not None and _no_common_value(va, vb):
            return True
    return False


def _no_common_value(a: list, b: list) -> bool:
    """No value of ``a`` equals (``json_equal``) one of ``b``."""
    return {json_key(x) for x in a}.isdisjoint(json_key(y) for y in b)
