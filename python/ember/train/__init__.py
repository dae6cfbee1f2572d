"""ember.train: fit / evaluate / predict, callbacks, metrics, History."""
