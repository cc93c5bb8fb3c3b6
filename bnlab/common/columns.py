"""The column names of a run's tables, built in one place; every reader and writer uses these.

A run has three tables (see docs/USAGE.md, "What a run folder holds"): the per-epoch table (`EPOCH_COLUMNS`,
one row per evaluation), the trials table (one row per trial, with one column per target and
figure: `epochs_to_0.98`, `steps_to_0.98`, `seconds_to_0.98`) and the targets table (one row per
trial and target: `TARGET_ROW`). Every table names its trial by `TRIAL_KEYS`. Tables derived from
them add per-target counts (`reached_0.98`, `tried_0.98`) and means (`censored_epochs_to_0.98`).

A target enters a column name as `target_key(target)`: 6 significant digits (`f"{t:g}"`), so 0.98
is "0.98", never "0.9800000000000001". No pandas and no Keras here.

Example:
    >>> epochs_to(0.98), time_to("steps", 0.98), reached(0.98)
    ('epochs_to_0.98', 'steps_to_0.98', 'reached_0.98')
"""

from __future__ import annotations

TRIAL_KEYS = ("variant", "seed")  # identify a trial in every table

# The per-epoch table of one trial; `bnlab.training.summary` says what each column holds.
EPOCH_COLUMNS = (
    "epoch",
    "step",
    "train_seconds",
    "val_seconds",
    "train_eval_seconds",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "train_eval_loss",
    "train_eval_accuracy",
)
# Written after them by every run since evaluation.train_eval_examples existed (older runs lack it):
# how many training images each row's inference-mode re-evaluation scored.
TRAIN_EVAL_EXAMPLES = "train_eval_examples"

# Evaluation modes besides the moving averages (Wu & Johnson 2021, sec. 3): each adds its own validation
# columns to the per-epoch table (`mode_column("val_accuracy", "precise_bn")`) and a final one to the trials table.
EVALUATION_MODES = ("precise_bn", "batch_statistics")
MODE_FIGURES = ("val_loss", "val_accuracy")  # the per-epoch figures each evaluation mode adds
UNITS = ("epochs", "steps")  # what a run counts its progress in (steps in step mode)
TIMES = (*UNITS, "seconds")  # what a time to a target is counted in
TARGET_ROW = ("target", "reached", "epochs_to_target", "seconds_to_target", "steps_to_target")  # targets table
_TIME_PREFIXES = tuple(f"{time}_to_" for time in TIMES)


def target_key(target: float) -> str:
    """The text of a target in column names: 0.98 -> '0.98'."""
    return f"{target:g}"


def time_to(time: str, target: float) -> str:
    """The trials-table column of the time to reach `target`, counted in `time` (one of `TIMES`).

    Raises:
        ValueError: If `time` is not one of `TIMES`.
    """
    _check_choice(time, TIMES, "time")
    return f"{time}_to_{target_key(target)}"


def epochs_to(target: float) -> str:
    """'epochs_to_0.98': the first epoch (evaluation) whose validation accuracy reached `target`."""
    return time_to("epochs", target)


def steps_to(target: float) -> str:
    """'steps_to_0.98': the optimizer steps taken when validation accuracy first reached `target`."""
    return time_to("steps", target)


def seconds_to(target: float) -> str:
    """'seconds_to_0.98': the training seconds spent until validation accuracy first reached `target`."""
    return time_to("seconds", target)


def reached(target: float) -> str:
    """'reached_0.98': how many seeds reached `target` (in tables derived from the targets table)."""
    return f"reached_{target_key(target)}"


def tried(target: float) -> str:
    """'tried_0.98': how many seeds tried to reach `target`, diverged ones included."""
    return f"tried_{target_key(target)}"


def censored_epochs_to(target: float) -> str:
    """'censored_epochs_to_0.98': mean epochs to `target` over all seeds, an unreached one counted past the run."""
    return f"censored_{epochs_to(target)}"


def mode_column(column: str, mode: str) -> str:
    """The column of a figure under an evaluation mode: ("val_accuracy", "precise_bn") -> 'val_accuracy_precise_bn'.

    Raises:
        ValueError: If `mode` is not one of `EVALUATION_MODES`.
    """
    _check_choice(mode, EVALUATION_MODES, "evaluation mode")
    return f"{column}_{mode}"


def final_mode_accuracy(mode: str) -> str:
    """The trials-table column of the last validation accuracy under `mode`: 'final_val_accuracy_precise_bn'."""
    return f"final_{mode_column('val_accuracy', mode)}"


def is_time_to_target(column: str) -> bool:
    """Whether a trials-table column is a time to a target (`epochs_to_T`, `steps_to_T`, `seconds_to_T`)."""
    return column.startswith(_TIME_PREFIXES)


def time_unit(column: str) -> str | None:
    """The unit of a time-to-target column ("epochs", "steps" or "seconds"), None for another column."""
    return next((time for time in TIMES if column.startswith(f"{time}_to_")), None)


def to_target(unit: str) -> str:
    """The targets-table column of the time to the target in `unit`: 'epochs_to_target', 'steps_to_target'."""
    _check_choice(unit, TIMES, "unit")
    return f"{unit}_to_target"


def units_run(unit: str) -> str:
    """The trials-table column of how long a trial ran in `unit`: 'epochs_run' or 'steps_run'."""
    _check_choice(unit, UNITS, "unit")
    return f"{unit}_run"


def progress_unit(config) -> str:
    """What a run of `config` counts its progress in: "steps" in step mode, else "epochs"."""
    return "steps" if config.training.step_mode else "epochs"


def _check_choice(value: str, choices: tuple[str, ...], name: str) -> None:
    """Raises unless `value` is one of `choices`, listing them."""
    if value not in choices:
        raise ValueError(f"Unknown {name} {value!r}. Available: {', '.join(choices)}.")
