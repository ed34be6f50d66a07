"""RadixCache: prefix matching, insertion, locking, LRU eviction, integrity — unit tests and a
property test of random operation sequences against a naive dict-of-prefixes reference."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from structgen.engine.radix import RadixCache


class CountingPool:
    """Slot allocator that records frees and rejects double frees."""

    def __init__(self):
        self.next = 1
        self.live: set[int] = set()

    def alloc(self, n: int) -> torch.Tensor:
        out = torch.arange(self.next, self.next + n)
        self.next += n
        self.live.update(out.tolist())
        return out

    def free(self, slots: torch.Tensor) -> None:
        for s in slots.tolist():
            assert s in self.live, f"double free of slot {s}"
            self.live.remove(s)


def test_match_returns_longest_cached_prefix_and_its_slots():
    pool = CountingPool()
    cache = RadixCache(pool)
    a = pool.alloc(5)
    assert cache.insert([1, 2, 3, 4, 5], a) == 0
    m = cache.match_prefix([1, 2, 3, 9])
    assert m.length == 3 and m.slots.tolist() == a[:3].tolist()
    assert cache.match_prefix([7]).length == 0
    cache.check()


def test_insert_reports_already_cached_prefix_and_splits():
    pool = CountingPool()
    cache = RadixCache(pool)
    a, b = pool.alloc(4), pool.alloc(5)
    cache.insert([1, 2, 3, 4], a)
    assert cache.insert([1, 2, 7, 8, 9], b) == 2  # caller still owns b[:2]
    pool.free(b[:2])
    assert cache.match_prefix([1, 2, 7, 8, 9]).slots.tolist() == a[:2].tolist() + b[2:].tolist()
    assert cache.total_size == 7
    cache.check()


def test_locked_prefix_is_never_evicted_and_lru_goes_first():
    pool = CountingPool()
    cache = RadixCache(pool)
    cache.insert([1, 2, 3], pool.alloc(3))
    cache.insert([5, 6], pool.alloc(2))
    cache.insert([8, 9], pool.alloc(2))
    cache.match_prefix([5, 6])  # [8, 9] is now the least recently used
    locked = cache.match_prefix([1, 2, 3]).node
    cache.lock(locked)
    assert cache.evictable_size == 4 and cache.protected_size == 3
    assert cache.evict(1) == 2
    assert cache.match_prefix([8, 9]).length == 0 and cache.match_prefix([5, 6]).length == 2
    assert cache.evict(100) == 2
    assert cache.match_prefix([1, 2, 3]).length == 3
    cache.unlock(locked)
    assert cache.evict(100) == 3 and cache.total_size == 0 and not pool.live
    cache.check()


def test_unlock_without_lock_is_an_error():
    cache = RadixCache(CountingPool())
    cache.insert([1], torch.tensor([1]))
    with pytest.raises(RuntimeError):
        cache.unlock(cache.match_prefix([1]).node)


def test_check_detects_a_corrupted_tree():
    pool = CountingPool()
    cache = RadixCache(pool)
    cache.insert([1, 2], pool.alloc(2))
    cache.match_prefix([1, 2]).node.value = torch.tensor([1])
    with pytest.raises(AssertionError):
        cache.check()


ops = st.lists(
    st.tuples(
        st.sampled_from(["insert", "match", "lock", "unlock", "evict"]),
        st.lists(st.integers(0, 3), min_size=1, max_size=8),
        st.integers(0, 12),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_random_operations_agree_with_a_naive_reference(seq):
    pool = CountingPool()
    cache = RadixCache(pool)
    ref: dict[tuple[int, ...], int] = {}  # cached prefix -> slot of its last token
    locks: list[tuple[object, tuple[int, ...]]] = []
    for op, tokens, n in seq:
        key = tuple(tokens)
        if op == "insert":
            slots = pool.alloc(len(key))
            already = 0
            while already < len(key) and key[: already + 1] in ref:
                already += 1
            assert cache.insert(key, slots) == already
            pool.free(slots[:already])
            for j in range(already, len(key)):
                ref[key[: j + 1]] = int(slots[j])
        elif op == "match":
            m = cache.match_prefix(key)
            expect = 0
            while expect < len(key) and key[: expect + 1] in ref:
                expect += 1
            assert m.length == expect
            assert m.slots.tolist() == [ref[key[: j + 1]] for j in range(expect)]
        elif op == "lock":
            m = cache.match_prefix(key)
            cache.lock(m.node)
            locks.append((m.node, key[: m.length]))
        elif op == "unlock" and locks:
            node, _ = locks.pop(n % len(locks))
            cache.unlock(node)
        elif op == "evict":
            before = cache.evictable_size
            freed = cache.evict(n)
            assert freed >= min(n, before) or cache.evictable_size == 0
            for k in [k for k in ref if cache.match_prefix(k).length < len(k)]:
                del ref[k]
        for _, prefix in locks:  # locked prefixes survive everything
            assert all(prefix[: j + 1] in ref for j in range(len(prefix)))
        assert cache.total_size == len(ref)
        assert pool.live == set(ref.values())
        cache.check()
