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
    ALT(ids)         union, flattened, sorted, deduplicated, NOTHING-free, BYTES merged,
                     common heads factored (h t1 | h t2 -> h (t1|t2)), counted repeats of
                     one body merged (x{0,3} | x{2,7} -> x{0,7}), eps dropped beside a
                     nullable member
    AND(ids)         intersection, flattened, sorted
    NOT(a)           complement over all byte strings
    REPEAT(a, lo, hi) a{lo,hi}; hi == INF for unbounded
    SHUFFLE(base, left, sep, extra, need, room)
                     ``sep x`` repeated, each x an item of ``base`` still in the bit set
                     ``left`` (each at most once, every required one present) or ``extra``
                     (any number of times), in any order, need..room elements in all;
                     ``base`` indexes the pool's item lists (``shuffle_items``); expanded
                     one step at a time by the derivative, so the expression never lists
                     the orders

The union normal form is what keeps the derivative set finite and small: Brzozowski's theorem
needs union to be associative, commutative and idempotent (so ``(a|aa)*b`` or ``(a*)*`` reach
a fixed point), and the factoring and count merging collapse the sets of "remaining counts"
that ambiguous bounded repeats such as ``([a-z]+ ?){0,300}`` would otherwise enumerate.

Derivatives are computed a whole *row* at a time (``rx_derive.Derivatives``, the query half of
the pool): ``row(e)`` is a tuple of ``(mask, id)`` pairs with disjoint byte masks, listing every
byte whose derivative is not NOTHING. Rows are memoised per node, so a sub-expression shared by
many states is differentiated once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..errors import CompileLimitError
from .rx_derive import (
    _ALT,
    _AND,
    _BYTES,
    _CONCAT,
    _EPS,
    _NOT,
    _NOTHING,
    _REPEAT,
    _SHUFFLE,
    ALL_BYTES,
    EPS_ID,
    INF,
    NOTHING_ID,
    Derivatives,
)

_FRESH_SIZE = 3  # NOTHING, EPS and the universal language


class ExprPool(Derivatives):
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
        self._cat_memo: dict[tuple[int, int], int] = {}  # (CONCAT a, b) -> a b, right-nested
        # SHUFFLE item lists: (exprs, bit set of the required ones, bit set of those with AND/NOT)
        self._bases: list[tuple[tuple[int, ...], int, int]] = []
        self._base_ids: dict[tuple[tuple[int, ...], int], int] = {}
        assert self._intern((_NOTHING,), False, False) == NOTHING_ID
        assert self._intern((_EPS,), True, False) == EPS_ID
        self.universal = self.not_(NOTHING_ID)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_cat_memo"] = {}  # a cache: not worth its size in a pickle
        return state

    def is_fresh(self) -> bool:
        """True while the pool holds only the nodes every pool starts with (nothing built yet)."""
        return len(self._nodes) == _FRESH_SIZE and not self._rows and not self._live

    def adopt(self, template: ExprPool) -> None:
        """Make this fresh pool an exact copy of ``template`` (nodes, memoised rows, liveness):
        every id of ``template`` means the same expression here. Copying tables is far cheaper
        than rebuilding what a template holds (lexical pieces, formats); ``template`` is only
        read. Raises ``ValueError`` unless ``is_fresh()``, ``CompileLimitError`` past ``max_nodes``.
        """
        if not self.is_fresh():
            raise ValueError("adopt() needs a fresh pool")
        if len(template._nodes) > self.max_nodes:
            raise CompileLimitError(
                f"expression grew past {self.max_nodes} nodes; simplify the constraint or raise max_nodes"
            )
        self._nodes = list(template._nodes)
        self._ids = dict(template._ids)
        self._nullable = list(template._nullable)
        self._has_bool = list(template._has_bool)
        self._rows = dict(template._rows)
        self._live = dict(template._live)
        self._cat_memo = dict(template._cat_memo)
        self._bases = list(template._bases)
        self._base_ids = dict(template._base_ids)

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
        out = EPS_ID
        intern, byteset = self._intern, self.byteset
        for b in reversed(data):  # single bytes right-nested: already the normal form
            head = byteset(1 << b)
            out = head if out == EPS_ID else intern((_CONCAT, head, out), False, False)
        return out

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
            memo = self._cat_memo
            found = memo.get((a, b))
            if found is not None:
                return found
            chain = []  # (suffix of a, its head), outermost first
            while na[0] == _CONCAT:
                chain.append((a, na[1]))
                a = na[2]
                na = self._nodes[a]
                found = memo.get((a, b))
                if found is not None:
                    break
            out = self._concat2(a, b) if found is None else found
            nullable, has_bool = self._nullable, self._has_bool
            # heads of a normal CONCAT: neither EPS, NOTHING nor CONCAT. Every suffix's result is
            # memoised: a derivative of a chain is usually its suffix, concatenated again next step
            for suffix, x in reversed(chain):
                out = self._intern((_CONCAT, x, out), nullable[x] and nullable[out], has_bool[x] or has_bool[out])
                memo[(suffix, b)] = out
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
        if len(items) > 1:
            items = self._factor(items)
        if mask:
            items.add(self.byteset(mask))
        if not items:
            return NOTHING_ID
        if len(items) == 1:
            return next(iter(items))
        if EPS_ID in items and any(self._nullable[i] for i in items if i != EPS_ID):
            items.discard(EPS_ID)  # eps | n == n for nullable n
            if len(items) == 1:
                return next(iter(items))
        ids = tuple(sorted(items))
        return self._intern(
            (_ALT, ids), any(self._nullable[i] for i in ids), any(self._has_bool[i] for i in ids)
        )

    def _factor(self, items: set[int]) -> set[int]:
        """Normal-form rewrites of union members that keep derivative sets small.

        ``h t1 | h t2 -> h (t1 | t2)`` (common heads; ``h`` alone counts as ``h eps``) and
        ``x{a,b} | x{c,d} -> x{min,max}`` when the count intervals overlap or touch. Without
        them, ``([a-z]+ ?){0,300}`` has a derivative per set of remaining counts.
        """
        heads: dict[int, list[int]] = {}
        reps: dict[int, list[int]] = {}
        nodes = self._nodes
        for i in items:
            node = nodes[i]
            if node[0] == _CONCAT:
                heads.setdefault(node[1], []).append(i)
            elif node[0] == _REPEAT:
                reps.setdefault(node[1], []).append(i)
        singles = len(heads) == sum(map(len, heads.values())) and len(reps) == sum(map(len, reps.values()))
        if singles and not any(h in items for h in heads) and not any(x in items for x in reps):
            return items
        out = set(items)
        for h, group in heads.items():
            if len(group) < 2 and h not in items:
                continue
            tails = [nodes[i][2] for i in group]
            if h in out:
                out.discard(h)
                tails.append(EPS_ID)
            out.difference_update(group)
            out.add(self._concat2(h, self.alt_of(tails)))
        for x, group in reps.items():
            group = [i for i in group if i in out]
            if x in out:
                group.append(x)
            if len(group) < 2:
                continue
            out.difference_update(group)
            out.update(self._merge_counts(x, group))
        return out

    def _merge_counts(self, x: int, group: list[int]) -> list[int]:
        """Union of ``x{lo,hi}`` members (``x`` itself is ``x{1,1}``) as few repeats as possible."""
        spans = sorted((1, 1) if i == x else (self._nodes[i][2], self._nodes[i][3]) for i in group)
        merged: list[list[int]] = []
        for lo, hi in spans:
            if merged and (merged[-1][1] == INF or lo <= merged[-1][1] + 1):
                if merged[-1][1] != INF and (hi == INF or hi > merged[-1][1]):
                    merged[-1][1] = hi
            else:
                merged.append([lo, hi])
        return [self.repeat(x, lo, hi) for lo, hi in merged]

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

    def shuffle(self, items: Sequence[tuple[int, bool]], sep: int, extra: int, lo: int, hi: int = INF) -> int:
        """Lists ``x1 sep x2 sep ...`` of lo..hi elements (``hi=INF`` for no bound), each element
        one of ``items`` — ``(expr, required)`` pairs, each used at most once, every required one
        present — or ``extra`` (NOTHING for none; any number of times), in any order.

        Built as the union over the first element followed by a ``SHUFFLE`` node; derivatives
        expand a ``SHUFFLE`` one element at a time, so the states reached are the subsets of
        items (times counts) that an input actually visits, never the n! orders. A node names
        its items by a shared list and a bit set of those left: O(1) to build, not O(n).
        """
        if lo < 0 or (hi != INF and hi < lo):
            raise ValueError(f"bad shuffle bounds {{{lo},{hi}}}")
        kept = []
        for x, req in items:
            if x == NOTHING_ID:
                if req:
                    return NOTHING_ID
                continue
            kept.append((x, bool(req)))
        kept.sort()
        exprs = tuple(x for x, _ in kept)
        required = sum(1 << j for j, (_, req) in enumerate(kept) if req)
        key = (exprs, required)
        base = self._base_ids.get(key)
        if base is None:
            base = self._base_ids[key] = len(self._bases)
            self._bases.append((exprs, required, sum(1 << j for j, x in enumerate(exprs) if self._has_bool[x])))
        full = (1 << len(exprs)) - 1
        opts = [EPS_ID] if lo == 0 and not required else []
        if hi != 0:
            room = INF if hi == INF else hi - 1
            for j, x in enumerate(exprs):
                opts.append(self._concat2(x, self.shuffle_rest(base, full & ~(1 << j), sep, extra, lo - 1, room)))
            if extra != NOTHING_ID:
                opts.append(self._concat2(extra, self.shuffle_rest(base, full, sep, extra, lo - 1, room)))
        return self.alt_of(opts)

    def shuffle_items(self, base: int) -> tuple[tuple[int, ...], int]:
        """The item expressions of a ``SHUFFLE`` base and the bit set of the required ones."""
        return self._bases[base][:2]

    def shuffle_rest(self, base: int, left: int, sep: int, extra: int, need: int, room: int) -> int:
        """``(sep x)`` repeated: the continuation of ``shuffle`` after an element, with the items
        of ``base`` in the bit set ``left`` still unused, ``need`` more elements at least and
        ``room`` at most (INF: no bound)."""
        need = max(need, 0)
        n_req = (left & self._bases[base][1]).bit_count()
        n_left = left.bit_count()
        if need <= n_req:
            need = 0  # the required items already make the count
        if room != INF and (room < n_req or room < need):
            return NOTHING_ID
        if extra == NOTHING_ID:
            if need > n_left:
                return NOTHING_ID
            if room != INF and room >= n_left:
                room = INF  # never binding
        if sep == NOTHING_ID or not left or room == 0:
            if sep == NOTHING_ID or extra == NOTHING_ID or room == 0:
                return EPS_ID if n_req == 0 and need == 0 else NOTHING_ID
            return self.repeat(self._concat2(sep, extra), need, room)
        has_bool = self._has_bool[sep] or self._has_bool[extra] or bool(left & self._bases[base][2])
        return self._intern((_SHUFFLE, base, left, sep, extra, need, room), n_req == 0 and need == 0, has_bool)

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
