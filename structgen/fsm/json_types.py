"""A merged conjunction (``json_merge.Merged``) to an expression, one JSON type at a time."""

from __future__ import annotations

import json
from typing import Any

from .json_formats import FORMATS, MAX_HOSTNAME
from .json_merge import Merged, enum_values
from .json_numbers import to_decimal
from .json_objects import Member

_ALL = ("null", "boolean", "integer", "number", "string", "array", "object")


def build_flat(b, m: Merged, ptr: str):
    """``Result`` for the merged keywords ``m`` (found at ``ptr``)."""
    from .json_build import Result

    p = b.pool
    if _trivial(m):
        return Result(b.anyv, True)
    types = m.types if m.types is not None else set(_ALL)
    parts, complete = [], True
    values = enum_values(m)
    only_enum = values is not None and not (m.has_string or m.has_number or m.obj_atoms or m.arr_atoms
                                            or m.contains or m.min_props or m.max_props is not None
                                            or m.min_items or m.max_items is not None)
    if only_enum:
        consts = [const_expr(b, v) for v in values]
        parts = [c.expr for c in consts]
        complete = all(c.complete for c in consts)
        if b.refs.draft <= 4 and "integer" in types and "number" not in types:  # 1.0 is no integer
            ints = b.nums.number(m.bounds, True, digits_only=True)
            parts = [p.and_(x, ints) if isinstance(v, (int, float)) and not isinstance(v, bool) else x
                     for x, v in zip(parts, values)]
    else:
        if "null" in types:
            parts.append(b.lex.null)
        if "boolean" in types:
            parts.append(b.lex.boolean)
        if "integer" in types or "number" in types:
            r = _number(b, m, integer="number" not in types)
            parts.append(r.expr)
            complete &= r.complete
        if "string" in types:
            parts.append(_string(b, m))
        if "array" in types:
            r = _array(b, m, ptr)
            parts.append(r.expr)
            complete &= r.complete
        if "object" in types:
            r = _object(b, m, ptr)
            parts.append(r.expr)
            complete &= r.complete
    expr = p.alt_of(parts)
    extra = []
    if values is not None and not only_enum:
        consts = [const_expr(b, v) for v in values]
        extra.append(p.alt_of(c.expr for c in consts))
        complete &= all(c.complete for c in consts)
    for n, nptr in m.nots:
        extra.append(b.negate(b.compile_full(n, nptr), "not", nptr))
    for s, sptr in m.ifs:
        extra.append(_if_then_else(b, s, sptr))
    if extra:
        expr = p.and_(expr, *extra)
    return Result(expr, complete)


def _trivial(m: Merged) -> bool:
    """No keyword of ``m`` constrains anything."""
    return (m.types is None or len(m.types) == len(_ALL)) and not (
        m.enums or m.nots or m.ifs or m.has_string or m.has_number or m.obj_atoms or m.arr_atoms
        or m.contains or m.unique or m.min_props or m.max_props is not None or m.min_items
        or m.max_items is not None)


def _if_then_else(b, s: dict, ptr: str) -> int:
    p = b.pool
    if "then" not in s and "else" not in s:
        return b.anyv
    cond = b.compile_full(s["if"], ptr + "/if")
    then = b.compile(s.get("then", True), ptr + "/then").expr
    other = b.compile(s.get("else", True), ptr + "/else").expr
    unless = b.negate(cond, "if", ptr + "/if")
    return p.alt(p.and_(cond.expr, then), p.and_(unless, other))


def const_expr(b, v: Any):
    """Texts of the JSON value ``v`` (objects: in the given key order). Strings (values and
    keys, at any nesting) are spelled as ``json.dumps(s, ensure_ascii=False)`` or
    ``json.dumps(s)`` print them, or in every U-spelling under ``b.full_spellings`` (only then
    is the result complete)."""
    from .json_build import Result

    p, lex = b.pool, b.lex
    if v is None:
        return Result(lex.null, True)
    if isinstance(v, bool):
        return Result(p.literal("true" if v else "false"), True)
    if isinstance(v, (int, float)):
        return Result(b.nums.const_number(to_decimal(v)), True)
    if isinstance(v, str):
        return Result(_string_spellings(b, v), b.full_spellings)
    level = b.level
    with b.deeper():
        if isinstance(v, list):
            items = [const_expr(b, x) for x in v]
            body = p.join([r.expr for r in items], lex.comma(level + 1))
            return Result(lex.array_of(body, level), all(r.complete for r in items))
        members = [(k, const_expr(b, x)) for k, x in v.items()]
    body = p.join([lex.member(_string_spellings(b, k), r.expr) for k, r in members], lex.comma(level + 1))
    complete = b.full_spellings and len(members) <= 1 and all(r.complete for _, r in members)
    return Result(lex.object_of(body, level), complete)


def _string_spellings(b, s: str) -> int:
    """The quoted spellings of ``s`` that ``const_expr`` accepts (see there)."""
    if b.full_spellings:
        return _key_any(b, s)
    return b.pool.alt(b.pool.literal(json.dumps(s, ensure_ascii=False)), b.pool.literal(json.dumps(s)))


def _key_any(b, key: str) -> int:
    """Every U-encoding of ``key`` as a quoted string."""
    return b.lex.string_of(b.strs.lift(b.pool.literal(key)))


# ---------------------------------------------------------------------- scalars
def _number(b, m: Merged, integer: bool):
    from .json_build import Result

    p = b.pool
    if not m.multiples:
        # integers are generated as plain digit strings (no `1.0` or `1e0`): a model cannot loop on
        # `0.000...`, at the cost of rejecting those rare spellings that draft-06+ calls integers;
        # complements (full_spellings) need every integral spelling to stay sound
        partial = integer and b.refs.draft > 4 and not b.full_spellings
        digits = integer and (b.refs.draft <= 4 or not b.full_spellings)
        return Result(b.nums.number(m.bounds, integer, digits_only=digits), not partial)
    exprs = [b.nums.multiple_of(k, m.bounds, integer, ptr) for k, ptr in m.multiples]
    if integer and b.refs.draft <= 4:
        exprs.append(b.nums.number(m.bounds, True, digits_only=True))
    return Result(p.and_(*exprs), False)


def _string(b, m: Merged) -> int:
    p, strs = b.pool, b.strs
    if m.max_len is not None and m.max_len < m.min_len:
        return p.nothing
    pieces = []
    if m.min_len or m.max_len is not None:
        pieces.append(strs.length(m.min_len, -1 if m.max_len is None else m.max_len))
    for pat, ptr in m.patterns:
        pieces.append(strs.pattern_content(pat, ptr))
    for fmt, ptr in m.formats:
        pieces.append(_format(b, fmt, ptr))
    content = p.and_(*pieces) if pieces else strs.content_any
    return b.lex.string_of(content)


def _format(b, fmt: Any, ptr: str) -> int:
    strs = b.strs
    if fmt not in FORMATS:
        b.drop("format", ptr, f"format {fmt!r} is not supported (supported: {', '.join(sorted(FORMATS))})")
        return strs.content_any
    cache = b.format_cache
    if fmt not in cache:
        cache[fmt] = format_content(strs, fmt)
    return cache[fmt]


def format_content(strs, fmt: str) -> int:
    """Encoded string content whose value is in format ``fmt`` (a key of ``FORMATS``)."""
    p = strs.p
    value = strs.regex_value(FORMATS[fmt])
    if fmt == "hostname":
        value = p.and_(value, p.repeat(p.byte_range(0, 0x7F), 1, MAX_HOSTNAME))
    return strs.lift(value)


# ---------------------------------------------------------------------- containers
def _array(b, m: Merged, ptr: str):
    from .json_build import Result

    p = b.pool
    shapes = []
    for a in m.arr_atoms:
        s = a.schema
        items = s.get("items", True)
        if isinstance(items, list):
            prefix = [(x, f"{a.ptr}/items/{i}") for i, x in enumerate(items)]
            rest = (s.get("additionalItems", True), a.ptr + "/additionalItems")
        else:
            prefix = [(x, f"{a.ptr}/prefixItems/{i}") for i, x in enumerate(s.get("prefixItems", []))]
            rest = (items, a.ptr + "/items")
        shapes.append((prefix, rest))
    width = max((len(pf) for pf, _ in shapes), default=0)
    complete = True
    prefix_exprs = []
    level = b.level
    with b.deeper():  # items
        for j in range(width):
            r = b.compile_all([pf[j] if j < len(pf) else rest for pf, rest in shapes])
            prefix_exprs.append(r.expr)
            complete &= r.complete
        rest_r = b.compile_all([rest for _, rest in shapes])
        complete &= rest_r.complete
        rest_expr = None if rest_r.expr == p.nothing else rest_r.expr
        if m.unique and (m.max_items is None or m.max_items > 1):
            b.drop("uniqueItems", m.unique[0], "uniqueItems is not supported for arrays that may hold several items")
        expr = b.cont.array(prefix_exprs, rest_expr, m.min_items, m.max_items, level)
        for schema, lo, hi, cptr in m.contains:
            c = b.compile(schema, cptr) if hi is None else b.compile_full(schema, cptr)
            if hi is None:
                expr = p.and_(expr, b.cont.contains(c.expr, None, lo, None, level))
            else:
                other = b.negate(c, "maxContains", cptr)
                expr = p.and_(expr, b.cont.contains(c.expr, other, lo, hi, level))
    return Result(expr, complete)


def _object(b, m: Merged, ptr: str):
    from .json_build import Result

    p, lex = b.pool, b.lex
    keys: list[str] = []
    required: set[str] = set()
    for a in m.obj_atoms:
        for k in list(a.schema.get("properties", {})) + list(a.schema.get("required", [])):
            if k not in keys:
                keys.append(k)
        required.update(a.schema.get("required", []))
    names = [b.compile(a.schema["propertyNames"], a.ptr + "/propertyNames").expr
             for a in m.obj_atoms if "propertyNames" in a.schema]
    members, complete = [], True
    level = b.level
    with b.deeper():  # member values
        for k in keys:
            r = _member_value(b, m, k)
            kj = b.key_json(k)
            if r.expr == p.nothing or any(not p.matches(n, kj) for n in names):
                if k in required:
                    return Result(p.nothing, True)
                continue
            complete &= r.complete
            key = _key_any(b, k) if b.full_spellings else p.literal(kj)  # complements exclude every spelling
            members.append(Member(lex.member(key, r.expr), k in required))
        extra = _extra_members(b, m, keys, names)
    any_order = b.property_order == "any"
    expr = b.cont.object(members, extra, m.min_props, m.max_props, ptr, any_order=any_order, level=level)
    order_free = any_order or not members or (len(members) == 1 and extra is None)
    return Result(expr, complete and order_free)


def _member_value(b, m: Merged, key: str):
    schemas = []
    for a in m.obj_atoms:
        s = a.schema
        props = s.get("properties", {})
        if key in props:
            schemas.append((props[key], f"{a.ptr}/properties/{_esc(key)}"))
        matched = [(v, f"{a.ptr}/patternProperties/{_esc(pat)}") for pat, v in s.get("patternProperties", {}).items()
                   if b.pool.matches(b.strs.pattern_content(pat, a.ptr), b.key_json(key)[1:-1])]
        schemas.extend(matched)
        if key not in props and not matched and "additionalProperties" in s:
            schemas.append((s["additionalProperties"], a.ptr + "/additionalProperties"))
    return b.compile_all(schemas)


def _extra_members(b, m: Merged, keys: list[str], names: list[int]):
    """Member language of keys other than ``keys`` (None when no such member is allowed)."""
    p, lex = b.pool, b.lex
    if any(a.schema.get("additionalProperties", True) is False and not a.schema.get("patternProperties")
           for a in m.obj_atoms):
        return None  # one atom forbids every undeclared key
    declared = p.alt_of(_key_any(b, k) for k in keys)
    key_lang = p.diff(lex.any_string, declared) if keys else lex.any_string
    for n in names:
        key_lang = p.and_(key_lang, n)
    langs = []
    for a in m.obj_atoms:
        s = a.schema
        pats = list(s.get("patternProperties", {}).items())
        ap = s.get("additionalProperties", True)
        if not pats and (ap is True or ap == {}):
            continue
        langs.append(_atom_extras(b, a, pats, ap, key_lang))
    if not langs:
        return lex.member(key_lang, b.anyv)
    out = p.and_(*langs)
    return None if out == p.nothing else out


def _atom_extras(b, a, pats: list, ap: Any, key_lang: int) -> int:
    """Members allowed by one atom's patternProperties/additionalProperties (keys in key_lang)."""
    p, lex = b.pool, b.lex
    keyed = [(lex.string_of(b.strs.pattern_content(pat, a.ptr, "patternProperties")),
              (v, f"{a.ptr}/patternProperties/{_esc(pat)}")) for pat, v in pats]
    out = []
    any_pattern = p.alt_of(k for k, _ in keyed)
    rest = b.compile(ap, a.ptr + "/additionalProperties").expr
    out.append(lex.member(p.diff(key_lang, any_pattern), rest))
    if len(keyed) > 6:
        b.drop("patternProperties", a.ptr, "more than 6 patternProperties are not supported")
        return p.alt(out[0], lex.member(p.and_(key_lang, any_pattern), b.anyv))
    for mask in range(1, 1 << len(keyed)):  # keys matching exactly this subset of patterns
        inside = [keyed[i] for i in range(len(keyed)) if mask >> i & 1]
        outside = [keyed[i][0] for i in range(len(keyed)) if not mask >> i & 1]
        klang = p.and_(key_lang, *[k for k, _ in inside])
        if outside:
            klang = p.diff(klang, p.alt_of(outside))
        if not p.is_live(klang):
            continue
        value = b.compile_all([s for _, s in inside]).expr
        out.append(lex.member(klang, value))
    return p.alt_of(out)


def _esc(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")

