"""JSON string schemas: length in code points, ECMA-262 ``pattern``, ``format``.

A constraint on a string's *value* is first built as an expression over the UTF-8 bytes of the
decoded value, then ``lift`` maps it to the encoded text between the quotes: every ASCII byte
becomes the alternation of its encodings in the grammar U (raw when allowed, a short escape,
``\\u00XX`` in any hex case), non-ASCII bytes stay as they are. The encodings form a prefix
code, so the map is injective and commutes with concatenation, union, repetition,
intersection and (relative to U's string content) complement: the lifted language holds every
U-encoding of exactly the accepted values.

``pattern`` is ECMA-262 with search semantics: ``translate_ecma`` rewrites it into Python
syntax with ECMA meanings (``\\d`` = ``[0-9]``, ``\\w`` = ``[A-Za-z0-9_]``, ECMA ``\\s``, ``.``
excludes the four line terminators, ``^``/``$`` only at the ends of the string) and the result
is wrapped in ``(?s:.)*(?:...)(?s:.)*``. ``\\p{...}`` property escapes raise ``SchemaError``.
Inside a class, ``\\D``/``\\W``/``\\S`` are resolved by set arithmetic when the class closes
(``_negated_class``).
"""

from __future__ import annotations

import re

from ..errors import RegexError, SchemaError
from . import rx
from .json_lex import Lex

_ECMA_SPACE = r"\t\n\x0b\x0c\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_CLASS = {
    "d": ("[0-9]", "0-9"),
    "D": ("[^0-9]", None),
    "w": ("[A-Za-z0-9_]", "A-Za-z0-9_"),
    "W": ("[^A-Za-z0-9_]", None),
    "s": (f"[{_ECMA_SPACE}]", _ECMA_SPACE),
    "S": (f"[^{_ECMA_SPACE}]", None),
}
_SHORT = {0x22: '"', 0x5C: "\\", 0x2F: "/", 0x08: "b", 0x0C: "f", 0x0A: "n", 0x0D: "r", 0x09: "t"}
_RAW_ASCII = sum(1 << b for b in range(0x20, 0x80) if b not in (0x22, 0x5C))


def translate_ecma(pattern: str, pointer: str) -> str:
    """Rewrite an ECMA-262 regex into Python ``re`` syntax with the same (search) meaning."""
    out: list[str] = []
    i, n, in_class = 0, len(pattern), False
    class_at, body_at, negated = 0, 0, []  # where the open class and its items start in ``out``; its \\D \\W \\S
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            e = pattern[i + 1]
            if e in _CLASS:
                whole, inner = _CLASS[e]
                if in_class and inner is None:
                    negated.append(_CLASS[e.lower()][1])  # set arithmetic when the class closes
                else:
                    out.append(inner if in_class else whole)
            elif e in "pP":
                raise SchemaError("Unicode property escapes (\\p{...}) are not supported",
                                  keyword="pattern", pointer=pointer)
            elif e == "c" and i + 2 < n and pattern[i + 2].isalpha():
                out.append(f"\\x{ord(pattern[i + 2]) % 32:02x}")
                i += 1
            elif e == "/":
                out.append("/")
            elif e == "k":
                raise SchemaError("backreferences are not supported", keyword="pattern", pointer=pointer)
            else:
                out.append(c + e)
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
                if negated:
                    out[class_at:] = [_negated_class("".join(out[body_at:]), body_at > class_at + 1, negated,
                                                     pointer)]
                    negated = []
                    i += 1
                    continue
            elif c == "[":
                out.append("\\[")
                i += 1
                continue
            out.append(c)
        elif c == "[":
            in_class, class_at = True, len(out)
            if pattern.startswith("[^]", i):
                out.append("(?s:.)")
                in_class = False
                i += 3
                continue
            if pattern.startswith("[]", i):
                out.append("[^\\s\\S]")
                in_class = False
                i += 2
                continue
            out.append(c)
            if i + 1 < n and pattern[i + 1] == "^":
                out.append("^")
                i += 1
            body_at = len(out)
        elif c == ".":
            out.append("[^\\n\\r\\u2028\\u2029]")
        elif c == "^":
            out.append("\\A")
        elif c == "$":
            out.append("\\Z")
        elif c == "(" and pattern.startswith("(?<", i) and not pattern.startswith(("(?<=", "(?<!"), i):
            out.append("(?P<")
            i += 3
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _negated_class(body: str, inverted: bool, negated: list[str], pointer: str) -> str:
    """A Python class equal to the ECMA class (``[^...]`` when ``inverted``) whose other items,
    translated, are ``body``, plus the negated escapes ``negated`` (their positive sets, e.g. the
    digits for ``\\D``). ``[P\\D]`` = P or a non-digit = everything but the digits outside P;
    ``[^P\\D]`` = the digits outside P. The positive sets are small, so that remainder is listed
    character by character (membership in P decided by Python's own ``re``)."""
    common = None
    for inner in negated:
        chars = set(_expand_set(inner))
        common = chars if common is None else common & chars
    caret = "\\" if body.startswith("^") else ""  # a leading ^ of the items is a literal caret, not a negation
    try:
        inside = re.compile(f"[{caret}{body}]") if body else None
    except re.error as e:
        raise SchemaError(f"character class cannot be compiled: {e.msg}", keyword="pattern", pointer=pointer) from None
    rest = sorted(ch for ch in common if inside is None or not inside.fullmatch(ch))
    listed = "".join(f"\\U{ord(ch):08x}" for ch in rest)
    if inverted:  # only these characters
        return f"[{listed}]" if listed else "[^\\s\\S]"
    return f"[^{listed}]" if listed else "(?s:.)"


def _expand_set(inner: str) -> str:
    """The characters of a class body made of single characters and ``a-b`` ranges (one of the
    positive sets of ``_CLASS``)."""
    text = inner.encode().decode("unicode_escape") if "\\" in inner else inner
    out, i = [], 0
    while i < len(text):
        if i + 2 < len(text) and text[i + 1] == "-":
            out.extend(chr(c) for c in range(ord(text[i]), ord(text[i + 2]) + 1))
            i += 3
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


class StringBuilder:
    """String-value expressions over one ``Lex``."""

    def __init__(self, lex: Lex):
        self.lex = lex
        self.p = lex.pool
        self.content_any = self.p.star(lex.str_char)
        self._lift_memo: dict[int, int] = {}
        self._byte_memo: dict[int, int] = {}
        self._patterns: dict[str, int] = {}

    def regex_value(self, python_regex: str) -> int:
        """Value-level expression (over decoded UTF-8) fully matching a Python regex."""
        from .regex import parse_regex

        return parse_regex(python_regex, self.p)

    def pattern_content(self, pattern: str, pointer: str, keyword: str = "pattern") -> int:
        """Encoded string content whose value contains a match of ECMA ``pattern``."""
        found = self._patterns.get(pattern)
        if found is not None:
            return found
        translated = translate_ecma(pattern, pointer)
        try:
            value = self.regex_value(f"(?s:.)*(?:{translated})(?s:.)*")
        except RegexError as e:
            raise SchemaError(f"pattern {pattern!r} cannot be compiled: {e}", keyword=keyword, pointer=pointer) from None
        out = self.lift(value)
        self._patterns[pattern] = out
        return out

    def length(self, lo: int, hi: int) -> int:
        """Encoded content of lo..hi code points (hi -1: unbounded)."""
        return self.p.repeat(self.lex.str_char, lo, hi)

    # ------------------------------------------------------------------ lifting
    def lift(self, root: int) -> int:
        """Map a value-level expression to encoded string content (see module docstring)."""
        p, memo = self.p, self._lift_memo
        stack = [root]
        while stack:
            a = stack[-1]
            if a in memo:
                stack.pop()
                continue
            node = p.node(a)
            kids = _children(node)
            todo = [k for k in kids if k not in memo]
            if todo:
                stack.extend(todo)
                continue
            stack.pop()
            memo[a] = self._lift_node(a, node)
        return memo[root]

    def _lift_node(self, a: int, node: tuple) -> int:
        p, m = self.p, self._lift_memo
        kind = node[0]
        if kind in (rx._NOTHING, rx._EPS):
            return a
        if kind == rx._BYTES:
            return self._lift_bytes(node[1])
        if kind == rx._CONCAT:
            return p.concat(m[node[1]], m[node[2]])
        if kind == rx._ALT:
            return p.alt_of(m[x] for x in node[1])
        if kind == rx._AND:
            return p.and_(*[m[x] for x in node[1]])
        if kind == rx._NOT:
            return p.diff(self.content_any, m[node[1]])
        if kind == rx._REPEAT:
            return p.repeat(m[node[1]], node[2], node[3])
        raise AssertionError(f"unknown node kind {kind}")

    def prepare_ascii(self) -> None:
        """Lift every single ASCII byte now, so that lifting keys and literals later is mostly
        memo lookups (templates do this once per process)."""
        for b in range(128):
            self._lift_bytes(1 << b)

    def _lift_bytes(self, mask: int) -> int:
        found = self._byte_memo.get(mask)
        if found is not None:
            return found
        p = self.p
        ascii_mask = mask & ((1 << 128) - 1)
        parts = [p.byteset((mask & ~((1 << 128) - 1)) | (ascii_mask & _RAW_ASCII))]
        for b, esc in _SHORT.items():
            if ascii_mask >> b & 1:
                parts.append(p.literal("\\" + esc))
        if ascii_mask:
            parts.append(self.lex.ascii_escape(ascii_mask))
        out = p.alt_of(parts)
        self._byte_memo[mask] = out
        return out


def _children(node: tuple) -> tuple[int, ...]:
    kind = node[0]
    if kind == rx._CONCAT:
        return (node[1], node[2])
    if kind in (rx._ALT, rx._AND):
        return node[1]
    if kind in (rx._NOT, rx._REPEAT):
        return (node[1],)
    return ()
