"""Pure functions from run tables to statistics, verdicts, figures and study analyses.

This package imports none of its modules: import them by their full names."""
