"""Times whole studies with bnlab's execution defaults and with Keras's (the reference's), side by side.

Each run is the real command (`python -m bnlab run CONFIG --no-progress`) in a fresh folder,
timed from start to exit (Python and backend start-up included) and by its run folder
(`bnlab.bench.study`: the run's wall time against the sum of its steady training epochs),
over interleaved rounds (odd rounds in reverse order):

    defaults    each config as it is: bnlab's execution defaults
    reference   (with --reference) the same config with Keras's default execution settings, as the
                plain Keras code of `bnlab bench`'s reference row runs them: steps_per_execution 1,
                no XLA (Keras's "auto" on a CPU-only TensorFlow), evaluation at batch size 32,
                every trial compiled afresh, the whole training set re-evaluated at every epoch
    jax         (with --jax) each config as it is on the JAX backend

Batch size, optimizer, data order and epochs are the same in every run. The summary gives, per
run kind and config, min/median/max over the rounds of the wall time and of its ratio to the
steady training, and each variant's mean final test accuracy.

Usage: python benchmarks/bench_study.py [--configs quickstart,lr_sweep] [--rounds 2] [--reference] [--jax]
       [--out FOLDER]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import yaml

from bnlab.bench.study import summarize, time_study
from bnlab.config import load_config
from bnlab.config.loader import apply_overrides, resolve_config_path

KERAS_DEFAULTS = {"training.steps_per_execution": 1, "training.jit_compile": False,
                  "training.eval_batch_size": 32, "training.reuse_compiled": False, "training.fused_steps": False,
                  "evaluation.train_eval_examples": None}


def reference_config(config: str, out: Path) -> Path:
    """The config's YAML with Keras's default execution settings, written into `out`."""
    data = yaml.safe_load(resolve_config_path(config).read_text())
    data = apply_overrides(data, KERAS_DEFAULTS)
    data["name"] = f"{data['name']}_reference"
    path = out / f"{Path(config).stem}_reference.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    load_config(path)  # fails here, not after the first run, if the settings are invalid
    return path


def runs_to_time(configs: list[str], out: Path, reference: bool, jax: bool) -> list[tuple[str, str, str, tuple]]:
    """(kind, config name, config to run, extra arguments) for every run of one round."""
    runs = []
    for config in configs:
        runs.append(("defaults", config, str(resolve_config_path(config)), ()))
        if reference:
            runs.append(("reference", config, str(reference_config(config, out)), ()))
        if jax:
            runs.append(("jax", config, str(resolve_config_path(config)), ("--backend", "jax")))
    return runs


def accuracies(run_dir: Path) -> dict:
    trials = pd.read_csv(run_dir / "trials.csv")
    return trials.groupby("variant")["test_accuracy"].mean().round(4).to_dict()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="quickstart", help="comma-separated config names (default quickstart)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--reference", action="store_true", help="also run with Keras's default execution settings")
    parser.add_argument("--jax", action="store_true", help="also run each config on the JAX backend")
    parser.add_argument("--out", default=Path("benchmarks/results/study"), type=Path,
                        help="folder for the run folders and bench_study_runs.{csv,json} (run folders emptied first)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runs = runs_to_time(args.configs.split(","), args.out, args.reference, args.jax)
    rows = []
    for index in range(args.rounds):
        for kind, name, config, extra in runs if index % 2 == 0 else runs[::-1]:
            run_dir = args.out / f"{name}-{kind}-round{index + 1}"
            figures = time_study(config, run_dir, extra)
            rows.append({"config": f"{name} [{kind}]", "round": index + 1, **figures,
                         "mean_test_accuracy": accuracies(run_dir)})
    table = summarize(pd.DataFrame(rows).drop(columns="mean_test_accuracy"))
    pd.DataFrame(rows).to_csv(args.out / "bench_study_runs.csv", index=False)
    document = {"table": json.loads(table.to_json(orient="records")), "runs": rows}
    (args.out / "bench_study_runs.json").write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(table[["config", "rounds", "trials", "run_seconds_median", "steady_seconds_median",
                 "wall_over_steady_min", "wall_over_steady_median", "wall_over_steady_max",
                 "wall_over_training_median", "peak_memory_mib_max"]].round(2).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
