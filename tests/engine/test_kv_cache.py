"""KVPool: storage shapes and the slot allocator's contract."""

from __future__ import annotations

import pytest
import torch

from structgen.engine.kv_cache import PAD_SLOT, KVPool
from structgen.errors import OutOfSlots


def _pool(num_slots: int = 8) -> KVPool:
    return KVPool(num_layers=3, num_kv_heads=2, head_dim=4, num_slots=num_slots, dtype=torch.float32, device="cpu")


def test_storage_shape_includes_padding_slot():
    pool = _pool(8)
    assert len(pool.k) == len(pool.v) == 3
    assert pool.k[0].shape == (9, 2, 4) and pool.v[2].dtype == torch.float32
    assert pool.num_slots == 8 and pool.num_free == 8


def test_alloc_returns_distinct_usable_slots():
    pool = _pool(8)
    a, b = pool.alloc(3), pool.alloc(5)
    ids = torch.cat([a, b])
    assert a.dtype == torch.long and ids.unique().numel() == 8
    assert PAD_SLOT not in ids.tolist() and int(ids.min()) >= 1 and int(ids.max()) <= 8
    assert pool.num_free == 0 and pool.num_used == 8


def test_out_of_slots_allocates_nothing():
    pool = _pool(4)
    pool.alloc(3)
    with pytest.raises(OutOfSlots) as info:
        pool.alloc(2)
    assert info.value.requested == 2 and info.value.available == 1
    assert pool.num_free == 1
    assert pool.alloc(1).numel() == 1


def test_free_makes_slots_reusable():
    pool = _pool(4)
    a = pool.alloc(4)
    pool.free(a[:2])
    assert pool.num_free == 2
    again = pool.alloc(2)
    assert sorted(again.tolist()) == sorted(a[:2].tolist())


def test_double_free_and_bad_ids_are_rejected_without_change():
    pool = _pool(4)
    a = pool.alloc(2)
    pool.free(a)
    with pytest.raises(ValueError):
        pool.free(a)
    b = pool.alloc(1)
    with pytest.raises(ValueError):
        pool.free(torch.cat([b, b]))
    with pytest.raises(ValueError):
        pool.free(torch.tensor([PAD_SLOT]))
    with pytest.raises(ValueError):
        pool.free(torch.tensor([99]))
    assert pool.num_free == 3 and bool(pool.is_allocated(b).all())


def test_pool_never_touches_storage_on_alloc_or_free():
    pool = _pool(4)
    s = pool.alloc(2)
    pool.k[1][s] = 1.5
    pool.free(s)
    pool.alloc(4)
    assert torch.all(pool.k[1][s] == 1.5)
