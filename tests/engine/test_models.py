"""Golden tests: our forward pass over the KV pool against transformers on the same weights.

Tiny random-weight models of every supported family are saved with transformers as safetensors
and loaded through our loader. Tolerance: max |logit difference| <= 1e-4 in float32.
"""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from structgen.engine.loader import load_model
from structgen.engine.model_runner import ForwardBatch

ATOL = 1e-4
VOCAB = 160
COMMON = {
    "vocab_size": VOCAB, "hidden_size": 64, "intermediate_size": 112, "num_hidden_layers": 2,
    "num_attention_heads": 4, "max_position_embeddings": 512, "initializer_range": 0.1,
}  # fmt: skip
LLAMA3_ROPE = {
    "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64, "rope_theta": 500000.0,
}  # fmt: skip


def _hf_config(kind: str):
    t = transformers
    if kind == "llama_gqa":
        return t.LlamaConfig(**COMMON, num_key_value_heads=2, tie_word_embeddings=False)
    if kind == "llama3_rope_tied":
        return t.LlamaConfig(**COMMON, num_key_value_heads=1, tie_word_embeddings=True, rope_parameters=LLAMA3_ROPE)
    if kind == "llama_bias_linear_rope":
        rope = {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}
        return t.LlamaConfig(**COMMON, num_key_value_heads=4, attention_bias=True, mlp_bias=True, rope_parameters=rope)
    if kind == "qwen2_bias":
        return t.Qwen2Config(**COMMON, num_key_value_heads=2, tie_word_embeddings=True, use_sliding_window=False)
    if kind == "qwen3_qk_norm":
        return t.Qwen3Config(**COMMON, num_key_value_heads=2, head_dim=32, tie_word_embeddings=False)
    if kind == "mistral_window":
        return t.MistralConfig(**COMMON, num_key_value_heads=2, sliding_window=5, tie_word_embeddings=False)
    raise AssertionError(kind)


KINDS = ["llama_gqa", "llama3_rope_tied", "llama_bias_linear_rope", "qwen2_bias", "qwen3_qk_norm", "mistral_window"]


def _make(kind: str, tmp_path_factory):
    torch.manual_seed(sum(map(ord, kind)))
    cfg = _hf_config(kind)
    hf = transformers.AutoModelForCausalLM.from_config(cfg).eval()
    with torch.no_grad():  # default init leaves norms at 1 and biases at 0: make them matter
        for name, p in hf.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.2 * torch.randn_like(p))
    folder = tmp_path_factory.mktemp(kind)
    hf.save_pretrained(folder)
    return hf, load_model(folder, device="cpu", dtype="float32")


@pytest.fixture(scope="module", params=KINDS)
def pair(request, tmp_path_factory):
    """(transformers model, our runner) on the same random weights."""
    return _make(request.param, tmp_path_factory)


def _hf_logits(hf, tokens: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return hf(torch.tensor([tokens])).logits[0].float()  # [len, vocab]


def _tokens(n: int, seed: int) -> list[int]:
    return torch.randint(0, VOCAB, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def test_config_matches_transformers(pair):
    hf, runner = pair
    c, h = runner.config, hf.config
    assert (c.num_layers, c.num_heads, c.num_kv_heads, c.vocab_size) == (
        h.num_hidden_layers, h.num_attention_heads, h.num_key_value_heads, h.vocab_size,
    )  # fmt: skip
    assert c.head_dim == getattr(h, "head_dim", None) or c.head_dim == h.hidden_size // h.num_attention_heads
    assert c.tie_word_embeddings == bool(h.tie_word_embeddings)


@pytest.mark.parametrize("length", [13, 30])  # a short chunk (padded path) and a long prefill
def test_prefill_logits_match(pair, length):
    hf, runner = pair
    tokens = _tokens(length, 1)
    pool = runner.new_kv_pool(64)
    slots = pool.alloc(len(tokens))
    ours = runner.forward(ForwardBatch.build([(tokens, 0, slots, slots)], all_logits=True), pool)
    assert ours.dtype == torch.float32 and ours.shape == (length, VOCAB)
    assert (ours - _hf_logits(hf, tokens)).abs().max().item() <= ATOL


def test_chunked_prefill_next_to_decodes(pair):
    """A 45-token prompt prefilled in chunks of 20, 20 and 5 while another sequence decodes."""
    hf, runner = pair
    pool = runner.new_kv_pool(128)
    long, other = _tokens(45, 14), _tokens(12, 15)
    ctx_o = pool.alloc(9)
    runner.forward(ForwardBatch.build([(other[:9], 0, ctx_o, ctx_o)]), pool)
    ctx_l = torch.empty(0, dtype=torch.long)
    ref_l, ref_o = _hf_logits(hf, long), _hf_logits(hf, other)
    for step, (a, b) in enumerate([(0, 20), (20, 40), (40, 45)]):
        new_l, new_o = pool.alloc(b - a), pool.alloc(1)
        ctx_l, ctx_o = torch.cat([ctx_l, new_l]), torch.cat([ctx_o, new_o])
        seqs = [([other[9 + step]], 9 + step, new_o, ctx_o), (long[a:b], a, new_l, ctx_l)]
        out = runner.forward(ForwardBatch.build(seqs, all_logits=True), pool)
        assert (out[0] - ref_o[9 + step]).abs().max().item() <= ATOL
        assert (out[1:] - ref_l[a:b]).abs().max().item() <= ATOL, f"chunk {a}:{b}"


def test_decode_steps_match(pair):
    hf, runner = pair
    tokens = _tokens(15, 2)
    pool = runner.new_kv_pool(64)
    ctx = pool.alloc(8)
    runner.forward(ForwardBatch.build([(tokens[:8], 0, ctx, ctx)]), pool)
    ref = _hf_logits(hf, tokens)
    for pos in range(8, 15):
        new = pool.alloc(1)
        ctx = torch.cat([ctx, new])
        out = runner.forward(ForwardBatch.build([([tokens[pos]], pos, new, ctx)]), pool)
        assert (out[0] - ref[pos]).abs().max().item() <= ATOL, f"position {pos}"


def test_mixed_batch_with_shared_prefix(pair):
    """A prefill chunk, two sequences extending one cached prefix, and decodes, in one batch."""
    hf, runner = pair
    pool = runner.new_kv_pool(128)
    prefix, a, b, c = _tokens(6, 3), _tokens(4, 4), _tokens(3, 5), _tokens(9, 6)
    sp, sc = pool.alloc(6), pool.alloc(8)
    runner.forward(ForwardBatch.build([(prefix, 0, sp, sp), (c[:8], 0, sc, sc)]), pool)
    sa, sb, sc1 = pool.alloc(4), pool.alloc(3), pool.alloc(1)
    ctx_a, ctx_b, ctx_c = torch.cat([sp, sa]), torch.cat([sp, sb]), torch.cat([sc, sc1])
    batch = ForwardBatch.build([(c[8:], 8, sc1, ctx_c), (a, 6, sa, ctx_a), (b, 6, sb, ctx_b)], all_logits=True)
    out = runner.forward(batch, pool)  # rows: c[8] | a[0..3] | b[0..2]
    assert (out[0] - _hf_logits(hf, c)[8]).abs().max().item() <= ATOL
    assert (out[1:5] - _hf_logits(hf, prefix + a)[6:]).abs().max().item() <= ATOL
    assert (out[5:8] - _hf_logits(hf, prefix + b)[6:]).abs().max().item() <= ATOL
    # Next step: decodes of all three (different context lengths, padded together) and a
    # second chunk of a new sequence that also reuses the shared prefix.
    d = _tokens(5, 7)
    na, nb, nc, sd = pool.alloc(1), pool.alloc(1), pool.alloc(1), pool.alloc(5)
    seqs = [
        ([a[0]], 10, na, torch.cat([ctx_a, na])),
        (d, 6, sd, torch.cat([sp, sd])),
        ([b[0]], 9, nb, torch.cat([ctx_b, nb])),
        ([c[0]], 9, nc, torch.cat([ctx_c, nc])),
    ]
    out = runner.forward(ForwardBatch.build(seqs), pool)
    assert (out[0] - _hf_logits(hf, prefix + a + [a[0]])[-1]).abs().max().item() <= ATOL
    assert (out[1] - _hf_logits(hf, prefix + d)[-1]).abs().max().item() <= ATOL
    assert (out[2] - _hf_logits(hf, prefix + b + [b[0]])[-1]).abs().max().item() <= ATOL
    assert (out[3] - _hf_logits(hf, c + [c[0]])[-1]).abs().max().item() <= ATOL


def greedy(runner, prompts: list[list[int]], max_new: int) -> list[list[int]]:
    """Greedy decoding of several prompts in one batch through the pool (prefill, then decodes)."""
    pool = runner.new_kv_pool(sum(map(len, prompts)) + len(prompts) * max_new + 1)
    ctx = [pool.alloc(len(p)) for p in prompts]
    logits = runner.forward(ForwardBatch.build([(p, 0, s, s) for p, s in zip(prompts, ctx)]), pool)
    outs: list[list[int]] = [[] for _ in prompts]
    for step in range(max_new):
        seqs = []
        for i, tok in enumerate(logits.argmax(-1).tolist()):
            outs[i].append(tok)
            new = pool.alloc(1)
            ctx[i] = torch.cat([ctx[i], new])
            seqs.append(([tok], len(prompts[i]) + step, new, ctx[i]))
        if step + 1 < max_new:
            logits = runner.forward(ForwardBatch.build(seqs), pool)
    return outs


def test_greedy_generation_matches_generate(pair):
    hf, runner = pair
    prompts = [_tokens(5, 8), _tokens(11, 9), _tokens(2, 10)]
    ours = greedy(runner, prompts, 12)
    for prompt, got in zip(prompts, ours):
        with torch.no_grad():
            ref = hf.generate(
                torch.tensor([prompt]), max_new_tokens=12, do_sample=False, min_new_tokens=12,
                pad_token_id=0, eos_token_id=None,
            )[0, len(prompt):].tolist()  # fmt: skip
        assert got == ref


def test_bfloat16_on_cpu_tracks_float32(tmp_path_factory):
    hf, _ = _make("qwen3_qk_norm", tmp_path_factory)
    folder = tmp_path_factory.mktemp("bf16")
    hf.save_pretrained(folder)
    runner = load_model(folder, device="cpu", dtype=torch.bfloat16)
    tokens = _tokens(10, 11)
    pool = runner.new_kv_pool(32)
    assert pool.dtype == torch.bfloat16
    s = pool.alloc(10)
    out = runner.forward(ForwardBatch.build([(tokens, 0, s, s)], all_logits=True), pool)
    ref = _hf_logits(hf, tokens)
    assert out.dtype == torch.float32
    assert (out - ref).abs().max().item() <= 0.05 * ref.abs().max().item()
    assert (out.argmax(-1) == ref.argmax(-1)).float().mean().item() >= 0.8


@pytest.fixture(scope="module")
def smollm2():
    """(transformers model read from the default GGUF, our runner, chat prompt ids)."""
    from structgen import assets

    gguf = assets.default_model_file()
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    runner = load_model(device="cpu", dtype="float32")
    messages = [{"role": "user", "content": "Give me a JSON object describing a cat named Tom."}]
    ids = runner.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
    return hf.eval(), runner, list(ids)


@pytest.mark.slow
def test_default_model_logits_match_transformers(smollm2):
    hf, runner, prompt = smollm2
    pool = runner.new_kv_pool(len(prompt) + 8)
    s = pool.alloc(len(prompt))
    ours = runner.forward(ForwardBatch.build([(prompt, 0, s, s)], all_logits=True), pool)
    ref = _hf_logits(hf, prompt)
    assert (ours - ref).abs().max().item() <= 1e-3  # 30 layers, float32
    assert torch.equal(ours.argmax(-1), ref.argmax(-1))


@pytest.mark.slow
def test_default_model_greedy_20_tokens_match_generate(smollm2):
    hf, runner, prompt = smollm2
    ours = greedy(runner, [prompt, prompt[:-3]], 20)
    with torch.no_grad():
        ref = hf.generate(torch.tensor([prompt]), max_new_tokens=20, min_new_tokens=20, do_sample=False)
    assert ours[0] == ref[0, len(prompt) :].tolist()


@pytest.mark.slow
def test_default_model_cpu_default_tracks_float32(smollm2):
    """The CPU default (bfloat16, 4-bit GGUF weights kept 4-bit where supported) vs float32."""
    _, ref_runner, prompt = smollm2
    runner = load_model(device="cpu")
    outs = []
    for r in (ref_runner, runner):
        pool = r.new_kv_pool(len(prompt) + 8)
        s = pool.alloc(len(prompt))
        outs.append(r.forward(ForwardBatch.build([(prompt, 0, s, s)], all_logits=True), pool))
    ref, ours = outs
    assert (ours - ref).abs().max().item() <= 0.06 * ref.abs().max().item()
    assert (ours.argmax(-1) == ref.argmax(-1)).float().mean().item() >= 0.9
    assert greedy(runner, [prompt], 12)[0] == greedy(ref_runner, [prompt], 12)[0]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cuda_half_precision_tracks_float32(tmp_path_factory, dtype):
    hf, cpu_runner = _make("llama_gqa", tmp_path_factory)  # half-precision greedy may drift later on
    folder = tmp_path_factory.mktemp("cuda")
    hf.save_pretrained(folder)
    runner = load_model(folder, device="cuda", dtype=dtype)
    assert runner.device.type == "cuda" and runner.new_kv_pool(4).k[0].is_cuda
    prompts = [_tokens(9, 12), _tokens(4, 13)]
    ref = _hf_logits(hf, prompts[0])
    pool = runner.new_kv_pool(32)
    s = pool.alloc(9)
    out = runner.forward(ForwardBatch.build([(prompts[0], 0, s, s)], all_logits=True), pool).cpu()
    assert (out - ref).abs().max().item() <= 0.05 * ref.abs().max().item()
    assert (out.argmax(-1) == ref.argmax(-1)).float().mean().item() >= 0.8
    ours, exact = greedy(runner, prompts, 6), greedy(cpu_runner, prompts, 6)
    assert [len(g) for g in ours] == [6, 6] and ours[0][0] == exact[0][0]
    full = prompts[0] + _tokens(4, 16)  # decode steps over the pool (padded, bucketed keys)
    ref = _hf_logits(hf, full)
    for pos in range(9, 13):
        new = pool.alloc(1)
        s = torch.cat([s, new])
        out = runner.forward(ForwardBatch.build([([full[pos]], pos, new, s)]), pool).cpu()
        assert (out[0] - ref[pos]).abs().max().item() <= 0.05 * ref.abs().max().item()
