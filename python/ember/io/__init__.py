"""ember.io: save/load in the safetensors format (never pickle), atomic writes, checkpoints."""
from ._format import load, load_checkpoint, metadata, save, save_checkpoint  # noqa: F401

__all__ = ["save", "load", "save_checkpoint", "load_checkpoint", "metadata"]
