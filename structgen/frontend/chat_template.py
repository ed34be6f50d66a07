"""Role prefixes and suffixes taken from a tokenizer's chat template.

A program writes chat turns incrementally (``s += user("hi")``), so it needs, for each role,
the text the template puts before and after a message's content. We render the template
(``tokenizer.apply_chat_template(..., tokenize=False)``) around a sentinel content and cut the
output at the sentinel. Two cases per role: the *first* turn of a conversation (where templates
insert defaults, e.g. SmolLM2's default system prompt) and a later turn. The assistant prefix
is the template's generation prompt (``add_generation_prompt=True``), which is what the model
saw during training before it answered.

Tokenizers without a chat template, or templates that cannot be rendered this way, fall back
to ChatML (``<|im_start|>{role}\\n`` ... ``<|im_end|>\\n``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

_SENTINEL = "\x00STRUCTGEN_SENTINEL\x00"


@dataclass(frozen=True)
class ChatTemplate:
    """``parts[(role, first)] = (prefix, suffix)`` for roles system/user/assistant."""

    parts: dict
    name: str = "chatml"

    def prefix(self, role: str, first: bool) -> str:
        return self.parts[(role, first)][0]

    def suffix(self, role: str, first: bool) -> str:
        return self.parts[(role, first)][1]

    @classmethod
    def chatml(cls) -> ChatTemplate:
        parts = {(r, f): (f"<|im_start|>{r}\n", "<|im_end|>\n") for r in ("system", "user", "assistant")
                 for f in (True, False)}
        return cls(parts, "chatml")

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> ChatTemplate:
        """Derive the parts from ``tokenizer``'s chat template (ChatML when it has none)."""
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            return cls.chatml()
        try:
            parts = {(r, f): _derive(tokenizer, r, f) for r in ("system", "user", "assistant") for f in (True, False)}
        except Exception as e:  # noqa: BLE001 - templates that refuse the probe conversations
            log.warning("chat template cannot be split into role parts (%s); using ChatML", e)
            return cls.chatml()
        return cls(parts, "tokenizer")


def _render(tok: Any, messages: list, gen_prompt: bool = False) -> str:
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen_prompt)


def _split(text: str) -> tuple[str, str]:
    if text.count(_SENTINEL) != 1:
        raise ValueError("the template does not render message content verbatim")
    a, b = text.split(_SENTINEL)
    return a, b


def _context(role: str) -> list:
    """Conversation before a non-first turn of ``role``."""
    if role == "assistant":
        return [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    if role == "user":
        return [{"role": "system", "content": "S"}]
    return [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}, {"role": "assistant", "content": "A"}]


def _derive(tok: Any, role: str, first: bool) -> tuple[str, str]:
    ctx = [] if first else _context(role)
    before = _render(tok, ctx) if ctx else ""
    full = _render(tok, ctx + [{"role": role, "content": _SENTINEL}])
    if not full.startswith(before):
        raise ValueError(f"rendering one more {role} turn changes the earlier text")
    prefix, suffix = _split(full[len(before):])
    if role == "assistant" and ctx:
        gen = _render(tok, ctx, gen_prompt=True)
        if gen.startswith(before) and len(gen) > len(before):
            prefix = gen[len(before):]
    return prefix, suffix
