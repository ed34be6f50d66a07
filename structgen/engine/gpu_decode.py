"""``GraphDecoder``: decode steps of a fixed set of sequences with everything on the device.

One step, for ``B`` sequences padded to a bucket size (``BUCKETS``)::

    out_slot[b] = slot_table[b, pos[b]]                          # slots were allocated up front
    context[b]  = slot_table[b, :pos[b] + 1]                     # CSR kv_indptr / kv_indices
    logits      = model(ids, pos, out_slot, context)             # kernels.decode_attention_rope_kv
    row[b]      = row_of_key[key[b]]     (-1: unconstrained)     # DeviceTables
    tok[b]      = masked_sample(logits, bitmask, row, temperature, seeds, offsets)
    key[b]      = advance_states(indptr, tokens, next_keys, row, tok)   (dead key if not allowed)
    ids, pos, offsets = tok, pos + 1, offsets + 1;  history[step] = tok

The step reads nothing back to the host, so on CUDA it is captured once per bucket in a CUDA
graph and replayed; its inputs are static buffers updated in place. On the CPU (or with
``use_graphs=False``) the same body runs eagerly, with the torch reference kernels.

Constraints: after launching a step the host expands the FSM states one step further
(``DeviceTables.expand_pending``) while the device runs, so the next step's states have rows.
When more than ``max_prefetch`` states are pending (a large automaton), the decoder instead
reads the sequences' current keys back and expands only those (one sync per step).

Sequences never leave the set: a finished sequence keeps decoding (EOS repeats in an accepting
state); the caller cuts each output at its first EOS. The KV slots of every future token are
passed in up front (``DecodeSeq.slots``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..errors import InvalidBatchError
from .device_tables import DEAD_KEY, DeviceTables
from .kv_cache import PAD_SLOT, KVPool
from .models.decoder import EAGER_OPS, ElementwiseOps

log = logging.getLogger(__name__)

BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass
class DecodeSeq:
    """One sequence entering decode.

    ``token`` is its last token, not yet in the KV cache, at position ``position`` (= the number of
    cached tokens). ``slots`` (``LongTensor``) lists the cached context's slots (``position`` of
    them) followed by one slot per token to be decoded (``token`` first). ``fsm``/``state``: the
    ``TokenFSM`` constraining the tokens decoded from here and its current DFA state (default: the
    initial state); ``None`` = unconstrained. ``temperature <= 0`` is greedy; ``seed`` keys the
    Philox noise of sampling.
    """

    token: int
    position: int
    slots: torch.Tensor
    fsm: object | None = None
    state: int | None = None
    temperature: float = 0.0
    seed: int = 0


def bucket_for(n: int) -> int:
    """The smallest bucket size ``>= n`` (``InvalidBatchError`` beyond the largest)."""
    for b in BUCKETS:
        if b >= n:
            return b
    raise InvalidBatchError(f"at most {BUCKETS[-1]} sequences per GraphDecoder, got {n}; split the batch")


class GraphDecoder:
    """Device-resident decode loop for ``runner`` over ``pool`` (see the module docstring).

    ``max_context``: the longest context (cached + decoded tokens) of any sequence; ``max_steps``:
    the length of the token history kept on the device. ``use_graphs=None`` captures CUDA graphs on
    CUDA only. ``backend`` picks the kernels (``"auto"``: Triton on CUDA, torch references elsewhere).
    ``compile_ops`` (default: with graphs) fuses the layers' element-wise steps with torch.compile
    (``models.decoder.ElementwiseOps``); if compiling fails the eager ops are used (logged).
    """

    def __init__(
        self,
        runner,
        pool: KVPool,
        tables: DeviceTables | None = None,
        *,
        max_batch: int = 256,
        max_context: int = 4096,
        max_steps: int = 1024,
        use_graphs: bool | None = None,
        backend: str = "auto",
        max_prefetch: int = 4096,
        compile_ops: bool | None = None,
    ):
        self.runner, self.model, self.pool = runner, runner.model, pool
        self.device = runner.device
        self.tables = tables or DeviceTables(runner.config.vocab_size, self.device)
        self.max_batch = bucket_for(max_batch)
        self.max_context, self.max_steps = int(max_context), int(max_steps)
        self.use_graphs = self.device.type == "cuda" if use_graphs is None else bool(use_graphs)
        self.backend, self.max_prefetch = backend, max_prefetch
        self.model.rope.ensure(self.max_context)
        if (self.use_graphs if compile_ops is None else compile_ops) and self.model.decode_ops is EAGER_OPS:
            self.model.decode_ops = ElementwiseOps.compiled()
        self._buffers()
        self._graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self._graph_version = self.tables.version
        self.batch = 0
        self.bucket = 0
        self.steps = 0

    def _buffers(self) -> None:
        n, c, dev = self.max_batch, self.max_context, self.device
        i64 = {"dtype": torch.int64, "device": dev}
        self.ids = torch.zeros(n, **i64)  # [N] next input token
        self.pos = torch.zeros(n, **i64)  # [N] its position (= cached tokens)
        self.slot_table = torch.zeros((n, c), dtype=torch.int32, device=dev)  # [N, C] slots by position
        self.keys = torch.full((n,), -1, **i64)  # [N] FSM key, -1 = unconstrained
        self.temperature = torch.zeros(n, dtype=torch.float32, device=dev)  # [N]
        self.seeds = torch.zeros(n, **i64)  # [N]
        self.offsets = torch.zeros(n, **i64)  # [N]
        self.kv_indptr = torch.zeros(n + 1, dtype=torch.int32, device=dev)  # [N + 1]
        self.kv_indices = torch.zeros(n * c + 1, dtype=torch.int32, device=dev)  # [N*C + 1], last = trash
        self.cols = torch.arange(c, dtype=torch.int32, device=dev)  # [C]
        self.history = torch.zeros((self.max_steps, n), **i64)  # [S, N] sampled tokens
        self.step_idx = torch.zeros(1, **i64)  # [1]

    # ------------------------------------------------------------------ public API
    def start(self, seqs: Sequence[DecodeSeq]) -> None:
        """Load ``seqs`` into the static buffers (a new run; the token history restarts)."""
        if not seqs:
            raise InvalidBatchError("GraphDecoder.start needs at least one sequence")
        bucket = bucket_for(len(seqs))
        if bucket > self.max_batch:
            raise InvalidBatchError(f"{len(seqs)} sequences exceed max_batch={self.max_batch}")
        self._check_tables_version()
        if self.use_graphs and bucket not in self._graphs:
            self._capture(bucket)
        self._fill(seqs, bucket)
        self.batch, self.bucket, self.steps = len(seqs), bucket, 0
        self.tables.expand_pending()  # the initial states (and nothing else is pending yet)

    def step(self) -> None:
        """Launch one decode step (asynchronous on CUDA); then prepare the FSM rows of the next one."""
        if not self.batch:
            raise InvalidBatchError("call GraphDecoder.start before step")
        if self.steps >= self.max_steps:
            raise InvalidBatchError(f"max_steps={self.max_steps} reached; start again or raise max_steps")
        if self._check_tables_version() and self.use_graphs:
            self._capture(self.bucket)
        if self.use_graphs:
            self._graphs[self.bucket].replay()
        else:
            self._body(self.bucket)
        self.steps += 1
        self._prefetch()

    def run(self, n_steps: int) -> torch.Tensor:
        """``n_steps`` steps; returns the tokens of this run so far, ``[steps, batch]`` on the CPU."""
        for _ in range(n_steps):
            self.step()
        return self.tokens()

    def tokens(self) -> torch.Tensor:
        """Sampled tokens ``[steps, batch]`` (CPU LongTensor; -1 where nothing was allowed). Syncs."""
        return self.history[: self.steps, : self.batch].cpu()

    def states(self) -> list[int]:
        """Each sequence's current DFA state (-1 unconstrained or dead). Syncs."""
        return [self.tables.state_of(int(k)) for k in self.keys[: self.batch].tolist()]

    # ------------------------------------------------------------------ internals
    def _fill(self, seqs: Sequence[DecodeSeq], bucket: int) -> None:
        n, c = len(seqs), self.max_context
        table = torch.full((bucket, c), PAD_SLOT, dtype=torch.int32)  # [bucket, C]
        ids, pos, keys = torch.zeros(bucket, dtype=torch.long), torch.zeros(bucket, dtype=torch.long), []
        for b, s in enumerate(seqs):
            slots = torch.as_tensor(s.slots, dtype=torch.long).reshape(-1)
            if slots.numel() <= s.position or slots.numel() > c:
                raise InvalidBatchError(
                    f"sequence {b}: slots must hold its {s.position} cached tokens plus >= 1 new one, "
                    f"at most max_context={c} in all")
            table[b, : slots.numel()] = slots.to(torch.int32)
            ids[b], pos[b] = int(s.token), int(s.position)
            state = None if s.fsm is None else (s.fsm.initial_state if s.state is None else s.state)
            keys.append(-1 if s.fsm is None else self.tables.key_of(s.fsm, state))
        keys += [-1] * (bucket - n)
        temps = [float(s.temperature) for s in seqs] + [0.0] * (bucket - n)
        seeds = [int(s.seed) for s in seqs] + [0] * (bucket - n)
        self._load(bucket, table, ids, pos, torch.tensor(keys), torch.tensor(temps), torch.tensor(seeds))

    def _load(self, bucket, table, ids, pos, keys, temps, seeds) -> None:
        self.slot_table[:bucket] = table.to(self.device)
        self.ids[:bucket] = ids.to(self.device)
        self.pos[:bucket] = pos.to(self.device)
        self.keys[:bucket] = keys.to(self.device)
        self.temperature[:bucket] = temps.to(self.device)
        self.seeds[:bucket] = seeds.to(self.device)
        self.offsets.zero_()
        self.step_idx.zero_()

    def _prefetch(self) -> None:
        """Make sure the keys the next step starts in have rows (see the module docstring)."""
        t = self.tables
        if not t.pending:
            return
        if len(t.pending) <= self.max_prefetch:
            t.expand_pending()
        else:
            t.expand_keys(self.keys[: self.batch].tolist())

    def _check_tables_version(self) -> bool:
        """Drop captured graphs when the device tables were reallocated; True if they were."""
        if self.tables.version == self._graph_version:
            return False
        self._graphs.clear()
        self._graph_version = self.tables.version
        return True

    @torch.inference_mode()
    def _body(self, bs: int) -> None:
        """One decode step over the first ``bs`` rows of the static buffers (no host sync)."""
        from ..kernels import advance_states, masked_sample

        t = self.tables
        pos = self.pos[:bs]  # [bs]
        out_slots = self.slot_table[:bs].gather(1, pos.unsqueeze(1)).squeeze(1).long()  # [bs]
        self._build_context(bs)
        hidden = self.model.decode_hidden(
            self.ids[:bs], pos, out_slots, self.kv_indptr[: bs + 1], self.kv_indices, self.pool, self.backend
        )  # [bs, hidden]
        logits = self.model.logits(hidden, self.backend)  # [bs, V] float32
        keys = self.keys[:bs]
        rows = torch.where(keys >= 0, t.row_of_key[keys.clamp(min=0)], -1)  # [bs]
        tok = masked_sample(logits, t.bitmask, rows, self.temperature[:bs], self.seeds[:bs], self.offsets[:bs],
                            backend=self.backend)  # [bs] int64
        nxt = advance_states(t.indptr, t.tokens, t.next_keys, rows, tok, backend=self.backend)  # [bs]
        keys.copy_(torch.where((rows >= 0) & (nxt < 0), DEAD_KEY, nxt))
        self.history[:, :bs].index_copy_(0, self.step_idx.clamp(max=self.max_steps - 1), tok.unsqueeze(0))
        self.ids[:bs].copy_(tok.clamp(min=0))
        pos.add_(1)
        self.offsets[:bs].add_(1)
        self.step_idx.add_(1)

    def _build_context(self, bs: int) -> None:
        """``kv_indptr``/``kv_indices`` of contexts ``slot_table[b, :pos[b] + 1]`` (fixed shapes)."""
        ctx = (self.pos[:bs] + 1).to(torch.int32)  # [bs]
        self.kv_indptr[1 : bs + 1] = torch.cumsum(ctx, 0, dtype=torch.int32)
        starts = self.kv_indptr[:bs].unsqueeze(1)  # [bs, 1]
        valid = self.cols.unsqueeze(0) < ctx.unsqueeze(1)  # [bs, C]
        trash = self.kv_indices.shape[0] - 1
        dst = torch.where(valid, starts + self.cols.unsqueeze(0), trash).long()  # [bs, C]
        self.kv_indices.scatter_(0, dst.reshape(-1), self.slot_table[:bs].reshape(-1))

    _STATE = ("ids", "pos", "slot_table", "keys", "temperature", "seeds", "offsets", "history", "step_idx")

    def _capture(self, bs: int) -> None:
        """Capture the step for bucket ``bs``; warm-up runs use padding rows, then every buffer is restored."""
        log.info("capturing the decode step for batch bucket %d", bs)
        saved = {name: getattr(self, name).clone() for name in self._STATE}
        self.slot_table[:bs].zero_()  # every warm-up token writes and reads the padding slot only
        self.ids[:bs].zero_()
        self.keys[:bs].fill_(-1)
        try:
            self._warm_up(bs)
        except Exception:  # torch.compile of the element-wise ops failed: fall back to eager ops
            if self.model.decode_ops is EAGER_OPS:
                raise
            log.warning("compiling the decode element-wise ops failed; using eager ops", exc_info=True)
            self.model.decode_ops = EAGER_OPS
            self._warm_up(bs)
        self.pos[:bs].zero_()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._body(bs)
        self._graphs[bs] = graph
        for name, value in saved.items():
            getattr(self, name).copy_(value)

    def _warm_up(self, bs: int) -> None:
        """Two eager steps on a side stream (compiles kernels, initialises collectives) before capture."""
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(2):
                self.pos[:bs].zero_()
                self._body(bs)
        torch.cuda.current_stream(self.device).wait_stream(stream)
