"""Helpers every stage may use: DataFrame column checks, backend availability, quiet Keras
start-up, the environment record. They import no other bnlab module.

This package imports none of its modules: import them by their full names."""
