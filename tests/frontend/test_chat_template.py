"""Role parts derived from a real chat template render exactly what the template renders."""

from __future__ import annotations

from fake_runtime import FakeRuntime

import structgen.frontend as sg
from structgen.frontend.chat_template import ChatTemplate


def test_smollm2_parts_match_apply_chat_template(smollm2_tokenizer):
    tmpl = ChatTemplate.from_tokenizer(smollm2_tokenizer)
    assert tmpl.name == "tokenizer"
    rt = FakeRuntime(responder=lambda p, c, r: "Paris")
    rt.tokenizer = smollm2_tokenizer

    @sg.function
    def f(s):
        s += sg.user("Capital of France?")
        s += sg.assistant(sg.gen("a"))
        s += sg.user("Thanks")

    state = f.run(runtime=rt)
    expected = smollm2_tokenizer.apply_chat_template(state.messages(), tokenize=False)
    assert state.text() == expected  # includes SmolLM2's default system prompt on the first turn
    gen_prompt = smollm2_tokenizer.apply_chat_template(state.messages()[:1], tokenize=False, add_generation_prompt=True)
    assert rt.requests[0].prompt == gen_prompt


def test_with_system_turn_first(smollm2_tokenizer):
    tmpl = ChatTemplate.from_tokenizer(smollm2_tokenizer)
    msgs = [{"role": "system", "content": "S1"}, {"role": "user", "content": "U1"}, {"role": "assistant", "content": "A1"}]
    text = (tmpl.prefix("system", True) + "S1" + tmpl.suffix("system", True) + tmpl.prefix("user", False) + "U1"
            + tmpl.suffix("user", False) + tmpl.prefix("assistant", False) + "A1" + tmpl.suffix("assistant", False))
    assert text == smollm2_tokenizer.apply_chat_template(msgs, tokenize=False)


def test_tokenizer_without_template_uses_chatml():
    assert ChatTemplate.from_tokenizer(object()).prefix("user", True) == "<|im_start|>user\n"
