"""Optimizer base: param groups, per-parameter state, zero_grad, state_dict."""
__all__ = ["Optimizer"]
