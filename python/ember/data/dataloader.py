"""DataLoader: batches of a dataset, reshuffled every epoch, optionally prefetched on a thread.

Each batch is gathered in one go (``dataset.get_batch(indices)``: one ``np.take`` per array for
an ArrayDataset, or plain slices -- views, no copy -- when not shuffling) and yielded as a tuple
of numpy arrays, so ``for xb, yb in loader`` works and a model takes ``xb`` directly.

Prefetching uses a background *thread*, never a forked process: OpenMP runtimes do not survive
``fork``, and the gather is numpy work that releases the GIL for large copies, so a thread
overlaps it with the model's C++ kernels (which release the GIL too).
"""
from __future__ import annotations

import queue
import threading

import numpy as np

from .dataset import get_batch

__all__ = ["DataLoader"]

_END = object()


class DataLoader:
    """Iterates over ``dataset`` in batches.

    Args:
        dataset: an ArrayDataset, Subset, or anything with ``__len__``/``__getitem__``.
        batch_size: samples per batch (the last one may be smaller unless ``drop_last``).
        shuffle: draw a new random order at the start of every epoch (every ``iter()``).
        drop_last: drop the last incomplete batch.
        seed: seeds this loader's own generator, so its sequence of epoch orders is
            reproducible; ``None`` draws each epoch's order from ember's generator instead
            (reseeded by ``em.manual_seed``).
        prefetch: how many batches a background thread may prepare ahead (0: none, gather
            in the consuming thread).
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False, seed=None, prefetch: int = 0):
        if not hasattr(dataset, "__len__"):
            raise TypeError(f"DataLoader: dataset must have __len__, got "
                            f"{type(dataset).__name__}")
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got "
                             f"{batch_size!r}")
        if int(prefetch) < 0:
            raise ValueError(f"DataLoader: prefetch must be >= 0, got {prefetch}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = seed
        self.prefetch = int(prefetch)
        self._gen = np.random.default_rng(seed) if seed is not None else None

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self):
        n = len(self.dataset)
        if not self.shuffle:
            return None
        if self._gen is not None:
            return self._gen.permutation(n)
        from .._random import default_generator
        return default_generator().permutation(n)

    def _batches(self, order):
        n = len(self.dataset)
        bs = self.batch_size
        stop = n - n % bs if self.drop_last else n
        for start in range(0, stop, bs):
            end = min(start + bs, n)
            idx = slice(start, end) if order is None else order[start:end]
            yield get_batch(self.dataset, idx)

    def __iter__(self):
        # The order is drawn here, in the caller's thread, so seeding stays deterministic.
        order = self._order()
        if self.prefetch <= 0:
            return self._batches(order)
        return _Prefetcher(self._batches(order), self.prefetch)

    def __repr__(self):
        return (f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, prefetch={self.prefetch})")


class _Prefetcher:
    """Runs a batch generator on a daemon thread, ``depth`` batches ahead of the consumer."""

    def __init__(self, gen, depth):
        self._q = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(gen,), daemon=True,
                                        name="ember-prefetch")
        self._thread.start()
        self._done = False

    def _put(self, item):
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self, gen):
        try:
            for batch in gen:
                if not self._put(batch):
                    return
            self._put(_END)
        except BaseException as e:  # handed to the consumer, re-raised there
            self._put(_Error(e))

    def __iter__(self):
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        item = self._q.get()
        if item is _END:
            self._finish()
            raise StopIteration
        if isinstance(item, _Error):
            self._finish()
            raise item.exc
        return item

    def _finish(self):
        self._done = True
        self._stop.set()
        self._thread.join()

    def close(self):
        """Stops the worker early (a consumer that breaks out of the loop)."""
        if not self._done:
            self._done = True
            self._stop.set()
            self._thread.join()

    def __del__(self):
        try:
            self._stop.set()
        except Exception:
            pass


class _Error:
    __slots__ = ("exc",)

    def __init__(self, exc):
        self.exc = exc
