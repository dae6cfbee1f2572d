"""ember.io: save/load in the safetensors format (never pickle)."""
