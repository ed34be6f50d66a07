"""The pytest plugin, exercised through a test project that uses only its fixtures (pytester)."""

from __future__ import annotations

import pytest

import structgen as sg
from structgen.testing import assert_valid

pytest_plugins = ["pytester"]


def _plugin_args() -> tuple[str, ...]:
    """``-p structgen.testing.plugin`` unless the ``pytest11`` entry point already loads it."""
    from importlib.metadata import entry_points

    installed = any(ep.value == "structgen.testing.plugin" for ep in entry_points(group="pytest11"))
    return () if installed else ("-p", "structgen.testing.plugin")


def test_plugin_is_registered_through_its_entry_point():
    from importlib.metadata import entry_points

    assert any(ep.value == "structgen.testing.plugin" for ep in entry_points(group="pytest11"))

PROJECT = '''
import pytest
import structgen as sg
from pydantic import BaseModel
from structgen.testing import assert_valid

class Person(BaseModel):
    name: str
    age: int

def extract(model, text):
    return sg.generate(model, Person, text, max_tokens=32)

def test_tiny_fixture(structgen_tiny_model):
    assert_valid(extract(structgen_tiny_model, "Ann is 31"), Person)

@pytest.mark.structgen_model("tiny")
def test_marker_picks_tiny(structgen_runtime, structgen_tiny_model):
    assert structgen_runtime is structgen_tiny_model
    assert_valid(sg.generate(structgen_runtime, sg.Regex(r"[0-9]{3}-[0-9]{4}"), "phone", max_tokens=12),
                 sg.Regex(r"[0-9]{3}-[0-9]{4}"))

def test_option_picks_session_model(structgen_model, structgen_runtime, structgen_tiny_model):
    assert structgen_runtime is structgen_model is structgen_tiny_model

def test_invalid_output_fails(structgen_tiny_model):
    assert_valid('{"name": 1}', Person)
'''


@pytest.fixture(scope="module")
def tiny():
    from structgen.testing import tiny_runtime

    return tiny_runtime()


@pytest.mark.slow
def test_project_runs_with_plugin_fixtures(pytester):
    pytester.makepyfile(test_app=PROJECT)
    result = pytester.runpytest_subprocess(*_plugin_args(), "--structgen-model", "tiny", "-q")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*output does not validate as Person*", "*at $.name*", "*at $.age*"])


def test_help_lists_option(pytester):
    result = pytester.runpytest_inprocess(*_plugin_args(), "--help")
    result.stdout.fnmatch_lines(["*--structgen-model*"])


def test_bad_marker_is_a_usage_error(pytester):
    pytester.makepyfile(test_bad='''
import pytest
@pytest.mark.structgen_model()
def test_x(structgen_runtime):
    pass
''')
    result = pytester.runpytest_inprocess(*_plugin_args(), "-q")
    result.assert_outcomes(errors=1)


def test_tiny_model_output_is_valid_and_deterministic(tiny):
    rt = tiny
    schema = {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}},
                                               "n": {"type": "integer", "minimum": 5}}, "required": ["tags", "n"]}
    first = sg.generate(rt, schema, "anything", max_tokens=40)
    assert_valid(first, schema)
    assert sg.generate(rt, schema, "something else", max_tokens=40) == first
    assert sg.generate(rt, sg.Choice(["b", "a"]), "x", max_tokens=4) in ("a", "b")


class TestAssertValid:
    def test_accepts_and_parses(self):
        assert assert_valid('{"n": 3}', {"type": "object", "properties": {"n": {"type": "integer"}}}) == {"n": 3}
        assert assert_valid("b", sg.Choice(["a", "b"])) == "b"
        assert assert_valid("b", ["a", "b"]) == "b"

    def test_json_schema_failure_names_path(self):
        with pytest.raises(AssertionError, match=r"at \$\.items\[1\]: 'x' is not of type 'integer'"):
            assert_valid({"items": [1, "x"]}, {"properties": {"items": {"type": "array", "items": {"type": "integer"}}}})

    def test_not_json(self):
        with pytest.raises(AssertionError, match="not valid JSON"):
            assert_valid("{oops", {"type": "object"})

    def test_regex_must_match_fully(self):
        with pytest.raises(AssertionError, match="does not fully match"):
            assert_valid("555-01000", sg.Regex(r"[0-9]{3}-[0-9]{4}"))

    def test_choice(self):
        with pytest.raises(AssertionError, match=r"not one of \['a', 'b'\]"):
            assert_valid("c", sg.Choice(["a", "b"]))

    def test_unknown_schema_kind(self):
        with pytest.raises(TypeError, match="pydantic model class"):
            assert_valid("x", 42)
