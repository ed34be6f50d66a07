"""Python regular expressions to byte-level expressions with exactly ``re.fullmatch``'s language.

    parse_regex(pattern, pool, flags=0) -> expression id

The result matches the UTF-8 encoding of a string ``s`` exactly when
``re.fullmatch(pattern, s, flags)`` is not None. Supported (everything Python parses except the
constructs listed below): literals, ``.``, classes with ranges, negation and ``\\d \\w \\s \\D
\\W \\S`` (Unicode semantics for ``str`` patterns, ASCII with ``re.ASCII``/``(?a)``),
IGNORECASE with Python's exact case folding, VERBOSE, DOTALL, MULTILINE, capturing /
non-capturing / named groups, inline and scoped flags, alternation, greedy and lazy repeats
(``{m,n}`` stays symbolic, so huge counts cost nothing up front).

Anchors ``^ $ \\A \\Z \\b \\B`` are exact wherever they do not sit inside an unbounded
repetition (``(?:^a)*`` raises): the pattern is split at each anchor and both sides are
restricted to what the assertion needs of the text before it (start, a ``\\n``, a word
character...) and after it (end, a final ``\\n``, a word character...). ``$`` without MULTILINE
also matches before a final newline, so ``a$\\n`` fully matches ``"a\\n"``; before Python 3.14
``\\B`` never matches in the empty string.

Rejected with ``RegexError`` (``construct`` names it): lookahead, negative lookahead,
lookbehind, negative lookbehind, backreference, conditional, atomic group, possessive
quantifier, an anchor inside an unbounded repetition, and malformed patterns (Python's message
and position).
"""

from __future__ import annotations

import sys

from ..errors import RegexError
from . import utf8
from .regex_ast import (
    Alt,
    Anchor,
    Chars,
    Node,
    Rep,
    Seq,
    intersect,
    is_subset,
    negate,
    parse_tree,
)
from .rx import EPS_ID, INF, NOTHING_ID, ExprPool

__all__ = ["parse_regex"]

_MAX_UNROLL = 64  # largest bounded repeat of an anchored group that is unrolled
_START = -1  # left context: nothing precedes the position
_ANY = -2  # left context: not needed by any remaining anchor
_NEEDS_LEFT = {"bos", "bol", "word", "nonword"}
_EMPTY_STRING_HAS_NO_NONBOUNDARY = sys.version_info < (3, 14)  # before 3.14, \B fails on ""


def parse_regex(pattern: str, pool: ExprPool, flags: int = 0) -> int:
    """Expression in ``pool`` matching exactly what ``re.fullmatch(pattern, s, flags)`` accepts."""
    return _Lowering(pool, parse_tree(pattern, flags)).run()


class _Lowering:
    """Lowers a resolved tree into ``pool``; anchors are handled against the whole string."""

    def __init__(self, pool: ExprPool, root: Node):
        self.pool = pool
        self.root = root
        self._anchors: dict[Node, bool] = {}
        self._exprs: dict[Node, int] = {}
        self._suffix: dict[tuple[tuple[Node, ...], int], int] = {}
        self._classes: dict[tuple[tuple[int, int], ...], int] = {}
        self.cells = self._cells(root)

    def run(self) -> int:
        if not self.has_anchor(self.root):
            return self.lower(self.root)
        return self.seq_ctx((self.root,), _START)

    # -------------------------------------------------------------- anchor-free nodes
    def char_class(self, ranges: tuple[tuple[int, int], ...]) -> int:
        found = self._classes.get(ranges)
        if found is None:
            found = self._classes[ranges] = utf8.char_class(self.pool, ranges)
        return found

    def has_anchor(self, node: Node) -> bool:
        found = self._anchors.get(node)
        if found is None:
            if isinstance(node, Anchor):
                found = True
            elif isinstance(node, Chars):
                found = False
            elif isinstance(node, Rep):
                found = self.has_anchor(node.item)
            else:
                found = any(self.has_anchor(x) for x in (node.items if isinstance(node, Seq) else node.branches))
            self._anchors[node] = found
        return found

    def lower(self, node: Node) -> int:
        """Expression of an anchor-free node."""
        found = self._exprs.get(node)
        if found is not None:
            return found
        pool = self.pool
        if isinstance(node, Chars):
            out = self.char_class(node.ranges)
        elif isinstance(node, Seq):
            out = pool.concat(*[self.lower(x) for x in node.items])
        elif isinstance(node, Alt):
            out = pool.alt_of([self.lower(x) for x in node.branches])
        elif isinstance(node, Rep):
            out = pool.repeat(self.lower(node.item), node.lo, INF if node.hi is None else node.hi)
        else:
            raise AssertionError(f"anchor {node} reached lower()")
        self._exprs[node] = out
        return out

    # -------------------------------------------------------------- anchors
    def _cells(self, root: Node) -> list[tuple[tuple[int, int], ...]]:
        """Partition of code points fine enough to decide every anchor's left-hand condition."""
        preds = []
        stack = [root]
        while stack:
            n = stack.pop()
            if isinstance(n, Anchor):
                if n.kind == "bol":
                    preds.append(((10, 10),))
                elif n.kind in ("word", "nonword"):
                    preds.append(n.word)
            elif isinstance(n, (Seq, Alt)):
                stack.extend(n.items if isinstance(n, Seq) else n.branches)
            elif isinstance(n, Rep):
                stack.append(n.item)
        cells = [((0, utf8.MAX_CODEPOINT),)]
        for p in preds:
            cells = [c for cell in cells for c in (intersect(cell, p), intersect(cell, negate(p))) if c]
        return cells

    def seq_ctx(self, items: tuple[Node, ...], left: int) -> int:
        """Strings ``w`` that match ``items`` when ``w`` runs to the end of the whole string and the
        text before it has left context ``left`` (``_START``, a cell index, or ``_ANY``)."""
        key = (items, left)
        found = self._suffix.get(key)
        if found is None:
            found = self._seq_ctx(items, left)
            self._suffix[key] = found
        return found

    def _seq_ctx(self, items: tuple[Node, ...], left: int) -> int:
        i = next((k for k, x in enumerate(items) if self.has_anchor(x)), None)
        if i is None:
            return self.pool.concat(*[self.lower(x) for x in items])
        head, x, tail = items[:i], items[i], items[i + 1:]
        if isinstance(x, Seq):
            return self.seq_ctx(head + x.items + tail, left)
        if isinstance(x, Alt):
            return self.pool.alt_of([self.seq_ctx(head + (b,) + tail, left) for b in x.branches])
        if isinstance(x, Rep):
            return self.seq_ctx(head + self._unroll(x) + tail, left)
        return self._split_at(head, x, tail, left)

    def _unroll(self, rep: Rep) -> tuple[Node, ...]:
        if rep.hi == 0:
            return ()
        if rep.lo > 0:
            return (rep.item, Rep(rep.item, rep.lo - 1, None if rep.hi is None else rep.hi - 1))
        if rep.hi is None or rep.hi > _MAX_UNROLL:
            raise RegexError("an anchor (^ $ \\A \\Z \\b \\B) inside a repetition with no small upper bound cannot be "
                             "compiled; move the anchor out of the repeated group", construct="anchor in repetition")
        return (Alt((Seq((rep.item, Rep(rep.item, 0, rep.hi - 1))), Seq(()))),)

    def _split_at(self, head: tuple[Node, ...], anchor: Anchor, tail: tuple[Node, ...], left: int) -> int:
        pool = self.pool
        prefix = pool.concat(*[self.lower(x) for x in head])
        needs_left = anchor.kind in _NEEDS_LEFT or self._tail_needs_left(tail)
        out = []
        for pre, ctx in self._left_cases(prefix, left, needs_left, anchor.kind):
            rest = self.seq_ctx(tail, ctx)
            out.append(pool.concat(pre, self._right(anchor, ctx, rest)))
        return pool.alt_of(out)

    def _tail_needs_left(self, tail: tuple[Node, ...]) -> bool:
        stack = list(tail)
        while stack:
            n = stack.pop()
            if isinstance(n, Anchor) and n.kind in _NEEDS_LEFT:
                return True
            if isinstance(n, (Seq, Alt)):
                stack.extend(n.items if isinstance(n, Seq) else n.branches)
            elif isinstance(n, Rep):
                stack.append(n.item)
        return False

    def _left_cases(self, prefix: int, left: int, needs_left: bool, kind: str) -> list[tuple[int, int]]:
        """Split ``prefix`` by the left context it leaves: ``(sub-expression, context)`` pairs,
        keeping only contexts where an anchor of ``kind`` can hold."""
        if not needs_left:
            return [(prefix, _ANY)]
        pool = self.pool
        cases = []
        if pool.nullable(prefix) and self._left_ok(kind, left):
            cases.append((EPS_ID, left))
        if prefix == EPS_ID:
            return cases
        for k, cell in enumerate(self.cells):
            if not self._left_ok(kind, k):
                continue
            ends_in_cell = pool.concat(pool.universal, self.char_class(cell))
            part = pool.and_(prefix, ends_in_cell)
            if part != NOTHING_ID:
                cases.append((part, k))
        return cases

    def _left_ok(self, kind: str, ctx: int) -> bool:
        if kind == "bos":
            return ctx == _START
        if kind == "bol":
            return ctx == _START or is_subset(self.cells[ctx], ((10, 10),))
        return True

    def _right(self, anchor: Anchor, ctx: int, rest: int) -> int:
        """``rest`` restricted to what ``anchor`` needs of the text after it."""
        pool = self.pool
        kind = anchor.kind
        if kind in ("bos", "bol"):
            return rest
        if kind == "eos":
            return EPS_ID if pool.nullable(rest) else NOTHING_ID
        if kind == "eol":
            return pool.alt(EPS_ID if pool.nullable(rest) else NOTHING_ID,
                            pool.literal("\n") if pool.matches(rest, b"\n") else NOTHING_ID)
        anything = pool.universal
        if kind == "eol_m":
            return pool.and_(rest, pool.alt(EPS_ID, pool.concat(pool.literal("\n"), anything)))
        word = self.char_class(anchor.word)
        other = self.char_class(negate(anchor.word))
        left_word = ctx >= 0 and is_subset(self.cells[ctx], anchor.word)
        starts_word = pool.concat(word, anything)
        starts_other = pool.alt(EPS_ID, pool.concat(other, anything))
        if kind == "word":
            return pool.and_(rest, starts_other if left_word else starts_word)
        if left_word:
            return pool.and_(rest, starts_word)
        if ctx == _START and _EMPTY_STRING_HAS_NO_NONBOUNDARY:
            starts_other = pool.concat(other, anything)
        return pool.and_(rest, starts_other)
