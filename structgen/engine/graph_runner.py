"""``DecodeGraphRunner``: the engine's decode-only forward passes replayed from CUDA graphs.

When every scheduled sequence has exactly one new token (the steady state of decoding) the
forward pass is ``model.decode_hidden`` + final norm + LM head over inputs of a fixed shape, so
it is captured once per bucket size (1, 2, 4, 8, ..., then ``max_batch_size``) and replayed, as
SGLang does. Inputs live in static device buffers::

    ids, positions, out_slots   [N] int64           (N = max_batch_size)
    kv_indptr                   [N + 1] int32       CSR over kv_indices
    kv_indices                  [capacity] int32    every sequence's context, new token last

A batch of ``n`` sequences runs in the smallest bucket ``>= n``; rows ``n..bucket-1`` are
padding: token 0 at position 0 whose context is the pool's padding slot alone, so they write
and read nothing but that slot. ``forward`` copies the batch in (one host-to-device copy per
buffer), replays, and returns the real rows' float32 logits.

``forward`` returns None for a batch the graphs cannot hold — a prefill chunk (a sequence with
more than one new token), logits rows other than one per sequence in order, more than
``max_batch_size`` sequences, a position at or beyond ``max_context``, or more context entries
than ``capacity`` — and the caller runs ``runner.forward`` instead. Without CUDA (or with
``use_graphs=False``) the same body runs eagerly, so it is tested on the CPU.

Graphs read the RoPE tables captured with them: the tables are grown to ``max_context`` first,
and if they are ever replaced (grown by a longer forward) every graph is captured again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

from .kv_cache import PAD_SLOT, KVPool
from .models.decoder import EAGER_OPS

log = logging.getLogger(__name__)

MAX_INDICES = 1 << 25  # most context entries (int32) the static kv_indices buffer holds


def decode_buckets(max_batch_size: int) -> tuple[int, ...]:
    """Powers of two below ``max_batch_size``, then ``max_batch_size`` itself."""
    out, b = [], 1
    while b < max_batch_size:
        out.append(b)
        b *= 2
    return (*out, max_batch_size)


def capture_graph(body: Callable[[], Any], device: torch.device, warmup: int = 2):
    """``(graph, output)``: ``body`` run ``warmup`` times on a side stream (compiling kernels,
    initialising collectives), then captured once. Replaying the graph rewrites ``output``."""
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            body()
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = body()
    return graph, out


class DecodeGraphRunner:
    """Decode-only forward passes of ``runner`` over ``pool`` (see the module docstring).

    ``use_graphs=None`` captures on CUDA only. ``backend`` picks the kernels of ``decode_hidden``
    (``"auto"``: Triton on CUDA, torch references elsewhere). Not thread-safe (like the runner).
    """

    def __init__(self, runner: Any, pool: KVPool, *, max_batch_size: int, max_context: int,
                 use_graphs: bool | None = None, backend: str = "auto"):
        self.runner, self.model, self.pool = runner, runner.model, pool
        self.device = torch.device(runner.device)
        self.buckets = decode_buckets(int(max_batch_size))
        self.max_batch, self.max_context = self.buckets[-1], int(max_context)
        self.capacity = min(self.max_batch * self.max_context, MAX_INDICES)
        self.use_graphs = self.device.type == "cuda" if use_graphs is None else bool(use_graphs)
        self.backend = backend
        n, dev = self.max_batch, self.device
        self.inputs = torch.zeros((3, n), dtype=torch.int64, device=dev)  # [3, N] ids, positions, out_slots
        self.csr = torch.zeros(n + 1 + self.capacity, dtype=torch.int32, device=dev)  # kv_indptr ++ kv_indices
        self.kv_indptr, self.kv_indices = self.csr[: n + 1], self.csr[n + 1 :]  # [N + 1], [capacity]
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self.model.rope.ensure(self.max_context)
        self._rope = self.model.rope.cos
        self.replays = 0  # forward calls served by this runner (graph replays, or eager bodies)

    def forward(self, batch: Any, pool: KVPool) -> torch.Tensor | None:
        """Float32 logits ``[n, vocab]`` of a decode-only ``ForwardBatch``, or None (see module doc).

        Writes each sequence's new K/V into ``pool`` like ``runner.forward``. On CUDA the result is
        a view of the graph's output buffer, valid until the next call.
        """
        n = len(batch.seq_lens)
        if pool is not self.pool or not self._fits(batch, n):
            return None
        bucket = next(b for b in self.buckets if b >= n)
        self.replays += 1
        if not self.use_graphs:
            self._load(batch, n, bucket)
            return self._body(bucket)[:n]
        if self.model.rope.cos is not self._rope:
            self._graphs.clear()  # the RoPE tables were replaced: graphs read the old ones
            self._rope = self.model.rope.cos
        if bucket not in self._graphs:
            self._graphs[bucket] = self._capture(bucket)
        self._load(batch, n, bucket)
        graph, out = self._graphs[bucket]
        graph.replay()
        return out[:n]

    def _fits(self, batch: Any, n: int) -> bool:
        if not 1 <= n <= self.max_batch or batch.num_tokens != n:
            return False
        if sum(kv.numel() for kv in batch.kv_slots) + self.max_batch > self.capacity:
            return False
        rows = batch.logits_rows
        return (rows.numel() == n and bool((rows == torch.arange(n)).all())
                and int(batch.positions.max()) < self.max_context)

    def _load(self, batch: Any, n: int, bucket: int) -> None:
        """Copy the batch into the static buffers; rows ``n..bucket-1`` become padding."""
        pad = bucket - n
        inputs = torch.zeros((3, bucket), dtype=torch.int64)  # [3, bucket]; padding: token 0, position 0
        inputs[0, :n], inputs[1, :n], inputs[2, :n] = batch.input_ids, batch.positions, batch.out_slots
        inputs[2, n:] = PAD_SLOT
        lens = torch.tensor([kv.numel() for kv in batch.kv_slots] + [1] * pad, dtype=torch.int32)  # [bucket]
        indptr = torch.zeros(bucket + 1, dtype=torch.int32)  # [bucket + 1]
        indptr[1:] = torch.cumsum(lens, 0)
        indices = torch.cat([*batch.kv_slots, torch.full((pad,), PAD_SLOT, dtype=torch.long)]).to(torch.int32)
        self.inputs[:, :bucket].copy_(inputs)
        self.kv_indptr[: bucket + 1].copy_(indptr)
        self.kv_indices[: indices.numel()].copy_(indices)

    def _body(self, bs: int) -> torch.Tensor:
        """Logits ``[bs, vocab]`` float32 of the first ``bs`` rows of the static buffers (no host sync)."""
        ids, pos, out_slots = self.inputs[:, :bs]
        hidden = self.model.decode_hidden(ids, pos, out_slots, self.kv_indptr[: bs + 1], self.kv_indices, self.pool,
                                          self.backend)  # [bs, hidden]
        return self.model.logits(hidden, self.backend)  # [bs, V] float32

    def _capture(self, bs: int):
        """Capture bucket ``bs``; its warm-up runs use padding rows only (they touch nothing but the
        padding slot). The caller loads the real batch afterwards."""
        log.info("capturing the engine decode step for batch bucket %d", bs)
        self.inputs[:, :bs] = torch.tensor([0, 0, PAD_SLOT], device=self.device).unsqueeze(1)
        self.kv_indptr[: bs + 1] = torch.arange(bs + 1, dtype=torch.int32, device=self.device)
        self.kv_indices[:bs] = PAD_SLOT
        try:
            return capture_graph(lambda: self._body(bs), self.device)
        except Exception:  # torch.compile of the model's element-wise ops failed: fall back to eager ops
            if self.model.decode_ops is EAGER_OPS:
                raise
            log.warning("compiled decode element-wise ops failed in capture; using eager ops", exc_info=True)
            self.model.decode_ops = EAGER_OPS
            return capture_graph(lambda: self._body(bs), self.device)
