"""JSON Schema → byte language: accept/reject tables per keyword (texts are json.dumps output)."""

from __future__ import annotations

import json
import re

import pytest

from structgen.constraints import JsonSchema
from structgen.fsm import compile_bytes


def _text(v) -> str:
    return v.text if isinstance(v, Raw) else json.dumps(v, ensure_ascii=False)


class Raw:
    """An exact text rather than a value to serialise."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self):
        return f"Raw({self.text!r})"


CASES = [
    # (schema, accepted values, rejected values)
    ({"type": "integer"}, [0, -5, 10**30, Raw("-0")], [1.5, "1", Raw("01"), Raw("1."), 3.0, Raw("1e2"), Raw("1.5e1")]),
    ({"not": {"type": "integer"}}, [1.5, "1"], [3, 3.0, Raw("1e2")]),  # complements stay sound
    ({"type": "number", "minimum": 0.1, "exclusiveMaximum": 10}, [0.1, Raw("0.10"), 9.99, 1e0, 1.5e-1], [0.0999, 10, 10.0, 1e-06, -1]),
    ({"$schema": "http://json-schema.org/draft-04/schema#", "type": "integer"}, [5, -3], [5.0, Raw("1e2")]),
    ({"$schema": "http://json-schema.org/draft-04/schema#", "type": "integer", "enum": [1, "a"]}, [1], [1.0]),
    ({"$schema": "http://json-schema.org/draft-04/schema#", "type": "integer", "multipleOf": 5}, [10], [10.0]),
    ({"type": "integer", "minimum": -5, "maximum": 123}, [-5, 0, 99, 123], [-6, 124, 1000, Raw("123.0")]),
    ({"type": "number", "exclusiveMinimum": True, "minimum": 0, "$schema": "http://json-schema.org/draft-04/schema#"},
     [1e-06, 3], [0, -1, Raw("-0")]),
    ({"type": "integer", "multipleOf": 4}, [0, 8, 116, -12], [2, 10, 7]),
    ({"type": "number", "multipleOf": 0.01}, [1.23, 5, Raw("1.2300")], [1.234]),
    ({"type": "string", "minLength": 2, "maxLength": 3}, ["ab", "abc", "é\n", Raw('"\\u0041b"')], ["a", "abcd", ""]),
    ({"type": "string", "pattern": "\\d+"}, ["x12y", "5"], ["abc", "٣"]),
    ({"type": "string", "pattern": "^[a-z]+$"}, ["abc", Raw('"\\u0061b"')], ["ab1", "Ab", ""]),
    ({"type": "string", "pattern": "a|^b"}, ["xa", "bx"], ["xb"]),
    # negated class escapes inside a class, ECMA sets (U+FEFF is ECMA whitespace, U+001C is not)
    ({"type": "string", "pattern": "^[\\S]+$"}, ["ab", "\x1c"], ["a b", "\ufeff", "a\tb", ""]),
    ({"type": "string", "pattern": "^[^\\S]+$"}, [" ", "\ufeff\t"], ["a", " a", "\x1c"]),
    ({"type": "string", "pattern": "^[1-3\\D]$"}, ["x", "2", "é"], ["5", "0", "ab"]),
    ({"type": "string", "pattern": "^[^a-z\\W]$"}, ["A", "7", "_"], ["a", "-", "é"]),
    ({"type": "string", "pattern": "^[\\s\\S]$"}, ["a", " ", "\n"], ["", "ab"]),
    ({"type": "string", "pattern": "^[^\\s\\S]?$"}, [""], ["a", " "]),
    ({"type": "string", "pattern": "^[\\S^]$"}, ["^", "a"], [" "]),  # a caret among the items is literal
    ({"type": "string", "pattern": "^[^^\\S]$"}, [" "], ["^", "a"]),
    ({"type": "string", "format": "date"}, ["2020-02-29", "2021-12-31"], ["2021-02-29", "2020-13-01", "2020-1-1"]),
    ({"type": "string", "format": "date-time"}, ["2020-01-01T10:20:30Z", "2020-01-01t10:20:30.5+02:00"], ["2020-01-01 10:20:30Z", "2020-01-01T25:00:00Z"]),
    ({"type": "string", "format": "email"}, ["a.b@example.com"], ["a..b@example.com", "@x.com", "ab"]),
    ({"type": "string", "format": "ipv4"}, ["192.168.0.1"], ["256.1.1.1", "01.1.1.1", "1.1.1"]),
    ({"type": "string", "format": "ipv6"}, ["::1", "fe80::1:2", "1:2:3:4:5:6:7:8", "::ffff:1.2.3.4"], ["1:2:3", ":::", "1::2::3"]),
    ({"type": "string", "format": "uuid"}, ["123e4567-e89b-12d3-a456-426614174000"], ["123e4567e89b12d3a456426614174000"]),
    ({"type": "string", "format": "uri"}, ["https://x.org/a?b=c#d", "urn:isbn:1"], ["/relative", "http://x:port/", "a b:c"]),
    ({"type": "string", "format": "hostname"}, ["example.com", "a-b.c"], ["-a.com", "a..b", "ab--c.com", "a" * 64]),
    ({"enum": [1, "a", None, {"x": [1]}]}, [1, 1.0, "a", None, {"x": [1]}], [2, "b", {"x": [2]}, True]),
    ({"const": False}, [False], [0, None]),
    ({"type": ["string", "null"]}, ["x", None], [1]),
    ({"type": "string", "nullable": True}, ["x", None], [1]),
    (True, [1, "x", [{"a": None}]], []),
    ({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}, "required": ["a"]},
     [{"a": 1}, {"a": 1, "b": "x"}, {"a": 1, "b": "x", "c": [True]}], [{"b": "x"}, {"a": "1"}, {"a": 1, "b": 2}]),
    ({"properties": {"a": {"type": "integer"}}, "additionalProperties": False}, [{}, {"a": 1}, 5],
     [{"b": 1}, Raw('{"\\u0061": 1}'), Raw('{"a": 1, "a": 2}')]),
    ({"properties": {"a": {}}, "additionalProperties": {"type": "integer"}}, [{"a": "x", "z": 1}], [{"z": "x"}]),
    ({"patternProperties": {"^x": {"type": "integer"}, "y$": {"minimum": 3}}, "additionalProperties": False},
     [{"x1": 1}, {"xy": 3}, {"ay": 5.5}], [{"xy": 2}, {"x": "s"}, {"b": 1}]),
    ({"type": "object", "minProperties": 1, "maxProperties": 2, "properties": {"a": {}}}, [{"a": 1}, {"a": 1, "b": 2}, {"c": 1}],
     [{}, {"a": 1, "b": 2, "c": 3}]),
    ({"propertyNames": {"maxLength": 2}}, [{"ab": 1}], [{"abc": 1}]),
    ({"dependentRequired": {"a": ["b"]}}, [{}, {"b": 1}, {"a": 1, "b": 2}], [{"a": 1}]),
    ({"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 3}, [[1], [1, 2, 3]], [[], [1, 2, 3, 4], ["a"]]),
    ({"prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False}, [["a"], ["a", 1], []], [["a", 1, 2], [1]]),
    ({"$schema": "http://json-schema.org/draft-04/schema#", "items": [{"type": "string"}], "additionalItems": {"type": "integer"}},
     [["a", 1, 2]], [["a", "b"]]),
    ({"contains": {"const": 5}, "minContains": 2, "maxContains": 3}, [[5, 5], [1, 5, 2, 5, 5]], [[5], [5, 5, 5, 5], []]),
    ({"type": "array", "uniqueItems": True, "maxItems": 1}, [[], [1]], [[1, 1]]),
    ({"anyOf": [{"type": "string"}, {"minimum": 3}]}, ["x", 3, None], [2]),
    ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, [1.5], [1, 2.0]),
    ({"oneOf": [{"properties": {"k": {"const": "a"}, "x": {"type": "integer"}}, "required": ["k"]},
                {"properties": {"k": {"const": "b"}, "y": {"type": "string"}}, "required": ["k"]}]},
     [{"k": "a", "x": 1}, {"k": "b", "y": "s"}], [{"k": "c"}, {"k": "a", "x": "s"}]),
    ({"not": {"type": "string"}}, [1, None, [1]], ["x"]),
    ({"not": {"enum": [1, 2]}}, [3, "1"], [1, 2.0]),
    ({"properties": {"a": {"type": "integer"}}, "not": {"required": ["b"]}}, [{"a": 1}], [{"a": 1, "b": 2}]),
    ({"allOf": [{"properties": {"a": {"type": "integer"}}, "required": ["a"]}, {"properties": {"b": {"type": "string"}}}]},
     [{"a": 1, "b": "x"}, {"a": 1}], [{"b": "x"}, {"a": 1, "b": 1}]),
    ({"properties": {"a": {"type": "integer"}}, "anyOf": [{"required": ["a"]}, {"required": ["b"]}]},
     [{"a": 1}, {"b": 1}, {"a": 1, "b": 2}], [{}, {"a": "x"}]),
    ({"if": {"properties": {"a": {"const": 1}}}, "then": {"required": ["b"]}, "else": {"maxProperties": 0}},
     [{"a": 1, "b": 2}, 5], [{}, {"a": 1}, {"a": 2}]),
    ({"if": {"type": "integer"}, "then": {"minimum": 3}}, [3, "x", 2.5], [2]),
    ({"$defs": {"a/b": {"type": "integer"}}, "properties": {"x": {"$ref": "#/$defs/a~1b"}}}, [{"x": 1}], [{"x": "1"}]),
    ({"definitions": {"s": {"type": "string"}}, "items": {"$ref": "#/definitions/s"}}, [["a"]], [[1]]),
    ({"$schema": "http://json-schema.org/draft-04/schema#",
      "definitions": {"A": {"properties": {"a": {"type": "string"}}, "required": ["a"]},
                      "B": {"properties": {"b": {"type": "number"}}, "required": ["b"]}},
      "allOf": [{"$ref": "#/definitions/A"}, {"$ref": "#/definitions/B"}]}, [{"a": "x", "b": 1}], [{"a": "x"}]),
    ({"$defs": {"node": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
                         "additionalProperties": False}}, "$ref": "#/$defs/node"},
     [{"kids": [{"kids": []}]}, {}], [{"kids": [1]}, {"kids": [{"x": 1}]}]),
]


@pytest.mark.parametrize("schema,good,bad", CASES, ids=[json.dumps(c[0])[:60] for c in CASES])
def test_accept_reject(schema, good, bad):
    dfa = compile_bytes(JsonSchema(schema))
    for v in good:
        assert dfa.matches(_text(v)), f"valid text rejected: {_text(v)}"
    for v in bad:
        assert not dfa.matches(_text(v)), f"invalid text accepted: {_text(v)}"


def _nested_value():
    value = {"a": [1, {"b": None, "s": "x"}], "e": [], "o": {}}  # 3 levels of nesting
    for _ in range(4):
        value = {"k": [value, 2.5], "n": "t"}  # +2 levels each: 11 in all
    return value


def _nested_schema(depth: int):
    node = {"type": "object", "properties": {"a": {"type": "array"}, "e": {"type": "array"},
                                             "o": {"type": "object"}}}
    for _ in range(depth):
        node = {"type": "object", "properties": {"k": {"type": "array", "prefixItems": [node, {"type": "number"}]},
                                                 "n": {"type": "string"}}, "required": ["k"]}
    return node


@pytest.mark.parametrize("schema", [{}, _nested_schema(4)], ids=["any", "declared"])
def test_default_whitespace_accepts_exactly_json_dumps_layouts(schema):
    value = _nested_value()
    dfa = compile_bytes(JsonSchema(schema))
    for text in (json.dumps(value), json.dumps(value, separators=(",", ":")), json.dumps(value, indent=2)):
        assert dfa.matches(text), text
    mixed = re.sub(r",\n *", ", ", json.dumps(value, indent=2), count=3)  # layouts mix per position
    assert dfa.matches(mixed)
    compact = json.dumps(value, separators=(",", ":"))
    for bad in (compact.replace(":", " :", 1), compact.replace(":", ":  ", 1), compact.replace(",", " ,", 1),
                compact.replace(",", ",  ", 1), compact.replace("{", "{ ", 1), compact.replace("[", "[ ", 1),
                compact.replace("]", " ]", 1), compact.replace(",", ",\t", 1), compact.replace(",", ",\r\n", 1),
                compact.replace(",", ",\n ", 1), compact.replace(",", ",\n\n", 1), compact.replace("[]", "[\n]", 1),
                " " + compact, compact + "\n"):
        assert not dfa.matches(bad), bad


def test_default_whitespace_indents_each_level_exactly():
    from structgen.fsm.json_lex import MAX_INDENT_LEVELS, MAX_VALUE_LEVEL

    deep = {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "array"}}}}
    for schema in ({}, deep):
        dfa = compile_bytes(JsonSchema(schema))
        assert dfa.matches('{"a": [\n    [],\n    [\n      1\n    ]\n  ]}')
        assert dfa.matches('{\n  "a": [[], [1]]\n}')
        for bad in ('{"a": [\n  [],\n    []\n  ]}', '{"a": [\n    []\n    ]}', '{\n"a": []}', '{\n    "a": []}',
                    '{"a": [\n     []]}', '{"a": [\n   []]}'):
            assert not dfa.matches(bad), bad
    dfa = compile_bytes(JsonSchema({}))
    value = json.loads("[" * MAX_INDENT_LEVELS + "1" + "]" * MAX_INDENT_LEVELS)
    assert dfa.matches(json.dumps(value, indent=2))
    assert not dfa.matches(json.dumps([value], indent=2))  # a line break past the deepest indented level
    assert dfa.matches(json.dumps([value]))
    assert not dfa.matches(json.dumps(value, indent=4))
    assert dfa.matches("[" * MAX_VALUE_LEVEL + "]" * MAX_VALUE_LEVEL)
    assert not dfa.matches("[" * (MAX_VALUE_LEVEL + 1) + "]" * (MAX_VALUE_LEVEL + 1))


def test_complements_are_taken_at_the_level_of_what_they_negate():
    """``not``, ``maxContains`` and an overlapping ``oneOf`` below the top level accept every
    layout of what they allow, indented for their own level."""
    schema = {"type": "object", "properties": {
        "a": {"not": {"type": "string"}},
        "b": {"type": "array", "contains": {"type": "integer"}, "maxContains": 1},
        "c": {"oneOf": [{"type": "array", "items": {"type": "integer"}}, {"type": "array", "maxItems": 1}]}}}
    dfa = compile_bytes(JsonSchema(schema))
    good = {"a": {"x": [1, {"y": None}]}, "b": [1, "s", [2, {"z": [3]}]], "c": [1, 2, 3]}
    for text in (json.dumps(good, indent=2), json.dumps(good), json.dumps({"a": [], "b": [{}, 4], "c": [[5]]}, indent=2)):
        assert dfa.matches(text), text
    for bad in ({"a": "s"}, {"b": [1, 2]}, {"c": [7]}, {"c": [1, "x"]}):
        assert not dfa.matches(json.dumps(bad, indent=2)) and not dfa.matches(json.dumps(bad)), bad


def test_compact_whitespace_allows_none():
    dfa = compile_bytes(JsonSchema({"type": "object"}, whitespace="compact"))
    assert dfa.matches('{"a":[1,2]}')
    assert not dfa.matches('{"a": [1,2]}')
    assert not dfa.matches(' {}')


def test_recursion_beyond_depth_is_not_generated():
    schema = {"$defs": {"n": {"type": "array", "items": {"$ref": "#/$defs/n"}}}, "$ref": "#/$defs/n"}
    dfa = compile_bytes(JsonSchema(schema, max_recursion_depth=2))
    assert dfa.matches("[[[]]]")
    assert not dfa.matches("[[[[[]]]]]")


@pytest.mark.parametrize("draft", ["http://json-schema.org/draft-04/schema#", "https://json-schema.org/draft/2020-12/schema"])
def test_recursion_through_anyof_of_refs_is_cut_at_the_depth_too(draft):
    """A recursive ref reached through ``anyOf`` (its atoms merged, not compiled as a ref) counts
    towards the depth like one reached through a property (it used to unroll without bound)."""
    node = {"type": "object", "required": ["id"], "additionalProperties": False,
            "properties": {"id": {"type": "integer"},
                           "children": {"type": "array", "items": {"anyOf": [{"$ref": "#/definitions/node"},
                                                                             {"type": "null"}]}}}}
    schema = {"$schema": draft, "definitions": {"node": node}, "$ref": "#/definitions/node"}
    dfa = compile_bytes(JsonSchema(schema, max_recursion_depth=2))
    assert dfa.matches('{"id": 1, "children": [{"id": 2, "children": [null, {"id": 3}]}]}')
    assert not dfa.matches('{"id": 1, "children": [{"id": 2, "children": [{"id": 3, "children": [{"id": 4, '
                           '"children": [{"id": 5, "children": [{"id": 6}]}]}]}]}]}')
    assert not dfa.matches('{"id": 1, "children": [{"id": "2"}]}')


@pytest.mark.parametrize("schema", [{"enum": ["abc", "é/\n", 1]}, {"const": {"k": ["abc", {"é/\n": "é/\n"}]}}],
                         ids=["enum", "nested-const"])
def test_enum_and_const_strings_only_in_json_dumps_spellings(schema):
    dfa = compile_bytes(JsonSchema(schema))
    values = schema["enum"] if "enum" in schema else [schema["const"]]
    for v in values:
        assert dfa.matches(json.dumps(v, ensure_ascii=False)) and dfa.matches(json.dumps(v))
    texts = [json.dumps(v) for v in values]
    respelled = [("abc", "\\u0061bc"), ("\\n", "\\u000a"), ("/", "\\/"), ("\\u00e9", "\\u00E9"), ('"k"', '"\\u006b"')]
    bad = [t.replace(a, b, 1) for t in texts for a, b in respelled if a in t]
    assert len(bad) >= 4
    for t in bad:  # other escapes of the same values (keys included) are not generated
        assert not dfa.matches(t), t


def test_negated_enum_still_rejects_every_spelling():
    dfa = compile_bytes(JsonSchema({"not": {"enum": ["abc"]}}))
    assert not dfa.matches('"abc"') and not dfa.matches('"\\u0061bc"')
    assert dfa.matches('"abd"')
    one = compile_bytes(JsonSchema({"oneOf": [{"enum": ["abcd", "x"]}, {"type": "string", "maxLength": 3}]}))
    assert one.matches('"abcd"') and one.matches('"ab"')
    assert not one.matches('"x"') and not one.matches('"\\u0078"')


def test_fresh_and_used_pools_give_the_same_language():
    """A fresh pool starts as a copy of the per-process template; a used one builds in place."""
    from structgen.fsm.json_schema import schema_to_expr
    from structgen.fsm.rx import ExprPool

    schema = {"type": "object", "properties": {"d": {"type": "string", "format": "date"},
                                               "n": {"type": "integer", "minimum": 1}}, "required": ["d"]}
    used = ExprPool()
    used.literal("something else first")
    fresh = ExprPool()
    a, b = schema_to_expr(schema, fresh), schema_to_expr(schema, used)
    texts = ['{"d": "2024-02-29"}', '{"d": "2023-02-29"}', '{"d": "2024-01-01", "n": 1}', '{"d": "2024-01-01", "n": 0}',
             '{"d": "2024-01-01", "x": null}', '{"n": 3}', '{"d": "2024-1-01"}']
    assert [fresh.matches(a, t.encode()) for t in texts] == [used.matches(b, t.encode()) for t in texts]
    assert [fresh.matches(a, t.encode()) for t in texts] == [True, False, True, False, True, False, False]


def test_enum_values_compare_as_json_when_deduplicated_and_intersected():
    from structgen.fsm.json_merge import json_equal, json_key

    values = [1, 1.0, True, False, 0, 0.0, -0.0, "1", None, [1], [1.0], [True], {"a": 1}, {"a": 1.0},
              {"a": 1, "b": [2]}, {"b": [2.0], "a": 1}, [], {}, "", 10**30, 1e30]
    for x in values:
        for y in values:
            assert (json_key(x) == json_key(y)) == json_equal(x, y), (x, y)
    dfa = compile_bytes(JsonSchema({"allOf": [{"enum": [1, True, "a", [1]]}, {"enum": [1.0, 1, [1.0], "b"]}]}))
    assert dfa.matches("1") and dfa.matches("[1]") and dfa.matches("1.0")
    assert not dfa.matches("true") and not dfa.matches('"a"') and not dfa.matches('"b"')


@pytest.mark.parametrize("value", [0, -0.0, 7, -12, 1.5, -2.25, 0.25, 1e-05, 1e16, 1e17, 2**70, 1.2345678901234567,
                                   5e-324, 1.7976931348623157e308, 123456789012345678901, 99.75])
def test_const_number_is_the_point_range_of_number(value):
    """``const_number`` spells out directly what ``number`` builds for the range [x, x]."""
    from structgen.fsm.json_lex import Lex
    from structgen.fsm.json_numbers import Bounds, NumberBuilder, to_decimal
    from structgen.fsm.rx import ExprPool

    pool = ExprPool()
    nums = NumberBuilder(Lex(pool))
    x = to_decimal(value)
    direct = nums.const_number(x)
    ranged = nums.number(Bounds(x, False, x, False), integer=x == x.to_integral_value())
    assert not pool.is_live(pool.diff(direct, ranged)) and not pool.is_live(pool.diff(ranged, direct))
    assert pool.matches(direct, json.dumps(value).encode())


ANY_ORDER_CASES = [
    # (schema, accepted only with property_order="any", accepted by both, rejected by both)
    ({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}, "c": {"type": "null"}},
      "required": ["a", "c"]},
     [{"c": None, "a": 1}, {"b": "x", "c": None, "a": 1}, {"c": None, "b": "x", "a": 1}],
     [{"a": 1, "c": None}, {"a": 1, "b": "x", "c": None}],
     [{"c": None}, {"b": "x", "a": 1}, {"c": None, "a": "1"}, Raw('{"c": null, "a": 1, "a": 2}'),
      Raw('{"a": 1, "c": null, "c": null}'), {}]),
    ({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
      "additionalProperties": {"type": "string"}},
     [{"x": "s", "a": 1}, {"b": 2, "x": "s", "a": 1}, {"x": "s", "b": 2, "y": "t"}],
     [{"a": 1, "x": "s"}, {}, {"x": "s"}],
     [{"x": 1, "a": 1}, {"b": "s", "a": 1}, Raw('{"b": 1, "x": "s", "b": 2}')]),
    ({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
      "additionalProperties": False, "minProperties": 1, "maxProperties": 1},
     [], [{"a": 1}, {"b": 1}], [{}, {"b": 1, "a": 1}, {"a": 1, "b": 1}, {"c": 1}]),
    ({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
      "patternProperties": {"^x": {"type": "boolean"}}, "additionalProperties": False, "maxProperties": 3},
     [{"x1": True, "b": 1}, {"b": 1, "x1": True, "a": 2}],
     [{"a": 1, "b": 2, "x1": False}],
     [{"x1": 1, "b": 1}, {"y": True, "a": 1}, {"x1": True, "b": 1, "a": 2, "x2": False}]),
    ({"allOf": [{"properties": {"a": {"type": "integer"}}, "required": ["a"]},
                {"properties": {"b": {"properties": {"p": {"const": 1}, "q": {"const": 2}}, "required": ["p", "q"]}},
                 "required": ["b"]}]},
     [{"b": {"q": 2, "p": 1}, "a": 0}, {"a": 0, "b": {"q": 2, "p": 1}}],
     [{"a": 0, "b": {"p": 1, "q": 2}}],
     [{"b": {"q": 2}, "a": 0}, {"b": {"q": 2, "p": 2}, "a": 0}, {"b": {"q": 2, "p": 1}}]),
]


@pytest.mark.parametrize("schema,any_only,both,neither", ANY_ORDER_CASES,
                         ids=[json.dumps(c[0])[:60] for c in ANY_ORDER_CASES])
def test_property_order_any_accepts_every_order_and_nothing_invalid(schema, any_only, both, neither):
    ordered = compile_bytes(JsonSchema(schema))
    free = compile_bytes(JsonSchema(schema, property_order="any"))
    for v in any_only:
        assert free.matches(_text(v)) and not ordered.matches(_text(v)), _text(v)
    for v in both:
        assert free.matches(_text(v)) and ordered.matches(_text(v)), _text(v)
    for v in neither:
        assert not free.matches(_text(v)) and not ordered.matches(_text(v)), _text(v)


def test_property_order_any_keeps_whitespace_policy_and_nesting():
    schema = {"type": "object", "properties": {k: {"type": "object", "properties": {"x": {}, "y": {}}} for k in "abc"}}
    free = compile_bytes(JsonSchema(schema, property_order="any"))
    value = {"c": {"y": [1], "x": None}, "a": {}, "b": {"x": 1}}
    for text in (json.dumps(value), json.dumps(value, indent=2), json.dumps(value, separators=(",", ":"))):
        assert free.matches(text), text
    assert not free.matches(json.dumps(value).replace(", ", " , ", 1))
    assert not free.matches('{"c": {"y": 1, "y": 2}}')
    compact = compile_bytes(JsonSchema(schema, whitespace="compact", property_order="any"))
    assert compact.matches(json.dumps(value, separators=(",", ":"))) and not compact.matches(json.dumps(value))


def test_property_order_option_is_checked_and_bounded():
    from structgen.errors import ConstraintError, SchemaError
    from structgen.fsm.json_objects import MAX_ANY_ORDER_PROPERTIES

    with pytest.raises(ConstraintError, match="property_order"):
        JsonSchema({}, property_order="sorted")
    assert JsonSchema({}, property_order="any").key() != JsonSchema({}).key()
    assert JsonSchema({}, property_order="schema") == JsonSchema({})
    wide = {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(MAX_ANY_ORDER_PROPERTIES + 1)}}
    compile_bytes(JsonSchema(wide))  # schema order: no bound
    with pytest.raises(SchemaError, match="property_order='any' supports at most"):
        compile_bytes(JsonSchema(wide, property_order="any"))
    wide["properties"].pop("p0")
    free = compile_bytes(JsonSchema(wide, property_order="any"))
    assert free.matches(json.dumps({f"p{i}": i for i in range(MAX_ANY_ORDER_PROPERTIES, 0, -1)}))


def test_property_order_any_objects_can_be_complemented():
    """Under any order an object language holds every order, so ``not`` may complement it."""
    from structgen.errors import SchemaError

    schema = {"type": "object", "not": {"properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                                        "required": ["a", "b"], "additionalProperties": False}}
    with pytest.raises(SchemaError, match="complement"):
        compile_bytes(JsonSchema(schema))
    free = compile_bytes(JsonSchema(schema, property_order="any"))
    for v in ({"a": 1, "b": 2}, {"b": 2, "a": 1}, [1]):
        assert not free.matches(_text(v)), _text(v)
    for v in ({"a": 1}, {"c": 3, "b": 2, "a": 1}, {"b": "x", "a": 1}, {}):
        assert free.matches(_text(v)), _text(v)


@pytest.mark.parametrize("order", ["schema", "any"])
def test_complemented_object_excludes_escaped_spellings_of_declared_keys(order):
    schema = {"type": "object", "not": {"properties": {"a": {"type": "integer"}}, "required": ["a"],
                                        "additionalProperties": False}}
    dfa = compile_bytes(JsonSchema(schema, property_order=order))
    assert not dfa.matches('{"a": 1}') and not dfa.matches('{"\\u0061": 1}')  # both spell {"a": 1}
    assert dfa.matches('{"\\u0061": "x"}') and dfa.matches('{"b": 1}') and dfa.matches("{}")


def test_class_escape_sets_list_exactly_their_characters():
    import re

    from structgen.fsm import json_strings

    for letter in "dws":
        inner = json_strings._CLASS[letter][1]
        chars = json_strings._expand_set(inner)
        assert len(set(chars)) == len(chars)
        assert all(re.fullmatch(f"[{inner}]", ch) for ch in chars)
        assert sum(bool(re.fullmatch(f"[{inner}]", chr(c))) for c in range(0x10000)) == len(chars)

