"""The tokenizer's own encoding of any matching string walks the TokenFSM to an accepting state.

Generation may produce any tokenisation of a matching text; the tokenizer's canonical one must
be among them (this is what re-tokenisation after jump-forward and prompt-prefilled outputs need).
"""

from __future__ import annotations

import re

import pytest

from structgen.constraints import Choice, Regex
from structgen.fsm.index import compile_token_fsm

CHOICES = [
    "positive", "negative", "neutral", " leading space", "with\nnewline", "日本語のテキスト",
    "emoji 🎉🎉", "   ", "a", "Mixed CASE and digits 12345", '{"json": "like"}', "tab\tseparated",
]

# (pattern, strings that fully match it)
REGEX_CASES = [
    (r"[0-9]{3}-[0-9]{4}", ["555-1234", "000-0000"]),
    (r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?", ["0", "-12.5", "3.14159e-10", "1234567890123"]),
    (r'\{"name": "[^"]{0,30}", "age": [0-9]{1,3}\}', ['{"name": "Ann Smith", "age": 31}', '{"name": "", "age": 7}',
                                                      '{"name": "Zoë 日本", "age": 100}']),
    (r"[a-z]+( [a-z]+)*\.", ["hello world.", "a b c d e f g h i j k.", "supercalifragilistic."]),
    (r"(\s|[A-Za-z])+", ["  Hello   World  \n\n", "\t\tTabbed\n  Indented"]),
    (r"https?://[a-z0-9.-]+(/[a-zA-Z0-9_-]*)*", ["https://example.com/a/b_c/d-e", "http://x.y.z/"]),
    (r"(true|false|null|\[\]|\{\})(, (true|false|null))*", ["true, false, null", "[], null", "{}"]),
]


def walks_to_accept(fsm, ids) -> bool:
    s = fsm.initial_state
    for t in ids:
        s = fsm.next_state(s, t)
        if s < 0:
            return False
    return fsm.is_accepting(s) and all(e in fsm.allowed_tokens(s) for e in fsm.eos_token_ids)


@pytest.mark.parametrize("which", ["smollm2", "llama3"])
def test_choice_options_tokenised_walk_to_accept(request, which):
    tok = request.getfixturevalue(f"{which}_tokenizer")
    vocab = request.getfixturevalue(f"{which}_vocab")
    fsm = compile_token_fsm(Choice(CHOICES), vocab, cache=False)
    for option in CHOICES:
        assert walks_to_accept(fsm, tok.encode(option, add_special_tokens=False)), option
    assert not walks_to_accept(fsm, tok.encode("positiv", add_special_tokens=False))


@pytest.mark.parametrize("which", ["smollm2", "llama3"])
@pytest.mark.parametrize("pattern,texts", REGEX_CASES)
def test_regex_matches_tokenised_walk_to_accept(request, which, pattern, texts):
    tok = request.getfixturevalue(f"{which}_tokenizer")
    vocab = request.getfixturevalue(f"{which}_vocab")
    fsm = compile_token_fsm(Regex(pattern), vocab, cache=False)
    for text in texts:
        assert re.fullmatch(pattern, text), text
        assert fsm.matches(text)
        assert walks_to_accept(fsm, tok.encode(text, add_special_tokens=False)), text
