"""Backend choice and the per-interpreter-mode loading of Triton kernels."""

from __future__ import annotations

import pytest
import torch

from structgen.errors import KernelInputError
from structgen.kernels import apply_token_bitmask_, resolve_backend
from structgen.kernels._backend import kernel_module


def test_auto_backend_is_torch_on_cpu_and_unknown_backends_are_rejected(monkeypatch):
    assert resolve_backend("auto", torch.device("cpu")) == "torch"
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert resolve_backend("auto", torch.device("cpu")) == "torch"
    with pytest.raises(ValueError, match="use one of"):
        resolve_backend("cuda", torch.device("cpu"))


def test_triton_backend_on_cpu_without_interpreter_says_how_to_fix(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(KernelInputError, match="TRITON_INTERPRET=1"):
        apply_token_bitmask_(torch.zeros(1, 32), torch.zeros(1, 1, dtype=torch.int32), backend="triton")


def test_kernels_follow_the_interpreter_switch_even_after_triton_was_imported(monkeypatch):
    triton = pytest.importorskip("triton")
    from triton.language import standard
    from triton.runtime.interpreter import InterpretedFunction

    if not isinstance(standard.max, InterpretedFunction):
        pytest.skip("triton was imported in compiled mode (a CUDA machine): this process cannot interpret kernels")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    compiled = kernel_module("structgen.kernels._triton_fsm")
    assert isinstance(compiled.advance, triton.runtime.JITFunction)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    interpreted = kernel_module("structgen.kernels._triton_fsm")
    assert isinstance(interpreted.advance, InterpretedFunction)
    assert kernel_module("structgen.kernels._triton_fsm") is interpreted  # built once per mode


def test_interpreting_after_a_compiled_mode_import_is_a_clear_error():
    """A process that imported triton before setting TRITON_INTERPRET=1 gets an error that says the fix."""
    import subprocess
    import sys

    code = (
        "import os, triton, torch\n"
        "os.environ['TRITON_INTERPRET'] = '1'\n"
        "from structgen.kernels.mask import apply_token_bitmask_\n"
        "from structgen.errors import KernelInputError\n"
        "try:\n"
        "    apply_token_bitmask_(torch.zeros(1, 32), torch.zeros(1, 1, dtype=torch.int32), backend='triton')\n"
        "except KernelInputError as e:\n"
        "    print('clear:', 'before the first' in str(e))\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert "clear: True" in out.stdout, out.stderr[-2000:]
