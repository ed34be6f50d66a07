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
    from triton.runtime.interpreter import InterpretedFunction

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    compiled = kernel_module("structgen.kernels._triton_fsm")
    assert isinstance(compiled.advance, triton.runtime.JITFunction)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    interpreted = kernel_module("structgen.kernels._triton_fsm")
    assert isinstance(interpreted.advance, InterpretedFunction)
    assert kernel_module("structgen.kernels._triton_fsm") is interpreted  # built once per mode
