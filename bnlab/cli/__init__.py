"""The `bnlab` command: arguments -> load_config -> run_experiment -> summary, and the other commands.

It holds what a command line needs and no more, one job per module:

- `entry`: `main`, the console script: parse, call the command, a config's problems as `bnlab: ...` lines.
- `parser`: every command and option (`bnlab --help`), and the parse of a command line.
- `values`: the options' value types, and `run`'s KEY=VALUE overrides.
- `run`: `bnlab run`: the resolved config, pointing Keras at the chosen backend before anything
  imports it, `run_experiment`, the summary table; `dry_run`: `bnlab run --dry-run`.
- `folders`: commands that read run folders: `report`, `plan-seeds`, `runs`.
- `compare`: `bnlab compare RUN_A RUN_B ...`, printed and written; its numbers are `bnlab.analysis.run_comparison`
  (statistics per run and variant, differences between runs).
- `listing`: `variants` and `configs`; `benchmark`: `bench`.
- `output`: printing: rich tables, and errors as one `bnlab: ...` line with an exit code
  (2 bad input, 1 executor failed, 130 interrupted).
"""

from bnlab.cli.entry import main

__all__ = ["main"]
