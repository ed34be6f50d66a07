"""JSON numbers and integers with exact decimal bounds and ``multipleOf``, as pool expressions.

Numbers are written in the grammar U of ``json_lex``: plain ``-?(0|[1-9]\\d*)(\\.\\d+)?`` or
normalised scientific ``-?m[eE][+-]?d{1,3}`` with ``1 <= m < 10``. Bounds are compared as exact
decimals (``Decimal`` of the schema value's JSON text), so ``minimum: 0.1`` accepts ``0.1`` and
``0.10`` and rejects ``0.0999``; for scientific forms every exponent whose decade lies wholly
inside (outside) the range is kept (dropped) and the one or two straddling decades bound the
mantissa exactly. ``-0`` equals ``0``. An integer is any U-number with an integral value
(``3``, ``3.0``, ``3e2``).

``multipleOf`` is exact for integer divisors ``k`` that divide a power of ten (1, 2, 4, 5, 8,
10, 16, 20, 25, ...), for fractional divisors ``10**-j`` and for any divisor when both bounds are
present and at most ``MAX_ENUMERATED`` multiples lie between them; texts then use plain notation
only. Other divisors raise ``SchemaError``.
"""

from __future__ import annotations

import decimal
from decimal import Decimal
from typing import NamedTuple

from ..errors import SchemaError
from .json_lex import MANTISSA_FRAC_DIGITS, Lex

MAX_EXP = 999
MAX_ENUMERATED = 2000
_CTX = decimal.Context(prec=5000, Emax=10**6, Emin=-(10**6))


class Bounds(NamedTuple):
    """A value range; ``None`` is unbounded; ``*_strict`` makes that end exclusive."""

    lo: Decimal | None = None
    lo_strict: bool = False
    hi: Decimal | None = None
    hi_strict: bool = False

    def empty(self) -> bool:
        if self.lo is None or self.hi is None:
            return False
        return self.lo > self.hi or (self.lo == self.hi and (self.lo_strict or self.hi_strict))

    def contains(self, x: Decimal) -> bool:
        if self.lo is not None and (x < self.lo or (x == self.lo and self.lo_strict)):
            return False
        return not (self.hi is not None and (x > self.hi or (x == self.hi and self.hi_strict)))


def to_decimal(x) -> Decimal:
    """Exact decimal of a JSON number as parsed by ``json`` (floats through their repr)."""
    if isinstance(x, bool):
        raise TypeError("boolean is not a number")
    if isinstance(x, int):
        return Decimal(x)
    return Decimal(repr(float(x)))


def _split(x: Decimal) -> tuple[int, str]:
    """Non-negative ``x`` as (integer part, fraction digits without trailing zeros)."""
    ip = int(x)
    frac = _CTX.subtract(x, Decimal(ip))
    digits = "" if frac == 0 else format(frac, "f").split(".")[1].rstrip("0")
    return ip, digits


class NumberBuilder:
    """Number expressions over one ``Lex``."""

    def __init__(self, lex: Lex):
        self.lex = lex
        self.p = lex.pool
        p = self.p
        self.dot = p.literal(".")
        self.frac_any = p.optional(p.concat(self.dot, p.plus(lex.digit)))
        self.zero_frac = p.optional(p.concat(self.dot, p.plus(p.literal("0"))))
        self._numbers: dict[tuple[Bounds, bool, bool], int] = {}  # memo of ``number``

    # ------------------------------------------------------------------ digit strings
    def digits(self, lo: int, hi: int) -> int:
        return self.p.byte_range(0x30 + lo, 0x30 + hi) if lo <= hi else self.p.nothing

    def fixed(self, lo: int, hi: int, width: int) -> int:
        """Digit strings of exactly ``width`` digits (leading zeros allowed) valued in lo..hi."""
        p = self.p
        hi = min(hi, 10**width - 1)
        if lo > hi:
            return p.nothing
        if width == 0:
            return p.eps
        if lo == 0 and hi == 10**width - 1:
            return p.repeat(self.lex.digit, width, width)
        unit = 10 ** (width - 1)
        a, b = lo // unit, hi // unit
        if a == b:
            return p.concat(self.digits(a, a), self.fixed(lo % unit, hi % unit, width - 1))
        full = p.repeat(self.lex.digit, width - 1, width - 1)
        return p.alt(
            p.concat(self.digits(a, a), self.fixed(lo % unit, unit - 1, width - 1)),
            p.concat(self.digits(a + 1, b - 1), full),
            p.concat(self.digits(b, b), self.fixed(0, hi % unit, width - 1)),
        )

    def uint(self, lo: int, hi: int | None) -> int:
        """Canonical unsigned integers (no leading zeros) valued in lo..hi (hi None: unbounded)."""
        p = self.p
        lo = max(lo, 0)
        if hi is not None and lo > hi:
            return p.nothing
        out = [p.literal("0")] if lo == 0 else []
        top = len(str(hi)) if hi is not None else len(str(lo))
        for width in range(1, top + 1):
            a, b = max(lo, 10 ** (width - 1)), 10**width - 1 if hi is None else min(hi, 10**width - 1)
            if a <= b:
                out.append(self.fixed(a, b, width))
        if hi is None:  # every longer numeral is larger than lo
            out.append(p.concat(self.lex.digit19, p.repeat(self.lex.digit, top, -1)))
        return p.alt_of(out)

    def exponent(self, lo: int, hi: int) -> int:
        """Exponent texts ``[eE][+-]?\\d{1,3}`` whose value lies in lo..hi."""
        p = self.p
        parts = []
        if hi >= 0:
            parts.append(p.concat(p.optional(p.literal("+")), self._upto3(max(lo, 0), hi)))
        if lo <= 0:
            parts.append(p.concat(p.literal("-"), self._upto3(max(-hi, 0), -lo)))
        return p.concat(self.lex.exp_marker, p.alt_of(parts))

    def _upto3(self, lo: int, hi: int) -> int:
        return self.p.alt_of(self.fixed(lo, hi, w) for w in (1, 2, 3))

    # ------------------------------------------------------------------ plain decimals
    def _ge_digits(self, s: str, strict: bool) -> int:
        """Digit strings D with 0.D >= 0.s (> when strict); s non-empty, no trailing zero."""
        p, d = self.p, self.lex.digit
        c = int(s[0])
        if len(s) > 1:
            rest = self._ge_digits(s[1:], strict)
        else:
            rest = p.concat(p.star(d), self.lex.digit19, p.star(d)) if strict else p.star(d)
        return p.alt(p.concat(self.digits(c + 1, 9), p.star(d)), p.concat(self.digits(c, c), rest))

    def _le_digits(self, s: str, strict: bool) -> int:
        """Non-empty digit strings D with 0.D <= 0.s (< when strict); s non-empty."""
        p, d = self.p, self.lex.digit
        c = int(s[0])
        if len(s) > 1:
            rest = p.optional(self._le_digits(s[1:], strict))
        else:
            rest = p.nothing if strict else p.star(p.literal("0"))
        return p.alt(p.concat(self.digits(0, c - 1), p.star(d)), p.concat(self.digits(c, c), rest))

    def plain_ge(self, x: Decimal, strict: bool) -> int:
        """Unsigned plain decimals valued >= x (> when strict), x >= 0."""
        p = self.p
        ip, fd = _split(x)
        if not fd:
            frac = p.concat(self.dot, p.star(p.literal("0")), self.lex.digit19, p.star(self.lex.digit)) if strict else self.frac_any
        else:
            frac = p.concat(self.dot, self._ge_digits(fd, strict))
        return p.alt(p.concat(self.uint(ip + 1, None), self.frac_any), p.concat(p.literal(str(ip)), frac))

    def plain_le(self, x: Decimal, strict: bool) -> int:
        """Unsigned plain decimals valued <= x (< when strict), x >= 0."""
        p = self.p
        ip, fd = _split(x)
        if not fd:
            frac = p.nothing if strict else self.zero_frac
        else:
            frac = p.optional(p.concat(self.dot, self._le_digits(fd, strict)))
        below = p.concat(self.uint(0, ip - 1), self.frac_any) if ip > 0 else p.nothing
        return p.alt(below, p.concat(p.literal(str(ip)), frac))

    def plain_range(self, b: Bounds) -> int:
        """Unsigned plain decimals in ``b`` (whose ends are >= 0 or None)."""
        p = self.p
        parts = []
        if b.lo is not None and (b.lo > 0 or b.lo_strict):
            parts.append(self.plain_ge(b.lo, b.lo_strict))
        if b.hi is not None:
            parts.append(self.plain_le(b.hi, b.hi_strict))
        if not parts:
            return p.concat(self.lex.uint, self.frac_any)
        return p.and_(*parts)

    # ------------------------------------------------------------------ scientific
    def sci_range(self, b: Bounds) -> int:
        """Unsigned normalised scientific texts in ``b`` (ends >= 0 or None).

        Decades [10**e, 10**(e+1)) strictly between the decades of the two bounds are taken
        whole; the bounds' own decades bound the mantissa exactly.
        """
        p = self.p
        first, last = -MAX_EXP, MAX_EXP
        edges = set()
        if b.lo is not None and b.lo > 0:
            first = b.lo.adjusted() + 1
            edges.add(b.lo.adjusted())
        if b.hi is not None:
            if b.hi == 0:
                return p.nothing
            last = b.hi.adjusted() - 1
            edges.add(b.hi.adjusted())
        parts = []
        if first <= last:
            parts.append(p.concat(self.lex.mantissa, self.exponent(max(first, -MAX_EXP), min(last, MAX_EXP))))
        with decimal.localcontext(_CTX):
            for e in sorted(edges):
                if not -MAX_EXP <= e <= MAX_EXP:
                    continue
                shift = Bounds(
                    None if b.lo is None else b.lo.scaleb(-e), b.lo_strict,
                    None if b.hi is None else b.hi.scaleb(-e), b.hi_strict,
                )
                mant = p.and_(self.lex.mantissa, self.plain_range(shift))
                parts.append(p.concat(mant, self.exponent(e, e)))
        return p.alt_of(parts)

    def integral_sci(self) -> int:
        """Unsigned scientific texts with an integral value (exponent >= fraction digits)."""
        p, d = self.p, self.lex.digit
        parts = [p.concat(self.lex.digit19, self.exponent(0, MAX_EXP))]
        for e in range(1, MAX_EXP + 1):
            if e >= 16:
                parts.append(p.concat(self.lex.mantissa, self.exponent(e, MAX_EXP)))
                break
            m = p.concat(self.lex.digit19, self.dot, p.repeat(d, 0, e - 1), self.lex.digit19)
            parts.append(p.concat(m, self.exponent(e, e)))
        return p.alt_of(parts)

    # ------------------------------------------------------------------ public
    def number(self, b: Bounds, integer: bool = False, digits_only: bool = False) -> int:
        """Signed numbers in ``b``; ``integer`` keeps integral values only; ``digits_only``
        (draft-04 integers, where ``1.0`` is not an integer) also drops ``.0`` and exponents."""
        key = (b, integer, digits_only)  # equal Decimals (1 and 1.0) bound the same numbers
        found = self._numbers.get(key)
        if found is None:
            found = self._numbers[key] = self._number(b, integer, digits_only)
        return found

    def _number(self, b: Bounds, integer: bool, digits_only: bool) -> int:
        p = self.p
        if b.empty():
            return p.nothing
        pos, neg = _halves(b)
        out = []
        for sign, half in ((p.eps, pos), (p.literal("-"), neg)):
            if half is None:
                continue
            if integer:
                lo = 0 if half.lo is None else _int_lo(half.lo, half.lo_strict)
                hi = None if half.hi is None else _int_hi(half.hi, half.hi_strict)
                plain = p.concat(self.uint(lo, hi), p.eps if digits_only else self.zero_frac)
                sci = p.nothing if digits_only else p.and_(self.sci_range(half), self.integral_sci())
            else:
                plain, sci = self.plain_range(half), self.sci_range(half)
            out.append(p.concat(sign, p.alt(plain, sci)))
        return p.alt_of(out)

    def multiple_of(self, k: Decimal, b: Bounds, integer: bool, pointer: str) -> int:
        """Plain-notation numbers in ``b`` that are multiples of ``k`` (see module docstring)."""
        p = self.p
        if k <= 0:
            raise SchemaError("multipleOf must be > 0", keyword="multipleOf", pointer=pointer)
        if b.lo is not None and b.hi is not None:
            lo, hi = _int_lo(b.lo / k, b.lo_strict), _int_hi(b.hi / k, b.hi_strict)
            if hi - lo < MAX_ENUMERATED:
                vals = [Decimal(i) * k for i in range(lo, hi + 1)]
                return p.alt_of(self.const_number(v) for v in vals if b.contains(v))
        ip, fd = _split(k)
        if fd and ip == 0 and fd == "0" * (len(fd) - 1) + "1":  # 10**-j
            frac = p.optional(p.concat(self.dot, p.repeat(self.lex.digit, 0, len(fd)), p.star(p.literal("0"))))
            shape = p.concat(p.optional(p.literal("-")), self.lex.uint, frac)
            return p.and_(shape, self.number(b, integer))
        if not fd:
            t = next((t for t in range(7) if 10**t % ip == 0), None)
            if t is not None:
                body = self._uint_multiple(ip, t)
                shape = p.concat(p.optional(p.literal("-")), body, self.zero_frac)
                return p.and_(shape, self.number(b, True))
        raise SchemaError(
            f"multipleOf {k} is only supported for divisors of a power of ten, powers 10**-j, "
            "or with both bounds and few multiples between them",
            keyword="multipleOf", pointer=pointer,
        )

    def _uint_multiple(self, k: int, t: int) -> int:
        """Canonical unsigned integers divisible by k, where k divides 10**t."""
        p = self.p
        small = [p.literal(str(v)) for v in range(0, 10**t, k)]
        tails = [self.fixed(v, v, t) for v in range(0, 10**t, k)]
        long = p.concat(self.lex.digit19, p.star(self.lex.digit), p.alt_of(tails)) if t else self.lex.uint
        return p.alt(p.alt_of(small), long)

    def const_number(self, x: Decimal) -> int:
        """Every U-text of the number ``x`` (``1``, ``1.0``, ``1e0``, ``-0``...): the language of
        ``number(Bounds(x, False, x, False), integer=<x integral>)``, spelled out directly."""
        p = self.p
        texts = self._magnitude_texts(abs(x))
        if x.is_zero():
            return p.alt(texts, p.concat(p.literal("-"), texts))
        return p.concat(p.literal("-"), texts) if x < 0 else texts

    def _magnitude_texts(self, m: Decimal) -> int:
        """Unsigned U-texts valued exactly ``m`` >= 0: plain (trailing fraction zeros free) and
        normalised scientific (one mantissa, every spelling of its exponent)."""
        p = self.p
        ip, fd = _split(m)
        if fd:
            plain = p.concat(p.literal(f"{ip}.{fd}"), p.star(p.literal("0")))
        else:
            plain = p.concat(p.literal(str(ip)), self.zero_frac)
        if m.is_zero():
            return plain
        digits = "".join(map(str, m.as_tuple().digits)).rstrip("0")  # significant, from the first non-zero
        e = m.adjusted()
        if not -MAX_EXP <= e <= MAX_EXP or len(digits) > MANTISSA_FRAC_DIGITS + 1:
            return plain
        mantissa = digits if len(digits) == 1 else f"{digits[0]}.{digits[1:]}"
        return p.alt(plain, p.concat(p.literal(mantissa), self.exponent(e, e)))


def _int_lo(x: Decimal, strict: bool) -> int:
    """Smallest integer >= x (> x when strict)."""
    with decimal.localcontext(_CTX):
        f = int(x.to_integral_value(rounding=decimal.ROUND_FLOOR))
    return f + 1 if (strict or f < x) else f


def _int_hi(x: Decimal, strict: bool) -> int:
    """Largest integer <= x (< x when strict)."""
    with decimal.localcontext(_CTX):
        c = int(x.to_integral_value(rounding=decimal.ROUND_CEILING))
    return c - 1 if (strict or c > x) else c


def _halves(b: Bounds) -> tuple[Bounds | None, Bounds | None]:
    """Split a signed range into magnitude ranges of the non-negative and the negative texts.

    Both halves include magnitude 0 when 0 is in range (``0`` and ``-0``).
    """
    pos = neg = None
    if b.hi is None or b.hi > 0 or (b.hi == 0 and not b.hi_strict):
        lo, ls = (b.lo, b.lo_strict) if b.lo is not None and b.lo >= 0 else (None, False)
        pos = Bounds(lo, ls, b.hi, b.hi_strict)
    if b.lo is None or b.lo < 0 or (b.lo == 0 and not b.lo_strict):
        lo, ls = (-b.hi, b.hi_strict) if b.hi is not None and b.hi <= 0 else (None, False)
        neg = Bounds(lo, ls, None if b.lo is None else -b.lo, b.lo_strict)
    return pos, neg
