"""Prompt forms a request accepts, and their token ids.

* ``str``: one user turn through the tokenizer's chat template; with ``raw=True`` (or when the
  tokenizer has no chat template) the text is tokenised as is, with the tokenizer's usual
  special tokens (e.g. BOS).
* a list of ``{"role", "content"}`` messages: through the chat template, ending with the
  assistant's generation prompt.
* a list of token ids: used as is.
"""

from __future__ import annotations

from typing import Any

from ..errors import RequestError


def is_prompt_list(x: Any) -> bool:
    """True when ``x`` is a list of prompts rather than one prompt (messages or token ids)."""
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(p, (str, list, tuple)) for p in x)


def encode_prompt(tokenizer: Any, prompt: Any, *, raw: bool = False) -> list[int]:
    """Token ids of ``prompt`` (see the module docstring); ``RequestError`` for other forms."""
    if isinstance(prompt, str):
        if raw or not getattr(tokenizer, "chat_template", None):
            return list(tokenizer.encode(prompt))
        return _chat(tokenizer, [{"role": "user", "content": prompt}])
    if isinstance(prompt, (list, tuple)) and prompt and all(isinstance(m, dict) for m in prompt):
        return _chat(tokenizer, _check_messages(prompt))
    if isinstance(prompt, (list, tuple)) and prompt and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
        if min(prompt) < 0:
            raise RequestError("token ids must be >= 0")
        return list(prompt)
    raise RequestError(
        f"a prompt must be a str, a non-empty list of {{'role', 'content'}} messages or of token ids, got {prompt!r:.80}"
    )


def _check_messages(messages: Any) -> list[dict[str, str]]:
    for i, m in enumerate(messages):
        if not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise RequestError(f"message {i} needs a str 'role' and a str 'content', got {m!r:.80}")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _chat(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    if not getattr(tokenizer, "chat_template", None):
        raise RequestError("this tokenizer has no chat template: pass the prompt as a str with raw=True")
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return list(tokenizer.encode(text, add_special_tokens=False))
