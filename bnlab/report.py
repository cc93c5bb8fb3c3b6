"""The report of a run: report.md with statistics, figures and findings written from the numbers.

Reads a run folder through `load_results`; never imports the runner.

Example:
    >>> write_report("runs/placement")   # writes runs/placement/report.md and figures/*.png
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import yaml

from bnlab import figures, stats
from bnlab.results import RunResults, load_results, write_atomic
from bnlab.study_report import study_sections
from bnlab.tables import summary_markdown

REPORT_FIGURES = (  # figure file, what it shows
    ("validation_accuracy.png",
     "Validation accuracy per epoch: mean over seeds, band from the lowest to the highest seed."),
    ("training_loss.png", "Training loss per epoch (Keras's running average in training mode), log scale."),
    ("epochs_to_target.png",
     "Epochs each seed needed to reach each target; hollow markers: not reached within the run."),
    ("epoch_time.png", "Steady-state training seconds per epoch (epochs 2..n), with the ratio to the baseline."),
    ("overfitting_gap.png", "Training minus validation accuracy at the final and the best epoch, "
                            "training-mode and inference-mode figures side by side."),
)
STATISTICS_FIGURES = (
    ("best_val_accuracy", "best val acc", 4),
    ("final_val_accuracy", "final val acc", 4),
    ("test_accuracy", "test acc", 4),
    ("steady_epoch_seconds", "epoch s", 2),
    ("final_accuracy_gap", "acc gap (final)", 4),
    ("final_loss_gap", "loss gap (final)", 4),
)


def write_report(run_dir: str | Path, baseline: str = "no_bn") -> Path:
    """Write report.md and its PNG figures into a run folder.

    Args:
        run_dir: a folder written by `bnlab run`.
        baseline: the variant label that comparisons subtract and ratios divide by.

    Returns:
        The path of report.md.

    Raises:
        FileNotFoundError: not a run folder.
        ValueError: the run has no finished trial yet.
    """
    results = load_results(run_dir)
    if results.trials.empty:
        raise ValueError(f"{run_dir} has no finished trial yet; run it first (bnlab run).")
    order = variant_order(results)
    plots = {
        "validation_accuracy.png": figures.plot_validation_accuracy(results.epochs, order),
        "training_loss.png": figures.plot_training_loss(results.epochs, order),
        "epochs_to_target.png": figures.plot_epochs_to_target(results.targets, results.trials, order),
        "epoch_time.png": figures.plot_epoch_time(results.trials, baseline, order),
        "overfitting_gap.png": figures.plot_overfitting_gap(results.epochs, results.trials, order),
    }
    sections = study_sections(results, baseline)
    for section in sections:
        plots.update(section.figures)
    for name, figure in plots.items():
        figures.save_figure(figure, results.path / "figures" / name)
    path = results.path / "report.md"
    write_atomic(path, render_report(results, baseline, [section.markdown for section in sections]))
    return path


def variant_order(results: RunResults) -> list[str]:
    """Variant labels in config order, only those with finished trials."""
    present = set(results.trials["variant"])
    return [v.label for v in results.config.trial_variants if v.label in present]


def baseline_pairs(results: RunResults, baseline: str) -> list[tuple[str, str]]:
    """(variant, baseline) label pairs to compare, in config order.

    `baseline` names a trial label (every other variant is compared with it) or, in a run
    with a grid, a variant label of the config: each variant is then compared with that
    variant trained at the same grid point (bn_input-learning_rate0.1 with
    no_bn-learning_rate0.1), never across grid points.
    """
    present = set(variant_order(results))
    variants = [v for v in results.config.trial_variants if v.label in present]
    if baseline in present:
        return [(v.label, baseline) for v in variants if v.label != baseline]
    at_point = {_grid_key(v): v.label for v in variants if v.base_label == baseline}
    return [(v.label, at_point[_grid_key(v)]) for v in variants
            if v.base_label != baseline and _grid_key(v) in at_point]


def _grid_key(variant) -> str:
    return repr(sorted(variant.grid_point.items()))


def render_report(results: RunResults, baseline: str = "no_bn", studies: list[str] | None = None) -> str:
    """The Markdown text of the report (figures are referenced under figures/).

    `studies`: Markdown sections placed before the generic ones (see `bnlab.study_report`).
    """
    config, metadata = results.config, results.metadata
    sections = [
        f"# {config.name}: batch normalization report",
        config.description,
        _run_line(results),
        *(studies or []),
        "## Findings\n\n" + "\n".join(f"- {line}" for line in findings(results, baseline)),
        "## Summary\n\n" + summary_markdown(results),
        "## Statistics over seeds\n\n" + statistics_markdown(results),
        "## Against the baseline\n\n" + comparison_markdown(results, baseline),
        "## Epochs to target\n\n" + targets_markdown(results),
        "## Figures\n\n" + "\n\n".join(
            f"![{caption}](figures/{name})\n\n*{caption}*" for name, caption in REPORT_FIGURES
        ),
        "## Setup\n\n" + _setup_text(config),
        "## Environment\n\n" + _environment_text(metadata),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def _run_line(results: RunResults) -> str:
    metadata = results.metadata
    done, total = len(results.trials), len(results.config.trials)
    return (
        f"Run folder `{results.path}`: {done} of {total} trials finished, status "
        f"**{metadata.get('status', 'unknown')}**, started {metadata.get('started', '?')}, "
        f"finished {metadata.get('finished') or 'not yet'}."
    )


def _interval(row, digits: int) -> str:
    if pd.isna(row["mean"]):
        return "n/a"
    if pd.isna(row["ci_low"]):
        return f"{row['mean']:.{digits}f}"
    return f"{row['mean']:.{digits}f} [{row['ci_low']:.{digits}f}, {row['ci_high']:.{digits}f}]"


def statistics_markdown(results: RunResults) -> str:
    """Mean and 95% confidence interval over seeds of the main per-trial figures."""
    order = variant_order(results)
    columns = [figure for figure, _, _ in STATISTICS_FIGURES]
    table = stats.variant_statistics(results.trials, columns, order).set_index(["variant", "figure"])
    lines = ["| variant | n | " + " | ".join(h for _, h, _ in STATISTICS_FIGURES) + " |",
             "|---|---:|" + "---:|" * len(STATISTICS_FIGURES)]
    for variant in order:
        n = int(table.loc[(variant, columns[0]), "n"])
        cells = [_interval(table.loc[(variant, f)], d) for f, _, d in STATISTICS_FIGURES]
        lines.append(f"| {variant} | {n} | " + " | ".join(cells) + " |")
    note = ("Cells: mean [95% confidence interval of the mean, Student's t]; n counts complete "
            "trials (diverged ones are excluded). Gaps use the training set re-evaluated in "
            "inference mode.")
    return "\n".join(lines) + "\n\n" + note


def comparison_markdown(results: RunResults, baseline: str) -> str:
    """Differences to the baseline variant (at the same grid point), paired by seed, with 95% intervals."""
    pairs = baseline_pairs(results, baseline)
    if not pairs:
        return f"No `{baseline}` trials in this run, so no comparison against it."
    lines = ["| variant | against | figure | pairs | difference | 95% CI | verdict |",
             "|---|---|---|---:|---:|---|---|"]
    for figure, heading, digits in STATISTICS_FIGURES[2:5]:
        for _, row in paired_table(results, pairs, figure).iterrows():
            interval = ("n/a" if pd.isna(row["ci_low"])
                        else f"[{row['ci_low']:+.{digits}f}, {row['ci_high']:+.{digits}f}]")
            lines.append(
                f"| {row['variant']} | {row['baseline']} | {heading} | {int(row['n_pairs'])} | "
                f"{row['mean_difference']:+.{digits}f} | {interval} | {_verdict(row)} |"
            )
    return "\n".join(lines)


def paired_table(results: RunResults, pairs: list[tuple[str, str]], figure: str) -> pd.DataFrame:
    """`stats.paired_differences` of each (variant, baseline) pair, one row per pair in order."""
    tables = [stats.paired_differences(results.trials, figure, base, [variant]) for variant, base in pairs]
    return pd.concat(tables, ignore_index=True)


def _verdict(row) -> str:
    if pd.isna(row["ci_low"]):
        return "too few pairs"
    if row["ci_low"] > 0:
        return "higher"
    if row["ci_high"] < 0:
        return "lower"
    return "no clear difference"


def targets_markdown(results: RunResults) -> str:
    """Per variant and target: seeds that reached it, Kaplan-Meier median, mean over reached."""
    table = stats.target_statistics(results.targets, results.trials, variant_order(results))
    lines = ["| variant | target | reached | median epochs (Kaplan-Meier) | mean epochs, seeds that reached |",
             "|---|---:|---:|---:|---:|"]
    for _, row in table.iterrows():
        lines.append(
            f"| {row['variant']} | {row['target']:g} | {row['reached']}/{row['seeds']} | "
            f"{_median_text(row)} | "
            f"{'—' if pd.isna(row['mean_epochs_reached']) else format(row['mean_epochs_reached'], '.1f')} |"
        )
    note = ("Seeds that never reached a target count as censored at their last epoch, so the "
            "median is never computed from the lucky seeds alone; '> N' means the median was "
            "not reached within the N epochs run.")
    return "\n".join(lines) + "\n\n" + note


def _median_text(row) -> str:
    if row["lower_bound"]:
        return f"> {row['epochs_observed']}"
    return f"{row['km_median_epochs']:g}"


def findings(results: RunResults, baseline: str = "no_bn") -> list[str]:
    """A few sentences generated from the numbers: speed to target, accuracy, cost, gap."""
    lines = [_target_finding(results), _accuracy_finding(results, baseline),
             _cost_finding(results, baseline), _gap_finding(results)]
    diverged = results.trials[results.trials["status"] != "complete"]
    if len(diverged):
        names = ", ".join(f"{r.variant} seed {r.seed}" for r in diverged.itertuples())
        lines.append(f"{len(diverged)} trial(s) diverged and are excluded from every mean: {names}.")
    if len(results.config.seeds) < 3:
        lines.append("With fewer than 3 seeds the intervals are wide or missing: treat these "
                     "sentences as a first look, not a result.")
    training = results.config.training
    if training.step_mode:
        lines.append(f"This run counts optimizer steps: here an 'epoch' is one evaluation, every "
                     f"{training.eval_every_steps:,} steps, and epoch seconds are the training seconds between two.")
    return [line for line in lines if line]


def _target_finding(results: RunResults) -> str:
    """The highest target whose median some variant reached, and who reached it first."""
    table = stats.target_statistics(results.targets, results.trials, variant_order(results))
    missed = []
    for target in sorted(results.config.targets, reverse=True):
        rows = table[table["target"] == target]
        if rows["lower_bound"].all():
            missed.append(f"{target:.1%}")
            continue
        prefix = f"No variant's median reached {', '.join(missed)} within the run. " if missed else ""
        return prefix + _first_to_target(results, rows, target)
    return f"No variant's median reached any target ({', '.join(missed)}) within the run."


def _first_to_target(results: RunResults, rows: pd.DataFrame, target: float) -> str:
    best = rows[~rows["lower_bound"]].sort_values(["km_median_epochs", "mean_epochs_reached"]).iloc[0]
    targets = results.targets
    epochs = targets[(targets["variant"] == best["variant"]) & (targets["target"] == target)
                     & targets["reached"].astype(bool)]
    spread = stats.describe(epochs["epochs_to_target"].astype(float))
    interval = "" if math.isnan(spread["ci_low"]) else f", 95% CI {spread['ci_low']:.1f}–{spread['ci_high']:.1f}"
    others = "; ".join(
        f"{row['variant']} {_median_text(row)} ({row['reached']}/{row['seeds']})"
        for _, row in rows.iterrows() if row["variant"] != best["variant"]
    )
    tied = rows[(rows["km_median_epochs"] == best["km_median_epochs"])
                & (rows["mean_epochs_reached"] == best["mean_epochs_reached"])]
    if len(tied) > 1:
        return (f"{' and '.join(f'**{v}**' for v in tied['variant'])} tie for the first to reach "
                f"{target:.1%} validation accuracy: median {best['km_median_epochs']:g} epochs. "
                f"All variants, median epochs (seeds that reached it): {others}; "
                f"{best['variant']} {_median_text(best)} ({best['reached']}/{best['seeds']}).")
    return (
        f"**{best['variant']}** reaches {target:.1%} validation accuracy first: median "
        f"{best['km_median_epochs']:g} epochs ({best['reached']}/{best['seeds']} seeds; mean "
        f"{spread['mean']:.1f}{interval}). Others, median epochs (seeds that reached it): {others}."
    )


def _accuracy_finding(results: RunResults, baseline: str) -> str:
    order = variant_order(results)
    table = stats.variant_statistics(results.trials, ["test_accuracy"], order)
    best = table.sort_values("mean", ascending=False).iloc[0]
    text = f"Highest test accuracy: **{best['variant']}**, {_interval(best, 4)} (mean [95% CI])."
    against = dict(baseline_pairs(results, baseline)).get(best["variant"])
    if against is not None:
        row = paired_table(results, [(best["variant"], against)], "test_accuracy").iloc[0]
        if not pd.isna(row["ci_low"]):
            text += (f" Against {against}, paired by seed: {row['mean_difference']:+.4f} "
                     f"[{row['ci_low']:+.4f}, {row['ci_high']:+.4f}], "
                     f"{_verdict(row).replace('higher', 'a clear gain').replace('lower', 'a clear loss')}.")
    return text


def _cost_finding(results: RunResults, baseline: str) -> str:
    complete = results.trials[results.trials["status"] == "complete"]
    means = complete.groupby("variant")["steady_epoch_seconds"].mean().dropna()
    pairs = [(v, base) for v, base in baseline_pairs(results, baseline) if v in means and base in means]
    if not pairs:
        return ""
    bases = list(dict.fromkeys(base for _, base in pairs))
    against = (f"{baseline} ({means[baseline]:.2f} s)" if bases == [baseline]
               else f"{baseline} at the same grid point")
    ratios = ", ".join(f"{v} {means[v] / means[base]:.2f}x" for v, base in pairs)
    return (f"Cost of an epoch against {against}: {ratios}. Epoch "
            "times come from one shared machine; trials are interleaved seed by seed so that "
            "load falls on all variants alike.")


def _gap_finding(results: RunResults) -> str:
    order = variant_order(results)
    table = stats.variant_statistics(results.trials, ["final_accuracy_gap"], order).dropna(subset=["mean"])
    if table.empty:
        return ""
    table = table.sort_values("mean")
    low, high = table.iloc[0], table.iloc[-1]
    return (f"Overfitting gap at the final epoch (inference-mode training accuracy minus "
            f"validation accuracy): smallest {low['variant']} {low['mean']:.4f}, largest "
            f"{high['variant']} {high['mean']:.4f}.")


def _setup_text(config) -> str:
    training = config.training
    optimizer = ", ".join(f"{k}={v}" for k, v in training.optimizer.params.items())
    dataset = config.dataset
    grid = "".join(f" x {len(values)} values of {key}" for key, values in config.grid.items())
    length = (f"{training.steps:,} steps (evaluated every {training.eval_every_steps:,})" if training.step_mode
              else f"{training.epochs} epochs")
    return (
        f"{len(config.variants)} variants{grid} x {len(config.seeds)} seeds (seeds {list(config.seeds)}), "
        f"{length}, batch size {training.batch_size}, {training.optimizer.name} "
        f"({optimizer}), loss {training.loss}. Training on {dataset.train_images} MNIST images"
        + (" (binarized)" if dataset.binarize else "") + f", validation: {dataset.validation}"
        + (f" (the last {dataset.validation_size} training images)" if dataset.validation == "holdout" else " set")
        + ". Targets: " + ", ".join(f"{t:g}" for t in config.targets) + ".\n\n"
        "```yaml\n" + yaml.safe_dump(config.to_dict(), sort_keys=False) + "```"
    )


def _environment_text(metadata: dict) -> str:
    keys = ("bnlab", "keras", "backend", "backend_version", "python", "platform", "cpu",
            "cpu_count", "git_commit", "git_dirty", "deterministic")
    return "\n".join(f"- {key}: {metadata[key]}" for key in keys if key in metadata)
