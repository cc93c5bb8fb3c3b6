"""A run folder read back as pandas DataFrames (`load_results`), several run folders read into one set
of tables (`load_runs`), and the run folders under a root (`list_runs`).

The layout, and writing it, is `bnlab.runs.folder`'s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bnlab.common.columns import TRIAL_KEYS
from bnlab.config import ExperimentConfig
from bnlab.config.probes import PROBES
from bnlab.runs import predictions as test_predictions_file
from bnlab.runs.folder import finished_trials, load_saved_config, read_metadata
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
        probes: probe name -> its table, for each of the config's probes that the run recorded
            (`bnlab.config.probes`: init_gradients, landscape, covariate_shift, kernel_norms).
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
    probes: dict[str, pd.DataFrame] = dataclasses.field(default_factory=dict)  # empty: no probe recorded


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
    tables["probes"] = {name: pd.read_csv(run_dir / f"{name}.csv") for name in PROBES
                        if (run_dir / f"{name}.csv").is_file()}
    tables["trials"] = _with_steps_run(tables["trials"], tables["epochs"])
    return RunResults(
        config=load_saved_config(run_dir, tables["epochs"]),
        metadata=read_metadata(run_dir),
        path=run_dir,
        predictions=test_predictions_file.load_run_predictions(run_dir),
        **tables,
    )


RUN_COLUMN, LABEL_IN_RUN_COLUMN = "run", "variant_in_run"  # the columns load_runs adds to every table
_TABLES = ("epochs", "trials", "targets", "activations", "discrepancy")


def load_runs(run_dirs: Sequence[str | Path]) -> RunResults:
    """Read several run folders into one `RunResults`, each trial labelled "RUN/LABEL".

    Every table gains a `run` column (the folder's name; a name met before gets "-2", "-3", ...)
    and a `variant_in_run` column (the trial's label in its own run), and its `variant` becomes
    "RUN/LABEL" (`base_variant` of a grid likewise). So every function that keys on `variant` and
    `seed` (the summaries, statistics and figures of `bnlab.analysis`) treats each run's variant as
    a variant of its own, and the same label in two runs stays two rows.

    Args:
        run_dirs: one or more folders written by `bnlab run` / `run_experiment`.

    Returns:
        `RunResults` whose `config` is the first run's with every run's trial variants (grid points
        expanded, relabelled "RUN/LABEL", so `config.grid` is empty), the seeds of all runs, the
        targets that every run has, and no claims; `metadata` is `{"runs": {RUN: metadata}, "folders":
        {RUN: folder}}`; `path` the first folder; `predictions` those of every run, or None unless every
        run has them.

    Raises:
        FileNotFoundError: a folder is not a run folder.
        ValueError: `run_dirs` is empty or a single string.

    Example:
        >>> both = load_runs(["runs/placement", "runs/placement-lr0.1"])
        >>> both.trials.groupby(["run", "variant_in_run"])["test_accuracy"].mean()
    """
    if isinstance(run_dirs, (str, Path)) or not run_dirs:
        raise ValueError(f"load_runs: expected a list of one or more run folders, received {run_dirs!r}.")
    folders = [Path(folder) for folder in run_dirs]
    names = _unique_names([folder.name for folder in folders])
    runs = {name: load_results(folder) for name, folder in zip(names, folders)}
    tables = {table: _concatenated({name: getattr(results, table) for name, results in runs.items()})
              for table in _TABLES}
    probes = {probe for results in runs.values() for probe in results.probes}
    tables["probes"] = {probe: _concatenated({name: results.probes[probe] for name, results in runs.items()
                                              if probe in results.probes}) for probe in sorted(probes)}
    return RunResults(
        config=_combined_config([(name, results.config) for name, results in runs.items()]),
        metadata={"runs": {name: results.metadata for name, results in runs.items()},
                  "folders": {name: str(folder) for name, folder in zip(names, folders)}},
        path=folders[0],
        predictions=_combined_predictions(runs),
        **tables,
    )


def _unique_names(names: list[str]) -> list[str]:
    unique: list[str] = []
    for name in names:
        candidate, count = name, 1
        while candidate in unique:
            count += 1
            candidate = f"{name}-{count}"
        unique.append(candidate)
    return unique


def _concatenated(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return pd.concat([_labelled(table, run) for run, table in tables.items()], ignore_index=True)


def _labelled(table: pd.DataFrame, run: str) -> pd.DataFrame:
    """`table` with `run` first, `variant` as "RUN/LABEL" and the label kept in `variant_in_run`."""
    labelled = table.assign(**({LABEL_IN_RUN_COLUMN: table["variant"]} if "variant" in table else {}))
    for column in ("variant", "base_variant"):
        if column in labelled:
            labelled[column] = run + "/" + labelled[column].astype(str)
    labelled.insert(0, RUN_COLUMN, run)
    return labelled


def _combined_config(configs: list[tuple[str, ExperimentConfig]]) -> ExperimentConfig:
    first = configs[0][1]
    variants = tuple(
        dataclasses.replace(variant, label=f"{run}/{variant.label}",
                            base_label=None if variant.base_label is None else f"{run}/{variant.base_label}")
        for run, config in configs for variant in config.trial_variants
    )
    shared = [t for t in first.targets if all(t in config.targets for _, config in configs)]
    seeds = sorted({seed for _, config in configs for seed in config.seeds})
    return dataclasses.replace(first, name=" vs ".join(run for run, _ in configs), variants=variants, grid={},
                               seeds=tuple(seeds), targets=tuple(shared), claims=())


def _combined_predictions(runs: dict[str, RunResults]) -> RunPredictions | None:
    found = [(name, results.predictions) for name, results in runs.items()]
    if any(p is None for _, p in found) or any(not np.array_equal(p.labels, found[0][1].labels) for _, p in found):
        return None
    trials = pd.concat([_labelled(p.trials, name) for name, p in found], ignore_index=True)
    return RunPredictions(found[0][1].labels, trials, np.concatenate([p.predicted for _, p in found]))


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
            config = load_saved_config(run_dir)
            name, total = config.name, len(config.trials)
        except ValueError:
            name, total = "(unreadable config)", None
        rows.append({
            "path": str(run_dir),
            "config": name,
            "started": metadata.get("started"),
            "status": metadata.get("status", "not started"),
            "trials_done": _trials_done(run_dir),
            "trials_total": total,
        })
    columns = ["path", "config", "started", "status", "trials_done", "trials_total"]
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values("started", ascending=False, na_position="last", ignore_index=True)


def _trials_done(run_dir: Path) -> int:
    """Finished trials: their folders, or, in a run committed without them (docs/*-run), trials.csv's rows."""
    done = len(finished_trials(run_dir))
    if done or (run_dir / "trials").is_dir():
        return done
    trials = _read_table(run_dir / "trials.csv")
    return len(trials.drop_duplicates(list(TRIAL_KEYS))) if set(TRIAL_KEYS) <= set(trials.columns) else 0
