"""The measured figures as one table, the issue's targets checked on it, and its rich rendering."""

from __future__ import annotations

import os
import statistics
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bnlab.bench.settings import (
    BARE_FIT,
    BATCH_SIZE,
    REFERENCE,
    RUNNER_AS_REFERENCE,
    VARIANT,
)

if TYPE_CHECKING:  # run.py imports this module
    from bnlab.bench.run import BenchResult

COLUMNS = (
    "setting", "backend", "backend_version", "kind", "steps_per_execution", "jit_compile",
    "eval_batch_size", "input", "environment", "images", "epochs_timed", "warmup_seconds",
    "seconds_min", "seconds_median", "seconds_max", "cpu_seconds_median", "ratio_to_reference",
    "ratio_to_floor", "accuracy", "peak_memory_mib", "load_average", "note",
)


def build_table(settings, rows, floor, images, epochs) -> pd.DataFrame:
    """One row per setting (and per runner's evaluation passes) with `COLUMNS`, then the floor's row."""
    records = []
    for setting, row in zip(settings, rows):
        base = {"setting": setting.name, "backend": setting.backend, "kind": setting.kind,
                "backend_version": row.get("backend_version"), **setting.execution_settings(),
                "input": setting.input, "environment": " ".join(f"{k}={v}" for k, v in setting.environment),
                "images": images, "epochs_timed": epochs}
        cpu = row.get("cpu_seconds")
        records.append({**base, **_spread(row.get("epoch_seconds", [])), "accuracy": row.get("accuracy"),
                        "cpu_seconds_median": statistics.median(cpu) if cpu else None,
                        "warmup_seconds": row.get("warmup_seconds"), "load_average": row.get("load_average"),
                        "peak_memory_mib": row.get("peak_memory_mib"), "note": row.get("error", "")})
        if row.get("eval_seconds"):
            records.append({**base, "setting": f"{setting.name}: evaluation passes", "kind": "runner_eval",
                            **_spread(row["eval_seconds"]), "warmup_seconds": row["eval_warmup_seconds"],
                            "note": "validation + inference-mode training-set pass per epoch"})
    records.append({"setting": "floor (Dense matmuls at this machine's rate)", "backend": "numpy",
                    "kind": "floor", "images": images, **_spread([floor["seconds"]]),
                    "note": floor["formula"]})
    table = pd.DataFrame(records).reindex(columns=COLUMNS)
    trained = table["kind"].isin(["reference", "fit", "runner", "floor"])
    reference = table.loc[table["kind"] == "reference", "seconds_median"].iloc[0]
    table.loc[trained, "ratio_to_reference"] = table["seconds_median"] / reference
    table.loc[trained, "ratio_to_floor"] = table["seconds_median"] / floor["seconds"]
    return table


def _spread(seconds: list[float]) -> dict:
    if not seconds:
        return {}
    return {"seconds_min": min(seconds), "seconds_median": statistics.median(seconds),
            "seconds_max": max(seconds)}


def check_targets(table: pd.DataFrame, floor: dict) -> dict:
    """The issue's targets, from the medians of this one run (NaN where a row is missing)."""
    rows = table.set_index("setting")
    median = rows["seconds_median"]
    runners = median[rows["kind"] == "runner"].drop(RUNNER_AS_REFERENCE, errors="ignore").dropna()
    default = median.get("bnlab runner [tensorflow]", np.nan)
    study = {name: _placement_seconds(rows, name) for name in ("bnlab runner [tensorflow]", RUNNER_AS_REFERENCE)}
    figures = {
        "default_speedup_over_reference": (median.get(REFERENCE, np.nan) / default, ">=", 3.0),
        "fastest_backend_over_floor": (runners.min() / floor["seconds"] if len(runners) else np.nan, "<=", 2.0),
        "runner_overhead_over_bare_fit": (default / median.get(BARE_FIT, np.nan) - 1, "<=", 0.05),
        "placement_time_over_reference_settings": (
            study["bnlab runner [tensorflow]"] / study[RUNNER_AS_REFERENCE], "<=", 0.5),
    }
    return {name: {"value": None if np.isnan(value) else float(value), "target": f"{sign} {limit}",
                   "holds": bool(value >= limit if sign == ">=" else value <= limit)}
            for name, (value, sign, limit) in figures.items()}


def _placement_seconds(rows: pd.DataFrame, name: str, epochs: int = 15) -> float:
    """One placement trial's time: a first epoch, then `epochs - 1` median ones, each with
    its training and its evaluation passes (model building and the test pass are alike)."""
    evaluation = f"{name}: evaluation passes"
    if name not in rows.index or evaluation not in rows.index:
        return np.nan
    first = rows.loc[name, "warmup_seconds"] + rows.loc[evaluation, "warmup_seconds"]
    return first + (epochs - 1) * (rows.loc[name, "seconds_median"] + rows.loc[evaluation, "seconds_median"])


def bench_table(result: BenchResult):
    """The benchmark as a rich table, with the floor's formula and the targets below it."""
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"Seconds per epoch: {VARIANT}, SGD, batch size {BATCH_SIZE}")
    headings = ("setting", "min", "median", "max", "CPU s", "x reference", "x floor", "accuracy", "peak MiB",
                "load")
    for heading in headings:
        table.add_column(heading, justify="left" if heading == "setting" else "right")
    for row in result.table.itertuples():
        figures = (row.seconds_min, row.seconds_median, row.seconds_max, row.cpu_seconds_median,
                   row.ratio_to_reference, row.ratio_to_floor, row.accuracy, row.peak_memory_mib, row.load_average)
        formats = ("{:.2f}", "{:.2f}", "{:.2f}", "{:.2f}", "{:.2f}", "{:.2f}", "{:.4f}", "{:.0f}", "{:.1f}")
        cells = ["" if pd.isna(v) else f.format(v) for f, v in zip(formats, figures)]
        failed = row.note if row.note.startswith("failed") else ""
        indent = "  " if row.kind == "runner_eval" else ""
        table.add_row(escape(indent + " ".join([row.setting, failed]).strip()), *cells)
    floor = result.floor
    lines = [f"Floor: {floor['formula']} = {floor['flops'] / 1e9:.1f} GFLOP at "
             f"{floor['gflops_per_second']:.1f} GFLOP/s (numpy float32 at the layer shapes).",
             (f"CPU s: the process's CPU seconds in its median epoch (bare fits); load: the highest "
              f"1-minute load average of its runs ({os.cpu_count()} cores here). Other jobs' load "
              "stretches the seconds, hardly the CPU seconds: compare settings of one run, as ratios.")]
    for name, check in result.checks.items():
        value = "not measured" if check["value"] is None else f"{check['value']:.3f}"
        verdict = "holds" if check["holds"] else "does NOT hold"
        lines.append(f"{name.replace('_', ' ')}: {value} (target {check['target']}): {verdict}")
    return Group(table, Text("\n".join(lines)))
