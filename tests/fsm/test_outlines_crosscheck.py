"""Cross-check TokenFSM against outlines-core's ``Index`` on the SmolLM2 vocabulary.

Both automata are explored in lockstep by token sequences (BFS over pairs of states); in
every reached pair the allowed token sets must be equal. EOS handling differs by design:
outlines-core knows a single EOS id, structgen allows every EOS id of the vocabulary
(``<|endoftext|>`` and ``<|im_end|>`` for SmolLM2). So EOS ids are compared separately: each
engine allows its EOS ids exactly in its accepting states, and both agree on acceptance.

A second known difference: outlines-core 0.2.14 drops the tokens whose bytes pass through an
accepting state and end in a non-accepting one (``Index("a(\\.5)?")`` allows only EOS after
``a``, although ``a.5`` matches; with ``(ab|cd)+e?`` it drops ``aba`` at the start). So we
require its set to be a subset of ours and every extra token of ours to be of that kind;
``test_index.py`` checks our rows against the definition.
"""

from __future__ import annotations

from collections import deque

import pytest

from structgen.constraints import Regex
from structgen.fsm.index import compile_token_fsm

outlines_core = pytest.importorskip("outlines_core")

REGEXES = [
    r"(true|false|null)",
    r"-?(0|[1-9][0-9]{0,3})(\.[0-9]{1,2})?",
    r'"([^"\\\x00-\x1f]|\\["\\/bfnrt])*"',
    r'\{"id": [0-9]+, "tag": "[a-z]{0,4}"\}',
    r"[a-zA-Z_][a-zA-Z0-9_]{0,5}",
    r"(ab|cd)+e?",
]


def passes_accepting_then_leaves(fsm, state: int, data: bytes) -> bool:
    """True when ``data`` from ``state`` visits an accepting state before its end and ends non-accepting."""
    dfa, seen_accepting = fsm.byte_dfa, False
    for b in data:
        seen_accepting |= dfa.is_accepting(state)
        state = dfa.step(state, b)
    return seen_accepting and not dfa.is_accepting(state)


@pytest.fixture(scope="module")
def outlines_vocab(smollm2_vocab):
    eos = smollm2_vocab.eos_token_ids[0]
    by_bytes: dict[bytes, list[int]] = {}
    for i, b in enumerate(smollm2_vocab.tokens):
        if b:
            by_bytes.setdefault(b, []).append(i)
    return outlines_core.Vocabulary(eos, by_bytes)


@pytest.mark.parametrize("pattern", REGEXES)
def test_same_allowed_tokens_in_every_reachable_state(smollm2_vocab, outlines_vocab, pattern):
    ours = compile_token_fsm(Regex(pattern), smollm2_vocab, cache=False)
    theirs = outlines_core.Index(pattern, outlines_vocab)
    their_eos = outlines_vocab.get_eos_token_id()
    eos = set(smollm2_vocab.eos_token_ids)
    trans = theirs.get_transitions()
    start = (ours.initial_state, theirs.get_initial_state())
    queue, seen = deque([start]), {start}
    while queue:
        s, t = queue.popleft()
        row = ours.row(s)
        mine = {i: n for i, n in zip(row.ids.tolist(), row.nexts.tolist()) if i not in eos}
        other = {i: n for i, n in trans.get(t, {}).items() if i != their_eos}
        assert ours.is_accepting(s) == theirs.is_final_state(t)
        assert set(other) <= set(mine), (pattern, s, t, sorted(set(other) - set(mine))[:10])
        for i in set(mine) - set(other):
            assert passes_accepting_then_leaves(ours, s, smollm2_vocab.tokens[i]), (pattern, s, i)
        assert eos <= set(row.ids.tolist()) if ours.is_accepting(s) else not eos & set(row.ids.tolist())
        for i, n in other.items():
            pair = (mine[i], n)
            if pair not in seen:
                seen.add(pair)
                queue.append(pair)
    assert len(seen) >= 2
