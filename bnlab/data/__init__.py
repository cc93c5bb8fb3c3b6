"""MNIST: IDX files, loading with integrity checks, splits and preprocessing. Knows nothing of runs.

This package imports none of its modules: import them by their full names."""
