"""Local ``$ref`` resolution, draft detection and the metaschema check."""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import unquote

from ..errors import SchemaError
from .json_meta import proves_valid

_DRAFTS = {
    "draft-03": 3, "draft-04": 4, "draft-06": 6, "draft-07": 7, "2019-09": 2019, "2020-12": 2020,
}


def draft_of(schema: Any) -> int:
    """Declared draft (4, 6, 7, 2019, 2020); 2020 when ``$schema`` is absent or unknown."""
    uri = schema.get("$schema", "") if isinstance(schema, dict) else ""
    if isinstance(uri, str):
        for tag, num in _DRAFTS.items():
            if tag in uri:
                return num
    return 2020


_SCHEMA_MAPS = {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies"}
_SCHEMA_LISTS = {"allOf", "anyOf", "oneOf", "prefixItems", "items"}
_SCHEMA_ONE = {
    "additionalProperties", "additionalItems", "items", "not", "if", "then", "else", "contains",
    "propertyNames", "unevaluatedProperties", "unevaluatedItems",
}


def check_metaschema(schema: Any) -> None:
    """Raise ``SchemaError`` when ``schema`` is invalid under its declared draft's metaschema."""
    import jsonschema
    from jsonschema.validators import validator_for

    cls = validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        proved = proves_valid(cls, schema)  # the common case, without jsonschema's slower walk
    except RecursionError:
        proved = False
    if proved:
        return
    try:
        error = jsonschema.exceptions.best_match(_meta_validator(cls).iter_errors(schema))
    except Exception as e:  # noqa: BLE001 - any failure inside jsonschema means: cannot check
        raise SchemaError(f"schema cannot be checked against its metaschema: {e}") from None
    if error is not None:
        ptr = "".join(f"/{_escape(str(p))}" for p in error.absolute_path)
        raise SchemaError(f"invalid schema: {error.message}", keyword=str(error.validator), pointer=ptr)


@functools.cache
def _meta_validator(cls):
    """One validator of each draft's metaschema (building it is the expensive part)."""
    return cls(cls.META_SCHEMA)


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _unescape(token: str) -> str:
    return unquote(token).replace("~1", "/").replace("~0", "~")


class Refs:
    """Resolves local references of one root schema to ``(subschema, pointer)``."""

    def __init__(self, root: Any):
        self.root = root
        self.draft = draft_of(root)
        self.anchors: dict[str, tuple[Any, str]] = {}
        self.ids: dict[str, tuple[Any, str]] = {}
        self._scan(root, "")

    def _scan(self, node: Any, ptr: str) -> None:
        """Index ``$anchor``/``$id`` of every subschema (only where keywords hold schemas)."""
        stack = [(node, ptr, True)]
        while stack:
            node, ptr, in_root = stack.pop()
            if not isinstance(node, dict):
                continue
            ident = node.get("$id", node.get("id") if self.draft <= 4 else None)
            if isinstance(ident, str) and ptr:
                if ident.startswith("#"):
                    if in_root:
                        self.anchors.setdefault(ident[1:], (node, ptr))
                else:
                    self.ids.setdefault(ident, (node, ptr))
                    in_root = False  # a nested resource: its anchors are not the root's
            anchor = node.get("$anchor")
            if isinstance(anchor, str) and in_root:
                self.anchors.setdefault(anchor, (node, ptr))
            for k, v in node.items():
                if k in _SCHEMA_MAPS and isinstance(v, dict):
                    stack.extend((s, f"{ptr}/{_escape(k)}/{_escape(n)}", in_root) for n, s in v.items())
                elif k in _SCHEMA_LISTS and isinstance(v, list):
                    stack.extend((s, f"{ptr}/{_escape(k)}/{i}", in_root) for i, s in enumerate(v))
                elif k in _SCHEMA_ONE:
                    stack.append((v, f"{ptr}/{_escape(k)}", in_root))

    def resolve(self, ref: Any, where: str) -> tuple[Any, str]:
        """Target of ``ref`` found at pointer ``where``; ``SchemaError`` for remote/dangling refs."""
        if not isinstance(ref, str):
            raise SchemaError("$ref must be a string", keyword="$ref", pointer=where)
        root_id = self.root.get("$id", "") if isinstance(self.root, dict) else ""
        if root_id and ref.startswith(root_id.split("#")[0]) and "#" in ref:
            ref = ref[len(root_id.split("#")[0]):]
        if ref in self.ids:
            return self.ids[ref]
        if not ref.startswith("#"):
            raise SchemaError(f"remote $ref {ref!r} is not supported (only local refs starting with '#')",
                              keyword="$ref", pointer=where)
        frag = ref[1:]
        if frag and not frag.startswith("/"):
            if frag in self.anchors:
                return self.anchors[frag]
            raise SchemaError(f"$ref anchor {ref!r} not found", keyword="$ref", pointer=where)
        node: Any = self.root
        ptr = ""
        for raw in frag.split("/")[1:]:
            token = _unescape(raw)
            if isinstance(node, dict) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                raise SchemaError(f"$ref {ref!r} points to nothing", keyword="$ref", pointer=where)
            ptr += "/" + _escape(token)
        return node, ptr
