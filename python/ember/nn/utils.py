"""nn.utils: gradient clipping (filled in with the optimizers)."""
__all__ = []
