"""Regular expressions over bytes as a hash-consed expression pool, with Brzozowski derivatives.

Every constraint front end (regex syntax, JSON Schema, choices) builds one expression in an
``ExprPool``; ``structgen.fsm.dfa.ByteDFA`` then explores it lazily: a DFA state *is* an
expression id, and the transition on byte ``b`` is the derivative of that expression by ``b``.
So compile cost follows the states a generation visits, bounded repetition costs one state per
count actually reached, and intersection (``and_``) and complement (``not_``) are as cheap as
union — what JSON Schema's ``allOf``/``not`` and "additional keys other than these" need.

Expression kinds (node tuples, hash-consed so equal expressions share one id):

    NOTHING          the empty language (the dead state)          id 0
    EPS              the empty string                              id 1
    BYTES(mask)      one byte from a 256-bit set (Python int)
    CONCAT(a, b)     a then b (right-nested: a is never a CONCAT)
    ALT(ids)         union, flattened, sorted, NOTHING-free, BYTES merged
    AND(ids)         intersection, flattened, sorted
    NOT(a)           complement over all byte strings
    REPEAT(a, lo, hi) a{lo,hi}; hi == INF for unbounded

Derivatives are computed a whole *row* at a time: ``row(e)`` is a tuple of ``(mask, id)``
pairs with disjoint byte masks, listing every byte whose derivative is not NOTHING. Rows are
memoised per node, so a sub-expression shared by many states is differentiated once.
"""

from __future__ import annotations

from collections import deque
from typing import Iterable, Sequence

from ..errors import CompileLimitError

INF = -1
ALL_BYTES = (1 << 256) - 1

NOTHING_ID = 0
EPS_ID = 1

_NOTHING, _EPS, _BYTES, _CONCAT, _ALT, _AND, _NOT, _REPEAT = range(8)


def _bits(mask: int) -> Iterable[int]:
    """Yield the set bit positions of ``mask`` in increasing order."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


class ExprPool:
    """Owns expression nodes; ids are small ints, equal expressions get equal ids.

    Not thread-safe: a pool belongs to one compiled constraint (``ByteDFA`` serialises access).
    ``max_nodes`` bounds memory: exceeding it raises ``CompileLimitError``.
    """

    def __init__(self, max_nodes: int = 2_000_000):
        self.max_nodes = max_nodes
        self._nodes: list[tuple] = []
        self._ids: dict[tuple, int] = {}
        self._nullable: list[bool] = []
        self._has_bool: list[bool] = []  # contains AND/NOT: emptiness needs a search
        self._rows: dict[int, tuple[tuple[int, int], ...]] = {}
        self._live: dict[int, bool] = {}
        assert self._intern((_NOTHING,), False, False) == NOTHING_ID
        assert self._intern((_EPS,), True, False) == EPS_ID
        self.universal = self.not_(NOTHING_ID)

    # ------------------------------------------------------------------ constructors
    def _intern(self, node: tuple, nullable: bool, has_bool: bool) -> int:
        found = self._ids.get(node)
        if found is not None:
            return found
        if len(self._nodes) >= self.max_nodes:
            raise CompileLimitError(
                f"expression grew past {self.max_nodes} nodes; simplify the constraint or raise max_nodes"
            )
        idx = len(self._nodes)
        self._nodes.append(node)
        self._nullable.append(nullable)
        self._has_bool.append(has_bool)
        self._ids[node] = idx
        return idx

    @property
    def nothing(self) -> int:
        return NOTHING_ID

    @property
    def eps(self) -> int:
        return EPS_ID

    def byteset(self, mask: int) -> int:
        """One byte whose value is a set bit of ``mask`` (bit ``b`` set ⇔ byte ``b`` allowed)."""
        mask &= ALL_BYTES
        if not mask:
            return NOTHING_ID
        return self._intern((_BYTES, mask), False, False)

    def byte_range(self, lo: int, hi: int) -> int:
        """One byte in ``lo..hi`` inclusive."""
        if lo > hi:
            return NOTHING_ID
        return self.byteset(((1 << (hi + 1)) - 1) ^ ((1 << lo) - 1))

    def literal(self, data: bytes | str) -> int:
        """Exactly these bytes (a ``str`` is UTF-8 encoded)."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        return self.concat(*[self.byteset(1 << b) for b in data])

    def concat(self, *parts: int) -> int:
        """Concatenation of ``parts`` in order."""
        out = EPS_ID
        for p in reversed(parts):
            out = self._concat2(p, out)
        return out

    def _concat2(self, a: int, b: int) -> int:
        if a == NOTHING_ID or b == NOTHING_ID:
            return NOTHING_ID
        if a == EPS_ID:
            return b
        if b == EPS_ID:
            return a
        na = self._nodes[a]
        if na[0] == _CONCAT:  # keep right-nested: (x y) b == x (y b); iterative for long chains
            heads = []
            while na[0] == _CONCAT:
                heads.append(na[1])
                a = na[2]
                na = self._nodes[a]
            out = self._concat2(a, b)
            for x in reversed(heads):
                out = self._concat2(x, out)
            return out
        return self._intern(
            (_CONCAT, a, b), self._nullable[a] and self._nullable[b], self._has_bool[a] or self._has_bool[b]
        )

    def alt(self, *parts: int) -> int:
        """Union of ``parts``."""
        return self.alt_of(parts)

    def alt_of(self, parts: Iterable[int]) -> int:
        items: set[int] = set()
        mask = 0
        for p in parts:
            node = self._nodes[p]
            kind = node[0]
            if kind == _NOTHING:
                continue
            if kind == _ALT:
                for q in node[1]:
                    qn = self._nodes[q]
                    if qn[0] == _BYTES:
                        mask |= qn[1]
                    else:
                        items.add(q)
            elif kind == _BYTES:
                mask |= node[1]
            else:
                items.add(p)
        if self.universal in items:
            return self.universal
        if mask:
            items.add(self.byteset(mask))
        if not items:
            return NOTHING_ID
        if len(items) == 1:
            return next(iter(items))
        ids = tuple(sorted(items))
        return self._intern(
            (_ALT, ids), any(self._nullable[i] for i in ids), any(self._has_bool[i] for i in ids)
        )

    def and_(self, *parts: int) -> int:
        """Intersection of ``parts`` (strings every part matches)."""
        items: set[int] = set()
        for p in parts:
            node = self._nodes[p]
            if node[0] == _NOTHING:
                return NOTHING_ID
            if p == self.universal:
                continue
            if node[0] == _AND:
                items.update(node[1])
            else:
                items.add(p)
        if not items:
            return self.universal
        if len(items) == 1:
            return next(iter(items))
        byte_masks = [self._nodes[i][1] for i in items if self._nodes[i][0] == _BYTES]
        if len(byte_masks) == len(items):  # intersection of single-byte sets
            m = ALL_BYTES
            for x in byte_masks:
                m &= x
            return self.byteset(m)
        ids = tuple(sorted(items))
        return self._intern((_AND, ids), all(self._nullable[i] for i in ids), True)

    def not_(self, a: int) -> int:
        """Complement: every byte string that ``a`` does not match."""
        node = self._nodes[a]
        if node[0] == _NOT:
            return node[1]
        return self._intern((_NOT, a), not self._nullable[a], True)

    def diff(self, a: int, b: int) -> int:
        """Strings matched by ``a`` but not by ``b``."""
        return self.and_(a, self.not_(b))

    def repeat(self, a: int, lo: int, hi: int = INF) -> int:
        """``a{lo,hi}``; ``hi=INF`` (-1) for no upper bound."""
        if lo < 0 or (hi != INF and hi < lo):
            raise ValueError(f"bad repetition bounds {{{lo},{hi}}}")
        if hi == 0 or a == EPS_ID:
            return EPS_ID
        if a == NOTHING_ID:
            return EPS_ID if lo == 0 else NOTHING_ID
        if lo == 1 and hi == 1:
            return a
        return self._intern((_REPEAT, a, lo, hi), lo == 0 or self._nullable[a], self._has_bool[a])

    def optional(self, a: int) -> int:
        return self.alt(a, EPS_ID)

    def star(self, a: int) -> int:
        return self.repeat(a, 0, INF)

    def plus(self, a: int) -> int:
        return self.repeat(a, 1, INF)

    def join(self, items: Sequence[int], sep: int) -> int:
        """items[0] sep items[1] sep ... (EPS for no items)."""
        parts: list[int] = []
        for i, x in enumerate(items):
            if i:
                parts.append(sep)
            parts.append(x)
        return self.concat(*parts)

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self._nodes)

    def node(self, a: int) -> tuple:
        return self._nodes[a]

    def nullable(self, a: int) -> bool:
        """True when ``a`` matches the empty string (an accepting DFA state)."""
        return self._nullable[a]

    def row(self, a: int) -> tuple[tuple[int, int], ...]:
        """Derivatives of ``a`` by every byte: disjoint ``(mask, id)`` pairs, NOTHING left out."""
        found = self._rows.get(a)
        if found is None:
            found = self._compute_row(a)
            self._rows[a] = found
        return found

    def derivative(self, a: int, byte: int) -> int:
        for mask, target in self.row(a):
            if mask >> byte & 1:
                return target
        return NOTHING_ID

    def _compute_row(self, a: int) -> tuple[tuple[int, int], ...]:
        node = self._nodes[a]
        kind = node[0]
        if kind == _BYTES:
            return ((node[1], EPS_ID),)
        if kind in (_NOTHING, _EPS):
            return ()
        if kind == _CONCAT:
            _, x, y = node
            head = tuple((m, self._concat2(t, y)) for m, t in self.row(x))
            if not self._nullable[x]:
                return head
            return self._merge([head, self.row(y)], self.alt_of)
        if kind == _ALT:
            return self._merge([self.row(x) for x in node[1]], self.alt_of)
        if kind == _AND:
            return self._intersect([self.row(x) for x in node[1]])
        if kind == _NOT:
            covered = 0
            out = []
            for m, t in self.row(node[1]):
                covered |= m
                out.append((m, self.not_(t)))
            rest = ALL_BYTES & ~covered
            if rest:
                out.append((rest, self.universal))
            return tuple(out)
        if kind == _REPEAT:
            _, x, lo, hi = node
            rest = self.repeat(x, max(lo - 1, 0), INF if hi == INF else hi - 1)
            return tuple((m, self._concat2(t, rest)) for m, t in self.row(x))
        raise AssertionError(f"unknown node kind {kind}")

    def _merge(self, rows: list[tuple[tuple[int, int], ...]], combine) -> tuple[tuple[int, int], ...]:
        """Union of rows: refine their masks into disjoint parts, ``combine`` the targets of each.

        Entries are first grouped by identical mask (alternations of literals repeat the same
        first-byte masks), then each distinct mask splits the parts it overlaps, so the cost is
        (distinct masks) x (parts) big-int operations, independent of how many bytes a mask holds.
        """
        rows = [r for r in rows if r]
        if not rows:
            return ()
        if len(rows) == 1:
            return rows[0]
        by_mask: dict[int, list[int]] = {}
        for r in rows:
            for m, t in r:
                lst = by_mask.get(m)
                if lst is None:
                    by_mask[m] = [t]
                else:
                    lst.append(t)
        parts: list[tuple[int, list[int]]] = []
        covered = 0
        for m, ts in by_mask.items():
            if not m & covered:
                parts.append((m, ts))
                covered |= m
                continue
            refined = []
            rest = m
            for pm, pts in parts:
                inter = pm & m
                if inter:
                    refined.append((inter, pts + ts))
                    if inter != pm:
                        refined.append((pm ^ inter, pts))
                    rest ^= inter
                else:
                    refined.append((pm, pts))
            if rest:
                refined.append((rest, ts))
            parts = refined
            covered |= m
        out: dict[int, int] = {}
        for m, ts in parts:
            t = ts[0] if len(ts) == 1 else combine(ts)
            if t != NOTHING_ID:
                out[t] = out.get(t, 0) | m
        return tuple((m, t) for t, m in out.items())

    def _intersect(self, rows: list[tuple[tuple[int, int], ...]]) -> tuple[tuple[int, int], ...]:
        acc: list[tuple[int, tuple[int, ...]]] = [(ALL_BYTES, ())]
        for r in rows:
            nxt = []
            for m1, ts in acc:
                for m2, t in r:
                    m = m1 & m2
                    if m:
                        nxt.append((m, ts + (t,)))
            acc = nxt
            if not acc:
                return ()
        out: dict[int, int] = {}
        for m, ts in acc:
            t = self.and_(*ts)
            if t != NOTHING_ID:
                out[t] = out.get(t, 0) | m
        return tuple((m, t) for t, m in out.items())

    def is_live(self, a: int, budget: int = 100_000) -> bool:
        """True when ``a`` matches at least one string.

        Without AND/NOT every node but NOTHING is live (the constructors keep it so). With them,
        search the derivative graph for an accepting node, visiting at most ``budget`` nodes
        (exceeding it raises ``CompileLimitError`` rather than guessing).
        """
        if a == NOTHING_ID:
            return False
        if not self._has_bool[a] or self._nullable[a]:
            return True
        known = self._live.get(a)
        if known is not None:
            return known
        node = self._nodes[a]
        if node[0] in (_CONCAT, _ALT, _REPEAT):  # decided by the parts: no search needed
            if node[0] == _CONCAT:
                live = True
                while live and node[0] == _CONCAT:  # iterative along right-nested chains
                    live = self.is_live(node[1], budget)
                    nxt = node[2]
                    node = self._nodes[nxt]
                live = live and self.is_live(nxt, budget)
            elif node[0] == _ALT:
                live = any(self.is_live(x, budget) for x in node[1])
            else:
                live = node[2] == 0 or self.is_live(node[1], budget)
            self._live[a] = live
            return live
        seen = {a}
        stack = deque([a])  # breadth first: the shortest witness is usually a few bytes away
        found = False
        while stack and not found:
            x = stack.popleft()
            for _, t in self.row(x):
                if t in seen or t == NOTHING_ID:
                    continue
                if self._nullable[t] or self._live.get(t) or not self._has_bool[t]:
                    found = True
                    break
                if self._live.get(t) is False:
                    continue
                seen.add(t)
                if len(seen) > budget:
                    raise CompileLimitError(f"emptiness check visited more than {budget} states")
                stack.append(t)
        if found:
            self._live[a] = True
        else:  # every node reachable from a is dead too
            for x in seen:
                self._live[x] = False
        return found

    def matches(self, a: int, data: bytes) -> bool:
        """Whole-string match of ``data`` against ``a`` (slow path: for tests and checks)."""
        for b in data:
            a = self.derivative(a, b)
            if a == NOTHING_ID:
                return False
        return self._nullable[a]
