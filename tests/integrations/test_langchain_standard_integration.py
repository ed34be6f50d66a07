"""LangChain's standard integration tests for chat models, against the real default model.

Tests that need inputs a small local text model does not take (images, audio, PDF) skip
themselves through the ``supports_*`` properties, which stay False.
"""

from __future__ import annotations

import pytest

pytest.importorskip("langchain_tests")

from langchain_tests.integration_tests import ChatModelIntegrationTests  # noqa: E402

from structgen.integrations.langchain import ChatStructgen  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.asyncio,
              pytest.mark.filterwarnings("ignore:.*asyncio.*:pytest.PytestWarning")]


class TestChatStructgenIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatStructgen]:
        return ChatStructgen

    @property
    def chat_model_params(self) -> dict:
        return {"device": "cpu", "max_tokens": 96}

    @property
    def has_tool_choice(self) -> bool:
        return True

    # SmolLM2-135M-Instruct decodes greedily; where the standard suite checks *content* that
    # such a small model does not produce, the test is an expected failure with the reason.
    # The structure of every answer is still enforced: these failures are about what it says.
    @pytest.mark.xfail(reason="the 135M model does not carry out the multi-turn weather agent task "
                              "(the tool call is made; the final answer does not mention the result)", strict=False)
    def test_agent_loop(self, model) -> None:
        super().test_agent_loop(model)

    @pytest.mark.parametrize("schema_type", [
        pytest.param("pydantic", marks=pytest.mark.xfail(
            reason="the 135M model repeats itself inside the Joke schema's unbounded 'setup' string until "
                   "max_tokens; the cut-off JSON lacks 'punchline'", strict=False)),
        "typeddict", "json_schema"])
    def test_structured_output(self, model, schema_type) -> None:
        super().test_structured_output(model, schema_type)

    @pytest.mark.parametrize("schema_type", [
        pytest.param("pydantic", marks=pytest.mark.xfail(
            reason="as test_structured_output[pydantic]", strict=False)),
        "typeddict", "json_schema"])
    async def test_structured_output_async(self, model, schema_type) -> None:
        await super().test_structured_output_async(model, schema_type)

    @pytest.mark.xfail(reason="as test_structured_output[pydantic] (same Joke schema, pydantic.v1)", strict=False)
    def test_structured_output_pydantic_2_v1(self, model) -> None:
        super().test_structured_output_pydantic_2_v1(model)
