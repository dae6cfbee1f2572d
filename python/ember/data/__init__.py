"""ember.data: datasets and the DataLoader (numpy only)."""
