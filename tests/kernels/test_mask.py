"""apply_token_bitmask_ / mask_logits_by_state_: torch reference semantics, Triton equality, validation."""

from __future__ import annotations

import pytest
import torch

from structgen.errors import KernelDtypeError
from structgen.kernels import apply_token_bitmask_, mask_logits_by_state_, pack_bitmask, unpack_bitmask

NEG_INF = float("-inf")


def random_words(gen, rows, words):
    return torch.randint(-(2**31), 2**31 - 1, (rows, words), dtype=torch.int32, generator=gen)


def test_pack_unpack_roundtrip_with_a_partial_last_word(gen):
    allowed = torch.rand(4, 77, generator=gen) < 0.5
    words = pack_bitmask(allowed)
    assert words.shape == (4, 3) and words.dtype == torch.int32
    assert torch.equal(unpack_bitmask(words, 77), allowed)
    assert pack_bitmask(torch.tensor([[False] * 31 + [True]])).item() == -(2**31)  # bit 31 is the sign bit


def test_reference_masks_exactly_the_disallowed_tokens():
    logits = torch.arange(40, dtype=torch.float32).reshape(1, 40)
    allowed = torch.zeros(1, 40, dtype=torch.bool)
    allowed[0, [0, 5, 31, 32, 39]] = True
    out = apply_token_bitmask_(logits.clone(), pack_bitmask(allowed), backend="torch")
    assert torch.equal(out[0, [0, 5, 31, 32, 39]], torch.tensor([0.0, 5.0, 31.0, 32.0, 39.0]))
    assert torch.isneginf(out[~allowed]).all()


def test_columns_beyond_the_bitmask_are_masked_and_extra_bits_ignored():
    logits = torch.zeros(1, 40)
    words = torch.full((1, 1), -1, dtype=torch.int32)  # 32 tokens allowed, 40 columns
    out = apply_token_bitmask_(logits.clone(), words, backend="torch")
    assert (out[0, :32] == 0).all() and torch.isneginf(out[0, 32:]).all()
    narrow = apply_token_bitmask_(torch.zeros(1, 20), words, backend="torch")
    assert (narrow == 0).all()


CASES = [(100, 4), (70, 4), (100, 3), (2100, 66)]  # V % 32 != 0, fewer columns, more columns, 2 blocks


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize(("vocab", "words"), CASES)
def test_triton_bitmask_equals_reference(triton_ready, device, gen, dtype, vocab, words):
    logits = torch.randn(3, vocab, generator=gen).to(dtype).to(device)
    bitmask = random_words(gen, 3, words).to(device)
    bitmask[1] = 0  # a row that allows nothing becomes all -inf
    want = apply_token_bitmask_(logits.clone(), bitmask, backend="torch")
    got = apply_token_bitmask_(logits.clone(), bitmask, backend=triton_ready)
    assert torch.equal(got, want)
    assert torch.isneginf(got[1]).all()


def test_triton_bitmask_with_indices_touches_only_those_rows(triton_ready, device, gen):
    logits = torch.randn(4, 100, generator=gen).to(device)
    bitmask = random_words(gen, 2, 4).to(device)
    indices = torch.tensor([3, 1], device=device)
    want = apply_token_bitmask_(logits.clone(), bitmask, indices, backend="torch")
    got = apply_token_bitmask_(logits.clone(), bitmask, indices, backend=triton_ready)
    assert torch.equal(got, want)
    assert torch.equal(got[[0, 2]], logits[[0, 2]])
    assert torch.equal(torch.isneginf(got[3]), ~unpack_bitmask(bitmask[:1], 100)[0].to(device))


@pytest.mark.parametrize("states_dtype", [torch.int32, torch.int64])
def test_triton_mask_by_state_equals_reference(triton_ready, device, gen, states_dtype):
    logits = torch.randn(5, 100, generator=gen).to(device)
    table = random_words(gen, 3, 4).to(device)
    states = torch.tensor([2, -1, 0, 7, 2], dtype=states_dtype, device=device)
    want = mask_logits_by_state_(logits.clone(), table, states, backend="torch")
    got = mask_logits_by_state_(logits.clone(), table, states, backend=triton_ready)
    assert torch.equal(got, want)
    assert torch.equal(got[1], logits[1])  # state -1: unconstrained
    assert torch.isneginf(got[3]).all()  # state >= n_states: nothing allowed
    assert torch.equal(torch.isneginf(got[0]), ~unpack_bitmask(table[2:3], 100)[0].to(device))


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_empty_batch_and_single_row(request, device, gen, backend):
    if backend == "triton":
        request.getfixturevalue("triton_ready")
    empty = torch.empty(0, 100, device=device)
    no_rows = torch.empty(0, 4, dtype=torch.int32, device=device)
    assert apply_token_bitmask_(empty, no_rows, backend=backend).shape == (0, 100)
    table = random_words(gen, 2, 4).to(device)
    states = torch.empty(0, dtype=torch.int64, device=device)
    assert mask_logits_by_state_(empty, table, states, backend=backend).shape == (0, 100)
    one = torch.randn(1, 100, generator=gen).to(device)
    got = mask_logits_by_state_(one.clone(), table, torch.tensor([1], device=device), backend=backend)
    assert torch.equal(torch.isneginf(got[0]), ~unpack_bitmask(table[1:2], 100)[0].to(device))


def test_invalid_inputs_raise_typed_errors_with_the_fix():
    logits = torch.zeros(2, 64)
    with pytest.raises(TypeError, match=r"bitmask must have dtype torch.int32.*bitmask.to"):
        apply_token_bitmask_(logits, torch.zeros(2, 2, dtype=torch.int64))
    with pytest.raises(KernelDtypeError, match="logits must have dtype"):
        apply_token_bitmask_(torch.zeros(2, 64, dtype=torch.int32), torch.zeros(2, 2, dtype=torch.int32))
    with pytest.raises(ValueError, match="bitmask has 3 rows but logits has 2"):
        apply_token_bitmask_(logits, torch.zeros(3, 2, dtype=torch.int32))
    with pytest.raises(ValueError, match="bitmask has 2 rows but indices has 1"):
        apply_token_bitmask_(logits, torch.zeros(2, 2, dtype=torch.int32), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"table is on meta.*move it"):
        meta_table = torch.zeros(1, 2, dtype=torch.int32, device="meta")
        mask_logits_by_state_(logits, meta_table, torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="contiguous"):
        apply_token_bitmask_(torch.zeros(64, 2).t(), torch.zeros(2, 2, dtype=torch.int32))
    with pytest.raises(ValueError, match="2 dimensions"):
        mask_logits_by_state_(torch.zeros(64), torch.zeros(1, 2, dtype=torch.int32), torch.zeros(1, dtype=torch.long))
