"""Jump-forward planning: where the automaton forces a unique continuation, the tokens to append.

``plan_jump(seq, tokenizer)`` takes the forced bytes of the sequence's FSM state (cut to whole
UTF-8 characters), re-encodes the text of the last few generated tokens together with them (so
the model sees natural tokenisation, e.g. ``"ab"`` + forced ``"c"`` -> ``"abc"``), keeps the
common token prefix and returns the replacement tail with the FSM state before each new token.
Only tokens the sequence owns privately (generated, not in the radix cache) are replaced; the
caller recomputes the K/V of every replaced token. When the boundary cannot be re-tokenised
exactly (the bytes would change, or a new token is not allowed), the forced text is encoded on
its own; when that fails too, or the tail would exceed ``max_tokens``, there is no jump.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .radix import common_prefix_len
from .request import Sequence

# Generated tokens re-tokenised together with the forced bytes.
RETOKENIZE_WINDOW = 4


class JumpPlan(NamedTuple):
    keep: int  # tokens[:keep] stay
    tail: list[int]  # appended after them
    states: list[int]  # FSM state before each tail token, then the state after the last


def plan_jump(seq: Sequence, tokenizer: Any) -> JumpPlan | None:
    """The jump-forward of ``seq`` in its current FSM state, or None (see module doc)."""
    forced = valid_utf8_prefix(seq.fsm.forced_bytes(seq.fsm_state))
    if not forced:
        return None
    lo = max(seq.prompt_len, seq.prefix_len)
    start = max(lo, len(seq.tokens) - RETOKENIZE_WINDOW)
    found = _retokenize(seq, tokenizer, start, forced) or _retokenize(seq, tokenizer, len(seq.tokens), forced)
    if found is None:
        return None
    start, new, states = found
    common = common_prefix_len(seq.tokens[start:], new)
    keep = start + common
    tail = new[common:]
    if keep + len(tail) > seq.prompt_len + seq.params.max_tokens:
        return None  # does not fit max_tokens: decode normally until "length"
    return JumpPlan(keep, tail, states[common:])


def _retokenize(seq: Sequence, tokenizer: Any, start: int, forced: str):
    """``(start, new_tokens, states)`` encoding ``bytes(tokens[start:]) + forced``, or None.

    ``states[i]`` is the FSM state before ``new_tokens[i]``, plus the final state. None when the
    old tokens are not whole UTF-8 text, the encoding changes the bytes, or the automaton
    rejects a new token.
    """
    old = seq.tokens[start:]
    table = token_bytes(seq.fsm)
    old_bytes = join_bytes(table, old) if table is not None else None
    if old_bytes is None:
        return None
    try:
        text = old_bytes.decode("utf-8")
    except UnicodeDecodeError:
        return None
    new = list(tokenizer.encode(text + forced, add_special_tokens=False))
    if join_bytes(table, new) != old_bytes + forced.encode("utf-8"):
        return None  # the tokenizer does not round-trip this text (e.g. a SentencePiece prefix space)
    state = seq.fsm_states[start - seq.prompt_len] if old else seq.fsm_state
    states = [state]
    for t in new:
        state = seq.fsm.next_state(state, t)
        if state < 0:
            return None
        states.append(state)
    return start, new, states


def token_bytes(fsm: Any):
    """The exact bytes of every token id as the automaton sees them (``fsm.vocab.tokens``), or None."""
    return getattr(getattr(fsm, "vocab", None), "tokens", None)


def join_bytes(table: Any, ids: list[int]) -> bytes | None:
    """Concatenated bytes of ``ids``; None when one of them has no bytes (a special token)."""
    parts = [table[t] if 0 <= t < len(table) else None for t in ids]
    return None if any(p is None for p in parts) else b"".join(parts)


def valid_utf8_prefix(data: bytes) -> str:
    """The longest prefix of ``data`` that is complete UTF-8, decoded."""
    for cut in range(len(data), max(len(data) - 4, -1), -1):
        try:
            return data[:cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return ""
