"""Keywords that cannot be enforced are never silently ignored."""

from __future__ import annotations

import warnings

import pytest

from structgen.constraints import JsonSchema
from structgen.errors import SchemaError
from structgen.fsm import compile_bytes


@pytest.mark.parametrize(
    "schema,keyword,pointer",
    [
        ({"properties": {"tags": {"type": "array", "uniqueItems": True}}}, "uniqueItems", "/properties/tags"),
        ({"type": "string", "format": "credit-card"}, "format", ""),
        ({"$ref": "https://example.com/s.json"}, "$ref", "/$ref"),
        ({"properties": {"a": {"$ref": "#/$defs/missing"}}}, "$ref", "/properties/a/$ref"),
        ({"type": "integer", "multipleOf": 3}, "multipleOf", ""),
        ({"unevaluatedProperties": False}, "unevaluatedProperties", ""),
        ({"type": "string", "pattern": "\\p{L}"}, "pattern", ""),
        ({"properties": {"p": {"type": "string", "pattern": "[\\Sz-a]"}}}, "pattern", "/properties/p"),  # bad range
        ({"type": "strin"}, "anyOf", "/type"),
    ],
)
def test_unenforceable_or_invalid_raises_with_keyword_and_pointer(schema, keyword, pointer):
    with pytest.raises(SchemaError) as info:
        compile_bytes(JsonSchema(schema))
    assert info.value.keyword == keyword
    assert info.value.pointer == pointer


def test_overlapping_oneof_with_ordered_objects_raises():
    schema = {"oneOf": [{"properties": {"a": {}, "b": {}}, "minProperties": 1}, {"required": ["a"]}]}
    with pytest.raises(SchemaError) as info:
        compile_bytes(JsonSchema(schema))
    assert info.value.keyword == "oneOf"


def test_overlapping_oneof_of_required_sets_is_exact():
    dfa = compile_bytes(JsonSchema({"oneOf": [{"required": ["a"]}, {"required": ["b"]}]}))
    assert dfa.matches('{"a": 1}') and dfa.matches('{"b": 1}')
    assert not dfa.matches('{"a": 1, "b": 2}') and not dfa.matches("{}") and not dfa.matches("3")


def test_non_strict_drops_with_one_warning_listing_everything():
    schema = {"properties": {"t": {"uniqueItems": True}, "f": {"type": "string", "format": "credit-card"}}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dfa = compile_bytes(JsonSchema(schema, strict=False))
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "uniqueItems at /properties/t" in message and "format at /properties/f" in message
    assert dfa.matches('{"t": [1, 1], "f": "x"}')


def test_annotations_are_ignored_without_warning():
    schema = {"title": "T", "description": "d", "default": 1, "examples": [1], "$comment": "c",
              "deprecated": True, "readOnly": True, "x-vendor": {"a": 1}, "type": "integer"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compile_bytes(JsonSchema(schema)).matches("5")


def test_unsatisfiable_schema_raises():
    with pytest.raises(SchemaError, match="unsatisfiable"):
        compile_bytes(JsonSchema({"type": "integer", "minimum": 5, "maximum": 1}))
    with pytest.raises(SchemaError, match="unsatisfiable"):
        compile_bytes(JsonSchema(False))
