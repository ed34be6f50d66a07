"""masked_sample: greedy and Gumbel-max semantics, Philox noise, Triton equality, validation."""

from __future__ import annotations

import pytest
import torch

from structgen.kernels import gumbel_noise, masked_sample, pack_bitmask
from structgen.kernels.sampling import gumbel_at, philox4x32


def args(device, logits, table, states, temperature, seeds=None, offsets=None):
    n = logits.shape[0]
    seeds = torch.arange(n, dtype=torch.int64) * 7919 + 1 if seeds is None else seeds
    offsets = torch.zeros(n, dtype=torch.int64) if offsets is None else offsets
    return [t.to(device) for t in (logits, table, states, torch.as_tensor(temperature, dtype=torch.float32),
                                   seeds, offsets)]


@pytest.mark.parametrize(("counter", "key", "expected"), [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
])
def test_philox_matches_the_random123_known_answers(counter, key, expected):
    words = philox4x32(*(torch.tensor([c]) for c in counter), *(torch.tensor([k]) for k in key))
    assert tuple(int(w) for w in words) == expected


def test_greedy_picks_the_best_allowed_token_and_minus_one_when_none(device):
    logits = torch.tensor([[0.0, 5.0, 1.0, 3.0, 9.0]] * 4)
    allowed = torch.tensor([[1, 0, 1, 1, 0], [0, 0, 0, 0, 0], [0, 1, 0, 0, 1], [1, 1, 1, 1, 1]], dtype=torch.bool)
    table = pack_bitmask(allowed)
    states = torch.tensor([0, 1, -1, 2])  # row 2 unconstrained (best overall is 4)
    got = masked_sample(*args(device, logits, table, states, [0.0] * 4))
    assert got.tolist() == [3, -1, 4, 4]
    assert got.dtype == torch.int64


def test_ties_go_to_the_lowest_token_id(device):
    logits = torch.tensor([[1.0, 7.0, 7.0, 7.0]])
    table = pack_bitmask(torch.tensor([[True, False, True, True]]))
    assert masked_sample(*args(device, logits, table, torch.tensor([0]), [0.0])).tolist() == [2]


def test_sampling_is_argmax_of_logits_over_temperature_plus_the_documented_noise(device, gen):
    logits = torch.randn(3, 50, generator=gen)
    table = pack_bitmask(torch.ones(1, 50, dtype=torch.bool))
    seeds, offsets = torch.tensor([1, 2, -3]), torch.tensor([0, 5, 2**40])
    temps = torch.tensor([1.0, 0.5, 2.0])
    got = masked_sample(*args(device, logits, table, torch.zeros(3, dtype=torch.long), temps, seeds, offsets))
    want = (logits * (1 / temps).unsqueeze(1) + gumbel_noise(seeds, offsets, 50)).argmax(1)
    assert got.tolist() == want.tolist()


def test_same_seed_and_offset_reproduce_and_a_new_offset_redraws(device, gen):
    logits = torch.zeros(64, 1000)
    table = pack_bitmask(torch.ones(1, 1000, dtype=torch.bool))
    seeds = torch.full((64,), 42, dtype=torch.int64)
    offsets = torch.arange(64, dtype=torch.int64)
    a = masked_sample(*args(device, logits, table, torch.zeros(64, dtype=torch.long), [1.0] * 64, seeds, offsets))
    b = masked_sample(*args(device, logits, table, torch.zeros(64, dtype=torch.long), [1.0] * 64, seeds, offsets))
    assert torch.equal(a, b)
    assert len(set(a.tolist())) > 50  # each offset is an independent draw


def test_sampled_frequencies_follow_the_masked_softmax():
    logits = torch.tensor([[0.0, 1.0, 2.0, 0.5, 3.0]]).repeat(20000, 1)
    table = pack_bitmask(torch.tensor([[True, True, True, True, False]]))
    states = torch.zeros(20000, dtype=torch.long)
    seeds = torch.arange(20000, dtype=torch.int64)
    tokens = masked_sample(*args("cpu", logits, table, states, [0.8] * 20000, seeds))
    freq = torch.bincount(tokens, minlength=5).float() / 20000
    want = torch.softmax(torch.tensor([0.0, 1.0, 2.0, 0.5]) / 0.8, 0)
    assert freq[4] == 0
    assert torch.allclose(freq[:4], want, atol=0.015)


@pytest.mark.parametrize("vocab", [100, 1030, 2500])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_triton_equals_reference(triton_ready, device, gen, vocab, dtype):
    logits = torch.randn(6, vocab, generator=gen).to(dtype)
    table = torch.randint(-(2**31), 2**31 - 1, (4, (vocab + 31) // 32), dtype=torch.int32, generator=gen)
    table[3] = 0
    states = torch.tensor([0, 1, -1, 3, 9, 2])
    temps = [0.0, 1.0, 0.7, 1.0, 1.0, 0.0]
    seeds = torch.randint(-(2**62), 2**62, (6,), generator=gen)
    offsets = torch.randint(0, 2**40, (6,), generator=gen)
    a = args(device, logits, table, states, temps, seeds, offsets)
    want = masked_sample(*a, backend="torch")
    got = masked_sample(*a, backend=triton_ready)
    assert got.tolist() == want.tolist()
    assert got[3] == -1 and got[4] == -1


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_empty_batch(request, device, backend):
    if backend == "triton":
        request.getfixturevalue("triton_ready")
    table = torch.zeros(1, 4, dtype=torch.int32)
    empty = torch.empty(0, dtype=torch.int64)
    got = masked_sample(*args(device, torch.empty(0, 100), table, empty, torch.empty(0), empty, empty), backend=backend)
    assert got.shape == (0,)


def test_invalid_inputs_raise_typed_errors():
    logits, table, states = torch.zeros(2, 64), torch.zeros(1, 2, dtype=torch.int32), torch.zeros(2, dtype=torch.long)
    seeds = torch.zeros(2, dtype=torch.int64)
    with pytest.raises(TypeError, match=r"temperature must have dtype torch.float32"):
        masked_sample(logits, table, states, torch.zeros(2, dtype=torch.float64), seeds, seeds)
    with pytest.raises(TypeError, match=r"seeds must have dtype torch.int64"):
        masked_sample(logits, table, states, torch.zeros(2), seeds.int(), seeds)
    with pytest.raises(ValueError, match="offsets has 3 rows but logits has 2"):
        masked_sample(logits, table, states, torch.zeros(2), seeds, torch.zeros(3, dtype=torch.int64))


def test_triton_ties_across_vocabulary_chunks_go_to_the_lowest_id(triton_ready, device):
    logits = torch.zeros(2, 2500)
    logits[:, [2200, 100, 1500]] = 4.0  # 2500 columns are split into chunks on the Triton path
    table = pack_bitmask(torch.ones(1, 2500, dtype=torch.bool))
    a = args(device, logits, table, torch.tensor([0, -1]), [0.0, 0.0])
    assert masked_sample(*a, backend=triton_ready).tolist() == [100, 100]


def test_pointwise_noise_equals_the_noise_grid(gen):
    seeds, offsets = torch.tensor([5, -9]), torch.tensor([3, 2**33])
    grid = gumbel_noise(seeds, offsets, 37)
    rows, cols = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 36, 13, 14])
    assert torch.equal(gumbel_at(seeds[rows], offsets[rows], cols), grid[rows, cols])


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_sparse_masks_sample_by_the_same_formula(request, device, gen, backend):
    if backend == "triton":
        request.getfixturevalue("triton_ready")
    logits = torch.randn(4, 1500, generator=gen)
    allowed = torch.zeros(4, 1500, dtype=torch.bool)
    allowed[:, [3, 700, 701, 1499]] = True  # few allowed tokens: the torch path draws noise pointwise
    seeds, offsets = torch.tensor([11, 12, 13, 14]), torch.tensor([0, 1, 2, 3])
    temps = torch.tensor([1.0, 0.3, 5.0, 1.0])
    got = masked_sample(*args(device, logits, pack_bitmask(allowed), torch.arange(4), temps, seeds, offsets),
                        backend=backend)
    scores = (logits * (1 / temps).unsqueeze(1) + gumbel_noise(seeds, offsets, 1500)).masked_fill(~allowed, -1e30)
    assert got.tolist() == scores.argmax(1).tolist()
