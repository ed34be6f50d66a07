"""Code-point sets behind Python ``re``'s character classes, taken from ``re`` itself.

``\\d``, ``\\w`` and ``\\s`` for ``str`` patterns follow the Unicode database of the running
Python, so their code-point ranges are computed once (lazily, ~10 ms each) by letting ``re`` scan
every code point, rather than shipped as tables that could drift from the interpreter.

``case_sensitive_chars()`` lists every code point that IGNORECASE can treat differently from a
case-sensitive match (cased characters, targets of ``re``'s lower-casing, and ``re``'s extra
case equivalences): for any other code point, membership in a class does not depend on the
IGNORECASE flag, so only these need testing against ``re`` to get its exact folding behaviour.

Ranges are sorted, merged, inclusive ``(lo, hi)`` code-point pairs, surrogates left in (the
UTF-8 layer drops them).
"""

from __future__ import annotations

import array
import functools
import re
import sys

Ranges = tuple[tuple[int, int], ...]

MAX_CODEPOINT = 0x10FFFF
_ASCII_DIGIT: Ranges = ((0x30, 0x39),)
_ASCII_WORD: Ranges = ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A))
_ASCII_SPACE: Ranges = ((0x09, 0x0D), (0x20, 0x20))


@functools.lru_cache(maxsize=1)
def all_code_points() -> str:
    """A ``str`` holding every code point 0..U+10FFFF in order (surrogates included)."""
    typecode = "I" if array.array("I").itemsize == 4 else "L"  # 32-bit code units for UTF-32
    codes = array.array(typecode, range(MAX_CODEPOINT + 1))
    if sys.byteorder == "big":
        codes.byteswap()
    return codes.tobytes().decode("utf-32-le", "surrogatepass")


def ranges_matching(pattern: str, flags: int = 0) -> Ranges:
    """Code points ``c`` for which ``re.fullmatch(pattern, chr(c), flags)`` holds.

    ``pattern`` must match exactly one character (a class, a literal, ``.``); runs of matching
    code points come from one ``finditer`` over every code point.
    """
    runs = re.compile(f"(?:{pattern})+", flags).finditer(all_code_points())
    return tuple((m.start(), m.end() - 1) for m in runs)


@functools.cache
def category_ranges(name: str, ascii_only: bool) -> Ranges:
    """Ranges of ``\\d``/``\\w``/``\\s`` (``name`` is ``"digit"``, ``"word"`` or ``"space"``)."""
    if ascii_only:
        return {"digit": _ASCII_DIGIT, "word": _ASCII_WORD, "space": _ASCII_SPACE}[name]
    letter = {"digit": "d", "word": "w", "space": "s"}[name]
    return ranges_matching("\\" + letter)


@functools.lru_cache(maxsize=1)
def case_sensitive_chars() -> str:
    """Every code point whose IGNORECASE treatment can differ from a case-sensitive match.

    That is: characters ``re`` considers cased, every result of its lower-casing, and both
    sides of its extra case equivalences (``re._casefix``). Returned as one ``str``.
    """
    import _sre

    try:
        from re._casefix import _EXTRA_CASES as extra
    except ImportError:  # Python 3.10
        from sre_compile import _ignorecase_fixes as extra  # type: ignore[attr-defined]
    chars: set[int] = set()
    for c in range(MAX_CODEPOINT + 1):
        low = _sre.unicode_tolower(c)
        if low != c or _sre.unicode_iscased(c):
            chars.add(c)
            chars.add(low)
    for key, values in extra.items():
        chars.add(key)
        chars.update(values)
    return "".join(chr(c) for c in sorted(chars))
