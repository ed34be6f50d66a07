"""advance_states: exact successor lookup in the CSR, -1 semantics, Triton equality, validation."""

from __future__ import annotations

import pytest
import torch

from structgen.kernels import advance_states


def csr(rows: list[dict[int, int]]):
    """CSR tensors (indptr, tokens, next_states) from per-state {token: next_state} dicts."""
    indptr, tokens, nexts = [0], [], []
    for row in rows:
        for tok in sorted(row):
            tokens.append(tok)
            nexts.append(row[tok])
        indptr.append(len(tokens))
    as_t = lambda xs: torch.tensor(xs, dtype=torch.int32)
    return as_t(indptr), as_t(tokens), as_t(nexts)


# state 0: "a"(5)->1, "b"(9)->2 ; state 1: "c"(0)->2, EOS(99)->3 ; state 2: no transitions ; state 3: "a"->3
ROWS = [{5: 1, 9: 2}, {0: 2, 99: 3}, {}, {5: 3}]
TABLE = [  # (state, sampled, expected)
    (0, 5, 1), (0, 9, 2), (0, 6, -1), (0, 0, -1), (1, 0, 2), (1, 99, 3), (1, 5, -1),
    (2, 5, -1), (3, 5, 3), (-1, 5, -1), (4, 5, -1), (0, -1, -1),
]


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_accept_reject_table(request, device, backend):
    if backend == "triton":
        request.getfixturevalue("triton_ready")
    indptr, tokens, nexts = (t.to(device) for t in csr(ROWS))
    states = torch.tensor([s for s, _, _ in TABLE], device=device)
    sampled = torch.tensor([t for _, t, _ in TABLE], device=device)
    got = advance_states(indptr, tokens, nexts, states, sampled, backend=backend)
    assert got.tolist() == [e for _, _, e in TABLE]
    assert got.dtype == states.dtype


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_triton_equals_reference_on_a_random_automaton(triton_ready, device, gen, dtype):
    n_states, vocab = 9, 300
    rows = []
    for _ in range(n_states):
        size = int(torch.randint(0, vocab, (1,), generator=gen))
        toks = torch.randperm(vocab, generator=gen)[:size].tolist()
        rows.append({t: int(torch.randint(0, n_states, (1,), generator=gen)) for t in toks})
    indptr, tokens, nexts = (t.to(device) for t in csr(rows))
    states = torch.randint(-1, n_states + 1, (200,), generator=gen).to(dtype).to(device)
    sampled = torch.randint(-1, vocab, (200,), generator=gen).to(device)
    want = [rows[s].get(t, -1) if 0 <= s < n_states and t >= 0 else -1
            for s, t in zip(states.tolist(), sampled.tolist())]
    assert advance_states(indptr, tokens, nexts, states, sampled, backend="torch").tolist() == want
    assert advance_states(indptr, tokens, nexts, states, sampled, backend=triton_ready).tolist() == want


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_empty_batch_and_empty_automaton(request, device, backend):
    if backend == "triton":
        request.getfixturevalue("triton_ready")
    indptr, tokens, nexts = (t.to(device) for t in csr(ROWS))
    none = torch.empty(0, dtype=torch.int64, device=device)
    assert advance_states(indptr, tokens, nexts, none, none, backend=backend).shape == (0,)
    indptr0, tokens0, nexts0 = (t.to(device) for t in csr([{}, {}]))
    got = advance_states(indptr0, tokens0, nexts0, torch.tensor([0, 1, -1], device=device),
                         torch.tensor([3, 0, 1], device=device), backend=backend)
    assert got.tolist() == [-1, -1, -1]


def test_invalid_inputs_raise_typed_errors():
    indptr, tokens, nexts = csr(ROWS)
    states = torch.zeros(2, dtype=torch.int64)
    with pytest.raises(TypeError, match="sampled must have dtype"):
        advance_states(indptr, tokens, nexts, states, torch.zeros(2))
    with pytest.raises(ValueError, match="sampled has 3 rows but states has 2"):
        advance_states(indptr, tokens, nexts, states, torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="next_states has 2 rows but tokens has 5"):
        advance_states(indptr, tokens, nexts[:2], states, states)
    with pytest.raises(ValueError, match="tokens is on meta"):
        advance_states(indptr, tokens.to("meta"), nexts, states, states)
