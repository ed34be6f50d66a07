"""TokenFSM: token-level accept/reject, EOS and padding rules, masks, CSR export, pickling, threads."""

from __future__ import annotations

import pickle
import random
import threading

import numpy as np
import pytest

from structgen.constraints import Choice, JsonSchema, Regex
from structgen.errors import CompileLimitError
from structgen.fsm import compile as compile_fsm
from structgen.fsm import index as index_module
from structgen.fsm import loopclass, trie, trie_jit
from structgen.fsm.dfa import ByteDFA
from structgen.fsm.index import TokenFSM, compile_token_fsm
from structgen.fsm.rx import ALL_BYTES, ExprPool
from structgen.fsm.vocabulary import Vocabulary


WALKS = [
    pytest.param(0, False, id="level-walk"),  # the array walk, one trie level at a time to the end
    pytest.param(10_000, False, id="token-walk"),  # the array walk finishing token by token
    pytest.param(512, True, id="compiled", marks=pytest.mark.skipif(not trie_jit.AVAILABLE, reason="numba missing")),
]


def use_walk(monkeypatch, scalar_tail: int, jit: bool) -> None:
    monkeypatch.setattr(trie, "SCALAR_TAIL", scalar_tail)
    monkeypatch.setattr(index_module, "USE_JIT", jit)


def fsm_of(constraint, vocab, **kw):
    return compile_token_fsm(constraint, vocab, cache=False, **kw)


def walk_tokens(fsm, ids):
    s = fsm.initial_state
    for t in ids:
        s = fsm.next_state(s, t)
        if s < 0:
            return -1
    return s


def accepts(fsm, ids) -> bool:
    s = walk_tokens(fsm, ids)
    return s >= 0 and fsm.is_accepting(s) and all(e in fsm.allowed_tokens(s) for e in fsm.eos_token_ids)


def naive_allowed(fsm: TokenFSM, state: int) -> dict[int, int]:
    """Token -> next state by walking every token's bytes one at a time (the definition)."""
    out = {}
    for t, b in enumerate(fsm.vocab.tokens):
        if b:
            n = fsm.byte_dfa.walk(state, b)
            if n >= 0:
                out[t] = n
    if fsm.is_accepting(state):
        out.update({e: state for e in fsm.eos_token_ids})
    return out


def bytes_ids(s: str) -> list[int]:
    return list(s.encode())


AB, ABC, LBRACE_Q, Q_COLON, Q_RBRACE, TRUE, SP2, D12, E_ACUTE = range(256, 265)

# (constraint, token sequences that must be accepted, sequences that must be rejected)
TABLES = [
    (Choice(["abc", "abd", "true"]), [[ABC], [AB, ord("d")], bytes_ids("abd"), [TRUE], bytes_ids("true")],
     [[AB], [ABC, ord("d")], bytes_ids("tru"), [AB, ord("c"), ord("c")], []]),
    (Regex(r"[0-9]+"), [[D12], [D12, D12, ord("3")], bytes_ids("0")], [[], [D12, ord("a")], [SP2]]),
    (Regex(r'\{"[a-z]+": (true|[0-9]+)\}'), [[LBRACE_Q, ord("k"), Q_COLON, ord(" "), TRUE, ord("}")],
                                           bytes_ids('{"ab": 12}'), [LBRACE_Q, AB, Q_COLON, ord(" "), D12, ord("}")]],
     [[LBRACE_Q, Q_RBRACE], bytes_ids('{"": 1}'), bytes_ids('{"a": true')]),
    (Regex(r"é+"), [[E_ACUTE], [0xC3, 0xA9, E_ACUTE]], [[0xC3], [E_ACUTE, 0xC3]]),
    (Regex(r"a*"), [[], [AB - 256 + 97], [ord("a")] * 5], [[AB]]),
]


@pytest.mark.parametrize("constraint,good,bad", TABLES)
def test_accept_reject_tables(toy_vocab, constraint, good, bad):
    fsm = fsm_of(constraint, toy_vocab)
    for ids in good:
        assert accepts(fsm, ids), ids
    for ids in bad:
        assert not accepts(fsm, ids), ids


@pytest.mark.parametrize("scalar_tail,jit", WALKS)
@pytest.mark.parametrize("constraint", [c for c, _, _ in TABLES])
def test_every_reachable_row_equals_the_naive_definition(toy_vocab, constraint, scalar_tail, jit, monkeypatch):
    use_walk(monkeypatch, scalar_tail, jit)  # every way of walking the trie
    fsm = fsm_of(constraint, toy_vocab, eager=True)
    for s in list(fsm._rows):
        got = dict(zip(fsm.allowed_tokens(s).tolist(), fsm.row(s).nexts.tolist()))
        assert got == naive_allowed(fsm, s)


@pytest.mark.parametrize("scalar_tail,jit", WALKS)
def test_rows_equal_naive_definition_on_a_real_vocabulary(smollm2_vocab, scalar_tail, jit, monkeypatch):
    use_walk(monkeypatch, scalar_tail, jit)
    fsm = fsm_of(Regex(r'"([^"\\]|\\.){0,6}" ?[0-9]{1,3}(\.[0-9]+)?'), smollm2_vocab)
    s, seen = fsm.initial_state, []
    for piece in [b'"', "é".encode(), b"\\", b'n"', b" ", b"12"]:
        seen.append(s)
        s = fsm.byte_dfa.walk(s, piece)
    for state in [*seen, s]:
        got = dict(zip(fsm.allowed_tokens(state).tolist(), fsm.row(state).nexts.tolist()))
        assert got == naive_allowed(fsm, state)


def test_eos_only_in_accepting_states(toy_vocab):
    fsm = fsm_of(Regex(r"ab(c)?"), toy_vocab, eager=True)
    (eos,) = toy_vocab.eos_token_ids
    for s in fsm._rows:
        assert (eos in fsm.allowed_tokens(s)) == fsm.is_accepting(s)
    s = walk_tokens(fsm, [AB])
    assert fsm.is_accepting(s) and fsm.next_state(s, eos) == s
    assert fsm.next_state(fsm.initial_state, eos) == -1


def test_padding_and_special_ids_never_allowed(toy_vocab):
    pool = ExprPool()
    fsm = TokenFSM(ByteDFA(pool, pool.star(pool.byteset(ALL_BYTES))), toy_vocab)  # any byte string
    pad = toy_vocab.size - 1
    assert toy_vocab.tokens[pad] is None
    allowed = fsm.allowed_tokens(fsm.initial_state)
    assert pad not in allowed and fsm.next_state(fsm.initial_state, pad) == -1
    assert len(allowed) == toy_vocab.size - 1  # every byte token, every multi-byte token, EOS


def test_mask_bits_match_allowed_tokens(toy_vocab):
    fsm = fsm_of(Regex(r"[a-c]+|true"), toy_vocab)
    for s in (fsm.initial_state, walk_tokens(fsm, [ord("a")])):
        mask = fsm.mask(s)
        assert mask.dtype == np.int32 and mask.shape == ((toy_vocab.size + 31) // 32,)
        bits = np.unpackbits(mask.view(np.uint8), bitorder="little")[: toy_vocab.size]
        assert np.flatnonzero(bits).tolist() == fsm.allowed_tokens(s).tolist()
        assert fsm.mask(s) is mask and not mask.flags.writeable


def test_mask_covers_model_vocab_size_with_padding(smollm2_tokenizer):
    vocab = Vocabulary.from_tokenizer(smollm2_tokenizer, vocab_size=49152 + 100)
    fsm = fsm_of(Regex(r".*"), vocab)
    mask = fsm.mask(fsm.initial_state)
    assert mask.shape == ((49152 + 100 + 31) // 32,)
    bits = np.unpackbits(mask.view(np.uint8), bitorder="little")
    assert not bits[49152:].any() and bits[:49152].sum() > 40000


def test_tables_export_matches_rows(toy_vocab):
    fsm = fsm_of(Regex(r'\{"[a-z]{1,3}": [0-9]\}'), toy_vocab, eager=True)
    t = fsm.tables()
    assert len(t.states) == fsm.num_states_expanded == len(t.bitmask)
    for r, s in enumerate(t.states):
        lo, hi = t.indptr[r], t.indptr[r + 1]
        assert t.token_ids[lo:hi].tolist() == fsm.allowed_tokens(s).tolist()
        assert t.next_states[lo:hi].tolist() == fsm.row(s).nexts.tolist()
        assert (t.bitmask[r] == fsm.mask(s)).all() and t.row_of_state[s] == r
        assert t.accepting[r] == fsm.is_accepting(s)


def test_forced_bytes(toy_vocab):
    fsm = fsm_of(Regex(r'\{"name": "[a-z]+"(, "age": [0-9]+)?\}'), toy_vocab)
    assert fsm.forced_bytes(fsm.initial_state) == b'{"name": "'
    s = walk_tokens(fsm, bytes_ids('{"name": "x'))
    assert fsm.forced_bytes(s) == b""
    s = walk_tokens(fsm, bytes_ids('{"name": "x", '))
    assert fsm.forced_bytes(s) == b'"age": '
    done = walk_tokens(fsm, bytes_ids('{"name": "x"}'))
    assert fsm.forced_bytes(done) == b""


def test_matches_is_whole_string(toy_vocab):
    fsm = fsm_of(Regex(r"[0-9]+"), toy_vocab)
    assert fsm.matches("123") and not fsm.matches("12a") and not fsm.matches("")


def test_pickle_round_trip(toy_vocab):
    fsm = fsm_of(Regex(r"(ab|c)+d"), toy_vocab)
    walk_tokens(fsm, [AB, ord("c")])
    clone = pickle.loads(pickle.dumps(fsm))
    assert clone.num_states_expanded == fsm.num_states_expanded
    assert accepts(clone, [AB, ord("c"), AB, ord("d")]) and not accepts(clone, [AB])
    for s in fsm._rows:
        assert clone.allowed_tokens(s).tolist() == fsm.allowed_tokens(s).tolist()


def test_two_threads_expanding_agree(toy_vocab):
    fsm = fsm_of(Regex(r"[a-z]{0,40}[0-9]{0,40}"), toy_vocab)
    seqs = [[ord("a")] * i + [ord("1")] * j for i in range(0, 40, 3) for j in range(0, 40, 7)]
    results: list[list[int]] = [[], []]

    def run(k):
        for ids in seqs if k == 0 else reversed(seqs):
            results[k].append(walk_tokens(fsm, ids))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[0] == list(reversed(results[1])) and min(results[0]) >= 0
    ref = fsm_of(Regex(r"[a-z]{0,40}[0-9]{0,40}"), toy_vocab)  # state ids follow discovery order: compare rows
    for ids, s in zip(seqs, results[0]):
        assert fsm.allowed_tokens(s).tolist() == ref.allowed_tokens(walk_tokens(ref, ids)).tolist()


def test_eager_limit_raises_compile_limit_error(toy_vocab):
    with pytest.raises(CompileLimitError, match="max_states"):
        fsm_of(Regex(r"[a-z]{0,500}"), toy_vocab, eager=True, max_states=50)


def test_compile_entry_point_and_expression_built_directly(toy_vocab):
    fsm = compile_fsm(Choice(["yes", "no"]), toy_vocab, cache=False)
    assert accepts(fsm, bytes_ids("no")) and not accepts(fsm, bytes_ids("nope"))
    pool = ExprPool()
    root = pool.concat(pool.literal("x"), pool.plus(pool.byte_range(ord("0"), ord("9"))))
    fsm = TokenFSM(ByteDFA(pool, root), toy_vocab)
    assert accepts(fsm, [ord("x"), D12]) and not accepts(fsm, [ord("x")])


def test_compile_from_hf_tokenizer(smollm2_tokenizer):
    fsm = compile_fsm(Choice(["positive", "negative"]), smollm2_tokenizer, cache=False)
    ids = smollm2_tokenizer.encode("negative", add_special_tokens=False)
    assert accepts(fsm, ids)
    assert fsm.vocab_size == 49152 and 2 in fsm.eos_token_ids


def test_prefetch_computes_successor_rows(toy_vocab):
    fsm = fsm_of(Regex(r"(ab|c)[0-9]?d"), toy_vocab)
    succ = fsm.successors(fsm.initial_state)
    assert len(succ) >= 2 and fsm.num_states_expanded == 1
    fsm.prefetch(succ)
    assert fsm.num_states_expanded == 1 + len(set(succ.tolist()) - {fsm.initial_state})
    assert accepts(fsm, [ord("c"), ord("7"), ord("d")])


# ---------------------------------------------------------------------------------- loop-class rows
LOOP_CONSTRAINTS = [
    Regex(r'"([^"\\]|\\.)*"'),  # a JSON string body: a wide self-loop with UTF-8 characters
    Regex(r"[a-z ]*x[0-9]"),  # a wide ASCII loop (27 bytes) left by one byte
    JsonSchema({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                "additionalProperties": {"type": "string"}}),  # an extra key must differ from name/age
]


def random_vocab(seed: int, n: int = 400) -> Vocabulary:
    """Every single byte plus ``n`` random multi-piece tokens mixing string bytes, quotes, escapes,
    control bytes, whole and split UTF-8 characters; ids shuffled so id order is not byte order."""
    rng = random.Random(seed)
    pieces = [p.encode() for p in ['a', 'x', 'z', ' ', '0', '7', '"', '\\', '\n', ':', ',', '{', '}', 'é', '日', '🎉',
                                   'name', 'age', 'na', '"n']]
    pieces += [b"\xc3", b"\xa9", b"\xe6\x97", b"\xa5", b"\xf0\x9f", b"\x8e\x89", b"\x80"]
    toks = {bytes([b]) for b in range(256)}
    while len(toks) < 256 + n:
        toks.add(b"".join(rng.choice(pieces) for _ in range(rng.randint(2, 5))))
    order = sorted(toks)
    rng.shuffle(order)
    return Vocabulary.from_tokens([*order, None], eos_token_ids=[len(order)])


def record_loop_rows(monkeypatch) -> list[tuple[int, int, bool]]:
    """Records ``(state, loop, some first bytes skipped)`` for every row built by ``loopclass.loop_row``."""
    seen: list[tuple[int, int, bool]] = []
    real = index_module.loop_row

    def recorded(split, state, loop, *rest):
        seen.append((state, loop, rest[-1] is not None))
        return real(split, state, loop, *rest)

    monkeypatch.setattr(index_module, "loop_row", recorded)
    return seen


def plain_row(fsm: TokenFSM, state: int):
    """The row of ``state`` from the trie walk alone (the reference for the loop-class path)."""
    dfa = fsm.byte_dfa
    res = fsm._trie.walk(lambda: dfa.table, dfa.ensure, fsm._loop_sets, [state])
    return fsm._make_row(state, *fsm._trie.expand_ranges(res.lo, res.hi, res.state))


@pytest.mark.parametrize("scalar_tail,jit,grid_width", [
    pytest.param(0, False, 2, id="level-walk,narrow"), pytest.param(512, False, 16, id="token-walk,wide"),
    pytest.param(512, True, 2, id="compiled,narrow",
                 marks=pytest.mark.skipif(not trie_jit.AVAILABLE, reason="numba missing"))])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("constraint", LOOP_CONSTRAINTS, ids=["string", "ascii-loop", "object-keys"])
@pytest.mark.parametrize("max_gather", [8192, 0], ids=["gather", "grouped"])
def test_loop_class_rows_equal_naive_definition_on_random_vocabularies(constraint, seed, scalar_tail, jit, grid_width,
                                                                        max_gather, monkeypatch):
    use_walk(monkeypatch, scalar_tail, jit)  # the walk of skipped first bytes, every way
    monkeypatch.setattr(loopclass, "MAX_GATHER", max_gather)  # 0: only suffixes with a live first byte are walked
    monkeypatch.setattr(loopclass, "GRID_WIDTH", grid_width)  # narrow: suffixes finished byte by byte
    monkeypatch.setattr(loopclass, "MIN_INSIDE_FRACTION", 0.0)  # small vocabularies: split whatever the share
    seen = record_loop_rows(monkeypatch)
    vocab = random_vocab(seed)
    trie.trie_of(vocab)._splits.clear()  # splits are kept per vocabulary: rebuild them under this width
    fsm = fsm_of(constraint, vocab, eager=True, max_states=5000)
    assert seen  # the loop-class path computed some of these rows
    compact = [s for s in fsm._rows if fsm._rows[s]._ids is None]
    assert compact
    clone = pickle.loads(pickle.dumps(fsm))
    for s in list(fsm._rows):
        naive = naive_allowed(fsm, s)
        # the compact form answers next_state without spelling its row out; then spelled out
        steps = {t: fsm.next_state(s, t) for t in range(vocab.size)}
        assert {t: n for t, n in steps.items() if n >= 0} == naive, s
        assert set(fsm.successors(s).tolist()) == set(naive.values()), s
        got = dict(zip(fsm.allowed_tokens(s).tolist(), fsm.row(s).nexts.tolist()))
        assert got == naive, s
        assert dict(zip(clone.allowed_tokens(s).tolist(), clone.row(s).nexts.tolist())) == naive, s


@pytest.mark.parametrize("collide", [False, True], ids=["hashed", "all-collide"])
def test_unique_rows_groups_equal_rows(collide, monkeypatch):
    rng = np.random.default_rng(3)
    keys = rng.integers(0, 4, size=(500, 3)).astype(np.uint64)  # many repeats
    keys[::7, 2] = np.uint64(2**63 + 5)  # high bits take part too
    if collide:  # every row hashes alike: the byte comparison must still separate them
        monkeypatch.setattr(loopclass, "_HASH_MULT", np.zeros(8, dtype=np.uint64))
    rep, inverse = loopclass._unique_rows(keys)
    assert (keys[rep[inverse]] == keys).all()  # each row's representative equals it
    distinct = {tuple(r) for r in keys.tolist()}
    assert len(rep) == len(distinct) == len({tuple(r) for r in keys[rep].tolist()})


def test_id_order_sorts_a_subset_of_a_permutation_by_id():
    rng = np.random.default_rng(4)
    order = rng.permutation(1000).astype(np.int32)[:900]  # some ids are not walkable
    pos = np.sort(rng.choice(900, size=300, replace=False))
    got = loopclass._id_order(order, pos)
    assert got.tolist() == np.argsort(order[pos], kind="stable").tolist()


def test_loop_class_rows_equal_trie_walk_on_a_real_vocabulary(smollm2_vocab, smollm2_tokenizer, monkeypatch):
    text = '{"name": "Zoë \\"日本\\" é", "age": 31, "nickname": "x y", "a": "🎉\\n", "n": "3"}'
    seen = record_loop_rows(monkeypatch)
    fsm = fsm_of(LOOP_CONSTRAINTS[2], smollm2_vocab)
    s = fsm.initial_state
    for t in smollm2_tokenizer.encode(text, add_special_tokens=False):
        s = fsm.next_state(s, t)
        assert s >= 0
    assert fsm.is_accepting(s)
    assert any(loop == st for st, loop, _ in seen) and any(skip for _, _, skip in seen)
    for st, _, _ in seen:
        ref = plain_row(fsm, st)
        assert fsm.allowed_tokens(st).tolist() == ref.ids.tolist() and fsm.row(st).nexts.tolist() == ref.nexts.tolist()
        assert (fsm.mask(st) == ref.mask).all()
    for st, _, skip in seen[:1] + [x for x in seen if x[2]][:1]:  # one of each kind against the definition
        got = dict(zip(fsm.allowed_tokens(st).tolist(), fsm.row(st).nexts.tolist()))
        assert got == naive_allowed(fsm, st)


CHAIN_CONSTRAINTS = [
    Regex(r'"([^"\\]|\\.){0,7}"'),  # a bounded string body: a chain of 8 counting states, escapes count 1
    JsonSchema({"type": "string", "minLength": 2, "maxLength": 9}),
    Regex(r"[a-z ]{3,20}x[0-9]"),  # an ASCII class counted past the longest token
    Regex('"[^"\\\\][^"\\\\\x80-\U0010ffff]{0,6}"'),  # any first character, then ASCII only: the
    # non-ASCII moves of every chain state are checked, not just the first one's
]


def record_chain_rows(monkeypatch) -> list[int]:
    """Records the start state of every row built by ``loopclass.chain_row``."""
    seen: list[int] = []
    real = index_module.chain_row

    def recorded(split, chain, *rest):
        seen.append(int(chain[0]))
        return real(split, chain, *rest)

    monkeypatch.setattr(index_module, "chain_row", recorded)
    return seen


@pytest.mark.parametrize("grid_width,max_gather", [(2, 8192), (16, 8192), (2, 0)], ids=["narrow", "wide", "grouped"])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("constraint", CHAIN_CONSTRAINTS, ids=["bounded-string", "schema-maxLength", "ascii-count",
                                                                     "ascii-after-first"])
def test_counting_chain_rows_equal_naive_definition_on_random_vocabularies(constraint, seed, grid_width, max_gather,
                                                                            monkeypatch):
    monkeypatch.setattr(loopclass, "GRID_WIDTH", grid_width)
    monkeypatch.setattr(loopclass, "MAX_GATHER", max_gather)
    monkeypatch.setattr(loopclass, "MIN_INSIDE_FRACTION", 0.0)
    seen = record_chain_rows(monkeypatch)
    vocab = random_vocab(seed)
    trie.trie_of(vocab)._splits.clear()
    fsm = fsm_of(constraint, vocab, eager=True, max_states=5000)
    assert len(seen) >= 3  # several states of the chain took the chain path
    compact = [s for s in seen if fsm._rows[s].chain is not None and fsm._rows[s]._ids is None]
    assert len(compact) >= 3  # kept as chain + character counts, not spelled out
    clone = pickle.loads(pickle.dumps(fsm))
    for s in list(fsm._rows):
        naive = naive_allowed(fsm, s)
        # the compact form answers next_state from the chain without spelling its row out
        steps = {t: fsm.next_state(s, t) for t in range(vocab.size)}
        assert {t: n for t, n in steps.items() if n >= 0} == naive, s
        assert set(fsm.successors(s).tolist()) == set(naive.values()), s
        got = dict(zip(fsm.allowed_tokens(s).tolist(), fsm.row(s).nexts.tolist()))
        assert got == naive, s
        assert dict(zip(clone.allowed_tokens(s).tolist(), clone.row(s).nexts.tolist())) == naive, s


@pytest.mark.parametrize("vocab_name", ["smollm2", "llama3"])
def test_counting_chain_rows_equal_trie_walk_on_real_vocabularies(vocab_name, request, monkeypatch):
    vocab = request.getfixturevalue(f"{vocab_name}_vocab")
    tokenizer = request.getfixturevalue(f"{vocab_name}_tokenizer")
    schema = {"type": "object", "properties": {"title": {"type": "string", "maxLength": 40},
                                               "code": {"type": "string", "minLength": 3, "maxLength": 6}}}
    text = '{"title": "Zoë \\"日本\\" é — a bounded title", "code": "A-1é"}'
    seen = record_chain_rows(monkeypatch)
    fsm = fsm_of(JsonSchema(schema), vocab)
    s = fsm.initial_state
    for t in tokenizer.encode(text, add_special_tokens=False):
        s = fsm.next_state(s, t)
        assert s >= 0
    assert fsm.is_accepting(s) and len(seen) >= 4
    for st in seen:
        ref = plain_row(fsm, st)
        assert fsm.allowed_tokens(st).tolist() == ref.ids.tolist() and fsm.row(st).nexts.tolist() == ref.nexts.tolist()
        assert (fsm.mask(st) == ref.mask).all()


@pytest.mark.parametrize("max_gather", [8192, 0], ids=["gather", "grouped"])
def test_narrow_counting_class_is_split_after_a_big_walk(smollm2_vocab, smollm2_tokenizer, max_gather, monkeypatch):
    """Alphanumeric tokens are a minority of the vocabulary, so a state counting them is first
    walked through the trie; its row is big, so the class is split after all (with the lower
    share) and the next states of the chain take it. Rows equal the trie walk's either way."""
    monkeypatch.setattr(loopclass, "MAX_GATHER", max_gather)
    t = trie.trie_of(smollm2_vocab)
    monkeypatch.setattr(t, "_splits", {})  # fresh splits and marks for this vocabulary, restored after
    monkeypatch.setattr(t, "_wanted", set())
    seen = record_chain_rows(monkeypatch)
    fsm = fsm_of(Regex(r"[A-Za-z0-9]{0,40}(\.[a-z]{2,6})?"), smollm2_vocab)
    s = fsm.initial_state
    assert not seen and t._wanted  # the first state was walked, and its class marked
    for tok in smollm2_tokenizer.encode("Hello42WorldAbc.com", add_special_tokens=False):
        s = fsm.next_state(s, tok)
        assert s >= 0
        fsm.mask(s)
    assert fsm.is_accepting(s) and len(seen) >= 2
    marked = [(np.frombuffer(k[0], dtype=np.uint64), k[1]) for k in t._wanted]
    narrow = [m for m in marked if t.loop_split(*m, narrow=True) is not None]
    assert narrow  # the alphanumeric class at least (a rarer one may stay under the lower share too)
    assert all(t.loop_split(*m) is None for m in narrow)  # a looping state keeps its trie walk
    for st in [fsm.initial_state] + seen:
        ref = plain_row(fsm, st)
        assert fsm.allowed_tokens(st).tolist() == ref.ids.tolist() and fsm.row(st).nexts.tolist() == ref.nexts.tolist()
        assert (fsm.mask(st) == ref.mask).all()
        assert all(fsm.next_state(st, int(i)) == int(n) for i, n in zip(ref.ids[::97], ref.nexts[::97]))


@pytest.mark.skipif(not trie_jit.AVAILABLE, reason="numba missing")
@pytest.mark.parametrize("vocab_name", ["smollm2", "llama3"])
def test_compiled_walk_equals_array_walk_on_real_vocabularies(vocab_name, request, monkeypatch):
    """Every state met along a JSON document, walked from the root and from first-byte subtrees
    (several roots in one walk): the same tokens end in the same states both ways."""
    vocab = request.getfixturevalue(f"{vocab_name}_vocab")
    schema = {"type": "object", "properties": {
        "id": {"type": "integer", "minimum": -5}, "tags": {"type": "array", "items": {"enum": ["a b", "ç", "--"]}},
        "note": {"type": "string", "pattern": "^[a-z]+( [a-z]+)*$"}, "when": {"type": "string", "format": "date"}}}
    fsm = fsm_of(JsonSchema(schema), vocab)
    dfa, t = fsm.byte_dfa, fsm._trie
    states, s = [], fsm.initial_state
    for b in b'{\n  "id": 12,\n  "tags": ["a b", "\xc3\xa7"], "note": "ab cd", "when": "2024-02-29"}':
        states.append(s)
        s = dfa.step(s, b)
    assert s >= 0 and dfa.is_accepting(s)
    monkeypatch.setattr(trie, "SCALAR_TAIL", 0)

    def ranges(res):
        ids, nexts = t.expand_ranges(res.lo, res.hi, res.state)
        return sorted(zip(res.root[np.repeat(np.arange(len(res.lo)), res.hi - res.lo)].tolist(), ids.tolist(),
                          nexts.tolist()))

    for group in (states[i : i + 7] for i in range(0, len(states), 7)):
        ref = t.walk(lambda: dfa.table, dfa.ensure, fsm._loop_sets, group)
        got = trie_jit.walk(t, fsm._learn, group)
        assert ranges(got) == ranges(ref) and len(ranges(ref)) > 0
    first = np.asarray([ord(c) for c in '"a-0 '])
    roots = np.asarray([dfa.expand(x)[first[0]] for x in states[:1]] * len(first), dtype=np.int32)
    node = t.root_child[first]
    live = (roots >= 0) & (node >= 0)
    ref = t.walk(lambda: dfa.table, dfa.ensure, fsm._loop_sets, roots[live], start=node[live])
    assert ranges(trie_jit.walk(t, fsm._learn, roots[live], node[live])) == ranges(ref)


def test_non_ascii_shape_check_is_sound_and_catches_string_bodies(toy_vocab):
    """The expression-shape shortcut of ``loops_on_non_ascii`` never says yes where the state-
    by-state check says no, and it does say yes for JSON string bodies (its purpose)."""
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "s": {"type": "string", "maxLength": 3},
                                               "k": {"type": "string", "pattern": "^[a-zé]+$"},
                                               "x": {"type": "string", "pattern": "^[^é]*$"}}}  # all but one
    fsm = fsm_of(JsonSchema(schema), toy_vocab)
    dfa = fsm.byte_dfa
    doc = '{"name": "ab\\u0041", "s": "xé", "k": "é", "x": "ab", "other": "o"}'.encode()
    pairs, s = [], fsm.initial_state
    for b in doc:
        row = dfa.expand(s)
        pairs += [(s, int(t)) for t in set(row[row >= 0].tolist())] + [(s, s)]
        s = dfa.step(s, b)
    assert dfa.is_accepting(s)
    shaped = 0
    for st, target in pairs:
        fast = loopclass._non_ascii_by_shape(dfa, st, target)
        shaped += fast
        if fast:
            for ch in ("é", "日", "🎉", "\u0080", "\U0010ffff"):
                assert dfa.walk(st, ch.encode()) == target, (st, target, ch)
    assert shaped >= 4  # string bodies, keys and bounded strings took the shortcut


def test_valid_char_bytes_agree_with_the_utf8_decoder():
    rng = random.Random(0)
    alphabet = [bytes([b]) for b in (0x41, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xED, 0xEF,
                                     0xF0, 0xF4, 0xF5, 0xFF)] + [c.encode() for c in "é日🎉\U0010ffff"]
    toks = [b"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))) for _ in range(3000)]
    flat = np.frombuffer(b"".join(toks), dtype=np.uint8)
    starts = np.concatenate([[0], np.cumsum([len(t) for t in toks])[:-1]])
    expected = np.zeros(len(flat), dtype=bool)
    for tok, start in zip(toks, starts):
        i = 0
        while i < len(tok):  # the longest strict decode of 2-4 bytes from each lead is one character
            width = next((k for k in (2, 3, 4) if tok[i] >= 0x80 and _decodes_to_one_char(tok[i : i + k], k)), 0)
            expected[start + i : start + i + width] = True
            i += width or 1
    assert (loopclass.valid_char_bytes(flat, starts) == expected).all() and expected.any()


def _decodes_to_one_char(data: bytes, width: int) -> bool:
    try:
        return len(data) == width and len(data.decode("utf-8")) == 1
    except UnicodeDecodeError:
        return False


def test_is_expanded_tracks_computed_rows(toy_vocab):
    fsm = fsm_of(Regex(r"abcdefgh"), toy_vocab)
    state, states = fsm.initial_state, [fsm.initial_state]
    for ch in b"abcdefg":  # walk the DFA (not the token level) to collect states
        state = fsm.byte_dfa.step(state, ch)
        states.append(state)
    before = [s for s in states if fsm.is_expanded(s)]
    assert fsm.initial_state in before and len(before) <= fsm.num_states_expanded
    later = next(s for s in states if not fsm.is_expanded(s))
    fsm.mask(later)
    assert fsm.is_expanded(later)


@pytest.mark.skipif(not trie_jit.AVAILABLE, reason="numba missing")
@pytest.mark.parametrize("vocab_name", ["smollm2", "llama3"])
def test_compiled_suffix_walk_equals_the_array_version(vocab_name, request, monkeypatch):
    """Loop-class rows (string bodies, key entries, counted strings) feed token suffixes through
    the DFA; the compiled walk and the column-by-column array walk give the same rows."""
    vocab = request.getfixturevalue(f"{vocab_name}_vocab")
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 40},
                                               "note": {"type": "string"}, "tags": {"type": "array",
                                               "items": {"type": "string", "pattern": "^[a-z]+$"}}}}
    doc = b'{"name": "Zo\\u0041 \\"q\\"", "note": "a\\nb \xc3\xa9\xe2\x82\xac!", "tags": ["ab", "c"], "x": 1}'

    def rows(use_jit):  # per position: allowed ids, and which of them share a next state
        monkeypatch.setattr(loopclass, "USE_JIT", use_jit)  # (state ids depend on discovery order)
        fsm = fsm_of(JsonSchema(schema), vocab)
        out, s = [], fsm.initial_state
        for b in doc:
            ids, nexts = fsm.allowed_tokens(s), fsm.row(s).nexts
            groups = sorted(tuple(ids[nexts == x].tolist()) for x in np.unique(nexts))
            out.append((ids.tolist(), groups))
            s = fsm.byte_dfa.step(s, b)
        assert fsm.byte_dfa.is_accepting(s)
        return out

    compiled = rows(True)
    assert compiled == rows(False)
