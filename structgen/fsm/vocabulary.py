"""The exact bytes of every token of a tokenizer, its end-of-sequence ids, and a fingerprint.

``Vocabulary.tokens[i]`` is the byte string token ``i`` stands for in generated text, or
``None`` when token ``i`` may never be generated under a constraint: special/control tokens,
padding ids past the tokenizer's end (a model vocabulary larger than the tokenizer's), and the
end-of-sequence tokens themselves — those are listed in ``eos_token_ids`` and allowed only
where the constraint is satisfied (``TokenFSM`` adds them to accepting states).

Supported tokenizer families:
- byte-level BPE (GPT-2, Llama 3, SmolLM2, Qwen...): token strings spell bytes through the
  GPT-2 bytes-to-unicode table;
- SentencePiece-style (Llama 2, Mistral...): ``▁`` is a space, ``<0xNN>`` is the raw byte NN;
- added tokens: non-special ones keep the UTF-8 bytes of their content.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..errors import TokenizerError

log = logging.getLogger(__name__)

# Special tokens that end a turn or a document in common chat models.
KNOWN_EOS_TOKENS = (
    "</s>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
)

_BYTE_FALLBACK = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


@lru_cache(maxsize=1)
def unicode_to_bytes() -> dict[str, int]:
    """Inverse of GPT-2's ``bytes_to_unicode``: printable stand-in character -> byte value."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(printable, chars)}


@dataclass(frozen=True, eq=False)
class Vocabulary:
    """Token bytes by id (``None``: never allowed), EOS ids and the model's vocabulary size.

    ``size`` is the number of logits the model produces (>= ``len(tokens)`` is not required:
    ``tokens`` is padded with ``None`` up to ``size``). ``fingerprint`` is a sha256 over the
    contents, stable across processes, used as a cache key.
    """

    tokens: tuple[bytes | None, ...]
    eos_token_ids: tuple[int, ...]
    size: int
    fingerprint: str = field(default="", compare=False)

    def __post_init__(self):
        if self.size < len(self.tokens):
            raise TokenizerError(f"vocab_size {self.size} is smaller than the tokenizer's {len(self.tokens)} tokens")
        for e in self.eos_token_ids:
            if not 0 <= e < self.size:
                raise TokenizerError(f"EOS id {e} is outside the vocabulary (size {self.size})")
        if len(self.tokens) < self.size:
            object.__setattr__(self, "tokens", tuple(self.tokens) + (None,) * (self.size - len(self.tokens)))
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", _fingerprint(self.tokens, self.eos_token_ids, self.size))

    def __len__(self) -> int:
        return self.size

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and other.fingerprint == self.fingerprint

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_tokens(
        cls, tokens: Sequence[bytes | str | None], *, eos_token_ids: Iterable[int] = (), vocab_size: int | None = None
    ) -> Vocabulary:
        """From token contents by id (``str`` is UTF-8 encoded); EOS ids are made ``None`` in ``tokens``."""
        eos = tuple(sorted({int(e) for e in eos_token_ids}))
        out: list[bytes | None] = []
        for i, t in enumerate(tokens):
            if isinstance(t, str):
                t = t.encode("utf-8")
            if t is not None and not isinstance(t, bytes):
                raise TokenizerError(f"token {i} must be bytes, str or None, got {type(t).__name__}")
            out.append(None if i in eos or t == b"" else t)
        return cls(tuple(out), eos, vocab_size if vocab_size is not None else max(len(out), max(eos, default=-1) + 1))

    @classmethod
    def byte_level(cls) -> Vocabulary:
        """A toy vocabulary for tests: the 256 single bytes (ids 0-255), a few multi-byte tokens, EOS last.

        Ids 256.. are ``"ab"``, ``"abc"``, ``'{"'``, ``'":'``, ``'"}'``, ``"true"``, ``"  "``,
        ``"12"``, ``"é"`` (two UTF-8 bytes); then EOS; then one padding id.
        """
        extra = ["ab", "abc", '{"', '":', '"}', "true", "  ", "12", "é"]
        tokens: list[bytes | None] = [bytes([b]) for b in range(256)] + [e.encode() for e in extra]
        eos = len(tokens)
        tokens.append(None)
        return cls.from_tokens(tokens, eos_token_ids=(eos,), vocab_size=len(tokens) + 1)

    @classmethod
    def from_tokenizer(
        cls, tok: Any, *, vocab_size: int | None = None, eos_token_ids: Iterable[int] | None = None
    ) -> Vocabulary:
        """From a Hugging Face tokenizer (fast or slow). See the module docstring for the rules.

        vocab_size: the model's number of logits when larger than the tokenizer (extra ids are padding).
        eos_token_ids: the ids that end generation; detected when None (``tok.eos_token_id`` plus
            known end-of-turn specials present in the vocabulary).
        """
        vocab = tok.get_vocab()
        n = max(vocab.values(), default=-1) + 1
        added = {int(i): t for i, t in getattr(tok, "added_tokens_decoder", {}).items()}
        decode = _piece_decoder(tok)
        specials = set(getattr(tok, "all_special_ids", ()) or ()) | {i for i, t in added.items() if t.special}
        eos = tuple(sorted(set(eos_token_ids))) if eos_token_ids is not None else detect_eos(tok, vocab)
        tokens: list[bytes | None] = [None] * n
        for piece, i in vocab.items():
            if i in eos or i in specials:
                continue
            if i in added:
                tokens[i] = added[i].content.encode("utf-8") or None
                continue
            tokens[i] = decode(piece, i)
        return cls(tuple(tokens), eos, vocab_size if vocab_size is not None else max(n, len(tok)))


def detect_eos(tok: Any, vocab: dict[str, int]) -> tuple[int, ...]:
    """``tok.eos_token_id`` plus the known end-of-turn special tokens the vocabulary has."""
    ids = set()
    if getattr(tok, "eos_token_id", None) is not None:
        ids.add(int(tok.eos_token_id))
    ids.update(vocab[t] for t in KNOWN_EOS_TOKENS if t in vocab)
    if not ids:
        raise TokenizerError("tokenizer has no EOS token; pass eos_token_ids=[...] explicitly")
    return tuple(sorted(ids))


def _piece_decoder(tok: Any):
    """A function ``(piece, id) -> bytes`` for the tokenizer's family, or TokenizerError."""
    kind = _tokenizer_kind(tok)
    if kind == "byte_level":
        table = unicode_to_bytes()

        def byte_level(piece: str, i: int) -> bytes:
            try:
                return bytes(table[c] for c in piece)
            except KeyError:
                raise TokenizerError(
                    f"token {i} {piece!r} has a character outside the byte-level alphabet; "
                    "is this really a byte-level BPE tokenizer?"
                ) from None

        return byte_level

    def sentencepiece(piece: str, i: int) -> bytes:
        m = _BYTE_FALLBACK.match(piece)
        if m:
            return bytes([int(m.group(1), 16)])
        return piece.replace("\u2581", " ").encode("utf-8")

    return sentencepiece


def _tokenizer_kind(tok: Any) -> str:
    """``"byte_level"`` or ``"sentencepiece"``, from the fast tokenizer's JSON or the vocabulary."""
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        text = json.dumps([spec.get("pre_tokenizer"), spec.get("decoder")])
        if '"ByteLevel"' in text:
            return "byte_level"
        if "ByteFallback" in text or "Metaspace" in text or "\u2581" in text or "\\u2581" in text:
            return "sentencepiece"
        raise TokenizerError(
            "cannot tell how this tokenizer's pieces map to bytes (neither byte-level BPE nor "
            "SentencePiece); build the Vocabulary with Vocabulary.from_tokens(...)"
        )
    pieces = tok.get_vocab()
    if any(p.startswith("\u2581") for p in pieces) or "<0x0A>" in pieces:
        return "sentencepiece"
    if "Ġ" in "".join(list(pieces)[:5000]):
        return "byte_level"
    raise TokenizerError(
        f"cannot map the pieces of {type(tok).__name__} to bytes; build the Vocabulary with Vocabulary.from_tokens(...)"
    )


def _fingerprint(tokens: Sequence[bytes | None], eos: Sequence[int], size: int) -> str:
    h = hashlib.sha256()
    h.update(f"structgen-vocab-v1|{size}|{list(eos)}|".encode())
    for t in tokens:
        if t is None:
            h.update(b"\xff\xff\xff\xff")
        else:
            h.update(len(t).to_bytes(4, "little"))
            h.update(t)
    return h.hexdigest()


_MEMO: dict[int, tuple[Any, Vocabulary]] = {}


def vocabulary_of(tokenizer: Any, **kwargs: Any) -> Vocabulary:
    """``tokenizer`` itself when it is a Vocabulary, else ``Vocabulary.from_tokenizer`` memoised per object."""
    if isinstance(tokenizer, Vocabulary):
        return tokenizer
    key = id(tokenizer)
    hit = _MEMO.get(key)
    if hit is not None and hit[0] is tokenizer and not kwargs:
        return hit[1]
    vocab = Vocabulary.from_tokenizer(tokenizer, **kwargs)
    if not kwargs:
        if len(_MEMO) > 16:
            _MEMO.clear()
        _MEMO[key] = (tokenizer, vocab)
    return vocab
