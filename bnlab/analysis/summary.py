"""Summary tables of a run (terminal and Markdown) from its DataFrames; never imports the runner."""

from __future__ import annotations

import pandas as pd
from rich.table import Table

from bnlab.analysis import survival
from bnlab.analysis.pairing import variant_order
from bnlab.common.columns import progress_unit, reached, time_to, tried
from bnlab.runs.results import RunResults

SUMMARY_FIGURES = (
    "best_val_accuracy",
    "final_val_accuracy",
    "test_accuracy",
    "steady_epoch_seconds",
    "final_accuracy_gap",
)


def summarize_variants(results: RunResults) -> pd.DataFrame:
    """Mean and standard deviation over seeds of the main per-trial figures, per variant.

    Epochs (in step mode: steps) to each target are averaged over the seeds that reached it
    only; `reached_T` of `tried_T` seeds did (every seed counts, as in the report's target
    table: a diverged seed that reached T before diverging did reach it), so an unreached
    target is never hidden. Diverged trials are left out of the other means and counted in
    `diverged`.

    Args:
        results: a run read by `load_results`.

    Returns:
        One row per variant label (config order) with `seeds`, `FIGURE_mean`, `FIGURE_std`,
        `epochs_to_T_mean` (step mode: `steps_to_T_mean`), `reached_T` and `tried_T` columns
        (names from `bnlab.common.columns`).
    """
    trials = results.trials
    labels = variant_order(results.config, trials["variant"])
    complete = trials["status"] == "complete"
    grouped = trials[complete].groupby("variant", sort=False)
    table = pd.DataFrame(index=pd.Index(labels, name="variant"))
    table["seeds"] = grouped.size()
    table["diverged"] = trials[~complete].groupby("variant").size()
    table[["seeds", "diverged"]] = table[["seeds", "diverged"]].fillna(0).astype(int)
    for figure in SUMMARY_FIGURES:
        table[f"{figure}_mean"] = grouped[figure].mean()
        table[f"{figure}_std"] = grouped[figure].std(ddof=1)
    # the same counts as the report's target table: every seed, a diverged one that got there included
    unit = progress_unit(results.config)
    counts = survival.target_statistics(results.targets, trials, labels, unit).set_index(["variant", "target"])
    for target in results.config.targets:
        rows = counts.xs(float(target), level="target")
        table[f"{time_to(unit, target)}_mean"] = rows["mean_epochs_reached"]
        table[reached(target)] = rows["reached"]
        table[tried(target)] = rows["seeds"]
    return table.loc[labels]


def summary_rows(results: RunResults) -> tuple[list[str], list[list[str]]]:
    """The per-variant summary as headings and rows of formatted cells (mean ± std)."""
    summary = summarize_variants(results)
    targets = results.config.targets
    headings = ["variant", "seeds", "best val acc", "final val acc", "test acc",
                "epoch s", "acc gap"]
    unit = progress_unit(results.config)
    headings += [f"{unit} to {target:g}" for target in targets]
    rows = [
        [label, _seeds_cell(int(row["seeds"]), int(row["diverged"]))]
        + [_mean_std(row, figure) for figure in SUMMARY_FIGURES]
        + [_reached_cell(row, unit, target) for target in targets]
        for label, row in summary.iterrows()
    ]
    return headings, rows


def summary_table(results: RunResults) -> Table:
    """The per-variant summary as a rich table, for the terminal."""
    headings, rows = summary_rows(results)
    table = Table(
        title=f"{results.config.name}: mean±std over seeds",
        caption="epoch s: steady-state training seconds per epoch (step mode: between two "
        "evaluations); acc gap: final training (inference mode) minus validation accuracy; "
        "epochs (steps) to T: mean over the seeds that reached T (reached/seeds); diverged "
        "trials are excluded from every figure",
    )
    for heading in headings:
        table.add_column(heading, justify="left" if heading == "variant" else "right")
    for row in rows:
        table.add_row(*row)
    return table


def summary_markdown(results: RunResults) -> str:
    """The per-variant summary as a Markdown table, for README files and reports."""
    headings, rows = summary_rows(results)
    lines = ["| " + " | ".join(headings) + " |", "|" + "---|" * len(headings)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _seeds_cell(seeds: int, diverged: int) -> str:
    return f"{seeds} (+{diverged} diverged)" if diverged else str(seeds)


def _mean_std(row, figure) -> str:
    mean, std = row[f"{figure}_mean"], row[f"{figure}_std"]
    digits = 2 if "seconds" in figure else 4
    return f"{mean:.{digits}f}" + ("" if pd.isna(std) else f"±{std:.{digits}f}")


def _reached_cell(row, unit, target) -> str:
    count, seeds = int(row[reached(target)]), int(row[tried(target)])
    if count == 0:
        return f"never (0/{seeds})"
    digits = 0 if unit == "steps" else 1
    return f"{row[f'{time_to(unit, target)}_mean']:,.{digits}f} ({count}/{seeds})"
