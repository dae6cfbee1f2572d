"""More threads than a loop has items (and than the machine has cores): parallel_for keeps the
whole OpenMP team in every region and gives chunks to as many threads as the work allows, so
results must not depend on the thread count, and the team must be the one asked for."""
import numpy as np
import pytest

import ember as em
from ember import functional as F, nn


def _train(nt):
    em.set_num_threads(nt)
    em.manual_seed(3)
    conv = nn.Conv1d(3, 8, 3, padding=1)
    lstm = nn.LSTM(8, 16, batch_first=True)
    head = nn.Linear(16, 5)
    params = list(conv.parameters()) + list(lstm.parameters()) + list(head.parameters())
    opt = em.optim.Adam(params, lr=1e-2)
    rng = np.random.default_rng(0)
    x = em.tensor(rng.standard_normal((6, 3, 12)).astype(np.float32))
    y = em.tensor(rng.integers(0, 5, 6))
    for _ in range(3):
        opt.zero_grad()
        h = F.relu(conv(x)).transpose(1, 2)  # (6, 12, 8)
        out, _ = lstm(h)
        loss = F.cross_entropy(head(out[:, -1]), y)
        loss.backward()
        opt.step()
    return [p.numpy().copy() for p in params], loss.item()


@pytest.mark.parametrize("nt", [3, 7, 16])
def test_more_threads_than_items_same_bits(threads, nt):
    ref, ref_loss = _train(1)
    got, loss = _train(nt)
    assert em._core.measured_team_size() == nt
    assert loss == ref_loss
    for a, b in zip(ref, got):
        assert np.array_equal(a, b)
