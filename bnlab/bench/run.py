"""`run_benchmark`: every setting in a measuring process of its own, interleaved over rounds, then the
floor and the files."""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from bnlab.bench.floor import measure_floor
from bnlab.bench.settings import (
    BATCH_SIZE,
    FULL_IMAGES,
    OPTIMIZER,
    QUICK_IMAGES,
    VARIANT,
    BenchError,
    Setting,
    default_settings,
    explore_settings,
    installed_backends,
)
from bnlab.bench.table import build_table, check_targets
from bnlab.common.extras import install_command


@dataclasses.dataclass
class BenchResult:
    """What `run_benchmark` measured and where it wrote it."""

    table: pd.DataFrame  # one row per setting, `COLUMNS`
    floor: dict  # the floor's formula, FLOPs, matmul rate and seconds
    checks: dict  # the targets: measured value and whether it holds
    paths: list[Path]


def run_benchmark(
    out_dir: str | Path = "benchmarks/results",
    *,
    epochs: int = 3,
    quick: bool = False,
    backends: list[str] | None = None,
    explore: bool = False,
    rounds: int = 1,
) -> BenchResult:
    """Time every setting in its own process, compute the floor and write CSV and JSON.

    Args:
        out_dir: folder for `bench_epoch.csv` and `bench_epoch.json` (`*_quick.*` with `quick`).
        epochs: timed epochs per setting, after one warm-up epoch.
        quick: train on the first 1,024 images only (for tests; times mean little).
        backends: backends for the runner rows; default: every installed one.
        explore: add the `explore_settings` (TensorFlow's; JAX's too when it is benchmarked).
        rounds: run every setting this many times, in reverse order every other round,
            and pool the timed epochs (a shared machine's slow spells then hit all alike).

    Returns:
        The `BenchResult`.

    Raises:
        BenchError: a requested backend is not installed, or `epochs` or `rounds` is not positive.
    """
    backends = _check_backends(backends)
    for name, value in (("epochs", epochs), ("rounds", rounds)):
        if value < 1:
            raise BenchError(f"{name}: expected a positive integer, received {value}.")
    images = QUICK_IMAGES if quick else FULL_IMAGES
    settings = default_settings(backends) + (explore_settings(backends) if explore else [])
    rows, floor = _run_rounds(settings, epochs, images, rounds, floor_repeats=3 if quick else 20)
    table = build_table(settings, rows, floor, images, epochs * rounds)
    checks = check_targets(table, floor)
    measured = {setting.name: row for setting, row in zip(settings, rows)}
    paths = _write(Path(out_dir), "bench_epoch_quick" if quick else "bench_epoch",
                   table, {"floor": floor, "checks": checks, "measured": measured})
    return BenchResult(table, floor, checks, paths)


def _check_backends(backends):
    installed = installed_backends()
    if backends is None:
        return installed
    missing = [name for name in backends if name not in installed]
    if missing:
        raise BenchError(f"backends: expected installed Keras backends ({', '.join(installed)}), "
                         f"received {', '.join(missing)}; install one with {install_command('NAME')}.")
    return list(backends)


def _run_rounds(settings: list[Setting], epochs: int, images: int, rounds: int,
                floor_repeats: int) -> tuple[list[dict], dict]:
    """The pooled figures of each setting, and the fastest of the floors measured after each round.

    Another job's load slows numpy's matmuls as it slows training: one floor taken in a busy
    spell would make every setting look closer to it than it is, so the floor is taken
    once a round and the least disturbed one kept (`seconds_per_round` lists them all).
    """
    runs: dict[Setting, list[dict]] = {setting: [] for setting in settings}
    floors = []
    for index in range(rounds):
        for setting in settings if index % 2 == 0 else settings[::-1]:
            runs[setting].append(_measure_in_new_process(setting, epochs, images))
        floors.append(measure_floor(images, repeats=floor_repeats))
    floor = min(floors, key=lambda measured: measured["seconds"])
    floor["seconds_per_round"] = [measured["seconds"] for measured in floors]
    return [_pool(runs[setting]) for setting in settings], floor


def _pool(measured: list[dict]) -> dict:
    """One setting's runs as one: their timed epochs together, the median warm-up."""
    failed = [run for run in measured if "error" in run]
    if failed:
        return failed[0]
    pooled = dict(measured[0], peak_memory_mib=max(run["peak_memory_mib"] for run in measured))
    for key in ("epoch_seconds", "eval_seconds", "cpu_seconds"):
        pooled[key] = [seconds for run in measured for seconds in run.get(key, [])]
    pooled["load_average"] = max((run.get("load_average", np.nan) for run in measured), default=np.nan)
    for key in ("warmup_seconds", "eval_warmup_seconds"):
        if pooled[key] is not None:
            pooled[key] = statistics.median(run[key] for run in measured)
    return pooled


def _measure_in_new_process(setting: Setting, epochs: int, images: int) -> dict:
    """Run `measure_setting` in a fresh Python process (the measuring process) on the setting's backend."""
    env = dict(os.environ, KERAS_BACKEND=setting.backend, **dict(setting.environment))
    env.setdefault("JAX_PLATFORMS", "cpu")  # no search for accelerators this machine lacks
    payload = json.dumps({"setting": dataclasses.asdict(setting), "epochs": epochs, "images": images})
    done = subprocess.run([sys.executable, "-m", "bnlab.bench.measure", payload],
                          env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"failed (exit {done.returncode}): {reason}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _write(out_dir: Path, stem: str, table: pd.DataFrame, details: dict) -> list[Path]:
    from bnlab.common.environment import environment_record  # here: it imports Keras, only needed now

    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.json"
    table.to_csv(csv_path, index=False)
    machine = {k: v for k, v in environment_record().items() if k not in ("backend", "backend_version")}
    document = {"variant": VARIANT, "batch_size": BATCH_SIZE, "optimizer": OPTIMIZER, "machine": machine,
                **details, "rows": json.loads(table.to_json(orient="records"))}
    json_path.write_text(json.dumps(document, indent=2, default=float) + "\n", encoding="utf-8")
    return [csv_path, json_path]
