"""ember's benchmarks against PyTorch: `python -m bench --help`."""
