"""ChatStructgen behaviour users rely on, on the tiny model (fast) and the default model (slow)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("langchain_core")

from pydantic import BaseModel  # noqa: E402

from structgen.integrations.langchain import ChatStructgen  # noqa: E402


class Person(BaseModel):
    name: str
    age: int


@pytest.fixture(scope="module")
def tiny_llm():
    from structgen.testing import tiny_runtime

    return ChatStructgen(runtime=tiny_runtime(), max_tokens=32)


def test_import_structgen_does_not_import_langchain():
    code = "import sys, structgen, structgen.integrations, structgen.testing; print('langchain_core' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_structured_output_is_enforced_by_constraint(tiny_llm):
    # The tiny model writes nothing meaningful: a valid Person can only come from the constraint.
    person = tiny_llm.with_structured_output(Person).invoke("anything")
    assert isinstance(person, Person)


def test_structured_output_json_schema_and_include_raw(tiny_llm):
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    out = tiny_llm.with_structured_output(schema, include_raw=True).invoke("anything")
    assert isinstance(out["parsed"]["ok"], bool) and out["parsing_error"] is None
    assert out["raw"].content.startswith("{")


def test_forced_tool_call_is_constrained(tiny_llm):
    def lookup(city: str, limit: int) -> str:
        """Look a city up."""
        return city

    msg = tiny_llm.bind_tools([lookup], tool_choice="any").invoke("anything")
    assert msg.tool_calls[0]["name"] == "lookup"
    assert set(msg.tool_calls[0]["args"]) == {"city", "limit"}


def test_bad_tool_choice_fails_at_bind(tiny_llm):
    from structgen.errors import RequestError

    def f(x: int) -> int:
        """f."""
        return x

    with pytest.raises(RequestError, match="not a bound tool"):
        tiny_llm.bind_tools([f], tool_choice="g")


def test_one_source_only():
    with pytest.raises(ValueError, match="one of runtime="):
        ChatStructgen(runtime=object(), base_url="http://x")


def test_stream_ends_with_usage(tiny_llm):
    chunks = list(tiny_llm.bind(structgen_constraint=None).stream("hi"))
    assert chunks[-1].chunk_position == "last" and chunks[-1].usage_metadata["input_tokens"] > 0


@pytest.mark.slow
def test_example_chain_extracts_a_person():
    sys.path.insert(0, "examples")
    try:
        import langchain_extract
    finally:
        sys.path.pop(0)
    person = langchain_extract.build_chain(ChatStructgen(device="cpu", max_tokens=64)).invoke(
        {"text": "Ann is 31 and lives in Oslo."})
    assert isinstance(person, langchain_extract.Person)


@pytest.mark.slow
def test_base_url_talks_to_a_structgen_server():
    pytest.importorskip("fastapi")
    from structgen.integrations import shared_runtime
    from structgen.server import start_server

    with start_server(runtime=shared_runtime(None, "cpu")) as server:
        llm = ChatStructgen(base_url=server.base_url, max_tokens=48)
        person = llm.with_structured_output(Person).invoke("Extract: Ann is 31.")
        assert isinstance(person, Person)
        assert "".join(c.content for c in llm.stream("Say hi.")).strip()
