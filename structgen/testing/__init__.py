"""Testing code that depends on structured model output: a pytest plugin and helpers.

The plugin (``structgen.testing.plugin``, registered through the ``pytest11`` entry point, or
``-p structgen.testing.plugin``) provides the fixtures ``structgen_model``, ``structgen_runtime``
and ``structgen_tiny_model``, the ``--structgen-model`` option and the
``@pytest.mark.structgen_model(...)`` marker; see docs/pytest.md.

    from structgen.testing import assert_valid
    assert_valid(output, Person)      # pydantic class, JSON Schema dict, Regex, Choice
"""

from __future__ import annotations

from .asserts import assert_valid
from .tiny import build_tiny_runtime, tiny_runtime

__all__ = ["assert_valid", "build_tiny_runtime", "tiny_runtime"]
