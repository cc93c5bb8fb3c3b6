"""Times a whole study with bnlab's default execution settings and with Keras's (the reference's).

Each run is the real command (`python -m bnlab run CONFIG --no-progress`) in a fresh folder,
timed from start to exit (Python and backend start-up included), one after the other:

    defaults    the config as it is: bnlab's execution defaults
    reference   the same config with Keras's default execution settings, as the plain Keras
                code of `bnlab bench`'s reference row runs them: steps_per_execution 1,
                no XLA (Keras's "auto" on a CPU-only TensorFlow), evaluation at batch size 32
    jax         (with --jax) the config as it is on the JAX backend

Batch size, optimizer, data order and epochs are the same in every run. The summary compares
wall times and each variant's mean final test accuracy across the runs.

Usage: python benchmarks/bench_study.py [--config placement] [--jax] [--out FOLDER]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from bnlab.config import load_config
from bnlab.config.loader import apply_overrides, resolve_config_path

KERAS_DEFAULTS = {"training.steps_per_execution": 1, "training.jit_compile": False,
                  "training.eval_batch_size": 32}


def time_run(config: Path, run_dir: Path, extra: list[str]) -> float:
    command = [sys.executable, "-m", "bnlab", "run", str(config), "--out", str(run_dir), "--no-progress", *extra]
    print("$", " ".join(command[1:]), flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    print(f"  {seconds:.0f} s", flush=True)
    return seconds


def reference_config(config: str, out: Path) -> Path:
    """The config's YAML with Keras's default execution settings, written into `out`."""
    data = yaml.safe_load(resolve_config_path(config).read_text())
    data = apply_overrides(data, KERAS_DEFAULTS)
    data["name"] = f"{data['name']}_reference"
    path = out / f"{config}_reference.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    load_config(path)  # fails here, not after the first run, if the settings are invalid
    return path


def summarize(config: str, out: Path, wall: dict[str, float]) -> dict:
    """Wall times, their ratios to the reference run, and each run's per-variant test accuracy."""
    trials = {name: pd.read_csv(out / name / "trials.csv") for name in wall}
    result = {
        "config": config,
        "wall_seconds": {name: round(seconds, 1) for name, seconds in wall.items()},
        "over_reference": {name: round(seconds / wall["reference"], 3) for name, seconds in wall.items()},
        "trials": {name: len(table) for name, table in trials.items()},
        "median_train_seconds_per_epoch": {
            name: round(float(pd.read_csv(out / name / "epochs.csv")["train_seconds"].median()), 2)
            for name in wall},
        "mean_test_accuracy": {name: table.groupby("variant")["test_accuracy"].mean().round(4).to_dict()
                               for name, table in trials.items()},
        "std_test_accuracy": {name: table.groupby("variant")["test_accuracy"].std().round(4).to_dict()
                              for name, table in trials.items()},
    }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="placement")
    parser.add_argument("--jax", action="store_true", help="also run the config on the JAX backend")
    parser.add_argument("--out", default=Path("benchmarks/results/study"), type=Path,
                        help="folder for the run folders and study_CONFIG.json (run folders emptied first)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runs = {"defaults": (resolve_config_path(args.config), []),
            "reference": (reference_config(args.config, args.out), [])}
    if args.jax:
        runs["jax"] = (resolve_config_path(args.config), ["--backend", "jax"])
    wall = {}
    for name, (config, extra) in runs.items():
        shutil.rmtree(args.out / name, ignore_errors=True)
        wall[name] = time_run(config, args.out / name, extra)
    result = summarize(args.config, args.out, wall)
    (args.out / f"study_{args.config}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
