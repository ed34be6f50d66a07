"""JSON Schema to a byte-level expression whose language is JSON text valid against the schema.

    schema_to_expr(schema, pool, *, whitespace="default", strict=True, max_recursion_depth=3,
                   property_order="schema") -> int

Supported keywords (every other constraining keyword raises ``SchemaError`` naming the keyword
and its JSON pointer; with ``strict=False`` it is dropped and one warning lists all drops):

==========================  ==================================================================
keyword                     semantics
==========================  ==================================================================
type (string or list)       union of the listed types; ``integer`` = a plain digit string (no ``1.0``, ``1e0``)
nullable: true (OpenAPI)    adds ``null``
enum, const                 any JSON values, compared as JSON (``1`` equals ``1.0``)
                            strings spelled only as ``json.dumps`` prints them (raw or
                            ASCII-escaped); complements still exclude every spelling
properties, required        declared properties in schema order, then additional ones; with
                            ``property_order="any"`` in any order, additional ones between
additionalProperties        true / false / schema; keys other than the declared ones
patternProperties           ECMA patterns on keys (overlapping patterns: value meets all)
propertyNames               schema on additional keys; declared keys checked up front
min/maxProperties           exact count over declared and additional members
dependentRequired,          rewritten as ``anyOf`` of "key absent" / "key present and ..."
dependencies, dependentSchemas
minLength, maxLength        code points of the value (an escape counts as one)
pattern                     ECMA-262, unanchored (search) semantics
format                      date, time, date-time, email, hostname, ipv4, ipv6, uuid, uri,
                            uri-reference, json-pointer, relative-json-pointer,
                            duration, byte, binary, password
minimum, maximum,           exact decimal bounds; draft-04 boolean exclusive forms
exclusiveMinimum/Maximum
multipleOf                  see ``json_numbers`` (divisors of powers of ten, 10**-j, or few
                            multiples between both bounds)
items, prefixItems,         positional and repeated items (draft-04 array form too)
additionalItems
min/maxItems                exact
contains, min/maxContains   exact (by intersection)
uniqueItems                 only when at most one item is possible (else ``SchemaError``)
allOf                       merged into one schema (so property order stays one order)
anyOf                       distributed over the sibling keywords (merged per branch)
oneOf                       as anyOf when branches are provably disjoint (types, const
                            discriminators, enum sets); else B_i and not the others, with the
                            negations written positively (type/properties/required branches)
                            or by complement (complement-safe branches); else ``SchemaError``
not, if/then/else           ``not`` of type/properties/required is rewritten positively;
                            otherwise by complement within JSON values when the negated
                            schema is complement-safe (no multi-property order); else error
$ref, $defs, definitions    local refs (``#``, JSON pointers with ``~0 ~1 %xx``, ``$anchor``);
                            recursion unrolled ``max_recursion_depth`` times, deeper recursive
                            branches are not generated (also beyond 100 nested refs)
true / false schemas        any JSON value (arrays/objects to document level 32) / nothing
==========================  ==================================================================

Ignored annotations: title, description, default, examples, example, $comment, $schema, $id,
id, $anchor, deprecated, readOnly, writeOnly, contentMediaType, contentEncoding, discriminator,
$defs/definitions themselves, ``x-`` extensions and keywords unknown to every draft. Remote
``$ref`` raises ``SchemaError``. Under draft-04..07 a ``$ref`` overrides its siblings (per spec).
"""

from __future__ import annotations

import sys
import warnings

from ..errors import ConstraintError, SchemaError
from .json_build import Builder
from .json_refs import Refs, check_metaschema
from .rx import ExprPool

__all__ = ["schema_to_expr"]

RECURSION_LIMIT = 20_000


def schema_to_expr(
    schema,
    pool: ExprPool,
    *,
    whitespace: str = "default",
    strict: bool = True,
    max_recursion_depth: int = 3,
    property_order: str = "schema",
) -> int:
    """Expression matching exactly the JSON texts (in the whitespace policy) valid for ``schema``.

    Raises ``SchemaError`` for invalid schemas, remote refs, unknown formats and keywords that
    cannot be enforced (unless ``strict=False``, which drops them with one warning).
    """
    if not isinstance(schema, (dict, bool)):
        raise SchemaError(f"a JSON Schema must be an object or a boolean, got {type(schema).__name__}")
    if property_order not in ("schema", "any"):
        raise ConstraintError(f"property_order must be 'schema' or 'any', got {property_order!r}")
    check_metaschema(schema)
    refs = Refs(schema)
    builder = Builder(pool, refs, whitespace=whitespace, strict=strict, max_depth=max_recursion_depth,
                      property_order=property_order)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, RECURSION_LIMIT))  # long $ref chains nest deeply
    try:
        expr = builder.compile(schema, "").expr
    finally:
        sys.setrecursionlimit(limit)
    if builder.dropped:
        listed = ", ".join(f"{kw} at {ptr or '/'}" for kw, ptr in builder.dropped)
        warnings.warn(f"JSON Schema keywords not enforced (strict=False): {listed}", stacklevel=3)
    if expr == pool.nothing:
        raise SchemaError("the schema is unsatisfiable: no JSON value is valid against it")
    return expr
