"""ember.optim: optimizers (one fused C++ update per parameter) and learning-rate schedules."""
