"""Python ``re`` syntax to a small regular-expression tree with every flag already applied.

The pattern is parsed by Python's own parser (``re._parser``; ``sre_parse`` on 3.10), so the
accepted syntax and its error messages are exactly Python's. The tree then loses everything a
full-match language does not depend on (group numbers and names, greedy versus lazy) and
resolves the flags: each single-character item (literal, ``.``, class, ``\\d``...) becomes a
``Chars`` holding its exact code-point set under the flags in effect (IGNORECASE, ASCII,
DOTALL, inline ``(?i:...)`` groups), and each anchor an ``Anchor`` of a flag-free kind.

IGNORECASE is exact by construction: ``re``'s case folding (simple lower-casing plus a few
extra equivalences such as ``ſ``/``s``/``S``, Kelvin sign/``k``) only affects code points in
``unicode_classes.case_sensitive_chars()``, so those are tested against ``re`` itself with
the same item and flags, and every other code point keeps its case-sensitive membership.

Constructs a finite automaton cannot express raise ``RegexError`` with ``construct`` set:
lookahead, negative lookahead, lookbehind, negative lookbehind, backreference, conditional,
atomic group, possessive quantifier.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from ..errors import RegexError
from .unicode_classes import (
    MAX_CODEPOINT,
    Ranges,
    case_sensitive_chars,
    category_ranges,
)

try:  # Python 3.11+
    from re import _constants as C
    from re import _parser as sre_parser
except ImportError:  # Python 3.10
    import sre_constants as C  # type: ignore[no-redef]
    import sre_parse as sre_parser  # type: ignore[no-redef]

_TYPE_FLAGS = C.SRE_FLAG_ASCII | C.SRE_FLAG_LOCALE | C.SRE_FLAG_UNICODE
_DEBUG = getattr(C, "SRE_FLAG_DEBUG", 128)


@dataclass(frozen=True)
class Chars:
    """One character whose code point lies in ``ranges`` (sorted, merged, inclusive)."""

    ranges: Ranges


@dataclass(frozen=True)
class Seq:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Alt:
    branches: tuple[Node, ...]


@dataclass(frozen=True)
class Rep:
    """``item{lo,hi}``; ``hi`` is None when unbounded. Lazy and greedy are the same language."""

    item: Node
    lo: int
    hi: int | None


@dataclass(frozen=True)
class Anchor:
    """A zero-width assertion. ``kind`` is one of:

    ``"bos"`` start of string (``\\A``, ``^``); ``"bol"`` start of string or after ``\\n``
    (``^`` with MULTILINE); ``"eos"`` end of string (``\\Z``); ``"eol"`` end of string or before
    a final ``\\n`` (``$``); ``"eol_m"`` end of string or before any ``\\n`` (``$`` with
    MULTILINE); ``"word"``/``"nonword"`` ``\\b``/``\\B``, with ``word`` the word characters.
    """

    kind: str
    word: Ranges = ()


Node = Chars | Seq | Alt | Rep | Anchor

# ------------------------------------------------------------------ range helpers


def union(*sets: Ranges) -> Ranges:
    """Sorted, merged union of range sets."""
    items = sorted(r for s in sets for r in s)
    out: list[tuple[int, int]] = []
    for lo, hi in items:
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return tuple(out)


def negate(ranges: Ranges) -> Ranges:
    """Complement within 0..U+10FFFF."""
    out, nxt = [], 0
    for lo, hi in union(ranges):
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= MAX_CODEPOINT:
        out.append((nxt, MAX_CODEPOINT))
    return tuple(out)


def intersect(a: Ranges, b: Ranges) -> Ranges:
    return negate(union(negate(a), negate(b)))


def is_subset(a: Ranges, b: Ranges) -> bool:
    return intersect(a, negate(b)) == ()


# ------------------------------------------------------------------ parse tree → Node

_ASSERT_NAMES = {
    (C.ASSERT, 1): "lookahead",
    (C.ASSERT_NOT, 1): "negative lookahead",
    (C.ASSERT, -1): "lookbehind",
    (C.ASSERT_NOT, -1): "negative lookbehind",
}
_UNSUPPORTED = {C.GROUPREF: "backreference", C.GROUPREF_EXISTS: "conditional"}
for _name, _construct in (("ATOMIC_GROUP", "atomic group"), ("POSSESSIVE_REPEAT", "possessive quantifier")):
    if hasattr(C, _name):
        _UNSUPPORTED[getattr(C, _name)] = _construct
_CATEGORIES = {
    C.CATEGORY_DIGIT: ("digit", False, r"\d"),
    C.CATEGORY_NOT_DIGIT: ("digit", True, r"\D"),
    C.CATEGORY_WORD: ("word", False, r"\w"),
    C.CATEGORY_NOT_WORD: ("word", True, r"\W"),
    C.CATEGORY_SPACE: ("space", False, r"\s"),
    C.CATEGORY_NOT_SPACE: ("space", True, r"\S"),
}


def parse_tree(pattern: str, flags: int = 0) -> Node:
    """Parse ``pattern`` with Python's parser and resolve its flags (see module docstring)."""
    if not isinstance(pattern, str):
        raise RegexError(f"regex pattern must be a str, got {type(pattern).__name__}", construct="pattern type")
    try:
        parsed = sre_parser.parse(pattern, flags & ~_DEBUG)
    except re.error as e:
        raise RegexError(f"invalid regex {pattern!r}: {e.msg} at position {e.pos}", construct="syntax",
                         position=e.pos) from None
    except (ValueError, OverflowError, RecursionError) as e:
        raise RegexError(f"invalid regex {pattern!r}: {e}", construct="syntax") from None
    return _convert(parsed, parsed.state.flags)


def _combine_flags(flags: int, add: int, remove: int) -> int:
    if add & _TYPE_FLAGS:
        flags &= ~_TYPE_FLAGS
    return (flags | add) & ~remove


def _convert(sub, flags: int) -> Node:
    items = [_convert_item(op, av, flags) for op, av in sub]
    return items[0] if len(items) == 1 else Seq(tuple(items))


def _convert_item(op, av, flags: int) -> Node:
    if op in (C.LITERAL, C.NOT_LITERAL, C.ANY, C.IN):
        return Chars(char_set(op, av, flags))
    if op is C.BRANCH:
        return Alt(tuple(_convert(b, flags) for b in av[1]))
    if op is C.SUBPATTERN:
        _group, add, remove, body = av
        return _convert(body, _combine_flags(flags, add, remove))
    if op in (C.MAX_REPEAT, C.MIN_REPEAT):
        lo, hi, body = av
        return Rep(_convert(body, flags), lo, None if hi == C.MAXREPEAT else hi)
    if op is C.AT:
        return _anchor(av, flags)
    if op in (C.ASSERT, C.ASSERT_NOT):
        name = _ASSERT_NAMES[(op, av[0])]
        raise RegexError(f"{name} assertions cannot be compiled to an automaton; rewrite the pattern without "
                         f"them", construct=name)
    if op in _UNSUPPORTED:
        name = _UNSUPPORTED[op]
        raise RegexError(f"{name}s cannot be compiled to an automaton; rewrite the pattern without them",
                         construct=name)
    raise RegexError(f"unsupported regex construct {op}", construct=str(op).lower())


def _anchor(at, flags: int) -> Anchor:
    multiline = bool(flags & C.SRE_FLAG_MULTILINE)
    if at is C.AT_BEGINNING:
        return Anchor("bol" if multiline else "bos")
    if at is C.AT_BEGINNING_STRING:
        return Anchor("bos")
    if at is C.AT_END:
        return Anchor("eol_m" if multiline else "eol")
    if at is C.AT_END_STRING:
        return Anchor("eos")
    word = category_ranges("word", bool(flags & C.SRE_FLAG_ASCII))
    if at is C.AT_BOUNDARY:
        return Anchor("word", word)
    if at is C.AT_NON_BOUNDARY:
        return Anchor("nonword", word)
    raise RegexError(f"unsupported anchor {at}", construct=str(at).lower())


# ------------------------------------------------------------------ single-character items


def char_set(op, av, flags: int) -> Ranges:
    """Exact code points one LITERAL / NOT_LITERAL / ANY / IN item matches under ``flags``."""
    ascii_only = bool(flags & C.SRE_FLAG_ASCII)
    if op is C.ANY:
        return ((0, MAX_CODEPOINT),) if flags & C.SRE_FLAG_DOTALL else negate(((10, 10),))
    if op is C.LITERAL:
        plain: Ranges = ((av, av),)
    elif op is C.NOT_LITERAL:
        plain = negate(((av, av),))
    else:
        plain = _class_ranges(av, ascii_only)
    if not flags & C.SRE_FLAG_IGNORECASE:
        return plain
    text = _item_text(op, av)
    return _fold(text, plain, flags & (C.SRE_FLAG_IGNORECASE | C.SRE_FLAG_ASCII))


def _class_ranges(items, ascii_only: bool) -> Ranges:
    parts: list[Ranges] = []
    negated = False
    for op, av in items:
        if op is C.NEGATE:
            negated = True
        elif op is C.LITERAL:
            parts.append(((av, av),))
        elif op is C.RANGE:
            parts.append((av,))
        elif op is C.CATEGORY:
            name, neg, _ = _CATEGORIES[av]
            r = category_ranges(name, ascii_only)
            parts.append(negate(r) if neg else r)
        else:
            raise RegexError(f"unsupported item {op} in a character class", construct=str(op).lower())
    out = union(*parts)
    return negate(out) if negated else out


def _item_text(op, av) -> str:
    """Pattern text that Python's parser turns back into exactly this item."""
    if op is C.LITERAL:
        return _esc(av)
    if op is C.NOT_LITERAL:
        return f"[^{_esc(av)}]"
    parts = []
    for iop, iav in av:
        if iop is C.NEGATE:
            parts.append("^")
        elif iop is C.LITERAL:
            parts.append(_esc(iav))
        elif iop is C.RANGE:
            parts.append(f"{_esc(iav[0])}-{_esc(iav[1])}")
        else:
            parts.append(_CATEGORIES[iav][2])
    return "[" + "".join(parts) + "]"


def _esc(c: int) -> str:
    return f"\\U{c:08x}"


@functools.lru_cache(maxsize=4096)
def _fold(text: str, plain: Ranges, flags: int) -> Ranges:
    """IGNORECASE membership: ``re`` decides for case-sensitive code points, ``plain`` for the rest."""
    cased = _case_ranges()
    matched = re.compile(text, flags).findall(case_sensitive_chars())
    hits = tuple((ord(c), ord(c)) for c in matched)
    return union(intersect(plain, negate(cased)), hits)


@functools.lru_cache(maxsize=1)
def _case_ranges() -> Ranges:
    return union(tuple((ord(c), ord(c)) for c in case_sensitive_chars()))
