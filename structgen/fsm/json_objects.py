"""Objects and arrays as pool expressions: member/item sequences with exact counts.

Every container is built for the nesting level it starts at (``level``; its members or items
are at ``level + 1``, which fixes the indentation of line breaks, see ``json_lex``).

Objects: declared properties come first, in schema order, each present or (when optional)
absent; then any number of *extra* members (``additionalProperties``/``patternProperties``
pairs, keys other than the declared ones). With ``any_order`` the declared and extra members
interleave in any order instead (``ExprPool.shuffle``; at most ``MAX_ANY_ORDER_PROPERTIES``
declared ones). ``minProperties``/``maxProperties`` are counted exactly over both.
Arrays: ``prefixItems`` positions, then repeated ``items``; ``minItems``/``maxItems`` exact;
``contains`` with ``minContains``/``maxContains`` by intersection with a counting language.
"""

from __future__ import annotations

from typing import NamedTuple

from ..errors import SchemaError
from .json_lex import Lex
from .rx import INF

MAX_COUNT_WORK = 200_000
MAX_ANY_ORDER_PROPERTIES = 256  # a text writing all of them builds ~6 n^2 nodes (n = 256: 0.4 M)


class Member(NamedTuple):
    """A declared property: the member expression ``"key": value`` and whether it is required."""

    expr: int
    required: bool


class ContainerBuilder:
    def __init__(self, lex: Lex):
        self.lex = lex
        self.p = lex.pool

    # ------------------------------------------------------------------ objects
    def object(self, members: list[Member], extra: int | None, lo: int, hi: int | None, pointer: str,
               any_order: bool = False, level: int = 0) -> int:
        """An object at ``level``: ``members`` in order, then ``extra`` members; lo..hi members
        in all. With ``any_order``, ``members`` and ``extra`` ones in any order (``extra`` ones
        anywhere). Member expressions are built for ``level + 1``."""
        p = self.p
        comma = self.lex.comma(level + 1)
        if hi is not None and hi < lo:
            return p.nothing
        if any_order:
            if len(members) > MAX_ANY_ORDER_PROPERTIES:
                raise SchemaError(f"property_order='any' supports at most {MAX_ANY_ORDER_PROPERTIES} declared "
                                  f"properties per object, this one has {len(members)}", keyword="properties",
                                  pointer=pointer)
            body = p.shuffle([(m.expr, m.required) for m in members], comma,
                             p.nothing if extra is None else extra, lo, INF if hi is None else hi)
            return self.lex.object_of(body, level)
        cap = hi if hi is not None else lo
        if len(members) * (cap + 1) > MAX_COUNT_WORK:
            raise SchemaError("minProperties/maxProperties too large to count exactly",
                              keyword="maxProperties" if hi is not None else "minProperties", pointer=pointer)
        norm = (lambda c: c) if hi is not None else (lambda c: min(c, lo))
        tails: dict[tuple[int, int], int] = {}
        n = len(members)

        def extras(c: int, first: bool) -> int:
            need = max(lo - c, 0)
            room = INF if hi is None else hi - c
            if room != INF and room < need:
                return p.nothing
            if extra is None:
                return p.eps if need == 0 else p.nothing
            if first:
                more = p.concat(extra, p.repeat(p.concat(comma, extra), max(need - 1, 0), INF if room == INF else room - 1))
                if room == 0:
                    more = p.nothing
                return p.alt(p.eps, more) if need == 0 else more
            return p.repeat(p.concat(comma, extra), need, room)

        for i in range(n, -1, -1):  # bottom-up: tail(i, c) for every reachable count c
            for c in range(cap, 0, -1) if cap else (1,):
                c = norm(c)
                if (i, c) in tails:
                    continue
                if i == n:
                    tails[(i, c)] = extras(c, False)
                    continue
                m = members[i]
                opts = []
                if hi is None or c + 1 <= hi:
                    opts.append(p.concat(comma, m.expr, tails[(i + 1, norm(c + 1))]))
                if not m.required:
                    opts.append(tails[(i + 1, c)])
                tails[(i, c)] = p.alt_of(opts)
        head = extras(0, True)
        for i in range(n - 1, -1, -1):
            m = members[i]
            opts = []
            if hi is None or hi >= 1:
                opts.append(p.concat(m.expr, tails[(i + 1, norm(1))]))
            if not m.required:
                opts.append(head)
            head = p.alt_of(opts)
        return self.lex.object_of(head, level)

    # ------------------------------------------------------------------ arrays
    def array(self, prefix: list[int], rest: int | None, lo: int, hi: int | None, level: int = 0) -> int:
        """An array at ``level``: item j matches ``prefix[j]``, later items ``rest`` (None: no
        more); lo..hi items (item expressions built for ``level + 1``)."""
        p = self.p
        comma = self.lex.comma(level + 1)
        if hi is not None and hi < lo:
            return p.nothing
        top = INF if hi is None else hi
        k = len(prefix)

        def closed(j: int) -> int:  # j >= k items emitted, only ``rest`` items follow
            need = max(lo - j, 0)
            if rest is None:
                return p.eps if need == 0 else p.nothing
            room = INF if top == INF else top - j
            if room != INF and room < need:
                return p.nothing
            return p.repeat(p.concat(comma, rest), need, room)

        after = closed(k) if k >= 1 else None
        for j in range(k - 1, 0, -1):  # after(j): j items emitted, item j next
            opts = [p.eps] if j >= lo else []
            if top == INF or j < top:
                opts.append(p.concat(comma, prefix[j], after))
            after = p.alt_of(opts)
        if k == 0:
            first = p.concat(rest, closed(1)) if rest is not None and top != 0 else p.nothing
        else:
            first = p.concat(prefix[0], after) if top != 0 else p.nothing
        body = p.alt(p.eps, first) if lo == 0 else first
        return self.lex.array_of(body, level)

    def contains(self, match: int, other: int | None, lo: int, hi: int | None, level: int = 0) -> int:
        """Arrays at ``level`` with lo..hi items matching ``match``; ``other`` = values not
        matching it (needed only when ``hi`` is set). Items outside ``match`` are any JSON value.
        Item expressions are built for ``level + 1``."""
        p = self.p
        anyv = self.lex.any_value(level + 1)
        comma = self.lex.comma(level + 1)
        star_any = p.star(p.concat(comma, anyv))
        if hi is None:
            if lo == 0:
                return self.array([], anyv, 0, None, level)
            # at least lo matches: (V,)* C ((,V)* , C){lo-1} (,V)*
            lead = p.alt(match, p.concat(anyv, star_any, comma, match))
            step = p.concat(star_any, comma, match)
            body = p.concat(lead, p.repeat(step, lo - 1, lo - 1), star_any)
            return self.lex.array_of(body, level)
        if hi < lo:
            return p.nothing
        skip = p.star(p.concat(comma, other))
        tail = {hi: skip}
        for k in range(hi - 1, -1, -1):  # tail[k]: k matches seen, at least one item emitted
            end = p.eps if k >= lo else p.nothing
            tail[k] = p.concat(skip, p.alt(end, p.concat(comma, match, tail[k + 1])))
        body = p.alt(p.concat(other, tail[0]), p.concat(match, tail[1]) if hi >= 1 else p.nothing)
        if lo == 0:
            body = p.alt(p.eps, body)
        return self.lex.array_of(body, level)
