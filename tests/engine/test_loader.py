"""load_model: sources, device/dtype resolution, and the errors users see."""

from __future__ import annotations

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")

from structgen.engine.loader import cpu_native_bf16, load_model, resolve_dtype
from structgen.engine.model_runner import ForwardBatch
from structgen.errors import InvalidBatchError, ModelLoadError, UnsupportedModelError


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, eos_token_id=[3, 5],
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("tiny")
    transformers.LlamaForCausalLM(cfg).save_pretrained(folder)
    return folder


def test_folder_loads_with_config_fields(tiny_folder):
    runner = load_model(tiny_folder, device="cpu")
    c = runner.config
    assert c.architecture == "LlamaForCausalLM"
    assert (c.vocab_size, c.hidden_size, c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim) == (96, 32, 2, 4, 2, 8)
    assert c.eos_token_ids[:2] == (3, 5)  # generation_config.json may add more
    assert runner.device == torch.device("cpu") and runner.dtype == resolve_dtype(None, torch.device("cpu"))
    assert runner.tokenizer is None  # the folder has no tokenizer files


def test_generation_config_eos_ids_are_added(tiny_folder, tmp_path):
    for f in tiny_folder.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [5, 7]}))
    assert load_model(tmp_path, device="cpu").config.eos_token_ids == (3, 5, 7)


def test_dtype_names_and_defaults():
    cpu = torch.device("cpu")
    assert resolve_dtype(None, cpu) == (torch.bfloat16 if cpu_native_bf16() else torch.float32)
    assert resolve_dtype("auto", cpu) == resolve_dtype(None, cpu)
    assert resolve_dtype("bf16", cpu) == torch.bfloat16
    assert resolve_dtype(torch.float16, cpu) == torch.float16
    with pytest.raises(ModelLoadError):
        resolve_dtype("int8", cpu)


def test_unsupported_architecture_names_it_and_the_supported_list(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}))
    with pytest.raises(UnsupportedModelError, match="GPT2LMHeadModel.*LlamaForCausalLM"):
        load_model(tmp_path, device="cpu")


def test_missing_path_and_missing_weights_raise_model_load_error(tmp_path, tiny_folder):
    with pytest.raises(ModelLoadError):
        load_model(tmp_path / "nope", device="cpu")
    (tmp_path / "config.json").write_text((tiny_folder / "config.json").read_text())
    with pytest.raises(ModelLoadError, match="safetensors"):
        load_model(tmp_path, device="cpu")


def test_unreachable_hub_id_raises_model_load_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelLoadError, match="local folder"):
        load_model("structgen-test/does-not-exist", device="cpu")


def test_forward_rejects_inconsistent_batch_and_foreign_pool(tiny_folder):
    runner = load_model(tiny_folder, device="cpu")
    pool = runner.new_kv_pool(16)
    s = pool.alloc(3)
    bad = ForwardBatch.build([([1, 2, 3], 0, s, s)])
    bad.seq_lens = [2]
    with pytest.raises(InvalidBatchError):
        runner.forward(bad, pool)
    with pytest.raises(InvalidBatchError, match="vocab_size"):
        runner.forward(ForwardBatch.build([([1, 2, 96], 0, s, s)]), pool)
    from structgen.engine.kv_cache import KVPool

    other = KVPool(1, 2, 8, 16, torch.float32, "cpu")
    with pytest.raises(InvalidBatchError, match="new_kv_pool"):
        runner.forward(ForwardBatch.build([([1, 2, 3], 0, s, s)]), other)


@pytest.mark.slow
def test_default_model_loads_from_cache_with_tokenizer():
    runner = load_model(device="cpu")
    c = runner.config
    assert c.architecture == "LlamaForCausalLM" and c.vocab_size == 49152 and c.num_layers == 30
    assert c.tie_word_embeddings
    assert len(runner.tokenizer) == c.vocab_size
    assert runner.tokenizer.eos_token_id in runner.eos_token_ids
