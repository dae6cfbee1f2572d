"""The issue's acceptance test: a 2-layer MLP trained by a hand-written gradient-descent loop
(`p.data -= lr * p.grad`) learns XOR."""
import numpy as np
import pytest

import ember as em
from ember import nn

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
Y = np.array([[0], [1], [1], [0]], dtype=np.float32)


def tanh(x):
    if hasattr(em.functional, "tanh"):
        return em.functional.tanh(x)
    return 2.0 / (1.0 + (x * -2.0).exp()) - 1.0  # from Tensor ops alone


class MLP(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.fc1 = nn.Linear(2, hidden)
        self.fc2 = nn.Linear(hidden, 1)

    def forward(self, x):
        return self.fc2(tanh(self.fc1(x)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mlp_learns_xor(seed):
    em.manual_seed(seed)
    model = MLP(8)
    lr = 0.2
    losses = []
    for _ in range(1500):
        out = model(X)
        loss = ((out - Y) ** 2).mean()
        model.zero_grad()
        loss.backward()
        for p in model.parameters():
            p.data -= lr * p.grad
        losses.append(loss.item())
    with em.no_grad():
        pred = model(X).numpy()
    assert losses[-1] < 0.01 < losses[0]
    np.testing.assert_array_equal((pred > 0.5).astype(np.float32), Y)
    assert all(isinstance(p.data, np.ndarray) and p.data.dtype == np.float32
               for p in model.parameters())
