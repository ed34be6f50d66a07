"""``Runtime``: the in-process engine every front end talks to.

A background thread owns the ``Engine`` (model runner, KV pool, radix cache, scheduler) and
loops ``add pending requests -> step`` while there is work, so requests submitted from any
thread join the running batch between steps (continuous batching). ``submit`` validates a
request, tokenises its prompt and compiles its constraint in the caller's thread — so bad
options, prompts and constraints raise there, before any model work — and returns a
``RequestHandle``.

On the CPU, ``generate`` and ``score`` called from the main thread run the engine's steps in that
thread while they wait (``_drive``; the background thread stays parked meanwhile). PyTorch's
OpenMP pool of the main thread already exists (the model is loaded there); a second thread running
parallel regions makes a second pool, and with more pool threads than cores libgomp stops spinning
between parallel regions, so every region pays a thread wake-up: on a 2-core machine a decode step
ran ~1.8x slower in the background thread, and other torch work of the process slowed down as long
as that thread lived. One thread steps at a time (``_step_lock``). For the same reason a thread
that stops stepping on the CPU frees its OpenMP pool (``omp_pool.release_thread_pool``): the
thread that built the Runtime (it loaded the model), the background thread when it parks, and a
main thread that drove steps once the background thread has stepped too (a server, requests from
other threads): only the thread decoding holds a pool.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import RequestError
from .engine import Engine
from .handle import RequestHandle
from .omp_pool import release_thread_pool
from .prompts import encode_prompt, is_prompt_list
from .request import GenerateRequest, GenerationResult

log = logging.getLogger(__name__)

CPU_DEFAULT_KV_TOKENS = 16384
GPU_KV_MEMORY_FRACTION = 0.5
GPU_MAX_KV_TOKENS = 1 << 20


@dataclass(frozen=True)
class EngineConfig:
    """Engine options; every field is one ``structgen`` CLI flag (``--max-batch-size`` ...)."""

    model_path: str | None = field(default=None, metadata={"help": "model folder, .gguf file or hub id (default: the embedded SmolLM2-135M-Instruct)"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda, cuda:N or auto"})
    dtype: str | None = field(default=None, metadata={"help": "float32, bfloat16 or float16 (default: bfloat16 on CUDA and on CPUs with native bfloat16, else float32; on the CPU in bfloat16, 4-bit GGUF Q4_1 weights stay 4-bit)"})
    max_batch_size: int = field(default=64, metadata={"help": "most sequences decoded together"})
    kv_cache_tokens: int | None = field(default=None, metadata={"help": "KV cache size in tokens (default: 16384 on CPU, half the free GPU memory on CUDA)"})
    chunked_prefill_size: int = field(default=2048, metadata={"help": "most prompt tokens prefilled per step"})
    radix_cache: bool = field(default=True, metadata={"help": "reuse the KV of shared prompt prefixes"})
    jump_forward: bool = field(default=True, metadata={"help": "append tokens a constraint forces without a forward pass each"})
    cuda_graphs: bool = field(default=True, metadata={"help": "replay decode-only steps from CUDA graphs captured per batch-size bucket (CUDA only)"})

    def validate(self) -> "EngineConfig":
        for name in ("max_batch_size", "chunked_prefill_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise RequestError(f"{name} must be an int >= 1, got {v!r}")
        if self.kv_cache_tokens is not None and (not isinstance(self.kv_cache_tokens, int) or self.kv_cache_tokens < 2):
            raise RequestError(f"kv_cache_tokens must be an int >= 2, got {self.kv_cache_tokens!r}")
        return self


def make_config(**options: Any) -> EngineConfig:
    """An ``EngineConfig`` from keyword options; ``RequestError`` naming any unknown option."""
    known = {f.name for f in fields(EngineConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise RequestError(f"unknown engine option(s) {unknown}; known: {sorted(known)}")
    return EngineConfig(**options).validate()


class Runtime:
    """Loads a model and serves generation requests from a background engine thread.

        rt = Runtime()                                   # the embedded default model
        [res] = rt.generate("Name a colour.", max_tokens=8)
        h = rt.submit(GenerateRequest("Hi", max_tokens=16)); h.result().text

    ``runner``: an already loaded model runner (``model_path``/``device``/``dtype`` are then unused).
    """

    def __init__(self, model_path: str | None = None, *, device: str = "auto", dtype: Any = None,
                 runner: Any = None, **options: Any):
        self.config = make_config(model_path=None if model_path is None else str(model_path), device=device,
                                  dtype=None if dtype is None else str(dtype).replace("torch.", ""), **options)
        if runner is None:
            from .loader import load_model

            runner = load_model(model_path, device=device, dtype=dtype)
        self.runner = runner
        c = self.config
        self.engine = Engine(runner, kv_cache_tokens=c.kv_cache_tokens or _auto_kv_tokens(runner),
                             max_batch_size=c.max_batch_size, chunked_prefill_size=c.chunked_prefill_size,
                             radix_cache=c.radix_cache, jump_forward=c.jump_forward, cuda_graphs=c.cuda_graphs,
                             max_context=getattr(runner.config, "max_position_embeddings", None))
        self._vocab = None
        self._vocab_lock = threading.Lock()
        self._cv = threading.Condition()
        self._inbox: list[tuple[RequestHandle, list[int], Any, Any, int | None]] = []
        self._closing = False
        self._step_lock = threading.Lock()  # held by whichever thread runs an engine step
        self._drivers = 0  # callers stepping the engine themselves (see _drive); the loop parks meanwhile
        self._cpu = getattr(getattr(runner, "device", None), "type", "cpu") == "cpu"
        self._caller_steps = self._cpu
        self._background_stepped = False  # the background thread has run a step (see _driving)
        if self._cpu:  # loading ran torch operators here; the thread that decodes makes its own pool
            release_thread_pool()
        self._thread = threading.Thread(target=self._loop, name="structgen-engine", daemon=True)
        self._thread.start()

    # ---- public API ----------------------------------------------------------------------------
    @property
    def tokenizer(self):
        return self.runner.tokenizer

    def submit(self, request: GenerateRequest) -> RequestHandle:
        """Queue ``request`` (thread-safe); raises ``RequestError``/``ConstraintError`` before any model work."""
        if self._closing:
            raise RequestError("this Runtime was shut down")
        params = request.sampling()
        ids = encode_prompt(self.tokenizer, request.prompt, raw=request.raw)
        if request.score_from is not None and not 1 <= request.score_from <= len(ids):
            raise RequestError(f"score_from must be in [1, {len(ids)}], got {request.score_from}")
        self.engine.scheduler.check_fits(len(ids), params.max_tokens)
        fsm = self.compile(request.constraint)
        handle = RequestHandle(self, params.stop)
        with self._cv:
            self._inbox.append((handle, ids, params, fsm, request.score_from))
            self._cv.notify()
        return handle

    def compile(self, constraint: Any):
        """The ``TokenFSM`` of ``constraint`` for this model (None for None; a TokenFSM as is)."""
        if constraint is None or (hasattr(constraint, "mask") and hasattr(constraint, "next_state")):
            return constraint
        from .. import fsm

        return fsm.compile(constraint, self.vocabulary)

    @property
    def vocabulary(self):
        """The exact byte vocabulary constraints are compiled against (built once)."""
        with self._vocab_lock:
            if self._vocab is None:
                self._vocab = getattr(self.runner, "vocabulary", None)
            if self._vocab is None:
                from ..fsm.vocabulary import Vocabulary

                size = max(int(self.runner.config.vocab_size), len(self.tokenizer))
                self._vocab = Vocabulary.from_tokenizer(self.tokenizer, vocab_size=size)
            return self._vocab

    def generate(self, prompts: Any, constraint: Any = None, **sampling: Any) -> list[GenerationResult]:
        """Generate for one prompt or a list of prompts, as one batch; results in prompt order."""
        batch = prompts if is_prompt_list(prompts) else [prompts]
        GenerateRequest(None, **sampling).sampling()  # RequestError before any request is queued
        fsm = self.compile(constraint)
        with self._driving() as drive:
            handles = [self.submit(GenerateRequest(p, constraint=fsm, **sampling)) for p in batch]
            drive(handles)
        return [h.result() for h in handles]

    def score(self, prefix: Any, continuations: list[str], raw: bool = True) -> list[float]:
        """Sum of the log-probabilities of each continuation's tokens after ``prefix``.

        ``prefix`` is tokenised like a prompt (``raw=False``: through the chat template); each
        continuation is tokenised on its own and appended. All are prefilled in one batch and
        share the prefix's K/V through the radix cache.
        """
        prefix_ids = encode_prompt(self.tokenizer, prefix, raw=raw)
        handles = []
        with self._driving() as drive:
            for cont in continuations:
                cont_ids = list(self.tokenizer.encode(cont, add_special_tokens=False))
                req = GenerateRequest(prefix_ids + cont_ids, max_tokens=0,
                                      score_from=len(prefix_ids) if cont_ids else None)
                handles.append(self.submit(req))
            drive(handles)
        return [sum(h.result().prompt_logprobs or []) for h in handles]

    def stats(self) -> dict[str, int]:
        """Counters: prompt_tokens, cached_prompt_tokens, generated_tokens, forced_tokens, preemptions..."""
        return self.engine.stats()

    def shutdown(self) -> None:
        """Stop the engine thread; requests still in flight finish with reason "abort"."""
        with self._cv:
            self._closing = True
            self._cv.notify()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()
            self.engine.close()

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    # ---- engine thread -------------------------------------------------------------------------
    def _wake(self) -> None:
        with self._cv:
            self._cv.notify()

    def _has_background_work(self) -> bool:  # the caller holds _cv
        return self._closing or (not self._drivers and bool(self._inbox or self.engine.has_unfinished()))

    def _loop(self) -> None:
        stepped = False  # since this thread last parked
        while True:
            with self._cv:
                idle = not self._has_background_work()
            if idle and stepped and self._cpu:  # parking: free this thread's OpenMP pool
                release_thread_pool()
                stepped = False
            with self._cv:
                while not self._has_background_work():
                    self._cv.wait()
            with self._step_lock:
                if not self._step_once():
                    return
            stepped = self._background_stepped = True

    def _step_once(self) -> bool:
        """Admit pending requests and run one engine step (the caller holds ``_step_lock``).

        Returns False, after aborting every request, once the runtime is shutting down.
        """
        with self._cv:
            pending, self._inbox = self._inbox, []
            closing = self._closing
        self._admit(pending)
        if closing:
            self._abort_all("this Runtime was shut down")
            return False
        try:
            updated = self.engine.step()
        except Exception as e:  # noqa: BLE001 - any failure must reach the waiting callers
            log.exception("engine step failed")
            self._fail_all(e)
            return True
        for seq in updated:
            seq.user_data._update(seq)
        return True

    @contextlib.contextmanager
    def _driving(self):
        """Yields ``drive(handles)``: step the engine in this thread until the handles are done.

        Only on the CPU and from the main thread (see the module docstring); elsewhere ``drive``
        returns at once and the background thread does the work. Entering before submitting keeps
        the background thread from taking the new requests first.
        """
        if not (self._caller_steps and threading.current_thread() is threading.main_thread()):
            yield lambda handles: None
            return
        with self._cv:
            self._drivers += 1
        try:
            yield self._drive
        finally:
            if self._background_stepped:  # requests come from other threads too: leave them the cores
                release_thread_pool()
            with self._cv:
                self._drivers -= 1
                self._cv.notify()

    def _drive(self, handles: list[RequestHandle]) -> None:
        while not all(h.done() for h in handles):
            with self._step_lock:
                with self._cv:
                    idle = not self._inbox and not self.engine.has_unfinished()
                    if self._closing or idle:  # the background thread aborts what is left on closing
                        return
                if all(h.done() for h in handles):
                    return
                try:
                    self._step_once()
                except BaseException as e:  # e.g. KeyboardInterrupt mid-step: the engine state is unknown
                    self._fail_all(e)
                    raise

    def _admit(self, pending) -> None:
        for handle, ids, params, fsm, score_from in pending:
            try:
                seq = self.engine.add_request(ids, params, fsm, score_from=score_from, user_data=handle)
            except Exception as e:  # noqa: BLE001 - the caller gets the error, the engine goes on
                handle._fail(e)
                continue
            handle._attach(seq)

    def _abort_all(self, why: str) -> None:
        for seq in self.engine.abort_all(why):
            seq.user_data._update(seq)

    def _fail_all(self, error: BaseException) -> None:
        try:
            seqs = self.engine.abort_all(f"engine failure: {error}")
        except Exception:  # noqa: BLE001 - the engine is broken; still fail every caller
            log.exception("could not release the sequences of a failed step")
            seqs = self.engine.forget_all()
        for seq in seqs:
            seq.user_data._fail(error)


def _auto_kv_tokens(runner: Any) -> int:
    """KV pool size when not given: a fixed size on CPU, half the free memory on a GPU."""
    import torch

    device = getattr(runner, "device", torch.device("cpu"))
    if getattr(device, "type", "cpu") != "cuda":
        return CPU_DEFAULT_KV_TOKENS
    free, _ = torch.cuda.mem_get_info(device)
    per_slot = runner.kv_bytes_per_slot()
    return int(max(1024, min(GPU_MAX_KV_TOKENS, free * GPU_KV_MEMORY_FRACTION // per_slot)))
