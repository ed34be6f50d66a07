"""Fixtures for program tests: a fake runtime (fast, deterministic) and the real default model."""

from __future__ import annotations

import pytest
from fake_runtime import FakeRuntime

import structgen.frontend as sg


@pytest.fixture
def fake_rt():
    """A fresh ``FakeRuntime``; also the default backend for the duration of the test."""
    rt = FakeRuntime()
    sg.set_default_backend(rt)
    yield rt
    sg.set_default_backend(None)


@pytest.fixture(scope="session")
def real_rt(default_runtime):
    """The embedded default model: the session's shared ``Runtime`` (tests/conftest.py)."""
    return default_runtime
