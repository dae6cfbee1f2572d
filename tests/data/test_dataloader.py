import threading

import numpy as np
import pytest

import ember as em
from ember.data import (ArrayDataset, DataLoader, Dataset, Subset, random_split,
                        train_test_split)


def _data(n=10):
    X = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    y = np.arange(n, dtype=np.int64)
    return X, y


def test_array_dataset_items_and_dtypes():
    X = np.arange(12, dtype=np.float64).reshape(4, 3)
    y = np.array([0, 1, 2, 3], dtype=np.int32)
    ds = ArrayDataset(X, y)
    assert len(ds) == 4
    assert ds.arrays[0].dtype == np.float32 and ds.arrays[1].dtype == np.int64
    x1, y1 = ds[1]
    np.testing.assert_array_equal(x1, [3, 4, 5])
    assert y1 == 1
    # float32 input is kept without a copy
    X32 = np.ones((4, 2), np.float32)
    assert ArrayDataset(X32).arrays[0] is X32
    # Tensors are accepted
    assert ArrayDataset(em.tensor(X32)).arrays[0].shape == (4, 2)


def test_array_dataset_rejects_bad_input():
    with pytest.raises(ValueError, match="same number of samples"):
        ArrayDataset(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="at least one"):
        ArrayDataset()
    with pytest.raises(ValueError, match="scalar"):
        ArrayDataset(np.float32(3))


def test_loader_in_order_batches_and_len():
    X, y = _data(10)
    dl = DataLoader(ArrayDataset(X, y), batch_size=4)
    assert len(dl) == 3
    batches = list(dl)
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), X)
    assert isinstance(batches[0], tuple) and batches[0][0].dtype == np.float32
    dl2 = DataLoader(ArrayDataset(X, y), batch_size=4, drop_last=True)
    assert len(dl2) == 2 and [len(b[1]) for b in dl2] == [4, 4]
    assert len(DataLoader(ArrayDataset(X), batch_size=20, drop_last=True)) == 0
    assert list(DataLoader(ArrayDataset(X), batch_size=20, drop_last=True)) == []


def test_loader_shuffles_every_epoch_and_covers_all():
    X, y = _data(50)
    dl = DataLoader(ArrayDataset(X, y), batch_size=8, shuffle=True, seed=3)
    e1 = np.concatenate([b[1] for b in dl])
    e2 = np.concatenate([b[1] for b in dl])
    assert sorted(e1) == list(range(50)) and sorted(e2) == list(range(50))
    assert not np.array_equal(e1, e2), "a new order every epoch"
    assert not np.array_equal(e1, y)
    # rows stay aligned across arrays
    for xb, yb in dl:
        np.testing.assert_array_equal(xb, X[yb])


def test_loader_seed_reproducible():
    X, y = _data(30)
    a = [np.concatenate([b[1] for b in DataLoader(ArrayDataset(X, y), 4, True, seed=7)])]
    b = [np.concatenate([b[1] for b in DataLoader(ArrayDataset(X, y), 4, True, seed=7)])]
    np.testing.assert_array_equal(a[0], b[0])
    c = np.concatenate([b[1] for b in DataLoader(ArrayDataset(X, y), 4, True, seed=8)])
    assert not np.array_equal(a[0], c)


def test_loader_seed_none_follows_manual_seed():
    X, y = _data(30)
    dl = DataLoader(ArrayDataset(X, y), batch_size=5, shuffle=True)
    em.manual_seed(11)
    a = np.concatenate([b[1] for b in dl])
    em.manual_seed(11)
    b = np.concatenate([b[1] for b in dl])
    np.testing.assert_array_equal(a, b)


def test_loader_gathers_whole_batch_at_once():
    calls = []

    class Counting(ArrayDataset):
        def get_batch(self, indices):
            calls.append(indices)
            return super().get_batch(indices)

        def __getitem__(self, i):
            raise AssertionError("per-sample access should not happen")

    X, y = _data(10)
    list(DataLoader(Counting(X, y), batch_size=5, shuffle=True, seed=0))
    assert len(calls) == 2
    # without shuffling a batch is a slice: a view, no copy
    calls.clear()
    xb, _ = next(iter(DataLoader(Counting(X, y), batch_size=5)))
    assert isinstance(calls[0], slice) and np.shares_memory(xb, X)


def test_generic_dataset_is_stacked():
    class Squares(Dataset):
        def __len__(self):
            return 7

        def __getitem__(self, i):
            return np.array([i, i * i], np.float32), i

    batches = list(DataLoader(Squares(), batch_size=3))
    assert batches[0][0].shape == (3, 2)
    np.testing.assert_array_equal(batches[2][1], [6])


@pytest.mark.parametrize("depth", [1, 3])
def test_prefetch_same_batches_as_plain(depth):
    X, y = _data(41)
    plain = list(DataLoader(ArrayDataset(X, y), 4, shuffle=True, seed=5))
    pre = list(DataLoader(ArrayDataset(X, y), 4, shuffle=True, seed=5, prefetch=depth))
    assert len(plain) == len(pre) == 11
    for (a, b), (c, d) in zip(plain, pre):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)


def test_prefetch_uses_a_thread_and_propagates_errors():
    seen = []

    class Boom(Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, i):
            seen.append(threading.current_thread().name)
            if i == 4:
                raise KeyError("sample 4 is broken")
            return np.float32(i)

    it = iter(DataLoader(Boom(), batch_size=2, prefetch=2))
    next(it)
    with pytest.raises(KeyError, match="broken"):
        list(it)
    assert "ember-prefetch" in seen


def test_prefetch_early_break_stops_worker():
    X, y = _data(100)
    dl = DataLoader(ArrayDataset(X, y), batch_size=2, prefetch=2)
    it = iter(dl)
    next(it)
    it.close()
    assert not it._thread.is_alive()


def test_loader_bad_args():
    ds = ArrayDataset(np.zeros((4, 1)))
    for bs in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            DataLoader(ds, batch_size=bs)
    with pytest.raises(ValueError, match="prefetch"):
        DataLoader(ds, prefetch=-1)
    with pytest.raises(TypeError, match="__len__"):
        DataLoader(iter([1, 2]))


def test_random_split_counts_fractions_and_disjoint():
    X, y = _data(10)
    ds = ArrayDataset(X, y)
    a, b = random_split(ds, [7, 3], seed=0)
    assert len(a) == 7 and len(b) == 3
    ia = np.concatenate([bb[1] for bb in DataLoader(a, 100)])
    ib = np.concatenate([bb[1] for bb in DataLoader(b, 100)])
    assert sorted(np.concatenate([ia, ib])) == list(range(10))
    parts = random_split(ds, [0.5, 0.3, 0.2], seed=1)
    assert [len(p) for p in parts] == [5, 3, 2]
    a2, _ = random_split(ds, [7, 3], seed=0)
    np.testing.assert_array_equal(a.indices, a2.indices)
    # subsets index like their parent
    np.testing.assert_array_equal(a[0][0], X[a.indices[0]])
    with pytest.raises(ValueError, match="sum"):
        random_split(ds, [5, 4])
    with pytest.raises(ValueError, match="fractions"):
        random_split(ds, [0.5, 0.6])


def test_subset_of_subset():
    X, y = _data(10)
    s = Subset(Subset(ArrayDataset(X, y), [9, 8, 7, 6]), [1, 3])
    (xb, yb), = list(DataLoader(s, 5))
    np.testing.assert_array_equal(yb, [8, 6])


def test_train_test_split_basic():
    X, y = _data(20)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, seed=0)
    assert len(Xte) == 5 and len(Xtr) == 15
    np.testing.assert_array_equal(Xtr[:, 0] / 3, ytr)  # rows stay aligned
    assert sorted(np.concatenate([ytr, yte])) == list(range(20))
    again = train_test_split(X, y, test_size=0.25, seed=0)
    np.testing.assert_array_equal(again[3], yte)
    assert len(train_test_split(X, test_size=3, seed=0)[1]) == 3
    with pytest.raises(ValueError, match="test_size"):
        train_test_split(X, test_size=1.5)
    with pytest.raises(ValueError, match="different lengths"):
        train_test_split(X, y[:3])


def test_train_test_split_stratified_keeps_proportions():
    y = np.array([0] * 60 + [1] * 30 + [2] * 10)
    X = np.arange(100)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, seed=3, stratify=y)
    assert len(yte) == 20
    assert np.bincount(yte).tolist() == [12, 6, 2]
    assert np.bincount(ytr).tolist() == [48, 24, 8]
    np.testing.assert_array_equal(y[Xte], yte)
    with pytest.raises(ValueError, match="at least 2"):
        train_test_split(X, y, stratify=np.r_[y[:-1], 7])
