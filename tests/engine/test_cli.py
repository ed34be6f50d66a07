"""The ``structgen generate`` command: flags derived from EngineConfig, output, errors."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from fake_model import FakeRunner
from structgen import api, cli
from structgen.engine.runtime import EngineConfig, Runtime


def test_every_engine_config_field_is_one_flag():
    args = cli.build_parser().parse_args(
        ["generate", "--max-batch-size", "3", "--kv-cache-tokens", "100", "--no-radix-cache", "--model", "m.gguf", "hi"]
    )
    opts = cli.config_from_args(args, EngineConfig)
    assert set(opts) == {f.name for f in dataclasses.fields(EngineConfig)}
    assert opts["max_batch_size"] == 3 and opts["kv_cache_tokens"] == 100 and opts["radix_cache"] is False
    assert opts["model_path"] == "m.gguf" and opts["jump_forward"] is True
    EngineConfig(**opts).validate()


def test_constraint_flags_are_exclusive(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["generate", "--regex", "a", "--choices", "a,b", "hi"])


@pytest.fixture()
def fake_load(monkeypatch):
    def load(model_path=None, device="auto", dtype=None, **options):
        options["kv_cache_tokens"] = 1024
        return Runtime(runner=FakeRunner(), **options)

    monkeypatch.setattr(api, "load", load)


def test_generate_prints_the_result(fake_load, capsys, tmp_path):
    assert cli.main(["generate", "--choices", "alpha,beta", "pick"]) == 0
    assert capsys.readouterr().out.strip() in ("alpha", "beta")
    schema = tmp_path / "s.json"
    schema.write_text(json.dumps({"enum": [{"ok": True}, {"ok": False}]}))
    assert cli.main(["generate", "--schema", str(schema), "--max-tokens", "40", "json"]) == 0
    assert json.loads(capsys.readouterr().out) in ({"ok": True}, {"ok": False})


def test_generate_reports_errors(fake_load, capsys):
    assert cli.main(["generate", "--regex", "[0-9]{30}", "--max-tokens", "3", "digits"]) == 1
    assert "max_tokens" in capsys.readouterr().err
    assert cli.main(["generate", "--max-tokens", "-1", "x"]) == 2
    assert "max_tokens" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_with_the_default_model():
    out = subprocess.run(
        [sys.executable, "-m", "structgen.cli", "generate", "--device", "cpu", "--choices", "yes,no", "Is fire hot?"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() in ("yes", "no")
