"""Brzozowski derivatives of ``rx.ExprPool`` expressions, a whole byte row at a time.

``Derivatives`` is the query half of ``ExprPool`` (it reads the pool's node tables and calls its
constructors): ``row(e)`` is a tuple of ``(mask, id)`` pairs with disjoint byte masks listing
every byte whose derivative is not NOTHING, memoised per node; ``is_live`` decides emptiness
(a search only when AND/NOT are involved); ``matches`` runs a whole string.
"""

from __future__ import annotations

from collections import deque

from ..errors import CompileLimitError

INF = -1
ALL_BYTES = (1 << 256) - 1

NOTHING_ID = 0
EPS_ID = 1

_NOTHING, _EPS, _BYTES, _CONCAT, _ALT, _AND, _NOT, _REPEAT, _SHUFFLE = range(9)


class Derivatives:
    """Mixin for ``ExprPool``: uses ``_nodes``, ``_nullable``, ``_has_bool``, ``_rows``, ``_live``
    and the constructors ``_concat2``, ``alt_of``, ``and_``, ``not_``, ``repeat``, ``universal``,
    ``shuffle_items``, ``shuffle_rest``."""

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
            cat = self._concat2
            head = tuple([(m, y if t == EPS_ID else cat(t, y)) for m, t in self.row(x)])
            if not self._nullable[x]:
                return head
            return self._merge([head, self.row(y)], self.alt_of)
        if kind == _ALT:
            return self._merge([self.row(x) for x in node[1]], self.alt_of)
        if kind == _AND:
            parts = node[1]
            if len(parts) == 2:  # x minus y (a key that is none of the declared names): no walk of NOT(y)'s row
                for x, y in (parts, parts[::-1]):
                    ny = self._nodes[y]
                    if ny[0] == _NOT and self._nodes[x][0] != _NOT:
                        return self._difference(self.row(x), self.row(ny[1]))
            return self._intersect([self.row(x) for x in parts])
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
        if kind == _SHUFFLE:  # expanded one step on demand: the choice of the next element
            return self.row(self._shuffle_step(node))
        raise AssertionError(f"unknown node kind {kind}")

    def _shuffle_step(self, node: tuple) -> int:
        """``SHUFFLE`` as the union of its next steps: ``sep item`` or ``sep extra``, then the rest."""
        _, base, left, sep, extra, need, room = node  # room >= 1: ``shuffle_rest`` makes room 0 EPS
        room = INF if room == INF else room - 1
        exprs = self.shuffle_items(base)[0]
        opts = []
        for j, x in enumerate(exprs):
            if left >> j & 1:
                rest = self.shuffle_rest(base, left & ~(1 << j), sep, extra, need - 1, room)
                opts.append(self._concat2(sep, self._concat2(x, rest)))
        if extra != NOTHING_ID:
            rest = self.shuffle_rest(base, left, sep, extra, need - 1, room)
            opts.append(self._concat2(sep, self._concat2(extra, rest)))
        return self.alt_of(opts)

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
        if len(rows) == 2 and (len(rows[0]) == 1 or len(rows[1]) == 1):  # one part into a row (a literal's byte)
            return self._merge_one(*(rows if len(rows[0]) == 1 else rows[::-1]), combine)
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

    def _merge_one(self, one: tuple[tuple[int, int], ...], row: tuple[tuple[int, int], ...], combine
                   ) -> tuple[tuple[int, int], ...]:
        """``_merge`` of a one-part row into another: only the parts it overlaps are split."""
        (m1, t1), = one
        out: dict[int, int] = {}
        covered = 0
        for m, t in row:
            inter = m & m1
            if inter:
                covered |= inter
                both = combine([t1, t])
                if both != NOTHING_ID:
                    out[both] = out.get(both, 0) | inter
                m ^= inter
                if not m:
                    continue
            out[t] = out.get(t, 0) | m
        if m1 & ~covered:
            out[t1] = out.get(t1, 0) | (m1 & ~covered)
        return tuple((m, t) for t, m in out.items())

    def _difference(self, xrow: tuple[tuple[int, int], ...], yrow: tuple[tuple[int, int], ...]
                    ) -> tuple[tuple[int, int], ...]:
        """Row of ``AND(x, NOT(y))`` from the rows of ``x`` and ``y``: where ``y`` has no derivative
        the target is ``x``'s own (``NOT(NOTHING)`` is universal), elsewhere ``x'`` minus ``y'``.
        The same row as ``_intersect`` of ``x`` and ``NOT(y)``, without an ``and_`` per part of ``x``."""
        ymask = 0
        for m, _ in yrow:
            ymask |= m
        out: dict[int, int] = {}
        for m, t in xrow:
            rest = m & ~ymask
            if rest:
                out[t] = out.get(t, 0) | rest
            if m & ymask:
                for my, ty in yrow:
                    inter = m & my
                    if inter:
                        d = self.and_(t, self.not_(ty))
                        if d != NOTHING_ID:
                            out[d] = out.get(d, 0) | inter
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

    def _concat_live(self, a: int, budget: int) -> bool:
        """Liveness of the right-nested concatenation chain at ``a`` (live iff every part is),
        recording it for every chain node passed: a new ``CONCAT(x, rest)`` over a ``rest`` already
        decided costs one lookup instead of a walk of the whole chain."""
        chain, cur = [], a
        while True:
            node = self._nodes[cur]
            if cur != a:
                if not self._has_bool[cur] or self._nullable[cur]:
                    live = True
                    break
                known = self._live.get(cur)
                if known is not None:
                    live = known
                    break
            if node[0] != _CONCAT:
                live = self.is_live(cur, budget)
                break
            chain.append(cur)
            if not self.is_live(node[1], budget):
                live = False  # this node and every chain node before it contain a dead part
                break
            cur = node[2]
        for c in chain:
            self._live[c] = live
        return live

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
                live = self._concat_live(a, budget)
            elif node[0] == _ALT:
                live = any(self.is_live(x, budget) for x in node[1])
            else:
                live = node[2] == 0 or self.is_live(node[1], budget)
            self._live[a] = live
            return live
        if node[0] == _SHUFFLE:  # not nullable: some element must follow
            _, base, left, sep, extra, need, _ = node
            exprs, required = self.shuffle_items(base)
            n_live, live = 0, self.is_live(sep, budget)
            for j, x in enumerate(exprs):
                if live and left >> j & 1:
                    ok = self.is_live(x, budget)
                    n_live += ok
                    live = ok or not required >> j & 1
            live = live and (need <= n_live or (extra != NOTHING_ID and self.is_live(extra, budget)))
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
