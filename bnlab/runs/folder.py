"""The on-disk layout of a run folder, and writing into it safely.

A run folder holds:

    config.yaml        the resolved config the run was started with
    metadata.json      versions, machine, start/end times, status
    epochs.csv         one row per variant x seed x epoch
    trials.csv         one row per trial: derived figures and status
    targets.csv        one row per trial x target
    activations.csv    with an activation probe: one row per trial x probe step x unit
    bn_discrepancy.csv with BN layers: one row per trial x BN layer (bnlab.models.population.bn_discrepancy)
    test_predictions.npz  every trial's predicted class for each test image (bnlab.runs.predictions)
    trials/LABEL-seedN/{epochs.csv, targets.csv, [activations.csv, bn_discrepancy.csv, model.keras,]
                        test_predictions.npz, trial.json}

A trial counts as finished once its `trial.json` exists; it is written last. Every file
is written to a temporary name and renamed into place, so a crash never leaves a half
written table, and the three run-level tables are rebuilt from the trial folders after
each trial, so a finished trial appears in them exactly once. `bnlab.runs.results` reads a
folder back.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd
import yaml

from bnlab.common.columns import TRAIN_EVAL_EXAMPLES, TRIAL_KEYS
from bnlab.config import ExperimentConfig, load_config
from bnlab.config.loader import dotted_keys
from bnlab.config.probes import PROBES
from bnlab.runs import predictions as test_predictions_file
from bnlab.runs.lock import FolderInUseError, FolderLock
from bnlab.training.record import TrialRecord, trial_folder_name


class RunFolderError(RuntimeError):
    """A run folder cannot be used (written, or resumed with this config)."""


def write_atomic(path: Path, content: str | bytes) -> None:
    """Write text (or bytes) to path through a temporary file and a rename."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content.encode("utf-8") if isinstance(content, str) else content)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_saved_config(run_dir: Path, epochs: pd.DataFrame | None = None) -> ExperimentConfig:
    """A run folder's config.yaml, read as the run was made: keys bnlab added since take their defaults,
    except two that changed what a run did:
    - `evaluation.train_eval_examples` in a run made before it existed, which re-scored all the
      training images at every evaluation (its epochs.csv lacks the column that every run since writes);
    - `training.data_order` in a run made before it existed (its config.yaml lacks it), which trained
      in Keras's order (`keras`: seeded TensorFlow repeats one permutation every epoch).
    `epochs`: the folder's epochs table when the caller has read it already."""
    if epochs is None:
        epochs = _train_eval_counts(Path(run_dir))
    before_the_key = len(epochs) > 0 and (TRAIN_EVAL_EXAMPLES not in epochs or epochs[TRAIN_EVAL_EXAMPLES].isna().any())
    legacy = {"evaluation.train_eval_examples": None} if before_the_key else {}
    return load_config(Path(run_dir) / "config.yaml", legacy, missing={"training.data_order": "keras"})


def _train_eval_counts(run_dir: Path) -> pd.DataFrame:
    """The epochs table's epoch and train_eval_examples columns (empty when no trial finished yet, or unreadable)."""
    try:
        return pd.read_csv(run_dir / "epochs.csv", usecols=lambda column: column in ("epoch", TRAIN_EVAL_EXAMPLES))
    except (OSError, ValueError):  # nothing to mix with
        return pd.DataFrame()


def prepare_run_folder(run_dir: Path, config: ExperimentConfig) -> None:
    """Create the run folder, or check that an existing one was started with this config.

    Raises:
        RunFolderError: the folder cannot be created or written, or it holds a run of a
            different config.
    """
    saved = run_dir / "config.yaml"
    wanted = _comparable(config)
    if saved.is_file():
        # parsed again, so that keys added to bnlab since (with defaults) compare equal
        previous = _comparable(load_saved_config(run_dir))
        if previous != wanted:
            changed = "; ".join(_differences(previous, wanted))
            raise RunFolderError(
                f"{run_dir} holds a run of a different config (differs in: {changed}). "
                "Resume only with the same config (KEY=VALUE on the command line sets a key); choose another "
                "folder with --out, or delete this one to start over."
            )
        return
    try:
        (run_dir / "trials").mkdir(parents=True, exist_ok=True)
        write_atomic(saved, yaml.safe_dump(config.to_dict(), sort_keys=False))
    except OSError as error:
        raise RunFolderError(f"cannot create the run folder {run_dir}: {error.strerror or error}.") from None


class RunLock(FolderLock):
    """An exclusive lock on a run folder, held while a process trains into it.

    It is `bnlab.runs.lock.FolderLock` on `run_dir/.lock`, an OS lock: the operating system
    releases it when the process ends in any way, SIGKILL included, so a crashed run never
    leaves the folder locked. Once it is held, the temporary files of a killed writer go.

    Raises:
        RunFolderError: on entering, when another process trains into the folder (its pid named).
    """

    def __enter__(self) -> "RunLock":
        try:
            super().__enter__()
        except FolderInUseError as error:
            raise RunFolderError(str(error)) from None
        _remove_stale_temporaries(self.path.parent)
        return self


def _remove_stale_temporaries(run_dir: Path) -> None:
    """Temporary files of a process killed mid-write; only the lock holder may remove them."""
    for stale in [*run_dir.glob(".*.tmp"), *run_dir.glob("trials/*/.*.tmp")]:
        stale.unlink(missing_ok=True)


def _comparable(config: ExperimentConfig) -> dict:
    """The parts of a config that define its trials: not where they run, report or write to, nor
    what the report tests (claims and analysis settings can change without retraining)."""
    ignored = ("output_dir", "tracking", "executor", "analysis", "claims")
    data = {**config.to_dict(), "evaluation": config.evaluation.to_dict()}  # even when all defaults
    return {k: v for k, v in data.items() if k not in ignored}


def _differences(previous: dict, wanted: dict) -> list[str]:
    """'KEY (the run folder's: VALUE; this config's: VALUE)' for each dotted key whose values differ."""
    before, now = dotted_keys(previous), dotted_keys(wanted)
    return [f"{key} (the run folder's: {_shown(before, key)}; this config's: {_shown(now, key)})"
            for key in sorted(set(before) | set(now)) if before.get(key, _UNSET) != now.get(key, _UNSET)]


_UNSET = object()


def _shown(values: dict, key: str) -> str:
    return json.dumps(values[key], default=str) if key in values else "not set: its default"


def finished_trials(run_dir: Path) -> set[tuple[str, int]]:
    """(variant label, seed) of every trial whose results are complete on disk."""
    found = set()
    for marker in (run_dir / "trials").glob("*/trial.json"):
        info = json.loads(marker.read_text(encoding="utf-8"))
        found.add((info["variant"], int(info["seed"])))
    return found


# Tables a run has only when its trials recorded them: an activation probe; BN layers (the discrepancy
# of their moving statistics from the population's at the end of each trial).
OPTIONAL_TABLES = ("activations", "bn_discrepancy", *PROBES)


def save_trial(run_dir: Path, record: TrialRecord) -> None:
    """Write one finished trial's folder; `trial.json`, written last, marks it finished.

    The run-level tables are the caller's: `rebuild_tables`, or a session's `bnlab.runs.table_rebuilds`.
    """
    folder = run_dir / "trials" / record.folder_name
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / "epochs.csv", record.epochs.to_csv(index=False))
    write_atomic(folder / "targets.csv", pd.DataFrame(record.targets).to_csv(index=False))
    if record.activations is not None:
        write_atomic(folder / "activations.csv", record.activations.to_csv(index=False))
    if record.discrepancy is not None:
        write_atomic(folder / "bn_discrepancy.csv", record.discrepancy.to_csv(index=False))
    for name, table in record.probe_tables.items():
        write_atomic(folder / f"{name}.csv", table.to_csv(index=False))
    if record.model_file is not None:
        write_atomic(folder / "model.keras", record.model_file)
    if record.test_predictions is not None:
        write_atomic(folder / test_predictions_file.FILE_NAME,
                     test_predictions_file.trial_file_bytes(record.test_predictions))
    info = {"variant": record.variant, "seed": record.seed, **record.summary}
    write_atomic(folder / "trial.json", json.dumps(info, indent=2, default=_plain))


def rebuild_tables(run_dir: Path, order: list[tuple[str, int]]) -> None:
    """Gather every finished trial folder into epochs.csv, trials.csv and targets.csv.

    Also activations.csv, bn_discrepancy.csv and one table per probe (`bnlab.config.probes.PROBES`)
    when the run's trials recorded them, and test_predictions.npz from the trials' predictions.
    """
    rank = {key: i for i, key in enumerate(order)}
    done = sorted(finished_trials(run_dir), key=lambda key: rank.get(key, len(rank)))
    trials, tables = [], {"epochs": [], "targets": [], **{name: [] for name in OPTIONAL_TABLES}}
    for variant, seed in done:
        folder = run_dir / "trials" / trial_folder_name(variant, seed)
        trials.append(json.loads((folder / "trial.json").read_text(encoding="utf-8")))
        for name, frames in tables.items():
            if (folder / f"{name}.csv").is_file():
                frames.append(_with_keys(pd.read_csv(folder / f"{name}.csv"), variant, seed))
    write_atomic(run_dir / "trials.csv", pd.DataFrame(trials).to_csv(index=False))
    for name, frames in tables.items():
        if name in OPTIONAL_TABLES and not frames:
            continue
        table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TRIAL_KEYS)
        write_atomic(run_dir / f"{name}.csv", table.to_csv(index=False))
    folders = [(variant, seed, run_dir / "trials" / trial_folder_name(variant, seed)) for variant, seed in done]
    gathered = test_predictions_file.gather(folders)
    if gathered is not None:
        write_atomic(run_dir / test_predictions_file.FILE_NAME, gathered)


def _with_keys(table: pd.DataFrame, variant: str, seed: int) -> pd.DataFrame:
    return table.assign(variant=variant, seed=seed)[[*TRIAL_KEYS, *table.columns]]


def _plain(value):
    """JSON for numpy scalars."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def write_metadata(run_dir: Path, metadata: dict) -> None:
    write_atomic(run_dir / "metadata.json", json.dumps(metadata, indent=2, default=_plain))


def read_metadata(run_dir: Path) -> dict:
    path = run_dir / "metadata.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
