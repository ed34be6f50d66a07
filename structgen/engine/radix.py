"""``RadixCache``: a radix tree over token ids whose nodes own KV slots.

Every edge holds a run of token ids (``node.key``) and the KV slots of those tokens
(``node.value``, a ``LongTensor`` of the same length). The path from the root to a node spells a
token prefix; the slots along it hold the K/V of exactly that prefix, so any sequence starting
with it can reuse them.

Contract
--------
* Ownership: a slot inserted into the tree belongs to the tree until eviction hands it back to
  the pool (``pool.free``). Callers never free tree-owned slots themselves.
* ``match_prefix(tokens)`` — read-mostly: it may *split* a node so the match ends on a node
  boundary (the set of cached prefixes and their slots do not change) and it refreshes the
  last-access time of the matched path. The returned node is unprotected: lock it before any
  call that can evict (``insert`` does not evict; ``evict`` does).
* ``insert(tokens, slots)`` — mutates: adds the part of ``tokens`` not yet cached, taking
  ownership of the matching ``slots``. Returns how many leading tokens were already cached; the
  caller still owns ``slots[:that]`` and must free those (they duplicate tree-owned slots)
  unless they *are* the tree's slots (a sequence re-inserting its own locked prefix).
* ``lock(node)`` / ``unlock(node)`` — mutate reference counts on the path root..node. A node
  with a positive count (a running request uses its prefix) is never evicted. Every ``lock``
  must be paired with one ``unlock`` of the same node.
* ``evict(n)`` — mutates: frees the slots of least-recently-used unreferenced leaves (parents
  become leaves and may follow) until at least ``n`` slots were freed or nothing is evictable.
  Returns the number freed.
* ``check()`` — raises ``AssertionError`` when an invariant is broken (sizes, key/value
  lengths, child keys, reference counts, no duplicate slots).
* Not thread-safe; used by the scheduler's thread only.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Any, NamedTuple

import torch

_clock = itertools.count()


class RadixNode:
    """One edge of the tree: ``key`` tokens with their ``value`` slots, below ``parent``."""

    __slots__ = ("key", "value", "children", "parent", "lock_ref", "last_access")

    def __init__(self, key: tuple[int, ...] = (), value: torch.Tensor | None = None, parent: "RadixNode | None" = None):
        self.key = key
        self.value = value if value is not None else torch.empty(0, dtype=torch.long)  # [len(key)]
        self.children: dict[int, RadixNode] = {}
        self.parent = parent
        self.lock_ref = 0
        self.last_access = next(_clock)

    def __repr__(self) -> str:
        return f"RadixNode(len={len(self.key)}, children={len(self.children)}, lock={self.lock_ref})"


class MatchResult(NamedTuple):
    """Longest cached prefix: the node it ends on, the slots of its tokens, and its length."""

    node: RadixNode
    slots: torch.Tensor  # [length] long
    length: int


def common_prefix_len(a: list[int] | tuple[int, ...], b: list[int] | tuple[int, ...]) -> int:
    """Length of the longest common prefix of two token sequences."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class RadixCache:
    """Radix tree over token ids; evicted slots go back to ``pool`` (anything with ``free(slots)``)."""

    def __init__(self, pool: Any):
        self.pool = pool
        self.root = RadixNode()
        self.root.lock_ref = 1  # the root is never evicted
        self._total = 0  # slots owned by the tree
        self._protected = 0  # slots on locked paths

    # ---- queries -------------------------------------------------------------------------
    @property
    def total_size(self) -> int:
        """Number of slots the tree owns."""
        return self._total

    @property
    def protected_size(self) -> int:
        """Slots on paths locked by running requests (not evictable)."""
        return self._protected

    @property
    def evictable_size(self) -> int:
        """Slots ``evict`` could free right now."""
        return self._total - self._protected

    def match_prefix(self, tokens: Any) -> MatchResult:
        """Longest cached prefix of ``tokens`` (may split a node; refreshes access times)."""
        key = tuple(tokens)
        node, parts, pos = self.root, [], 0
        stamp = next(_clock)
        node.last_access = stamp
        while pos < len(key) and key[pos] in node.children:
            child = node.children[key[pos]]
            n = common_prefix_len(child.key, key[pos:])
            if n < len(child.key):
                child = self._split(child, n)
            child.last_access = stamp
            parts.append(child.value)
            pos += n
            node = child
        slots = torch.cat(parts) if parts else torch.empty(0, dtype=torch.long)  # [pos]
        return MatchResult(node, slots, pos)

    # ---- mutations -----------------------------------------------------------------------
    def insert(self, tokens: Any, slots: torch.Tensor) -> int:
        """Cache ``tokens`` with their ``slots``; return how many leading tokens were already cached."""
        key = tuple(tokens)
        if len(key) != len(slots):
            raise ValueError(f"insert: {len(key)} tokens but {len(slots)} slots")
        node, pos = self.root, 0
        stamp = next(_clock)
        while pos < len(key):
            child = node.children.get(key[pos])
            if child is None:
                leaf = RadixNode(key[pos:], slots[pos:].clone(), node)
                leaf.last_access = stamp
                node.children[key[pos]] = leaf
                self._total += len(leaf.key)
                return pos
            n = common_prefix_len(child.key, key[pos:])
            if n < len(child.key):
                child = self._split(child, n)
            child.last_access = stamp
            pos += n
            node = child
        return pos

    def lock(self, node: RadixNode) -> None:
        """Protect the path root..node from eviction (one more user)."""
        while node is not self.root:
            if node.lock_ref == 0:
                self._protected += len(node.key)
            node.lock_ref += 1
            node = node.parent

    def unlock(self, node: RadixNode) -> None:
        """Release one ``lock`` of ``node``."""
        while node is not self.root:
            if node.lock_ref <= 0:
                raise RuntimeError("unlock of a node that is not locked")
            node.lock_ref -= 1
            if node.lock_ref == 0:
                self._protected -= len(node.key)
            node = node.parent

    def evict(self, num_tokens: int) -> int:
        """Free the slots of LRU unreferenced leaves until ``num_tokens`` were freed; return the count."""
        leaves = [(n.last_access, id(n), n) for n in self._leaves() if n.lock_ref == 0]
        heapq.heapify(leaves)
        freed = 0
        while freed < num_tokens and leaves:
            _, _, node = heapq.heappop(leaves)
            self.pool.free(node.value)
            freed += len(node.key)
            self._total -= len(node.key)
            parent = node.parent
            del parent.children[node.key[0]]
            if parent is not self.root and not parent.children and parent.lock_ref == 0:
                heapq.heappush(leaves, (parent.last_access, id(parent), parent))
        return freed

    def reset(self) -> None:
        """Free every slot the tree owns (no node may be locked)."""
        if self._protected:
            raise RuntimeError("reset while requests hold locked prefixes")
        self.evict(self._total)
        self.root = RadixNode()
        self.root.lock_ref = 1

    # ---- internals -----------------------------------------------------------------------
    def _split(self, child: RadixNode, n: int) -> RadixNode:
        """Cut ``child`` after ``n`` tokens; return the new upper node (same locks, same access)."""
        upper = RadixNode(child.key[:n], child.value[:n], child.parent)
        upper.lock_ref = child.lock_ref
        upper.last_access = child.last_access
        upper.children = {child.key[n]: child}
        child.parent.children[child.key[0]] = upper
        child.parent = upper
        child.key = child.key[n:]
        child.value = child.value[n:]
        return upper

    def _leaves(self):
        stack = [self.root]
        while stack:
            node = stack.pop()
            if not node.children and node is not self.root:
                yield node
            stack.extend(node.children.values())

    def nodes(self):
        """Every node except the root (depth first)."""
        stack = list(self.root.children.values())
        while stack:
            node = stack.pop()
            yield node
            stack.extend(node.children.values())

    def check(self) -> None:
        """Assert the tree's invariants (see the module contract)."""
        total = protected = 0
        seen: list[torch.Tensor] = []
        for node in self.nodes():
            assert len(node.key) > 0, "empty non-root node"
            assert len(node.key) == len(node.value), "key/value length mismatch"
            assert node.parent.children.get(node.key[0]) is node, "child indexed under the wrong token"
            assert node.lock_ref >= 0, "negative lock count"
            assert node.lock_ref >= sum(c.lock_ref for c in node.children.values()), "children locked more than parent"
            total += len(node.key)
            protected += len(node.key) if node.lock_ref > 0 else 0
            seen.append(node.value)
        assert total == self._total, f"size {self._total} != {total}"
        assert protected == self._protected, f"protected {self._protected} != {protected}"
        if seen:
            allslots = torch.cat(seen)
            assert torch.unique(allslots).numel() == allslots.numel(), "a slot is owned twice"
