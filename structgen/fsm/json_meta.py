"""A fast sufficient check that a schema is valid under its draft's metaschema.

``jsonschema``'s validator is exact but slow on large schemas (it resolves references through
its registry at every keyword: milliseconds for a typical schema, tens of milliseconds for a
large one). ``proves_valid(cls, schema)`` interprets the very same metaschema documents
directly and returns True only when ``schema`` is certainly valid; False means "invalid, or not
proven" (a metaschema keyword it does not interpret, a float where an integer is required, an
``enum`` or ``uniqueItems`` comparison it does not decide), and the caller then runs
``jsonschema`` for the exact verdict and error. Every rule below can only fail to prove.

Drafts 4, 6, 7, 2019-09 and 2020-12 are interpreted (others always answer False). As in
``jsonschema``'s default validators, ``format`` is an annotation.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin

_ANNOTATIONS = frozenset({
    "$schema", "$id", "id", "$comment", "title", "description", "default", "deprecated", "examples",
    "$vocabulary", "$dynamicAnchor", "$recursiveAnchor", "format", "definitions", "$defs",
})
_DRAFT_ROOTS = {
    "http://json-schema.org/draft-04/schema": 4,
    "http://json-schema.org/draft-06/schema": 6,
    "http://json-schema.org/draft-07/schema": 7,
    "https://json-schema.org/draft/2019-09/schema": 2019,
    "https://json-schema.org/draft/2020-12/schema": 2020,
}


def proves_valid(cls: Any, schema: Any) -> bool:
    """True only when ``schema`` is valid under ``cls.META_SCHEMA`` (``cls``: a jsonschema
    validator class); False when it is invalid or validity is not proven."""
    meta = _metaschema_of(cls)
    return meta is not None and meta.proves(meta.root, meta.root_uri, schema)


class _Metaschema:
    """One draft's metaschema documents, interpreted over an instance (the user's schema)."""

    def __init__(self, root: dict, root_uri: str, draft: int):
        self.root, self.root_uri, self.draft = root, root_uri, draft
        self._refs: dict[tuple[int, str], tuple[Any, str] | None] = {}
        self._keep: list = []  # the ref values whose ids key _refs, kept alive

    # ------------------------------------------------------------------ references
    def _resolve(self, ref: Any, base: str) -> tuple[Any, str] | None:
        """(target subschema, its document's URI) of ``ref`` written in document ``base``."""
        key = (id(ref), base)
        if key in self._refs:
            return self._refs[key]
        out = None
        if isinstance(ref, str):
            url, fragment = urldefrag(urljoin(base, ref))
            doc = self.root if url == self.root_uri else _registry_document(url)
            if doc is not None and (not fragment or fragment.startswith("/")):
                out = _pointer(doc, fragment), url
                if out[0] is None:
                    out = None
        self._refs[key] = out
        self._keep.append(ref)
        return out

    # ------------------------------------------------------------------ interpretation
    def proves(self, s: Any, base: str, x: Any) -> bool:
        """True only when instance ``x`` is valid against metaschema subschema ``s``."""
        if s is True:
            return True
        if not isinstance(s, dict):
            return False
        if "$ref" in s:
            target = self._resolve(s["$ref"], base)
            if target is None or not self.proves(target[0], target[1], x):
                return False
            if self.draft <= 7:  # siblings of $ref are ignored before 2019-09
                return True
        for kw, v in s.items():
            if kw in _ANNOTATIONS or kw == "$ref":
                continue
            check = _KEYWORDS.get(kw)
            if check is None or not check(self, s, v, base, x):
                return False
        return True


@functools.cache
def _metaschema_of(validator: Any) -> _Metaschema | None:
    """The interpreted metaschema of a jsonschema validator class (None: draft not interpreted)."""
    meta = getattr(validator, "META_SCHEMA", None)
    if not isinstance(meta, dict):
        return None
    uri = str(meta.get("$id", meta.get("id", ""))).rstrip("#")
    draft = _DRAFT_ROOTS.get(uri)
    return None if draft is None else _Metaschema(meta, uri, draft)


def _type(m: _Metaschema, s: dict, v: Any, base: str, x: Any) -> bool:
    return any(_is_type(x, t) for t in v) if isinstance(v, list) else _is_type(x, v)


def _is_type(x: Any, t: Any) -> bool:
    if t == "object":
        return isinstance(x, dict)
    if t == "array":
        return isinstance(x, list)
    if t == "string":
        return isinstance(x, str)
    if t == "boolean":
        return isinstance(x, bool)
    if t == "null":
        return x is None
    if t == "integer":  # floats (1.0 is an integer from draft 6 on) are left to jsonschema
        return isinstance(x, int) and not isinstance(x, bool)
    if t == "number":
        return isinstance(x, (int, float)) and not isinstance(x, bool)
    return False


def _enum(m: _Metaschema, s: dict, v: Any, base: str, x: Any) -> bool:
    # strings and null only: equality of numbers and booleans is left to jsonschema
    return (isinstance(x, str) or x is None) and isinstance(v, list) and any(type(e) is type(x) and e == x for e in v)


def _all_of(m: _Metaschema, s: dict, v: Any, base: str, x: Any) -> bool:
    return all(m.proves(sub, base, x) for sub in v)


def _any_of(m: _Metaschema, s: dict, v: Any, base: str, x: Any) -> bool:
    return any(m.proves(sub, base, x) for sub in v)


def _dynamic_ref(m: _Metaschema, s: dict, v: Any, base: str, x: Any) -> bool:
    # validation always starts at the metaschema root, the outermost (and only) resource
    # declaring the dynamic / recursive anchor these documents refer to
    return v in ("#meta", "#") and m.proves(m.root, m.root_uri, x)


def _properties(m: _Metaschema, s: dict, v: Any, base: str, x: Any) -> bool:
    return not isinstance(x, dict) or all(m.proves(v[k], base, x[k]) for k in v if k in x)


def _additional(m: _Metaschema, s: dict, v: Any, base: str, x: Any) -> bool:
    if not isinstance(x, dict):
        return True
    if "patternProperties" in s:
        return False
    declared = s.get("properties", {})
    return all(m.proves(v, base, val) for k, val in x.items() if k not in declared)


def _property_names(m: _Metaschema, s: dict, v: Any, base: str, x: Any) -> bool:
    return not isinstance(x, dict) or all(m.proves(v, base, k) for k in x)


def _dependencies(m: _Metaschema, s: dict, v: Any, base: str, x: Any) -> bool:
    if not isinstance(x, dict):
        return True
    for k, dep in v.items():
        if k not in x:
            continue
        if isinstance(dep, list):
            if not all(d in x for d in dep):
                return False
        elif not m.proves(dep, base, x):
            return False
    return True


def _items(m: _Metaschema, s: dict, v: Any, base: str, x: Any) -> bool:
    if not isinstance(x, list):
        return True
    return isinstance(v, (dict, bool)) and all(m.proves(v, base, item) for item in x)


def _min_items(m: _Metaschema, s: dict, v: Any, base: str, x: Any) -> bool:
    return not isinstance(x, list) or len(x) >= v


def _unique_items(m: _Metaschema, s: dict, v: Any, base: str, x: Any) -> bool:
    if not isinstance(x, list) or v is not True:
        return True
    # without floats anywhere, distinct canonical texts are distinct values for jsonschema
    # (which tells booleans from numbers); with floats (1 == 1.0) leave it to jsonschema
    try:
        texts = [json.dumps(item, sort_keys=True, allow_nan=False) for item in x]
    except (TypeError, ValueError):
        return False
    return len(set(texts)) == len(texts) and not any(_has_float(item) for item in x)


def _has_float(x: Any) -> bool:
    if isinstance(x, float):
        return True
    if isinstance(x, dict):
        return any(_has_float(v) for v in x.values())
    if isinstance(x, list):
        return any(_has_float(v) for v in x)
    return False


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _minimum(m: _Metaschema, s: dict, v: Any, base: str, x: Any) -> bool:
    if not _number(x):
        return True
    if m.draft == 4 and s.get("exclusiveMinimum") is True:
        return x > v
    return x >= v


def _exclusive_minimum(m: _Metaschema, s: dict, v: Any, base: str, x: Any) -> bool:
    if m.draft == 4:  # the boolean form, read by _minimum
        return isinstance(v, bool)
    return not _number(x) or x > v


def _pattern(m: _Metaschema, s: dict, v: Any, base: str, x: Any) -> bool:
    return not isinstance(x, str) or re.search(v, x) is not None


_KEYWORDS = {
    "type": _type, "enum": _enum, "allOf": _all_of, "anyOf": _any_of, "$dynamicRef": _dynamic_ref,
    "$recursiveRef": _dynamic_ref, "properties": _properties, "additionalProperties": _additional,
    "propertyNames": _property_names, "dependencies": _dependencies, "items": _items,
    "minItems": _min_items, "uniqueItems": _unique_items, "minimum": _minimum,
    "exclusiveMinimum": _exclusive_minimum, "pattern": _pattern,
}


@functools.cache
def _registry_document(url: str) -> Any:
    """A metaschema document (vocabulary) shipped with jsonschema, or None."""
    from jsonschema_specifications import REGISTRY

    try:
        return REGISTRY.contents(url)
    except LookupError:
        return None


def _pointer(doc: Any, fragment: str) -> Any:
    """The node at JSON pointer ``fragment`` ("" or "/a/b") in ``doc``, or None."""
    node = doc
    for token in fragment.split("/")[1:]:
        token = unquote(token).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node
