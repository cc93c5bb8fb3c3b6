"""`bnlab compare RUN_A RUN_B ...`: final accuracies per run and variant, and the difference between
runs for every variant label they share; with --out, the same as compare.md plus one figure."""

from __future__ import annotations

from pathlib import Path

from bnlab.cli.output import fail, is_missing, print_table

_FIGURE_HEADINGS = {"final_val_accuracy": "final val acc", "test_accuracy": "test acc"}
FIGURE_FILE = "validation_accuracy.png"


def compare_command(args) -> int:
    from bnlab.analysis.run_comparison import run_differences, run_statistics
    from bnlab.runs.results import load_runs

    try:
        results = load_runs(args.run_dirs)
        statistics, differences = run_statistics(results), run_differences(results)
    except (FileNotFoundError, ValueError) as error:
        return fail(error, 2)
    tables = [("Final accuracy per run and variant: mean ± std over seeds (n: complete trials)",
               *statistics_rows(statistics))]
    if not differences.empty:
        tables.append((f"Run minus {_baselines(differences)}, per variant: mean difference [95% interval]",
                       *difference_rows(differences)))
    note = DIFFERENCES_NOTE if not differences.empty else "No variant label is in two runs: no differences."
    for title, headings, rows in tables:
        print_table(title, headings, rows)
    print(note)
    if args.out is not None:
        try:
            path = write_comparison(Path(args.out), results, tables, note)
        except OSError as error:
            return fail(f"cannot write the comparison into {args.out}: {error.strerror or error}.", 2)
        print(f"Comparison written: {path}")
    return 0


DIFFERENCES_NOTE = ("Differences: paired t over seeds when both runs have the same seeds of the variant "
                    "(a seed starts both from the same weights), else Welch's t (unequal variances).")


def statistics_rows(statistics) -> tuple[list[str], list[list[str]]]:
    """Headings and cells: run, variant, then per figure `mean ± std` and its n (+ diverged)."""
    headings = ["run", "variant"]
    for heading in _FIGURE_HEADINGS.values():
        headings += [heading, "n"]
    rows = []
    for (run, label), group in statistics.groupby(["run", "variant_in_run"], sort=False):
        cells = [run, label]
        for figure in _FIGURE_HEADINGS:
            row = group[group["figure"] == figure].iloc[0]
            spread = "" if is_missing(row["std"]) else f" ± {row['std']:.4f}"
            mean = "-" if is_missing(row["mean"]) else f"{row['mean']:.4f}{spread}"
            cells += [mean, f"{row['n']}" + (f" (+{row['excluded']} diverged)" if row["excluded"] else "")]
        rows.append(cells)
    return headings, rows


def difference_rows(differences) -> tuple[list[str], list[list[str]]]:
    """Headings and cells of `run_differences`: one row per variant, run and figure."""
    headings = ["variant", "run", "minus", "figure", "difference [95% CI]", "p", "test", "n"]
    rows = [[row.variant, row.run, row.baseline_run, _FIGURE_HEADINGS[row.figure], _interval(row),
             "-" if is_missing(row.p_value) else f"{row.p_value:.3g}", row.test, f"{row.n_run} vs {row.n_baseline}"]
            for row in differences.itertuples()]
    return headings, rows


def _interval(row) -> str:
    if is_missing(row.mean_difference):
        return "-"
    if is_missing(row.ci_low):
        return f"{row.mean_difference:+.4f}"
    return f"{row.mean_difference:+.4f} [{row.ci_low:+.4f}, {row.ci_high:+.4f}]"


def _baselines(differences) -> str:
    return ", ".join(dict.fromkeys(differences["baseline_run"]))


def write_comparison(folder: Path, results, tables, note: str) -> Path:
    """`folder/compare.md` (the runs, the tables, the note) and `folder/validation_accuracy.png`.

    Args:
        folder: where to write; created when missing.
        results: the runs, from `load_runs`.
        tables: (title, headings, rows) of each table, as printed.
        note: the line below the tables.

    Returns:
        The path of compare.md.
    """
    from bnlab.analysis.figures import plot_validation_accuracy, save_figure
    from bnlab.analysis.pairing import trial_labels

    folder.mkdir(parents=True, exist_ok=True)
    save_figure(plot_validation_accuracy(results.epochs, trial_labels(results)), folder / FIGURE_FILE)
    lines = ["# bnlab compare", "", *[f"- `{run}`: `{path}`" for run, path in results.metadata["folders"].items()]]
    for title, headings, rows in tables:
        lines += ["", f"## {title}", "", markdown_table(headings, rows)]
    lines += ["", note, "", f"![validation accuracy per epoch, by run and variant]({FIGURE_FILE})", ""]
    path = folder / "compare.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def markdown_table(headings, rows) -> str:
    lines = ["| " + " | ".join(headings) + " |", "|" + "---|" * len(headings)]
    return "\n".join(lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows])
