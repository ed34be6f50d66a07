"""Extract a pydantic object with a LangChain chain: prompt | model.with_structured_output(Person).

    python examples/langchain_extract.py "Ann is 31 and lives in Oslo."

The output is valid by construction: the request carries Person's JSON Schema as a constraint.
"""

from __future__ import annotations

import sys

from langchain_core.prompts import ChatPromptTemplate
from pydantic import BaseModel, Field

from structgen.integrations.langchain import ChatStructgen


class Person(BaseModel):
    name: str = Field(max_length=30, description="the person's name")
    age: int = Field(ge=0, le=130)
    city: str = Field(max_length=30)


PROMPT = ChatPromptTemplate.from_messages([
    ("system", "Extract the person from the text as JSON with name, age and city."),
    ("user", "{text}"),
])


def build_chain(llm: ChatStructgen | None = None):
    """``prompt | llm.with_structured_output(Person)``; returns a ``Person`` when invoked with ``{"text": ...}``."""
    llm = llm if llm is not None else ChatStructgen(max_tokens=64)
    return PROMPT | llm.with_structured_output(Person)


def main(argv: list[str]) -> int:
    text = argv[0] if argv else "Ann is 31 and lives in Oslo."
    person = build_chain().invoke({"text": text})
    print(person.model_dump_json())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
