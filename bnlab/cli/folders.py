"""The commands that read run folders: `report`, `plan-seeds` and `runs`."""

from __future__ import annotations

from bnlab.cli.output import fail, is_missing, print_table


def report_command(args) -> int:
    from bnlab.report.write import write_report

    try:
        path = write_report(args.run_dir, baseline=args.baseline)
    except (FileNotFoundError, ValueError) as error:
        return fail(error, 2)
    print(f"Report written: {path}")
    return 0


def plan_seeds_command(args) -> int:
    from bnlab.analysis.comparisons import seed_plan
    from bnlab.analysis.pairing import baseline_pairs
    from bnlab.runs.results import load_results

    try:
        results = load_results(args.run_dir)
        table = _checked_plan(results, args, baseline_pairs(results, args.baseline), seed_plan)
    except (FileNotFoundError, ValueError) as error:
        return fail(error, 2)
    level = results.config.analysis.alpha
    print(f"Seeds for {args.power:.0%} power to detect a true mean difference of {args.effect:g} in {args.figure} "
          f"(two-sided paired t-test at level {level:g}; spread of the paired differences in {args.run_dir}):")
    for row in table.itertuples():
        needed = "more than 1,000" if is_missing(row.seeds_needed) else int(row.seeds_needed)
        print(f"  {row.variant} vs {row.baseline}: std {row.std:.4g} over {row.n} pairs -> {needed} seeds")
    return 0


def _checked_plan(results, args, pairs, seed_plan):
    if args.effect <= 0 or not 0 < args.power < 1:
        raise ValueError(f"--effect must be positive and --power in (0, 1); received --effect {args.effect:g}, "
                         f"--power {args.power:g}.")
    if args.figure not in results.trials:
        raise ValueError(f"--figure: expected a column of the trials table ({', '.join(results.trials.columns)}); "
                         f"received {args.figure!r}.")
    if not pairs:
        raise ValueError(f"--baseline: no trials of {args.baseline!r} to pair with in {args.run_dir}.")
    return seed_plan(results, pairs, args.figure, args.effect, args.power)


def runs_command(args) -> int:
    from bnlab.runs.results import list_runs

    found = list_runs(args.root)
    if found.empty:
        print(f"No run folders under {args.root}.")
        return 0
    rows = [(row.path, row.config, str(row.started or "-"), row.status,
             f"{row.trials_done}/{'?' if is_missing(row.trials_total) else int(row.trials_total)}")
            for row in found.itertuples()]
    print_table(f"bnlab runs under {args.root}", ("path", "config", "started", "status", "trials"), rows)
    return 0
