"""String ``format`` values as value-level regular expressions (Python syntax, full match).

Strict but practical: each accepts only strings that the format's RFC allows (so nothing
invalid slips through), sometimes rejecting rare valid forms. Semantics per format:

- ``date``: RFC 3339 full-date with real month lengths and Gregorian leap years.
- ``time``: RFC 3339 full-time ``HH:MM:SS[.frac](Z|±HH:MM)``, ``z`` allowed; leap second 60 is
  not accepted.
- ``date-time``: date ``T``/``t`` time.
- ``email``: dot-atom local part ``@`` a hostname (no quoted local parts, no address literals).
- ``hostname``: dot-separated labels of letters, digits and inner hyphens, 1–63 bytes each,
  at most 253 in total; ``--`` in positions 3–4 (punycode and reserved labels) is not accepted.
- ``ipv4``: dotted quad, no leading zeros. ``ipv6``: RFC 4291 text forms incl. ``::`` and an
  embedded IPv4 tail, no zone id.
- ``uuid``: 8-4-4-4-12 hex digits, either case.
- ``uri`` / ``uri-reference``: the RFC 3986 grammar (``URI`` / ``URI-reference``: scheme,
  authority with userinfo, IP-literal, port digits, path forms, query, fragment; ASCII only).
- ``json-pointer``, ``relative-json-pointer``: RFC 6901 / draft syntax.
- ``duration``: RFC 3339 appendix A (``P1Y2M``, ``PT5M``, ``P3W``).
- ``byte`` (OpenAPI): padded base64. ``binary``, ``password`` (OpenAPI): any string.
"""

from __future__ import annotations

_D = "[0-9]"
_HEX = "[0-9A-Fa-f]"
_DAY28 = "(?:0[1-9]|1[0-9]|2[0-8])"
_MONTH_30 = "(?:0[13-9]|1[0-2])"
_MONTH_31 = "(?:0[13578]|1[02])"
_LEAP = f"(?:{_D}{_D}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)"
DATE = (
    f"(?:{_D}{{4}}-(?:(?:0[1-9]|1[0-2])-{_DAY28}|{_MONTH_30}-(?:29|30)|{_MONTH_31}-31)"
    f"|{_LEAP}-02-29)"
)
_TIME = "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]+)?(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
# a label: 1-63 letters/digits/hyphens, no hyphen first or last, not "--" in positions 3-4
_LABEL = (
    "[A-Za-z0-9](?:[A-Za-z0-9]|[A-Za-z0-9-][A-Za-z0-9]|[A-Za-z0-9-][A-Za-z0-9-][A-Za-z0-9]"
    "|[A-Za-z0-9-](?:[A-Za-z0-9][A-Za-z0-9-]|-[A-Za-z0-9])[A-Za-z0-9-]{0,58}[A-Za-z0-9])?"
)
_HOST = f"{_LABEL}(?:\\.{_LABEL})*"
_ATOM = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4 = f"{_OCTET}(?:\\.{_OCTET}){{3}}"
_H16 = f"{_HEX}{{1,4}}"
_LS32 = f"(?:{_H16}:{_H16}|{IPV4})"
IPV6 = "(?:" + "|".join([
    f"(?:{_H16}:){{6}}{_LS32}",
    f"::(?:{_H16}:){{5}}{_LS32}",
    f"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
    f"(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}",
    f"(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}",
    f"(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
    f"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
    f"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}",
    f"(?:(?:{_H16}:){{0,6}}{_H16})?::",
]) + ")"
_PCT = f"%{_HEX}{_HEX}"
_UNRES_SUB = "[A-Za-z0-9\\-._~!$&'()*+,;=]"
_PCHAR = f"(?:{_UNRES_SUB}|{_PCT}|[:@])"
_PCHAR_NC = f"(?:{_UNRES_SUB}|{_PCT}|@)"
_AUTHORITY = (
    f"(?:(?:{_UNRES_SUB}|{_PCT}|:)*@)?"
    f"(?:\\[(?:{IPV6}|[vV]{_HEX}+\\.(?:{_UNRES_SUB}|:)+)\\]|(?:{_UNRES_SUB}|{_PCT})*)"
    "(?::[0-9]*)?"
)
_SEGS = f"(?:/{_PCHAR}*)*"
_TAIL = f"(?:\\?(?:{_PCHAR}|[/?])*)?(?:#(?:{_PCHAR}|[/?])*)?"
_HIER = f"(?://{_AUTHORITY}{_SEGS}|/(?:{_PCHAR}+{_SEGS})?|{_PCHAR}+{_SEGS}|)"
_REL = f"(?://{_AUTHORITY}{_SEGS}|/(?:{_PCHAR}+{_SEGS})?|{_PCHAR_NC}+{_SEGS}|)"
URI = f"[A-Za-z][A-Za-z0-9+.\\-]*:{_HIER}{_TAIL}"
_JP = "(?:/(?:[^~/]|~[01])*)*"

_DUR_TIME = "T(?:[0-9]+H(?:[0-9]+M(?:[0-9]+S)?)?|[0-9]+M(?:[0-9]+S)?|[0-9]+S)"
_DUR_DATE = f"(?:[0-9]+Y(?:[0-9]+M(?:[0-9]+D)?)?|[0-9]+M(?:[0-9]+D)?|[0-9]+D)(?:{_DUR_TIME})?"
_B64 = "[A-Za-z0-9+/]"

FORMATS: dict[str, str] = {
    "date": DATE,
    "time": _TIME,
    "date-time": f"{DATE}[Tt]{_TIME}",
    "email": f"{_ATOM}(?:\\.{_ATOM})*@{_HOST}",
    "hostname": _HOST,
    "ipv4": IPV4,
    "ipv6": IPV6,
    "uuid": f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}",
    "uri": URI,
    "uri-reference": f"(?:{URI}|{_REL}{_TAIL})",
    "json-pointer": f"(?s:{_JP})",
    "relative-json-pointer": f"(?s:(?:0|[1-9][0-9]*)(?:#|{_JP}))",
    "duration": f"P(?:{_DUR_DATE}|{_DUR_TIME}|[0-9]+W)",
    "byte": f"(?:{_B64}{{4}})*(?:{_B64}{{2}}==|{_B64}{{3}}=)?",
    "binary": "(?s:.*)",
    "password": "(?s:.*)",
}

MAX_HOSTNAME = 253
