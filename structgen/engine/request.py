"""What goes into the engine and what comes out: ``SamplingParams``, ``GenerateRequest``,
``GenerationResult``, and ``Sequence`` (the engine's per-request cursor).

A ``GenerateRequest`` is plain data a user builds; ``SamplingParams.validate`` raises
``RequestError`` for bad options before any model work. The engine turns a request into a
``Sequence`` holding its token ids, KV bookkeeping, FSM state and sampler generator.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Sequence as Seq

from ..errors import RequestError

FINISH_REASONS = ("stop", "length", "abort")


@dataclass(frozen=True)
class SamplingParams:
    """How the next token is chosen, and when a sequence stops.

    temperature: 0 is greedy (argmax); > 0 divides the logits before sampling.
    top_k: keep the k most likely tokens (0: all). top_p: keep the smallest set of most likely
    tokens whose probability sums to >= top_p (1.0: all). min_p: drop tokens whose probability is
    below ``min_p * p_max`` (0: none). seed: a per-request generator seed; the same seed gives
    the same output whatever else is in the batch. stop: strings that end the output (checked on
    the decoded text; the output is cut before the stop string). max_tokens: most tokens
    generated. ignore_eos: keep generating after an end-of-sequence token; on a constrained row
    EOS is masked out while anything else is allowed (it still ends once the constraint is complete).
    logprobs: record the log-probability of each chosen token under the model's raw
    distribution (before temperature, filtering and the constraint mask).
    """

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False
    logprobs: bool = False

    def validate(self) -> "SamplingParams":
        """Return self, or raise ``RequestError`` naming the bad option and its allowed range."""
        _check(isinstance(self.max_tokens, int) and self.max_tokens >= 0, "max_tokens must be an int >= 0", self.max_tokens)
        _check(_real(self.temperature) and self.temperature >= 0, "temperature must be a finite number >= 0", self.temperature)
        _check(_real(self.top_p) and 0 < self.top_p <= 1, "top_p must be in (0, 1]", self.top_p)
        _check(isinstance(self.top_k, int) and self.top_k >= 0, "top_k must be an int >= 0 (0 disables it)", self.top_k)
        _check(_real(self.min_p) and 0 <= self.min_p <= 1, "min_p must be in [0, 1]", self.min_p)
        _check(self.seed is None or (isinstance(self.seed, int) and self.seed >= 0), "seed must be None or an int >= 0", self.seed)
        _check(all(isinstance(s, str) and s for s in self.stop), "stop must be a list of non-empty strings", self.stop)
        return self

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def _real(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check(ok: bool, message: str, value: Any) -> None:
    if not ok:
        raise RequestError(f"{message}, got {value!r}")


def normalize_stop(stop: str | Seq[str] | None) -> tuple[str, ...]:
    """``None`` -> (), ``"x"`` -> ("x",), a list -> a tuple."""
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,)
    return tuple(stop)


@dataclass
class GenerateRequest:
    """One generation request.

    prompt: a str (one user turn through the chat template unless ``raw``), a list of
    ``{"role", "content"}`` messages, or a list of token ids (used as is).
    constraint: None (free text), anything ``structgen.constraints.as_constraint`` accepts, or an
    already compiled ``TokenFSM``.
    score_from: internal to ``Runtime.score``: when set, the log-probabilities of the prompt
    tokens from this index on are returned in ``GenerationResult.prompt_logprobs``.
    """

    prompt: Any
    constraint: Any = None
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None
    stop: Any = ()
    ignore_eos: bool = False
    logprobs: bool = False
    raw: bool = False
    score_from: int | None = None

    def sampling(self) -> SamplingParams:
        """The validated sampling options of this request (raises ``RequestError``)."""
        options = {f.name: getattr(self, f.name) for f in dataclasses.fields(SamplingParams)}
        return SamplingParams(**{**options, "stop": _stop_tuple(self.stop)}).validate()


def _stop_tuple(stop: Any) -> tuple[str, ...]:
    if stop is not None and not isinstance(stop, (str, list, tuple)):
        raise RequestError(f"stop must be a str or a list of str, got {stop!r}")
    return normalize_stop(stop)


@dataclass
class GenerationResult:
    """The outcome of one request.

    text: the generated text (cut before a stop string; no end-of-sequence token).
    token_ids: the generated token ids (no end-of-sequence token).
    finish_reason: "stop" (EOS, stop string, or the constraint is complete), "length"
    (max_tokens reached), or "abort" (cancelled, or the engine failed).
    prompt_tokens / cached_tokens: prompt length and how many of its tokens came from the radix
    cache. completion_tokens: tokens generated (forced tokens included). forced_tokens: tokens
    appended by jump-forward. logprobs: per generated token, when requested.
    """

    text: str
    token_ids: list[int]
    finish_reason: str
    prompt_tokens: int
    cached_tokens: int = 0
    completion_tokens: int = 0
    forced_tokens: int = 0
    logprobs: list[float] | None = None
    prompt_logprobs: list[float] | None = None
    error: str | None = None


class Status(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


_ids = itertools.count()


@dataclass(eq=False)
class Sequence:
    """The engine's cursor over one request (mutated only by the engine thread).

    ``tokens`` = prompt then output. ``num_computed`` leading tokens have K/V in ``kv_slots``
    (``kv_slots[:prefix_len]`` belong to the radix cache, locked through ``prefix_node``; the
    rest are private). ``fsm_states[i]`` is the FSM state before output token ``i``.
    """

    tokens: list[int]
    prompt_len: int
    params: SamplingParams
    fsm: Any = None
    fsm_state: int = 0
    generator: Any = None
    score_from: int | None = None
    user_data: Any = None
    seq_id: int = field(default_factory=lambda: next(_ids))
    status: Status = Status.WAITING
    num_computed: int = 0
    kv_slots: Any = None
    prefix_len: int = 0
    prefix_node: Any = None
    cached_tokens: int = 0
    fsm_states: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    prompt_logprobs: list[float] = field(default_factory=list)
    forced_tokens: int = 0
    generated: int = 0
    finish_reason: str | None = None
    text: str = ""
    text_decoder: Any = None  # incremental decoder of the output (``detokenizer.py``)
    stop_string: str | None = None  # the stop string the text was cut before, if any
    error: str | None = None
    cancelled: bool = False

    @property
    def output_ids(self) -> list[int]:
        return self.tokens[self.prompt_len :]

    @property
    def num_output(self) -> int:
        return len(self.tokens) - self.prompt_len

    @property
    def finished(self) -> bool:
        return self.status is Status.FINISHED

    def result(self) -> GenerationResult:
        return GenerationResult(
            text=self.text, token_ids=list(self.output_ids), finish_reason=self.finish_reason or "abort",
            prompt_tokens=self.prompt_len, cached_tokens=self.cached_tokens, completion_tokens=self.generated,
            forced_tokens=self.forced_tokens, logprobs=list(self.logprobs) if self.params.logprobs else None,
            prompt_logprobs=list(self.prompt_logprobs) if self.score_from is not None else None, error=self.error,
        )
