"""The fast metaschema check (``json_meta.proves_valid``) never calls an invalid schema valid,
and proves the ordinary valid ones (so ``jsonschema``'s slower walk is the exception)."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import jsonschema
import pytest
from jsonschema.validators import validator_for

from structgen.errors import SchemaError
from structgen.fsm.json_meta import proves_valid
from structgen.fsm.json_refs import check_metaschema

MASKBENCH = Path("/work/shared/data/maskbench")
D4 = "http://json-schema.org/draft-04/schema#"
D6 = "http://json-schema.org/draft-06/schema#"
D7 = "http://json-schema.org/draft-07/schema#"
D2019 = "https://json-schema.org/draft/2019-09/schema"
D2020 = "https://json-schema.org/draft/2020-12/schema"


def _jsonschema_valid(schema) -> bool:
    cls = validator_for(schema, default=jsonschema.Draft202012Validator)
    return next(iter(cls(cls.META_SCHEMA).iter_errors(schema)), None) is None


def _proves(schema) -> bool:
    return proves_valid(validator_for(schema, default=jsonschema.Draft202012Validator), schema)


VALID = [
    {},
    True,
    {"type": "object", "properties": {"a": {"type": "integer", "minimum": 0}}, "required": ["a"]},
    {"$schema": D4, "type": "number", "minimum": 1, "exclusiveMinimum": True, "multipleOf": 0.5},
    {"$schema": D4, "definitions": {"x": {"enum": [1, "a", None]}}, "items": [{"$ref": "#/definitions/x"}]},
    {"$schema": D6, "exclusiveMinimum": 3, "propertyNames": {"pattern": "^a"}, "contains": {"const": 1}},
    {"$schema": D7, "if": {"required": ["a"]}, "then": {"maxProperties": 2}, "else": False},
    {"$schema": D2019, "$anchor": "top", "$defs": {"a": {"$recursiveRef": "#"}}, "dependentRequired": {"a": ["b"]}},
    {"$schema": D2020, "prefixItems": [{"type": "string"}], "items": False, "$defs": {"n": {"type": ["null", "integer"]}}},
    {"anyOf": [{"format": "email"}, {"pattern": "[a-z]+", "maxLength": 3}], "dependencies": {"a": ["b"], "c": {}}},
]

INVALID = [
    {"type": "strin"},
    {"type": ["string", "string"]},
    {"minLength": -1},
    {"minLength": 1.5},
    {"required": "a"},
    {"required": ["a", "a"]},
    {"properties": {"a": 3}},
    {"$schema": D4, "required": []},
    {"$schema": D4, "exclusiveMinimum": True},  # needs minimum (draft-04 dependencies)
    {"$schema": D4, "exclusiveMinimum": 3},
    {"$schema": D4, "enum": [1, 1.0]},  # draft-04: enum items unique
    {"$schema": D4, "multipleOf": 0},
    {"$schema": D6, "multipleOf": 0},
    {"$schema": D7, "items": [{"type": 1}]},
    {"$schema": D2019, "$anchor": "1bad"},
    {"$schema": D2020, "items": [{}]},  # the array form is gone in 2020-12
    {"$schema": D2020, "$defs": {"a": {"minItems": "1"}}},
    {"allOf": []},
    {"anyOf": [{"not": {"type": 7}}]},
]


@pytest.mark.parametrize("schema", VALID, ids=lambda s: json.dumps(s)[:60])
def test_valid_schemas_are_proven(schema):
    assert _jsonschema_valid(schema)
    assert _proves(schema)
    check_metaschema(schema)


@pytest.mark.parametrize("schema", INVALID, ids=lambda s: json.dumps(s)[:60])
def test_invalid_schemas_are_never_proven_and_still_raise_with_pointer(schema):
    assert not _jsonschema_valid(schema)
    assert not _proves(schema)
    with pytest.raises(SchemaError) as info:
        check_metaschema(schema)
    assert info.value.keyword


def test_floats_that_jsonschema_may_accept_are_left_to_it():
    schema = {"$schema": D7, "minLength": 1.0}  # an integer from draft 6 on
    assert not _proves(schema)
    check_metaschema(schema)  # jsonschema decides: valid


@pytest.mark.skipif(not MASKBENCH.exists(), reason="shared test data not present")
def test_sound_on_maskbench_schemas_and_their_mutants():
    schemas = [json.loads(line)["schema"] for f in sorted(MASKBENCH.glob("*.jsonl")) for line in f.open()]
    rng = random.Random(0)
    schemas = rng.sample(schemas, min(len(schemas), 300))
    bad_values = [1.5, -1, "x", [], {}, None, True, [1, 1], ["a", "a"], 0, {"a": 1}, "^(", 2.0]
    keywords = ["type", "minLength", "required", "items", "properties", "enum", "exclusiveMinimum", "$ref",
                "additionalProperties", "multipleOf", "dependencies", "$anchor", "minimum", "pattern", "allOf",
                "$defs", "definitions", "uniqueItems", "prefixItems", "contains", "format", "maxItems"]
    valid = proven = mutants_invalid = 0
    for schema in schemas:
        if _jsonschema_valid(schema):
            valid += 1
            proven += _proves(schema)
        for _ in range(2):
            mutant = copy.deepcopy(schema)
            nodes, todo = [], [mutant]
            while todo:
                x = todo.pop()
                if isinstance(x, dict):
                    nodes.append(x)
                    todo.extend(x.values())
                elif isinstance(x, list):
                    todo.extend(x)
            if not nodes:
                continue
            node = rng.choice(nodes)
            node[rng.choice(keywords + [k for k in node if k != "$schema"])] = rng.choice(bad_values)
            if not _jsonschema_valid(mutant):
                mutants_invalid += 1
                assert not _proves(mutant), json.dumps(mutant)[:300]
    assert mutants_invalid > 200
    assert proven >= 0.95 * valid
