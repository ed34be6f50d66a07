"""Fused constrained sampling: mask by FSM state, then greedy or Gumbel-max, in one read of the logits.

For row ``b`` with mask row ``table[states[b]]`` (no mask when ``states[b] < 0``)::

    x[v]     = logits[b, v] if allowed(b, v) else -inf                 # as float32
    score[v] = x[v]                                   if temperature[b] <= 0   (greedy)
             = x[v] * (1 / temperature[b]) + g[b, v]  otherwise                (Gumbel-max)
    token[b] = first v with score[v] == max(score)    or -1 if max(score) == -inf

``g[b, v] = -log(-log(u))`` with ``u`` uniform in (0, 1) from a counter-based Philox4x32-10
generator keyed by ``seeds[b]`` (64 bits) at counter ``(v // 4, offsets[b] low, offsets[b] high, 0)``,
output word ``v % 4``; ``u = ((r >> 9) + 0.5) / 2**23``. So a draw depends only on
``(seed, offset, v)``: reproducible, batch-composition independent, no host synchronisation
(the caller bumps ``offsets`` by one per step). :func:`gumbel_noise` returns ``g``; the Triton and
torch paths give the same tokens (up to float rounding of ``log`` on a GPU, which can only matter
for scores tied within one ulp). Argmax over Gumbel-perturbed scores samples exactly from
``softmax(x / temperature)``. NaN logits are never chosen by the Triton path.

A row that allows nothing (or whose allowed logits are all -inf) returns -1; ``fsm.advance_states``
maps a -1 token to state -1. Top-k / top-p / min-p filtering stays in the torch sampler
(``engine/sampler.py``): apply it to the logits before calling this with the filtered logits.
"""

from __future__ import annotations

import torch

from structgen.kernels import _backend as B
from structgen.kernels.mask import rows_by_state, unpack_bitmask

SAMPLE_BLOCK = 1024  # logits columns per loop step of one Triton program
PHILOX_ROUNDS = 10
_M32 = 0xFFFFFFFF
_PHILOX_A, _PHILOX_B = 0xD2511F53, 0xCD9E8D57
_KEY_A, _KEY_B = 0x9E3779B9, 0xBB67AE85


def masked_sample(
    logits: torch.Tensor,
    table: torch.Tensor,
    states: torch.Tensor,
    temperature: torch.Tensor,
    seeds: torch.Tensor,
    offsets: torch.Tensor,
    *,
    backend: str = "auto",
) -> torch.Tensor:
    """Return sampled token ids ``[B]`` int64 (-1 where nothing is allowed); ``logits`` is not modified.

    Args:
        logits: ``[B, V]`` float32/bfloat16/float16, last dimension contiguous.
        table: ``[S, W]`` int32 packed bitmask rows by FSM state (see ``mask.py``).
        states: ``[B]`` int32/int64; ``< 0`` = unconstrained; ``>= S`` allows nothing.
        temperature: ``[B]`` float32; ``<= 0`` = greedy.
        seeds, offsets: ``[B]`` int64 Philox key and counter (see the module docstring).
    """
    B.check_tensor("logits", logits, ndim=2, dtypes=B.FLOAT_DTYPES)
    dev, n = logits.device, logits.shape[0]
    B.check_tensor("table", table, ndim=2, dtypes=(torch.int32,), device=dev)
    B.check_last_dim_contiguous("logits", logits)
    B.check_last_dim_contiguous("table", table)
    for name, t, dtypes in (("states", states, B.INT_DTYPES), ("temperature", temperature, (torch.float32,)),
                            ("seeds", seeds, (torch.int64,)), ("offsets", offsets, (torch.int64,))):
        B.check_tensor(name, t, ndim=1, dtypes=dtypes, device=dev)
        B.check_rows(name, t, n, "logits")
    if B.resolve_backend(backend, dev) == "triton":
        return masked_sample_triton(logits, table, states, temperature, seeds, offsets)
    return masked_sample_torch(logits, table, states, temperature, seeds, offsets)


def inverse_temperature(temperature: torch.Tensor) -> torch.Tensor:
    """``1 / temperature`` where positive, 0 (= greedy) elsewhere; ``[B]`` float32."""
    return torch.where(temperature > 0, 1.0 / temperature, torch.zeros_like(temperature))


def masked_sample_torch(logits, table, states, temperature, seeds, offsets) -> torch.Tensor:
    """Reference implementation of :func:`masked_sample` (arguments not validated).

    This path synchronises with the host; it serves CPUs and tests.
    """
    n, v = logits.shape
    allowed = unpack_bitmask(rows_by_state(table, states), v) | (states < 0).unsqueeze(1)  # [B, V] bool
    x = logits.float().masked_fill(~allowed, float("-inf"))  # [B, V] fp32
    inv = inverse_temperature(temperature)  # [B]
    if bool((inv > 0).any()):
        x = _perturb(x, inv, seeds, offsets)
    if v == 0:
        return torch.full((n,), -1, dtype=torch.int64, device=logits.device)
    best, idx = x.max(dim=1)  # first maximum
    return torch.where(best == float("-inf"), -1, idx)  # [B] int64


def _perturb(x: torch.Tensor, inv: torch.Tensor, seeds, offsets) -> torch.Tensor:
    """``x * inv + g`` on rows with ``inv > 0``; ``x [B, V]`` fp32 (may be modified in place).

    When few entries can matter (finite entries of sampled rows: the constrained case) the noise
    is drawn only there, so constrained rows stay cheap on a CPU. The result is the same.
    """
    sampled = (inv > 0).unsqueeze(1)  # [B, 1] bool
    needs_noise = (x > float("-inf")) & sampled  # [B, V] bool
    if 8 * int(needs_noise.sum()) > needs_noise.numel():
        noisy = x * inv.unsqueeze(1) + gumbel_noise(seeds, offsets, x.shape[1])  # [B, V]
        return torch.where(sampled, noisy, x)
    r, c = torch.nonzero(needs_noise, as_tuple=True)  # [K], [K]
    x[r, c] = x[r, c] * inv[r] + gumbel_at(seeds[r], offsets[r], c)
    return x


def sample_splits(batch: int, n_cols: int) -> int:
    """Vocabulary chunks per row for the Triton path: about 512 programs in all, 1 to 32 per row."""
    want = max(1, min(32, 512 // max(1, batch), -(-n_cols // SAMPLE_BLOCK)))
    return 1 << (want.bit_length() - 1)


def masked_sample_triton(logits, table, states, temperature, seeds, offsets) -> torch.Tensor:
    """Triton implementation of :func:`masked_sample`: per-chunk best scores, then a per-row merge."""
    n, v = logits.shape
    out = torch.empty(n, dtype=torch.int64, device=logits.device)  # [B]
    if n == 0:
        return out
    splits = sample_splits(n, v)
    chunk = -(-max(v, 1) // (splits * SAMPLE_BLOCK)) * SAMPLE_BLOCK  # columns per split, a multiple of BLOCK
    best = torch.empty((n, splits), dtype=torch.float32, device=logits.device)  # [B, splits]
    cols = torch.empty((n, splits), dtype=torch.int32, device=logits.device)  # [B, splits]
    k = B.kernel_module("structgen.kernels._triton_sampling")
    k.masked_sample_split[(n, splits)](
        logits, table, states, inverse_temperature(temperature), seeds, offsets, best, cols,
        v, table.shape[1], table.shape[0], logits.stride(0), table.stride(0), chunk,
        ROUNDS=PHILOX_ROUNDS, BLOCK=SAMPLE_BLOCK, num_warps=8,
    )
    k.masked_sample_reduce[(n,)](best, cols, out, SPLITS=splits, BLOCK_S=max(2, splits))
    return out


# ---------------------------------------------------------------- counter-based noise (torch)


def _mulhilo(a: torch.Tensor, c: int) -> tuple[torch.Tensor, torch.Tensor]:
    """High and low 32 bits of ``a * c`` for ``a`` int64 in [0, 2**32) and a 32-bit constant ``c``."""
    ah, al, ch, cl = a >> 16, a & 0xFFFF, c >> 16, c & 0xFFFF
    mid = ah * cl + al * ch  # < 2**33
    low_part = (mid << 16) + al * cl  # < 2**50
    return ah * ch + (low_part >> 32), low_part & _M32


def philox4x32(c0, c1, c2, c3, k0, k1, rounds: int = PHILOX_ROUNDS):
    """Philox4x32 on int64 tensors holding uint32 values (broadcasting); returns 4 words."""
    for _ in range(rounds):
        hi0, lo0 = _mulhilo(c0, _PHILOX_A)
        hi2, lo2 = _mulhilo(c2, _PHILOX_B)
        c0, c1, c2, c3 = hi2 ^ c1 ^ k0, lo2, hi0 ^ c3 ^ k1, lo0
        k0, k1 = (k0 + _KEY_A) & _M32, (k1 + _KEY_B) & _M32
    return c0, c1, c2, c3


def _uniform(words: torch.Tensor) -> torch.Tensor:
    return ((words >> 9).float() + 0.5) * (2.0**-23)  # exact in fp32: 23 bits + 1/2


def uniform_noise(seeds: torch.Tensor, offsets: torch.Tensor, n_cols: int) -> torch.Tensor:
    """``u [B, n_cols]`` float32 in (0, 1) exactly as the sampling kernel draws it."""
    quads = (n_cols + 3) // 4
    c0 = torch.arange(quads, dtype=torch.int64, device=seeds.device).unsqueeze(0)  # [1, V/4]
    k0, k1 = (seeds & _M32).unsqueeze(1), ((seeds >> 32) & _M32).unsqueeze(1)  # [B, 1]
    c1, c2 = (offsets & _M32).unsqueeze(1), ((offsets >> 32) & _M32).unsqueeze(1)  # [B, 1]
    words = philox4x32(c0, c1, c2, torch.zeros_like(c1), k0, k1)  # 4 x [B, V/4]
    r = torch.stack(torch.broadcast_tensors(*words), dim=2).reshape(seeds.shape[0], 4 * quads)[:, :n_cols]
    return _uniform(r)  # [B, V]


def gumbel_noise(seeds: torch.Tensor, offsets: torch.Tensor, n_cols: int) -> torch.Tensor:
    """``g = -log(-log(u)) [B, n_cols]`` float32, the Gumbel noise of :func:`masked_sample`."""
    return -torch.log(-torch.log(uniform_noise(seeds, offsets, n_cols)))


def gumbel_at(seeds: torch.Tensor, offsets: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """The same noise at single points: ``g[i] = gumbel_noise(seeds, offsets, V)[row i, cols[i]]``, ``[K]``."""
    k0, k1 = seeds & _M32, (seeds >> 32) & _M32
    c1, c2 = offsets & _M32, (offsets >> 32) & _M32
    words = torch.stack(philox4x32(cols // 4, c1, c2, torch.zeros_like(c1), k0, k1), dim=1)  # [K, 4]
    r = words.gather(1, (cols % 4).unsqueeze(1)).squeeze(1)  # [K]
    return -torch.log(-torch.log(_uniform(r)))
