import numpy as np
import pytest

import ember as em
from ember import metrics as M


def test_accuracy_class_scores_and_ids():
    scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    y = np.array([1, 0, 0, 0])
    assert M.accuracy(scores, y) == 0.75
    assert M.accuracy(em.tensor(scores), em.tensor(y)) == 0.75
    assert M.accuracy(np.array([1, 0, 1, 0]), y) == 0.75  # class ids
    onehot = np.eye(2)[y]
    assert M.accuracy(scores, onehot) == 0.75
    # sequence outputs (N, T, C) against (N, T)
    seq = np.zeros((2, 3, 4))
    seq[..., 2] = 1
    assert M.accuracy(seq, np.array([[2, 2, 0], [2, 1, 2]])) == pytest.approx(4 / 6)


def test_accuracy_binary_threshold():
    p = np.array([[0.2], [0.6], [0.51], [0.4]])
    y = np.array([0, 1, 0, 1])
    assert M.accuracy(p, y) == 0.5
    assert M.accuracy(p, y, threshold=0.55) == 0.75
    logits = np.array([-1.0, 2.0, -0.5, -0.3])
    assert M.accuracy(logits, y.astype(np.float32), threshold=0.0) == 0.75
    with pytest.raises(ValueError, match="shape"):
        M.accuracy(np.zeros((4, 3)), np.zeros(5))


def test_top_k_accuracy_against_torch_style_definition():
    rng = np.random.default_rng(0)
    s = rng.standard_normal((50, 7))
    y = rng.integers(0, 7, 50)
    for k in (1, 2, 5, 7):
        ref = np.mean([y[i] in np.argsort(-s[i])[:k] for i in range(50)])
        assert M.top_k_accuracy(s, y, k=k) == pytest.approx(ref)
    assert M.top_k_accuracy(s, y, k=1) == M.accuracy(s, y)
    with pytest.raises(ValueError, match="k must"):
        M.top_k_accuracy(s, y, k=0)


def test_confusion_matrix_rows_predicted_cols_actual():
    pred = np.array([0, 1, 1, 2, 2, 2])
    true = np.array([0, 1, 2, 2, 2, 0])
    cm = M.confusion_matrix(pred, true)
    expected = np.array([[1, 0, 0],
                         [0, 1, 1],
                         [1, 0, 2]])
    np.testing.assert_array_equal(cm.matrix, expected)
    sk = pytest.importorskip("sklearn.metrics")
    np.testing.assert_array_equal(cm.T, sk.confusion_matrix(true, pred))
    assert cm.accuracy == pytest.approx(4 / 6)
    np.testing.assert_allclose(cm.precision(), [1, 0.5, 2 / 3])
    np.testing.assert_allclose(cm.recall(), [0.5, 1, 2 / 3])
    text = str(cm)
    assert "pred \\ actual" in text and "total" in text and "accuracy 0.6667" in text
    cm2 = M.confusion_matrix(np.eye(4)[[0, 1]], np.array([0, 3]), labels="abcd")
    assert cm2.matrix.shape == (4, 4) and cm2.matrix[1, 3] == 1
    assert "a" in str(cm2).splitlines()[0]
    with pytest.raises(ValueError, match="out of range"):
        M.confusion_matrix(pred, true, num_classes=2)


def test_mae_mse():
    p = np.array([[1.0], [2.0], [4.0]])
    t = np.array([1.0, 3.0, 2.0])
    assert M.mae(p, t) == pytest.approx(1.0)
    assert M.mse(p, t) == pytest.approx(5 / 3)


def test_stateful_metrics_match_functions_over_batches():
    rng = np.random.default_rng(1)
    s = rng.standard_normal((37, 5)).astype(np.float32)
    y = rng.integers(0, 5, 37)
    objs = [M.get("accuracy"), M.get("top3"), M.get("mae"), M.get("mse")]
    for o in objs:
        for i in range(0, 37, 10):
            o.update(s[i:i + 10], y[i:i + 10] if o.name in ("accuracy", "top3")
                     else s[i:i + 10] * 0.5)
    assert objs[0].result() == pytest.approx(M.accuracy(s, y))
    assert objs[1].result() == pytest.approx(M.top_k_accuracy(s, y, 3))
    assert objs[2].result() == pytest.approx(M.mae(s, s * 0.5))
    assert objs[3].result() == pytest.approx(M.mse(s, s * 0.5), rel=1e-6)
    custom = M.get(lambda p, t: 2.0)
    custom.update(s, y)
    assert custom.result() == 2.0
    assert M.get("accuracy", logits=True).threshold == 0.0
    with pytest.raises(ValueError, match="unknown metric"):
        M.get("f7")
