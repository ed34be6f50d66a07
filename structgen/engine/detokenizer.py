"""Incremental output text: each new token costs work proportional to that token, not to the
whole output. ``final_text()`` always equals a full decode of the output so far; ``text`` is
the same less a held-back incomplete trailing character.

Two decoders share one interface (``extend``, ``rewind``, ``text``, ``final_text``):

- ``ByteText`` (constrained output): the automaton's exact token bytes are fed to an
  incremental UTF-8 decoder (errors replaced), which holds back an incomplete trailing
  character. ``text`` equals ``b"".join(bytes).decode("utf-8", "replace")`` without the
  replacement character(s) that an incomplete tail would show; ``final_text()`` equals the full
  decode exactly.
- ``TokenizerText`` (free text): the standard incremental detokenisation (vLLM, transformers'
  ``TextStreamer``): with ``prefix_offset <= read_offset``, ``decode(ids[prefix_offset:])``
  minus ``decode(ids[prefix_offset:read_offset])`` is the new text; it is emitted once it is
  longer and does not end in U+FFFD (an incomplete character), and then both offsets move on.
  Decoding a window from a token that starts a character gives the same characters as the full
  decode, so ``final_text()`` equals ``tokenizer.decode(ids, skip_special_tokens=True)`` for
  decoders that map each window on its own, such as byte-level BPE (the tests use the default
  model's). Transformers applies no space clean-up across tokens to BPE tokenizers, the kind
  every supported model family uses.

``rewind(n)`` drops every token after the first ``n`` (jump-forward re-tokenises its boundary)
by restoring the state recorded after token ``n``.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from typing import Any


class ByteText:
    """Text of token ids decoded from exact per-token bytes (``table[id]``; None: no bytes)."""

    def __init__(self, table: Sequence[bytes | None]):
        self._table = table
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.text = ""
        self._marks: list[tuple[int, tuple[bytes, int]]] = []  # per token: (len(text), decoder state)

    @property
    def num_tokens(self) -> int:
        return len(self._marks)

    def extend(self, ids: Sequence[int]) -> None:
        """Append tokens; ``text`` grows by their complete characters."""
        parts, length = [], len(self.text)
        for t in ids:
            parts.append(self._decoder.decode(self._table[t] or b""))
            length += len(parts[-1])
            self._marks.append((length, self._decoder.getstate()))
        self.text += "".join(parts)

    def rewind(self, n: int) -> None:
        """Keep only the first ``n`` tokens."""
        del self._marks[n:]
        length, state = self._marks[-1] if self._marks else (0, (b"", 0))
        self.text = self.text[:length]
        self._decoder.setstate(state)

    def final_text(self) -> str:
        """``text`` plus any incomplete trailing character, replaced (the full decode)."""
        return self.text + codecs.decode(self._decoder.getstate()[0], "utf-8", "replace")


class TokenizerText:
    """Text of token ids through ``tokenizer.decode(..., skip_special_tokens=True)``, incrementally."""

    def __init__(self, tokenizer: Any):
        self._tokenizer = tokenizer
        self._decode = _decoder_of(tokenizer)
        self._ids: list[int] = []
        self.text = ""
        self._prefix = 0  # prefix_offset
        self._read = 0  # read_offset
        self._prefix_text = ""  # decode(ids[prefix:read])
        self._marks: list[tuple[int, int, int, str]] = []  # per token: (len(text), prefix, read, prefix_text)

    @property
    def num_tokens(self) -> int:
        return len(self._ids)

    def extend(self, ids: Sequence[int]) -> None:
        """Append tokens; the text grows once their characters are complete."""
        for t in ids:
            self._ids.append(int(t))
            new = self._decode(self._ids[self._prefix :])
            if len(new) > len(self._prefix_text) and not new.endswith("\ufffd"):
                self.text += new[len(self._prefix_text) :]
                self._prefix, self._read = self._read, len(self._ids)
                self._prefix_text = self._decode(self._ids[self._prefix : self._read])
            self._marks.append((len(self.text), self._prefix, self._read, self._prefix_text))

    def rewind(self, n: int) -> None:
        """Keep only the first ``n`` tokens."""
        del self._ids[n:], self._marks[n:]
        length, self._prefix, self._read, self._prefix_text = self._marks[-1] if self._marks else (0, 0, 0, "")
        self.text = self.text[:length]

    def final_text(self) -> str:
        """The full decode: ``text`` plus whatever is held back."""
        return self.text + self._decode(self._ids[self._prefix :])[len(self._prefix_text) :]



def _decoder_of(tokenizer: Any):
    """``ids -> tokenizer.decode(ids, skip_special_tokens=True)``, through the Rust ``tokenizers``
    backend when the result is the same (no space clean-up): the Python wrapper costs ~10x more
    per call, and this runs once or twice per generated token."""
    backend = getattr(tokenizer, "_tokenizer", None)
    if hasattr(backend, "decode") and not getattr(tokenizer, "clean_up_tokenization_spaces", False):
        return lambda ids: backend.decode(ids, skip_special_tokens=True)
    return lambda ids: tokenizer.decode(ids, skip_special_tokens=True)


def make_text_decoder(table: Sequence[bytes | None] | None, tokenizer: Any) -> ByteText | TokenizerText:
    """``ByteText`` over exact token bytes when there is a table, else ``TokenizerText``."""
    return ByteText(table) if table is not None else TokenizerText(tokenizer)
