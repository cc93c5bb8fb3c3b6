"""The report of a run: report.md with statistics, figures and findings written from the numbers.

Reads a run folder through `load_results`; never imports the runner.

Example:
    >>> write_report("runs/placement")   # writes runs/placement/report.md and figures/*.png
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import yaml

from bnlab.analysis import comparisons, figures, seed_figures, stats
from bnlab.analysis.claim_figures import plot_claims
from bnlab.analysis.pairing import baseline_pairs, resolve_baseline, trial_labels
from bnlab.analysis.summary import summary_markdown
from bnlab.common.columns import progress_unit
from bnlab.report import mechanisms_study, population_study, small_batch_study  # noqa: F401 (they register studies)
from bnlab.report.findings import accuracy_set, findings
from bnlab.report.studies import Section, study_sections
from bnlab.report.tables import claims_markdown, comparison_markdown, targets_markdown
from bnlab.runs.folder import write_atomic
from bnlab.runs.results import RunResults, load_results

REPORT_FIGURES = (  # figure file, what it shows
    ("validation_accuracy.png",
     "Validation accuracy per epoch: mean over seeds, band from the lowest to the highest seed."),
    ("training_loss.png", "Training loss (training mode, mean over the steps since the previous row), log scale."),
    ("epochs_to_target.png",
     "Epochs (step mode: steps) each seed needed to reach each target; hollow markers: not reached within the run."),
    ("epoch_time.png", "Steady-state training seconds per epoch (epochs 2..n), with the ratio to the baseline."),
    ("overfitting_gap.png", "Training minus validation accuracy at the final and the best epoch, "
                            "training-mode and inference-mode figures side by side."),
)
CLAIMS_FIGURE = "claims.png"  # with a config's claims only
CLAIMS_CAPTION = ("Each claim's per-seed differences (points), the interval its test gives with its centre "
                  "(diamond), zero (dashed) and any equivalence margin (band); the colour is the verdict, which "
                  "uses the Holm-adjusted p over the report's tests: an interval clear of zero can be inconclusive.")
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
    sections = study_sections(results, baseline)
    evaluation = evaluate_run(results, baseline)
    plots = _report_figures(results, baseline)
    if not evaluation.claims.empty:
        plots[CLAIMS_FIGURE] = plot_claims(results.trials, evaluation.claims, results.config.analysis.confidence)
    for section in sections:
        plots.update(section.figures)
    for name, figure in plots.items():
        figures.save_figure(figure, results.path / "figures" / name)
    path = results.path / "report.md"
    write_atomic(path, render_report(results, baseline, sections, evaluation))
    return path


def _report_figures(results: RunResults, baseline: str) -> dict:
    """The figures every report shows (`REPORT_FIGURES`), by file name."""
    order = trial_labels(results)
    return {
        "validation_accuracy.png": figures.plot_validation_accuracy(results.epochs, order),
        "training_loss.png": figures.plot_training_loss(results.epochs, order),
        "epochs_to_target.png": seed_figures.plot_epochs_to_target(
            results.targets, results.trials, order, results.config.training.eval_every_steps, accuracy_set(results)),
        "epoch_time.png": seed_figures.plot_epoch_time(results.trials, resolve_baseline(results, baseline), order),
        "overfitting_gap.png": seed_figures.plot_overfitting_gap(results.epochs, results.trials, order),
    }


COMPARED_FIGURES = ("test_accuracy", "steady_epoch_seconds", "final_accuracy_gap")  # the baseline table's figures


def evaluate_run(results: RunResults, baseline: str = "no_bn") -> comparisons.Evaluation:
    """The baseline comparisons and the config's claims of a run, with one Holm family."""
    return comparisons.evaluate(results, baseline_pairs(results, baseline), COMPARED_FIGURES)


def render_report(results: RunResults, baseline: str = "no_bn", sections: Sequence[Section] | None = None,
                  evaluation: comparisons.Evaluation | None = None) -> str:
    """The Markdown text of the report (figures are referenced under figures/).

    Args:
        results: a run read by `load_results`.
        baseline: the variant label (or registry name) that comparisons subtract.
        sections: the study sections placed before the generic ones; None builds them, every
            registered study that applies to the run (`bnlab.report.studies.study_sections`).
        evaluation: `evaluate_run(results, baseline)` when already made; None makes it.

    Returns:
        The report's Markdown, ending in a newline.
    """
    config, metadata = results.config, results.metadata
    evaluation = evaluate_run(results, baseline) if evaluation is None else evaluation
    studies = study_sections(results, baseline) if sections is None else sections
    sections = [
        f"# {config.name}: batch normalization report",
        config.description,
        _run_line(results),
        claims_markdown(results, evaluation) + _claims_figure_link(evaluation),
        *(section.markdown for section in studies),
        "## Findings\n\n" + "\n".join(f"- {line}" for line in findings(results, baseline, evaluation)),
        "## Summary\n\n" + summary_markdown(results),
        "## Statistics over seeds\n\n" + statistics_markdown(results),
        "## Against the baseline\n\n" + comparison_markdown(results, evaluation, resolve_baseline(results, baseline)),
        f"## {progress_unit(config).capitalize()} to target\n\n" + targets_markdown(results),
        "## Figures\n\n" + "\n\n".join(
            f"![{caption}](figures/{name})\n\n*{caption}*" for name, caption in REPORT_FIGURES
        ),
        "## Setup\n\n" + _setup_text(config),
        "## Environment\n\n" + _environment_text(metadata),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def _claims_figure_link(evaluation: comparisons.Evaluation) -> str:
    if evaluation.claims.empty:
        return ""
    return f"\n\n![{CLAIMS_CAPTION}](figures/{CLAIMS_FIGURE})\n\n*{CLAIMS_CAPTION}*"


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
    order = trial_labels(results)
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
    keys = ("bnlab", "keras", "backend", "backend_version", "numpy", "pandas", "scipy", "python", "platform", "cpu",
            "cpu_count", "accelerator", "git_commit", "git_dirty", "deterministic")
    return "\n".join(f"- {key}: {metadata[key]}" for key in keys if key in metadata)
