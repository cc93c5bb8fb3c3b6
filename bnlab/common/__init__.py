"""Helpers every stage may use: DataFrame column checks, optional extras and Keras backends, quiet
Keras start-up, the environment record. They import no bnlab module outside `common` (the
environment record reads the root package's `__version__`).

This package imports none of its modules: import them by their full names."""
