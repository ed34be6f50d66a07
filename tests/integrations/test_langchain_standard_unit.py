"""LangChain's standard unit tests for chat models, run against ``ChatStructgen`` (no model is loaded)."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain_tests")

from langchain_tests.unit_tests import ChatModelUnitTests  # noqa: E402

from structgen.integrations.langchain import ChatStructgen  # noqa: E402


class TestChatStructgenUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatStructgen]:
        return ChatStructgen

    @property
    def chat_model_params(self) -> dict:
        return {"seed": 0}

    @property
    def init_from_env_params(self) -> tuple[dict, dict, dict]:
        return {}, {}, {}
