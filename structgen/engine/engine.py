"""``Engine``: batched constrained decoding as three verbs — ``add_request``, ``step``,
``has_unfinished`` — over a model runner, a KV pool, a radix cache and a scheduler.

Each ``step``: the scheduler picks chunks (decode tokens, prefill chunks, recomputation after
preemption or jump-forward); one forward pass computes them (on CUDA, a decode-only step replays
a captured graph: ``graph_runner.py``); constrained rows are masked in one batched op from their
FSM states' bitmask rows; the sampler picks a token per row; each sequence's FSM state advances;
finished sequences release their slots to the radix cache.

Jump-forward: when the automaton admits exactly one continuation (``fsm.forced_bytes``), its
bytes are appended without a forward pass per token. The last few generated tokens and the
forced text are re-tokenised together so the model sees natural tokens; replaced tokens have
their K/V recomputed in the next step.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .detokenizer import make_text_decoder
from .jump_forward import plan_jump, token_bytes
from .request import SamplingParams, Sequence
from .sampler import make_generator, mask_logits_, sample
from .scheduler import Chunk, Scheduler

log = logging.getLogger(__name__)


@dataclass
class EngineStats:
    """Counters since the engine started."""

    requests: int = 0
    finished: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    generated_tokens: int = 0
    forced_tokens: int = 0
    forward_tokens: int = 0
    steps: int = 0
    step_seconds: float = 0.0  # wall time of every step that ran a batch, summed


class Engine:
    """Owns the KV pool, the scheduler and every live ``Sequence``; not thread-safe."""

    def __init__(self, runner: Any, *, kv_cache_tokens: int, max_batch_size: int = 64,
                 chunked_prefill_size: int = 2048, radix_cache: bool = True, jump_forward: bool = True,
                 max_context: int | None = None, cuda_graphs: bool = True):
        """``cuda_graphs``: on a CUDA model, decode-only steps go through ``self.graph_runner`` (a
        ``DecodeGraphRunner``; None otherwise). Any ``DecodeGraphRunner`` over ``self.pool`` may be
        assigned there, e.g. one with ``use_graphs=False`` running the same path eagerly on the CPU."""
        self.runner = runner
        self.tokenizer = runner.tokenizer
        self.pool = runner.new_kv_pool(kv_cache_tokens)
        self.graph_runner = None
        if cuda_graphs and _on_cuda(runner):
            from .graph_runner import DecodeGraphRunner

            self.graph_runner = DecodeGraphRunner(runner, self.pool, max_batch_size=max_batch_size,
                                                  max_context=max_context or runner.config.max_position_embeddings)
        self.scheduler = Scheduler(self.pool, max_batch_size=max_batch_size, chunked_prefill_size=chunked_prefill_size,
                                   radix_cache=radix_cache, max_context=max_context)
        self.jump_forward = jump_forward
        self.eos_token_ids = frozenset(_eos_ids(runner))
        self.counters = EngineStats()
        self._live: dict[int, Sequence] = {}
        self._done: list[Sequence] = []
        self._pool_exec: ThreadPoolExecutor | None = None
        self._recent_steps: deque[float] = deque(maxlen=1024)  # seconds, for step-time quantiles

    # ---- the three verbs ---------------------------------------------------------------------
    def add_request(self, prompt_ids: list[int], params: SamplingParams, fsm: Any = None, *,
                    score_from: int | None = None, user_data: Any = None) -> Sequence:
        """Queue a tokenised request; returns its ``Sequence`` (``RequestError`` if it can never fit)."""
        seq = Sequence(tokens=list(prompt_ids), prompt_len=len(prompt_ids), params=params, fsm=fsm,
                       score_from=score_from, user_data=user_data)
        seq.text_decoder = make_text_decoder(token_bytes(fsm), self.tokenizer)
        if fsm is not None:
            seq.fsm_state = fsm.initial_state
        if not params.greedy:
            seq.generator = make_generator(params.seed)
        self.scheduler.add(seq)
        self._live[seq.seq_id] = seq
        self.counters.requests += 1
        self.counters.prompt_tokens += seq.prompt_len
        if fsm is not None and params.max_tokens > 0:
            self._jump(seq)
            self._check_done(seq)
        if seq.finish_reason is not None:
            self._finish(seq, seq.finish_reason)
        return seq

    @torch.inference_mode()
    def step(self) -> list[Sequence]:
        """Run one batch; returns the sequences that produced output or finished in it."""
        out = self._take_done()
        for seq in [s for s in self._live.values() if s.cancelled and not s.finished]:
            self._finish(seq, "abort")
        out += self._take_done()
        chunks = self.scheduler.schedule()
        if not chunks:
            return out
        self.counters.steps += 1
        started = time.perf_counter()
        batch, sample_chunks, score_rows = self._build_batch(chunks)
        warm = self._warm_masks([c.seq for c in sample_chunks if c.seq.fsm is not None])
        try:
            logits = self._forward(batch)  # [n, V] float32
        except Exception:
            self.scheduler.rollback(chunks)
            raise
        finally:
            if warm is not None:
                warm.result()
        self.scheduler.commit(chunks)
        self._score(logits, score_rows)
        sampled = [c.seq for c in sample_chunks]
        if sampled:
            self._sample(logits[: len(sampled)], sampled)
        for c in chunks:
            s = c.seq
            if s.finish_reason is None and s.params.max_tokens == 0 and s.num_computed == len(s.tokens):
                self._finish(s, "length")
        elapsed = time.perf_counter() - started
        self.counters.step_seconds += elapsed
        self._recent_steps.append(elapsed)
        return out + [s for s in sampled if not s.finished] + self._take_done()

    def has_unfinished(self) -> bool:
        return bool(self._live) or bool(self._done)

    # ---- control -----------------------------------------------------------------------------
    def abort(self, seq: Sequence) -> None:
        """Finish ``seq`` with reason "abort" now (its slots are released)."""
        if not seq.finished:
            self._finish(seq, "abort")

    def close(self) -> None:
        """Stop the helper thread (a later step that needs it starts a new one)."""
        if self._pool_exec is not None:
            self._pool_exec.shutdown(wait=True)
            self._pool_exec = None

    def abort_all(self, error: str | None = None) -> list[Sequence]:
        """Abort every live sequence; returns them and any finished ones not yet returned by ``step``."""
        for seq in list(self._live.values()):
            seq.error = error
            self._finish(seq, "abort")
        return self._take_done()

    def forget_all(self) -> list[Sequence]:
        """Drop every live sequence without releasing its slots (after an unrecoverable failure)."""
        seqs = list(self._live.values()) + self._take_done()
        self._live.clear()
        return seqs

    def stats(self) -> dict[str, Any]:
        """Counters since start (ints), plus ``step_time_s``: ``count``/``sum`` over every step
        and ``p50``/``p90``/``p99`` over the last 1,024 steps, in seconds."""
        c = self.counters
        radix = self.scheduler.radix
        return {
            "step_time_s": self._step_time_summary(),
            "requests": c.requests, "finished": c.finished, "prompt_tokens": c.prompt_tokens,
            "cached_prompt_tokens": c.cached_prompt_tokens, "generated_tokens": c.generated_tokens,
            "forced_tokens": c.forced_tokens, "preemptions": self.scheduler.preemptions,
            "forward_tokens": c.forward_tokens, "steps": c.steps, "running": len(self.scheduler.running),
            "waiting": len(self.scheduler.waiting), "kv_slots_total": self.pool.num_slots,
            "kv_slots_free": self.pool.num_free, "radix_cached_tokens": radix.total_size if radix else 0,
        }

    def _step_time_summary(self) -> dict[str, float]:
        out = {"count": self.counters.steps, "sum": self.counters.step_seconds}
        if self._recent_steps:
            q = np.quantile(np.fromiter(self._recent_steps, dtype=np.float64), [0.5, 0.9, 0.99])
            out.update(p50=float(q[0]), p90=float(q[1]), p99=float(q[2]))
        return out

    # ---- one step, in pieces -------------------------------------------------------------------
    def _build_batch(self, chunks: list[Chunk]):
        """A ``ForwardBatch``: sampled rows first (one per sampling chunk), then score rows."""
        from .model_runner import ForwardBatch

        ids, pos, kv, lens, sample_rows, sample_chunks, score_rows = [], [], [], [], [], [], []
        total = 0
        for c in chunks:
            s = c.seq
            ids.extend(s.tokens[c.start : c.end])
            pos.extend(range(c.start, c.end))
            c.context = torch.cat([s.kv_slots, c.out_slots])  # [end]; commit() keeps it as seq.kv_slots
            kv.append(c.context)
            lens.append(c.size)
            if c.end == len(s.tokens) and s.params.max_tokens > 0:
                sample_rows.append(total + c.size - 1)
                sample_chunks.append(c)
            if s.score_from is not None:
                for p in range(max(c.start, s.score_from - 1), min(c.end, len(s.tokens) - 1)):
                    score_rows.append((total + p - c.start, s, s.tokens[p + 1]))
            total += c.size
        self.counters.forward_tokens += total
        rows = sample_rows + [r for r, _, _ in score_rows]
        batch = ForwardBatch(
            input_ids=torch.tensor(ids, dtype=torch.long), positions=torch.tensor(pos, dtype=torch.long),
            out_slots=torch.cat([c.out_slots for c in chunks]), seq_lens=lens, kv_slots=kv,
            logits_rows=torch.tensor(rows, dtype=torch.long),
        )
        return batch, sample_chunks, [(len(sample_rows) + k, s, t) for k, (_, s, t) in enumerate(score_rows)]

    def _forward(self, batch) -> torch.Tensor:
        """The batch's logits: through the graph runner when it holds the batch, else ``runner.forward``."""
        if self.graph_runner is not None:
            logits = self.graph_runner.forward(batch, self.pool)
            if logits is not None:
                return logits
        return self.runner.forward(batch, self.pool)

    def _warm_masks(self, seqs: list[Sequence]):
        """Compute the bitmask rows of these FSM states in a helper thread, during the forward pass.

        A state's row is computed on its first visit (a walk of the whole vocabulary); doing it
        while the model runs hides that cost. Returns a future, or None when there is nothing to do.
        """
        pairs = [(s.fsm, s.fsm_state) for s in seqs if not _expanded(s.fsm, s.fsm_state)]
        if not pairs:  # every row is known: handing nothing to the thread costs a wake-up per step
            return None
        if self._pool_exec is None:
            self._pool_exec = ThreadPoolExecutor(max_workers=1, thread_name_prefix="structgen-fsm")
        return self._pool_exec.submit(_compute_masks, pairs)

    def _score(self, logits: torch.Tensor, score_rows: list) -> None:
        if not score_rows:
            return
        idx = torch.tensor([r for r, _, _ in score_rows], device=logits.device)
        toks = torch.tensor([t for _, _, t in score_rows], device=logits.device)
        lp = torch.log_softmax(logits[idx].float(), dim=-1).gather(1, toks[:, None])[:, 0].tolist()  # [k]
        for (_, seq, _), v in zip(score_rows, lp):
            seq.prompt_logprobs.append(v)

    def _sample(self, logits: torch.Tensor, seqs: list[Sequence]) -> None:
        """Mask constrained rows (one op), sample every row, advance each sequence."""
        need_lp = any(s.params.logprobs for s in seqs)
        lse = torch.logsumexp(logits, dim=-1) if need_lp else None  # [n] before masking
        rows = [i for i, s in enumerate(seqs) if s.fsm is not None]
        if rows:
            bitmask = np.stack([seqs[i].fsm.mask(seqs[i].fsm_state) for i in rows])  # [m, W] int32
            for k, i in enumerate(rows):
                if seqs[i].params.ignore_eos:
                    _clear_eos(bitmask[k], seqs[i].fsm)
            mask_logits_(logits, torch.from_numpy(bitmask), torch.tensor(rows, dtype=torch.long))
        out = sample(logits, [s.params for s in seqs], [s.generator for s in seqs], lse, want_logprobs=need_lp)
        for seq, tok, lp in zip(seqs, out.tokens.tolist(), out.logprobs.tolist()):
            self._advance(seq, tok, lp)

    def _advance(self, seq: Sequence, token: int, logprob: float) -> None:
        """Append one sampled token: EOS, FSM step, stop strings, completion, length, jump-forward."""
        seq.generated += 1
        self.counters.generated_tokens += 1
        eos = seq.fsm.eos_token_ids if seq.fsm is not None else self.eos_token_ids
        if token in eos and (seq.fsm is not None or not seq.params.ignore_eos):
            self._finish(seq, "stop")
            return
        if seq.fsm is not None:
            nxt = seq.fsm.next_state(seq.fsm_state, token)
            if nxt < 0:
                seq.error = f"sampled token {token} is not allowed by the constraint (empty mask)"
                self._finish(seq, "abort")
                return
            seq.fsm_states.append(seq.fsm_state)
            seq.fsm_state = nxt
        seq.tokens.append(token)
        seq.logprobs.append(logprob)
        self._update_text(seq)
        if seq.finish_reason is None and seq.fsm is not None and self.jump_forward:
            self._jump(seq)
        self._check_done(seq)
        if seq.finish_reason is not None:
            self._finish(seq, seq.finish_reason)

    def _check_done(self, seq: Sequence) -> None:
        """Set ``finish_reason`` when the constraint is complete or max_tokens is reached."""
        if seq.finish_reason is not None:
            return
        if seq.fsm is not None and _complete(seq.fsm, seq.fsm_state):
            seq.finish_reason = "stop"
        elif seq.num_output >= seq.params.max_tokens:
            seq.finish_reason = "length"

    def _update_text(self, seq: Sequence) -> None:
        """Decode the output tokens not yet decoded; cut the text before the first stop string
        (finishing the sequence).

        Constrained output is decoded from the automaton's exact token bytes, so the text is
        exactly what the constraint matched; free text goes through the tokenizer's decode. Both
        are incremental (``detokenizer.py``): the text equals the full decode of the output, less
        an incomplete trailing character until it completes or the sequence finishes. Only the
        new text and the ``len(stop) - 1`` characters before it are searched for a stop string.
        """
        prev = len(seq.text)
        decoder = seq.text_decoder
        decoder.extend(seq.tokens[seq.prompt_len + decoder.num_tokens :])
        seq.text = decoder.text
        for stop in seq.params.stop:
            at = seq.text.find(stop, max(0, prev - len(stop) + 1))
            if at >= 0:
                seq.text = seq.text[:at]
                seq.stop_string = stop
                seq.finish_reason = "stop"

    # ---- jump-forward --------------------------------------------------------------------------
    def _jump(self, seq: Sequence) -> None:
        """Append the constraint's forced continuation, re-tokenising the boundary (see module doc)."""
        if not self.jump_forward:
            return
        plan = plan_jump(seq, self.tokenizer)
        if plan is None:
            return
        self.scheduler.truncate(seq, min(seq.num_computed, plan.keep))
        out_keep = plan.keep - seq.prompt_len
        added = plan.keep + len(plan.tail) - len(seq.tokens)
        seq.tokens = seq.tokens[: plan.keep] + plan.tail
        seq.text_decoder.rewind(out_keep)
        seq.fsm_states = seq.fsm_states[:out_keep] + plan.states[:-1]
        seq.fsm_state = plan.states[-1]
        seq.logprobs = seq.logprobs[:out_keep] + [0.0] * len(plan.tail)
        seq.forced_tokens += added
        seq.generated += added
        self.counters.forced_tokens += added
        self.counters.generated_tokens += added
        self._update_text(seq)

    # ---- bookkeeping ---------------------------------------------------------------------------
    def _finish(self, seq: Sequence, reason: str) -> None:
        seq.finish_reason = reason
        if seq.stop_string is None:
            seq.text = seq.text_decoder.final_text()  # with an incomplete trailing character, replaced
        self.scheduler.finish(seq)
        self._live.pop(seq.seq_id, None)
        self.counters.finished += 1
        self.counters.cached_prompt_tokens += seq.cached_tokens
        self._done.append(seq)

    def _take_done(self) -> list[Sequence]:
        done, self._done = self._done, []
        return done


def _expanded(fsm: Any, state: int) -> bool:
    """Whether ``fsm`` already holds the row of ``state`` (False when it cannot tell)."""
    known = getattr(fsm, "is_expanded", None)
    return bool(known(state)) if known is not None else False


def _compute_masks(pairs: list) -> None:
    """Touch each (fsm, state) row so it is computed; errors resurface in the synchronous call."""
    for fsm, state in pairs:
        try:
            fsm.mask(state)
        except Exception:  # noqa: BLE001 - reported by the step's own mask() call
            return


def _clear_eos(row: np.ndarray, fsm: Any) -> None:
    """Disallow end-of-sequence in a bitmask row (``ignore_eos``), unless nothing else is allowed."""
    before = row.copy()
    for e in fsm.eos_token_ids:
        if e >> 5 < len(row):
            row[e >> 5] &= np.int32(~(1 << (e & 31)) if (e & 31) != 31 else 0x7FFFFFFF)
    if not row.any():
        row[:] = before


def _complete(fsm: Any, state: int) -> bool:
    """True when ``state`` accepts and allows nothing but end-of-sequence."""
    if not fsm.is_accepting(state):
        return False
    allowed = fsm.allowed_tokens(state)
    eos = fsm.eos_token_ids
    return len(allowed) <= len(eos) and all(int(t) in eos for t in allowed)


def _on_cuda(runner: Any) -> bool:
    """True for a model runner whose model (``decode_hidden``) lives on a CUDA device."""
    device = getattr(runner, "device", None)
    return hasattr(runner, "model") and device is not None and torch.device(device).type == "cuda"


def _eos_ids(runner: Any) -> set[int]:
    ids = set(getattr(runner, "eos_token_ids", ()) or ())
    tok_eos = getattr(runner.tokenizer, "eos_token_id", None)
    if tok_eos is not None:
        ids.add(int(tok_eos))
    return ids
