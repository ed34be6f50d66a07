"""pydantic models, dataclasses and TypedDicts: their serialised instances are in the language,
broken ones are not, and generated text parses back into the type."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import uuid
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from typing_extensions import TypedDict

from structgen.constraints import JsonSchema, PydanticModel
from structgen.fsm import compile_bytes
from structgen.fsm.pydantic import parse_result, schema_of


class Color(enum.Enum):
    red = "red"
    blue = "blue"


class Address(BaseModel):
    city: str
    zip: str | None = None


class Person(BaseModel):
    name: str = Field(min_length=1, max_length=20)
    age: int = Field(ge=0, le=150)
    score: float = Field(gt=0, lt=1)
    kind: Literal["a", "b"]
    color: Color
    address: Address
    friends: list[Person] = []
    born: datetime.date
    uid: uuid.UUID
    extra: dict[str, int] = {}
    pair: tuple[int, str] = (1, "x")


@dataclasses.dataclass
class Point:
    x: int
    y: float | None = None


class Row(TypedDict):
    a: int
    b: str


def _person(**kw) -> Person:
    base = {"name": "Ann", "age": 31, "score": 0.5, "kind": "a", "color": Color.red,
            "address": Address(city="Oslo"), "born": datetime.date(2020, 2, 29), "uid": uuid.UUID(int=7),
            "extra": {"k": 3}}
    base.update(kw)
    return Person(**base)


def test_model_dump_is_accepted_and_parses_back():
    dfa = compile_bytes(PydanticModel(Person))
    p = _person(friends=[_person(name="Bo", kind="b", color=Color.blue)])
    for text in (p.model_dump_json(), p.model_dump_json(indent=2)):
        assert dfa.matches(text)
        assert parse_result(Person, text) == p


@pytest.mark.parametrize("broken", [
    '"name":"Ann"', '"age":31', '"kind":"a"', '"color":"red"', '"born":"2020-02-29"',
])
def test_constraint_violations_are_rejected(broken):
    good = _person().model_dump_json()
    bad = good.replace(broken, {
        '"name":"Ann"': '"name":""', '"age":31': '"age":151', '"kind":"a"': '"kind":"c"',
        '"color":"red"': '"color":"green"', '"born":"2020-02-29"': '"born":"2021-02-29"',
    }[broken])
    assert bad != good
    assert not compile_bytes(PydanticModel(Person)).matches(bad)


@pytest.mark.parametrize("tp,value", [(Point, Point(x=1, y=2.5)), (Point, Point(x=-3)), (Row, {"a": 1, "b": "x"})])
def test_dataclass_and_typeddict(tp, value):
    text = TypeAdapter(tp).dump_json(value).decode()
    assert compile_bytes(PydanticModel(tp)).matches(text)
    assert parse_result(tp, text) == value


def test_schema_of_uses_pydantic_schema():
    schema = schema_of(Person)  # recursive: a $ref to its own $defs entry
    assert schema["$ref"] == "#/$defs/Person"
    assert schema["$defs"]["Person"]["required"][:2] == ["name", "age"]
    assert "Address" in schema["$defs"]
    assert schema_of(Point)["properties"]["x"] == {"title": "X", "type": "integer"}


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")
    inner: Address


def test_models_are_closed_unless_extra_allow():
    dfa = compile_bytes(PydanticModel(_Open))
    assert dfa.matches('{"inner": {"city": "x"}}')
    assert dfa.matches('{"inner": {"city": "x"}, "more": 1}')  # extra="allow": open
    assert not dfa.matches('{"inner": {"city": "x", "more": 1}}')  # default extra="ignore": closed
    assert schema_of(list[Address])["$defs"]["Address"]["additionalProperties"] is False
    plain = {"type": "object", "properties": {"city": {"type": "string"}}}  # plain schemas keep spec semantics
    assert compile_bytes(JsonSchema(plain)).matches('{"city": "x", "more": 1}')
