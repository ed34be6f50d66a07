"""Python regex syntax → byte DFA: accept/reject tables per feature, checked against re.fullmatch."""

from __future__ import annotations

import re

import pytest

from structgen.errors import RegexError
from structgen.fsm import utf8
from structgen.fsm.dfa import ByteDFA
from structgen.fsm.regex import parse_regex
from structgen.fsm.regex_ast import Chars, parse_tree
from structgen.fsm.rx import ExprPool
from structgen.fsm.unicode_classes import all_code_points


def compile_dfa(pattern: str, flags: int = 0) -> ByteDFA:
    pool = ExprPool()
    return ByteDFA(pool, parse_regex(pattern, pool, flags))


# (pattern, flags, must accept, must reject)
TABLES = [
    # literals, dot, classes
    ("abc", 0, ["abc"], ["", "ab", "abcd", "ABC"]),
    ("a.c", 0, ["abc", "a c", "aéc", "a😀c"], ["a\nc", "ac", "abbc"]),
    ("a.c", re.DOTALL, ["a\nc", "abc"], ["ac"]),
    ("(?s:.)x", 0, ["\nx"], ["x"]),
    ("[a-cx]+", 0, ["a", "cab", "xx"], ["", "d", "aD"]),
    ("[^a-c]", 0, ["d", "é", "\n", "😀"], ["a", "b", ""]),
    ("[à-ÿ]", 0, ["à", "é", "ÿ"], ["a", "Ā", "\xc3", "à\xa0"]),
    ("[-\\]]", 0, ["-", "]"], ["\\"]),
    ("x{3}", 0, ["xxx"], ["xx", "xxxx"]),
    ("x{2,4}?", 0, ["xx", "xxx", "xxxx"], ["x", "xxxxx"]),
    ("x{2,}", 0, ["xx", "x" * 50], ["x"]),
    ("(ab|cd)*?e", 0, ["e", "abcde", "cdcde"], ["abe e", "ace"]),
    ("(?P<y>\\d{4})-(?:\\d\\d)", 0, ["2024-01", "٢٠٢٤-٠١"], ["2024-1", "24-01"]),
    ("a|b|", 0, ["a", "b", ""], ["ab"]),
    ("()", 0, [""], ["a"]),
    # categories (Unicode by default for str patterns)
    ("\\d+", 0, ["0", "123", "٣", "१२"], ["", "a", "½"]),
    ("\\w+", 0, ["héllo_1", "日本", "Ωμέγα"], ["a b", "-", ""]),
    ("\\s", 0, [" ", "\t", "\n", "\u00a0", "\u2003", "\x1c"], ["a", "\u200b"]),
    ("\\D\\W\\S", 0, ["a b", "x-y"], ["1 b", "aab", "a  "]),
    ("\\w+", re.ASCII, ["abc_123"], ["é", "日"]),
    ("(?a:\\d)\\d", 0, ["1٣"], ["٣1"]),
    ("[\\d\\s]+", 0, ["1 2\t٣"], ["a"]),
    ("[^\\W\\d_]+", 0, ["abcÉ"], ["a1", "_"]),
    # IGNORECASE, including Python's special folds
    ("(?i)abc", 0, ["abc", "ABC", "aBc"], ["abd"]),
    ("straße", re.IGNORECASE, ["STRAßE", "straße"], ["STRASSE"]),
    ("k", re.IGNORECASE, ["k", "K", "\u212a"], ["q"]),
    ("s", re.IGNORECASE, ["s", "S", "ſ"], ["ß"]),
    ("[a-z]+", re.IGNORECASE, ["Hello", "ſK"], ["Hé"]),
    ("[^k]", re.IGNORECASE, ["a", "é"], ["k", "K", "\u212a"]),
    ("é", re.IGNORECASE, ["é", "É"], ["e"]),
    ("(?i:a)b", 0, ["Ab", "ab"], ["aB"]),
    ("k", re.IGNORECASE | re.ASCII, ["k", "K"], ["\u212a"]),
    ("σ", re.IGNORECASE, ["σ", "Σ", "ς"], ["s"]),
    # VERBOSE
    ("a b # comment\n c", re.VERBOSE, ["abc"], ["a b c"]),
    ("(?x) [ ] x", 0, [" x"], ["x"]),
    # anchors: no-ops at the edges, exact elsewhere
    ("^abc$", 0, ["abc"], ["abc\n", "xabc"]),
    ("\\Aabc\\Z", 0, ["abc"], ["abc\n"]),
    ("a$\n", 0, ["a\n"], ["a"]),
    ("a$\n\n", 0, [], ["a\n\n"]),
    ("a^b", 0, [], ["ab", "a\nb"]),
    ("a\n^b", re.MULTILINE, ["a\nb"], ["ab"]),
    ("a$\nb", re.MULTILINE, ["a\nb"], []),
    ("(?m)(?:x|^)y", 0, ["xy", "y"], ["zy"]),
    ("\\bfoo\\b", 0, ["foo"], []),
    ("a\\b.", 0, ["a ", "a-"], ["ab", "a"]),
    ("a\\B.", 0, ["ab", "a1"], ["a ", "a"]),
    ("(?:\\b\\w+\\b\\W?){1,3}", 0, ["hi there", "a,b,c"], ["", "a,b,c,d"]),
    ("é\\b", 0, ["é"], []),
    ("(?a:é\\b.)", 0, ["éx"], []),
    ("(a$|b)c?", 0, ["a", "b", "bc"], ["ac"]),
    # huge counted repeats stay symbolic
    ("[0-9]{1000000}", 0, [], ["1" * 1000, "x"]),
    ("(ab){0,100000}c", 0, ["c", "ababc"], ["abac"]),
]


@pytest.mark.parametrize("pattern,flags,accept,reject", TABLES)
def test_accept_reject_table(pattern, flags, accept, reject):
    dfa = compile_dfa(pattern, flags)
    for s in accept:
        assert re.fullmatch(pattern, s, flags), f"table error: re rejects {s!r}"
        assert dfa.matches(s), f"{pattern!r} should accept {s!r}"
    for s in reject:
        if isinstance(s, str):
            assert not re.fullmatch(pattern, s, flags), f"table error: re accepts {s!r}"
        assert not dfa.matches(s), f"{pattern!r} should reject {s!r}"


@pytest.mark.parametrize("pattern", [".", "[à-ÿ]", "[^a]", "\\w"])
def test_multibyte_characters_are_matched_whole(pattern):
    dfa = compile_dfa(pattern)
    for ch in "éÿ€😀":
        data = ch.encode("utf-8")
        assert dfa.matches(data) == bool(re.fullmatch(pattern, ch))
        for cut in range(1, len(data)):
            assert not dfa.matches(data[:cut]), f"{pattern!r} accepted a partial character"
    assert not dfa.matches(b"\xff") and not dfa.matches(b"\xc3")


@pytest.mark.parametrize(
    "pattern,construct",
    [
        ("a(?=b)b", "lookahead"),
        ("a(?!b).", "negative lookahead"),
        ("(?<=a)b", "lookbehind"),
        ("(?<!a)b", "negative lookbehind"),
        ("(a)\\1", "backreference"),
        ("(?P<x>a)(?P=x)", "backreference"),
        ("(a)?(?(1)b|c)", "conditional"),
        ("(?>ab)", "atomic group"),
        ("a++", "possessive quantifier"),
        ("(?:^a)*", "anchor in repetition"),
        ("(?:a\\b)+", "anchor in repetition"),
    ],
)
def test_constructs_without_automaton_raise(pattern, construct):
    with pytest.raises(RegexError) as info:
        parse_regex(pattern, ExprPool())
    assert info.value.construct == construct
    assert construct.split()[0] in str(info.value)


@pytest.mark.parametrize("pattern,pos", [("(ab", 0), ("a{3,2}", 2), ("[b-a]", 1), ("a**", 2), ("(?P<1>x)", 4)])
def test_malformed_pattern_reports_python_message_and_position(pattern, pos):
    with pytest.raises(re.error) as py:
        re.compile(pattern)
    with pytest.raises(RegexError) as info:
        parse_regex(pattern, ExprPool())
    assert info.value.construct == "syntax"
    assert info.value.position == py.value.pos == pos
    assert py.value.msg in str(info.value)


def test_flags_argument_matches_inline_flags():
    for flags, inline in [(re.I, "(?i)"), (re.S | re.M, "(?sm)"), (re.A | re.I, "(?ai)"), (re.X, "(?x)")]:
        by_arg, by_inline = compile_dfa("^a b.\\w$", flags), compile_dfa(inline + "^a b.\\w$")
        for s in ["a b.x", "A b\nÉ", "ab.k", "a b\nK", "Ab-é\n"]:
            assert by_arg.matches(s) == by_inline.matches(s) == bool(re.fullmatch("^a b.\\w$", s, flags)), (flags, s)


def test_locale_flag_is_rejected_for_str_patterns():
    with pytest.raises(RegexError):
        parse_regex("a", ExprPool(), re.LOCALE)


def test_bounded_repeat_of_anchored_group_is_unrolled_exactly():
    pattern = "(?:\\ba ?){0,5}"
    dfa = compile_dfa(pattern)
    for s in ["", "a", "a a", "aa", "a a a a a", "a a a a a a", "a ", "a a "]:
        assert dfa.matches(s) == bool(re.fullmatch(pattern, s)), s


def test_huge_counted_repeat_stays_symbolic():
    pool = ExprPool()
    dfa = ByteDFA(pool, parse_regex("[0-9]{1000000}x", pool))
    state = dfa.walk(dfa.initial, b"7" * 2000)
    assert dfa.is_live(state) and not dfa.is_accepting(state)
    assert dfa.num_states <= 2003 and len(pool) < 10_000


@pytest.mark.parametrize(
    "pattern",
    ["(?i)[\\w]", "(?i)[^\\W]", "(?i)[a-z]", "(?i)[^A-Z]", "(?i)ǅ", "(?i)ß", "(?i)[^k]", "(?i)İ", "(?i)ı",
     "(?i)[^ς]", "(?i)[\\u0100-\\u017f]", "(?i)[\\U00010400-\\U0001044f]", "(?ia)[^a-z]", "(?i)[^\\s]",
     ".", "\\w", "(?a)\\W", "\\s", "\\D"],
)
def test_single_character_items_match_re_on_every_code_point(pattern):
    node = parse_tree(pattern)
    assert isinstance(node, Chars)
    flags = re.match(r"(\(\?[a-z]+\))?", pattern).group(0)
    runs = re.finditer(f"{flags}(?:{pattern[len(flags):]})+", all_code_points())
    expected = [(m.start(), m.end() - 1) for m in runs]
    assert utf8.normalize_ranges(node.ranges) == utf8.normalize_ranges(expected)
