"""Fixtures: a server over the fake runtime on a free loopback port, and clients for it."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from server_fakes import FakeRuntime  # noqa: E402


@pytest.fixture(scope="module")
def fake_runtime():
    return FakeRuntime()


@pytest.fixture(scope="module")
def server(fake_runtime):
    from structgen.server import start_server

    with start_server(runtime=fake_runtime) as handle:
        yield handle


@pytest.fixture(scope="module")
def http(server):
    import httpx

    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def client(server):
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=30)
