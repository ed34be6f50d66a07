"""Lexical building blocks of JSON text as pool expressions: whitespace, strings, numbers, values.

Every JSON Schema construct is built from these, so all of them agree on one *serialisation
grammar* (called U below). Agreement matters: ``not`` and exact ``oneOf`` take complements of
text languages, which is only sound when every construct accepts *every* U-text of the values it
accepts. U is:

- whitespace: ``"default"`` — exactly the layouts ``json.dumps`` prints with separators
  ``(", ", ": ")``, ``(",", ":")`` or ``indent=2``, mixed freely per position: none before ``:``
  or ``,``; after ``:`` nothing or one space; after ``,`` nothing, one space or a *line break*;
  after ``{``/``[`` and before ``}``/``]`` nothing or a line break; an empty ``{}``/``[]`` has
  nothing inside. A line break is ``\\n`` followed by the indentation of the nesting level
  that follows it, as ``indent=2`` prints it: two spaces per level (the members of a top-level
  object are at level 1, its closing brace at level 0), for levels up to
  ``MAX_INDENT_LEVELS`` (deeper, no line break). No tabs, no ``\\r``, nothing around the
  top-level value. So the text of a value depends on the level it starts at: every expression
  is built for one level (``Builder.level``) and complements are taken at that level.
  ``"compact"`` — no whitespace at all;
- strings: raw characters except ``"``, ``\\`` and U+0000..U+001F; the escapes ``\\" \\\\ \\/ \\b
  \\f \\n \\r \\t``; ``\\uXXXX`` (any hex case) only for code points below U+0080 — non-ASCII
  characters appear raw, as ``json.dumps(..., ensure_ascii=False)`` prints them;
- numbers: ``-?(0|[1-9][0-9]*)(\\.[0-9]+)?`` or normalised scientific
  ``-?[1-9](\\.[0-9]{0,15}[1-9])?[eE][+-]?[0-9]{1,3}`` (Python's float ``repr`` form).
"""

from __future__ import annotations

from .rx import ExprPool
from .rx_derive import _ALT, _CONCAT, _REPEAT, INF
from .utf8 import any_char

MAX_INDENT_LEVELS = 20  # a line break indents level k by exactly 2 * k spaces, k <= this
MAX_VALUE_LEVEL = 32  # arrays/objects of schema-free values (``any_value``) nest down to this level
MANTISSA_FRAC_DIGITS = 16
HEX = b"0123456789abcdefABCDEF"


def _set(chars: bytes) -> int:
    mask = 0
    for c in chars:
        mask |= 1 << c
    return mask


class Lex:
    """Shared token expressions for one pool and one whitespace policy (built once, cached)."""

    def __init__(self, pool: ExprPool, whitespace: str = "default"):
        self.pool = pool
        p = pool
        self.compact = whitespace == "compact"
        self.colon = p.concat(p.literal(":"), p.eps if self.compact else p.optional(p.literal(" ")))
        self._commas: dict[int, int] = {}
        self.digit = p.byte_range(0x30, 0x39)
        self.digit19 = p.byte_range(0x31, 0x39)
        self.hex = p.byteset(_set(HEX))
        self.quote = p.literal('"')
        self.str_char = self._string_char()
        self.any_string = p.concat(self.quote, p.star(self.str_char), self.quote)
        self.mantissa = p.concat(
            self.digit19,
            p.optional(p.concat(p.literal("."), p.repeat(self.digit, 0, MANTISSA_FRAC_DIGITS - 1), self.digit19)),
        )
        self.exp_marker = p.byteset(_set(b"eE"))
        self.exponent = p.concat(self.exp_marker, p.optional(p.byteset(_set(b"+-"))), p.repeat(self.digit, 1, 3))
        self.uint = p.alt(p.literal("0"), p.concat(self.digit19, p.star(self.digit)))
        plain = p.concat(self.uint, p.optional(p.concat(p.literal("."), p.plus(self.digit))))
        sci = p.concat(self.mantissa, self.exponent)
        self.any_number = p.concat(p.optional(p.literal("-")), p.alt(plain, sci))
        self.null = p.literal("null")
        self.boolean = p.alt(p.literal("true"), p.literal("false"))
        self._any_value: dict[int, int] = {}

    # ------------------------------------------------------------------ strings
    def _string_char(self) -> int:
        """One encoded character of a JSON string in U (raw, short escape, or ASCII ``\\u00XX``)."""
        p = self.pool
        raw = any_char(p, exclude=[(0, 0x1F), (0x22, 0x22), (0x5C, 0x5C)])
        short = p.concat(p.literal("\\"), p.byteset(_set(b'"\\/bfnrt')))
        return p.alt(raw, short, self.ascii_escape((1 << 128) - 1))

    def ascii_escape(self, mask: int) -> int:
        """``\\u00XX`` escapes (hex digits of any case) of the ASCII code points in bit ``mask``."""
        p = self.pool
        by_high: dict[int, int] = {}
        for c in range(128):
            if mask >> c & 1:
                by_high[c >> 4] = by_high.get(c >> 4, 0) | 1 << (c & 15)
        branches = []
        for hi, lows in by_high.items():
            low_bytes = 0
            for lo in range(16):
                if lows >> lo & 1:
                    low_bytes |= _set(f"{lo:x}{lo:X}".encode())
            branches.append(p.concat(p.literal("\\u00"), p.literal(f"{hi:x}"), p.byteset(low_bytes)))
        return p.alt_of(branches)

    def string_of(self, content: int) -> int:
        """A quoted JSON string whose encoded content (between the quotes) matches ``content``."""
        return self.pool.concat(self.quote, content, self.quote)

    def literal_string(self, s: str) -> int:
        """The one canonical encoding of ``s`` (``json.dumps(s, ensure_ascii=False)``)."""
        import json

        return self.pool.literal(json.dumps(s, ensure_ascii=False))

    # ------------------------------------------------------------------ structure
    def line_break(self, level: int) -> int:
        """``\\n`` and the indentation of ``level`` (NOTHING under ``"compact"`` or past
        ``MAX_INDENT_LEVELS``)."""
        p = self.pool
        if self.compact or level > MAX_INDENT_LEVELS:
            return p.nothing
        return p.literal("\n" + "  " * level)

    def comma(self, level: int) -> int:
        """``,`` and the whitespace allowed after it, before a member or item at ``level``."""
        found = self._commas.get(level)
        if found is None:
            p = self.pool
            after = p.eps if self.compact else p.alt(p.eps, p.literal(" "), self.line_break(level))
            found = self._commas[level] = p.concat(p.literal(","), after)
        return found

    def _bracketed(self, open_: str, body: int, close: str, level: int) -> int:
        """``open_`` body ``close`` of a container at ``level``: an empty body prints as
        ``{}``/``[]``, a non-empty one may have a line break (indented for ``level + 1``) after
        ``open_`` and one (indented for ``level``) before ``close``."""
        p = self.pool
        if body == p.nothing:
            return p.nothing
        full = self.nonempty(body)
        out = p.concat(p.literal(open_), p.optional(self.line_break(level + 1)), full,
                       p.optional(self.line_break(level)), p.literal(close))
        return p.alt(p.literal(open_ + close), out) if p.nullable(body) else out

    def nonempty(self, a: int) -> int:
        """The non-empty strings of ``a``, built structurally (no complement node)."""
        p = self.pool
        if not p.nullable(a):
            return a
        node = p.node(a)
        kind = node[0]
        if a == p.eps:
            return p.nothing
        if kind == _ALT:
            return p.alt_of(self.nonempty(x) for x in node[1])
        if kind == _CONCAT:  # both halves nullable
            return p.alt(p.concat(self.nonempty(node[1]), node[2]), self.nonempty(node[2]))
        if kind == _REPEAT:
            x, hi = node[1], node[3]
            return p.concat(self.nonempty(x), p.repeat(x, 0, INF if hi == INF else hi - 1))
        return p.diff(a, p.eps)

    def array_of(self, body: int, level: int = 0) -> int:
        """``[`` body ``]`` at ``level``; body is the (possibly empty) item list, items at ``level + 1``."""
        return self._bracketed("[", body, "]", level)

    def object_of(self, body: int, level: int = 0) -> int:
        """``{`` body ``}`` at ``level``; body is the (possibly empty) member list, members at ``level + 1``."""
        return self._bracketed("{", body, "}", level)

    def member(self, key: int, value: int) -> int:
        """``key:value`` or ``key: value`` (no whitespace before the colon)."""
        return self.pool.concat(key, self.colon, value)

    def any_value(self, level: int = 0) -> int:
        """Any JSON value in U starting at ``level``, its arrays/objects nesting down to
        ``MAX_VALUE_LEVEL`` (all levels share one chain of expressions)."""
        found = self._any_value.get(level)
        if found is not None:
            return found
        p = self.pool
        scalars = p.alt(self.null, self.boolean, self.any_number, self.any_string)
        level = min(level, MAX_VALUE_LEVEL)
        for k in range(MAX_VALUE_LEVEL, level - 1, -1):  # deepest first, each level from the next
            if k in self._any_value:
                continue
            if k == MAX_VALUE_LEVEL:
                self._any_value[k] = scalars
                continue
            inner, comma = self._any_value[k + 1], self.comma(k + 1)
            items = p.optional(p.concat(inner, p.star(p.concat(comma, inner))))
            pair = self.member(self.any_string, inner)
            members = p.optional(p.concat(pair, p.star(p.concat(comma, pair))))
            self._any_value[k] = p.alt(scalars, self.array_of(items, k), self.object_of(members, k))
        return self._any_value[level]
