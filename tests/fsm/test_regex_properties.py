"""Property: for random regexes and strings, the byte DFA agrees with ``re.fullmatch``."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from structgen.errors import RegexError
from structgen.fsm.dfa import ByteDFA
from structgen.fsm.regex import parse_regex
from structgen.fsm.rx import ExprPool

ALPHABET = "abAB kKsSſßéÉσΣς1٣_-.\n\u212a"
CHARS = st.sampled_from(list(ALPHABET))
CLASSES = st.sampled_from(
    [".", "[ab]", "[^a]", "[a-c]", "[à-ÿ]", "[^\\W\\d]", "\\d", "\\w", "\\s", "\\W", "\\S", "[\\d_k]", "[A-Z]",
     "[^\\n]", "[σ-ω]", "[K-S]"]
)
ANCHORS = st.sampled_from(["^", "$", "\\b", "\\B", "\\A", "\\Z"])
FLAGS = st.sampled_from(["i", "s", "m", "a", "x"])


def atoms() -> st.SearchStrategy[str]:
    return st.one_of(CHARS.map(re.escape), CLASSES, ANCHORS)


def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    quant = st.sampled_from(["*", "+", "?", "{2}", "{0,2}", "{1,3}", "{2,}"]).flatmap(
        lambda q: st.sampled_from([q, q + "?"])
    )
    group = st.sampled_from(["(", "(?:", "(?P<g>", "(?i:", "(?s:", "(?-i:", "(?a:", "(?m:"])
    return st.one_of(
        st.lists(inner, min_size=2, max_size=4).map("".join),
        st.lists(inner, min_size=2, max_size=3).map("|".join),
        st.tuples(group, inner).map(lambda t: f"{t[0]}{t[1]})"),
        st.tuples(inner, quant).map(lambda t: f"(?:{t[0]}){t[1]}"),
    )


REGEXES = st.recursive(atoms(), extend, max_leaves=8)


@st.composite
def regex_and_strings(draw):
    body = draw(REGEXES)
    flags = draw(st.sets(FLAGS, max_size=2))
    pattern = (f"(?{''.join(sorted(flags))})" if flags else "") + body
    try:
        re.compile(pattern)
    except (re.error, ValueError):
        assume(False)
    strings = draw(st.lists(st.text(alphabet=ALPHABET, max_size=6), max_size=8))
    try:
        sample = draw(st.from_regex(pattern, fullmatch=True))
    except Exception:  # noqa: BLE001  (from_regex does not support every construct)
        sample = None
    if sample is not None and len(sample) <= 10:  # longer texts can make re backtrack exponentially
        cut = draw(st.integers(0, len(sample)))
        extra = draw(st.text(alphabet=ALPHABET, max_size=2))
        strings += [sample, sample[:cut], sample[:cut] + extra + sample[cut:]]
    return pattern, strings


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(regex_and_strings())
def test_dfa_agrees_with_re_fullmatch(case):
    pattern, strings = case
    pool = ExprPool()
    try:
        root = parse_regex(pattern, pool)
    except RegexError as e:
        assert e.construct == "anchor in repetition", (pattern, e)
        return
    dfa = ByteDFA(pool, root)
    for s in strings:
        expected = re.fullmatch(pattern, s) is not None
        assert dfa.matches(s) == expected, (pattern, s, expected)
