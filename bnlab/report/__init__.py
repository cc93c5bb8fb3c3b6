"""report.md from a run: findings, verdict tables and the study sections.

This package imports none of its modules: import them by their full names."""
