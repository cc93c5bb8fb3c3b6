"""A whole experiment and its run folder: running a config (`experiment`), the folder's layout and
writing it (`folder`), reading it back (`results`, `predictions`), progress display and tracking.

This package imports none of its modules: import them by their full names."""
