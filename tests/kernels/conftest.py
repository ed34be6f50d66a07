"""Fixtures for kernel tests: Triton runs natively on a GPU, through its interpreter on the CPU.

The interpreter is switched on per test with ``TRITON_INTERPRET=1`` (monkeypatched, so nothing
leaks into other tests); structgen loads its kernel modules once per interpreter mode at call
time (``kernels._backend.kernel_module``). Triton's library functions are fixed when triton is
first imported, so the root ``tests/conftest.py`` sets ``TRITON_INTERPRET=1`` on machines
without CUDA before anything imports triton.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch


@pytest.fixture
def device() -> torch.device:
    """The device kernel tests run on: CUDA when present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture
def triton_ready(monkeypatch, device) -> str:
    """Make backend='triton' runnable on ``device``; skip when triton is not installed."""
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")
    if device.type != "cuda":
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    return "triton"


@pytest.fixture
def gen() -> torch.Generator:
    """A seeded CPU generator: every random tensor in these tests is reproducible."""
    return torch.Generator().manual_seed(1234)
