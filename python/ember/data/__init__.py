"""ember.data: datasets and the DataLoader (numpy only)."""
from .dataset import (ArrayDataset, Dataset, Subset, TensorDataset, random_split,  # noqa: F401
                      train_test_split)
from .dataloader import DataLoader  # noqa: F401

__all__ = ["Dataset", "ArrayDataset", "TensorDataset", "Subset", "DataLoader", "random_split",
           "train_test_split"]
