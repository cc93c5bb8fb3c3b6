"""Times one config run with the local executor and with the dask executor, one after the other.

Each run is the real command (`python -m bnlab run CONFIG --executor ... --no-progress`) in a
fresh folder, timed from start to exit, so Python, TensorFlow and Dask start-up are included,
as a user would see them. The per-epoch metrics of the two runs are compared as well.

Usage: python benchmarks/bench_executors.py [--config quickstart] [--workers 2] [--out FOLDER]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

TIMING = ["train_seconds", "val_seconds", "train_eval_seconds"]


def time_run(config: str, executor: str, workers: int, run_dir: Path) -> float:
    command = [sys.executable, "-m", "bnlab", "run", config, "--executor", executor, "--out", str(run_dir),
               "--no-progress"]
    if executor == "dask":
        command += ["--workers", str(workers)]
    print("$", " ".join(command[1:]), flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="quickstart")
    parser.add_argument("--workers", type=int, default=2, help="dask LocalCluster workers, one thread each")
    parser.add_argument("--out", default=Path(tempfile.gettempdir()) / "bnlab-bench-executors", type=Path,
                        help="folder for the two run folders and executors.json (emptied first)")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    wall = {executor: time_run(args.config, executor, args.workers, args.out / executor)
            for executor in ("local", "dask")}
    epochs = {executor: pd.read_csv(args.out / executor / "epochs.csv") for executor in wall}
    metrics = {executor: table.drop(columns=TIMING) for executor, table in epochs.items()}
    result = {
        "config": args.config,
        "workers": args.workers,
        "wall_seconds": {executor: round(seconds, 1) for executor, seconds in wall.items()},
        "dask_over_local": round(wall["dask"] / wall["local"], 3),
        "mean_train_seconds_per_epoch": {executor: round(float(table["train_seconds"].mean()), 2)
                                         for executor, table in epochs.items()},
        "metrics_bit_identical": bool(metrics["local"].equals(metrics["dask"])),
    }
    (args.out / "executors.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
