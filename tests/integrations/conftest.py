"""The standard LangChain suites have ``async def`` tests: run them with pytest-asyncio."""

from __future__ import annotations

import inspect

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fn = getattr(item, "function", None)
        if fn is not None and inspect.iscoroutinefunction(fn) and item.get_closest_marker("asyncio") is None:
            item.add_marker(pytest.mark.asyncio)
