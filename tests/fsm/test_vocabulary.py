"""Vocabulary: exact token bytes for real tokenizers, EOS/special/padding handling, fingerprints."""

from __future__ import annotations

from typing import ClassVar

import pytest

from structgen.errors import TokenizerError
from structgen.fsm.vocabulary import Vocabulary, unicode_to_bytes, vocabulary_of

SAMPLES = [
    "hello world",
    ' {"a": 1, "b": [1.5e-06, null, true]}\n\n',
    "héllo wörld 日本語 🎉 emoji",
    "\t\ttabs  and   spaces\r\n",
    "ŉ weird ǅ \x00\x01 control \x7f",
    "x" * 100 + " " * 37 + "-" * 64,
    "def f(x):\n    return x ** 2  # comment\n",
    "Ω≈ç√∫˜µ≤≥÷ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u202ertl",
    "  leading spaces and trailing   ",
    '{"key": "value with \\"escapes\\" and \\\\ backslash"}',
]


@pytest.mark.parametrize("which", ["smollm2", "llama3"])
def test_token_bytes_concatenate_to_the_encoded_text(request, which):
    tok = request.getfixturevalue(f"{which}_tokenizer")
    vocab = request.getfixturevalue(f"{which}_vocab")
    for s in SAMPLES:
        ids = tok.encode(s, add_special_tokens=False)
        assert all(vocab.tokens[i] is not None for i in ids), s
        assert b"".join(vocab.tokens[i] for i in ids) == s.encode("utf-8"), s


def test_smollm2_eos_and_specials(smollm2_tokenizer, smollm2_vocab):
    v = smollm2_vocab
    assert v.size == 49152
    im_end = smollm2_tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert im_end in v.eos_token_ids
    assert v.tokens[im_end] is None
    im_start = smollm2_tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert im_start not in v.eos_token_ids and v.tokens[im_start] is None


def test_llama3_eos_detected_and_reserved_specials_excluded(llama3_tokenizer, llama3_vocab):
    v = llama3_vocab
    eot = llama3_tokenizer.convert_tokens_to_ids("<|eot_id|>")
    end = llama3_tokenizer.convert_tokens_to_ids("<|end_of_text|>")
    assert {eot, end} <= set(v.eos_token_ids)
    assert all(t is None for t in v.tokens[128000:])
    assert v.tokens[llama3_tokenizer.convert_tokens_to_ids("Ġhello")] == b" hello"


def test_model_vocab_larger_than_tokenizer_pads_with_none(smollm2_tokenizer):
    v = Vocabulary.from_tokenizer(smollm2_tokenizer, vocab_size=49152 + 64)
    assert v.size == 49216 and len(v.tokens) == 49216
    assert all(t is None for t in v.tokens[49152:])


def test_explicit_eos_ids_override_detection(smollm2_tokenizer):
    v = Vocabulary.from_tokenizer(smollm2_tokenizer, eos_token_ids=[0])
    assert v.eos_token_ids == (0,)
    assert v.tokens[0] is None


def test_fingerprint_is_stable_and_content_sensitive():
    a = Vocabulary.from_tokens(["a", "b", "ab"], eos_token_ids=[3], vocab_size=4)
    b = Vocabulary.from_tokens([b"a", b"b", b"ab"], eos_token_ids=[3], vocab_size=4)
    c = Vocabulary.from_tokens(["a", "b", "ba"], eos_token_ids=[3], vocab_size=4)
    d = Vocabulary.from_tokens(["a", "b", "ab"], eos_token_ids=[3], vocab_size=5)
    assert a.fingerprint == b.fingerprint
    assert len({a.fingerprint, c.fingerprint, d.fingerprint}) == 3


def test_byte_level_toy_vocabulary(toy_vocab):
    assert [toy_vocab.tokens[b] for b in (0, 65, 255)] == [b"\x00", b"A", b"\xff"]
    assert toy_vocab.tokens[264] == "é".encode()
    eos = toy_vocab.eos_token_ids[0]
    assert toy_vocab.tokens[eos] is None and toy_vocab.size == eos + 2


def test_bytes_to_unicode_inverse_is_a_bijection():
    table = unicode_to_bytes()
    assert len(table) == 256 and sorted(table.values()) == list(range(256))
    assert table["Ġ"] == 32 and table["Ċ"] == 10 and table["a"] == 97


class _SentencePieceLike:
    """A slow tokenizer stand-in with SentencePiece pieces (no backend_tokenizer)."""

    eos_token_id = 2
    added_tokens_decoder: ClassVar[dict] = {}
    all_special_ids = (0, 1, 2)

    def get_vocab(self):
        return {"<unk>": 0, "<s>": 1, "</s>": 2, "<0x0A>": 3, "▁hello": 4, "▁": 5, "wor": 6, "<0xC3>": 7}

    def __len__(self):
        return 8


def test_sentencepiece_pieces_and_byte_fallback():
    v = Vocabulary.from_tokenizer(_SentencePieceLike())
    assert v.tokens[3] == b"\n" and v.tokens[4] == b" hello" and v.tokens[5] == b" "
    assert v.tokens[7] == b"\xc3" and v.tokens[6] == b"wor"
    assert v.eos_token_ids == (2,) and v.tokens[0] is None and v.tokens[1] is None


class _Unmappable(_SentencePieceLike):
    def get_vocab(self):
        return {"plain": 0, "words": 1, "</s>": 2}


def test_unmappable_tokenizer_raises_tokenizer_error():
    with pytest.raises(TokenizerError):
        Vocabulary.from_tokenizer(_Unmappable())


def test_vocabulary_of_memoises_per_tokenizer(smollm2_tokenizer, toy_vocab):
    assert vocabulary_of(toy_vocab) is toy_vocab
    assert vocabulary_of(smollm2_tokenizer) is vocabulary_of(smollm2_tokenizer)


def test_public_names_of_the_fsm_package(smollm2_tokenizer):
    import structgen.fsm as fsm_pkg
    from structgen.fsm import TokenFSM
    from structgen.fsm import Vocabulary as PublicVocabulary

    assert PublicVocabulary is Vocabulary and set(fsm_pkg.__all__) >= {"compile", "TokenFSM", "Vocabulary"}
    vocab = PublicVocabulary.from_tokenizer(smollm2_tokenizer)
    fsm = fsm_pkg.compile({"enum": ["a", "b"]}, vocab)  # a Vocabulary wherever a tokenizer is accepted
    assert isinstance(fsm, TokenFSM) and fsm.matches('"b"') and not fsm.matches('"c"')
    with pytest.raises(AttributeError):
        fsm_pkg.NoSuchName  # noqa: B018
