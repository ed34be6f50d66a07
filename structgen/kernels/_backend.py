"""Backend choice and input validation shared by every kernel entry point.

``backend`` is one of:

* ``"auto"``: Triton when the tensors live on a CUDA device and ``triton`` imports, the torch
  reference otherwise (so a CPU run never needs Triton);
* ``"torch"``: the plain-torch reference, on any device;
* ``"triton"``: the Triton kernel. It needs CUDA tensors, or ``TRITON_INTERPRET=1`` in the
  environment (the Triton interpreter then runs the kernel on CPU tensors, slowly — for tests).

Triton is imported lazily. The ``@triton.jit`` kernels live in ``_triton_*.py`` modules loaded
through :func:`kernel_module`, once per interpreter mode, because ``triton.jit`` decides at
decoration time whether a kernel is interpreted.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Iterable
from types import ModuleType

import torch

from structgen.errors import KernelDtypeError, KernelInputError

BACKENDS = ("auto", "torch", "triton")
INT_DTYPES = (torch.int32, torch.int64)
FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def interpret_mode() -> bool:
    """True when ``TRITON_INTERPRET`` asks Triton to interpret kernels on the CPU."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on", "yes")


@functools.cache
def triton_available() -> bool:
    """True when the ``triton`` package can be imported (it is not imported here)."""
    return importlib.util.find_spec("triton") is not None


def resolve_backend(backend: str, device: torch.device) -> str:
    """Return ``"torch"`` or ``"triton"`` for tensors on ``device``; raise if that cannot run.

    Raises:
        KernelInputError: unknown backend name, or ``"triton"`` asked for where it cannot run.
    """
    if backend not in BACKENDS:
        raise KernelInputError(f"unknown kernel backend {backend!r}; use one of {BACKENDS}")
    if backend == "torch":
        return "torch"
    usable = triton_available() and (device.type == "cuda" or interpret_mode())
    if backend == "auto":
        return "triton" if usable and device.type == "cuda" else "torch"
    if not triton_available():
        raise KernelInputError("backend='triton' needs the triton package: pip install triton, or use backend='auto'")
    if not usable:
        raise KernelInputError(
            f"backend='triton' needs CUDA tensors (got {device}); move the tensors to a GPU, "
            "set TRITON_INTERPRET=1 to interpret on the CPU (slow, for tests), or use backend='auto'"
        )
    return "triton"


def kernel_module(name: str) -> ModuleType:
    """Import the Triton kernel module ``name`` (e.g. ``"structgen.kernels._triton_mask"``).

    The module is executed once per interpreter mode (``TRITON_INTERPRET``), since ``triton.jit``
    fixes at decoration time whether a kernel is interpreted; a process that flips the variable
    gets kernels of the mode in force at call time. Triton's own library functions (``tl.max``,
    ``tl.sum``...) are fixed when triton is first imported, so interpreting needs
    ``TRITON_INTERPRET=1`` set before that import; otherwise ``KernelInputError`` says so.
    """
    return _load_kernel_module(name, interpret_mode())


@functools.cache
def _load_kernel_module(name: str, interpret: bool) -> ModuleType:
    if interpret:
        _check_library_interpreted()
        _fix_interpreter_scalar_index()
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"no kernel module {name}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_library_interpreted() -> None:
    """Raise ``KernelInputError`` when triton was imported before ``TRITON_INTERPRET=1`` was set:
    its library functions are then compiled-mode objects that interpreted kernels cannot call."""
    import triton.language.standard as standard
    from triton.runtime.interpreter import InterpretedFunction

    if not isinstance(standard.max, InterpretedFunction):
        raise KernelInputError(
            "TRITON_INTERPRET=1 was set after triton was imported; set it before the first "
            "`import triton` (e.g. at the top of conftest.py or in the environment)"
        )


def _fix_interpreter_scalar_index() -> None:
    """Let interpreted kernels loop over ``range(scalar_tensor)`` with numpy >= 2.4.

    Triton's interpreter keeps scalars as size-1 arrays and converts them with ``int(array)``,
    which numpy 2.4 rejects for arrays of one dimension; take the single element instead.
    """
    from triton.runtime import interpreter

    original = interpreter._patch_lang_tensor
    if getattr(original, "fixes_scalar_index", False):
        return

    def patched(tensor, scope):
        original(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.reshape(-1)[0]))

    patched.fixes_scalar_index = True
    interpreter._patch_lang_tensor = patched


def check_tensor(
    name: str,
    t: object,
    *,
    ndim: int,
    dtypes: Iterable[torch.dtype],
    device: torch.device | None = None,
) -> torch.Tensor:
    """Validate one kernel argument; return it unchanged.

    Raises:
        KernelDtypeError: not a tensor, or a dtype outside ``dtypes``.
        KernelInputError: wrong number of dimensions, or not on ``device``.
    """
    dtypes = tuple(dtypes)
    if not isinstance(t, torch.Tensor):
        raise KernelDtypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in dtypes:
        want = " or ".join(str(d) for d in dtypes)
        raise KernelDtypeError(f"{name} must have dtype {want}, got {t.dtype}; convert it with {name}.to({dtypes[0]})")
    if t.dim() != ndim:
        raise KernelInputError(f"{name} must have {ndim} dimensions, got shape {tuple(t.shape)}")
    if device is not None and t.device != device:
        raise KernelInputError(
            f"{name} is on {t.device} but the other inputs are on {device}; move it with {name}.to({str(device)!r})"
        )
    return t


def check_rows(name: str, t: torch.Tensor, rows: int, what: str) -> None:
    """Raise KernelInputError unless ``t.shape[0] == rows`` (``what`` names where ``rows`` comes from)."""
    if t.shape[0] != rows:
        raise KernelInputError(f"{name} has {t.shape[0]} rows but {what} has {rows}; pass one row per {what} row")


def check_last_dim_contiguous(name: str, t: torch.Tensor) -> None:
    """Raise KernelInputError unless the last dimension of ``t`` has stride 1 (Triton indexes it densely)."""
    if t.numel() > 0 and t.stride(-1) != 1:
        raise KernelInputError(f"{name} must be contiguous in its last dimension; pass {name}.contiguous()")
