"""Training one trial: compile, fit, the evaluator and probes, the per-trial summary. No run folders.

This package imports none of its modules: import them by their full names."""
