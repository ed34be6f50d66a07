"""The structgen pytest plugin: model fixtures, a model option and a model marker.

Fixtures:

* ``structgen_model`` (session): the ``Runtime`` named by ``--structgen-model`` — ``default``
  (the embedded SmolLM2-135M-Instruct, the default), ``tiny``, or a model path / hub id — on the CPU.
* ``structgen_tiny_model`` (session): a tiny deterministic model (``structgen.testing.tiny``)
  for tests that need valid structure, not meaningful content; it loads in about a second.
* ``structgen_runtime`` (per test): the model chosen by the test's
  ``@pytest.mark.structgen_model("tiny" | "default" | PATH)`` marker, else ``structgen_model``.

Runtimes are loaded once per process and shared (``structgen.integrations.shared_runtime``),
so any number of tests and sessions in one process load each model once.
"""

from __future__ import annotations

from typing import Any

import pytest

OPTION = "--structgen-model"
MARKER = "structgen_model"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("structgen")
    group.addoption(OPTION, action="store", default="default", metavar="MODEL",
                    help="model of the structgen_model fixture: 'default' (embedded SmolLM2-135M-Instruct), "
                         "'tiny', or a model folder, .gguf file or hub id")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(name): run this test's structgen_runtime on model "
                                       "'tiny', 'default' or a model path")


def load_runtime(name: str) -> Any:
    """The shared CPU ``Runtime`` for ``name``: ``"default"``, ``"tiny"``, or a model path / hub id."""
    if not isinstance(name, str) or not name:
        raise pytest.UsageError(f"a structgen model name must be 'default', 'tiny' or a path, got {name!r}")
    if name == "tiny":
        from .tiny import tiny_runtime

        return tiny_runtime()
    from ..integrations import shared_runtime

    return shared_runtime(None if name == "default" else name, device="cpu")


@pytest.fixture(scope="session")
def structgen_model(pytestconfig: pytest.Config) -> Any:
    """The session's model (``--structgen-model``, default: the embedded default model) on the CPU."""
    return load_runtime(pytestconfig.getoption(OPTION))


@pytest.fixture(scope="session")
def structgen_tiny_model() -> Any:
    """A tiny deterministic model: valid structure, meaningless content, loads in about a second."""
    return load_runtime("tiny")


@pytest.fixture
def structgen_runtime(request: pytest.FixtureRequest) -> Any:
    """The model of ``@pytest.mark.structgen_model(name)`` on this test, else ``structgen_model``."""
    marker = request.node.get_closest_marker(MARKER)
    if marker is None:
        return request.getfixturevalue("structgen_model")
    if len(marker.args) != 1:
        raise pytest.UsageError(f"@pytest.mark.{MARKER} takes one model name, got {marker.args!r}")
    return load_runtime(marker.args[0])
