"""docs/configuration.md is generated from the configuration dataclasses and kept up to date."""

from __future__ import annotations

import importlib.util

from .blocks import ROOT


def _generator():
    spec = importlib.util.spec_from_file_location("gen_config", ROOT / "docs" / "gen_config.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_page_is_up_to_date():
    gen = _generator()
    assert (ROOT / "docs" / "configuration.md").read_text() == gen.render(), "run: python docs/gen_config.py"


def test_every_engine_option_is_documented():
    import dataclasses

    from structgen.engine.runtime import EngineConfig

    page = (ROOT / "docs" / "configuration.md").read_text()
    for f in dataclasses.fields(EngineConfig):
        assert f"`--{f.name.replace('_', '-')}`" in page, f.name
