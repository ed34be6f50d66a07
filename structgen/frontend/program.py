"""``@function``: a Python function ``def f(s, **args)`` becomes a program with ``run``/``run_batch``.

Sampling defaults passed to ``run``/``run_batch`` (SGLang's names: ``max_new_tokens``, ``stop``,
``temperature``, ``top_p``, ``top_k``, ``min_p``, ``ignore_eos``; also ``max_tokens`` and
``seed``) apply to every ``gen`` that does not set them. Unlike SGLang (temperature 1.0) the
default is greedy decoding, so a program's output is reproducible.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import ProgramError
from .backends import resolve_backend
from .interpreter import Executor, ProgramContext
from .state import ProgramState

_SAMPLING_ARGS = ("max_new_tokens", "max_tokens", "stop", "temperature", "top_p", "top_k", "min_p", "ignore_eos", "seed")
_REJECTED_ARGS = ("stop_token_ids", "frequency_penalty", "presence_penalty", "return_logprob", "logprob_start_len",
                  "top_logprobs_num", "return_text_in_logprobs")
_DEFAULTS = {"max_tokens": 128, "temperature": 0.0, "top_p": 1.0, "top_k": 0, "min_p": 0.0, "stop": (),
             "ignore_eos": False}


class Program:
    """A structured-generation program; call ``run`` (or the object itself) to execute it."""

    def __init__(self, func: Callable):
        self.func = func
        functools.update_wrapper(self, func)
        params = list(inspect.signature(func).parameters.values())
        if not params:
            raise ProgramError(f"program {func.__name__!r} must take the state as its first parameter: def f(s, ...)")
        named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        self.arg_names = [p.name for p in params[1:] if p.kind in named]

    def __call__(self, *args: Any, **kwargs: Any) -> ProgramState:
        return self.run(*args, **kwargs)

    def _split_kwargs(self, kwargs: dict) -> tuple[dict, dict]:
        """(program arguments, sampling defaults); a program's own parameter names win."""
        sampling, prog = {}, {}
        for k, v in kwargs.items():
            if k in self.arg_names or k not in _SAMPLING_ARGS + _REJECTED_ARGS:
                prog[k] = v
            elif k in _REJECTED_ARGS:
                if v not in (None, 0, 0.0, False, [], ()):
                    raise ProgramError(f"run({k}=...) is not supported by structgen; set it per gen() where supported")
            elif v is not None:
                sampling["max_tokens" if k == "max_new_tokens" else k] = v
        if "top_k" in sampling and sampling["top_k"] < 0:
            sampling["top_k"] = 0
        return prog, {**_DEFAULTS, **sampling}

    def run(self, *args: Any, runtime: Any = None, backend: Any = None, stream: bool = False,
            **kwargs: Any) -> ProgramState:
        """Run the program and return its state (after all its generations finished).

        ``runtime`` (or SGLang's ``backend``): a ``Runtime``/``RemoteRuntime``; default: the one set
        with ``set_default_backend``. ``stream=True`` returns at once while the program runs on a
        thread; iterate ``state.text_iter()`` for the text as it is generated. Raises the first
        error any state of the program hit (``ProgramError``, ``GenerationError``, a
        ``ConstraintError``...), annotated with the program line.
        """
        prog_kwargs, defaults = self._split_kwargs(kwargs)
        ctx = ProgramContext(self.func.__name__, resolve_backend(runtime or backend), defaults, stream)
        state = ProgramState(Executor(ctx))
        if stream:
            threading.Thread(target=self._run_streaming, args=(state, args, prog_kwargs), daemon=True).start()
            return state
        self._execute(state, args, prog_kwargs)
        ctx.sync_all()
        return state

    def _execute(self, state: ProgramState, args: tuple, kwargs: dict) -> None:
        ctx = state._ex.ctx
        try:
            state.ret_value = self.func(state, *args, **kwargs)
        finally:
            ctx.returned = True
            state._ex._notify()

    def _run_streaming(self, state: ProgramState, args: tuple, kwargs: dict) -> None:
        try:
            self._execute(state, args, kwargs)
        except BaseException as e:  # noqa: BLE001 - surfaced by text_iter / sync through the context
            state._ex.ctx.record_error(e)

    def run_batch(self, batch_kwargs: list, *, runtime: Any = None, backend: Any = None,
                  num_threads: Any = "auto", progress_bar: bool = False, **sampling: Any) -> list:
        """Run the program once per item of ``batch_kwargs`` (dicts of arguments, or argument tuples).

        Programs run on a thread pool (``num_threads``; "auto": one thread per program, at most
        128), so their requests reach the runtime together and are batched. Returns the states in
        input order; raises the first error of any program.
        """
        if not isinstance(batch_kwargs, (list, tuple)):
            raise ProgramError("run_batch takes a list of argument dicts")
        items = [self._as_kwargs(b) for b in batch_kwargs]
        if not items:
            return []
        backend_obj = resolve_backend(runtime or backend)
        workers = min(len(items), 128) if num_threads == "auto" else max(1, int(num_threads))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="structgen-batch") as pool:
            futures = [pool.submit(self.run, runtime=backend_obj, **{**sampling, **kw}) for kw in items]
            if progress_bar:
                _progress(futures)
            return [f.result() for f in futures]

    def _as_kwargs(self, item: Any) -> dict:
        if isinstance(item, dict):
            return item
        if isinstance(item, (list, tuple)) and len(item) <= len(self.arg_names):
            return dict(zip(self.arg_names, item))
        raise ProgramError(f"run_batch item {item!r} does not match the arguments {self.arg_names}")


def _progress(futures: list) -> None:
    from concurrent.futures import as_completed

    from tqdm import tqdm

    for _ in tqdm(as_completed(futures), total=len(futures)):
        pass


def function(func: Callable | None = None, num_api_spec_tokens: int | None = None) -> Any:
    """Decorator: ``@function`` or ``@function()`` turns ``def f(s, ...)`` into a ``Program``."""
    if num_api_spec_tokens is not None:
        raise ProgramError("function(num_api_spec_tokens=...) is not supported: structgen has no API speculation")
    if func is not None:
        return Program(func)
    return Program
