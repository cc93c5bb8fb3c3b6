"""A run folder read back as pandas DataFrames (`load_results`), and the run folders under a root.

The layout, and writing it, is `bnlab.runs.folder`'s.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from bnlab.common.columns import TRIAL_KEYS
from bnlab.config import ExperimentConfig, load_config
from bnlab.runs import predictions as test_predictions_file
from bnlab.runs.folder import finished_trials, read_metadata
from bnlab.runs.predictions import RunPredictions


@dataclasses.dataclass(frozen=True)
class RunResults:
    """A run read back from disk.

    Attributes:
        epochs: one row per variant x seed x epoch.
        trials: one row per trial.
        targets: one row per trial x target.
        activations: one row per trial x probe step x unit (empty without an activation probe).
        discrepancy: one row per trial x BN layer (`bnlab.models.population.bn_discrepancy` at the
            end of the trial; empty for a run without BN layers or made before bnlab recorded it).
        predictions: every trial's predicted class for each test image (`bnlab.runs.predictions`).
        config: the `ExperimentConfig` the run used.
        metadata: the contents of metadata.json.
        path: the run folder.
    """

    epochs: pd.DataFrame
    trials: pd.DataFrame
    targets: pd.DataFrame
    config: ExperimentConfig
    metadata: dict
    path: Path
    activations: pd.DataFrame = dataclasses.field(default_factory=lambda: pd.DataFrame(columns=TRIAL_KEYS))
    predictions: RunPredictions | None = None  # None for runs made before bnlab saved them
    # one row per trial x BN layer: moving statistics against the population's at the end (empty without BN)
    discrepancy: pd.DataFrame = dataclasses.field(default_factory=lambda: pd.DataFrame(columns=TRIAL_KEYS))


def load_results(run_dir: str | Path) -> RunResults:
    """Read a run folder back as DataFrames.

    Args:
        run_dir: a folder written by `bnlab run` / `run_experiment`.

    Returns:
        `RunResults` with `.epochs`, `.trials`, `.targets`, `.config` and `.metadata`.

    Raises:
        FileNotFoundError: the folder or its config.yaml does not exist.

    Example:
        >>> results = load_results("runs/quickstart")
        >>> results.trials.groupby("variant")["final_val_accuracy"].mean()
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(
            f"{run_dir} is not a bnlab run folder: expected {run_dir / 'config.yaml'}, "
            "which `bnlab run` writes first."
        )
    tables = {
        name: _read_table(run_dir / f"{name}.csv") for name in ("epochs", "trials", "targets", "activations")
    }
    tables["discrepancy"] = _read_table(run_dir / "bn_discrepancy.csv")
    tables["trials"] = _with_steps_run(tables["trials"], tables["epochs"])
    return RunResults(
        config=load_config(run_dir / "config.yaml"),
        metadata=read_metadata(run_dir),
        path=run_dir,
        predictions=test_predictions_file.load_run_predictions(run_dir),
        **tables,
    )


def _with_steps_run(trials: pd.DataFrame, epochs: pd.DataFrame) -> pd.DataFrame:
    """Runs made before trials recorded `steps_run` get it from their per-epoch tables."""
    if "steps_run" in trials or trials.empty or "step" not in epochs:
        return trials
    last = epochs.groupby(list(TRIAL_KEYS), sort=False)["step"].max().rename("steps_run").reset_index()
    return trials.merge(last, on=list(TRIAL_KEYS), how="left")


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame(columns=TRIAL_KEYS)
    return pd.read_csv(path)


def list_runs(root: str | Path = "runs") -> pd.DataFrame:
    """The run folders directly under `root`, newest first.

    Args:
        root: a folder holding run folders (default: ./runs, where configs write).

    Returns:
        One row per run folder: `path`, `config`, `started`, `status`, `trials_done`,
        `trials_total`. Empty when `root` holds none.
    """
    rows = []
    for config_file in sorted(Path(root).glob("*/config.yaml")):
        run_dir = config_file.parent
        metadata = read_metadata(run_dir)
        try:
            config = load_config(config_file)
            name, total = config.name, len(config.trials)
        except ValueError:
            name, total = "(unreadable config)", None
        rows.append({
            "path": str(run_dir),
            "config": name,
            "started": metadata.get("started"),
            "status": metadata.get("status", "not started"),
            "trials_done": len(finished_trials(run_dir)),
            "trials_total": total,
        })
    columns = ["path", "config", "started", "status", "trials_done", "trials_total"]
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values("started", ascending=False, na_position="last", ignore_index=True)
