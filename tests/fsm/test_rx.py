"""Byte-regex derivative core: boolean operations, bounded repeats, liveness, limits, finiteness."""

from __future__ import annotations

import itertools
import random
import re
from collections import deque

import pytest

from structgen.errors import CompileLimitError
from structgen.fsm.dfa import DEAD, UNKNOWN, ByteDFA
from structgen.fsm.rx import ALL_BYTES, EPS_ID, INF, NOTHING_ID, ExprPool

WORDS = [bytes(t) for n in range(6) for t in itertools.product(b"abc", repeat=n)]


def language(pool: ExprPool, e: int) -> set[bytes]:
    return {w for w in WORDS if pool.matches(e, w)}


def reference(pattern: str) -> set[bytes]:
    return {w for w in WORDS if re.fullmatch(pattern.encode(), w)}


def reachable_states(dfa: ByteDFA, limit: int = 10_000) -> int:
    seen, queue = {dfa.initial}, deque([dfa.initial])
    while queue:
        for t in set(dfa.expand(queue.popleft()).tolist()):
            if t >= 0 and t not in seen:
                seen.add(t)
                queue.append(t)
                assert len(seen) < limit, "state count keeps growing"
    return len(seen)


@pytest.fixture
def pool() -> ExprPool:
    return ExprPool()


def test_hash_consing_and_alt_normal_form(pool):
    a, b = pool.literal("a"), pool.literal("bc")
    assert pool.alt(a, b) == pool.alt(b, a) == pool.alt(a, pool.alt(b, a), NOTHING_ID)
    assert pool.concat(pool.concat(a, b), a) == pool.concat(a, pool.concat(b, a))
    assert pool.alt(a, pool.universal) == pool.universal
    assert pool.and_(a, pool.universal) == a and pool.and_(a, NOTHING_ID) == NOTHING_ID
    assert pool.not_(pool.not_(a)) == a
    assert pool.alt(pool.byteset(1 << 97), pool.byteset(1 << 98)) == pool.byte_range(97, 98)


def test_concatenation_memo_keeps_the_right_nested_normal_form():
    import pickle

    pool, fresh = ExprPool(), ExprPool()
    tail = pool.concat(pool.star(pool.literal("x")), pool.literal("yz"))
    chain = pool.literal("abcd")
    whole = pool.concat(chain, tail)  # memoises every suffix of the chain with ``tail``
    assert whole == pool.concat(pool.literal("abcd"), tail) == pool.concat(pool.literal("ab"), pool.literal("cd"), tail)
    suffix = pool.node(chain)[2]  # "bcd", as a derivative of the chain leaves it
    assert pool.concat(suffix, tail) == pool.node(whole)[2]
    assert pool.concat(pool.concat(pool.literal("ab"), pool.literal("cd")), tail) == whole
    # the same expressions built without the memo warm: equal structure, node by node
    assert pool.node(pool.node(whole)[2]) == pool.node(pool.concat(pool.literal("bcd"), tail))
    other = fresh.concat(fresh.literal("abcd"), fresh.concat(fresh.star(fresh.literal("x")), fresh.literal("yz")))
    assert fresh.matches(other, b"abcdxxyz") and pool.matches(whole, b"abcdxxyz") and not pool.matches(whole, b"abcyz")
    clone = pickle.loads(pickle.dumps(pool))
    assert clone._cat_memo == {} and clone.concat(clone.literal("abcd"), tail) == whole


def test_intersection_complement_difference(pool):
    a, b = pool.literal("a"), pool.literal("b")
    ab_star = pool.star(pool.alt(a, b))
    even = pool.star(pool.concat(pool.alt(a, b), pool.alt(a, b)))
    has_bb = pool.concat(ab_star, b, b, ab_star)
    assert language(pool, pool.and_(ab_star, even)) == reference("(?:[ab][ab])*")
    assert language(pool, pool.diff(ab_star, has_bb)) == reference("(?:a|ba)*b?")
    assert language(pool, pool.not_(ab_star)) == set(WORDS) - reference("[ab]*")
    assert language(pool, pool.and_(pool.not_(a), pool.not_(b), pool.repeat(pool.byte_range(97, 99), 1, 1))) == {b"c"}


def test_difference_rows_equal_intersection_with_the_complement(pool):
    """``AND(x, NOT(y))`` rows come from ``_difference`` (no walk of ``NOT(y)``'s row); they must be
    the rows ``_intersect`` gives for ``x`` and ``NOT(y)``, for keys-like and overlapping shapes."""
    body = pool.star(pool.byte_range(0x20, 0x7E))
    names = pool.alt(pool.literal('name"'), pool.literal('nick"'), pool.literal('\\u006eame"'), pool.literal('age"'))
    cls = pool.repeat(pool.byte_range(97, 122), 0, 5)
    xs = [pool.concat(body, pool.literal('"')), cls, pool.concat(cls, pool.literal("x")), pool.literal("na"), body]
    ys = [names, pool.literal("nam"), pool.concat(pool.literal("n"), body), cls, pool.eps, pool.nothing]
    checked = 0
    for x in xs:
        for y in ys:
            todo, seen = [(x, y)], set()
            while todo and len(seen) < 60:  # derivatives of the pair too: later states of a key walk
                a, b = todo.pop()
                if (a, b) in seen or a == NOTHING_ID:
                    continue
                seen.add((a, b))
                fast = pool._difference(pool.row(a), pool.row(b))
                ref = pool._intersect([pool.row(a), pool.row(pool.not_(b))])
                assert sorted(fast) == sorted(ref), (x, y, a, b)
                checked += 1
                by_byte = {}
                for m, t in pool.row(b):
                    for c in range(256):
                        if m >> c & 1:
                            by_byte[c] = t
                for m, t in pool.row(a):
                    c = (m & -m).bit_length() - 1
                    todo.append((t, by_byte.get(c, NOTHING_ID)))
    assert checked > 100
    diff = pool.diff(xs[0], names)  # and the row of the AND node itself takes the fast path
    assert sorted(pool.row(diff)) == sorted(pool._intersect([pool.row(xs[0]), pool.row(pool.not_(names))]))


def test_merged_rows_give_each_byte_the_union_of_its_targets(pool):
    """``_merge`` (with its one-part fast path): disjoint masks, and each byte leads to the union
    of the targets the merged rows give it."""
    rng = random.Random(7)
    atoms = [pool.literal(bytes([rng.randrange(97, 123)]) * rng.randrange(1, 4)) for _ in range(12)]

    def random_row(k):
        used, row = 0, []
        for _ in range(k):
            m = sum(1 << rng.randrange(256) for _ in range(rng.randrange(1, 40))) & ~used
            if m:
                used |= m
                row.append((m, rng.choice(atoms)))
        return tuple(row)

    for _ in range(400):
        rows = [random_row(rng.choice([1, 1, 2, 6])) for _ in range(rng.choice([2, 2, 3]))]
        merged = pool._merge(rows, pool.alt_of)
        seen = 0
        for m, _ in merged:
            assert not m & seen
            seen |= m
        for c in range(0, 256, 3):
            want = [t for r in rows for m, t in r if m >> c & 1]
            got = [t for m, t in merged if m >> c & 1]
            assert got == ([pool.alt_of(want)] if want else [])


def test_bounded_repeats(pool):
    abc = pool.byte_range(97, 99)
    cases = {(2, 4): "[abc]{2,4}", (0, 0): "", (3, 3): "[abc]{3}", (1, INF): "[abc]+", (0, 2): "[abc]{0,2}"}
    for (lo, hi), pattern in cases.items():
        assert language(pool, pool.repeat(abc, lo, hi)) == reference(pattern)
    nested = pool.repeat(pool.repeat(pool.literal("a"), 2, 3), 2, 2)
    assert language(pool, nested) == reference("(?:a{2,3}){2}")
    assert language(pool, pool.repeat(pool.optional(pool.literal("ab")), 2, 3)) == reference("(?:(?:ab)?){2,3}")
    with pytest.raises(ValueError):
        pool.repeat(abc, 3, 2)


def test_liveness_with_and_not(pool):
    a_plus, b_plus = pool.plus(pool.literal("a")), pool.plus(pool.literal("b"))
    assert not pool.is_live(pool.and_(a_plus, b_plus))
    assert not pool.is_live(pool.diff(a_plus, pool.star(pool.literal("a"))))
    assert pool.is_live(pool.diff(a_plus, pool.literal("a")))
    assert pool.is_live(pool.not_(pool.universal)) is False
    # a DFA never enters a dead state: the step that would leads to DEAD instead
    dfa = ByteDFA(pool, pool.alt(pool.and_(a_plus, pool.concat(a_plus, pool.literal("b"))), pool.literal("ab")))
    s = dfa.step(dfa.initial, ord("a"))
    assert s >= 0 and dfa.step(s, ord("a")) == DEAD and dfa.matches("ab")


def test_rows_have_disjoint_masks(pool):
    e = pool.alt(pool.concat(pool.byte_range(0, 200), pool.literal("x")), pool.literal("ab"),
                 pool.concat(pool.byte_range(97, 255), pool.star(pool.literal("y"))), pool.not_(pool.literal("q")))
    seen = 0
    for mask, target in pool.row(e):
        assert mask & seen == 0 and mask & ~ALL_BYTES == 0 and target != NOTHING_ID
        seen |= mask
    for byte in (0, 97, 98, 200, 255):
        assert pool.derivative(e, byte) == next((t for m, t in pool.row(e) if m >> byte & 1), NOTHING_ID)


@pytest.mark.parametrize("pattern", ["(a|aa)*b", "(a*)*", "(a*b*)*a", "((a|b)*)*(a|b)*", "(a{2,7}){3,50}b",
                                     "(a|ab|aba)*(ba)?", "((a|b)(a|b)?)*c"])
def test_derivatives_of_nested_repeats_stay_finite(pattern):
    from structgen.fsm.regex import parse_regex

    pool = ExprPool()
    dfa = ByteDFA(pool, parse_regex(pattern, pool))
    n = reachable_states(dfa, limit=2_000)
    assert n < 400, n
    for w in [b"a" * 14 + b"b", b"ab" * 7, b"a" * 15, b"aab" * 4]:  # short: re backtracks exponentially
        assert dfa.matches(w) == bool(re.fullmatch(pattern.encode(), w)), w
    dfa.walk(dfa.initial, b"a" * 5000)
    assert dfa.num_states == n


def test_ambiguous_bounded_repeat_has_one_state_per_count():
    pool = ExprPool()
    word = pool.concat(pool.plus(pool.byte_range(97, 122)), pool.optional(pool.literal(" ")))
    dfa = ByteDFA(pool, pool.repeat(word, 0, 300))
    assert reachable_states(dfa, limit=5_000) <= 2 * 300 + 2
    assert dfa.matches(b"ab " * 300) and not dfa.matches(b"a " * 301) and dfa.matches(b"abc" * 400)


def test_union_normal_form_factors_heads_and_merges_counts(pool):
    a, b, c = pool.literal("a"), pool.literal("b"), pool.literal("c")
    assert pool.alt(pool.concat(a, b), pool.concat(a, c)) == pool.concat(a, pool.alt(b, c))
    assert pool.alt(pool.repeat(a, 0, 3), pool.repeat(a, 2, 7)) == pool.repeat(a, 0, 7)
    xy = pool.literal("xy")
    assert pool.alt(pool.repeat(xy, 4, 5), xy, pool.repeat(xy, 2, 3)) == pool.repeat(xy, 1, 5)
    assert pool.alt(pool.repeat(a, 0, 2), pool.repeat(a, 4, INF)) != pool.repeat(a, 0, INF)
    assert language(pool, pool.alt(pool.repeat(a, 0, 2), pool.repeat(a, 4, INF))) == reference("a{0,2}|a{4,}")
    assert pool.alt(pool.star(a), EPS_ID) == pool.star(a)


def test_max_nodes_raises_compile_limit():
    pool = ExprPool(max_nodes=100)
    with pytest.raises(CompileLimitError):
        pool.alt_of(pool.literal(f"word{i}") for i in range(200))


def test_max_states_raises_compile_limit():
    pool = ExprPool()
    dfa = ByteDFA(pool, pool.repeat(pool.byte_range(97, 122), 0, 1000), max_states=50)
    with pytest.raises(CompileLimitError):
        dfa.walk(dfa.initial, b"a" * 100)


def test_dfa_table_is_filled_on_first_visit(pool):
    dfa = ByteDFA(pool, pool.concat(pool.literal("ab"), pool.star(pool.byte_range(48, 57))))
    assert dfa.table[dfa.initial, 0] == UNKNOWN and dfa.num_expanded == 0
    row = dfa.expand(dfa.initial)
    assert row[ord("a")] >= 0 and row[ord("b")] == DEAD and dfa.num_expanded == 1
    s = dfa.walk(dfa.initial, b"ab12")
    assert dfa.is_accepting(s) and dfa.accepting[s] and not dfa.is_accepting(dfa.step(dfa.initial, ord("a")))
    dfa.ensure([s, DEAD, dfa.initial])
    assert dfa.table[s, 0] == DEAD and dfa.table[s, ord("5")] == s
    assert dfa.expr_of(dfa.initial) == dfa.root and dfa.walk(dfa.initial, b"x") == DEAD


def test_eps_and_nothing(pool):
    assert pool.nullable(EPS_ID) and not pool.nullable(NOTHING_ID)
    assert pool.concat() == EPS_ID and pool.alt() == NOTHING_ID and pool.literal("") == EPS_ID
    joined = pool.join([pool.literal("a"), pool.literal("b"), pool.literal("c")], pool.literal(","))
    assert pool.matches(joined, b"a,b,c") and not pool.matches(joined, b"a,bc")
    assert pool.join([], pool.literal(",")) == EPS_ID


def test_adopt_copies_a_template_exactly_and_leaves_it_alone():
    template = ExprPool()
    word = template.concat(template.literal("ab"), template.star(template.byte_range(0x61, 0x63)))
    template.row(word)
    size = len(template)
    pool = ExprPool()
    assert pool.is_fresh()
    pool.adopt(template)
    assert not pool.is_fresh() and len(pool) == size
    assert pool.node(word) == template.node(word) and pool.row(word) == template.row(word)
    assert pool.concat(pool.literal("ab"), pool.star(pool.byte_range(0x61, 0x63))) == word  # same ids
    grown = pool.alt(word, pool.literal("zz"))
    assert pool.matches(grown, b"zz") and pool.matches(grown, b"abcab")
    assert len(template) == size  # the copy grew, the template did not
    with pytest.raises(ValueError):
        pool.adopt(template)
    with pytest.raises(CompileLimitError):
        ExprPool(max_nodes=size - 1).adopt(template)


def test_literal_is_the_concatenation_of_its_bytes():
    pool = ExprPool()
    for data in (b"", b"a", b"abc", "é\"\\".encode()):
        assert pool.literal(data) == pool.concat(*[pool.byteset(1 << b) for b in data])


def _shuffle_reference(text: bytes, items: dict[bytes, bool], extra: bool, lo: int, hi: int) -> bool:
    """``text`` is a ``,``-separated list of lo..hi elements: each key of ``items`` at most once
    (the ``True`` ones exactly once), and, when ``extra``, any number of ``c``."""
    parts = text.split(b",") if text else []
    if len(parts) < lo or (hi != INF and len(parts) > hi):
        return False
    if any(p not in items and not (extra and p == b"c") for p in parts):
        return False
    named = [p for p in parts if p in items]
    return len(named) == len(set(named)) and all(k in named for k, req in items.items() if req)


SHUFFLE_WORDS = [b",".join(t) for n in range(6) for t in itertools.product((b"a", b"bb", b"c", b"", b"x"), repeat=n)]


@pytest.mark.parametrize("required", list(itertools.product([False, True], repeat=2)))
@pytest.mark.parametrize("extra", [False, True])
@pytest.mark.parametrize("lo,hi", [(0, INF), (0, 1), (2, 3), (3, INF), (0, 0), (2, 2)])
def test_shuffle_matches_any_order_each_item_once(required, extra, lo, hi):
    pool = ExprPool()
    items = dict(zip((b"a", b"bb"), required))
    e = pool.shuffle([(pool.literal(k), r) for k, r in items.items()], pool.literal(","),
                     pool.literal("c") if extra else NOTHING_ID, lo, hi)
    for w in SHUFFLE_WORDS:
        assert pool.matches(e, w) == _shuffle_reference(w, items, extra, lo, hi), w


def test_shuffle_states_follow_subsets_not_orders():
    pool = ExprPool()
    n = 12
    items = [(pool.literal(f"k{i:02d}"), i % 3 == 0) for i in range(n)]
    e = pool.shuffle(items, pool.literal(","), NOTHING_ID, 0)
    order = list(range(n))[::-1]
    assert pool.matches(e, ",".join(f"k{i:02d}" for i in order).encode())
    assert not pool.matches(e, b"k01,k00,k01,k03,k06,k09")  # k01 twice
    assert not pool.matches(e, b"k00,k03,k06")  # k09 required
    # one walk visits one subset per element: the pool grows with the path, not with n!
    before = len(pool)
    assert pool.matches(e, b"k11,k09,k06,k03,k00")
    assert len(pool) - before < 40 * n


def test_shuffle_liveness_under_intersection(pool):
    sep, a, b = pool.literal(","), pool.literal("a"), pool.literal("b")
    both = pool.shuffle([(a, True), (b, True)], sep, NOTHING_ID, 0)
    assert pool.is_live(pool.and_(both, pool.literal("b,a")))
    assert not pool.is_live(pool.and_(both, pool.literal("a,a")))
    no_b = pool.diff(pool.byte_range(0x61, 0x62), b)  # "a" via a complement: liveness needs a search
    assert pool.is_live(pool.shuffle([(no_b, True)], sep, NOTHING_ID, 1))
    dead = pool.and_(pool.plus(a), pool.plus(b))  # an AND node with an empty language
    assert not pool.is_live(pool.shuffle([(a, False), (dead, True)], sep, NOTHING_ID, 0))
    assert pool.is_live(pool.shuffle([(a, True), (dead, False)], sep, NOTHING_ID, 0))
