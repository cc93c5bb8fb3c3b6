"""Whole studies timed: each config run by the real command, in a process of its own, over interleaved rounds.

A user waits for a study, not for its epochs. For every run of `bnlab run CONFIG` this measures:

- `run_seconds`: the run's own wall time, from metadata.json (the session's start to its end:
  data loading, every trial with its compilation, evaluations, test pass and files);
- `command_seconds`: the command's wall time, Python's and the backend's start-up included;
- `steady_seconds`: the sum of its steady training epochs: per trial, its evaluations times the
  median training time of its epochs after the first (the first also compiles);
- `training_seconds`: the sum of every epoch's training time, first epochs included;
- `evaluation_seconds`: the inference-mode passes at every evaluation (validation and the
  training set re-evaluated; the test pass and BN's discrepancy table are not in it);
- `wall_over_steady` (`run_seconds / steady_seconds`) and `wall_over_training`: what a study costs
  beyond its training, the first counting compilation as overhead, the second not;
- `wall_over_work`: `run_seconds` over training plus evaluation seconds, what the run costs beyond
  the work its tables measure (set-up, test pass, discrepancy table, files);
- `peak_memory_mib`: the run process's maximum resident size.

Rounds alternate the order of the configs, so a shared machine's slow spells hit all alike.

Example:
    >>> result = run_study_rounds(["quickstart", "lr_sweep"], rounds=2, out_dir="benchmarks/results")
    >>> result.table[["config", "wall_over_steady_median"]]
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pandas as pd

from bnlab.bench.settings import BenchError

FIGURES = ("run_seconds", "command_seconds", "steady_seconds", "training_seconds", "evaluation_seconds",
           "wall_over_steady", "wall_over_training", "wall_over_work", "peak_memory_mib")
TARGET = 1.1  # issue #20: a whole study within 10% of its steady training time


@dataclasses.dataclass
class StudyResult:
    """Every timed run (`runs`, one row each) and one row per config with min/median/max (`table`)."""

    runs: pd.DataFrame
    table: pd.DataFrame
    paths: list[Path]


def run_study_rounds(configs: list[str], rounds: int = 1, out_dir: str | Path = "benchmarks/results",
                     extra_args: tuple[str, ...] = ()) -> StudyResult:
    """Run every config `rounds` times, interleaved, each into a fresh folder under `out_dir`/study_runs.

    Args:
        configs: config names or paths, as `bnlab run` takes them.
        rounds: runs of each config; odd rounds take the configs in reverse order.
        out_dir: where `bench_study.csv` and `bench_study.json` go.
        extra_args: more arguments for every `bnlab run` (e.g. `--backend jax`).

    Raises:
        BenchError: no config, a config that does not load, or a run that failed.
    """
    if not configs or rounds < 1:
        raise BenchError(f"studies: expected at least one config and one round, received {configs} and {rounds}.")
    _check_configs(configs)
    out_dir = Path(out_dir)
    rows = []
    for index in range(rounds):
        for config in configs if index % 2 == 0 else configs[::-1]:
            run_dir = out_dir / "study_runs" / f"{Path(config).stem}-round{index + 1}"
            rows.append({"config": config, "round": index + 1, **time_study(config, run_dir, extra_args)})
    runs = pd.DataFrame(rows)
    table = summarize(runs)
    return StudyResult(runs, table, _write(out_dir, runs, table))


def time_study(config: str, run_dir: Path, extra_args: tuple[str, ...] = ()) -> dict:
    """Run `bnlab run CONFIG` into an emptied `run_dir` and return its figures (see the module docstring)."""
    shutil.rmtree(run_dir, ignore_errors=True)
    command = [sys.executable, "-m", "bnlab", "run", str(config), "--out", str(run_dir), "--no-progress", *extra_args]
    print("$ bnlab " + " ".join(command[3:]), flush=True)
    # an empty compile cache: the study as a first run on this machine compiles it (bnlab.common.compile_cache)
    with tempfile.TemporaryFile("w+") as errors, tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, BNLAB_COMPILE_CACHE=cache)
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors, text=True, env=env)
        code, peak_mib = _wait(process)
        command_seconds = time.perf_counter() - started
        if code != 0:
            errors.seek(0)
            reason = (errors.read().strip().splitlines() or ["no output"])[-1]
            raise BenchError(f"bnlab run {config} failed (exit {code}): {reason}")
    figures = study_figures(run_dir)
    figures.update(command_seconds=command_seconds, peak_memory_mib=peak_mib)
    print(f"  {figures['run_seconds']:.0f} s, {figures['wall_over_steady']:.2f}x its steady training", flush=True)
    return figures


def _wait(process) -> tuple[int, float]:
    """The exit code and peak resident MiB of a child process (NaN where os.wait4 is missing: Windows)."""
    if not hasattr(os, "wait4"):
        return process.wait(), float("nan")
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_maxrss / 1024  # Linux reports kilobytes


def study_figures(run_dir: str | Path) -> dict:
    """The time figures of a finished run folder (one session): run, steady and all training seconds, ratios."""
    run_dir = Path(run_dir)
    metadata = json.loads((run_dir / "metadata.json").read_text())
    if len(metadata["sessions"]) != 1:
        raise BenchError(f"{run_dir}: expected a run made in one session, received {len(metadata['sessions'])}.")
    session = metadata["sessions"][0]
    started, ended = (datetime.fromisoformat(session[key]) for key in ("started", "ended"))
    run_seconds = (ended - started).total_seconds()
    epochs = pd.read_csv(run_dir / "epochs.csv")
    steady = sum(_steady_seconds(trial["train_seconds"]) for _, trial in epochs.groupby(["variant", "seed"]))
    training = float(epochs["train_seconds"].sum())
    evaluation = float((epochs["val_seconds"] + epochs["train_eval_seconds"]).sum())
    return {"trials": int(epochs.groupby(["variant", "seed"]).ngroups), "run_seconds": run_seconds,
            "steady_seconds": steady, "training_seconds": training, "evaluation_seconds": evaluation,
            "wall_over_steady": run_seconds / steady, "wall_over_training": run_seconds / training,
            "wall_over_work": run_seconds / (training + evaluation)}


def _steady_seconds(train_seconds: pd.Series) -> float:
    """A trial's training at its steady pace: its evaluations times the median of the epochs after the first."""
    later = train_seconds.iloc[1:]
    return float(len(train_seconds) * later.median()) if len(later) else float(train_seconds.sum())


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per config: each figure's min, median and max over its rounds."""
    grouped = runs.groupby("config", sort=False)
    table = grouped[list(FIGURES)].agg(["min", "median", "max"])
    table.columns = [f"{figure}_{statistic}" for figure, statistic in table.columns]
    table.insert(0, "rounds", grouped.size())
    table.insert(1, "trials", grouped["trials"].first())
    table["target_holds"] = table["wall_over_steady_max"] <= TARGET
    return table.reset_index()


def study_table(result: StudyResult):
    """The study figures as a rich table, with how each figure is made below it."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Whole studies: run wall time against the sum of their steady training epochs")
    for heading in ("config", "trials", "rounds", "run s (min / median / max)", "steady training s",
                    "wall / steady (min / median / max)", "wall / all epochs", "evaluation s",
                    "wall / (epochs + evaluation)", "start-up s", "peak MiB"):
        table.add_column(heading, justify="left" if heading == "config" else "right")
    for row in result.table.itertuples():
        start_up = row.command_seconds_median - row.run_seconds_median
        table.add_row(row.config, str(row.trials), str(row.rounds),
                      f"{row.run_seconds_min:.0f} / {row.run_seconds_median:.0f} / {row.run_seconds_max:.0f}",
                      f"{row.steady_seconds_median:.0f}",
                      f"{row.wall_over_steady_min:.2f} / {row.wall_over_steady_median:.2f} / "
                      f"{row.wall_over_steady_max:.2f}",
                      f"{row.wall_over_training_median:.2f}", f"{row.evaluation_seconds_median:.0f}",
                      f"{row.wall_over_work_median:.2f}", f"{start_up:.1f}", f"{row.peak_memory_mib_max:.0f}")
    notes = ["Run s: metadata.json's session (data, trials, files); start-up s: the command's extra (Python, backend).",
             "Steady training: per trial, its epochs times the median of its epochs after the first.",
             "Evaluation s: the inference passes at each evaluation (validation, training set re-evaluated).",
             *(f"{row.config}: wall / steady <= {TARGET} in every round: "
               f"{'holds' if row.target_holds else 'does NOT hold'}" for row in result.table.itertuples())]
    return Group(table, Text("\n".join(notes)))


def _check_configs(configs: list[str]) -> None:
    from bnlab.config import ConfigError, load_config

    for config in configs:
        try:
            load_config(config)
        except (ConfigError, FileNotFoundError) as error:
            raise BenchError(f"studies: {config} does not load: {error}") from None


def _write(out_dir: Path, runs: pd.DataFrame, table: pd.DataFrame) -> list[Path]:
    from bnlab.common.environment import environment_record

    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out_dir / "bench_study.csv", out_dir / "bench_study.json"
    runs.to_csv(csv_path, index=False)
    document = {"machine": environment_record(), "target": TARGET, "table": json.loads(table.to_json(orient="records")),
                "runs": json.loads(runs.to_json(orient="records"))}
    json_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return [csv_path, json_path]
