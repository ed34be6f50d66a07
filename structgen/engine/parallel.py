"""Tensor parallelism over ``torch.distributed``: one rank per device, heads and MLP columns split.

Megatron-style sharding of the fused weights of ``models/weights.py`` over ``world`` ranks:

* column-parallel (each rank computes a slice of the outputs, no communication): the fused
  ``qkv`` projection (rank ``r`` keeps query heads ``r*H/w .. (r+1)*H/w`` and KV heads likewise, so
  grouped-query attention stays rank-local) and the fused ``gate_up`` projection (intermediate
  columns ``r*I/w ..``);
* row-parallel (each rank multiplies its slice of the inputs, then an all-reduce sums the partial
  outputs; biases are added once, after it): ``o_proj`` and ``down_proj``;
* the embedding is replicated; the LM head is vocab-parallel (rank ``r`` computes logits
  ``r*V/w ..``, then an all-gather) when ``w`` divides the vocabulary, else replicated.

Each rank's ``KVPool`` holds only its KV heads (``runner.config`` is the per-rank config, with
``num_heads``, ``num_kv_heads`` and ``intermediate_size`` divided by ``w``). Every rank runs the
same ``forward``/decode steps on the same inputs; logits come out full and identical on every
rank, so greedy output matches ``tp_size=1`` up to the order of floating-point sums.

Launch with ``torchrun --nproc-per-node N`` (or ``init_process_group`` yourself) and pass
``tp_size=N`` to ``load_model``. On GPUs the backend is NCCL; keep NVLink multicast off
(``NCCL_NVLS_ENABLE=0``, set here unless already set). On the CPU (tests) the backend is gloo.
"""

from __future__ import annotations

import dataclasses
import os

import torch

from ..errors import ModelLoadError
from .models.config import ModelConfig
from .models.weights import LayerWeights, ModelWeights


def init_tensor_parallel(tp_size: int, device_type: str = "cuda") -> int:
    """Join (or check) the default process group for ``tp_size`` ranks; returns this rank.

    Uses ``torchrun``'s environment variables when the group does not exist yet. NCCL on CUDA
    (NVLink multicast off), gloo otherwise.
    """
    import torch.distributed as dist

    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
    if not dist.is_initialized():
        if "RANK" not in os.environ:
            raise ModelLoadError(
                f"tp_size={tp_size} needs torch.distributed: launch with `torchrun --nproc-per-node {tp_size} ...` "
                "or call torch.distributed.init_process_group before load_model"
            )
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    if dist.get_world_size() != tp_size:
        raise ModelLoadError(
            f"tp_size={tp_size} but the process group has {dist.get_world_size()} ranks; "
            "start one process per tensor-parallel rank"
        )
    return dist.get_rank()


def shard_config(config: ModelConfig, world: int) -> ModelConfig:
    """The per-rank config: heads and intermediate size divided by ``world`` (checked)."""
    for name, n in (("num_attention_heads", config.num_heads), ("num_key_value_heads", config.num_kv_heads),
                    ("intermediate_size", config.intermediate_size)):
        if n % world:
            raise ModelLoadError(f"tp_size={world} must divide {name}={n}; choose a tp_size that divides it")
    return dataclasses.replace(
        config, num_heads=config.num_heads // world, num_kv_heads=config.num_kv_heads // world,
        intermediate_size=config.intermediate_size // world,
    )


def _part(t: torch.Tensor, dim: int, rank: int, world: int) -> torch.Tensor:
    """Slice ``rank`` of ``world`` equal parts of ``t`` along ``dim`` (contiguous copy)."""
    n = t.shape[dim] // world
    return t.narrow(dim, rank * n, n).contiguous()


def _split_sections(t: torch.Tensor, dim: int, sizes: list[int], rank: int, world: int) -> torch.Tensor:
    """Concatenate this rank's part of each section (e.g. q, k, v) of ``t`` along ``dim``."""
    return torch.cat([_part(s, dim, rank, world) for s in t.split(sizes, dim=dim)], dim=dim).contiguous()


def shard_weights(weights: ModelWeights, config: ModelConfig, rank: int, world: int) -> ModelWeights:
    """This rank's weights (see the module docstring); ``weights`` may be stored transposed."""
    out_dim, in_dim = (1, 0) if weights.transposed else (0, 1)
    qkv = [config.q_size, config.kv_size, config.kv_size]
    inter = [config.intermediate_size, config.intermediate_size]

    def opt(t, fn):
        return None if t is None else fn(t)

    layers = [
        LayerWeights(
            ln1=lw.ln1,
            w_qkv=_split_sections(lw.w_qkv, out_dim, qkv, rank, world),
            b_qkv=opt(lw.b_qkv, lambda b: _split_sections(b, 0, qkv, rank, world)),
            q_norm=lw.q_norm,
            k_norm=lw.k_norm,
            w_o=_part(lw.w_o, in_dim, rank, world),
            b_o=lw.b_o,
            ln2=lw.ln2,
            w_gate_up=_split_sections(lw.w_gate_up, out_dim, inter, rank, world),
            b_gate_up=opt(lw.b_gate_up, lambda b: _split_sections(b, 0, inter, rank, world)),
            w_down=_part(lw.w_down, in_dim, rank, world),
            b_down=lw.b_down,
        )
        for lw in weights.layers
    ]
    vocab_parallel = config.vocab_size % world == 0
    lm_head = _part(weights.lm_head, out_dim, rank, world) if vocab_parallel else weights.lm_head
    return ModelWeights(embed=weights.embed, layers=layers, norm=weights.norm, lm_head=lm_head,
                        transposed=weights.transposed)


def shard_runner(runner, rank: int, world: int, group=None):
    """A ``ModelRunner`` holding rank ``rank``'s shard of ``runner``'s model, wired to ``group``.

    ``runner`` (full weights, on this rank's device) is consumed: its model's tensors are replaced.
    """
    import torch.distributed as dist

    from .model_runner import ModelRunner
    from .models.decoder import DecoderModel

    full = runner.config
    local = shard_config(full, world)
    weights = shard_weights(runner.model.weights, full, rank, world)
    model = DecoderModel(local, weights, runner.device, runner.dtype)
    runner.model.weights = None

    def reduce(x: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(x, group=group)
        return x

    def gather_vocab(x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous(), group=group)
        return torch.cat(parts, dim=-1)  # [n, vocab]

    model.reduce = reduce
    if full.vocab_size % world == 0:
        model.gather_vocab = gather_vocab
    out = ModelRunner(dataclasses.replace(local, vocab_size=full.vocab_size), model, runner.tokenizer, runner.name)
    out.tp_rank, out.tp_size = rank, world
    return out
