"""Shared fixtures. Tokenizers come from ``structgen.assets`` (fetched once into the cache dir)."""

from __future__ import annotations

import os

import pytest
import torch

# Triton fixes at import time whether its own library functions are interpreted. On a machine
# without CUDA every Triton kernel in the suite runs through the interpreter, so turn it on before
# any test module can import triton.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    """The embedded default model's tokenizer (SmolLM2, byte-level BPE, 49,152 tokens)."""
    from structgen import assets

    return assets.load_default_tokenizer()


@pytest.fixture(scope="session")
def llama3_tokenizer():
    """A Llama-3 tokenizer (byte-level BPE, 128,256 ids)."""
    from structgen import assets

    return assets.load_llama3_tokenizer()


@pytest.fixture(scope="session")
def toy_vocab():
    """``Vocabulary.byte_level()``: 256 single bytes, a few multi-byte tokens, EOS, one padding id."""
    from structgen.fsm.vocabulary import Vocabulary

    return Vocabulary.byte_level()


@pytest.fixture(scope="session")
def smollm2_vocab(smollm2_tokenizer):
    from structgen.fsm.vocabulary import Vocabulary

    return Vocabulary.from_tokenizer(smollm2_tokenizer)


@pytest.fixture(scope="session")
def llama3_vocab(llama3_tokenizer):
    from structgen.fsm.vocabulary import Vocabulary

    return Vocabulary.from_tokenizer(llama3_tokenizer)


@pytest.fixture(scope="session")
def default_runtime():
    """One ``Runtime`` over the embedded default model, shared by every slow test (greedy tests only)."""
    from structgen.engine.runtime import Runtime

    rt = Runtime(device="cpu", max_batch_size=32, kv_cache_tokens=16384)
    yield rt
    rt.shutdown()
